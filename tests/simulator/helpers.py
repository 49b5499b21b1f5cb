"""Helpers of the simulator tests: a settable clock, clients that fail fast, answering order questions.

Clients here send with `max_retries=0` (an error shows at once instead of after backoff) and, where the client
supports it, without client-side pacing (the simulator's own pacing is what the pacing tests exercise).
"""

from __future__ import annotations

import datetime as dt
import http.client
import inspect
import json
from typing import Any

from ibkr_sdk import IbkrClient
from ibkr_sdk.simulator import Simulator

# Wednesday 2026-11-25 18:00 UTC: inside US regular trading hours (14:30-21:00 UTC in the simulator).
T0 = dt.datetime(2026, 11, 25, 18, 0, tzinfo=dt.timezone.utc).timestamp()
AAPL = 265598
IBM = 8314
ACCOUNT = "DU1234567"


class Clock:
    """A settable clock for `Simulator(clock=...)`."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def make_client(sim: Simulator, **options: Any) -> IbkrClient:
    settings: dict[str, Any] = {"url": sim.url, "account_id": sim.accounts[0], "timeout": 5, "max_retries": 0}
    if "pacing" in inspect.signature(IbkrClient).parameters:
        settings["pacing"] = False
    settings.update(options)
    return IbkrClient(**settings)


def answer_all(client: IbkrClient, data: Any, confirmed: bool = True, limit: int = 10) -> tuple[Any, list[str]]:
    """Answer every question of an order placement; return the final answer and the message ids asked."""
    asked: list[str] = []
    for _ in range(limit):
        if isinstance(data, list) and data and isinstance(data[0], dict) and "messageIds" in data[0]:
            asked.extend(data[0]["messageIds"])
            data = client.reply(data[0]["id"], confirmed).data
            continue
        return data, asked
    raise AssertionError(f"more than {limit} questions")


def raw_request(sim: Simulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else None
    finally:
        conn.close()
