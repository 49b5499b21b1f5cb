"""The reference pages of the hand-written public classes (docs/reference/) match their code, and the public
methods' docs name no internal class."""

from __future__ import annotations

import re
from pathlib import Path

from codegen.reference import OUT, render
from ibkr_sdk import IbkrClient

ROOT = Path(__file__).resolve().parent.parent


def test_reference_pages_are_current() -> None:
    pages = render()
    assert set(pages) == {"ws-client.md", "sinks.md", "events.md", "order-request.md", "simulator.md"}
    for name, text in pages.items():
        path = OUT / name
        assert path.exists() and path.read_text(encoding="utf-8") == text, (
            f"docs/reference/{name} is stale: run `python -m codegen.reference`"
        )
    assert "### `start() -> bool`" in pages["ws-client.md"] and "`last_failure`" in pages["ws-client.md"]
    assert "## `QueueSink`" in pages["sinks.md"] and "## `Orders`" in pages["events.md"]
    assert "`order_type` → `orderType`" in pages["order-request.md"]
    assert "### `inject(" in pages["simulator.md"]


def test_public_method_docs_name_no_internal_class() -> None:
    internal = re.compile(r"\b\w+(?:Overlay|Endpoints)\b|\bClientCore\b")
    leaks = {
        name: internal.findall(getattr(IbkrClient, name).__doc__ or "")
        for name in dir(IbkrClient)
        if not name.startswith("_") and callable(getattr(IbkrClient, name))
    }
    assert {name: found for name, found in leaks.items() if found} == {}
    assert "Raises:" in (IbkrClient.place_order.__doc__ or "")


def test_license_and_changelog() -> None:
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License") and "Copyright (c) 2026 ibkr_sdk authors" in license_text
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [0.1.0]" in changelog and "keepachangelog.com" in changelog
