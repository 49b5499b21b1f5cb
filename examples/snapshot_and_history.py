"""A snapshot and daily history for many symbols at once.

    python examples/snapshot_and_history.py
    python examples/snapshot_and_history.py --url https://localhost:5000/v1/api/

The gateway answers the first snapshot of a contract without prices (that request starts its market data), so
`snapshot_until_ready` asks again until the fields arrive. History requests run in parallel within IBKR's limit of
five at a time; the client's pacing keeps them there.
"""

from __future__ import annotations

import time

from _common import Session, run, step

from ibkr_sdk import snapshot_keys_to_ids

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY", "QQQ", "IWM"]


def main(s: Session) -> None:
    client = s.client
    conids = client.stock_conid_by_symbol(SYMBOLS).data

    step(f"Snapshot of {len(conids)} symbols")
    fields = snapshot_keys_to_ids(["symbol", "last_price", "bid_price", "ask_price", "change_percent"])
    snapshot = client.snapshot_until_ready([str(c) for c in conids.values()], fields, interval=0.2).data
    print(f"  {'symbol':6s} {'last':>10s} {'bid':>10s} {'ask':>10s} {'change':>8s}")
    for row in snapshot:
        last, bid, ask, change = (row.get(f, "-") for f in fields[1:])
        print(f"  {row.get(fields[0], row['conid'])!s:6s} {last:>10s} {bid:>10s} {ask:>10s} {change:>8s}")

    step("Daily bars for a month, all symbols in parallel")
    started = time.perf_counter()
    history = client.marketdata_history_by_symbols(SYMBOLS, period="1m", bar="1d")
    print(f"  {len(history)} symbols in {time.perf_counter() - started:.2f} s")
    for symbol, bars in history.items():
        if not bars:
            print(f"  {symbol:6s} no bars")
            continue
        closes = [bar["close"] for bar in bars]
        first, last = closes[0], closes[-1]
        print(
            f"  {symbol:6s} {len(bars):3d} bars  {bars[0]['date']:%Y-%m-%d} .. {bars[-1]['date']:%Y-%m-%d}"
            f"  close {first:9.2f} -> {last:9.2f} ({(last / first - 1) * 100:+.1f} %)"
        )


if __name__ == "__main__":
    run(main, __doc__)
