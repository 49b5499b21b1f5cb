from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
