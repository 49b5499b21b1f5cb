"""Market data helpers: snapshots by symbol (with the pre-flight repeat), history for many contracts in parallel,
and per-contract unsubscribe.

Why hand-written: these combine several requests (conid lookup, repeated snapshots, up to five concurrent history
requests) and post-process the answers; the catalogue describes only the single requests they are made of.
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from .._client_base import GeneratedEndpoints
from .errors import ExternalBrokerError, RequestValidationError, StockQueryError
from .flow import Flow, run
from .result import Result
from .snapshot_fields import SNAPSHOT_FIELDS, name_snapshot_fields
from .stock_query import StockQueries, StockQuery, StockQueryOverlay, as_queries
from .types import OneOrMany

logger = logging.getLogger("ibkr_sdk")

HISTORY_MAX_IN_FLIGHT = 5  # IBKR's limit of concurrent /iserver/marketdata/history requests
SNAPSHOT_ATTEMPTS = 5
SNAPSHOT_INTERVAL = 0.5


def clean_bars(data: Any) -> list[dict[str, Any]]:
    """History bars `{o, h, l, c, v, t}` → `{open, high, low, close, volume, date}` with `date` a UTC datetime."""
    bars = data.get("data") if isinstance(data, Mapping) else None
    out = []
    for bar in bars or []:
        out.append(
            {
                "open": bar.get("o"),
                "high": bar.get("h"),
                "low": bar.get("l"),
                "close": bar.get("c"),
                "volume": bar.get("v"),
                "date": datetime.datetime.fromtimestamp(bar["t"] / 1000, tz=datetime.timezone.utc),
            }
        )
    return out


def snapshot_until_ready_flow(
    api: Any, conids: OneOrMany[str], fields: OneOrMany[str], attempts: int, interval: float
) -> Flow[Result]:
    wanted = [str(f) for f in ([fields] if isinstance(fields, (str, int)) else fields)]
    result: Result = yield api.live_marketdata_snapshot(conids=conids, fields=fields)
    for _ in range(max(0, attempts - 1)):
        entries = result.data if isinstance(result.data, list) else []
        if entries and all(all(f in e for f in wanted) for e in entries if isinstance(e, Mapping)):
            break
        yield api._sleep(interval)
        result = yield api.live_marketdata_snapshot(conids=conids, fields=fields)
    return result


def snapshot_by_symbol_flow(api: Any, queries: StockQueries, fields: OneOrMany[str]) -> Flow[dict[str, Any]]:
    wanted = [fields] if isinstance(fields, (str, int)) else list(fields)
    field_ids = [SNAPSHOT_FIELDS.get(f, f) if isinstance(f, str) else f for f in wanted]
    conids = (yield api.stock_conid_by_symbol(queries)).data
    symbol_of = {str(conid): symbol for symbol, conid in conids.items()}
    if not symbol_of:
        return {}
    result = yield api.snapshot_until_ready(list(symbol_of), field_ids)
    out: dict[str, Any] = {}
    for entry in result.data if isinstance(result.data, list) else []:
        symbol = symbol_of.get(str(entry.get("conid")))
        if symbol is not None:
            out[symbol] = name_snapshot_fields(entry)
    return out


def history_by_symbol_flow(
    api: Any,
    symbol: str | StockQuery,
    bar: str,
    exchange: str | None,
    period: str | None,
    outside_rth: bool | None,
    start_time: datetime.datetime | None,
) -> Flow[Result]:
    name = symbol.symbol if isinstance(symbol, StockQuery) else symbol
    conid = (yield api.stock_conid_by_symbol(symbol)).data.get(name)
    if conid is None:
        raise StockQueryError(f"marketdata_history_by_symbol(): IBKR knows no instrument for {name!r}")
    result: Result = yield api.marketdata_history_by_conid(
        conid=str(conid), bar=bar, exchange=exchange, period=period, outside_rth=outside_rth, start_time=start_time
    )
    return result


def history_by_conids_flow(
    api: Any,
    conids: Sequence[str] | Mapping[Hashable, str],
    period: str,
    bar: str,
    outside_rth: bool,
    start_time: datetime.datetime | None,
    raise_on_error: bool,
    run_in_parallel: bool,
) -> Flow[dict[Any, Any]]:
    keyed: dict[Any, str] = dict(conids) if isinstance(conids, Mapping) else {c: c for c in conids}
    if not keyed:
        raise RequestValidationError("marketdata_history_by_conids", "conids", "must not be empty")

    def request(conid: str) -> Any:
        return api.marketdata_history_by_conid(
            conid=conid, bar=bar, period=period, outside_rth=outside_rth, start_time=start_time
        )

    def settle(conid: str, outcome: Any) -> Any:
        if isinstance(outcome, Exception):
            if raise_on_error:
                raise outcome
            logger.warning("history for conid %s failed: %s", conid, outcome)
            return outcome
        try:
            return clean_bars(outcome.data)
        except Exception as exc:  # returned per key unless raise_on_error
            if raise_on_error:
                raise
            logger.warning("history for conid %s failed: %s", conid, exc)
            return exc

    out: dict[Any, Any] = {}
    if run_in_parallel and len(keyed) > 1:
        # At most five requests in flight: IBKR's limit (threads for IbkrClient, tasks for AsyncIbkrClient).
        thunks = [functools.partial(request, conid) for conid in keyed.values()]
        outcomes = yield api._gather(thunks, HISTORY_MAX_IN_FLIGHT)
        for (key, conid), outcome in zip(keyed.items(), outcomes, strict=True):
            out[key] = settle(conid, outcome)
        return out
    for key, conid in keyed.items():
        try:
            outcome = yield request(conid)
        except Exception as exc:  # returned per key unless raise_on_error
            outcome = exc
        out[key] = settle(conid, outcome)
    return out


def history_by_symbols_flow(
    api: Any,
    queries: StockQueries,
    period: str,
    bar: str,
    outside_rth: bool,
    start_time: datetime.datetime | None,
    raise_on_error: bool,
    run_in_parallel: bool,
) -> Flow[dict[Any, Any]]:
    items = as_queries("marketdata_history_by_symbols", queries)
    conids = (yield api.stock_conid_by_symbol(items)).data
    unknown = [q.symbol for q in items if q.symbol not in conids]
    if unknown and raise_on_error:
        raise StockQueryError(f"marketdata_history_by_symbols(): IBKR knows no instrument for {', '.join(unknown)}")
    if not conids:
        return {}
    out: dict[Any, Any] = yield api.marketdata_history_by_conids(
        {symbol: str(conid) for symbol, conid in conids.items()},
        period=period,
        bar=bar,
        outside_rth=outside_rth,
        start_time=start_time,
        raise_on_error=raise_on_error,
        run_in_parallel=run_in_parallel,
    )
    return out


def checked_conids(conids: OneOrMany[str]) -> list[int]:
    items = list(conids) if isinstance(conids, (list, tuple)) else [conids]
    if not items:
        raise RequestValidationError("marketdata_unsubscribe", "conids", "must not be an empty list")
    numbers = []
    for conid in items:
        if isinstance(conid, bool) or not str(conid).isdigit():
            raise RequestValidationError("marketdata_unsubscribe", "conids", f"must hold numeric conids, got {conid!r}")
        numbers.append(int(conid))
    return numbers


def unsubscribe_flow(api: Any, conids: OneOrMany[str]) -> Flow[list[Result]]:
    results = []
    for n in checked_conids(conids):
        try:
            results.append((yield api._marketdata_unsubscribe(conid=n)))
        except ExternalBrokerError as exc:
            if exc.status_code != 404:
                raise
            # No stream was open for this contract: nothing to close, not a failure.
            results.append(Result(data={"conid": n, "unsubscribed": False, "reason": exc.message}))
    return results


class MarketdataOverlay(StockQueryOverlay, GeneratedEndpoints):
    """Market data methods of the reference that combine several requests."""

    def snapshot_until_ready(
        self,
        conids: OneOrMany[str],
        fields: OneOrMany[str],
        attempts: int = SNAPSHOT_ATTEMPTS,
        interval: float = SNAPSHOT_INTERVAL,
    ) -> Result:
        """Repeat the snapshot until every contract carries every requested field, at most `attempts` times.

        The gateway answers the first snapshot request for a contract without fields (it starts the stream); this
        helper hides that. The last answer is returned even when some fields are still missing.
        """
        return run(snapshot_until_ready_flow(self, conids, fields, attempts, interval))

    def live_marketdata_snapshot_by_symbol(self, queries: StockQueries, fields: OneOrMany[str]) -> dict[str, Any]:
        """Snapshot of the given fields for stocks named by symbol or `StockQuery`.

        Args:
            queries: A symbol, a `StockQuery`, or a list of them. Symbols IBKR does not know are logged and left out.
            fields: Field ids (`"31"`) or field names (`"last_price"`, see `snapshot_keys_to_ids`).

        Returns:
            `{symbol: snapshot entry}` with field names as keys (`last_price`, `bid_price`, ...), as in the peer
            library; keys that are not fields (`conid`, `_updated`, ...) and unknown ids are kept as IBKR sends them.
        """
        return run(snapshot_by_symbol_flow(self, queries, fields))

    def marketdata_history_by_symbol(
        self,
        symbol: str | StockQuery,
        bar: str,
        exchange: str | None = None,
        period: str | None = None,
        outside_rth: bool | None = None,
        start_time: datetime.datetime | None = None,
    ) -> Result:
        """History bars of one stock named by symbol or `StockQuery` (see `marketdata_history_by_conid`)."""
        return run(history_by_symbol_flow(self, symbol, bar, exchange, period, outside_rth, start_time))

    def marketdata_history_by_conids(
        self,
        conids: Sequence[str] | Mapping[Hashable, str],
        period: str = "1min",
        bar: str = "1min",
        outside_rth: bool = True,
        start_time: datetime.datetime | None = None,
        raise_on_error: bool = False,
        run_in_parallel: bool = True,
    ) -> dict[Any, Any]:
        """History of many contracts, at most five requests in flight (IBKR's limit), cleaned into uniform bars.

        Args:
            conids: Conids, or a mapping of your keys to conids; the answer is keyed the same way.
            period, bar, outside_rth, start_time: As in `marketdata_history_by_conid`.
            raise_on_error: Raise the first failure instead of returning it as the value of its key.
            run_in_parallel: Send up to five requests at once.

        Returns:
            `{key: [{open, high, low, close, volume, date}, ...] or the exception}`.
        """
        return run(
            history_by_conids_flow(self, conids, period, bar, outside_rth, start_time, raise_on_error, run_in_parallel)
        )

    def marketdata_history_by_symbols(
        self,
        queries: StockQueries,
        period: str = "1min",
        bar: str = "1min",
        outside_rth: bool = True,
        start_time: datetime.datetime | None = None,
        raise_on_error: bool = False,
        run_in_parallel: bool = True,
    ) -> dict[Any, Any]:
        """`marketdata_history_by_conids` for stocks named by symbol or `StockQuery`, keyed by symbol.

        A symbol IBKR does not know is logged and left out, the others answered (as in the peer library); with
        `raise_on_error` it raises `StockQueryError` instead.
        """
        return run(
            history_by_symbols_flow(
                self, queries, period, bar, outside_rth, start_time, raise_on_error, run_in_parallel
            )
        )

    def marketdata_unsubscribe(self, conids: OneOrMany[str]) -> list[Result]:
        """Close the market data stream of each contract: one request per conid, one `Result` each.

        A 404 (no stream was open for that contract) is not an error: its `Result` says `unsubscribed: False`.
        """
        return run(unsubscribe_flow(self, conids))
