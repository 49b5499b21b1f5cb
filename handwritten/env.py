"""Settings read from the environment: our own `IBKR_SDK_*` names first, the peer's `IBIND_*` names as a fallback
so users can migrate without renaming their variables."""

from __future__ import annotations

import os

PREFIX = "IBKR_SDK_"
FALLBACK_PREFIX = "IBIND_"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    """`IBKR_SDK_<name>`, else `IBIND_<name>`, else `default`."""
    for key in (PREFIX + name, FALLBACK_PREFIX + name):
        value = os.environ.get(key)
        if value is not None:
            return value
    return default


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    names = f"{PREFIX}{name} (or {FALLBACK_PREFIX}{name})"
    raise ValueError(f"environment variable {names} must be true or false, got {value!r}")


def env_cacert() -> str | bool | None:
    """A CA bundle path, a boolean, or None when unset (the client then picks the default for its host)."""
    value = env_str("CACERT")
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return value
