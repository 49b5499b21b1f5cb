"""Prints how many code blocks of the README and the guides the suite ran (see test_code_blocks.py).

The counts travel on each test report's `user_properties`, so they reach the printing process also when pytest-xdist
runs the tests in workers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

PROPERTY = "code_blocks"
_pages: dict[str, tuple[int, list[tuple[int, str]]]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" or not report.passed:
        return
    for name, value in report.user_properties:
        if name == PROPERTY:
            page, run, skipped = json.loads(str(value))
            _pages[page] = (run, [(line, why) for line, why in skipped])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _pages:
        return
    for page, (run, skipped) in sorted(_pages.items()):
        terminalreporter.write_line(f"code blocks of {page}: {run} executed, {len(skipped)} marked not to run")
        for line, why in skipped:
            terminalreporter.write_line(f"  not run: line {line}: {why}")
    executed = sum(run for run, _ in _pages.values())
    marked = sum(len(skipped) for _, skipped in _pages.values())
    terminalreporter.write_line(f"code blocks: {executed} executed, {marked} marked not to run ({len(_pages)} pages)")
