"""The one place the streaming client reads the stream catalogue (`spec/streams.yaml`, rendered into
`ibkr_sdk._streams`): topic codes, frame formats, acknowledgements, limits. No topic is spelled anywhere else.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..._streams import (
    HEARTBEAT_FIELD,
    STREAMS,
    STREAMS_BY_FRAME_TOPIC,
    TIC,
    TIC_TOPIC,
    UNSOLICITED,
    WAITING_FOR_SESSION,
    StreamSpec,
)

__all__ = [
    "HEARTBEAT_FIELD",
    "MD_FIELD_NAMES",
    "MD_META_KEYS",
    "MD_UPDATED_KEY",
    "STREAMS",
    "TIC",
    "TIC_TOPIC",
    "UNSOLICITED_TOPICS",
    "WAITING_FOR_SESSION",
    "StreamSpec",
    "acked",
    "by_code",
    "code",
    "frame_head",
    "stream",
    "unsubscribe_acked",
]


def stream(name: str) -> StreamSpec:
    """The catalogue entry of a stream (`market_data`, `orders`, ...)."""
    return STREAMS[name]


def code(spec: StreamSpec) -> str:
    """The short code events and binding keys use (the peer's `md`, `or`, ...): the topic without `s`/`u`."""
    return spec.topic[1:]


def frame_head(spec: StreamSpec) -> str:
    """The first part of the `topic` of this stream's frames (`smd` of `smd+265598`)."""
    return spec.route_format.split("+", 1)[0]


_BY_CODE = {code(s): s for s in STREAMS.values()}


def by_code() -> Mapping[str, StreamSpec]:
    return _BY_CODE


def acked(spec: StreamSpec) -> bool:
    return spec.subscribe_ack.kind != "none"


def unsubscribe_acked(spec: StreamSpec) -> bool:
    return spec.unsubscribe_ack.kind != "none"


UNSOLICITED_TOPICS = {name: topic.topic for name, topic in UNSOLICITED.items()}
"""Topic of each unsolicited frame kind by name: system, sts, act, blt, ntf, error, tic."""

_MD_PROPERTIES: Mapping[str, Any] = STREAMS["market_data"].payload_schema.get("properties", {})
MD_META_KEYS = frozenset(k for k in _MD_PROPERTIES if not k.isdigit())
"""Keys of a market-data frame that are bookkeeping (topic, conid, _updated, ...), not quote fields."""
MD_UPDATED_KEY = "_updated"
assert MD_UPDATED_KEY in MD_META_KEYS and not set(STREAMS_BY_FRAME_TOPIC) - {frame_head(s) for s in STREAMS.values()}

MD_FIELD_NAMES: dict[str, str] = {}  # field id -> name, from the snapshot field table when it is present
try:
    _names = importlib.import_module("ibkr_sdk.lib.snapshot_fields").SNAPSHOT_FIELDS
    MD_FIELD_NAMES = {str(field_id): name for name, field_id in _names.items()}
except (ImportError, AttributeError):  # pragma: no cover - the table comes with the REST side's snapshot helpers
    pass
