"""Stock lookup by symbol with client-side filtering (`StockQuery`).

Why hand-written: `/trsrv/stocks` returns every instrument and listing of a symbol; picking the right one (by name,
instrument fields, contract fields, US listings by default) is client logic. The raw request is the generated
`_security_stocks_by_symbol`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._client_base import GeneratedEndpoints
from .errors import RequestValidationError, StockQueryError
from .flow import Flow, run
from .result import Result

logger = logging.getLogger("ibkr_sdk")

DEFAULT_CONTRACT_CONDITIONS: dict[str, Any] = {"isUS": True}


@dataclass(frozen=True)
class StockQuery:
    """Which stock to pick among the instruments IBKR lists for a symbol.

    Attributes:
        symbol: Ticker symbol to look up.
        name_match: Keep instruments whose name contains this text (case-insensitive).
        instrument_conditions: Keep instruments whose fields equal all of these values (e.g. `{"assetClass": "STK"}`).
        contract_conditions: Keep listings (contracts) whose fields equal all of these values (e.g.
            `{"exchange": "NASDAQ"}`). When None and default filtering is on, `{"isUS": True}` applies.
    """

    symbol: str
    name_match: str | None = None
    instrument_conditions: Mapping[str, Any] | None = None
    contract_conditions: Mapping[str, Any] | None = None


StockQueries = str | StockQuery | Sequence[str | StockQuery]


def as_queries(method: str, queries: StockQueries) -> list[StockQuery]:
    """One query, a plain symbol, or a list of either → a list of `StockQuery`."""
    items = [queries] if isinstance(queries, (str, StockQuery)) else list(queries)
    if not items:
        raise RequestValidationError(method, "queries", "must not be an empty list")
    out = []
    for item in items:
        if isinstance(item, str) and item.strip():
            out.append(StockQuery(item.strip()))
        elif isinstance(item, StockQuery) and isinstance(item.symbol, str) and item.symbol.strip():
            out.append(item)
        else:
            raise RequestValidationError(method, "queries", f"must hold symbols or StockQuery objects, got {item!r}")
    return out


def _matches(data: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    missing = object()
    return all(data.get(k, missing) == v for k, v in conditions.items())


def filter_instruments(
    instruments: Sequence[Mapping[str, Any]], query: StockQuery, default_filtering: bool
) -> list[dict[str, Any]]:
    """The instruments (with their contracts narrowed) that satisfy `query`."""
    contract_conditions = query.contract_conditions
    if contract_conditions is None and default_filtering:
        contract_conditions = DEFAULT_CONTRACT_CONDITIONS
    kept = []
    for raw in instruments:
        instrument = copy.deepcopy(dict(raw))
        if query.name_match is not None and query.name_match.lower() not in str(instrument.get("name", "")).lower():
            continue
        if query.instrument_conditions and not _matches(instrument, query.instrument_conditions):
            continue
        if contract_conditions:
            contracts = [c for c in instrument.get("contracts") or [] if _matches(c, contract_conditions)]
            if not contracts:
                continue
            instrument["contracts"] = contracts
        kept.append(instrument)
    return kept


def security_stocks_flow(api: Any, queries: StockQueries, default_filtering: bool | None) -> Flow[Result]:
    items = as_queries("security_stocks_by_symbol", queries)
    if default_filtering is None:
        default_filtering = api.default_filtering
    raw: Result = yield api._security_stocks_by_symbol(symbols=[q.symbol for q in items])
    data = raw.data if isinstance(raw.data, Mapping) else {}
    filtered = {}
    for q in items:
        if not data.get(q.symbol):
            # As the peer library does: a symbol IBKR does not know is logged and left out, the rest answered.
            logger.warning("security_stocks_by_symbol(): IBKR knows no instrument for %r; it is left out", q.symbol)
            continue
        filtered[q.symbol] = filter_instruments(data[q.symbol], q, default_filtering)
    return raw.copy(data=filtered)


def stock_conid_flow(api: Any, queries: StockQueries, default_filtering: bool | None, return_type: str) -> Flow[Result]:
    if return_type not in ("dict", "list"):
        raise RequestValidationError(
            "stock_conid_by_symbol", "return_type", f"must be 'dict' or 'list', got {return_type!r}"
        )
    stocks: Result = yield from security_stocks_flow(api, queries, default_filtering)
    conids: dict[str, int] = {}
    problems = []
    for symbol, instruments in stocks.data.items():
        listings = [
            f"{i.get('name')!r} on {c.get('exchange')} (conid {c.get('conid')}, isUS={c.get('isUS')})"
            for i in instruments
            for c in i.get("contracts", [])
        ]
        if len(instruments) == 1 and len(instruments[0].get("contracts", [])) == 1:
            conids[symbol] = instruments[0]["contracts"][0]["conid"]
        elif not listings:
            problems.append(f"{symbol}: nothing matched; loosen the query (name_match, conditions, default_filtering)")
        else:
            problems.append(
                f"{symbol}: {len(listings)} listings matched ({'; '.join(listings)}); narrow the query with "
                "name_match, instrument_conditions or contract_conditions (e.g. {'exchange': 'NASDAQ'})"
            )
    if problems:
        raise StockQueryError(
            "stock_conid_by_symbol() needs exactly one instrument and one contract per query: " + " | ".join(problems)
        )
    data: Any = conids if return_type == "dict" else list(conids.values())
    result = stocks.copy(data=data)
    result.endpoint = "stock_conid_by_symbol"  # its own shape: result.parsed() uses the overlay's model
    return result


class StockQueryOverlay(GeneratedEndpoints):
    """`security_stocks_by_symbol` and `stock_conid_by_symbol` with the reference's signatures."""

    default_filtering: bool = True
    """What `default_filtering=None` means in the methods below (as in the peer library)."""

    def security_stocks_by_symbol(self, queries: StockQueries, default_filtering: bool | None = None) -> Result:
        """Stocks of one or more symbols, filtered per query.

        Args:
            queries: A symbol, a `StockQuery`, or a list of them.
            default_filtering: Keep only US listings unless a query sets its own `contract_conditions`; None uses
                the client's `default_filtering` (True unless changed).

        Returns:
            A `Result` whose data maps each symbol to its matching instruments (each with its matching contracts).
            A symbol IBKR does not know is logged and left out.
        """
        return run(security_stocks_flow(self, queries, default_filtering))

    def stock_conid_by_symbol(
        self, queries: StockQueries, default_filtering: bool | None = None, return_type: str = "dict"
    ) -> Result:
        """The one conid each query identifies.

        Each query must narrow the symbol to exactly one instrument with exactly one contract; otherwise an error
        lists what matched and how to narrow the query. A symbol IBKR does not know at all is logged and left out
        of the answer (as in the peer library), so one delisted ticker does not lose the others.

        Args:
            queries: A symbol, a `StockQuery`, or a list of them.
            default_filtering: Keep only US listings unless a query sets its own `contract_conditions`; None uses
                the client's `default_filtering`.
            return_type: `"dict"` for `{symbol: conid}`, `"list"` for the conids in query order.
        """
        return run(stock_conid_flow(self, queries, default_filtering, return_type))
