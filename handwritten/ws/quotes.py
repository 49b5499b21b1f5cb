"""The current quote of each contract, merged from market-data frames.

The gateway sends only the fields that changed since its last frame for a contract, so "the last price of AAPL now"
is the latest value of field 31 across all frames so far. `QuoteBook.fold` folds each frame into an immutable
`Quote` (a new object per frame, so a consumer on another thread can keep one without locks), readable by field id
(`quote["31"]`) or by field name (`quote["last_price"]`), with `number()` for the numeric value of a field.

A quote is merged lazily: it keeps the frame and the quote before it, and builds its fields on first read (at most
a few frames back: every `_MAX_CHAIN`-th quote of a contract is built at once, which bounds both the work of a read
and the frames a quote keeps alive). A reader who never looks at quotes costs the socket reader no copying.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Quote", "QuoteBook", "parse_number"]

_PREFIXES = ("C", "H")  # gateway marks: C = previous close (no trade today), H = trading halted
_SUFFIXES = {"K": 1e3, "M": 1e6, "B": 1e9}


def parse_number(value: Any) -> float | None:
    """The numeric value of a market-data field: `"C168.42"` -> 168.42, `"1,300"` -> 1300, `"12.2M"` -> 12.2e6,
    `"0.54%"` -> 0.54; None when the value is not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip().replace(",", "")
    if text[:1] in _PREFIXES:
        text = text[1:]
    text = text.rstrip("%")
    scale = 1.0
    if text[-1:] in _SUFFIXES:
        scale = _SUFFIXES[text[-1]]
        text = text[:-1]
    try:
        return float(text) * scale
    except ValueError:
        return None


class Quote(Mapping[str, Any]):
    """The merged market data of one contract after some frame: a read-only mapping of field id -> value.

    Indexing also accepts field names (`quote["bid_price"]`); `named()` gives the whole quote by name, `number(key)`
    the numeric value of one field, `updated` the gateway's time (ms) of the last frame.
    """

    __slots__ = ("_delta", "_depth", "_ids", "_names", "_parent", "conid", "updated")

    def __init__(
        self,
        conid: str,
        values: dict[str, Any] | None,
        updated: int | None,
        names: _Names,
        parent: Quote | None = None,
        delta: Mapping[str, Any] | None = None,
    ) -> None:
        self.conid = conid
        self.updated = updated
        self._ids = values  # None until built from `parent` and `delta`
        self._names = names
        self._parent = parent
        self._delta = delta
        self._depth: int = 0 if parent is None else parent._depth + 1  # quotes since the last one built

    def _values(self) -> dict[str, Any]:
        ids = self._ids
        return ids if ids is not None else self._build()

    def _build(self) -> dict[str, Any]:
        """Fold the frames since the last built quote. Any thread may do it, even two at once: both compute the
        same dict from immutable parts; `_ids` is set before `_parent` is dropped, so a reader who finds no parent
        finds the values."""
        deltas: list[Mapping[str, Any]] = []
        node = self
        while True:
            ids = node._ids
            if ids is not None:
                break
            parent, delta = node._parent, node._delta
            if parent is None:  # built by another thread meanwhile
                ids = node._ids
                assert ids is not None
                break
            if delta is not None:
                deltas.append(delta)
            node = parent
        values = ids.copy()
        for delta in reversed(deltas):
            values.update(delta)
        for key in self._names.meta:
            values.pop(key, None)
        self._ids = values
        self._parent = None
        self._depth = 0
        return values

    def __getitem__(self, key: str) -> Any:
        ids = self._values()
        found = ids.get(key, _MISSING)
        if found is _MISSING:
            field_id = self._names.by_name.get(key)
            if field_id is None or field_id not in ids:
                raise KeyError(key)
            found = ids[field_id]
        return found

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        ids = self._values()
        return key in ids or self._names.by_name.get(key) in ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())

    @property
    def field_names(self) -> Mapping[str, str]:
        """Field id -> name."""
        return self._names.by_id

    def number(self, key: str) -> float | None:
        """The numeric value of a field (by id or name), or None when absent or not a number."""
        return parse_number(self.get(key))

    def named(self) -> dict[str, Any]:
        """The quote by field name (fields without a known name keep their id)."""
        by_id = self._names.by_id
        return {by_id.get(k, k): v for k, v in self._values().items()}

    def as_json(self) -> dict[str, Any]:
        """`{"conid", "updated", "fields": {id: value}, "names": {name: value}}`, ready for `json.dumps`."""
        return {"conid": self.conid, "updated": self.updated, "fields": dict(self._values()), "names": self.named()}

    def __repr__(self) -> str:
        return f"Quote(conid={self.conid!r}, {self.named()!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quote):
            return self.conid == other.conid and self._values() == other._values()
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]


_MISSING = object()
_MAX_CHAIN = 16  # quotes of one contract between two built at once


class _Names:
    """Field id <-> field name, and the frame's bookkeeping keys (which are not fields)."""

    __slots__ = ("by_id", "by_name", "meta")

    def __init__(self, by_id: Mapping[str, str], meta: frozenset[str] = frozenset()) -> None:
        self.by_id = dict(by_id)
        self.by_name = {name: field_id for field_id, name in self.by_id.items()}
        self.meta = meta

    def fields(self, frame: Mapping[str, Any]) -> dict[str, Any]:
        """The fields of a frame, by id."""
        meta = self.meta
        return {k: v for k, v in frame.items() if k not in meta}


class QuoteBook:
    """Current quotes by conid, folded from market-data frames. One writer (the client's reader thread) and any
    number of readers on other threads, who always see a complete `Quote`."""

    def __init__(self, names: Mapping[str, str], meta_keys: frozenset[str], updated_key: str) -> None:
        self._names = _Names(names, meta_keys)
        self._meta = meta_keys
        self._updated_key = updated_key
        self._quotes: dict[str, Quote] = {}

    @property
    def names(self) -> Mapping[str, str]:
        """Field id -> name."""
        return self._names.by_id

    def fold(self, conid: str, frame: dict[str, Any]) -> Quote:
        """Fold one decoded frame (left as it is, and from now on owned by the book: not to be changed) into the
        quote of `conid`; returns the new quote, whose fields are merged on first read."""
        updated = frame.get(self._updated_key)
        previous = self._quotes.get(conid)
        if previous is None:
            quote = Quote(conid, self._names.fields(frame), updated if type(updated) is int else None, self._names)
        else:
            updated = updated if type(updated) is int else previous.updated
            quote = Quote(conid, None, updated, self._names, previous, frame)
            depth = quote._depth
            if depth >= _MAX_CHAIN:
                quote._build()
        self._quotes[conid] = quote  # one writer; readers see the old or the new quote, both complete
        return quote

    def merge(self, conid: str, frame: dict[str, Any]) -> tuple[dict[str, Any], Quote]:
        """Fold one decoded frame into the quote of `conid`. The frame's bookkeeping keys are removed from it in
        place (the caller owns it); returns (the changed fields by id, the new quote)."""
        changed = self._names.fields(frame)
        quote = self.fold(conid, changed)
        updated = frame.get(self._updated_key)
        if type(updated) is int:
            quote.updated = updated
        for key in self._meta:
            frame.pop(key, None)
        return frame, quote

    def get(self, conid: str | int) -> Quote | None:
        """The current quote of `conid`, or None before its first frame."""
        return self._quotes.get(str(conid))

    def all(self) -> dict[str, Quote]:
        """Every current quote by conid."""
        return self._quotes.copy()

    def clear(self, conid: str | None = None) -> None:
        """Forget one contract's quote (or all)."""
        if conid is None:
            self._quotes.clear()
        else:
            self._quotes.pop(conid, None)
