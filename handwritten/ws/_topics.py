"""The one place that reads the stream catalogue (spec/streams.yaml, rendered into `ibkr_sdk._streams`).

PROVISIONAL: until the generated table lands, the facts below stand in for it; they move to the spec.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Topic:
    name: str
    subscribe: str
    unsubscribe: str
    code: str  # frames of this stream carry a topic starting with subscribe code; routed by this 2-letter code
    subscribe_format: str
    unsubscribe_format: str
    acked: bool
    unsubscribe_acked: bool
    key: str | None  # "conid", "account_id" or None
    lifetime: float | None = None
    max_concurrent: int | None = None


_TABLE: dict[str, Topic] = {
    t.name: t
    for t in (
        Topic(
            "market_data",
            "smd",
            "umd",
            "md",
            "{sub}+{conid}+{args}",
            "{unsub}+{conid}+{{}}",
            True,
            False,
            "conid",
            900.0,
        ),
        Topic(
            "market_history",
            "smh",
            "umh",
            "mh",
            "{sub}+{conid}+{args}",
            "{unsub}+{server_id}",
            True,
            True,
            "conid",
            None,
            5,
        ),
        Topic(
            "price_ladder",
            "sbd",
            "ubd",
            "bd",
            "{sub}+{account_id}+{conid}{exchange}",
            "{unsub}+{account_id}",
            False,
            False,
            "account_id",
        ),
        Topic(
            "account_summary",
            "ssd",
            "usd",
            "sd",
            "{sub}+{account_id}+{args}",
            "{unsub}+{account_id}+{{}}",
            True,
            True,
            "account_id",
        ),
        Topic(
            "account_ledger",
            "sld",
            "uld",
            "ld",
            "{sub}+{account_id}+{args}",
            "{unsub}+{account_id}+{{}}",
            True,
            True,
            "account_id",
        ),
        Topic("orders", "sor", "uor", "or", "{sub}+{args}", "{unsub}+{{}}", False, False, None),
        Topic("pnl", "spl", "upl", "pl", "{sub}+{{}}", "{unsub}+{{}}", True, False, None),
        Topic("trades", "str", "utr", "tr", "{sub}+{args}", "{unsub}", True, False, None),
    )
}

UNSOLICITED = {
    "system": "system",
    "tic": "tic",
    "sts": "sts",
    "act": "act",
    "blt": "blt",
    "ntf": "ntf",
    "error": "error",
}
TIC = "tic"
WAITING_FOR_SESSION = "waiting for session"
UNSUBSCRIBED_SUMMARY = "unsubscribed from summary"
UNSUBSCRIBED_LEDGER = "unsubscribed from ledger"
UNSUBSCRIBED_HISTORY_PREFIX = "Unsubscribed "
MD_META_KEYS = frozenset({"topic", "conid", "conidEx", "_updated", "server_id"})
MD_UPDATED_KEY = "_updated"
MD_FIELD_NAMES: dict[str, str] = {}  # field id -> name, from the snapshot field table when it is present
try:
    _names = importlib.import_module("ibkr_sdk.lib.snapshot_fields").SNAPSHOT_FIELDS
    MD_FIELD_NAMES = {str(field_id): name for name, field_id in _names.items()}
except (ImportError, AttributeError):  # pragma: no cover - the table comes with the REST side's snapshot helpers
    pass


def topic(name: str) -> Topic:
    return _TABLE[name]


_BY_CODE = {t.code: t for t in _TABLE.values()}
_BY_SUBSCRIBE = {t.subscribe: t for t in _TABLE.values()}


def by_code() -> dict[str, Topic]:
    return _BY_CODE


def by_subscribe() -> dict[str, Topic]:
    return _BY_SUBSCRIBE


def render(fmt: str, t: Topic, **values: Any) -> str:
    return fmt.format(sub=t.subscribe, unsub=t.unsubscribe, **values)
