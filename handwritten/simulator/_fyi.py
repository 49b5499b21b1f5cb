"""FYI notifications: the unread count, notifications (listed and marked read), subscription settings by type
code, disclaimers and delivery options (e-mail and devices). Kept per simulator, from `data/fyi.json`.

Rules: notifications are listed newest first, at most 10 at a time (`max`), optionally after the notification
`id` of the previous batch, limited to the `include` type codes or without the `exclude` ones. Only subscribed
types count: switching a type off (`POST /fyi/settings/{typecode}` with enabled false) hides its notifications
and removes them from the unread number. Types without `A` in their settings (System Messages) cannot be switched.
Marking a notification read lowers the unread number; reading a disclaimer sets `H` of its type. A device is added
by `POST /fyi/deliveryoptions/device` on first use and switched on or off afterwards; deleting it answers an empty
200. Unknown type codes, notifications and devices answer 400.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import Any

from ._core import GatewayError, SimRequest, SimResponse, as_int, csv, handles
from ._state import GatewayState

MAX_BATCH = 10
_EDITED = {"V": 1, "T": 10}  # IBKR's acknowledgement: accepted, and the milliseconds the change took


@dataclass
class FyiState:
    settings: dict[str, dict[str, Any]]  # by type code, in IBKR's shape
    notifications: list[dict[str, Any]]  # newest first, in IBKR's shape
    email: int
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # by device id, in IBKR's shape


def _notification_id(rng: random.Random, ts: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(ts)) + f"{rng.randrange(10**8):08d}"


def fyi(state: GatewayState) -> FyiState:
    """This simulator's FYI state, made on first use (ids are reproducible for a seed)."""
    if state.fyi is None:
        data = state.fixtures["fyi"]
        rng = random.Random(f"{state.seed}:fyi")
        notes = []
        for raw in sorted(data["notifications"], key=lambda n: n["age_hours"]):
            ts = int(state.started - float(raw["age_hours"]) * 3600)
            notes.append(
                {
                    "D": f"{ts:.1f}",
                    "FC": raw["FC"],
                    "HT": 0,
                    "ID": _notification_id(rng, ts),
                    "MD": raw["MD"],
                    "MS": raw["MS"],
                    "R": int(raw["R"]),
                }
            )
        settings = {s["FC"]: copy.deepcopy(s) for s in data["settings"]}
        state.fyi = FyiState(settings=settings, notifications=notes, email=int(data["email"]))
    return state.fyi


def _subscribed(book: FyiState, code: str) -> bool:
    setting = book.settings.get(code)
    return setting is None or setting.get("A", 1) == 1


def _setting(book: FyiState, req: SimRequest) -> dict[str, Any]:
    code = req.params["typecode"].upper()
    setting = book.settings.get(code)
    if setting is None:
        raise GatewayError(400, f"Bad Request: unknown FYI type code {code!r}")
    return setting


def _flag(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise GatewayError(400, f"Bad Request: {what} must be true or false, got {value!r}")


@handles("fyi_unread_count")
def _unread(state: GatewayState, req: SimRequest) -> Any:
    book = fyi(state)
    return {"BN": sum(1 for n in book.notifications if not n["R"] and _subscribed(book, n["FC"]))}


@handles("fyi_notifications")
def _notifications(state: GatewayState, req: SimRequest) -> Any:
    book = fyi(state)
    count = as_int(req.require_q("max"), "max")
    if count < 1:
        raise GatewayError(400, "Bad Request: max must be at least 1")
    include = {c.upper() for c in csv(req.q("include") or "")}
    exclude = {c.upper() for c in csv(req.q("exclude") or "")}
    notes = [n for n in book.notifications if _subscribed(book, n["FC"])]
    after = req.q("id")
    if after is not None:
        ids = [n["ID"] for n in book.notifications]
        if after not in ids:
            raise GatewayError(400, f"Bad Request: no notification with id {after}")
        older = set(ids[ids.index(after) + 1 :])
        notes = [n for n in notes if n["ID"] in older]
    notes = [n for n in notes if (not include or n["FC"] in include) and n["FC"] not in exclude]
    return copy.deepcopy(notes[: min(count, MAX_BATCH)])


@handles("mark_fyi_notification_read")
def _mark_read(state: GatewayState, req: SimRequest) -> Any:
    book = fyi(state)
    wanted = req.params["notificationID"]
    note = next((n for n in book.notifications if n["ID"] == wanted), None)
    if note is None:
        raise GatewayError(400, f"Bad Request: no notification with id {wanted}")
    note["R"] = 1
    return {**_EDITED, "T": 5, "P": {"ID": note["ID"], "R": 1}}


@handles("fyi_settings")
def _settings(state: GatewayState, req: SimRequest) -> Any:
    return [copy.deepcopy(s) for s in fyi(state).settings.values()]


@handles("modify_fyi_setting")
def _modify_setting(state: GatewayState, req: SimRequest) -> Any:
    setting = _setting(fyi(state), req)
    enabled = _flag(req.field("enabled"), "enabled")
    if "A" not in setting:
        raise GatewayError(400, f"Bad Request: FYI type {setting['FC']} cannot be switched on or off")
    setting["A"] = 1 if enabled else 0
    return dict(_EDITED)


@handles("fyi_disclaimer")
def _disclaimer(state: GatewayState, req: SimRequest) -> Any:
    setting = _setting(fyi(state), req)
    data = state.fixtures["fyi"]
    return {"DT": data["disclaimers"].get(setting["FC"], data["disclaimer"]), "FC": setting["FC"]}


@handles("mark_fyi_disclaimer_read")
def _disclaimer_read(state: GatewayState, req: SimRequest) -> Any:
    _setting(fyi(state), req)["H"] = 1
    return dict(_EDITED)


@handles("fyi_delivery_options")
def _delivery(state: GatewayState, req: SimRequest) -> Any:
    book = fyi(state)
    return {"E": [copy.deepcopy(d) for d in book.devices.values()], "M": book.email}


@handles("set_fyi_email_delivery")
def _email(state: GatewayState, req: SimRequest) -> Any:
    fyi(state).email = 1 if _flag(req.require_q("enabled"), "enabled") else 0
    return dict(_EDITED)


@handles("set_fyi_device_delivery")
def _device(state: GatewayState, req: SimRequest) -> Any:
    book = fyi(state)
    device_id = req.field("deviceId")
    if not isinstance(device_id, str) or not device_id:
        raise GatewayError(400, "Bad Request: deviceId is required")
    enabled = _flag(req.field("enabled"), "enabled")
    device = book.devices.setdefault(device_id, {"NM": "", "I": device_id, "UI": device_id, "A": 0})
    if req.field("deviceName") is not None:
        device["NM"] = str(req.field("deviceName"))
    if req.field("uiName") is not None:
        device["UI"] = str(req.field("uiName"))
    device["A"] = 1 if enabled else 0
    return dict(_EDITED)


@handles("delete_fyi_device")
def _delete_device(state: GatewayState, req: SimRequest) -> Any:
    book = fyi(state)
    device_id = req.params["deviceId"]
    if book.devices.pop(device_id, None) is None:
        raise GatewayError(400, f"Bad Request: no device {device_id!r}")
    return SimResponse(200, raw=b"", content_type="text/plain;charset=utf-8")  # no body: not JSON
