"""Embedded IBKR Client Portal Gateway simulator: a real HTTP server on 127.0.0.1 for tests and offline work.

    from ibkr_sdk import IbkrClient
    from ibkr_sdk.simulator import Simulator

    with Simulator() as sim:
        client = IbkrClient(url=sim.url, account_id="DU1234567")
        client.live_marketdata_snapshot(conids="265598", fields=["31", "84", "86"])  # pre-flight
        print(client.live_marketdata_snapshot(conids="265598", fields=["31", "84", "86"]).data)

Routes come from the endpoint catalogue; every catalogue endpoint is modelled (one without a handler would answer
501 naming it, never a made-up 200). Modelled: session and accounts (with the segment summaries, partitioned P&L
and dynamic accounts), contracts (a universe of the most traded US names, indices with option chains, futures and
currency pairs under IBKR's conids in `data/contracts.json`, with order rules, algos, currency pairs and rates,
trading schedules, bond filters), snapshots (also the billed regulatory one) and history, market scanners, orders
with IBKR's question/reply flow and the server-prompt acknowledgement, portfolio (with allocation, paged
sub-accounts, owners and the Portfolio Analyst reports), watchlists, alerts, FYI notifications, event (forecast)
contracts, OAuth 1.0a (with `oauth=`; without it the token requests answer 401), OAuth 2.0 (with `oauth2=True`: the
token endpoint, SSO sessions, bearer checks, signed bodies), IBKR's Account Management API under `/gw/api/v1` (accounts,
tasks, requests, instructions and transfers, statements, enumerations; see `_account_mgmt.py`), and, with
`Simulator(advisor=True)`, Financial Advisor allocation groups and model portfolios.
The WebSocket is served on the same port at `/v1/api/ws` (every topic of `spec/streams.yaml`; timing in
`Simulator.streaming`; needs the `[stream]` extra). Faults on demand: `Simulator.inject` (route `"ws"` for the
socket). pytest fixtures: `ibkr_sdk.simulator.pytest_plugin` (auto-loaded). Command line:
`python -m ibkr_sdk.simulator --port 5000`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._book import SimOrder
    from ._faults import FAULT_KINDS
    from ._oauth import OAuthAuthority, OAuthSettings
    from ._oauth2 import OAuth2Authority, OAuth2Settings
    from ._questions import OrderCheck, QuestionRule, default_question_rules
    from ._server import RequestRecord, Simulator
    from ._state import SessionEvent
    from ._stream import Burst, StreamSettings

__all__ = [
    "Burst",
    "FAULT_KINDS",
    "OAuth2Authority",
    "OAuth2Settings",
    "OAuthAuthority",
    "OAuthSettings",
    "OrderCheck",
    "QuestionRule",
    "RequestRecord",
    "SessionEvent",
    "SimOrder",
    "Simulator",
    "StreamSettings",
    "default_question_rules",
]

# Loaded on first use: pytest imports this package for the plugin in every run, which should cost next to nothing.
_EXPORTS = {
    "Burst": "._stream",
    "FAULT_KINDS": "._faults",
    "OAuth2Authority": "._oauth2",
    "OAuth2Settings": "._oauth2",
    "OAuthAuthority": "._oauth",
    "OAuthSettings": "._oauth",
    "OrderCheck": "._questions",
    "QuestionRule": "._questions",
    "RequestRecord": "._server",
    "SessionEvent": "._state",
    "SimOrder": "._book",
    "Simulator": "._server",
    "StreamSettings": "._stream",
    "default_question_rules": "._questions",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
