"""Opt-in log output for the `ibkr_sdk` logger, with the peer library's entry points.

The SDK only ever logs to `logging.getLogger("ibkr_sdk")` and adds no handler by itself. `ibind_logs_initialize()`
(the peer's name) attaches a console and/or a daily file handler when the user asks for it; `reset_logs()` removes
exactly what it attached. Account ids are masked in that output by `AccountIdMaskingFormatter`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from .env import env_bool, env_str
from .transport import mask_account_ids

LOGGER_NAME = "ibkr_sdk"
DEFAULT_FORMAT = "%(asctime)s|%(levelname)-.1s| %(message)s"
_LEVELS = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}

_lock = threading.Lock()
_installed: list[logging.Handler] = []
_previous_level: int | None = None


class AccountIdMaskingFormatter(logging.Formatter):
    """A `logging.Formatter` that hides the digits of account ids in the formatted text, tracebacks included.

    Attach it to your own handlers that receive `ibkr_sdk` logs. `IBKR_SDK_MASK_ACCOUNT_IDS=false` (or
    `IBIND_MASK_ACCOUNT_IDS=false`) turns masking off; it is on by default.
    """

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return mask_account_ids(text) if env_bool("MASK_ACCOUNT_IDS", True) else text


def _level(name: str) -> int:
    upper = name.strip().upper()
    if upper not in _LEVELS:
        raise ValueError(
            f"ibind_logs_initialize(): parameter 'log_level' must be one of {sorted(_LEVELS)}, got {name!r}"
        )
    return int(getattr(logging, upper))


def ibind_logs_initialize(
    log_to_console: bool | None = None,
    log_to_file: bool | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
    print_file_logs: bool | None = None,
) -> None:
    """Send the `ibkr_sdk` logger's records to the console and/or a daily log file (opt-in, idempotent).

    Unset arguments come from the environment (`IBKR_SDK_<NAME>`, then the peer's `IBIND_<NAME>`), else the peer's
    defaults: console and file on, level `INFO`, format `%(asctime)s|%(levelname)-.1s| %(message)s`.

    Args:
        log_to_console: Write records at `log_level` and above to standard output.
        log_to_file: Also write every record (DEBUG and above) to `ibkr_sdk.log` in `IBKR_SDK_LOGS_DIR` (the system
            temporary directory by default), rotated at midnight.
        log_level: Minimum level shown on the console: DEBUG, INFO, WARNING, ERROR or CRITICAL.
        log_format: `logging` format of both outputs.
        print_file_logs: Show the file's records on the console too (its level becomes DEBUG).

    A second call changes nothing; `reset_logs()` removes the handlers again.
    """
    global _previous_level
    console = env_bool("LOG_TO_CONSOLE", True) if log_to_console is None else log_to_console
    to_file = env_bool("LOG_TO_FILE", True) if log_to_file is None else log_to_file
    level = _level(log_level if log_level is not None else env_str("LOG_LEVEL", "INFO") or "INFO")
    fmt = log_format if log_format is not None else env_str("LOG_FORMAT", DEFAULT_FORMAT) or DEFAULT_FORMAT
    echo_file = env_bool("PRINT_FILE_LOGS", False) if print_file_logs is None else print_file_logs
    with _lock:
        if _installed:
            return
        logger = logging.getLogger(LOGGER_NAME)
        formatter = AccountIdMaskingFormatter(fmt, datefmt="%H:%M:%S")
        handlers: list[logging.Handler] = []
        if console:
            stream = logging.StreamHandler(sys.stdout)
            stream.setLevel(logging.DEBUG if (to_file and echo_file) else level)
            stream.setFormatter(formatter)
            handlers.append(stream)
        if to_file:
            import tempfile
            from logging.handlers import TimedRotatingFileHandler  # loaded only when file logs are asked for

            directory = env_str("LOGS_DIR") or tempfile.gettempdir()
            os.makedirs(directory, exist_ok=True)
            file_handler = TimedRotatingFileHandler(
                os.path.join(directory, "ibkr_sdk.log"), when="midnight", encoding="utf-8", delay=True
            )
            file_handler.setLevel(logging.DEBUG)
            file_handler.setFormatter(AccountIdMaskingFormatter(fmt))
            handlers.append(file_handler)
        if not handlers:
            return
        _previous_level = logger.level
        logger.setLevel(min(h.level for h in handlers))
        for handler in handlers:
            logger.addHandler(handler)
        _installed.extend(handlers)


def reset_logs() -> None:
    """Remove (and close) the handlers `ibind_logs_initialize()` attached and restore the logger's level."""
    global _previous_level
    with _lock:
        logger = logging.getLogger(LOGGER_NAME)
        for handler in _installed:
            logger.removeHandler(handler)
            handler.close()
        _installed.clear()
        if _previous_level is not None:
            logger.setLevel(_previous_level)
            _previous_level = None
