"""Alerts: create or modify, list, read, activate and delete the alerts of an account, plus the one mobile trading
assistant (MTA) alert of the user. Kept per simulator.

Alert ids are order ids (IBKR tracks alerts as orders). Rules, following IBKR's documents:
- a create without a body answers 400; values IBKR cannot process (an unknown conid or condition type, an operator
  other than >= or <=, GTD without a valid expireTime, ...) answer 500, as do unknown alert ids for modify,
  activate, delete and details (IBKR: "unable to delete alert in case when provided alert id doesn't exist");
- `orderId` in the body modifies that alert and keeps its id; modifying the MTA alert (its `toolId` in the body)
  gives it a new id, and deleting it resets it to its defaults (it cannot be created or removed);
- alert id 0 activates, deactivates or deletes every alert of the account;
- the list leaves out the MTA alert.

Triggering: price (type 1) and time (type 3) conditions are checked against the simulated last price and clock
whenever an alert endpoint is called (not continuously), combined left to right by each condition's logic bind
(a = and, o = or, n = last). A triggered alert shows `alert_triggered`; one that does not repeat is then
deactivated. Other condition types never trigger. A GTD alert past its expiry is deactivated.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from ._core import GatewayError, SimRequest, handles
from ._prices import fmt_price
from ._state import GatewayState

_TIME_FORMAT = "%Y%m%d-%H:%M:%S"
_FLAGS = (  # request member -> record attribute, all 0/1
    ("alertRepeatable", "repeatable"),
    ("outsideRth", "outside_rth"),
    ("sendMessage", "send_message"),
    ("showPopup", "show_popup"),
    ("iTWSOrdersOnly", "itws_orders_only"),
    ("playAudio", "play_audio"),
)


@dataclass
class Alert:
    order_id: int
    account: str
    name: str
    created: float
    conditions: list[dict[str, Any]]
    message: str | None = None
    tif: str = "GTC"
    expire_time: str | None = None
    email: str | None = None
    repeatable: int = 0
    outside_rth: int = 0
    send_message: int = 0
    show_popup: int = 0
    itws_orders_only: int = 0
    play_audio: int | None = None
    active: int = 1
    triggered: bool = False
    tool_id: int | None = None  # MTA only
    extra: dict[str, Any] = field(default_factory=dict)  # MTA currency and defaults


def _unprocessable(message: str) -> GatewayError:
    return GatewayError(500, message)


def _parse_time(text: Any, what: str) -> float:
    try:
        stamp = dt.datetime.strptime(str(text), _TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise _unprocessable(f"{what} must be YYYYMMDD-HH:MM:SS, got {text!r}") from None
    return stamp.timestamp()


def _flag(value: Any, what: str) -> int:
    if value in (0, 1) and not isinstance(value, float):
        return int(value)
    raise _unprocessable(f"{what} must be 0 or 1, got {value!r}")


def _condition(state: GatewayState, raw: Any) -> dict[str, Any]:
    fixture = state.fixtures["alerts"]
    if not isinstance(raw, dict):
        raise _unprocessable("each condition must be an object")
    kind = raw.get("type")
    if kind not in fixture["condition_types"]:
        raise _unprocessable(f"unknown condition type {kind!r}")
    operator, value = raw.get("operator"), raw.get("value")
    if operator not in fixture["operators"] and (kind in fixture["compared_types"] or operator is not None):
        raise _unprocessable(f"operator must be >= or <=, got {operator!r}")
    if value in (None, ""):
        raise _unprocessable("every condition needs a value")
    conidex = str(raw.get("conidex") or raw.get("conid") or "")
    if conidex == "*@*" and kind not in fixture["compared_types"]:  # any contract (the MTA alert's trade condition)
        description = "Unknown"
    else:
        try:
            contract = state.contract(conidex)
        except GatewayError:
            raise _unprocessable(f"unknown contract {conidex!r} in an alert condition") from None
        description = contract.description
    if kind == 1:
        try:
            value = fmt_price(float(value), contract.tick)
        except ValueError:
            raise _unprocessable(f"a price condition needs a number, got {value!r}") from None
    elif kind == 3:
        _parse_time(value, "a time condition's value")
    bind = raw.get("logicBind", "n")
    if bind not in fixture["logic_binds"]:
        raise _unprocessable(f"logicBind must be a, o or n, got {bind!r}")
    return {
        "condition_type": kind,
        "conidex": conidex,
        "contract_description_1": description,
        "condition_operator": operator,
        "condition_trigger_method": str(raw.get("triggerMethod", "0")),
        "condition_value": str(value),
        "condition_logic_bind": bind,
        "condition_time_zone": raw.get("timeZone"),
    }


def _apply(state: GatewayState, alert: Alert, body: dict[str, Any]) -> None:
    """Validate the request body and copy it onto `alert` (all or nothing)."""
    name = body.get("alertName")
    if not isinstance(name, str) or not name.strip():
        raise _unprocessable("alertName is required")
    raw_conditions = body.get("conditions")
    if not isinstance(raw_conditions, list) or not raw_conditions:
        raise _unprocessable("at least one condition is required")
    conditions = [_condition(state, c) for c in raw_conditions]
    tif = str(body.get("tif", "GTC")).upper()
    if tif not in ("GTC", "GTD"):
        raise _unprocessable(f"tif must be GTC or GTD, got {body.get('tif')!r}")
    expire = body.get("expireTime")
    if tif == "GTD":
        _parse_time(expire, "expireTime")
    flags = {attr: _flag(body.get(member, 0), member) for member, attr in _FLAGS if member in body}
    alert.name, alert.conditions, alert.tif = name, conditions, tif
    alert.expire_time = str(expire) if tif == "GTD" else None
    alert.message = body.get("alertMessage", alert.message)
    alert.email = body.get("email", alert.email)
    for attr, value in flags.items():
        setattr(alert, attr, value)


# -- the MTA alert --------------------------------------------------------------------------------------------------


def _default_mta(state: GatewayState, order_id: int) -> Alert:
    template = copy.deepcopy(state.fixtures["alerts"]["mta"])
    return Alert(
        order_id=order_id,
        account=state.account_ids[0],
        name=template["alert_name"],
        created=state.started,
        conditions=template["conditions"],
        message=template["alert_message"],
        tif=template["tif"],
        email=state.fixtures["alerts"]["email"],
        repeatable=template["alert_repeatable"],
        outside_rth=template["condition_outside_rth"],
        send_message=template["alert_send_message"],
        show_popup=template["alert_show_popup"],
        itws_orders_only=template["itws_orders_only"],
        tool_id=template["tool_id"],
        extra={k: template[k] for k in ("alert_mta_currency", "alert_mta_defaults")},
    )


def mta(state: GatewayState) -> Alert:
    if state.mta is None:
        state.mta = _default_mta(state, int(state.fixtures["alerts"]["mta"]["order_id"]))
    return state.mta


# -- triggering -----------------------------------------------------------------------------------------------------


def _holds(state: GatewayState, condition: dict[str, Any], now: float) -> bool:
    kind, value = condition["condition_type"], condition["condition_value"]
    if kind == 1:
        current = state.quote(state.contract(condition["conidex"])).last
        limit = float(value)
    elif kind == 3:
        current, limit = now, _parse_time(value, "time condition")
    else:
        return False
    return current >= limit if condition["condition_operator"] == ">=" else current <= limit


def _fires(state: GatewayState, alert: Alert, now: float) -> bool:
    result: bool | None = None
    bind = "a"
    for condition in alert.conditions:
        holds = _holds(state, condition, now)
        result = holds if result is None else (result and holds) if bind == "a" else (result or holds)
        bind = condition["condition_logic_bind"]
    return bool(result)


def check_alerts(state: GatewayState) -> None:
    now = state.now()
    for alert in state.alerts.values():
        if not alert.active:
            continue
        if alert.tif == "GTD" and alert.expire_time and now > _parse_time(alert.expire_time, "expireTime"):
            alert.active = 0
        elif _fires(state, alert, now):
            alert.triggered = True
            if not alert.repeatable:
                alert.active = 0


# -- endpoints ------------------------------------------------------------------------------------------------------


def _owned(state: GatewayState, account: str, alert_id: int) -> Alert:
    alert = state.alerts.get(alert_id)
    if alert is None or alert.account != account:
        raise _unprocessable(f"alert {alert_id} does not exist for account {account}")
    return alert


def _alert_id(value: Any) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise _unprocessable(f"alert id is not parsable: {value!r}") from None


def _answer(order_id: int, text: str, **extra: Any) -> dict[str, Any]:
    return {"request_id": None, "order_id": order_id, "success": True, "text": text, **extra}


@handles("create_alert")
def _create(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    body = req.body
    if not isinstance(body, dict) or not body:
        raise GatewayError(400, "bad request; body is empty")
    check_alerts(state)
    current = mta(state)
    if body.get("toolId") is not None and body.get("toolId") == current.tool_id:
        _apply(state, current, body)
        current.order_id = state.book.next_order_id()  # IBKR: a modified MTA alert gets a new id
        alert = current
    elif body.get("orderId") is not None:
        alert = _owned(state, account, _alert_id(body["orderId"]))
        _apply(state, alert, body)
        alert.triggered = False
    else:
        alert = Alert(order_id=0, account=account, name="", created=state.now(), conditions=[])
        _apply(state, alert, body)
        alert.order_id = state.book.next_order_id()
        state.alerts[alert.order_id] = alert
    return _answer(alert.order_id, "Submitted", order_status=None, warning_message=None)


@handles("list_alerts")
def _list(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    check_alerts(state)
    return [
        {
            "order_id": a.order_id,
            "account": a.account,
            "alert_name": a.name,
            "alert_active": a.active,
            "order_time": time.strftime(_TIME_FORMAT, time.gmtime(a.created)),
            "alert_triggered": a.triggered,
            "alert_repeatable": a.repeatable,
        }
        for a in state.alerts.values()
        if a.account == account
    ]


def details(state: GatewayState, a: Alert) -> dict[str, Any]:
    fixture = state.fixtures["alerts"]
    return {
        "account": a.account,
        "order_id": a.order_id,
        "alert_name": a.name,
        "alert_message": a.message,
        "alert_active": a.active,
        "alert_repeatable": a.repeatable,
        "alert_email": a.email,
        "alert_send_message": a.send_message,
        "alert_show_popup": a.show_popup,
        "alert_play_audio": a.play_audio,
        "order_status": "Submitted" if a.active else "Presubmitted",
        "alert_triggered": a.triggered,
        "fg_color": fixture["fg_color"],
        "bg_color": fixture["bg_color"],
        "order_not_editable": False,
        "itws_orders_only": a.itws_orders_only,
        "alert_mta_currency": a.extra.get("alert_mta_currency"),
        "alert_mta_defaults": a.extra.get("alert_mta_defaults"),
        "tool_id": a.tool_id,
        "time_zone": None,
        "alert_default_type": None,
        "condition_size": len(a.conditions),
        "condition_outside_rth": a.outside_rth,
        "tif": a.tif,
        "expire_time": a.expire_time,
        "conditions": copy.deepcopy(a.conditions),
    }


@handles("alert_details")
def _details(state: GatewayState, req: SimRequest) -> Any:
    if req.q("type") != "Q":
        raise GatewayError(400, "bad request; type must be Q")
    alert_id = _alert_id(req.params["alertId"])
    check_alerts(state)
    current = mta(state)
    alert = current if alert_id == current.order_id else state.alerts.get(alert_id)
    if alert is None:
        raise _unprocessable(f"alert {alert_id} does not exist")
    return details(state, alert)


@handles("mta_alert")
def _mta(state: GatewayState, req: SimRequest) -> Any:
    return details(state, mta(state))


@handles("activate_alert")
def _activate(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    alert_id = _alert_id(req.field("alertId"))
    active = _flag(req.field("alertActive"), "alertActive")
    check_alerts(state)
    current = mta(state)
    if alert_id == 0:
        chosen = [a for a in state.alerts.values() if a.account == account]
    elif alert_id == current.order_id:
        chosen = [current]
    else:
        chosen = [_owned(state, account, alert_id)]
    for alert in chosen:
        if active and not alert.active:
            alert.triggered = False  # armed again
        alert.active = active
    return _answer(alert_id, "Request was submitted", failure_list=None)


@handles("delete_alert")
def _delete(state: GatewayState, req: SimRequest) -> Any:
    account = state.account(req.params["accountId"])
    alert_id = _alert_id(req.params["alertId"])
    current = mta(state)
    if alert_id == current.order_id:
        state.mta = _default_mta(state, state.book.next_order_id())  # reset, never removed
    elif alert_id == 0:
        for alert in [a for a in state.alerts.values() if a.account == account]:
            del state.alerts[alert.order_id]
    else:
        del state.alerts[_owned(state, account, alert_id).order_id]
    return _answer(alert_id, "Request was submitted", failure_list=None)
