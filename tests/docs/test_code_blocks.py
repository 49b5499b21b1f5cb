"""Every Python code block of README.md and docs/guides/*.md runs, against a simulator the test starts.

A page's blocks run in order in one namespace, as a reader would type them into one session. The blocks connect the
way a reader's program does: to `IbkrClient(...)`'s default address, which the test points at the simulator through
`IBKR_SDK_REST_URL`, to a local gateway's URL written out (rewritten to the simulator's), or to a `Simulator` they
start themselves; each page must have sent the simulator requests. A block that cannot run offline (it needs keys
from IBKR's portal, say) is marked with `<!-- docs-test: skip (why) -->` on the line before it; those are counted,
and the counts are printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ibkr_sdk.simulator import Simulator
from tests.conftest import CODE_BLOCKS as PROPERTY

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "guides").glob("*.md"))]
SKIP = re.compile(r"^<!--\s*docs-test:\s*skip\s*\((?P<why>[^)]+)\)\s*-->$")
# The market a page's blocks expect: the README's asyncio block buys once AAPL's ask is under 200.
MARKET = {"README.md": {265598: 190.0}}
LOCAL_GATEWAY = re.compile(r"https://(?:localhost|127\.0\.0\.1):5000/v1/api/?")  # a local gateway, written out


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence
    code: str
    skip: str | None  # why it is not run


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            i += 1
            while lines[i].strip() != "```":
                i += 1
            before = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
            marker = SKIP.match(before)
            code = "\n".join(lines[start + 1 : i])
            rel = str(page.relative_to(ROOT))
            out.append(Block(rel, start + 1, code, marker.group("why") if marker else None))
        i += 1
    return out


def _close_everything(namespace: dict[str, Any]) -> None:
    """Undo what the page's blocks set up: clients, sockets and the log handlers of `ibind_logs_initialize()`."""
    from ibkr_sdk import IbkrClient, IbkrWsClient
    from ibkr_sdk.lib.logs import reset_logs

    reset_logs()

    for value in namespace.values():
        if isinstance(value, IbkrWsClient):
            value.shutdown()
    for value in namespace.values():
        if isinstance(value, IbkrClient):
            value.close()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_blocks_run(page: Path, monkeypatch: pytest.MonkeyPatch, record_property: Any) -> None:
    found = blocks(page)
    run = [b for b in found if b.skip is None]
    assert run, f"{page.name}: no runnable Python block found"
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    with Simulator() as sim:
        for conid, price in MARKET.get(page.name, {}).items():
            sim.set_price(conid, price)
        monkeypatch.setenv("IBKR_SDK_REST_URL", sim.url)
        try:
            for block in run:
                out = io.StringIO()
                try:
                    with contextlib.redirect_stdout(out):
                        code = LOCAL_GATEWAY.sub(sim.url, block.code)
                        exec(compile(code, f"{block.page}:{block.line}", "exec"), namespace)
                except Exception:
                    pytest.fail(
                        f"the code block at {block.page}:{block.line} failed:\n{traceback.format_exc()}\n"
                        f"its output:\n{out.getvalue()}",
                        pytrace=False,
                    )
        finally:
            _close_everything(namespace)
        served = len(sim.requests)
    own = any("Simulator(" in b.code for b in run)  # blocks that start simulators of their own
    assert served or own, f"{page.name}: the blocks sent the simulator nothing (do they connect elsewhere?)"
    skipped = [(b.line, b.skip) for b in found if b.skip is not None]
    record_property(PROPERTY, json.dumps([str(page.relative_to(ROOT)), len(run), skipped]))


def test_skip_markers_give_a_reason_and_are_few() -> None:
    everything = [b for page in PAGES for b in blocks(page)]
    skipped = [b for b in everything if b.skip is not None]
    assert all(b.skip and len(b.skip) > 10 for b in skipped)
    assert len(skipped) <= 4 and len(everything) - len(skipped) >= 15, [(b.page, b.line) for b in skipped]
    for page in PAGES:  # a marker not followed by a python block would hide nothing and mislead the reader
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if SKIP.match(line.strip()):
                following = next(x for x in lines[i + 1 :] if x.strip())
                assert following.strip() == "```python", f"{page.name}:{i + 1}"
