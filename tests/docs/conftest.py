"""Prints how many code blocks of the README and the guides the suite ran (see test_code_blocks.py)."""

from __future__ import annotations

from typing import Any

import pytest

# (page, blocks executed, [(line, why) of each block marked not to run]) per page run
SUMMARY = pytest.StashKey[list[tuple[str, int, list[tuple[int, str]]]]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    pages = config.stash.get(SUMMARY, [])
    if not pages:
        return
    for page, run, skipped in pages:
        terminalreporter.write_line(f"code blocks of {page}: {run} executed, {len(skipped)} marked not to run")
        for line, why in skipped:
            terminalreporter.write_line(f"  not run: line {line}: {why}")
    executed = sum(run for _, run, _ in pages)
    marked = sum(len(skipped) for _, _, skipped in pages)
    terminalreporter.write_line(f"code blocks: {executed} executed, {marked} marked not to run ({len(pages)} pages)")
