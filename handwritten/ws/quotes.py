"""The current quote of each contract, merged from market-data frames.

The gateway sends only the fields that changed since its last frame for a contract, so "the last price of AAPL now"
is the latest value of field 31 across all frames so far. `QuoteBook.merge` folds each frame into an immutable
`Quote` (a new object per frame, so a consumer on another thread can keep one without locks), readable by field id
(`quote["31"]`) or by field name (`quote["last_price"]`), with `number()` for the numeric value of a field.
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

    __slots__ = ("_ids", "_names", "conid", "updated")

    def __init__(self, conid: str, values: dict[str, Any], updated: int | None, names: _Names) -> None:
        self.conid = conid
        self.updated = updated
        self._ids = values
        self._names = names

    def __getitem__(self, key: str) -> Any:
        found = self._ids.get(key, _MISSING)
        if found is _MISSING:
            field_id = self._names.by_name.get(key)
            if field_id is None or field_id not in self._ids:
                raise KeyError(key)
            found = self._ids[field_id]
        return found

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return key in self._ids or self._names.by_name.get(key) in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

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
        return {by_id.get(k, k): v for k, v in self._ids.items()}

    def as_json(self) -> dict[str, Any]:
        """`{"conid", "updated", "fields": {id: value}, "names": {name: value}}`, ready for `json.dumps`."""
        return {"conid": self.conid, "updated": self.updated, "fields": dict(self._ids), "names": self.named()}

    def __repr__(self) -> str:
        return f"Quote(conid={self.conid!r}, {self.named()!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quote):
            return self.conid == other.conid and self._ids == other._ids
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]


_MISSING = object()


class _Names:
    """Field id <-> field name."""

    __slots__ = ("by_id", "by_name")

    def __init__(self, by_id: Mapping[str, str]) -> None:
        self.by_id = dict(by_id)
        self.by_name = {name: field_id for field_id, name in self.by_id.items()}


class QuoteBook:
    """Current quotes by conid, folded from market-data frames. One writer (the client's reader thread) and any
    number of readers on other threads, who always see a complete `Quote`."""

    def __init__(self, names: Mapping[str, str], meta_keys: frozenset[str], updated_key: str) -> None:
        self._names = _Names(names)
        self._meta = meta_keys
        self._updated_key = updated_key
        self._quotes: dict[str, Quote] = {}

    @property
    def names(self) -> Mapping[str, str]:
        """Field id -> name."""
        return self._names.by_id

    def merge(self, conid: str, frame: dict[str, Any]) -> tuple[dict[str, Any], Quote]:
        """Fold one decoded frame into the quote of `conid`. The frame's bookkeeping keys are removed from it in
        place (the caller owns it); returns (the changed fields by id, the new quote)."""
        updated = frame.get(self._updated_key)
        pop = frame.pop
        for key in self._meta:
            pop(key, None)
        previous = self._quotes.get(conid)
        if previous is None:
            values = frame.copy()
        else:
            values = previous._ids.copy()
            values.update(frame)
            if updated is None:
                updated = previous.updated
        quote = Quote(conid, values, updated if isinstance(updated, int) else None, self._names)
        self._quotes[conid] = quote  # one writer; readers see the old or the new quote, both complete
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
