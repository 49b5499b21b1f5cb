"""Schemathesis over every operation of docs/openapi.json against the simulator: no crash, no answer off its schema.

A bounded run (a fixed seed, a few examples per operation) so it stays well under a minute. It checks both sides:
the simulator answers any input, valid or not, without crashing (bad input gets an IBKR-style 4xx), and every answer
it gives matches the schema the OpenAPI export declares for it (so the export does not reject valid answers).

Allowed 5xx answers are the ones IBKR's gateway gives and the simulator models on purpose: 500 "Please query
/accounts first", 500 for an unknown alert id, 503 and the like, always a JSON `{"error": ...}`. A simulator crash is
a 500 whose message starts with "simulator error" (and is logged): never allowed. 501 marks an endpoint the simulator
does not model yet.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (the dev extra) is not installed")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402 - after the importorskip above
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
)

from ibkr_sdk.simulator import Simulator  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEED = 1
EXAMPLES = 3
# The examples and fuzzing phases (valid and invalid input), a few cases each; other methods than the declared ones
# are covered by test_other_methods_get_a_json_405 below instead of the (unbounded) coverage phase.
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": EXAMPLES, "mode": "all", "database": "none"},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        # The simulator's account and a contract it knows, so that answers other than "unknown account" get checked
        # against their schemas too; every other value is generated.
        "parameters": {"path.accountId": "DU1234567", "path.conid": "265598", "query.conid": "265598"},
    }
)
SCHEMA = schemathesis.openapi.from_path(ROOT / "docs/openapi.json", config=CONFIG)
_DOCUMENT = json.loads((ROOT / "docs/openapi.json").read_text("utf-8"))
# Paths of IBKR's Account Management API carry their own `servers` (/gw/api/v1 beside /v1/api on the same host).
GW_PATHS = {path for path, item in _DOCUMENT["paths"].items() if "servers" in item}


def _base(sim: Simulator, path: str) -> str:
    return sim.gw_url.rstrip("/") if path in GW_PATHS else sim.url.rstrip("/")


CHECKS = [response_schema_conformance, content_type_conformance]


class _Crashes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def fuzz_sim() -> Iterator[tuple[Simulator, requests.Session, _Crashes]]:
    crashes = _Crashes()
    log = logging.getLogger("ibkr_sdk.simulator")
    log.addHandler(crashes)
    sim = Simulator(seed=1).start()
    http = requests.Session()
    try:
        _open_session(sim, http)
        yield sim, http, crashes
    finally:
        http.close()
        sim.stop()
        log.removeHandler(crashes)


def _open_session(sim: Simulator, http: requests.Session) -> None:
    """What a client does first: a brokerage session and the account list (the orders' preflight)."""
    base = sim.url.rstrip("/")
    http.post(f"{base}/iserver/auth/ssodh/init", json={"publish": True, "compete": True}, timeout=10)
    http.get(f"{base}/iserver/accounts", timeout=10)


def _crash(response: Any) -> str | None:
    """Why this answer is a crash rather than an IBKR-style error, or None."""
    if response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} without a JSON body: {response.text[:200]!r}"
    message = body.get("error") if isinstance(body, dict) else None
    if not isinstance(message, str):
        return f"{response.status_code} without an error message: {response.text[:200]!r}"
    if message.startswith("simulator error"):
        return f"{response.status_code} {message}"
    return None


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_simulator_under_fuzzing(case: Any, fuzz_sim: tuple[Simulator, requests.Session, _Crashes]) -> None:
    sim, http, crashes = fuzz_sim
    before = len(crashes.records)
    response = case.call(base_url=_base(sim, case.path), session=http, timeout=10)
    if response.status_code == 401 or case.path == "/logout":  # log in again (a user would), for the next cases
        sim.login()
        _open_session(sim, http)
    problem = _crash(response)
    assert problem is None, f"{case.method} {case.formatted_path}: {problem}"
    assert len(crashes.records) == before, crashes.records[before:]
    case.validate_response(response, checks=CHECKS)


def _paths() -> dict[str, set[str]]:
    """Each path of the export and its declared methods."""
    return {path: {m.upper() for m in ops if m != "servers"} for path, ops in sorted(_DOCUMENT["paths"].items())}


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "QUERY"])
def test_other_methods_get_a_json_405(method: str, fuzz_sim: tuple[Simulator, requests.Session, _Crashes]) -> None:
    sim, http, _ = fuzz_sim
    for path, declared in _paths().items():
        concrete = path.replace("{", "").replace("}", "")  # {conid} -> conid: any segment matches the template
        response = http.request(method, _base(sim, path) + concrete, timeout=10)
        assert response.status_code == 405, (method, path, response.status_code, response.text[:200])
        assert response.headers["Content-Type"].startswith("application/json")
        assert f"method {method} is not allowed here" in response.json()["error"]
        assert set(response.headers["Allow"].split(", ")) == declared, path  # RFC 9110: what this path accepts
