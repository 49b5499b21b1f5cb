"""Tests of the generator itself: goldens, a rendered fragment that must work, determinism, and error reporting."""

from __future__ import annotations

import filecmp
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from codegen.load import CatalogueError, load_catalogue
from codegen.render import render_tree
from tests.recording_server import RecordingServer

ROOT = Path(__file__).resolve().parents[2]
MINI = Path(__file__).parent / "fixtures" / "mini"
GOLDEN = Path(__file__).parent / "goldens" / "mini"


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def _render_mini(dest: Path) -> None:
    render_tree(load_catalogue(MINI), MINI, dest)


def test_mini_catalogue_renders_to_goldens(tmp_path: Path) -> None:
    _render_mini(tmp_path)
    if os.environ.get("UPDATE_GOLDENS"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(tmp_path, GOLDEN)
    got, want = _tree(tmp_path), _tree(GOLDEN)
    assert sorted(got) == sorted(want), "added or removed files"
    for rel in want:
        assert got[rel] == want[rel], f"{rel} differs from its golden (UPDATE_GOLDENS=1 rewrites goldens)"


def test_rendered_fragment_works_against_a_server(tmp_path: Path, recorder: RecordingServer) -> None:
    """Import the rendered mini package (with the real runtime as its `lib`) and call it over HTTP."""
    pkg = tmp_path / "mini_pkg"
    _render_mini(tmp_path)
    shutil.move(str(tmp_path / "ibkr_sdk"), pkg)
    shutil.copytree(ROOT / "handwritten", pkg / "lib")
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib
        import threading

        table = importlib.import_module("mini_pkg._endpoint_table")
        base = importlib.import_module("mini_pkg._client_base")
        transport_mod = importlib.import_module("mini_pkg.lib.transport")

        client: Any = base.GeneratedEndpoints()
        client.account_id = "DU1234567"
        client._transport = transport_mod.Transport(recorder.url, max_retries=0)
        client._endpoints = table.ENDPOINTS
        client._auto_preflight = True
        client._preflight_done = set()
        client._preflight_lock = threading.Lock()

        mini = yaml.safe_load((MINI / "widgets.yaml").read_text())
        for endpoint in mini["endpoints"]:
            name = ("_" if endpoint.get("overlay") else "") + endpoint["name"]
            for ex in endpoint["examples"]:
                recorder.reset()
                getattr(client, name)(**ex["call"])
                sent = recorder.requests[-1]
                assert (sent.method, sent.path) == (ex["expect"]["method"], "/v1/api" + ex["expect"]["path"])
                assert sent.query == ex["expect"]["query"]
                assert sent.body == ex["expect"]["body"]
        # create_widget names list_all as preflight: it ran once, first, and not again.
        recorder.reset()
        client.create_widget(tags=["t"])
        client.create_widget(tags=["u"])
        assert [r.path for r in recorder.requests][0] == "/v1/api/acct/DU1234567/widgets"
        client._preflight_done.clear()
        recorder.reset()
        client.create_widget(tags=["t"])
        client.create_widget(tags=["u"])
        assert [r.path for r in recorder.requests] == [
            "/v1/api/all",
            "/v1/api/acct/DU1234567/widgets",
            "/v1/api/acct/DU1234567/widgets",
        ]
    finally:
        sys.path.remove(str(tmp_path))
        for mod in [m for m in sys.modules if m == "mini_pkg" or m.startswith("mini_pkg.")]:
            del sys.modules[mod]


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for rel, data in _tree(root).items():
        h.update(rel.encode() + b"\0" + data + b"\0")
    return h.hexdigest()


def test_real_catalogue_output_is_deterministic(tmp_path: Path) -> None:
    """Two runs with different hash seeds give byte-identical trees, equal to the committed generated/."""
    hashes = []
    for seed in ("0", "1"):
        out = tmp_path / f"run{seed}"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run(
            [sys.executable, "-m", "codegen", "--spec", "spec", "--out", str(out), "--ts", str(out / "ts")],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
        hashes.append(_tree_hash(out))
    assert hashes[0] == hashes[1]
    committed = ROOT / "generated"
    dcmp = filecmp.dircmp(tmp_path / "run0", committed, ignore=["__pycache__"])
    assert _tree_hash(tmp_path / "run0") == _tree_hash(committed), f"generated/ is stale: {dcmp.diff_files}"


def _mutated(tmp_path: Path, mutate: Any) -> Path:
    spec = tmp_path / "spec"
    shutil.copytree(MINI, spec)
    data = yaml.safe_load((spec / "widgets.yaml").read_text())
    mutate(data)
    (spec / "widgets.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["endpoints"][1].update(http="FETCH"), "spec/widgets.yaml: endpoint 'account_widgets': field http"),
        (lambda d: d["endpoints"][0]["params"][0].pop("doc"), "endpoint 'list_widgets': field params[0]"),
        (lambda d: d["endpoints"][0]["params"][1].update(**{"in": "header"}), "field params[1].in"),
        (lambda d: d["endpoints"][2].update(pacing="nope"), "endpoint 'create_widget': field pacing: unknown bucket"),
        (lambda d: d["endpoints"][2].update(preflight=["missing"]), "field preflight: unknown endpoint 'missing'"),
        (lambda d: d["endpoints"][1].update(path="/acct/{acct}/widgets"), "endpoint 'account_widgets': field path"),
        (lambda d: d["endpoints"][3].update(name="list_widgets"), "endpoint 'list_widgets': field name: duplicate"),
        (lambda d: d["endpoints"][0]["examples"][0]["call"].update(nope=1), "field examples[0].call"),
        (lambda d: d["endpoints"][0]["params"].reverse(), "field params[4].required"),
    ],
)
def test_invalid_catalogue_names_file_endpoint_and_field(tmp_path: Path, mutate: Any, expected: str) -> None:
    spec = _mutated(tmp_path, mutate)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(spec)
    assert expected in str(info.value)


def test_generator_cli_refuses_invalid_catalogue(tmp_path: Path) -> None:
    spec = _mutated(tmp_path, lambda d: d["endpoints"][0].update(retry="sometimes"))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "codegen", "--spec", str(spec), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1
    assert "spec/widgets.yaml: endpoint 'list_widgets': field retry" in proc.stderr
    assert not out.exists(), "nothing is written from an invalid catalogue"
