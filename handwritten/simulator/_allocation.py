"""Financial Advisor allocation: the sub-accounts an advisor can allocate to, allocation groups (create, list,
read, modify or rename, delete) and the allocation presets. Kept per simulator.

Only an advisor has these: with `Simulator(advisor=False)` (the default, a single-account user) every allocation
endpoint answers 400 naming the reason, as the catalogue says they exist only for Financial Advisor and IBroker
master accounts. With `advisor=True` the first account id is the advisor's own account and the others are its
sub-accounts; only sub-accounts can be group members.

Group rules: names are unique (a second create with a taken name answers 400); `default_method` is one of A
(available equity), E (equal), N (net liquidation; create's default), C (cash), P (percent), R (ratios) and S
(shares). C, P, R and S need a positive `amount` per member, and P amounts must add up to 100; A, E and N keep
no amounts. A modification replaces the whole definition; with `prev_name` it also renames the group. Unknown
group names, unknown or repeated members and malformed bodies answer 400. Groups do not (yet) stand in for an
account id when placing orders. Presets change only the members given, each checked for its type.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ._core import GatewayError, SimRequest, as_float, handles
from ._state import GatewayState

METHODS = ("A", "E", "N", "C", "P", "R", "S")
_WITH_AMOUNTS = ("C", "P", "R", "S")
PRESET_METHODS = ("AvailableEquity", "E", "N", "C", "P", "R", "S")
_DEFAULT_PRESETS: dict[str, Any] = {  # IBKR's example answer
    "default_method_for_all": "AvailableEquity",
    "group_auto_close_positions": False,
    "group_proportional_allocation": False,
    "profiles_auto_close_positions": False,
    "strict_credit_check": False,
}


@dataclass
class AllocationBook:
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # by name: {"accounts": [...], "method": m}
    presets: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(_DEFAULT_PRESETS))


def require_advisor(state: GatewayState) -> None:
    if not state.advisor:
        raise GatewayError(
            400,
            f"Bad Request: account {state.account_ids[0]} is not a Financial Advisor or IBroker master account; "
            "allocation and model portfolios need an advisor login",
        )


def book(state: GatewayState) -> AllocationBook:
    require_advisor(state)
    if state.allocation is None:
        state.allocation = AllocationBook()
    return state.allocation


def _name(value: Any, what: str = "name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise GatewayError(400, f"Bad Request: {what} is required")
    return value


def _members(state: GatewayState, raw: Any, method: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise GatewayError(400, "Bad Request: accounts must list at least one sub-account")
    members: list[dict[str, Any]] = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise GatewayError(400, "Bad Request: each account must be an object with a name")
        account = _name(entry.get("name"), "each account's name")
        if account not in state.sub_accounts:
            raise GatewayError(400, f"Bad Request: {account} is not a sub-account of {state.account_ids[0]}")
        if any(m["name"] == account for m in members):
            raise GatewayError(400, f"Bad Request: {account} is listed twice")
        member: dict[str, Any] = {"name": account}
        if method in _WITH_AMOUNTS:
            if entry.get("amount") is None:
                raise GatewayError(400, f"Bad Request: method {method} needs an amount for {account}")
            amount = as_float(entry["amount"], f"the amount of {account}")
            if amount <= 0:
                raise GatewayError(400, f"Bad Request: the amount of {account} must be positive")
            member["amount"] = int(amount) if amount.is_integer() else amount
        members.append(member)
    if method == "P" and abs(sum(m["amount"] for m in members) - 100.0) > 1e-9:
        raise GatewayError(400, "Bad Request: percentages must add up to 100")
    return members


def _method(value: Any) -> str:
    if value not in METHODS:
        raise GatewayError(400, f"Bad Request: default_method must be one of {', '.join(METHODS)}, got {value!r}")
    return str(value)


def _group(alloc: AllocationBook, name: str) -> dict[str, Any]:
    group = alloc.groups.get(name)
    if group is None:
        raise GatewayError(400, f"Bad Request: no allocation group named {name!r}")
    return group


@handles("allocation_accounts")
def _accounts(state: GatewayState, req: SimRequest) -> Any:
    book(state)
    now = state.now()
    answer = []
    for account in state.sub_accounts:
        totals = state.book.totals(account, now)
        answer.append(
            {
                "data": [
                    {"key": "NetLiquidation", "value": f"{totals['net_liq']:.2f}"},
                    {"key": "AvailableEquity", "value": f"{totals['available']:.2f}"},
                ],
                "name": account,
            }
        )
    return {"accounts": answer}


@handles("allocation_groups")
def _groups(state: GatewayState, req: SimRequest) -> Any:
    alloc = book(state)
    return {
        "data": [
            {"allocation_method": g["method"], "name": name, "size": len(g["accounts"])}
            for name, g in alloc.groups.items()
        ]
    }


@handles("create_allocation_group")
def _create(state: GatewayState, req: SimRequest) -> Any:
    alloc = book(state)
    name = _name(req.field("name"))
    method = _method(req.field("default_method", "N"))
    if name in alloc.groups:
        raise GatewayError(400, f"Bad Request: an allocation group named {name!r} already exists")
    alloc.groups[name] = {"accounts": _members(state, req.field("accounts"), method), "method": method}
    return {"success": True}


@handles("modify_allocation_group")
def _modify(state: GatewayState, req: SimRequest) -> Any:
    alloc = book(state)
    name = _name(req.field("name"))
    previous = req.field("prev_name")
    current = name if previous is None else _name(previous, "prev_name")
    _group(alloc, current)
    method = _method(req.field("default_method"))
    members = _members(state, req.field("accounts"), method)
    if name != current and name in alloc.groups:
        raise GatewayError(400, f"Bad Request: an allocation group named {name!r} already exists")
    # Rebuild to keep the listing order with the group in its old place under its new name.
    alloc.groups = {
        (name if key == current else key): ({"accounts": members, "method": method} if key == current else g)
        for key, g in alloc.groups.items()
    }
    return {"success": True}


@handles("delete_allocation_group")
def _delete(state: GatewayState, req: SimRequest) -> Any:
    alloc = book(state)
    name = _name(req.field("name"))
    _group(alloc, name)
    del alloc.groups[name]
    return {"success": True}


@handles("allocation_group")
def _single(state: GatewayState, req: SimRequest) -> Any:
    alloc = book(state)
    name = _name(req.field("name"))
    group = _group(alloc, name)
    return {"accounts": copy.deepcopy(group["accounts"]), "default_method": group["method"], "name": name}


@handles("allocation_presets")
def _presets(state: GatewayState, req: SimRequest) -> Any:
    return copy.deepcopy(book(state).presets)


@handles("set_allocation_presets")
def _set_presets(state: GatewayState, req: SimRequest) -> Any:
    alloc = book(state)
    body = req.body if isinstance(req.body, dict) else {}
    changes: dict[str, Any] = {}
    for key, value in body.items():
        if key == "default_method_for_all":
            if value not in PRESET_METHODS:
                raise GatewayError(
                    400, f"Bad Request: default_method_for_all must be one of {', '.join(PRESET_METHODS)}"
                )
        elif key in _DEFAULT_PRESETS:
            if not isinstance(value, bool):
                raise GatewayError(400, f"Bad Request: {key} must be true or false, got {value!r}")
        else:
            continue  # members IBKR does not know are ignored
        changes[key] = value
    alloc.presets.update(changes)
    return {"success": True}
