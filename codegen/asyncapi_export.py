"""Export the stream catalogue (`spec/streams.yaml`) as an AsyncAPI 2.6 document beside the OpenAPI one.

`python -m codegen --openapi docs/openapi.json` also writes `docs/asyncapi.json`. One channel per stream (named by
its frames' topic) with the subscribe frame the client publishes and the payload the server sends; one channel
per unsolicited topic. The `x-ibkr-*` members carry what AsyncAPI has no field for (acknowledgements, limits).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .render import _project_version
from .streams import Stream, StreamCatalogue

ASYNCAPI_VERSION = "2.6.0"


def _arg_schema(stream: Stream) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for a in stream.args:
        schema: dict[str, Any]
        scalar = {"str": "string", "int": "integer", "bool": "boolean"}
        if a.type == "array":
            schema = {"type": "array", "items": {"type": scalar[a.items or "str"]}}
        else:
            schema = {"type": scalar[a.type]}
        target = schema["items"] if a.type == "array" else schema
        if a.pattern:
            target["pattern"] = a.pattern
        if a.enum:
            target["enum"] = list(a.enum)
        if a.minimum is not None:
            target["minimum"] = a.minimum
        if a.maximum is not None:
            target["maximum"] = a.maximum
        schema["description"] = a.doc
        props[a.wire] = schema
    return {
        "type": "object",
        "properties": props,
        "required": [a.wire for a in stream.args if a.required],
    }


def _channel_name(fmt: str) -> str:
    return fmt.replace("{}", "").rstrip("+")


def build(cat: StreamCatalogue) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for s in cat.streams:
        base = "".join(part.capitalize() for part in s.name.split("_"))
        messages[f"{base}Subscribe"] = {
            "name": f"{base}Subscribe",
            "title": s.subscribe,
            "contentType": "text/plain",
            "payload": {
                "type": "string",
                "description": f"Text frame `{s.subscribe}`; `{{args}}` is the JSON object below.",
            },
            "x-ibkr-arguments": _arg_schema(s),
        }
        messages[f"{base}Unsubscribe"] = {
            "name": f"{base}Unsubscribe",
            "title": s.unsubscribe,
            "contentType": "text/plain",
            "payload": {"type": "string", "description": f"Text frame `{s.unsubscribe}`."},
        }
        messages[f"{base}Frame"] = {"name": f"{base}Frame", "title": s.summary, "payload": s.payload}
        channel: dict[str, Any] = {
            "description": f"{s.summary} {s.doc}".strip(),
            "publish": {
                "operationId": f"subscribe_{s.name}",
                "message": {
                    "oneOf": [
                        {"$ref": f"#/components/messages/{base}Subscribe"},
                        {"$ref": f"#/components/messages/{base}Unsubscribe"},
                    ]
                },
            },
            "subscribe": {"operationId": f"on_{s.name}", "message": {"$ref": f"#/components/messages/{base}Frame"}},
            "x-ibkr-topic": s.topic,
            "x-ibkr-unsubscribe-topic": s.unsubscribe_topic,
            "x-ibkr-routing-key": s.key,
            "x-ibkr-ack": {
                "subscribe": {"kind": s.subscribe_ack.kind, "match": s.subscribe_ack.match},
                "unsubscribe": {"kind": s.unsubscribe_ack.kind, "match": s.unsubscribe_ack.match},
            },
        }
        limits = {
            k: v
            for k, v in (
                ("expires_after", s.expires_after),
                ("renew_after", s.renew_after),
                ("max_concurrent", s.max_concurrent),
            )
            if v is not None
        }
        if limits:
            channel["x-ibkr-limits"] = limits
        if s.targets:
            channel["parameters"] = {
                t.name: {"description": t.doc, "schema": {"type": "string", "pattern": t.pattern}} for t in s.targets
            }
        channels[_channel_name(s.route)] = channel
    for u in cat.unsolicited:
        name = "".join(part.capitalize() for part in u.name.split("_"))
        messages[name] = {"name": name, "title": u.summary, "payload": u.payload}
        channels[u.topic] = {
            "description": f"{u.summary} {u.doc}",
            "subscribe": {"operationId": f"on_{u.name}", "message": {"$ref": f"#/components/messages/{name}"}},
        }
    for k in cat.keepalive:
        channels[k.frame] = {
            "description": k.doc,
            "publish": {"operationId": "send_" + k.frame.replace("+", "_"), "message": {"payload": {"const": k.frame}}},
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:ibkr-sdk:cpapi:websocket",
        "info": {
            "title": f"ibkr_sdk: {cat.title}",
            "version": _project_version(),
            "description": (
                f"Generated by codegen from spec/streams.yaml. {cat.summary} {cat.ready_doc} {cat.heartbeat_doc}"
            ),
        },
        "servers": {
            "gateway": {
                "url": f"localhost:5000/v1/api{cat.path}",
                "protocol": "wss",
                "description": f"Client Portal Gateway; cookie `{cat.cookie}` carries the session from /tickle.",
            },
            "oauth": {
                "url": f"api.ibkr.com/v1/api{cat.path}",
                "protocol": "wss",
                "description": f"IBKR's hosted API; query `{cat.oauth_query}=<access token>`.",
            },
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {"messages": messages},
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write(cat: StreamCatalogue, target: Path) -> Path:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dumps(build(cat)), encoding="utf-8", newline="\n")
    return target
