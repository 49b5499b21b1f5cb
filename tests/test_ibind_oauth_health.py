"""`handle_auth_status` with OAuth, as in the peer: an unhealthy session is re-established with a new live session
token and brokerage session, against the simulator's OAuth authority."""

from __future__ import annotations

from typing import Any

import pytest

from ibkr_sdk.lib import compat
from ibkr_sdk.simulator import Simulator
from tests.test_oauth_e2e import _client, keys, sim  # noqa: F401 - fixtures


def test_handle_auth_status_renews_the_oauth_session(
    sim: Simulator,  # noqa: F811
    keys: dict[str, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compat, "HEALTH_RETRY_INTERVAL", 0.0)
    sim.open_delay = 0.0  # the brokerage session opens with ssodh/init: the checks below follow at once
    with _client(sim, keys) as client:
        assert client.handle_auth_status() is True
        sim.logout()
        sim.clear_requests()
        assert client.handle_auth_status() is False  # unhealthy now; re-established for the next check
        paths = [r.path for r in sim.requests]
        # Three checks (the first one's 401 already renews the token and is sent again), then the peer's remedy:
        # a new live session token and brokerage session.
        assert paths.count("/iserver/auth/status") == 4
        assert paths[-2:] == ["/oauth/live_session_token", "/iserver/auth/ssodh/init"]
        assert client.handle_auth_status() is True
