"""Every catalogue example, called through the generated client against the gateway simulator: the exact method,
path, query and JSON body must arrive. The expected wire is written by hand in the spec, independent of the
generator and the runtime. Each endpoint is thereby exercised through the simulator, which answers it (modelled)
or says 501 naming it (not modelled)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codegen.load import load_catalogue
from ibkr_sdk import IbkrClient, IbkrError
from ibkr_sdk.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = load_catalogue(ROOT / "spec")
CASES = [pytest.param(e, i, ex, id=f"{e.name}[{i}]") for e in CATALOGUE.endpoints for i, ex in enumerate(e.examples)]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


@pytest.fixture(scope="module")
def sim_client(sim: Simulator) -> Iterator[IbkrClient]:
    with IbkrClient(url=sim.url, account_id="DU1234567", max_retries=0, pacing=False, auto_preflight=False) as c:
        c.receive_brokerage_accounts()  # the gateway's accounts-first rule, once per session
        yield c


def _modelled() -> set[str]:
    import ibkr_sdk.simulator._server  # noqa: F401  (registers the handlers)
    from ibkr_sdk.simulator._core import HANDLERS

    return set(HANDLERS)


@pytest.fixture(scope="module")
def oauth2_sim() -> Iterator[Simulator]:
    """IBKR's hosted API with OAuth 2.0: /gw/api/v1 answers only bearer requests, SIGNED_JWT bodies are verified."""
    with Simulator(oauth2=True) as s:
        yield s


@pytest.fixture(scope="module")
def oauth2_client(oauth2_sim: Simulator) -> Iterator[IbkrClient]:
    config = oauth2_sim.oauth2_config(init_brokerage_session=False, maintain_oauth=False, shutdown_oauth=False)
    with IbkrClient(
        use_oauth=True, oauth_config=config, cacert=False, max_retries=0, pacing=False, auto_preflight=False
    ) as c:
        yield c


@pytest.mark.parametrize(("endpoint", "index", "example"), CASES)
def test_example_reaches_the_wire_exactly(
    request: pytest.FixtureRequest, endpoint: Any, index: int, example: Any
) -> None:
    # /gw/api/v1 exists only with OAuth 2.0: those examples go through an OAuth 2.0 client (signed bodies included)
    gw = endpoint.base != "/v1/api"
    sim: Simulator = request.getfixturevalue("oauth2_sim" if gw else "sim")
    sim_client: IbkrClient = request.getfixturevalue("oauth2_client" if gw else "sim_client")
    sim.login()  # an earlier example may have logged out
    sim.clear_requests()
    try:
        result = getattr(sim_client, endpoint.method_name)(**example.call)
    except IbkrError:
        result = None  # e.g. an example for another account: the request itself is what is checked here
    if endpoint.name == "create_sso_session":  # the raw request: the client signs the session JWT itself
        assert result is None or result.data is not None
    assert len(sim.requests) == 1, "exactly one request per call"
    got = sim.requests[0]
    assert got.endpoint == endpoint.name
    assert got.base == endpoint.base
    if endpoint.signed_body:
        assert got.headers.get("content-type") == "application/jwt", "the body travels as a signed JWT"
        assert got.status not in (401, 415), "the simulator verified the signature with the registered key"
    assert (got.method, got.path) == (example.method, example.path)
    assert got.query == example.query
    assert got.body == example.body
    if endpoint.name in _modelled():
        assert got.status != 501
    else:
        assert got.status == 501 and result is None
    if result is not None:
        assert result.endpoint == endpoint.name and result.request is not None
        assert result.request["method"] == example.method


def test_every_endpoint_has_an_example() -> None:
    assert all(e.examples for e in CATALOGUE.endpoints)


def test_every_endpoint_is_modelled() -> None:
    assert sorted(e.name for e in CATALOGUE.endpoints if e.name not in _modelled()) == []


def test_unmodelled_endpoints_answer_501_naming_the_endpoint(
    sim: Simulator, sim_client: IbkrClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ibkr_sdk.simulator._core import HANDLERS

    monkeypatch.delitem(HANDLERS, "tickle")  # as if the simulator did not model it
    with pytest.raises(IbkrError) as info:
        sim_client.tickle()
    assert "501" in str(info.value) and "tickle" in str(info.value)
