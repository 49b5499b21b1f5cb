"""Typed intermediate model between the YAML catalogue and the templates.

Templates read only these frozen records; every derived string (annotation, default, signature) is computed here,
so the templates stay loops and substitutions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PY_TYPES = {
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "datetime": "datetime.datetime",
    "object": "dict[str, Any]",
    "any": "Any",
}

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
TRADING_BASE = "/v1/api"
ACCOUNT_MANAGEMENT_BASE = "/gw/api/v1"


@dataclass(frozen=True)
class Param:
    name: str
    wire: str
    location: str  # path | query | body
    type: str
    required: bool
    doc: str
    items: str | None = None
    default: Any = None
    many: str | None = None  # comma | semicolon | array
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    fill: str | None = None

    @property
    def base_annotation(self) -> str:
        if self.type == "array":
            return f"list[{PY_TYPES[self.items or 'any']}]"
        return PY_TYPES[self.type]

    @property
    def annotation(self) -> str:
        ann = self.base_annotation
        if self.many:
            ann = f"OneOrMany[{ann}]"
        if not self.required and self.default is None:
            ann = f"{ann} | None"
        return ann

    @property
    def signature(self) -> str:
        if self.required:
            return f"{self.name}: {self.annotation}"
        return f"{self.name}: {self.annotation} = {self.default!r}"

    @property
    def list_rule(self) -> str:
        if self.many == "comma":
            return "one or many, sent comma-joined"
        if self.many == "semicolon":
            return "one or many, sent joined with semicolons"
        if self.many == "array":
            return "one or many, sent as a JSON array"
        return ""

    @property
    def doc_line(self) -> str:
        extras = []
        if self.list_rule:
            extras.append(self.list_rule[0].upper() + self.list_rule[1:])
        if self.enum:
            extras.append("One of: " + ", ".join(str(v) for v in self.enum))
        if self.pattern:
            extras.append(f"Must match `{self.pattern}`")
        if self.minimum is not None and self.maximum is not None:
            extras.append(f"From {self.minimum} to {self.maximum}")
        elif self.minimum is not None:
            extras.append(f"At least {self.minimum}")
        elif self.maximum is not None:
            extras.append(f"At most {self.maximum}")
        if self.fill == "account_id":
            extras.append("Defaults to the client's account id")
        text = self.doc.strip()
        if extras:
            text = text.rstrip(".") + ". " + ". ".join(extras) + "."
        return text


@dataclass(frozen=True)
class Example:
    call: dict[str, Any]
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Endpoint:
    area: str
    source_file: str
    name: str
    http: str
    path: str
    summary: str
    doc: str
    params: tuple[Param, ...]
    retry: str
    origin: str
    examples: tuple[Example, ...]
    fixed_query: dict[str, Any] = field(default_factory=dict)
    fixed_body: dict[str, Any] | None = None
    pacing: str | None = None
    preflight: tuple[str, ...] = ()
    openapi: str | None = None
    legacy: str | None = None
    overlay: bool = False
    notes: tuple[str, ...] = ()
    base: str = TRADING_BASE  # the base path `path` is below: /v1/api, or /gw/api/v1 on the same host
    security: str | None = None  # IBKR's policy of a /gw/api/v1 operation: HTTPS or SIGNED_JWT
    scopes: tuple[str, ...] = ()  # OAuth 2.0 scopes, any one of which admits the operation

    @property
    def full_path(self) -> str:
        """The path below the host, e.g. `/gw/api/v1/accounts` (what IBKR's document lists)."""
        return self.base + self.path

    @property
    def signed_body(self) -> bool:
        """True when the body travels as a JWT signed with the OAuth 2.0 key (IBKR's SIGNED_JWT policy)."""
        return self.security == "SIGNED_JWT"

    @property
    def method_name(self) -> str:
        """Name of the generated method: private when a hand-written overlay provides the public one."""
        return f"_{self.name}" if self.overlay else self.name

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(PLACEHOLDER.findall(self.path))

    @property
    def signature(self) -> str:
        return ", ".join(["self"] + [p.signature for p in self.params])

    @property
    def uses_datetime(self) -> bool:
        return any(p.type == "datetime" for p in self.params)

    @property
    def trace(self) -> str:
        bits = []
        if self.preflight:
            bits.append("preflight: " + ", ".join(self.preflight))
        if self.pacing:
            bits.append(f"pacing: {self.pacing}")
        bits.append(f"retry: {self.retry}")
        bits.append(f"spec: {self.source_file}")
        return " · ".join(bits)

    @property
    def auth(self) -> str:
        """OAuth 2.0 security policy and scopes of a /gw/api/v1 operation, for docstrings; empty for others."""
        if not self.security:
            return ""
        return f"OAuth 2.0 · security: {self.security} · scopes: " + " or ".join(self.scopes)


@dataclass(frozen=True)
class Area:
    name: str
    title: str
    summary: str
    source_file: str
    endpoints: tuple[Endpoint, ...]

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_")) + "Endpoints"

    @property
    def uses_datetime(self) -> bool:
        return any(e.uses_datetime for e in self.endpoints)

    @property
    def uses_one_or_many(self) -> bool:
        return any(p.many for e in self.endpoints for p in e.params)

    @property
    def uses_any(self) -> bool:
        return any("Any" in p.annotation for e in self.endpoints for p in e.params)


@dataclass(frozen=True)
class Bucket:
    name: str
    doc: str
    rate: int | None = None
    per: float | None = None
    concurrent: int | None = None


@dataclass(frozen=True)
class Catalogue:
    areas: tuple[Area, ...]
    buckets: tuple[Bucket, ...]
    global_limits: tuple[Bucket, ...]
    spec_sha256: str

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(e for a in self.areas for e in a.endpoints)
