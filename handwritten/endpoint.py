"""Records describing endpoints and their parameters.

The generated `ibkr_sdk._endpoint_table` holds one `EndpointSpec` per catalogue entry; the runtime consults it to
validate arguments, encode the request, apply preflight and choose the retry policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ParamSpec:
    name: str
    wire: str
    location: str  # "path" | "query" | "body"
    type: str  # "str" | "int" | "float" | "bool" | "datetime" | "object" | "array" | "any"
    required: bool = False
    items: str | None = None
    many: str | None = None  # "comma" | "semicolon" | "array"
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    minimum: int | None = None  # bounds of a whole number (int, or str holding one)
    maximum: int | None = None
    fill: str | None = None  # "account_id"


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    http: str
    path: str
    params: tuple[ParamSpec, ...] = ()
    fixed_query: dict[str, Any] = field(default_factory=dict)
    fixed_body: dict[str, Any] | None = None
    retry_safe: bool = False
    pacing: str | None = None
    preflight: tuple[str, ...] = ()
    spec_file: str = ""
    base: str | None = None  # None: the client's base URL (/v1/api); "/gw/api/v1": Account Management, same host
    security: str | None = None  # "HTTPS" or "SIGNED_JWT" (the body travels as a signed JWT): OAuth 2.0 only
    scopes: tuple[str, ...] = ()  # OAuth 2.0 scopes, any one of which admits the operation


@dataclass(frozen=True)
class PacingBucket:
    name: str
    rate: int | None = None
    per: float | None = None
    concurrent: int | None = None
