"""Session helpers: health check and authentication status check.

Why hand-written: they interpret the answer of the tickle / auth status endpoints into a single verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._client_base import GeneratedEndpoints
from .errors import ExternalBrokerError, IbkrError


def _auth_flags(status: Any) -> tuple[bool, bool, bool]:
    if not isinstance(status, Mapping) or not all(k in status for k in ("authenticated", "competing", "connected")):
        raise IbkrError(f"the gateway's status answer is malformed: {status!r}")
    return bool(status["authenticated"]), bool(status["competing"]), bool(status["connected"])


class SessionOverlay(GeneratedEndpoints):
    """`check_health` and `check_auth_status`."""

    def check_health(self) -> bool:
        """True when the gateway answers and its brokerage session is authenticated, connected and not competing.

        Uses `tickle()`. A gateway that cannot be reached, or an unauthenticated session, gives False; an answer
        of unexpected shape raises `IbkrError`.
        """
        try:
            data = self.tickle().data
        except ExternalBrokerError:
            return False
        if not isinstance(data, Mapping):
            raise IbkrError(f"the gateway's tickle answer is malformed: {data!r}")
        iserver = data.get("iserver")
        status = iserver.get("authStatus") if isinstance(iserver, Mapping) else None
        authenticated, competing, connected = _auth_flags(status)
        return authenticated and connected and not competing

    def check_auth_status(self) -> bool:
        """True when `authentication_status()` reports authenticated, connected and not competing."""
        authenticated, competing, connected = _auth_flags(self.authentication_status().data)
        return authenticated and connected and not competing
