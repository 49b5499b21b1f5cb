"""`make demo` keeps working: the example workflow runs against the embedded simulator and does every step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_example_workflow_runs_offline() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "workflow.py")], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for heading in (
        "Authentication status",
        "Accounts",
        "Conids by StockQuery",
        "Snapshot",
        "Daily history",
        "Bracket order",
        "The same bracket with auto_suppress",
        "Live orders",
        "Positions after the fill",
        "Cancel",
        "Logout",
    ):
        assert f"== {heading}" in out, heading
    assert "AAPL   265598" in out
    assert "round trips (order + replies): 2" in out and "round trips with auto_suppress: 1" in out
    assert "status now: Cancelled" in out
    assert "0 answered 429" in out
