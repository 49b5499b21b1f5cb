"""Coordination of the processes (and hosts) that share one gateway: `IbkrClient(coordination=...)`.

- `"local"` (the default): every process of this machine talking to the same server shares its limits, and per
  account its order flow, through files in `IBKR_SDK_STATE_DIR` (`local.py`).
- `"process"`: within this process only (`process.py`).
- `"redis://..."` / `"rediss://..."`: a Redis server shared by several hosts (`redis.py`, the `redis` extra).

The interface every backend implements, and which the pacer, the order lock, the preflight and the tickler use,
is described in `base.py`. One backend object serves every client of the process that names the same store.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable

from .base import Backend, Grant, Lease, Limits, PacingStore, SlotSpec, Wait, WindowSpec, preflight_key
from .process import ProcessBackend

__all__ = [
    "Backend",
    "Grant",
    "Lease",
    "Limits",
    "PacingStore",
    "SlotSpec",
    "Wait",
    "WindowSpec",
    "backend_for",
    "check_spec",
]

logger = logging.getLogger("ibkr_sdk")

_BACKENDS: dict[tuple[str, str], Backend] = {}
_LOCK = threading.Lock()
_PROCESS = ProcessBackend()
FALLBACKS = (None, "process")


def check_spec(value: object, where: str = "IbkrClient()") -> str:
    """The coordination setting checked: "local", "process", or a redis:// or rediss:// URL."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("local", "process"):
            return text.lower()
        if text.lower().startswith(("redis://", "rediss://")) and len(text.split("://", 1)[1]) > 0:
            return text
    from .redis import safe_url

    shown = safe_url(value) if isinstance(value, str) else repr(value)
    raise ValueError(
        f"{where}: parameter 'coordination' must be 'local', 'process' or a redis:// / rediss:// URL, got {shown!r}"
    )


def backend_for(spec: str) -> Backend:
    """The process's backend for a checked setting (built on first use; Redis connects on its first call).

    Raises:
        CoordinationError: the store cannot be used (e.g. redis-py is not installed).
    """
    if spec == "process":
        return _PROCESS
    directory = ""
    if spec == "local":
        if sys.platform == "win32":
            with _LOCK:
                if ("local", "") not in _BACKENDS:
                    logger.warning(
                        "coordination 'local' is not available on Windows: falling back to 'process' (limits and "
                        "the order flow are shared by the clients of this process only); use a redis:// URL to share "
                        "them between processes"
                    )
                    _BACKENDS[("local", "")] = _PROCESS
            return _PROCESS
        from .local import default_state_dir

        directory = str(default_state_dir())
    with _LOCK:
        backend = _BACKENDS.get((spec, directory))
        if backend is None:
            if spec == "local":
                from pathlib import Path

                from .local import LocalBackend

                backend = LocalBackend(Path(directory))
            else:
                from .redis import RedisBackend

                backend = RedisBackend(spec)
            _BACKENDS[(spec, directory)] = backend
        return backend


def forget_gateway(port: int, preflights: Iterable[str]) -> None:
    """A new gateway (an embedded simulator) serves this loopback port: drop the preflight markers that the
    machine's `local` store keeps for an earlier gateway on the same port, so its clients send their preflight
    instead of having a request refused first. A real gateway restart keeps them (the clients recover from the
    refusal); a simulator is a new gateway each time, often on a port an earlier one used. Only the `local` store
    of the configured state directory is touched, and any failure is ignored."""
    from ..env import env_str

    if env_str("COORDINATION", "local") != "local" or sys.platform == "win32":
        return
    try:
        backend = backend_for("local")
        for host in ("127.0.0.1", "localhost"):
            for name in preflights:
                backend.delete(preflight_key(f"{host}:{port}", name))
    except Exception as exc:  # a store we cannot use: the clients fall back on the refusal and resend
        logger.debug("coordination: could not forget the markers of port %d: %s", port, exc)


def process_backend() -> Backend:
    return _PROCESS
