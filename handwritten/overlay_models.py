"""Response models of results whose shape a hand-written method made (loaded by `Result.parsed()`, needs pydantic).

`OVERLAY_MODELS` in `models_access` names the result labels (`Result.endpoint`) these models belong to.
"""

from __future__ import annotations

from pydantic import RootModel


class ConidsBySymbol(RootModel[dict[str, int] | list[int]]):
    """`stock_conid_by_symbol()`: `{symbol: conid}`, or the conids in query order with `return_type="list"`."""

    root: dict[str, int] | list[int]


__all__ = ["ConidsBySymbol"]
