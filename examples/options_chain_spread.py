"""An options chain and a spread: from the SPX index to a call vertical.  PLACES AN ORDER (use a paper account).

    python examples/options_chain_spread.py
    python examples/options_chain_spread.py --url https://localhost:5000/v1/api/ --account DU1234567

Walks IBKR's chain the way the API exposes it: the index's option months, the strikes of a month, then the
contracts of one strike and month. For SPX that is several contracts: the monthly SPX (AM-settled) and the SPXW
weeklies, told apart by expiry date and trading class. The spread is sent as one combo order, whose conidex names
the legs: `28812380;;;{long leg}/1,{short leg}/-1` (28812380 is IBKR's id for a USD spread).
"""

from __future__ import annotations

import time

from _common import Session, run, step

from ibkr_sdk import OrderRequest, QuestionType

SPX = "416904"
USD_SPREAD = 28812380


def _price(value: object) -> float:
    return float(str(value).lstrip("CH"))  # "C" / "H": a closing or halted price


def main(s: Session) -> None:
    client = s.client

    step("SPX option months")
    (spx,) = [r for r in client.search_contract_by_symbol("SPX", sec_type="IND").data if r["conid"] == SPX]
    months = next(sec for sec in spx["sections"] if sec["secType"] == "OPT")["months"].split(";")
    print(f"  {', '.join(months[:6])}{' ...' if len(months) > 6 else ''}")
    month = months[1] if len(months) > 1 else months[0]  # the first month may hold only a few weeklies

    index = _price(client.snapshot_until_ready(SPX, ["31"], interval=0.2).data[0]["31"])
    strikes = client.search_strikes_by_conid(SPX, "OPT", month).data["call"]
    near = sorted(strikes, key=lambda k: abs(k - index))[:4]
    low, high = sorted(near)[1], sorted(near)[2]
    print(f"  SPX at {index:.2f}; {len(strikes)} strikes in {month}, nearest {sorted(near)}")

    step(f"Contracts of the {low:g} call in {month}: one strike and month, several expiries and classes")
    calls = client.search_secdef_info_by_conid(SPX, "OPT", month, strike=f"{low:g}", right="C").data
    for c in calls:
        print(f"  {c['conid']:>10}  {c['tradingClass']:5s} expires {c['maturityDate']}  {c['desc2']}")
    weekly = next((c for c in calls if c["tradingClass"] == "SPXW"), calls[0])
    expiry, klass = weekly["maturityDate"], weekly["tradingClass"]

    step(f"The {expiry} {klass} calls around the money")
    legs = {}
    for strike in (low, high):
        found = client.search_secdef_info_by_conid(SPX, "OPT", month, strike=f"{strike:g}", right="C").data
        legs[strike] = next(c for c in found if (c["maturityDate"], c["tradingClass"]) == (expiry, klass))
    quotes = client.snapshot_until_ready([str(c["conid"]) for c in legs.values()], ["84", "86", "7308"], interval=0.2)
    for (strike, leg), q in zip(legs.items(), quotes.data, strict=True):
        print(f"  {strike:7g} C  conid {leg['conid']}  bid {q.get('84')}  ask {q.get('86')}  delta {q.get('7308')}")

    step(f"Buy the {low:g}/{high:g} call vertical as one combo order")
    conidex = f"{USD_SPREAD};;;{legs[low]['conid']}/1,{legs[high]['conid']}/-1"
    by_strike = {strike: q for strike, q in zip(legs, quotes.data, strict=True)}
    debit = _price(by_strike[low]["86"]) - _price(by_strike[high]["84"])  # pay the ask, receive the bid
    limit = round(debit + 0.05, 2)
    order = OrderRequest(conidex=conidex, side="BUY", quantity=1, order_type="LMT", price=limit, tif="DAY")
    print(f"  conidex {conidex}, limit {limit} (net debit per spread, times the multiplier 100)")
    answers = {QuestionType.MISSING_MARKET_DATA: True, QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True}
    ack = client.place_order(order, answers).data
    time.sleep(0.2)
    status = client.order_status(ack["order_id"]).data
    print(f"  order {ack['order_id']}: {status.get('order_status')} at {status.get('average_price') or '-'}")

    step("Positions: one per leg")
    wanted = {int(c["conid"]) for c in legs.values()}
    for p in client.positions_all().data:
        if int(p["conid"]) in wanted:
            print(f"  {p['contractDesc']:24s} {p['position']:+g} @ {p['avgCost']:.2f}")


if __name__ == "__main__":
    run(main, __doc__, places_orders=True)
