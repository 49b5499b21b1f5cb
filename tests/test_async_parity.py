"""AsyncIbkrClient has every public IbkrClient method as a coroutine with the identical signature and docstring, is
exported lazily, and `import ibkr_sdk` does not load aiohttp."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import ibkr_sdk
from ibkr_sdk import IbkrClient
from ibkr_sdk.lib.aio.client import AsyncIbkrClient

# The list: client machinery with no coroutine twin (`close` becomes `aclose`).
NOT_MIRRORED = {"close", "close_session", "make_session", "register_shutdown_handler", "start_tickler", "stop_tickler"}
PUBLIC = sorted(
    name for name in dir(IbkrClient) if not name.startswith("_") and inspect.isfunction(getattr(IbkrClient, name))
)


def test_the_surface_is_the_sync_one() -> None:
    assert len(PUBLIC) > 130
    missing = [n for n in PUBLIC if n not in NOT_MIRRORED and not hasattr(AsyncIbkrClient, n)]
    assert missing == []
    extra = sorted(
        n
        for n in dir(AsyncIbkrClient)
        if not n.startswith("_") and inspect.iscoroutinefunction(getattr(AsyncIbkrClient, n)) and n not in PUBLIC
    )
    assert extra == ["aclose"]


@pytest.mark.parametrize("name", [n for n in PUBLIC if n not in NOT_MIRRORED])
def test_each_method_is_a_coroutine_with_the_same_signature_and_doc(name: str) -> None:
    ours, theirs = getattr(AsyncIbkrClient, name), getattr(IbkrClient, name)
    assert inspect.iscoroutinefunction(ours), name
    sync_sig, async_sig = inspect.signature(theirs), inspect.signature(ours)
    shape = [(p.name, p.kind, p.default, str(p.annotation)) for p in sync_sig.parameters.values()]
    assert [(p.name, p.kind, p.default, str(p.annotation)) for p in async_sig.parameters.values()] == shape
    assert str(async_sig.return_annotation) == str(sync_sig.return_annotation)
    assert inspect.getdoc(ours) == inspect.getdoc(theirs)


def test_the_constructor_takes_the_same_arguments() -> None:
    sync_sig, async_sig = inspect.signature(IbkrClient.__init__), inspect.signature(AsyncIbkrClient.__init__)
    assert [(p.name, p.kind, p.default) for p in async_sig.parameters.values()] == [
        (p.name, p.kind, p.default) for p in sync_sig.parameters.values()
    ]


def test_lazy_export_and_a_light_import() -> None:
    assert "AsyncIbkrClient" in ibkr_sdk.__all__ and ibkr_sdk.AsyncIbkrClient is AsyncIbkrClient
    code = (
        "import sys, ibkr_sdk; print('aiohttp' in sys.modules); "
        "ibkr_sdk.AsyncIbkrClient; print('aiohttp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "True"]
