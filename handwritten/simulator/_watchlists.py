"""Watchlist endpoints: create, list, read and delete user watchlists (kept per simulator)."""

from __future__ import annotations

import hashlib
from typing import Any

from ._core import GatewayError, SimRequest, handles
from ._state import GatewayState, Watchlist


def _instrument(state: GatewayState, row: dict[str, Any]) -> dict[str, Any]:
    conid_text = str(row.get("C", ""))
    entry: dict[str, Any] = {"C": conid_text}
    contract = state.universe.get(int(conid_text)) if conid_text.isdigit() else None
    if contract is not None:
        entry.update(
            {
                "ST": contract.sec_type,
                "conid": contract.conid,
                "name": contract.name,
                "fullName": contract.full_name,
                "assetClass": contract.sec_type,
                "ticker": contract.symbol,
                "chineseName": contract.chinese_name or "",
            }
        )
    elif "H" in row:
        entry["H"] = row["H"]
    return entry


@handles("create_watchlist")
def _create(state: GatewayState, req: SimRequest) -> Any:
    wl_id, name, rows = req.field("id"), req.field("name"), req.field("rows")
    if not isinstance(wl_id, str) or not wl_id.isdigit():
        raise GatewayError(400, "Bad Request: id must be a string of digits")
    if not isinstance(name, str) or not name:
        raise GatewayError(400, "Bad Request: name is required")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise GatewayError(400, "Bad Request: rows must be a list of objects")
    now_ms = int(state.now() * 1000)
    digest = hashlib.sha1(f"{wl_id}:{name}:{rows}:{now_ms}".encode()).hexdigest()
    wl = Watchlist(wl_id, name, [dict(r) for r in rows], now_ms, str(int(digest[:12], 16)))
    state.watchlists[wl_id] = wl
    return {"id": wl.id, "hash": wl.hash, "name": wl.name, "readOnly": False, "instruments": []}


@handles("get_all_watchlists")
def _list(state: GatewayState, req: SimRequest) -> Any:
    lists = [
        {
            "id": wl.id,
            "name": wl.name,
            "modified": wl.modified,
            "is_open": False,
            "read_only": False,
            "type": "watchlist",
        }
        for wl in state.watchlists.values()
    ]
    return {
        "data": {"scanners_only": False, "show_scanners": False, "bulk_delete": False, "user_lists": lists},
        "action": "content",
        "MID": str(len(state.watchlists) + 1),
    }


def _get(state: GatewayState, req: SimRequest) -> Watchlist:
    wl_id = req.require_q("id")
    wl = state.watchlists.get(wl_id)
    if wl is None:
        raise GatewayError(404, f"watchlist {wl_id} not found")
    return wl


@handles("get_watchlist_information")
def _read(state: GatewayState, req: SimRequest) -> Any:
    wl = _get(state, req)
    return {
        "id": wl.id,
        "hash": wl.hash,
        "name": wl.name,
        "readOnly": False,
        "instruments": [_instrument(state, r) for r in wl.rows],
    }


@handles("delete_watchlist")
def _delete(state: GatewayState, req: SimRequest) -> Any:
    wl = _get(state, req)
    del state.watchlists[wl.id]
    return {"data": {"deleted": wl.id}, "action": "context", "MID": str(len(state.watchlists) + 1)}
