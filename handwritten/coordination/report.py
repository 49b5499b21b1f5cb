"""What `ibkr-sdk coordination` shows: the backend, the state of every pacing window of one server, and who holds
the order flow of one account. It reads the store as a client with the same settings would, and sends nothing to
the gateway."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from . import backend_for, check_spec


def describe(url: str, account: str | None, spec: str, time_scale: float = 1.0, oauth: bool = False) -> dict[str, Any]:
    """The coordination state as a JSON-ready dict.

    Raises:
        CoordinationError: the store cannot be read.
    """
    from ..._endpoint_table import GLOBAL_LIMITS, PACING_BUCKETS
    from ..pacing import Pacer

    checked = check_spec(spec, "ibkr-sdk coordination")
    backend = backend_for(checked)
    address = (urlsplit(url).netloc or url).lower()
    limit = GLOBAL_LIMITS["oauth" if oauth else "gateway"]
    pacer = Pacer(PACING_BUCKETS, limit, time_scale=time_scale, coordination=backend, key=address)
    report: dict[str, Any] = {"server": address, **pacer.describe()}
    windows = report.get("windows", {})
    quiet = sorted(name for name, w in windows.items() if not w["counted"] and name != "<global>")
    report["windows"] = {name: w for name, w in windows.items() if name not in quiet}
    report["quiet_windows"] = quiet  # nothing counted in them now
    if backend.name == "process":
        report["note"] = "coordination 'process' keeps its state inside each process: nothing to show from outside"
    if account:
        holder = backend.lease(order_flow_key(address, account)).holder()
        report["order_flow"] = {"account": account, "holder": holder}
    return report


def order_flow_key(address: str, account: str) -> str:
    """The store key of the order flow of one server (host:port) and account."""
    return f"{address.lower()}:orders:{account}"
