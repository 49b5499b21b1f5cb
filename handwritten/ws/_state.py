"""Connection states of the streaming client."""

from __future__ import annotations

from enum import Enum


class WsState(str, Enum):
    """Where the connection is: STOPPED -> STARTING -> OPEN -> AUTHENTICATED, and DEGRADED while reconnecting."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    OPEN = "OPEN"
    AUTHENTICATED = "AUTHENTICATED"
    CLOSED = "CLOSED"
    DEGRADED = "DEGRADED"
    STOPPING = "STOPPING"

    def __str__(self) -> str:
        return self.value
