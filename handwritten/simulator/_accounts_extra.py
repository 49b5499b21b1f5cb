"""Smaller account and portfolio endpoints: paged sub-accounts, the position-cache invalidation, combination
positions, and the owners and signatories of an account.

- `/portfolio/subaccounts2` pages the simulator's accounts 20 at a time with IBKR's paging metadata;
- positions are never cached (see `_portfolio`), so invalidating the cache only acknowledges;
- orders in the simulator have no combination (BAG) legs, so combination positions are always an empty list;
- the owner of each account is the fixture user of `data/accounts.json` (IBKR's example person).
"""

from __future__ import annotations

from typing import Any

from ._core import GatewayError, SimRequest, as_int, handles
from ._portfolio import _account_record
from ._state import GatewayState

SUBACCOUNT_PAGE = 20


@handles("large_portfolio_subaccounts")
def _subaccounts2(state: GatewayState, req: SimRequest) -> Any:
    page = as_int(req.q("page", "0"), "page")
    if page < 0:
        raise GatewayError(400, "Bad Request: page must not be negative")
    chosen = state.account_ids[page * SUBACCOUNT_PAGE : (page + 1) * SUBACCOUNT_PAGE]
    return {
        "metadata": {"pageNum": page, "pageSize": SUBACCOUNT_PAGE, "total": len(state.account_ids)},
        "subaccounts": [_account_record(state, a) for a in chosen],
    }


@handles("invalidate_backend_portfolio_cache")
def _invalidate(state: GatewayState, req: SimRequest) -> Any:
    state.account(req.params["accountId"])
    return {"message": "success"}


@handles("combination_positions")
def _combos(state: GatewayState, req: SimRequest) -> Any:
    state.account(req.params["accountId"])
    return []


@handles("signatures_and_owners")
def _owners(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    owner = state.fixtures["accounts"]["owner"]
    name = f"{owner['firstName']} {owner['lastName']}"
    return {
        "accountId": account,
        "applicant": {"signatures": [name]},
        "users": [
            {
                "entity": {
                    "entityName": name,
                    "entityType": "INDIVIDUAL",
                    "firstName": owner["firstName"],
                    "lastName": owner["lastName"],
                },
                "hasRightCodeInd": True,
                "roleId": "OWNER",
                "userName": owner["userName"],
            }
        ],
    }
