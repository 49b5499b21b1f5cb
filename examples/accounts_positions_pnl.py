"""Accounts, positions and P&L: what the account holds and how it is doing.

    python examples/accounts_positions_pnl.py
    python examples/accounts_positions_pnl.py --url https://localhost:5000/v1/api/ --account DU1234567

Read-only against a gateway. Offline, the simulator's account starts with cash only, so two market orders are
placed first to have positions to show.
"""

from __future__ import annotations

import time

from _common import Session, run, step

from ibkr_sdk import OrderRequest, QuestionType


def _buy_something(s: Session) -> None:
    """Offline only: fill two market orders so the account has positions."""
    answers = {QuestionType.MISSING_MARKET_DATA: True, QuestionType.MARKET_ORDER_CONFIRMATION: True}
    for conid, quantity in ((265598, 50), (272093, 20)):  # AAPL, MSFT
        order = OrderRequest(conid=conid, side="BUY", quantity=quantity, order_type="MKT", tif="DAY")
        s.client.place_order(order, answers)


def main(s: Session) -> None:
    client = s.client
    if s.offline:
        _buy_something(s)

    step("Accounts")
    for account in client.portfolio_accounts().data:  # also the pre-flight of the /portfolio endpoints
        print(f"  {account['id']}  {account.get('type', '')}  {account.get('currency')}  {account.get('desc', '')}")

    step(f"Summary of {s.account}")
    summary = client.portfolio_summary().data
    for key in ("netliquidation", "totalcashvalue", "grosspositionvalue", "availablefunds", "buyingpower"):
        entry = summary.get(key) or {}
        print(f"  {key:20s} {entry.get('amount', 0):>16,.2f} {entry.get('currency') or ''}")

    step("Positions")
    positions = client.positions_all().data  # every page, in one list
    for p in positions:
        print(
            f"  {p.get('contractDesc', p.get('conid')):10s} {p.get('position'):>8g} @ {p.get('avgCost', 0):10.2f}"
            f"   value {p.get('mktValue', 0):12,.2f}   unrealized {p.get('unrealizedPnl', 0):10,.2f}"
        )
    if not positions:
        print("  (no positions)")

    step("P&L by account (the first request starts the computation, so ask again)")
    pnl = client.account_profit_and_loss().data
    for _ in range(5):
        if pnl.get("upnl"):
            break
        time.sleep(0.2)
        pnl = client.account_profit_and_loss().data
    for key, row in (pnl.get("upnl") or {}).items():
        print(f"  {key}: daily {row.get('dpl')}, unrealized {row.get('upl')}, net liquidation {row.get('nl')}")

    step("Cash by currency (ledger)")
    for currency, row in client.get_ledger().data.items():
        cash, stocks = row.get("cashbalance", 0), row.get("stockmarketvalue", 0)
        print(f"  {currency:5s} cash {cash:>16,.2f}   stocks {stocks:>14,.2f}")


if __name__ == "__main__":
    run(main, __doc__)
