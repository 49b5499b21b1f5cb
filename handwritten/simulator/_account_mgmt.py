"""IBKR's Account Management API (`/gw/api/v1`) with state: accounts and their status, tasks, requests and their
status, instructions and transfers that move through their statuses, statements and what is available, enumerations.

The model, per simulator:
- Accounts of one master account. `am_create_account` opens an application (status N, two registration tasks);
  submitting the tasks' documents (or completing the tasks) opens it (status O); `am_update_account_status` with
  `C` closes it. Every change is a request (`am_requests`) that IBKR processes in the background: submitted as N,
  processed (C) when it is next read, unless cancelled before.
- Instructions (bank instructions, cash and position transfers, cancellations): answered PENDING (202) and
  PROCESSED on the next status read, when their effect happens (cash moves between accounts, a withdrawal leaves);
  a PENDING one may be cancelled, a processed one not (422). A `clientInstructionId` is taken once per client (a
  second instruction with the same id is refused: 409). A withdrawal above the withdrawable cash is REJECTED.
  Query instructions (balances, withdrawable amounts, recent instructions, bank instructions) are answered at once.
- Statements, tax documents and trade confirmations exist for the months since each account opened.

Errors are RFC 9457 problem details, as IBKR's document describes them.
"""

from __future__ import annotations

import base64
import copy
import datetime
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._core import GatewayError, SimRequest, SimResponse, as_int, handles
from ._state import GatewayState

MASTER = "U1234560"
FORMS = {
    5001: "Customer Agreement",
    8001: "W-8BEN / W-9 Tax Form",
    3024: "Margin Disclosure",
    4024: "Trading Permissions Acknowledgement",
}
ENUMERATIONS: dict[str, list[dict[str, Any]]] = {
    "exchange-bundles": [{"code": "US-SB", "name": "US stocks and bonds"}, {"code": "US-OPT", "name": "US options"}],
    "business-and-occupation": [{"occupation": "Engineer", "employerBusiness": "Technology"}],
    "employee-track": [{"companyId": "C-100", "name": "Example Corp"}],
    "fin-info-ranges": [{"id": "1", "currency": "USD", "lowerBound": 0, "upperBound": 50000}],
    "acats": [{"brokerId": "0226", "brokerName": "EXAMPLE SECURITIES"}],
    "aton": [{"brokerId": "T001", "brokerName": "EXAMPLE CANADA"}],
    "market-data": [{"id": "NP", "description": "Non-professional"}],
    "edd-avt": [{"id": "AVT", "description": "Average trade volume"}],
    "prohibited-country": [{"code": "KP", "name": "North Korea"}],
    "employee-plans": [{"planId": "P1", "name": "Example plan"}],
    "questionnaires": [{"id": "Q1", "question": "Investment objectives"}],
    "security-questions": [{"id": "1", "question": "Name of your first school?"}],
    "quiz-questions": [{"id": "OPT", "question": "What is an option?"}],
    "wire-instructions": [{"currency": "USD", "bankName": "Example Bank", "swift": "EXAMPLEUS33"}],
    "product-country-bundles": [{"product": "STK", "countries": ["US", "CA"]}],
}
BROKERS = ["EXAMPLE SECURITIES", "SAMPLE CLEARING LLC"]
BANKS = [
    {"institutionName": "Example Bank", "BIC": "EXAMPLEHKXXX", "clearingCode": "390"},
    {"institutionName": "Sample Bank", "BIC": "SAMPLEHKXXX", "clearingCode": "391"},
]
ASYNC_TYPES = {
    "ACH_INSTRUCTION",
    "TRADITIONAL_BANK_INSTRUCTION_VERIFICATION",
    "DELETE_BANK_INSTRUCTION",
    "PREDEFINED_DESTINATION_INSTRUCTION",
    "EDDA_INSTRUCTION",
    "DEPOSIT",
    "WITHDRAWAL",
    "INTERNAL_CASH_TRANSFER",
    "INTERNAL_POSITION_TRANSFER",
    "COMPLEX_ASSET_TRANSFER",
    "FOP",
    "DWAC",
    "ACATS",
    "ATON",
    "CANCEL_INSTRUCTION",
}


def _problem(status: int, detail: str) -> GatewayError:
    titles = {400: "Bad Request", 404: "Not Found", 409: "Conflict", 422: "Unprocessable Entity"}
    title = titles.get(status, "Error")
    return GatewayError(status, detail, {"type": "about:blank", "title": title, "status": status, "detail": detail})


@dataclass
class _Account:
    account_id: str
    status: str
    opened: str | None
    started: str
    external_id: str = ""
    email: str = ""
    users: list[str] = field(default_factory=list)
    tasks: dict[int, bool] = field(default_factory=dict)  # form number -> done
    cash: dict[str, float] = field(default_factory=dict)
    positions: dict[str, float] = field(default_factory=dict)
    closed: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Instruction:
    instruction_id: int
    client_id: int
    kind: str
    status: str
    set_id: int
    account_id: str
    detail: dict[str, Any]
    created: float


@dataclass
class AccountManagement:
    accounts: dict[str, _Account] = field(default_factory=dict)
    requests: dict[int, dict[str, Any]] = field(default_factory=dict)
    instructions: dict[int, _Instruction] = field(default_factory=dict)
    by_client_id: dict[int, int] = field(default_factory=dict)
    sets: dict[int, list[int]] = field(default_factory=dict)
    bank_instructions: list[dict[str, Any]] = field(default_factory=list)
    next_request: int = 100001
    next_instruction: int = 43100001
    next_set: int = 17001
    next_account: int = 7000001
    processed: int = 0


def _date(state: GatewayState, offset_days: int = 0) -> str:
    moment = datetime.datetime.fromtimestamp(state.now(), datetime.timezone.utc) + datetime.timedelta(offset_days)
    return moment.strftime("%Y-%m-%d")


def _stamp(state: GatewayState) -> str:
    return datetime.datetime.fromtimestamp(state.now(), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def am(state: GatewayState) -> AccountManagement:
    """The Account Management state of a simulator, made on first use."""
    found = state.__dict__.get("_account_management")
    if found is None:
        found = AccountManagement()
        opened = "2023-06-01"  # statements, tax documents and confirmations exist from then on
        found.accounts["U1234567"] = _Account(
            "U1234567", "O", opened, opened, "ext-1", "owner@example.com", ["simuser1"], {5001: True, 8001: True},
            {"USD": 250000.0}, {"AAPL": 100.0},
            messages=[{"messageId": 1, "messageType": "TWS", "contentType": "text", "state": "O", "date": opened,
                       "subject": "Please review the updated margin disclosure"}],
        )  # fmt: skip
        found.accounts["U7654321"] = _Account(
            "U7654321", "P", None, _date(state, -3), "ext-2", "pending@example.com", ["pending7"],
            {5001: True, 8001: False}, {"USD": 0.0},
        )  # fmt: skip
        state.__dict__["_account_management"] = found
    return found


def _account(state: GatewayState, account_id: Any) -> _Account:
    found = am(state).accounts.get(str(account_id or ""))
    if found is None:
        raise _problem(404, f"account {account_id!r} is not administered by master account {MASTER}")
    return found


def _payload(req: SimRequest) -> dict[str, Any]:
    if not isinstance(req.body, dict):
        raise _problem(400, "the request body must be a JSON object (signed as a JWT under OAuth 2.0)")
    return req.body


def _in_range(req: SimRequest, when: str | None) -> bool:
    start, end = req.require_q("startDate"), req.require_q("endDate")
    return when is not None and start <= when[:10] <= end


def _page(req: SimRequest, items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    offset = max(0, as_int(req.q("offset", "0"), "offset"))
    limit = max(1, min(1000, as_int(req.q("limit", "100"), "limit")))
    return {key: items[offset : offset + limit], "limit": limit, "offset": offset, "total": len(items)}


def _submit(state: GatewayState, kind: str, account_id: str) -> dict[str, Any]:
    book = am(state)
    request_id = book.next_request
    request: dict[str, Any] = {
        "requestId": request_id,
        "requestType": kind,
        "accountID": account_id,
        "dateSubmitted": _stamp(state),
        "status": "N",
    }
    book.next_request += 1
    book.requests[request_id] = request
    return {"requestId": request["requestId"], "dateSubmitted": request["dateSubmitted"], "accountId": account_id}


def _status_of(account: _Account) -> dict[str, Any]:
    return {
        "accountId": account.account_id,
        "masterAccountId": MASTER,
        "status": account.status,
        "state": {"N": "New", "P": "Pending", "O": "Open", "C": "Closed", "R": "Rejected"}.get(account.status, "?"),
        "dateStarted": account.started + "T00:00:00Z",
        "dateOpened": account.opened + "T00:00:00Z" if account.opened else None,
        "dateClosed": account.closed + "T00:00:00Z" if account.closed else None,
        "description": "",
    }


def _maybe_open(state: GatewayState, account: _Account) -> None:
    if account.status in ("N", "P") and account.tasks and all(account.tasks.values()):
        account.status, account.opened = "O", _date(state)


# -- accounts -----------------------------------------------------------------------------------------------------


@handles("am_accounts")
def _accounts(state: GatewayState, req: SimRequest) -> Any:
    book = am(state)
    wanted = [
        a
        for a in book.accounts.values()
        if (req.q("accountId") in (None, a.account_id)) and (req.q("externalId") in (None, a.external_id))
    ]
    if not wanted and (req.q("accountId") or req.q("externalId")):
        raise _problem(404, "no account matches")
    return {
        "accountId": wanted[0].account_id if len(wanted) == 1 else None,
        "accounts": [{"accountId": a.account_id, "externalId": a.external_id, "status": a.status} for a in wanted],
    }


@handles("am_create_account")
def _create_account(state: GatewayState, req: SimRequest) -> Any:
    body, book = _payload(req), am(state)
    customer = body.get("customer")
    if not isinstance(customer, Mapping) or not customer.get("email"):
        raise _problem(400, "customer.email is required")
    given = body.get("users")
    users = (
        [str(u.get("userName")) for u in given if isinstance(u, Mapping) and u.get("userName")]
        if isinstance(given, list)
        else []
    )
    taken = {u for a in book.accounts.values() for u in a.users}
    if set(users) & taken:
        raise _problem(422, f"username {sorted(set(users) & taken)[0]!r} is taken")
    account_id = f"U{book.next_account}"
    book.next_account += 1
    book.accounts[account_id] = _Account(
        account_id, "N", None, _date(state), str(customer.get("externalId") or ""), str(customer["email"]), users,
        {5001: False, 8001: False}, {"USD": 0.0},
    )  # fmt: skip
    return _submit(state, "CREATE_ACCOUNT", account_id)


@handles("am_update_account")
def _update_account(state: GatewayState, req: SimRequest) -> Any:
    body = _payload(req)
    account = _account(state, body.get("accountId"))
    customer = body.get("customer")
    if isinstance(customer, Mapping) and customer.get("email"):
        account.email = str(customer["email"])
    return _submit(state, "UPDATE_ACCOUNT", account.account_id)


@handles("am_submit_documents")
def _documents(state: GatewayState, req: SimRequest) -> Any:
    body = _payload(req)
    account = _account(state, body.get("accountId"))
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise _problem(400, "documents must be a non-empty list")
    for doc in documents:
        form = doc.get("formNumber") if isinstance(doc, Mapping) else None
        if form not in FORMS:
            raise _problem(400, f"unknown formNumber {form!r}")
        account.tasks[int(form)] = True
    _maybe_open(state, account)
    return _submit(state, "SUBMIT_DOCUMENTS", account.account_id)


def _messages(account: _Account) -> dict[str, Any]:
    return {
        "accountId": account.account_id,
        "clearingStatus": account.status,
        "clearingStatusDescription": _status_of(account)["state"],
        "loginMessagePresent": bool(account.messages),
        "loginMessages": copy.deepcopy(account.messages),
    }


@handles("am_login_messages")
def _login_messages(state: GatewayState, req: SimRequest) -> Any:
    found = [
        {**m, "accountId": a.account_id}
        for a in am(state).accounts.values()
        for m in a.messages
        if _in_range(req, m["date"]) and req.q("type") in (None, m["messageType"])
    ]
    return {"loginMessagePresent": bool(found), **_page(req, found, "loginMessages")}


@handles("am_account_statuses")
def _statuses(state: GatewayState, req: SimRequest) -> Any:
    found = [
        _status_of(a)
        for a in am(state).accounts.values()
        if _in_range(req, a.started) and req.q("status") in (None, a.status)
    ]
    return _page(req, found, "accounts")


@handles("am_account_details")
def _details(state: GatewayState, req: SimRequest) -> Any:
    account = _account(state, req.params["accountId"])
    return {
        "account": {
            "accountId": account.account_id,
            "externalId": account.external_id,
            "baseCurrency": "USD",
            "masterAccountId": MASTER,
            "email": account.email,
            "status": account.status,
        },
        "hasError": False,
    }


@handles("am_account_kyc")
def _kyc(state: GatewayState, req: SimRequest) -> Any:
    account = _account(state, req.params["accountId"])
    return {
        "entityId": int(account.account_id[1:]),
        "externalId": account.external_id,
        "state": "VERIFIED" if account.status == "O" else "PENDING",
        "url": f"https://kyc.invalid/{account.account_id}",
        "startDate": account.started + "T00:00:00Z",
        "hasError": False,
    }


@handles("am_account_login_messages")
def _account_messages(state: GatewayState, req: SimRequest) -> Any:
    account = _account(state, req.params["accountId"])
    out = _messages(account)
    out["loginMessages"] = [m for m in out["loginMessages"] if req.q("type") in (None, m["messageType"])]
    return out


@handles("am_account_status")
def _status(state: GatewayState, req: SimRequest) -> Any:
    return _status_of(_account(state, req.params["accountId"]))


@handles("am_update_account_status")
def _update_status(state: GatewayState, req: SimRequest) -> Any:
    account = _account(state, req.params["accountId"])
    status = _payload(req).get("status")
    if status not in ("C", "O", "A", "R"):
        raise _problem(400, f"status must be one of C, O, A, R, got {status!r}")
    if status == "O" and not all(account.tasks.values()):
        raise _problem(422, "the account has open registration tasks")
    if status == "C" and any(v for v in account.cash.values()):
        raise _problem(422, "the account still holds cash; transfer it first")
    account.status = str(status)
    if status == "C":
        account.closed = _date(state)
    _submit(state, "UPDATE_STATUS", account.account_id)
    return {**_status_of(account), "message": "status changed"}


def _tasks(account: _Account, pending: bool) -> list[dict[str, Any]]:
    return [
        {
            "formNumber": form,
            "formName": FORMS.get(form, "Form"),
            "action": "to be completed" if not done else "completed",
            "isRequiredForApproval": True,
            "state": "completed" if done else "pending",
        }
        for form, done in sorted(account.tasks.items())
        if not (pending and done)
    ]


@handles("am_account_tasks")
def _get_tasks(state: GatewayState, req: SimRequest) -> Any:
    account = _account(state, req.params["accountId"])
    tasks = _tasks(account, req.q("type", "registration") == "pending")
    status = _status_of(account)
    return {
        "accountId": account.account_id,
        "status": status["status"],
        "state": status["state"],
        "registrationTaskPresent": bool(tasks),
        "registrationTasks": tasks,
        "hasError": False,
    }


def _task_changes(state: GatewayState, req: SimRequest, assign: bool) -> list[dict[str, Any]]:
    account = _account(state, req.params["accountId"])
    tasks = _payload(req).get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise _problem(400, "tasks must be a non-empty list")
    out = []
    for task in tasks:
        form = task.get("formNumber") if isinstance(task, Mapping) else None
        if form not in FORMS:
            raise _problem(400, f"unknown formNumber {form!r}")
        if assign:
            account.tasks.setdefault(int(form), False)
            status = "ASSIGNED"
        elif int(form) not in account.tasks:
            raise _problem(422, f"form {form} is not a task of {account.account_id}")
        else:
            account.tasks[int(form)] = str(task.get("action", "COMPLETE")).upper() == "COMPLETE"
            status = "COMPLETED" if account.tasks[int(form)] else "REOPENED"
        out.append({"accountId": account.account_id, "formNumber": form, "status": status, "message": ""})
    _maybe_open(state, account)
    _submit(state, "ASSIGN_TASKS" if assign else "UPDATE_TASKS", account.account_id)
    return out


@handles("am_update_account_tasks")
def _update_tasks(state: GatewayState, req: SimRequest) -> Any:
    return _task_changes(state, req, assign=False)


@handles("am_assign_account_tasks")
def _assign_tasks(state: GatewayState, req: SimRequest) -> Any:
    return _task_changes(state, req, assign=True)


# -- utilities ----------------------------------------------------------------------------------------------------


@handles("am_requests")
def _requests(state: GatewayState, req: SimRequest) -> Any:
    book = am(state)
    for request in book.requests.values():  # IBKR processes submitted requests in the background
        if request["status"] == "N":
            request["status"] = "P"
        elif request["status"] == "P":
            request["status"] = "C"
    found = [
        copy.deepcopy(r)
        for r in book.requests.values()
        if _in_range(req, r["dateSubmitted"]) and req.q("status") in (None, r["status"])
    ]
    return _page(req, found, "requestDetails")


@handles("am_update_request_status")
def _request_status(state: GatewayState, req: SimRequest) -> Any:
    try:
        request = am(state).requests[int(req.params["requestId"])]
    except (KeyError, ValueError):
        raise _problem(404, f"no request {req.params['requestId']!r}") from None
    wanted = str(_payload(req).get("status", "")).upper()
    if wanted not in ("CANCELLED", "CANCELED", "X"):
        raise _problem(400, "status must be CANCELLED")
    if request["status"] == "C":
        raise _problem(422, "the request is processed already")
    request["status"] = "X"
    return {
        "requestId": str(request["requestId"]),
        "acctId": request["accountID"],
        "requestType": request["requestType"],
        "status": "X",
        "message": "cancelled",
    }


@handles("am_validate_username")
def _username(state: GatewayState, req: SimRequest) -> Any:
    name = req.params["username"]
    valid = 6 <= len(name) <= 20 and name.isalnum()
    taken = any(name == u for a in am(state).accounts.values() for u in a.users)
    return {
        "isValid": valid,
        "isAvailable": valid and not taken,
        "suggestedUserName": [f"{name}{n}" for n in (1, 2, 3)] if taken else [],
        "hasError": False,
    }


@handles("am_enumerations")
def _enumerations(state: GatewayState, req: SimRequest) -> Any:
    kind = req.params["enumerationType"]
    if kind not in ENUMERATIONS:
        raise _problem(400, f"unknown enumeration {kind!r}")
    return {"enumerationsType": kind, "formNumber": req.q("form-number", ""), "jsonData": {kind: ENUMERATIONS[kind]}}


@handles("am_complex_asset_transfer_enums")
def _brokers(state: GatewayState, req: SimRequest) -> Any:
    return {"instructionType": req.require_q("instructionType"), "brokers": list(BROKERS)}


@handles("am_participating_banks")
def _banks(state: GatewayState, req: SimRequest) -> Any:
    return {"type": req.require_q("type"), "participatingBanks": copy.deepcopy(BANKS)}


@handles("am_forms")
def _forms(state: GatewayState, req: SimRequest) -> Any:
    wanted = [int(x) for x in (req.q("formNo") or ",".join(map(str, FORMS))).split(",") if x.strip().isdigit()]
    unknown = [f for f in wanted if f not in FORMS]
    if unknown:
        raise _problem(404, f"unknown form {unknown[0]}")
    details = [{"formNumber": f, "formName": FORMS[f], "language": req.q("language", "en")} for f in wanted]
    return {"formDetails": details, "hasError": False, "timestamp": _stamp(state)}


@handles("am_required_forms")
def _required_forms(state: GatewayState, req: SimRequest) -> Any:
    forms = ["5001", "8001"]
    if (req.q("tradingPermissions") or "").find("OPT") >= 0:
        forms.append("4024")
    if (req.q("accountType") or "").upper() == "MARGIN":
        forms.append("3024")
    return {"forms": forms, "hasError": False}


# -- instructions -------------------------------------------------------------------------------------------------


def _result(ins: _Instruction) -> dict[str, Any]:
    return {
        "clientInstructionId": ins.client_id,
        "instructionId": ins.instruction_id,
        "instructionType": ins.kind,
        "instructionStatus": ins.status,
        "ibReferenceId": ins.instruction_id * 10,
        **{k: v for k, v in ins.detail.items() if k in ("accountId", "amount", "currency", "description")},
    }


def _cash(account: _Account, currency: str) -> float:
    return account.cash.get(currency, 0.0)


def _settle(state: GatewayState, ins: _Instruction) -> None:
    """A PENDING instruction is processed when it is next looked at: its effect happens then."""
    if ins.status != "PENDING":
        return
    book, d = am(state), ins.detail
    amount, currency = float(d.get("amount") or 0), str(d.get("currency") or "USD")
    if ins.kind == "WITHDRAWAL":
        account = book.accounts.get(str(d.get("accountId")))
        if account is None or _cash(account, currency) < amount:
            ins.status = "REJECTED"
            return
        account.cash[currency] = _cash(account, currency) - amount
    elif ins.kind == "DEPOSIT":
        account = book.accounts.get(str(d.get("accountId")))
        if account is not None:
            account.cash[currency] = _cash(account, currency) + amount
    elif ins.kind == "INTERNAL_CASH_TRANSFER":
        source = book.accounts.get(str(d.get("sourceAccountId")))
        target = book.accounts.get(str(d.get("targetAccountId")))
        if source is None or target is None or _cash(source, currency) < amount:
            ins.status = "REJECTED"
            return
        source.cash[currency] = _cash(source, currency) - amount
        target.cash[currency] = _cash(target, currency) + amount
    elif ins.kind in ("ACH_INSTRUCTION", "EDDA_INSTRUCTION", "TRADITIONAL_BANK_INSTRUCTION_VERIFICATION"):
        book.bank_instructions.append({**d, "instructionId": ins.instruction_id, "type": ins.kind})
    ins.status = "PROCESSED"
    book.processed += 1


def _create(state: GatewayState, kind: str, instruction: Any, set_id: int) -> _Instruction:
    book = am(state)
    if kind not in ASYNC_TYPES:
        raise _problem(400, f"instructionType {kind!r} is not accepted here")
    if not isinstance(instruction, Mapping):
        raise _problem(400, "instruction must be a JSON object")
    client_id = instruction.get("clientInstructionId")
    if isinstance(client_id, bool) or not isinstance(client_id, int):
        raise _problem(400, "instruction.clientInstructionId must be an integer")
    if client_id in book.by_client_id:
        raise _problem(409, f"clientInstructionId {client_id} was used before")
    account_id = instruction.get("accountId") or instruction.get("sourceAccountId")
    if account_id is not None and str(account_id) not in book.accounts:
        raise _problem(422, f"account {account_id!r} is not administered by master account {MASTER}")
    if kind in ("WITHDRAWAL", "DEPOSIT", "INTERNAL_CASH_TRANSFER"):
        amount = instruction.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount > 0:
            raise _problem(400, "instruction.amount must be a number above 0")
    ins = _Instruction(
        book.next_instruction, client_id, kind, "PENDING", set_id, str(account_id or ""), dict(instruction),
        state.now(),
    )  # fmt: skip
    book.next_instruction += 1
    book.instructions[ins.instruction_id] = ins
    book.by_client_id[client_id] = ins.instruction_id
    book.sets.setdefault(set_id, []).append(ins.instruction_id)
    return ins


def _new_set(state: GatewayState) -> int:
    book = am(state)
    book.next_set += 1
    return book.next_set


def _single(state: GatewayState, req: SimRequest) -> SimResponse:
    body = _payload(req)
    set_id = _new_set(state)
    ins = _create(state, str(body.get("instructionType")), body.get("instruction"), set_id)
    return SimResponse(202, {"instructionResult": _result(ins), "instructionSetId": set_id, "status": 202})


def _bulk(state: GatewayState, req: SimRequest) -> SimResponse:
    body = _payload(req)
    items = body.get("instructions")
    if not isinstance(items, list) or not items:
        raise _problem(400, "instructions must be a non-empty list")
    set_id = _new_set(state)
    made = [_create(state, str(body.get("instructionType")), item, set_id) for item in items]
    return SimResponse(
        202, {"instructionSetId": set_id, "status": 202, "instructionResults": [_result(i) for i in made]}
    )


handles(
    "am_create_bank_instruction",
    "am_external_asset_transfer",
    "am_external_cash_transfer",
    "am_internal_asset_transfer",
    "am_internal_cash_transfer",
)(_single)
handles(
    "am_create_bank_instructions_bulk",
    "am_external_asset_transfers_bulk",
    "am_external_cash_transfers_bulk",
    "am_internal_asset_transfers_bulk",
    "am_internal_cash_transfers_bulk",
)(_bulk)


def _polled(state: GatewayState, instruction_id: int | None) -> dict[str, Any]:
    ins = am(state).instructions.get(instruction_id) if instruction_id is not None else None
    if ins is None:
        raise _problem(404, "no such instruction")
    _settle(state, ins)
    return {"instructionResult": _result(ins), "instructionSetId": ins.set_id, "status": 200}


def _int_param(req: SimRequest, name: str) -> int:
    try:
        return int(req.params[name])
    except ValueError:
        raise _problem(400, f"{name} must be an integer") from None


@handles("am_instruction_status")
def _instruction(state: GatewayState, req: SimRequest) -> Any:
    return _polled(state, _int_param(req, "instructionId"))


@handles("am_client_instruction_status")
def _client_instruction(state: GatewayState, req: SimRequest) -> Any:
    return _polled(state, am(state).by_client_id.get(_int_param(req, "clientInstructionId")))


@handles("am_instruction_set_status")
def _instruction_set(state: GatewayState, req: SimRequest) -> Any:
    set_id = _int_param(req, "instructionSetId")
    ids = am(state).sets.get(set_id)
    if ids is None:
        raise _problem(404, f"no instruction set {set_id}")
    results = []
    for instruction_id in ids:
        ins = am(state).instructions[instruction_id]
        _settle(state, ins)
        results.append(_result(ins))
    return {"instructionSetId": set_id, "status": 200, "instructionResults": results}


def _cancel(state: GatewayState, instruction: Any, set_id: int) -> dict[str, Any]:
    if not isinstance(instruction, Mapping):
        raise _problem(400, "instruction must be a JSON object")
    book = am(state)
    wanted = instruction.get("instructionId")
    target = book.instructions.get(wanted) if isinstance(wanted, int) else None
    if target is None:
        raise _problem(404, f"no instruction {instruction.get('instructionId')!r}")
    if target.status != "PENDING":
        raise _problem(422, f"instruction {target.instruction_id} is {target.status} and cannot be cancelled")
    cancel = _create(state, "CANCEL_INSTRUCTION", instruction, set_id)
    target.status, cancel.status = "CANCELLED", "PROCESSED"
    return _result(cancel)


@handles("am_cancel_instruction")
def _cancel_one(state: GatewayState, req: SimRequest) -> Any:
    body, set_id = _payload(req), _new_set(state)
    return SimResponse(
        201, {"instructionResult": _cancel(state, body.get("instruction"), set_id), "instructionSetId": set_id}
    )


@handles("am_cancel_instructions_bulk")
def _cancel_many(state: GatewayState, req: SimRequest) -> Any:
    body, set_id = _payload(req), _new_set(state)
    items = body.get("instructions")
    if not isinstance(items, list) or not items:
        raise _problem(400, "instructions must be a non-empty list")
    results = [_cancel(state, item, set_id) for item in items]
    return SimResponse(201, {"instructionSetId": set_id, "status": 201, "instructionResults": results})


def _query(state: GatewayState, req: SimRequest, result: dict[str, Any]) -> SimResponse:
    instruction = _payload(req).get("instruction")
    if not isinstance(instruction, Mapping):
        raise _problem(400, "instruction must be a JSON object")
    body = {
        "instructionResult": {
            "clientInstructionId": instruction.get("clientInstructionId"),
            "instructionId": am(state).next_instruction,
            "instructionType": _payload(req).get("instructionType"),
            "instructionStatus": "PROCESSED",
            **result,
        },
        "instructionSetId": _new_set(state),
        "status": 201,
    }
    am(state).next_instruction += 1
    return SimResponse(201, body)


@handles("am_query_balances")
def _balances(state: GatewayState, req: SimRequest) -> Any:
    instruction = _payload(req).get("instruction") or {}
    account = _account(state, instruction.get("accountId") if isinstance(instruction, Mapping) else None)
    currency = str(instruction.get("currency") or "USD")
    cash = _cash(account, currency)
    return _query(
        state,
        req,
        {
            "accountId": account.account_id,
            "currency": currency,
            "withdrawableCashAmount": cash,
            "availableEquityValue": round(cash + 150.0 * sum(account.positions.values()), 2),
        },
    )


@handles("am_query_external_cash")
def _withdrawable(state: GatewayState, req: SimRequest) -> Any:
    instruction = _payload(req).get("instruction") or {}
    account = _account(state, instruction.get("accountId") if isinstance(instruction, Mapping) else None)
    cash = _cash(account, str(instruction.get("currency") or "USD"))
    return _query(
        state,
        req,
        {"accountId": account.account_id, "withdrawableAmount": cash, "withdrawableAmountNoBorrow": cash},
    )


@handles("am_query_recent_instructions")
def _recent(state: GatewayState, req: SimRequest) -> Any:
    instruction = _payload(req).get("instruction") or {}
    account = _account(state, instruction.get("accountId") if isinstance(instruction, Mapping) else None)
    history = instruction.get("transactionHistory") or {}
    days = as_int(history.get("daysToGoBack", 30), "daysToGoBack") if isinstance(history, Mapping) else 30
    since = state.now() - days * 86400
    found = [
        _result(i) for i in am(state).instructions.values() if i.account_id == account.account_id and i.created >= since
    ]
    return _query(state, req, {"accountId": account.account_id, "history": found})


@handles("am_query_bank_instructions")
def _bank_instructions(state: GatewayState, req: SimRequest) -> Any:
    instruction = _payload(req).get("instruction") or {}
    account = _account(state, instruction.get("accountId") if isinstance(instruction, Mapping) else None)
    found = [copy.deepcopy(b) for b in am(state).bank_instructions if b.get("accountId") == account.account_id]
    return _query(state, req, {"accountId": account.account_id, "bankInstructionDetails": found})


# -- reports ------------------------------------------------------------------------------------------------------


def _months(state: GatewayState, account: _Account) -> list[str]:
    if account.opened is None:
        return []
    first = datetime.date.fromisoformat(account.opened).replace(day=1)
    today = datetime.date.fromisoformat(_date(state))
    months = []
    while first < today.replace(day=1):
        months.append(first.strftime("%Y%m"))
        first = (first + datetime.timedelta(days=32)).replace(day=1)
    return months


def _document(kind: str, account: _Account, mime: str, period: str) -> dict[str, Any]:
    text = f"{kind} of {account.account_id} for {period} (simulated)"
    return {"data": {"mimeType": mime, "value": base64.b64encode(text.encode()).decode()}}


def _report_account(state: GatewayState, req: SimRequest) -> _Account:
    body = _payload(req)
    ids = body.get("accountIds") or [body.get("accountId")]
    return _account(state, ids[0] if isinstance(ids, list) and ids else None)


@handles("am_available_statements")
def _available_statements(state: GatewayState, req: SimRequest) -> Any:
    account = _account(state, req.require_q("accountId"))
    return {"data": {"dataType": "Available Statements", "value": {"monthly": _months(state, account)}}}


@handles("am_statements")
def _statements(state: GatewayState, req: SimRequest) -> Any:
    account, body = _report_account(state, req), _payload(req)
    start, end = str(body.get("startDate") or ""), str(body.get("endDate") or "")
    if not start or not end or start > end:
        raise _problem(400, "startDate and endDate (startDate first) are required")
    if start.replace("-", "")[:6] not in _months(state, account):
        raise _problem(404, f"no statement of {account.account_id} for {start}")
    return _document("activity statement", account, str(body.get("mimeType") or "application/pdf"), start)


@handles("am_available_tax_documents")
def _available_tax(state: GatewayState, req: SimRequest) -> Any:
    account = _account(state, req.require_q("accountId"))
    year = req.require_q("year")
    forms = (
        [{"taxFormName": "1099", "formats": ["PDF", "HTML", "CSV"], "isForm": True}]
        if any(m.startswith(year) for m in _months(state, account))
        else []
    )
    return {"data": {"dataType": "Available Tax Forms", "value": {"year": as_int(year, "year"), "forms": forms}}}


@handles("am_tax_documents")
def _tax(state: GatewayState, req: SimRequest) -> Any:
    account, body = _report_account(state, req), _payload(req)
    year = str(body.get("year") or "")
    if not any(m.startswith(year) for m in _months(state, account)):
        raise _problem(404, f"no tax documents of {account.account_id} for {year or '?'}")
    return _document(f"tax form {body.get('type', 'ALL')}", account, str(body.get("format") or "PDF"), year)


@handles("am_available_trade_confirmations")
def _available_confirmations(state: GatewayState, req: SimRequest) -> Any:
    account = _account(state, req.require_q("accountId"))
    return {"data": {"dataType": "Available Trade Confirmations", "value": _months(state, account)}}


@handles("am_trade_confirmations")
def _confirmations(state: GatewayState, req: SimRequest) -> Any:
    account, body = _report_account(state, req), _payload(req)
    start, end = str(body.get("startDate") or ""), str(body.get("endDate") or "")
    if not start or not end or start > end:
        raise _problem(400, "startDate and endDate (startDate first) are required")
    return _document("trade confirmations", account, str(body.get("mimeType") or "application/pdf"), start)


# -- platform -----------------------------------------------------------------------------------------------------


@handles("echo_https")
def _echo(state: GatewayState, req: SimRequest) -> Any:
    return {"requestMethod": req.method, "securityPolicy": "HTTPS", "queryParameters": dict(req.query)}


@handles("echo_signed_jwt")
def _echo_signed(state: GatewayState, req: SimRequest) -> Any:
    return {
        "requestMethod": req.method,
        "securityPolicy": "SIGNED_JWT",
        "queryParameters": dict(req.query),
        "body": req.body if isinstance(req.body, dict) else None,
    }


@handles("create_sso_session")
def _sso_session(state: GatewayState, req: SimRequest) -> Any:
    """Without OAuth 2.0 (the simulator's gateway mode) there is nothing to check: a session token is handed out."""
    if not state.session.logged_in:
        state.login(False)
    return {"access_token": "sim-st-" + secrets.token_urlsafe(16), "active": True, "token_type": "Bearer"}


@handles("create_sso_browser_session")
def _browser_session(state: GatewayState, req: SimRequest) -> Any:
    token = secrets.token_urlsafe(16)
    return {"access_token": token, "active": True, "url": f"https://portal.invalid/sso/Dispatcher?token={token}"}


def _csv(req: SimRequest) -> tuple[int, str]:
    body = _payload(req)
    try:
        request_id = int(body.get("requestId"))  # type: ignore[arg-type]
        text = base64.b64decode(str(body.get("payload") or ""), validate=True).decode("utf-8")
    except (TypeError, ValueError):
        raise _problem(400, "requestId must be an integer and payload base64 of the CSV") from None
    if not text.strip():
        raise _problem(400, "the CSV is empty")
    return request_id, text


@handles("verify_restrictions")
def _verify_csv(state: GatewayState, req: SimRequest) -> Any:
    request_id, text = _csv(req)
    state.__dict__.setdefault("_restrictions_verified", set()).add(request_id)
    return {"requestId": request_id, "success": True, "message": f"{len(text.splitlines())} line(s) verified"}


@handles("apply_restrictions")
def _apply_csv(state: GatewayState, req: SimRequest) -> Any:
    request_id, text = _csv(req)
    if request_id not in state.__dict__.get("_restrictions_verified", set()):
        raise _problem(422, f"request {request_id} was not verified first")
    return {"requestId": request_id, "success": True, "message": f"{len(text.splitlines())} line(s) applied"}
