"""Every recorded answer of the real gateway parses into the model of its endpoint.

The answers live outside the project, in `../shared/realdata/samples/` (see its README: recorded by other public
projects from live, mostly paper, accounts); `tests/data/realdata_models.json` says which endpoint and model each one
belongs to. Without the samples (a fresh clone), the tests skip with a message. `IBKR_SDK_REALDATA` may point at the
samples folder elsewhere.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from ibkr_sdk import Result
from ibkr_sdk.models import RESPONSE_MODELS

ROOT = Path(__file__).resolve().parent.parent
MAPPING_FILE = ROOT / "tests/data/realdata_models.json"
MAPPING: dict[str, dict[str, Any]] = json.loads(MAPPING_FILE.read_text("utf-8"))["samples"]


def _samples_dir() -> Path | None:
    candidates = [Path(os.environ["IBKR_SDK_REALDATA"])] if os.environ.get("IBKR_SDK_REALDATA") else []
    # ../shared beside the clone; a git worktree sits one level deeper (<root>/wt/<name>).
    candidates += [parent / "shared/realdata/samples" for parent in ROOT.parents[:2]]
    return next((c for c in candidates if c.is_dir()), None)


SAMPLES = _samples_dir()
needs_samples = pytest.mark.skipif(
    SAMPLES is None, reason="the recorded gateway answers (../shared/realdata/samples/) are not beside this clone"
)


def _model(qualname: str) -> Any:
    area, name = qualname.split(".")
    return getattr(importlib.import_module(f"ibkr_sdk.models.{area}"), name)


@needs_samples
def test_every_sample_is_mapped() -> None:
    assert SAMPLES is not None
    on_disk = sorted(p.stem for p in SAMPLES.glob("*.json"))
    assert on_disk == sorted(MAPPING), "tests/data/realdata_models.json and the samples folder differ"


@needs_samples
@pytest.mark.parametrize("sample_id", sorted(MAPPING))
def test_sample_parses_into_its_model(sample_id: str) -> None:
    assert SAMPLES is not None
    entry = MAPPING[sample_id]
    sample = json.loads((SAMPLES / f"{sample_id}.json").read_text("utf-8"))
    assert sample["sdk_method"] == entry["endpoint"]
    model = _model(entry["model"])
    result = Result(data=sample["response"], endpoint=entry["endpoint"])
    if entry["endpoint"] in RESPONSE_MODELS:
        assert ".".join(RESPONSE_MODELS[entry["endpoint"]]) == entry["model"]
        parsed = result.parsed()  # the endpoint's own model, as a user gets it
    else:
        parsed = result.parsed(model)
    assert type(parsed) is model
    value = getattr(parsed, "root", parsed)
    if "member" in entry:
        assert type(value).__name__ == entry["member"], f"fell into the union member {type(value).__name__}"
    for name in entry.get("typed", ()):
        assert name in type(value).model_fields, f"{name} is not a declared field of {type(value).__name__}"
        assert getattr(value, name) == sample["response"][name]
        assert name not in (value.model_extra or {})
