"""The main workflow of a trading program, end to end, through ibkr_sdk (`make demo`, `ibkr-sdk demo`).

Steps: auth status -> accounts -> conids by StockQuery -> snapshot -> daily history for five symbols in parallel ->
a bracket order through the question/reply flow (and the same with auto_suppress) -> live orders -> positions after
the fill -> cancel the open child -> logout. Without `--url` it runs offline against the embedded gateway simulator;
with `--url` it PLACES ORDERS on that gateway (use a paper account).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Run the example trading workflow: auth status, accounts, conids by StockQuery, a snapshot, daily "
            "history in parallel, a bracket order through the question/reply flow (and again with auto_suppress), "
            "live orders, positions, a cancel and logout. Without --url it runs offline against the embedded "
            "gateway simulator. With --url it PLACES ORDERS on that gateway: use a paper account. The connection "
            "environment variables are deliberately not read here, so the demo never trades by accident."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("--url", help="base URL of a real gateway; omit to use the embedded simulator")
    parser.add_argument("--account", default="DU1234567", help="account to use (default DU1234567)")
    parser.add_argument(
        "--cacert", metavar="PATH", help="CA bundle of the gateway (default: accept its self-signed cert)"
    )
    return parser


def main(args: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the workflow from the command line (`ibkr-sdk demo`, `make demo`); returns the exit status."""
    options = _parser(prog).parse_args(args)
    if options.url:
        run_workflow(options.url, options.account, options.cacert or False)
        return 0
    from ..simulator import Simulator

    with Simulator(pacing=True, accounts=[options.account]) as sim:
        print(f"embedded gateway simulator listening at {sim.url}")
        run_workflow(sim.url, options.account, False)
        rejected = sum(1 for r in sim.requests if r.status == 429)
        print(f"\n{len(sim.requests)} requests served by the simulator, {rejected} answered 429 (pacing).")
    return 0


_DEMO_FIELDS = ["55", "31", "84", "86"]  # symbol, last, bid, ask


class _RoundTrips(logging.Handler):
    """Counts the order and reply requests a client sends, from its DEBUG request log."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith("-> POST") and ("/orders" in text or "/iserver/reply/" in text):
            self.count += 1


@contextlib.contextmanager
def _counting() -> Iterator[_RoundTrips]:
    counter = _RoundTrips()
    log = logging.getLogger("ibkr_sdk")
    old_level = log.level
    log.addHandler(counter)
    log.setLevel(logging.DEBUG)
    try:
        yield counter
    finally:
        log.removeHandler(counter)
        log.setLevel(old_level)


def _step(title: str) -> None:
    print(f"\n== {title}")


def _bracket(conid: int, ask: float, quantity: int, tag: str) -> list[Any]:
    """A marketable limit entry with a take-profit (+5 %) and a stop-loss (-5 %) attached."""
    from .orders import OrderRequest

    parent = OrderRequest(
        conid=conid,
        side="BUY",
        quantity=quantity,
        order_type="LMT",
        price=round(ask * 1.001, 2),
        tif="DAY",
        coid=f"demo-{tag}-{int(time.time() * 1000)}",
    )
    take_profit = OrderRequest(
        conid=conid,
        side="SELL",
        quantity=quantity,
        order_type="LMT",
        price=round(ask * 1.05, 2),
        tif="GTC",
        parent_id=parent.coid,
    )
    stop_loss = OrderRequest(
        conid=conid,
        side="SELL",
        quantity=quantity,
        order_type="STP",
        price=round(ask * 0.95, 2),
        tif="GTC",
        parent_id=parent.coid,
    )
    return [parent, take_profit, stop_loss]


def _start_stream(client: Any, conid: int) -> tuple[Any, Any] | None:
    """A WebSocket client on the same session, streaming `conid` and live orders; None when the socket is not
    available (the `stream` extra is not installed, or the gateway refuses)."""
    try:
        from .ws import IbkrWsClient, MarketDataSubscription, OrdersSubscription, QueueSink
    except ImportError as exc:  # pragma: no cover - the stream extra is missing
        print(f"  streaming skipped: {exc}")
        return None
    sink = QueueSink()
    ws = IbkrWsClient(ibkr_client=client, sink=sink, account_id=client.account_id, connect_timeout=5)
    try:
        if not ws.start():
            print(f"  streaming skipped: the WebSocket session did not become ready: {ws.last_failure}")
            ws.shutdown()
            return None
    except ImportError as exc:  # websockets missing: the message names the extra to install
        print(f"  streaming skipped: {exc}")
        ws.shutdown()
        return None
    ws.subscribe(OrdersSubscription())
    quotes = ws.subscribe(MarketDataSubscription(conid=str(conid), fields=_DEMO_FIELDS))
    if not quotes.wait(5):
        print(f"  market data subscription {quotes.binding_key}: {quotes.status}")
    return ws, sink


def _print_quotes(sink: Any, seconds: float, limit: int = 6) -> None:
    from .ws import events

    deadline = time.monotonic() + seconds
    shown = 0
    while (remaining := deadline - time.monotonic()) > 0:
        event = sink.get(events.MarketData, block=True, timeout=remaining)
        if event is None or event.quote is None:
            continue
        if shown < limit:
            quote = event.quote
            print(
                f"  {quote.get('55', quote.conid)!s:6s} last {quote.get('31', '-'):>9s}  bid {quote.get('84', '-'):>9s}"
                f"  ask {quote.get('86', '-'):>9s}   (frame changed {', '.join(sorted(event.fields))})"
            )
        shown += 1
    print(f"  {shown} updates in {seconds:.0f} s, each merged into the current quote")


def _print_order_updates(sink: Any, seconds: float) -> None:
    from .ws import events

    deadline = time.monotonic() + seconds
    seen = 0
    while (remaining := deadline - time.monotonic()) > 0:
        event = sink.get(events.Orders, block=True, timeout=remaining)
        if event is None:
            continue
        for order in event.data.get("args") or []:
            seen += 1
            print(
                f"  socket: order {order.get('orderId')} {order.get('side', ''):4s} {order.get('status', '?'):13s}"
                f" filled {order.get('filledQuantity', '-')}"
            )
    if not seen:
        print("  (no order updates arrived over the socket)")


def run_workflow(url: str, account_id: str, verify: str | bool) -> None:
    """The main workflow of a trading program, step by step, printing what each step got (PLACES ORDERS)."""
    from .client import IbkrClient
    from .orders import QuestionType
    from .stock_query import StockQuery

    symbols: list[str | StockQuery] = [
        StockQuery("AAPL", contract_conditions={"exchange": "NASDAQ"}),
        "MSFT",
        "IBM",
        "SPY",
        "NVDA",
    ]
    answers: dict[QuestionType | str, bool] = {
        QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True,
        QuestionType.MISSING_MARKET_DATA: True,
    }
    client = IbkrClient(url=url, account_id=account_id, cacert=verify)

    _step("Authentication status")
    status = client.authentication_status().data
    print(
        f"authenticated={status.get('authenticated')} connected={status.get('connected')} "
        f"competing={status.get('competing')}"
    )

    _step("Accounts")
    accounts = client.receive_brokerage_accounts().data
    print(f"accounts: {accounts.get('accounts')}  selected: {accounts.get('selectedAccount')}")

    _step("Conids by StockQuery (US listings unless a query says otherwise)")
    conids: dict[str, int] = client.stock_conid_by_symbol(symbols).data
    for symbol, conid in conids.items():
        print(f"  {symbol:6s} {conid}")

    _step("Snapshot (the pre-flight request is repeated until the fields arrive)")
    snapshot = client.snapshot_until_ready([str(c) for c in conids.values()], _DEMO_FIELDS, interval=0.2).data
    quotes = {int(row["conid"]): row for row in snapshot}
    print(f"  {'symbol':6s} {'last':>9s} {'bid':>9s} {'ask':>9s}")
    for conid, row in quotes.items():
        print(
            f"  {row.get('55', conid)!s:6s} {row.get('31', '-'):>9s} {row.get('84', '-'):>9s} {row.get('86', '-'):>9s}"
        )

    _step("Daily history for five symbols, in parallel (at most 5 requests in flight)")
    started = time.perf_counter()
    history = client.marketdata_history_by_conids(
        {symbol: str(conid) for symbol, conid in conids.items()}, period="1m", bar="1d"
    )
    elapsed = time.perf_counter() - started
    for symbol, bars in history.items():
        if isinstance(bars, Exception):
            print(f"  {symbol:6s} failed: {bars}")
        elif bars:
            print(f"  {symbol:6s} {len(bars):3d} bars, last close {bars[-1]['close']} on {bars[-1]['date']:%Y-%m-%d}")
        else:
            print(f"  {symbol:6s} no bars")
    print(f"  ({elapsed:.2f} s)")

    aapl = conids["AAPL"]
    ask = float(str(quotes[aapl].get("86") or quotes[aapl].get("31")).lstrip("CH"))

    _step("Streaming AAPL quotes over the WebSocket (live orders subscribed too)")
    stream = _start_stream(client, aapl)
    if stream is not None:
        _print_quotes(stream[1], 3.0)

    _step("Bracket order through the question/reply flow")
    with _counting() as plain:
        placed = client.place_order(_bracket(aapl, ask, 10, "a"), answers).data
    for ack in placed:
        print(f"  order {ack.get('order_id')}: {ack.get('order_status')}")
    print(f"  round trips (order + replies): {plain.count}")
    if stream is not None:
        _print_order_updates(stream[1], 1.5)

    _step("The same bracket with auto_suppress (approved questions suppressed for the session)")
    smart = IbkrClient(url=url, account_id=account_id, cacert=verify, auto_suppress=True)
    with _counting() as suppressed:
        smart.place_order(_bracket(aapl, ask, 5, "b"), answers)
    print(
        f"  round trips with auto_suppress: {suppressed.count} (without: {plain.count}); "
        f"one suppress request was sent first"
    )
    smart.close()

    _step("Live orders")
    live = client.live_orders().data.get("orders", [])
    for order in live:
        print(
            f"  {order.get('orderId')}  {order.get('side'):4s} {order.get('orderDesc', ''):32s} "
            f"{order.get('status'):13s} cOID={order.get('order_ref')}"
        )

    _step("Positions after the fill")
    for position in client.positions_all().data:
        print(f"  {position.get('contractDesc')}: {position.get('position')} @ {position.get('avgCost')}")

    _step("Cancel the open take-profit child of the first bracket")
    first_parent = placed[0].get("order_id")
    children = [
        o
        for o in live
        if str(o.get("parentId")) == str(first_parent) and o.get("status") in ("Submitted", "PreSubmitted")
    ]
    take_profit = next((o for o in children if o.get("side") == "SELL" and "Limit" in str(o.get("orderType"))), None)
    if take_profit is None:
        print("  no open child found")
    else:
        answer = client.cancel_order(str(take_profit["orderId"])).data
        print(f"  cancel {take_profit['orderId']}: {answer.get('msg')}")
        time.sleep(0.2)
        order_status = client.order_status(str(take_profit["orderId"])).data
        print(f"  status now: {order_status.get('order_status')}")

    if stream is not None:
        _print_order_updates(stream[1], 1.0)
        print(f"  streaming: {stream[0].stats()['frames']} frames; stopping: {stream[0].shutdown()}")

    _step("Logout")
    print(f"  {client.logout().data}")
    client.close()
