"""The simulator answers like the real gateway: for every recorded real answer in `../shared/realdata/samples/`, the
simulator's answer to the same call has the same shape (every key path of the real answer, with a compatible JSON
type). Values may differ (they depend on the account's state); keys that are ids (account ids, conids, dates) are
compared as wildcards.

How to call the simulator for each sample (setup requests, the call, the simulator's options) is in
`tests/data/realdata_calls.json`. The samples are reference data outside the project: without `../shared` (a fresh
clone) the tests skip with a message.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import raw_request

ROOT = Path(__file__).resolve().parent.parent
# ../shared next to the checkout (or next to a parent of it, for a git worktree), or $IBKR_SDK_REALDATA.
_CANDIDATES = [Path(os.environ["IBKR_SDK_REALDATA"])] if os.environ.get("IBKR_SDK_REALDATA") else []
_CANDIDATES += [parent / "shared" / "realdata" / "samples" for parent in ROOT.parents]
SAMPLES = next((p for p in _CANDIDATES if p.is_dir()), ROOT.parent / "shared" / "realdata" / "samples")
CALLS: dict[str, Any] = json.loads((ROOT / "tests" / "data" / "realdata_calls.json").read_text(encoding="utf-8"))
CALLS.pop("_comment", None)
T0 = dt.datetime(2026, 11, 25, 18, 0, tzinfo=dt.timezone.utc).timestamp()  # a Wednesday, US market open

# Keys that are identifiers, not field names: account ids (also "U1234567.Core"), conids, dates, order ids.
_ID_KEY = re.compile(r"^(?:[A-Z]{1,3}\d{5,}(?:\..*)?|DUMMY_ACCOUNT_ID\d*(?:\..*)?|All|\d+(?:\.\d+)?)$")


def _sample_ids() -> list[str]:
    if not SAMPLES.is_dir():
        return []
    return sorted(p.stem for p in SAMPLES.glob("*.json"))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shape(value: Any, wildcards: frozenset[str] = frozenset(), path: str = "$") -> dict[str, set[str]]:
    """Every key path of a JSON value with the JSON types seen there; list items merge under `[]`."""
    out: dict[str, set[str]] = {}

    def walk(v: Any, p: str) -> None:
        out.setdefault(p, set()).add(_kind(v))
        if isinstance(v, dict):
            for k, item in v.items():
                key = "*" if p in wildcards or _ID_KEY.match(k) else k
                walk(item, f"{p}.{key}")
        elif isinstance(v, list):
            for item in v:
                walk(item, f"{p}[]")

    walk(value, path)
    return out


def differences(
    real: Any,
    simulated: Any,
    wildcards: frozenset[str] = frozenset(),
    loose: frozenset[str] = frozenset(),
    optional: frozenset[str] = frozenset(),
) -> list[str]:
    """What the simulated answer lacks or types differently, compared with the real one."""
    want, got = shape(real, wildcards), shape(simulated, wildcards)
    problems = []
    for path, kinds in sorted(want.items()):
        if path not in got:
            if path in optional:
                continue
            problems.append(f"missing {path} ({'/'.join(sorted(kinds))})")
            continue
        have = got[path]
        if path in loose:
            continue
        wrong = (kinds - {"null"}) - have
        if wrong and have != {"null"}:
            problems.append(f"type of {path}: real {'/'.join(sorted(kinds))}, simulator {'/'.join(sorted(have))}")
    return problems


def _fill(text: Any, captured: dict[str, Any]) -> Any:
    if isinstance(text, str):
        for name, value in captured.items():
            if text == "{" + name + "}":
                return value
            text = text.replace("{" + name + "}", str(value))
        return text
    if isinstance(text, list):
        return [_fill(t, captured) for t in text]
    if isinstance(text, dict):
        return {k: _fill(v, captured) for k, v in text.items()}
    return text


def _pick(value: Any, where: str) -> Any:
    for part in where.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _send(sim: Simulator, step: dict[str, Any], captured: dict[str, Any]) -> tuple[int, Any]:
    method, path = _fill(step["call"], captured).split(" ", 1)
    status, answer = raw_request(sim, method, "/v1/api" + path, _fill(step.get("body"), captured))
    # Order questions of a placement are confirmed, as a script would.
    for _ in range(10):
        if not (step.get("confirm") and isinstance(answer, list) and answer and "messageIds" in answer[0]):
            break
        status, answer = raw_request(sim, "POST", f"/v1/api/iserver/reply/{answer[0]['id']}", {"confirmed": True})
    for name, where in step.get("capture", {}).items():
        captured[name] = _pick(answer, where)
    return status, answer


@pytest.fixture(scope="module")
def samples() -> dict[str, Any]:
    if not SAMPLES.is_dir():
        pytest.skip(f"the real gateway samples are not here ({SAMPLES}); they ship outside the project")
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in SAMPLES.glob("*.json")}


@pytest.fixture
def fresh() -> Iterator[dict[str, Simulator]]:
    made: dict[str, Simulator] = {}
    yield made
    for s in made.values():
        s.stop()


def _simulator(made: dict[str, Simulator], options: dict[str, Any]) -> Simulator:
    key = json.dumps(options, sort_keys=True)
    if key not in made:
        made[key] = Simulator(clock=lambda: T0, hmds_warmup=False, **options).start()
    return made[key]


def test_every_sample_has_a_call() -> None:
    ids = _sample_ids()
    if not ids:
        pytest.skip(f"the real gateway samples are not here ({SAMPLES}); they ship outside the project")
    assert sorted(set(ids) - set(CALLS)) == []
    assert sorted(set(CALLS) - set(ids)) == []


@pytest.mark.parametrize("sample_id", sorted(CALLS))
def test_simulator_answer_has_the_real_shape(
    samples: dict[str, Any], fresh: dict[str, Simulator], sample_id: str
) -> None:
    sample = samples[sample_id]
    plan = CALLS[sample_id]
    sim = _simulator(fresh, plan.get("simulator", {}))
    raw_request(sim, "GET", "/v1/api/iserver/accounts")  # the gateway's accounts-first rule
    captured: dict[str, Any] = {}
    for step in plan.get("setup", []):
        status, answer = _send(sim, step, captured)
        assert status == 200, (step, answer)
    status, answer = _send(sim, plan, captured)
    assert status == plan.get("status", 200), answer
    problems = differences(
        sample["response"],
        answer,
        frozenset(plan.get("wildcards", [])),
        frozenset(plan.get("loose", [])),
        frozenset(plan.get("optional", [])),
    )
    assert problems == [], f"{sample_id}: the simulator's answer differs from the real one:\n" + "\n".join(problems)
