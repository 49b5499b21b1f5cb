"""Migration: a trading script written the way ibind 0.2.2's users write it (its README and examples' idioms, our
own code) runs against the simulator with only its import changed, and every step does what the script expects.

The script below is what a user has; `IMPORTS` is the one line they change. Each step is a function so a failure
names the step. The simulator's universe today is AAPL, MSFT, NVDA, AMZN, IBM and SPY (plus futures, an AAPL option
chain and EUR.USD); the peer's own examples also use GOOG, TSLA, HUBS, META, NFLX and the SPX index, which the
simulator does not list yet.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from typing import Any

import pytest

# The one line a migrating user changes: `from ibind import ...` -> `from ibkr_sdk import ...`.
from ibkr_sdk import (
    ExternalBrokerError,
    IbkrClient,
    OrderRequest,
    QuestionType,
    Result,
    StockQuery,
    execute_in_parallel,
    ibind_logs_initialize,
    question_type_to_message_id,
    snapshot_keys_to_ids,
)
from ibkr_sdk.simulator import Simulator

ACCOUNT = "DU1234567"
AAPL, MSFT, IBM = 265598, 272093, 8314

# The answers an ibind user keeps in one place and passes to every order.
ANSWERS = {
    QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True,
    QuestionType.ORDER_VALUE_LIMIT: True,
    QuestionType.MISSING_MARKET_DATA: True,
    QuestionType.TRIGGER_AND_FILL: True,
    QuestionType.STOP_ORDER_RISKS: True,
    "You are about to submit a stop order": True,  # ibind users also answer by a fragment of the text
}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


@pytest.fixture
def client(sim: Simulator) -> Iterator[IbkrClient]:
    # As in ibind's examples: url and account from the environment or given, self-signed certificate accepted.
    c = IbkrClient(url=sim.url, account_id=ACCOUNT, cacert=False, timeout=10, use_session=True, pacing=False)
    yield c
    c.close()


# ---- the user's script, step by step -------------------------------------------------------------------------


def step_logging(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    from ibkr_sdk.lib.logs import reset_logs

    out = io.StringIO()
    with redirect_stdout(out):
        ibind_logs_initialize(log_to_file=False, log_level="INFO")
        try:
            logging.getLogger("ibkr_sdk").info("account %s ready", ACCOUNT)
        finally:
            reset_logs()
    assert "ready" in out.getvalue() and ACCOUNT not in out.getvalue()  # account ids masked


def step_health(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    assert client.check_health()
    assert client.tickle().data["iserver"]["authStatus"]["authenticated"]
    status = client.authentication_status()
    assert status.data["authenticated"] and status.data["connected"] and not status.data["competing"]
    assert client.handle_auth_status()


def step_accounts(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    accounts = client.portfolio_accounts().data
    assert accounts[0]["id"] == ACCOUNT
    assert ACCOUNT in client.receive_brokerage_accounts().data["accounts"]


def step_ledger(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    ledger = client.get_ledger().data
    assert "BASE" in ledger and "USD" in ledger
    state["cash_before"] = ledger["USD"]["cashbalance"]


def step_stock_query(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    queries = [
        StockQuery("AAPL", contract_conditions={"exchange": "NASDAQ"}),
        StockQuery("MSFT", contract_conditions={"isUS": True}),  # MSFT is listed abroad too, as on IBKR
        StockQuery("IBM", name_match="INTL BUSINESS"),
    ]
    result = client.stock_conid_by_symbol(queries, default_filtering=False)
    assert result.data == {"AAPL": AAPL, "MSFT": MSFT, "IBM": IBM}
    assert result.parsed().root == result.data  # the typed view works on the reshaped answer too
    state["conids"] = result.data


def step_snapshot_by_symbol(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    fields = snapshot_keys_to_ids(["last_price", "bid_price", "ask_price", "symbol"])
    snapshot = client.live_marketdata_snapshot_by_symbol(["AAPL", "MSFT"], fields=fields)
    assert set(snapshot) == {"AAPL", "MSFT"}
    for symbol, entry in snapshot.items():
        assert entry["symbol"] == symbol and float(entry["last_price"]) > 0
        assert float(entry["bid_price"]) <= float(entry["ask_price"])
    state["aapl_last"] = float(snapshot["AAPL"]["last_price"])


def step_history_by_symbols(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    history = client.marketdata_history_by_symbols(["AAPL", "MSFT", "IBM", "NOSUCHTICKER"], period="1w", bar="1d")
    assert set(history) == {"AAPL", "MSFT", "IBM"}  # the unknown ticker is logged and left out, as in ibind
    for bars in history.values():
        assert bars and {"open", "high", "low", "close", "volume", "date"} <= set(bars[0])


def step_options(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    sections = client.search_contract_by_symbol("AAPL").data[0]["sections"]
    month = next(s for s in sections if s["secType"] == "OPT")["months"].split(";")[0]
    strikes = client.search_strikes_by_conid(str(AAPL), "OPT", month).data
    strike = strikes["call"][len(strikes["call"]) // 2]  # a float, passed on as it came
    info = client.search_secdef_info_by_conid(str(AAPL), "OPT", month, strike=strike, right="C").data
    assert info and info[0]["strike"] == strike and info[0]["right"] == "C"


def step_whatif(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    order = OrderRequest(AAPL, "BUY", 10, "LMT", ACCOUNT, price=round(state["aapl_last"] * 0.9, 2), tif="DAY")
    preview = client.whatif_order(order)  # the client's account by default
    assert "amount" in preview.data and "equity" in preview.data
    assert not [o for o in sim.orders if o.conid == AAPL]  # a preview places nothing


def step_place_modify_cancel(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    price = round(state["aapl_last"] * 0.9, 2)  # far below the market: stays open
    order = OrderRequest(AAPL, "BUY", 10, "LMT", ACCOUNT, price=price, coid="migration-aapl-1")
    placed = client.place_order(order, ANSWERS)
    order_id = placed.data["order_id"]  # one order: its acknowledgement, as in ibind
    assert placed.parsed().order_id == order_id  # the typed view of the reshaped answer
    [booked] = [o for o in sim.orders if o.coid == "migration-aapl-1"]
    assert booked.tif == "GTC" and booked.price == price  # ibind's default time in force, unchanged
    assert any(o["orderId"] == int(order_id) for o in client.live_orders(filters=["Submitted"]).data["orders"])

    new_price = round(price * 0.99, 2)
    modified = OrderRequest(AAPL, "BUY", 10, "LMT", ACCOUNT, price=new_price, coid="migration-aapl-1")
    client.modify_order(order_id, modified, ANSWERS)
    assert [o.price for o in sim.orders if o.coid == "migration-aapl-1"] == [new_price]

    cancelled = client.cancel_order(order_id)
    assert cancelled.data["order_id"] == order_id or str(cancelled.data.get("order_id")) == str(order_id)
    assert [o.status for o in sim.orders if o.coid == "migration-aapl-1"] == ["Cancelled"]


def step_unanswered_question(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    order = OrderRequest(IBM, "BUY", 1, "MKT", ACCOUNT)
    try:
        client.place_order(order, answers={})
    except RuntimeError as exc:  # what ibind raises when a question is not approved
        assert "o354" in str(exc) or "market data" in str(exc).lower()
    else:
        raise AssertionError("an order with an unapproved question was placed")
    assert not [o for o in sim.orders if o.conid == IBM]


def step_market_order_and_positions(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    assert question_type_to_message_id(QuestionType.MISSING_MARKET_DATA) == "o354"
    order = OrderRequest(MSFT, "BUY", 3, "MKT", ACCOUNT, tif="DAY", coid="migration-msft-1")
    placed = client.place_order(order, ANSWERS)
    assert isinstance(placed, Result) and placed.data["order_status"]
    assert placed.request["method"] == "POST" and "/iserver/" in placed.request["url"]
    positions = client.positions().data
    assert any(p["conid"] == MSFT and p["position"] == 3 for p in positions)


def step_result_fields(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    result = client.portfolio_accounts()
    assert isinstance(result.data, list) and result.request["method"] == "GET"
    assert result.request["url"].endswith("/portfolio/accounts")
    copy = result.copy(data={"replaced": True})
    assert copy.data == {"replaced": True} and copy.request == result.request


def step_error_status_code(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    try:
        client.get("iserver/no/such/endpoint")
    except ExternalBrokerError as exc:
        assert exc.status_code in (404, 501)
    else:
        raise AssertionError("an unknown endpoint answered")


def step_execute_in_parallel(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    requests = {
        symbol: {"kwargs": {"conid": str(conid), "bar": "1d", "period": "1w"}}
        for symbol, conid in state["conids"].items()
    }
    results = execute_in_parallel(client.marketdata_history_by_conid, requests=requests, max_workers=3)
    assert set(results) == set(state["conids"])
    assert all(isinstance(r, Result) and r.data["data"] for r in results.values())


def step_escape_hatch(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    accounts = client.get("iserver/accounts")
    assert ACCOUNT in accounts.data["accounts"]
    status = client.post("iserver/auth/status", params={})
    assert status.data["authenticated"] is True
    sent = [r for r in sim.requests if r.path in ("/iserver/accounts", "/iserver/auth/status")]
    assert {(r.method, r.path) for r in sent} >= {("GET", "/iserver/accounts"), ("POST", "/iserver/auth/status")}


def step_tickler_and_deprecated_health(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    client.start_tickler(interval=60)
    client.stop_tickler(timeout=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        assert client.handle_health_status()
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def step_close_session(client: IbkrClient, sim: Simulator, state: dict[str, Any]) -> None:
    client.close_session()
    assert client.check_auth_status()  # a new connection is opened on the next request
    client.make_session()
    assert client.tickle().data["session"]


SCRIPT: list[Callable[[IbkrClient, Simulator, dict[str, Any]], None]] = [
    step_logging,
    step_health,
    step_accounts,
    step_ledger,
    step_stock_query,
    step_snapshot_by_symbol,
    step_history_by_symbols,
    step_options,
    step_whatif,
    step_place_modify_cancel,
    step_unanswered_question,
    step_market_order_and_positions,
    step_result_fields,
    step_error_status_code,
    step_execute_in_parallel,
    step_escape_hatch,
    step_tickler_and_deprecated_health,
    step_close_session,
]


def test_an_ibind_script_runs_with_only_the_import_changed(client: IbkrClient, sim: Simulator) -> None:
    state: dict[str, Any] = {}
    failures = []
    for step in SCRIPT:
        try:
            step(client, sim, state)
        except Exception as exc:
            failures.append(f"{step.__name__}: {type(exc).__name__}: {exc}")
            break  # later steps build on earlier ones
    assert failures == [], "\n".join(failures)
    assert len(SCRIPT) == 18
