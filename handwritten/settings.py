"""Checks of the connection settings a client is built with, and the TLS verification they resolve to.

Why hand-written: a bad setting must fail when the client is created, with an error naming the argument, not at
the first request with an error from deep inside `requests`.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any
from urllib.parse import urlsplit

from .transport import is_loopback

logger = logging.getLogger("ibkr_sdk")


def _where(name: str) -> str:
    return f"IbkrClient(): parameter {name!r}"


def check_url(url: Any) -> str:
    """The base URL, checked: a string with an http(s) scheme and a host."""
    if not isinstance(url, str):
        raise TypeError(f"{_where('url')} must be a string, got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{_where('url')} must be an http:// or https:// URL with a host, "
            f"e.g. 'https://localhost:5000/v1/api/'; got {url!r}"
        )
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"{_where('url')} has a port that is not a number from 0 to 65535: {url!r}") from None
    return url


def check_port(port: Any) -> int:
    """A TCP port from 1 to 65535, as an int or a string of digits (the peer's default is the string "5000")."""
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise TypeError(f"{_where('port')} must be a port number, got {type(port).__name__} {port!r}")
    text = str(port).strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{_where('port')} must be a port number from 1 to 65535, got {port!r}")
    return int(text)


def check_timeout(timeout: Any) -> float | tuple[float, float]:
    """Seconds above 0, or a `(connect, read)` pair of them."""
    values = timeout if isinstance(timeout, tuple) and len(timeout) == 2 else (timeout,)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{_where('timeout')} must be a number of seconds, got {type(value).__name__} {value!r}")
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{_where('timeout')} must be a finite number of seconds above 0, got {value!r}")
    return timeout  # type: ignore[no-any-return]


def check_max_retries(max_retries: Any) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int):
        raise TypeError(f"{_where('max_retries')} must be an integer, got {type(max_retries).__name__}")
    if max_retries < 0:
        raise ValueError(f"{_where('max_retries')} must be 0 or more, got {max_retries}")
    return max_retries


def resolve_verify(url: str, cacert: Any) -> bool | str:
    """The TLS verification setting for `url`.

    `cacert` None (unset): no verification for a loopback host (the gateway's self-signed certificate), the
    system store for any other host. An explicit False for a non-loopback host is honoured and logged. A path must
    name an existing file or directory.
    """
    if cacert is not None and not isinstance(cacert, (bool, str, os.PathLike)):
        raise TypeError(
            f"{_where('cacert')} must be a CA bundle path, True or False, got {type(cacert).__name__} {cacert!r}"
        )
    parts = urlsplit(url)
    host = parts.hostname or ""
    local = is_loopback(host)
    if parts.scheme.lower() == "http" and not local:
        logger.warning(
            "%s is plain http:// to a host that is not this machine: requests, account data and credentials "
            "travel unencrypted; use https://",
            url,
        )
    if cacert is None:
        return not local
    if isinstance(cacert, bool):
        if cacert is False and not local and parts.scheme.lower() == "https":
            logger.warning("TLS certificate verification is off for %s (cacert=False)", host)
        return cacert
    path = os.fspath(cacert)
    if not isinstance(path, str):
        raise TypeError(f"{_where('cacert')} must be a text path, got {type(path).__name__}")
    if not os.path.exists(path):
        raise ValueError(f"{_where('cacert')} names no file or directory: {path!r}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{_where('cacert')} is not readable: {path!r}")
    return path
