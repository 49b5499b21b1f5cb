"""Load and check `spec/streams.yaml`, the catalogue of WebSocket streams, into a typed model.

The same file feeds `generated/ibkr_sdk/_streams.py` (the table the client and the simulator share),
`docs/api/streams.md` and `docs/asyncapi.json`. Errors name the file, the stream and the field.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .load import CatalogueError

STREAMS_FILE = "streams.yaml"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "spec" / "streams.schema.json"
ARGS = "args"  # the placeholder of a subscribe format that stands for the JSON argument object
SERVER_ID = "server_id"  # the placeholder of an unsubscribe format that stands for the server's subscription id


@dataclass(frozen=True)
class Target:
    name: str
    required: bool
    pattern: str
    doc: str


@dataclass(frozen=True)
class Arg:
    name: str
    wire: str
    type: str
    items: str | None
    required: bool
    enum: tuple[Any, ...] | None
    pattern: str | None
    minimum: float | None
    maximum: float | None
    doc: str


@dataclass(frozen=True)
class Ack:
    kind: str  # first_frame | message | none
    match: dict[str, str] | None
    doc: str


@dataclass(frozen=True)
class Stream:
    name: str
    topic: str
    unsubscribe_topic: str
    summary: str
    doc: str
    targets: tuple[Target, ...]
    args: tuple[Arg, ...]
    subscribe: str
    unsubscribe: str
    route: str
    key: str | None
    server_id_field: str | None
    subscribe_ack: Ack
    unsubscribe_ack: Ack
    expires_after: float | None
    renew_after: float | None
    max_concurrent: int | None
    limits_doc: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Unsolicited:
    name: str
    topic: str
    summary: str
    doc: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Keepalive:
    frame: str
    doc: str
    reply_topic: str | None


@dataclass(frozen=True)
class StreamCatalogue:
    title: str
    summary: str
    path: str
    oauth_query: str
    cookie: str
    ready_doc: str
    waiting_message: str
    session_frame: str
    heartbeat_topic: str
    heartbeat_field: str
    heartbeat_interval: float
    heartbeat_doc: str
    keepalive: tuple[Keepalive, ...]
    unknown_topic_doc: str
    unknown_topic_code: int
    streams: tuple[Stream, ...]
    unsolicited: tuple[Unsolicited, ...]


def _fields(fmt: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(fmt.replace("{}", "{{}}")) if name is not None]


def _ack(data: dict[str, Any]) -> Ack:
    return Ack(data["kind"], dict(data["match"]) if "match" in data else None, data["doc"])


def _stream(data: dict[str, Any], rel: str) -> Stream:
    where = f"{rel}: stream {data['name']!r}"
    targets = tuple(Target(t["name"], t.get("required", True), t["pattern"], t["doc"]) for t in data["targets"])
    args = tuple(
        Arg(
            a["name"],
            a["wire"],
            a["type"],
            a.get("items"),
            a["required"],
            tuple(a["enum"]) if "enum" in a else None,
            a.get("pattern"),
            a.get("minimum"),
            a.get("maximum"),
            a["doc"],
        )
        for a in data["args"]
    )
    names = [t.name for t in targets]
    for label, pattern in [(t.name, t.pattern) for t in targets] + [(a.name, a.pattern) for a in args if a.pattern]:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise CatalogueError(f"{where}: {label}: pattern {pattern!r} is not a regular expression: {exc}") from exc
    optional_seen = False
    for t in targets:
        if not t.required:
            optional_seen = True
        elif optional_seen:
            raise CatalogueError(f"{where}: targets: required target {t.name!r} after an optional one")
    for a in args:
        if (a.type == "array") != (a.items is not None):
            raise CatalogueError(f"{where}: arg {a.name!r}: `items` is required for arrays and only for them")
    if len({a.name for a in args}) != len(args) or len(set(names)) != len(names):
        raise CatalogueError(f"{where}: duplicate target or argument names")
    sub_fields = _fields(data["subscribe"])
    if not data["subscribe"].startswith(data["topic"]):
        raise CatalogueError(f"{where}: subscribe {data['subscribe']!r} must start with the topic {data['topic']!r}")
    if not data["unsubscribe"].startswith(data["unsubscribe_topic"]):
        raise CatalogueError(f"{where}: unsubscribe must start with {data['unsubscribe_topic']!r}")
    if data["topic"][1:] != data["unsubscribe_topic"][1:]:
        raise CatalogueError(f"{where}: topic and unsubscribe_topic must differ only in their first letter")
    if sub_fields != names + ([ARGS] if args or ARGS in sub_fields else []):
        raise CatalogueError(
            f"{where}: subscribe {data['subscribe']!r} must name the targets {names} in order, then {{{ARGS}}}"
            " when there are arguments"
        )
    unsub_fields = _fields(data["unsubscribe"])
    allowed = set(names) | ({SERVER_ID} if "server_id_field" in data else set())
    if not set(unsub_fields) <= allowed:
        raise CatalogueError(f"{where}: unsubscribe names {unsub_fields}, allowed {sorted(allowed)}")
    if not set(_fields(data["route"])) <= set(names):
        raise CatalogueError(f"{where}: route {data['route']!r} names an unknown target")
    if data["key"] is not None and data["key"] not in names:
        raise CatalogueError(f"{where}: key {data['key']!r} is not a target")
    for which in ("subscribe", "unsubscribe"):
        ack = data["ack"][which]
        if (ack["kind"] == "message") != ("match" in ack):
            raise CatalogueError(f"{where}: ack.{which}: `match` is required for kind message and only for it")
    limits = data.get("limits", {})
    return Stream(
        name=data["name"],
        topic=data["topic"],
        unsubscribe_topic=data["unsubscribe_topic"],
        summary=data["summary"],
        doc=" ".join(data["doc"].split()),
        targets=targets,
        args=args,
        subscribe=data["subscribe"],
        unsubscribe=data["unsubscribe"],
        route=data["route"],
        key=data["key"],
        server_id_field=data.get("server_id_field"),
        subscribe_ack=_ack(data["ack"]["subscribe"]),
        unsubscribe_ack=_ack(data["ack"]["unsubscribe"]),
        expires_after=limits.get("expires_after"),
        renew_after=limits.get("renew_after"),
        max_concurrent=limits.get("max_concurrent"),
        limits_doc=" ".join(limits.get("doc", "").split()),
        payload=data["payload"],
    )


def load_streams_if_present(spec_dir: Path) -> StreamCatalogue | None:
    """`load_streams`, or None for a catalogue without `streams.yaml` (then no stream outputs are rendered)."""
    return load_streams(spec_dir) if (Path(spec_dir) / STREAMS_FILE).exists() else None


def load_streams(spec_dir: Path) -> StreamCatalogue:
    """Read, validate and check `spec_dir/streams.yaml`."""
    path = Path(spec_dir) / STREAMS_FILE
    rel = f"spec/{STREAMS_FILE}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{rel}: cannot be read: {exc}") from exc
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        field = ".".join(str(p) for p in first.absolute_path) or "top level"
        raise CatalogueError(f"{rel}: {field}: {first.message}")
    streams = tuple(_stream(s, rel) for s in data["streams"])
    unsolicited = tuple(
        Unsolicited(u["name"], u["topic"], u["summary"], u["doc"], u["payload"]) for u in data["unsolicited"]
    )
    seen: dict[str, str] = {}
    for label, value in (
        [(f"stream {s.name}", s.topic) for s in streams]
        + [(f"stream {s.name}", s.unsubscribe_topic) for s in streams]
        + [(f"unsolicited {u.name}", u.topic) for u in unsolicited]
    ):
        if value in seen:
            raise CatalogueError(f"{rel}: topic {value!r} is declared by {seen[value]} and {label}")
        seen[value] = label
    names = [s.name for s in streams] + [u.name for u in unsolicited]
    if len(set(names)) != len(names):
        raise CatalogueError(f"{rel}: stream and topic names must be unique")
    return StreamCatalogue(
        title=data["title"],
        summary=" ".join(data["summary"].split()),
        path=data["path"],
        oauth_query=data["oauth_query"],
        cookie=data["cookie"],
        ready_doc=" ".join(data["ready"]["doc"].split()),
        waiting_message=data["ready"]["waiting_message"],
        session_frame=data["ready"]["session_frame"],
        heartbeat_topic=data["heartbeat"]["topic"],
        heartbeat_field=data["heartbeat"]["field"],
        heartbeat_interval=data["heartbeat"]["interval"],
        heartbeat_doc=data["heartbeat"]["doc"],
        keepalive=tuple(Keepalive(k["frame"], " ".join(k["doc"].split()), k["reply_topic"]) for k in data["keepalive"]),
        unknown_topic_doc=data["unknown_topic"]["doc"],
        unknown_topic_code=data["unknown_topic"]["error_code"],
        streams=streams,
        unsolicited=unsolicited,
    )
