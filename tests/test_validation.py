"""Bad input is refused with a ValueError naming the method and the parameter, and nothing is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codegen.load import load_catalogue
from codegen.model import Endpoint, Param
from ibkr_sdk import IbkrClient, RequestValidationError
from tests.recording_server import RecordingServer

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = load_catalogue(ROOT / "spec")


def _valid_call(endpoint: Endpoint) -> dict[str, Any]:
    """The first example's arguments: a call the spec says is valid."""
    return dict(endpoint.examples[0].call)


def _with(endpoint: Endpoint, param: Param, value: Any) -> dict[str, Any]:
    call = _valid_call(endpoint)
    call[param.name] = value
    return call


def _cases(predicate: Any, bad_value: Any) -> list[Any]:
    return [
        pytest.param(e, p, bad_value(p), id=f"{e.name}.{p.name}")
        for e in CATALOGUE.endpoints
        for p in e.params
        if predicate(e, p)
    ]


# Values wrong by meaning, not merely by Python type (a digit string is a valid int, a number a valid str).
WRONG_TYPE = {
    "str": True,
    "int": "12 shares",
    "float": "n/a",
    "bool": "yes",
    "datetime": "yesterday",
    "object": ["not", "a", "dict"],
    "array": "not-a-list",
}

CASES = (
    _cases(lambda e, p: p.required, lambda p: None)
    + _cases(lambda e, p: p.enum is not None and p.type == "str", lambda p: "XYZ_NOT_ALLOWED")
    + _cases(lambda e, p: p.pattern is not None, lambda p: "7x?")
    + _cases(lambda e, p: p.type in WRONG_TYPE, lambda p: WRONG_TYPE[p.type])
    + _cases(lambda e, p: p.many is not None, lambda p: [])
    + _cases(lambda e, p: p.type in ("int", "float"), lambda p: float("nan"))
    + _cases(lambda e, p: p.type in ("int", "float"), lambda p: True)
    + _cases(lambda e, p: p.type == "int", lambda p: 2.5)
    + _cases(lambda e, p: p.type in ("str", "int", "float") and p.many is None, lambda p: {"a": 1})
)


@pytest.mark.parametrize(("endpoint", "param", "bad"), CASES)
def test_bad_argument_is_refused_before_sending(
    client: IbkrClient, recorder: RecordingServer, endpoint: Endpoint, param: Param, bad: Any
) -> None:
    with pytest.raises(ValueError) as info:
        getattr(client, endpoint.method_name)(**_with(endpoint, param, bad))
    assert isinstance(info.value, RequestValidationError)
    assert info.value.method == endpoint.name
    assert info.value.param == param.name
    message = str(info.value)
    assert endpoint.name in message and repr(param.name) in message
    assert recorder.requests == [], "nothing may be sent for a refused call"


def test_missing_default_account_is_refused(recorder: RecordingServer) -> None:
    filled = [e for e in CATALOGUE.endpoints if any(p.fill == "account_id" for p in e.params)]
    if not filled:
        pytest.skip("no endpoint fills the account id yet")
    with IbkrClient(url=recorder.url, max_retries=0, auto_preflight=False) as c:
        c.account_id = None
        e = filled[0]
        p = next(p for p in e.params if p.fill == "account_id")
        call = {k: v for k, v in _valid_call(e).items() if k != p.name}
        with pytest.raises(RequestValidationError, match="account_id"):
            getattr(c, e.method_name)(**call)
    assert recorder.requests == []


def test_bool_rejects_truthy_strings(client: IbkrClient, recorder: RecordingServer) -> None:
    with pytest.raises(
        ValueError, match=r"initialize_brokerage_session\(\): parameter 'compete' must be True or False"
    ):
        client.initialize_brokerage_session(compete="false")  # type: ignore[arg-type]
    assert recorder.requests == []
