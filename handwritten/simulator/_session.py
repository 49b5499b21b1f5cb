"""Session and account endpoints: auth status, brokerage session, tickle, logout, SSO validation, the account
list, switching accounts and the iserver account summary."""

from __future__ import annotations

import copy
from typing import Any

from ._core import GatewayError, SimRequest, handles
from ._state import GatewayState


def auth_status(state: GatewayState) -> dict[str, Any]:
    fixture = state.fixtures["session"]["auth_status"]
    up = state.session.brokerage
    return {
        "authenticated": up,
        "competing": state.session.competing,
        "connected": True,
        "established": up,
        "message": "",
        "fail": "",
        "MAC": fixture["MAC"],
        "hardware_info": fixture["hardware_info"],
        "serverInfo": copy.deepcopy(fixture["serverInfo"]),
    }


@handles("authentication_status")
def _status(state: GatewayState, req: SimRequest) -> Any:
    return auth_status(state)


@handles("initialize_brokerage_session")
def _init(state: GatewayState, req: SimRequest) -> Any:
    compete = req.field("compete", req.q("compete"))
    state.request_brokerage(compete is True or str(compete).lower() == "true")
    return auth_status(state)  # answered at once: the session opens a little later


@handles("reauthenticate")
def _reauthenticate(state: GatewayState, req: SimRequest) -> Any:
    state.request_brokerage(False)
    return {"message": "triggered"}


@handles("tickle")
def _tickle(state: GatewayState, req: SimRequest) -> Any:
    fixture = state.fixtures["session"]
    return {
        "session": state.session.token,
        "ssoExpires": int(fixture["sso_lifetime_ms"]),
        "collission": False,
        "userId": int(fixture["user_id"]),
        "hmds": {"error": "no bridge"},
        "iserver": {"authStatus": auth_status(state)},
    }


@handles("logout")
def _logout(state: GatewayState, req: SimRequest) -> Any:
    state.logout()
    return {"status": True}


@handles("validate")
def _validate(state: GatewayState, req: SimRequest) -> Any:
    fixture = state.fixtures["session"]
    now_ms = int(state.now() * 1000)
    body: dict[str, Any] = copy.deepcopy(fixture["sso_validate"])
    body.update(
        {
            "AUTH_TIME": int(state.started * 1000),
            "EXPIRES": int(fixture["sso_lifetime_ms"]),
            "lastAccessed": now_ms,
        }
    )
    return body


# -- accounts -------------------------------------------------------------------------------------------------------


@handles("receive_brokerage_accounts")
def _accounts(state: GatewayState, req: SimRequest) -> Any:
    state.session.accounts_queried = True
    fixture = state.fixtures["accounts"]
    ids = state.account_ids
    props = {a: copy.deepcopy(fixture["acct_props"]) for a in ids}
    features = copy.deepcopy(fixture["allow_features"])
    groups: list[str] = []
    if state.advisor:  # the advisor's account has child accounts; its allocation groups are listed
        props[ids[0]]["hasChildAccounts"] = True
        features["allowFA"] = True
        groups = list(state.allocation.groups) if state.allocation is not None else []
    return {
        "accounts": list(ids),
        "acctProps": props,
        "aliases": {a: a for a in ids},
        "allowFeatures": features,
        "chartPeriods": copy.deepcopy(fixture["chart_periods"]),
        "groups": groups,
        "profiles": [],
        "selectedAccount": state.session.selected_account,
        "serverInfo": copy.deepcopy(state.fixtures["session"]["accounts_server_info"]),
        "sessionId": f"{state.session.token[:8]}.{state.session.session_serial:08x}",
        "isFT": False,
        "isPaper": all(a.startswith("D") for a in ids),
    }


@handles("switch_account")
def _switch(state: GatewayState, req: SimRequest) -> Any:
    wanted = req.field("acctId")
    if not isinstance(wanted, str) or not wanted:
        raise GatewayError(400, "Bad Request: acctId is required")
    if wanted not in state.book.accounts:
        raise GatewayError(400, f"Bad Request: account {wanted} is not available")
    if wanted == state.session.selected_account:
        return {"success": "Account already set"}  # what the gateway answers for the current account
    state.session.selected_account = wanted
    return {"set": True, "acctId": wanted}


@handles("account_summary")
def _summary(state: GatewayState, req: SimRequest) -> Any:
    acct = state.account(req.params.get("accountId"))
    now = state.now()
    t = state.book.totals(acct, now)
    book = state.book.accounts[acct]
    balances = [
        {"currency": ccy, "balance": round(v, 2), "settledCash": round(v, 2)} for ccy, v in sorted(book.cash.items())
    ]
    base = state.book.base_currency
    balances.append(
        {"currency": f"Total (in {base})", "balance": round(t["cash"], 2), "settledCash": round(t["cash"], 2)}
    )
    return {
        "accountType": "",
        "status": "",
        "balance": round(t["cash"], 2),
        "SMA": round(max(t["available"], 0.0), 2),
        "buyingPower": round(t["buying_power"], 2),
        "availableFunds": round(t["available"], 2),
        "excessLiquidity": round(t["excess"], 2),
        "netLiquidationValue": round(t["net_liq"], 2),
        "equityWithLoanValue": round(t["net_liq"], 2),
        "regTLoan": 0.0,
        "securitiesGVP": round(t["gross"], 2),
        "totalCashValue": round(t["cash"], 2),
        "accruedInterest": 0.0,
        "regTMargin": 0.0,
        "initialMargin": round(t["initial"], 2),
        "maintenanceMargin": round(t["maintenance"], 2),
        "cashBalances": balances,
    }
