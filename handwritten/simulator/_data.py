"""Loading the fixture files in `data/` (JSON, shipped as package data)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load(name: str) -> dict[str, Any]:
    """A fresh copy of `data/<name>.json`, so each simulator may change its own."""
    text = resources.files(__package__).joinpath("data").joinpath(f"{name}.json").read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"data/{name}.json must hold a JSON object")
    return data
