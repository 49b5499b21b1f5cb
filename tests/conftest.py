from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ibkr_sdk import IbkrClient
from tests.recording_server import RecordingServer

ROOT = Path(__file__).resolve().parent.parent
TEST_ACCOUNT = "DU1234567"

# Clients coordinate through files in IBKR_SDK_STATE_DIR (the `local` backend): each test session, and the worker
# processes it starts, gets a directory of its own, so parallel runs never share limits or locks.
STATE_DIR = tempfile.mkdtemp(prefix="ibkr_sdk_state_")
os.environ["IBKR_SDK_STATE_DIR"] = STATE_DIR
atexit.register(shutil.rmtree, STATE_DIR, True)


@pytest.fixture(scope="session")
def _server() -> Iterator[RecordingServer]:
    server = RecordingServer().start()
    yield server
    server.stop()


@pytest.fixture
def recorder(_server: RecordingServer) -> RecordingServer:
    _server.reset()
    return _server


@pytest.fixture
def client(recorder: RecordingServer) -> Iterator[IbkrClient]:
    c = IbkrClient(
        account_id=TEST_ACCOUNT, url=recorder.url, timeout=5, max_retries=0, auto_preflight=False, pacing=False
    )
    yield c
    c.close()


@pytest.fixture(scope="session")
def catalogue():  # type: ignore[no-untyped-def]
    from codegen.load import load_catalogue

    return load_catalogue(ROOT / "spec")


# -- the code-block counts of tests/docs/test_code_blocks.py ---------------------------------------------------------
# In the root conftest so that the process printing the summary loads it also when pytest-xdist runs the tests in
# workers; the counts travel on each report's `user_properties`.

CODE_BLOCKS = "code_blocks"
_pages: dict[str, tuple[int, list[tuple[int, str]]]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" or not report.passed:
        return
    for name, value in report.user_properties:
        if name == CODE_BLOCKS:
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
