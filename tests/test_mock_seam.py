"""The mock seam: a dry-run script that patches `requests` (as the peer's "place order" example patches
`ibind.base.rest_client.requests`) must never reach the gateway.

Every test runs a real simulator and asserts that it received nothing while the patch was active, and what the
stand-in received instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any
from unittest.mock import MagicMock, patch

import pytest
import requests

from ibkr_sdk import ExternalBrokerError, IbkrClient, OAuth2Error, OrderRequest, QuestionType
from ibkr_sdk.simulator import Simulator

ACCOUNT = "DU1234567"
SCRIPTED = [
    [{"id": 0, "message": ["price exceeds the Percentage constraint of 3%."]}],
    [{"id": 1, "message": ["exceeds the Total Value Limit of"]}],
    [{"success": True}],
]
ANSWERS: dict[Any, bool] = {
    QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True,
    QuestionType.ORDER_VALUE_LIMIT: True,
    "Unforeseen new question": True,
}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


def _order() -> OrderRequest:
    return OrderRequest(conid="265598", side="BUY", quantity=1, order_type="MKT", acct_id=ACCOUNT, coid="dry-run-1")


def _sent(mock: MagicMock) -> list[tuple[str, str, Any]]:
    return [(c.args[0], c.args[1], c.kwargs.get("json")) for c in mock.request.call_args_list]


@pytest.mark.parametrize("use_session", [False, True])
def test_patched_transport_module_intercepts_the_whole_order_flow(sim: Simulator, use_session: bool) -> None:
    client = IbkrClient(url=sim.url, account_id=ACCOUNT, cacert=False, use_session=use_session)
    with patch("ibkr_sdk.lib.transport.requests") as requests_mock:
        requests_mock.request.return_value = MagicMock(json=MagicMock(side_effect=list(SCRIPTED)))
        result = client.place_order(_order(), ANSWERS, ACCOUNT)
    assert result.data == {"success": True}
    assert sim.requests == [] and sim.orders == []
    sent = _sent(requests_mock)
    assert [(m, u.removeprefix(client.base_url)) for m, u, _ in sent] == [
        ("POST", f"iserver/account/{ACCOUNT}/orders"),
        ("POST", "iserver/reply/0"),
        ("POST", "iserver/reply/1"),
    ]
    assert sent[0][2]["orders"][0]["cOID"] == "dry-run-1"
    assert [body for _, _, body in sent[1:]] == [{"confirmed": True}, {"confirmed": True}]
    # Once the patch is gone, requests reach the network again.
    client.tickle()
    assert [r.path for r in sim.requests] == ["/tickle"]
    client.close()


def test_patching_requests_request_itself_also_intercepts(sim: Simulator) -> None:
    client = IbkrClient(url=sim.url, account_id=ACCOUNT, cacert=False)
    with patch("requests.request") as request:
        request.return_value = MagicMock(json=MagicMock(return_value={"iserver": {"authStatus": {}}}))
        assert client.tickle().data == {"iserver": {"authStatus": {}}}
        assert client.live_orders().data == {"iserver": {"authStatus": {}}}  # no preflight consumed an answer
    assert request.call_count == 2
    assert sim.requests == []
    client.close()


def test_a_stand_in_error_answer_is_a_refusal_naming_the_method(sim: Simulator) -> None:
    client = IbkrClient(url=sim.url, account_id=ACCOUNT, cacert=False)
    failing = MagicMock(status_code=400)
    failing.raise_for_status.side_effect = requests.exceptions.HTTPError("400 Client Error")
    with patch("ibkr_sdk.lib.transport.requests") as requests_mock:
        requests_mock.request.return_value = failing
        with pytest.raises(ExternalBrokerError, match=r"place_order.*not placed") as caught:
            client.place_order(_order(), ANSWERS, ACCOUNT)
    assert caught.value.status_code == 400
    assert requests_mock.request.call_count == 1  # refused: never sent again
    assert sim.requests == []
    client.close()


PEER_STYLE_SCRIPT = """
import sys
from unittest.mock import patch, MagicMock

from ibkr_sdk import IbkrClient, QuestionType, ibind_logs_initialize
from {order_module} import OrderRequest

ibind_logs_initialize(log_to_file=False)
account_id = "DU1234567"
client = IbkrClient(url=sys.argv[1], cacert=False, use_session=False)
order_request = OrderRequest(conid="265598", side="BUY", quantity=1, order_type="MKT", acct_id=account_id,
                             coid="my_order-1")
answers = {
    QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True,
    QuestionType.ORDER_VALUE_LIMIT: True,
    "Unforeseen new question": True,
}
mocked_responses = [
    [{"id": 0, "message": ["price exceeds the Percentage constraint of 3%."]}],
    [{"id": 1, "message": ["exceeds the Total Value Limit of"]}],
    [{"success": True}],
]
with patch("{patch_target}") as requests_mock:
    requests_mock.request.return_value = MagicMock(json=MagicMock(side_effect=mocked_responses))
    response = client.place_order(order_request, answers, account_id).data
print("RESULT", __import__("json").dumps(response))
"""


@pytest.mark.parametrize(
    ("order_module", "patch_target"),
    [
        ("ibkr_sdk", "ibkr_sdk.lib.transport.requests"),  # as the README's migration notes map them
        ("ibkr_sdk.client.ibkr_utils", "ibkr_sdk.base.rest_client.requests"),  # `ibind` renamed, nothing else
    ],
)
def test_peer_style_dry_run_script_places_nothing(sim: Simulator, order_module: str, patch_target: str) -> None:
    """The peer's dry-run idiom, run as a user runs it (its own process), with only the imports changed."""
    script = PEER_STYLE_SCRIPT.replace("{order_module}", order_module).replace("{patch_target}", patch_target)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), sim.url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    assert json.loads(line.removeprefix("RESULT ")) == {"success": True}
    assert sim.requests == [], [r.path for r in sim.requests]
    assert sim.orders == []


def test_oauth2_token_and_session_requests_go_to_the_stand_in_too() -> None:
    """With OAuth 2.0 a client's first requests are the token and SSO session POSTs, outside the catalogue: a dry
    run's stand-in gets them as it gets every other request, and the authority never sees the credentials."""
    token = {
        "access_token": "stand-in-token",
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "sso-sessions.write",
    }
    sso = {"access_token": "stand-in-session", "active": True, "type": "sso"}
    with Simulator(oauth2=True, https=True) as sim, patch("ibkr_sdk.lib.transport.requests") as requests_mock:
        requests_mock.request.return_value = MagicMock(status_code=200, json=MagicMock(side_effect=[token, sso]))
        config = sim.oauth2_config(maintain_oauth=False, shutdown_oauth=False, init_brokerage_session=False)
        client = IbkrClient(use_oauth=True, oauth_config=config, cacert=sim.cacert, account_id=ACCOUNT, max_retries=0)
        client.close()
        booked = list(sim.requests)
    assert booked == []
    sent = [(c.args[0], c.args[1]) for c in requests_mock.request.call_args_list]
    assert sent == [("POST", config.token_url), ("POST", config.sso_session_url)]
    assert "client_assertion" in requests_mock.request.call_args_list[0].kwargs["data"]


def test_oauth2_with_a_bare_stand_in_fails_naming_what_is_missing_and_sends_nothing() -> None:
    with Simulator(oauth2=True, https=True) as sim, patch("ibkr_sdk.lib.transport.requests") as requests_mock:
        config = sim.oauth2_config(maintain_oauth=False, shutdown_oauth=False, init_brokerage_session=False)
        with pytest.raises(OAuth2Error, match="access token answer lacks access_token"):
            IbkrClient(use_oauth=True, oauth_config=config, cacert=sim.cacert, account_id=ACCOUNT, max_retries=0)
        booked = list(sim.requests)
    assert booked == [] and requests_mock.request.call_count == 1
