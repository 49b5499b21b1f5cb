"""OAuth 2.0 (issue 23) on AsyncIbkrClient, over TLS against the simulator's authority: the same flows as IbkrClient.
Tokens and the SSO session on entry, Account Management (/gw/api/v1) with its scope check, SIGNED_JWT bodies, an
expired session renewed with the safe request sent again, an unsafe one not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("Crypto")

from ibkr_sdk import NotAuthenticatedError, OAuth2Error  # noqa: E402
from ibkr_sdk.lib.aio.client import AsyncIbkrClient  # noqa: E402
from ibkr_sdk.simulator import Simulator  # noqa: E402
from tests.test_oauth2 import _named, sim  # noqa: E402, F401  (the fixture: a simulator with OAuth 2.0 over TLS)


def _client(sim: Simulator, **config: Any) -> AsyncIbkrClient:  # noqa: F811
    values: dict[str, Any] = {"maintain_oauth": False, "shutdown_oauth": False}
    values.update(config)
    return AsyncIbkrClient(
        use_oauth=True,
        oauth_config=sim.oauth2_config(**values),
        cacert=sim.cacert,
        account_id="DU1234567",
        pacing=False,
        max_retries=0,
        timeout=5,
    )


def test_the_oauth2_flow_on_the_asyncio_client(sim: Simulator) -> None:  # noqa: F811
    oauth2 = sim.oauth2
    assert oauth2 is not None

    async def main() -> None:
        async with _client(sim) as client:
            assert (oauth2.tokens_issued, oauth2.sessions_opened) == (1, 1)
            init = _named(sim, "initialize_brokerage_session")[0]
            assert init.headers["authorization"] == f"Bearer {oauth2.issued[1]}"  # the session token on /v1/api
            assert (await client.authentication_status(log=False)).data["authenticated"] is True
            echo = await client.echo_signed_jwt({"note": "hello"})
            assert echo.data["body"] == {"note": "hello"} and oauth2.signed_bodies == 1
            assert _named(sim, "echo_signed_jwt")[0].headers["content-type"] == "application/jwt"
            oauth2.expire_sessions()
            sim.clear_requests()
            assert (await client.portfolio_accounts()).data  # 401, a new session, sent once more
            assert [r.status for r in _named(sim, "portfolio_accounts")] == [401, 200]
            oauth2.expire_access_tokens()
            with pytest.raises(NotAuthenticatedError):
                await client.am_update_account({"accountId": "U1234567", "customer": {"email": "a@example.com"}})
            assert [r.status for r in _named(sim, "am_update_account")] == [401], "an unsafe request: sent once"
            assert (await client.am_account_status("U1234567")).data["status"] == "O"

    asyncio.run(main())


def test_account_management_needs_oauth2_on_the_asyncio_client() -> None:
    with Simulator(oauth2=True) as plain:

        async def main() -> None:
            async with AsyncIbkrClient(url=plain.url, pacing=False) as gateway_client:
                with pytest.raises(OAuth2Error, match="only with OAuth 2.0"):
                    await gateway_client.am_account_status("U1234567")

        asyncio.run(main())
        assert _named(plain, "am_account_status") == []
