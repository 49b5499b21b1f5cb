"""Turn the arguments of an endpoint call into the exact request, refusing bad input before anything is sent.

Rules (from the catalogue, spec/README.md): `None` means "not sent"; a required parameter (or a path parameter)
must be given; `fill: account_id` parameters fall back to the client's account id; lists are checked element by
element and joined with commas or sent as JSON arrays; booleans are `true`/`false` in a query; datetimes are
`YYYYMMDD-HH:MM:SS`; values are judged by what they mean (digit strings are integers, numbers are valid strings,
enum values may differ in case and separators), never bools for numbers or strings.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from .endpoint import EndpointSpec, ParamSpec
from .errors import RequestValidationError

DATETIME_FORMAT = "%Y%m%d-%H:%M:%S"
_SEPARATORS = {"comma": ",", "semicolon": ";"}
_DATETIME_TEXT = re.compile(r"\d{8}-\d{2}:\d{2}:\d{2}")
_DOT_SEGMENTS = frozenset({".", ".."})


@dataclass(frozen=True)
class PreparedCall:
    """A validated request: HTTP method, path below the base URL, query and JSON body.

    `base` names another base path on the same host (`/gw/api/v1`, IBKR's Account Management API) and
    `signed_body` that the body must travel as a JWT signed with the OAuth 2.0 key (IBKR's SIGNED_JWT policy)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    base: str | None = None
    signed_body: bool = False


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _wrong_type(method: str, p: ParamSpec, expected: str, value: Any) -> RequestValidationError:
    return RequestValidationError(method, p.name, f"must be {expected}, got {type(value).__name__} {_describe(value)}")


_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")


def _as_int(value: Any) -> int | None:
    """An integer, a string of digits or a whole finite float, as an int; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _as_float(value: Any) -> int | float | None:
    """A finite number, or a string holding one, as a number; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _enum_key(value: str) -> str:
    return re.sub(r"[^0-9a-z]", "", value.lower())


def _canonical_enum(value: Any, allowed: tuple[Any, ...]) -> Any:
    """`value` when allowed; else the one allowed string it spells with other case or separators (e.g.
    `PreSubmitted` for `pre_submitted`); else `value` unchanged (and refused by the caller)."""
    if value in allowed or not isinstance(value, str):
        return value
    matches = [a for a in allowed if isinstance(a, str) and _enum_key(a) == _enum_key(value)]
    return matches[0] if len(matches) == 1 else value


def _check_item(method: str, p: ParamSpec, value: Any) -> Any:
    """Check what one value means against the parameter's type, enum and pattern; return it in its JSON form.

    Values are judged by meaning, not Python type: a string of digits is an integer, a number is a valid string
    (e.g. a strike `210.0` taken from another answer), a numeric string is a number. Booleans are never numbers or
    strings, containers are never scalars, and non-finite numbers are refused.
    """
    kind = p.type
    if kind == "str":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _wrong_type(method, p, "a string", value)
        if isinstance(value, float) and not math.isfinite(value):
            raise _wrong_type(method, p, "a string or a finite number", value)
        value = str(value)
        if value == "":
            raise RequestValidationError(method, p.name, "must not be an empty string")
    elif kind == "int":
        number = _as_int(value)
        if number is None:
            raise _wrong_type(method, p, "an integer (or a string of digits)", value)
        value = number
    elif kind == "float":
        real = _as_float(value)
        if real is None:
            raise _wrong_type(method, p, "a finite number (or a string holding one)", value)
        value = real
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _wrong_type(method, p, "True or False", value)
    elif kind == "datetime":
        if isinstance(value, datetime.datetime):
            value = value.strftime(DATETIME_FORMAT)
        elif not (isinstance(value, str) and _DATETIME_TEXT.fullmatch(value)):
            raise RequestValidationError(
                method, p.name, f"must be a datetime or a 'YYYYMMDD-HH:MM:SS' string, got {_describe(value)}"
            )
    elif kind == "object":
        if not isinstance(value, Mapping):
            raise _wrong_type(method, p, "a dict", value)
        value = dict(value)
    elif kind == "array":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _wrong_type(method, p, "a list", value)
        if p.items == "object" and not all(isinstance(v, Mapping) for v in value):
            raise RequestValidationError(method, p.name, "must be a list of dicts")
        if p.items == "str" and not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise RequestValidationError(method, p.name, "must be a list of strings")
        value = [dict(v) if isinstance(v, Mapping) else v for v in value]
    if p.enum is not None:
        value = _canonical_enum(value, p.enum)
        if value not in p.enum:
            allowed = ", ".join(str(v) for v in p.enum)
            raise RequestValidationError(method, p.name, f"must be one of {allowed}; got {_describe(value)}")
    if p.pattern is not None and isinstance(value, str) and not _compiled(p.pattern).fullmatch(value):
        raise RequestValidationError(method, p.name, f"must match the pattern {p.pattern!r}; got {_describe(value)}")
    if p.minimum is not None or p.maximum is not None:
        _check_bounds(method, p, value)
    return value


def _check_bounds(method: str, p: ParamSpec, value: Any) -> None:
    """A whole number (an int, or a str holding one) within the parameter's minimum and maximum."""
    bounds = (
        f"from {p.minimum} to {p.maximum}"
        if p.minimum is not None and p.maximum is not None
        else f"at least {p.minimum}"
        if p.minimum is not None
        else f"at most {p.maximum}"
    )
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise RequestValidationError(
            method, p.name, f"must be a whole number {bounds}; got {_describe(value)}"
        ) from None
    if (p.minimum is not None and number < p.minimum) or (p.maximum is not None and number > p.maximum):
        raise RequestValidationError(method, p.name, f"must be {bounds}; got {_describe(value)}")


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def prepare(
    spec: EndpointSpec, args: Mapping[str, Any], account_id: str | None, method_name: str | None = None
) -> PreparedCall:
    """Validate `args` (Python names → values) for `spec` and build the request.

    Raises:
        RequestValidationError: naming the method and the parameter, before anything is sent.
    """
    method = method_name or spec.name
    query: dict[str, str] = {k: _query_text(v) for k, v in spec.fixed_query.items()}
    body: Any = dict(spec.fixed_body) if spec.fixed_body is not None else None
    path_values: dict[str, str] = {}
    for p in spec.params:
        value = args.get(p.name)
        if value is None and p.fill == "account_id":
            value = account_id
            if value is None:
                raise RequestValidationError(
                    method, p.name, "is needed: pass it, or give the client a default account_id"
                )
        if value is None:
            if p.required or p.location == "path":
                raise RequestValidationError(method, p.name, "is required and must not be None")
            continue
        if p.many is not None:
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            if not values:
                raise RequestValidationError(method, p.name, "must not be an empty list")
            checked = [_check_item(method, p, v) for v in values]
            separator = _SEPARATORS.get(p.many)
            if separator is not None and isinstance(value, (list, tuple)):
                # A plain string is taken as already joined ("265598,8314"); inside a list, each element is one.
                for item in checked:
                    if separator in _query_text(item):
                        raise RequestValidationError(
                            method,
                            p.name,
                            f"has an element containing {separator!r}, which separates the elements on the wire: "
                            f"{_describe(item)}; pass each value as its own element",
                        )
            wire_value: Any = separator.join(_query_text(v) for v in checked) if separator else checked
        else:
            wire_value = _check_item(method, p, value)
            if p.type == "array" and not wire_value and p.required:
                raise RequestValidationError(method, p.name, "must not be an empty list")
        if p.location == "path":
            text = _query_text(wire_value)
            if text in _DOT_SEGMENTS:
                # quote() leaves dots alone and URL normalisation removes dot segments: the request would go to
                # another path.
                raise RequestValidationError(method, p.name, f"must not be {text!r}, which would change the path")
            path_values[p.wire] = quote(text, safe="")
        elif p.location == "query":
            if isinstance(wire_value, list):
                query[p.wire] = ",".join(_query_text(v) for v in wire_value)
            else:
                query[p.wire] = _query_text(wire_value)
        elif p.wire == "*":
            body = wire_value
        else:
            if body is None:
                body = {}
            body[p.wire] = wire_value
    path = spec.path.format(**path_values) if path_values else spec.path
    if spec.base is None and spec.security is None:
        return PreparedCall(spec.http, path, query, body)
    return PreparedCall(spec.http, path, query, body, spec.base, spec.security == "SIGNED_JWT")
