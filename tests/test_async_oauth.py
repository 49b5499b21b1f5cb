"""OAuth 1.0a on AsyncIbkrClient, against the simulator's OAuth authority: the token obtained when the client is
entered, every request signed afresh, one renewal after a 401 however many tasks were refused, and the tickler as
an asyncio task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("Crypto")

import base64  # noqa: E402
import secrets  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from Crypto.Cipher import PKCS1_v1_5  # noqa: E402
from Crypto.PublicKey import RSA  # noqa: E402

from ibkr_sdk.lib.aio.client import AsyncIbkrClient  # noqa: E402
from ibkr_sdk.simulator import OAuthSettings, Simulator  # noqa: E402
from tests.test_oauth import PRIME  # noqa: E402
from tests.test_oauth_e2e import ACCESS_TOKEN, CONSUMER, _config  # noqa: E402


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    # 1024-bit keys: the flow is what is tested here, and 2048-bit ones take seconds to make on a busy machine.
    signature, encryption = RSA.generate(1024), RSA.generate(1024)
    secret = secrets.token_bytes(32)
    encrypted = base64.b64encode(PKCS1_v1_5.new(encryption.publickey()).encrypt(secret)).decode()
    return {"signature": signature, "encryption": encryption, "secret": secret, "encrypted": encrypted}


@pytest.fixture
def sim(keys: dict[str, Any]) -> Iterator[Simulator]:
    settings = OAuthSettings(
        consumer_key=CONSUMER,
        access_token=ACCESS_TOKEN,
        access_token_secret_hex=keys["secret"].hex(),
        signature_public_key=keys["signature"].publickey().export_key().decode(),
        dh_prime=PRIME,
    )
    with Simulator(oauth=settings) as s:
        yield s


def test_token_on_entry_signed_calls_and_one_renewal_after_401(sim: Simulator, keys: dict[str, Any]) -> None:
    assert sim.oauth is not None
    oauth = sim.oauth

    async def main() -> Any:
        client = AsyncIbkrClient(
            use_oauth=True, oauth_config=_config(sim, keys), account_id="DU1234567", max_retries=0, pacing=False
        )
        assert sim.requests == [], "the constructor cannot wait: nothing is sent before the client is entered"
        async with client:
            first = (await client.portfolio_accounts()).data
            oauth.expire_tokens()
            sim.clear_requests()
            again = await asyncio.gather(*(client.portfolio_accounts() for _ in range(5)))
        return first, again

    first, again = asyncio.run(main())
    assert first[0]["id"] == "DU1234567" and all(r.data[0]["id"] == "DU1234567" for r in again)
    assert oauth.issued == 2, "five tasks refused with 401 renew the token once"
    assert [r.path for r in sim.requests].count("/oauth/live_session_token") == 1
    signed = [r for r in sim.requests if r.path != "/oauth/live_session_token"]
    nonces = [r.headers["authorization"].split('oauth_nonce="')[1].split('"')[0] for r in signed]
    assert len(set(nonces)) == len(nonces), "a fresh nonce on every request"


def test_the_tickler_is_a_task(sim: Simulator, keys: dict[str, Any]) -> None:
    async def main() -> int:
        async with AsyncIbkrClient(
            use_oauth=True, oauth_config=_config(sim, keys), account_id="DU1234567", max_retries=0, pacing=False
        ) as client:
            client.start_tickler(interval=0.05)
            await asyncio.sleep(0.4)
            client.stop_tickler()
            await asyncio.sleep(0.1)
            return len([r for r in sim.requests if r.path == "/tickle"])

    ticks = asyncio.run(main())
    assert ticks >= 2
