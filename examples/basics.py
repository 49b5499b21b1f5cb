"""Basics and health: is the gateway up, is the session ready, and what does a call give back.

    python examples/basics.py
    python examples/basics.py --url https://localhost:5000/v1/api/

Shows `check_health()` and the authentication flags, the `Result` every endpoint method returns (the decoded
answer and the request that was sent), a bad argument refused before anything is sent, and a failed request
raised with the gateway's status and message.
"""

from __future__ import annotations

from _common import Session, run, step

from ibkr_sdk import ExternalBrokerError, RequestValidationError


def main(s: Session) -> None:
    client = s.client

    step("Health")
    print(f"check_health(): {client.check_health()}  (gateway answers; session authenticated, connected)")
    status = client.authentication_status(log=False).data
    print(
        f"authenticated={status.get('authenticated')} connected={status.get('connected')} "
        f"competing={status.get('competing')}"
    )
    tickle = client.tickle().data
    print(f"tickle: session {str(tickle.get('session', ''))[:8]}..., keeps the session alive (send one a minute)")

    step("What a call returns")
    result = client.receive_brokerage_accounts()
    sent = result.request or {}
    print(f"request: {sent.get('method')} {sent.get('url')}")
    print(f"data:    accounts {result.data.get('accounts')}, selected {result.data.get('selectedAccount')}")

    step("Bad arguments are refused before anything is sent")
    try:
        client.marketdata_history_by_conid(conid="265598", bar="1d", period="forever")
    except RequestValidationError as exc:
        print(f"RequestValidationError: {exc}")

    step("A failed request names what failed")
    try:
        client.contract_information_by_conid("1")  # no contract has conid 1
    except ExternalBrokerError as exc:
        print(f"{type(exc).__name__} (HTTP {exc.status_code}): {exc}")


if __name__ == "__main__":
    run(main, __doc__)
