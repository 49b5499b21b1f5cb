"""Finding contracts: from a ticker to the one conid you mean, with StockQuery.

    python examples/find_contracts.py
    python examples/find_contracts.py --url https://localhost:5000/v1/api/

IBKR answers a symbol with every instrument of that name and every listing of each: GOOG is Alphabet class C on
NASDAQ and in Mexico, a London ETP and a Canadian CDR. By default only US listings are kept; a StockQuery narrows
by name, by instrument fields or by listing fields, and a query that still matches several listings is an error
that lists them.
"""

from __future__ import annotations

from _common import Session, run, step

from ibkr_sdk import StockQuery, StockQueryError


def main(s: Session) -> None:
    client = s.client

    step("Everything IBKR lists under GOOG")
    for instrument in client.security_stocks_by_symbol("GOOG", default_filtering=False).data["GOOG"]:
        listings = ", ".join(f"{c['exchange']} {c['conid']}" for c in instrument["contracts"])
        print(f"  {instrument['name']:28s} {listings}")

    step("Plain symbols: the US listing")
    print(f"  {client.stock_conid_by_symbol(['AAPL', 'MSFT', 'SPY']).data}")

    step("Narrowed queries")
    queries = [
        StockQuery("AAPL", contract_conditions={"exchange": "MEXI"}),  # by a listing's fields
        StockQuery("GOOG", name_match="ALPHABET INC - CDR"),  # by the instrument's name (a substring)
        StockQuery("META", name_match="META PLATFORMS", contract_conditions={"isUS": True}),  # both
    ]
    for symbol, conid in client.stock_conid_by_symbol(queries, default_filtering=False).data.items():
        print(f"  {symbol:5s} -> {conid}")

    step("A query that matches several listings is refused, with what matched")
    try:
        client.stock_conid_by_symbol("MSFT", default_filtering=False)
    except StockQueryError as exc:
        print(f"  StockQueryError: {str(exc)[:150]}...")

    step("Search and the contract's details")
    for row in client.search_contract_by_symbol("SPY").data:
        kinds = [section["secType"] for section in row.get("sections", [])]
        print(f"  {row['conid']:>10s} {row['companyHeader']:34s} {', '.join(kinds)}")
    (secdef,) = client.security_definition_by_conid("756733").data["secdef"]
    print(f"  756733: {secdef['name']}, {secdef['type']} on {secdef['listingExchange']}")


if __name__ == "__main__":
    run(main, __doc__)
