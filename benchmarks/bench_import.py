"""Import time of `ibkr_sdk` against `import requests` (its one runtime dependency), in fresh interpreters."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

RUNS = 15


# Bytecode caches as an installed package has them: PYTHONDONTWRITEBYTECODE would make every run compile the
# sources again, which measures the compiler, not the import.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _time_import(module: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=ENV)
    return time.perf_counter() - start


def main() -> None:
    for module in ("requests", "ibkr_sdk"):  # warm-up: writes the bytecode caches
        _time_import(module)
    baseline = [_time_import("sys")]
    req: list[float] = []
    ours: list[float] = []
    for _ in range(RUNS):  # interleaved
        baseline.append(_time_import("sys"))
        req.append(_time_import("requests"))
        ours.append(_time_import("ibkr_sdk"))
    b, r, o = statistics.median(baseline), statistics.median(req), statistics.median(ours)
    print(f"interpreter start-up {b * 1e3:.1f} ms; medians of {RUNS} fresh interpreters, start-up subtracted:")
    print(f"  import requests  {(r - b) * 1e3:6.1f} ms")
    print(f"  import ibkr_sdk  {(o - b) * 1e3:6.1f} ms")
    print(f"ibkr_sdk / requests = {(o - b) / (r - b):.2f}")


if __name__ == "__main__":
    main()
