"""How `IbkrClient`'s methods present themselves in Python's own argument errors.

The methods live in mixins (`MarketdataEndpoints`, `CompatOverlay`, ...), and Python names a function by its
qualified name when a call does not fit its signature: `MarketdataEndpoints.live_marketdata_snapshot() got an
unexpected keyword argument 'conid'`. The user called `IbkrClient.live_marketdata_snapshot`, so that is the name
the functions get, once, when the class is built (no cost per call). Python 3.13 then adds "Did you mean
'conids'?" itself; on older versions a thin wrapper adds it, only after a call failed to bind.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

_NATIVE_SUGGESTIONS = sys.version_info >= (3, 13)


def present_methods(cls: type, *, suggest: bool = not _NATIVE_SUGGESTIONS) -> None:
    """Give every public method `cls` resolves to the qualified name `<cls>.<method>`; with `suggest`, make an
    unknown keyword argument's TypeError end with "Did you mean ...?" as Python 3.13's does."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        if not inspect.isfunction(attr):
            continue  # properties, class and static methods, attributes
        attr.__qualname__ = f"{cls.__name__}.{name}"
        if suggest:
            setattr(cls, name, _suggesting(attr))


def _suggesting(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def method(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TypeError as exc:
            # Only a call that did not bind: then the traceback holds this frame alone (func never ran).
            if not kwargs or exc.__traceback__ is None or exc.__traceback__.tb_next is not None:
                raise
            hint = _suggestion(func, kwargs, str(exc))
            if hint is None:
                raise
            raise TypeError(f"{exc}. Did you mean {hint!r}?") from None

    return method


def _suggestion(func: Callable[..., Any], kwargs: dict[str, Any], message: str) -> str | None:
    """The parameter an unknown keyword argument named in `message` was probably meant to be."""
    if "unexpected keyword argument" not in message:
        return None
    known = [p for p in inspect.signature(func).parameters if p != "self"]
    for key in kwargs:
        if key not in known and f"'{key}'" in message:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            return close[0] if close else None
    return None
