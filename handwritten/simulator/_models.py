"""Financial Advisor model portfolios: list, summary, positions and invested accounts of a model, saving its
targets, drafting and submitting invest/divest transfers, and the rebalancing presets. Kept per simulator; only
with `Simulator(advisor=True)` (otherwise 400, like the allocation endpoints).

A model holds target weights (fractions 0..1 that add up to 1 over cash and contracts, as IBKR wants them in
practice). Investing is two steps: `invest-divest` drafts transfers and answers their `transfersInstructionId`;
`submit-transfers` with that id carries them out. An invested amount (base currency) is split by the targets at
the current prices into model cash and contract shares per account; the holdings then drift with the prices.
A divestment sells the same fraction of every holding of the account. Model holdings are kept apart from the
simulated account book: investing places no orders and moves no account cash (see the module's report).

Following the peer's reports from live use: an unknown model gives empty read answers rather than an error; an
amount of zero, divesting more than is invested, and a transfer id without a pending draft answer 500; the
static/dynamic flag cannot change while accounts are invested (400). Malformed bodies answer 400.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._allocation import require_advisor
from ._core import GatewayError, SimRequest, as_float, as_int, handles
from ._state import GatewayState

TOLERANCE = 0.02  # a holding further than this from its target weight is outside its range
_SORT_FIELDS = (
    "actual",
    "actualRangeMax",
    "actualRangeMin",
    "ccy",
    "conid",
    "dlv",
    "instrumentImbalance",
    "instrument",
    "mismatchType",
    "mv",
    "position",
    "target",
)
_PRESETS: dict[str, bool] = {  # IBKR's example answer
    "avoidNegativeCashInIndependent": False,
    "closeDivestIndependentPosition": True,
    "fullyInvestExistingLongPositions": False,
    "keepModelOpen": False,
    "preferCrossWithIndependent": False,
    "preferTransferFromIndependent": True,
    "roundAllocationQuantityToExchangeBoardLot": False,
    "useNonBaseCcy": False,
    "useToleranceRange": False,
}


@dataclass
class Holding:
    """What one account holds in one model (base-currency cost per contract)."""

    cash: dict[str, float] = field(default_factory=dict)  # currency -> amount
    shares: dict[int, float] = field(default_factory=dict)  # conid -> quantity
    cost: dict[int, float] = field(default_factory=dict)  # conid -> cost in the base currency


@dataclass
class Model:
    name: str
    desc: str
    static: bool
    cash_targets: dict[str, float]
    position_targets: dict[int, float]
    holdings: dict[str, Holding] = field(default_factory=dict)  # by account


@dataclass
class ModelBook:
    models: dict[str, Model] = field(default_factory=dict)
    drafts: dict[int, tuple[str, list[tuple[str, float]]]] = field(default_factory=dict)  # id -> model, transfers
    presets: dict[str, bool] = field(default_factory=lambda: dict(_PRESETS))
    next_draft: int = 0


def _book(state: GatewayState) -> ModelBook:
    require_advisor(state)
    if state.fa_models is None:
        state.fa_models = ModelBook(next_draft=state.rng.randrange(100_000_000, 200_000_000))
    return state.fa_models


def _req_id(req: SimRequest) -> int:
    if req.field("reqID") is None:
        raise GatewayError(400, "Bad Request: reqID is required")
    return as_int(req.field("reqID"), "reqID")


def _model_name(req: SimRequest) -> str:
    name = req.field("model")
    if not isinstance(name, str) or not name.strip():
        raise GatewayError(400, "Bad Request: model is required")
    return name


# -- valuation ------------------------------------------------------------------------------------------------------


def _value(state: GatewayState, h: Holding) -> float:
    now = state.now()
    total = sum(amount * state.book.fx(ccy, now) for ccy, amount in h.cash.items())
    for conid, qty in h.shares.items():
        c = state.universe.get(conid)
        if c is not None:
            total += qty * state.book.mark(c, now) * c.multiplier * state.book.fx(c.currency, now)
    return total


def _weights(state: GatewayState, model: Model, holdings: list[Holding]) -> tuple[float, list[dict[str, Any]]]:
    """Total value and one row per target (cash rows have "ccy" only) of the given holdings together."""
    now = state.now()
    nlv = sum(_value(state, h) for h in holdings)
    rows: list[dict[str, Any]] = []
    for ccy, target in model.cash_targets.items():
        rate = state.book.fx(ccy, now)
        mv = sum(h.cash.get(ccy, 0.0) for h in holdings) * rate
        actual = mv / nlv if nlv else 0.0
        rows.append({"ccy": ccy, "target": target, "mv": mv, "actual": actual, "exchangeRate": rate})
    for conid, target in model.position_targets.items():
        c = state.universe.get(conid)
        if c is None:
            continue
        rate = state.book.fx(c.currency, now)
        qty = sum(h.shares.get(conid, 0.0) for h in holdings)
        mv = qty * state.book.mark(c, now) * c.multiplier * rate
        actual = mv / nlv if nlv else 0.0
        rows.append(
            {
                "conid": conid,
                "contract": c,
                "qty": qty,
                "target": target,
                "mv": mv,
                "actual": actual,
                "exchangeRate": rate,
            }
        )
    return nlv, rows


def _outside(rows: list[dict[str, Any]], invested: bool) -> int:
    return sum(1 for r in rows if invested and abs(r["actual"] - r["target"]) > TOLERANCE)


def _summary(state: GatewayState, model: Model) -> dict[str, Any]:
    nlv, rows = _weights(state, model, list(model.holdings.values()))
    return {
        "bootstrapped": True,
        "customIndex": False,
        "desc": model.desc,
        "isStatic": model.static,
        "mismatch": _outside(rows, bool(nlv)) > 0,
        "model": model.name,
        "nlv": round(nlv, 2),
        "numAccounts": len(model.holdings),
    }


# -- reading --------------------------------------------------------------------------------------------------------


@handles("fa_model_list")
def _list(state: GatewayState, req: SimRequest) -> Any:
    models = _book(state)
    return {
        "baseCcy": state.book.base_currency,
        "masterAccount": state.account_ids[0],
        "models": [_summary(state, m) for m in models.models.values()],
        "reqID": _req_id(req),
        "subscriptionStatus": 1,
    }


@handles("fa_model_summary")
def _model_summary(state: GatewayState, req: SimRequest) -> Any:
    models = _book(state)
    req_id, name = _req_id(req), _model_name(req)
    model = models.models.get(name)
    if model is None:
        return {"model": name, "reqID": req_id, "subscriptionStatus": 1}
    return {**_summary(state, model), "reqID": req_id, "subscriptionStatus": 1}


@handles("fa_model_positions")
def _positions(state: GatewayState, req: SimRequest) -> Any:
    models = _book(state)
    req_id, name = _req_id(req), _model_name(req)
    sort_field, direction, limit = req.field("sortField"), req.field("sortDirection"), req.field("limit")
    if sort_field is not None and sort_field not in _SORT_FIELDS:
        raise GatewayError(400, f"Bad Request: sortField must be one of {', '.join(_SORT_FIELDS)}")
    if direction is not None and direction not in ("ASC", "DESC"):
        raise GatewayError(400, "Bad Request: sortDirection must be ASC or DESC")
    model = models.models.get(name)
    answer: dict[str, Any] = {
        "model": name,
        "reqID": req_id,
        "subscriptionStatus": 1,
        "positionTs": int(state.now() * 1000),
    }
    if model is None:  # not an error at IBKR: the answer is just empty
        return {**answer, "cash": [], "positionList": [], "nlv": 0.0, "totalMv": 0.0, "totalDlv": 0.0}
    nlv, rows = _weights(state, model, list(model.holdings.values()))
    cash, positions = [], []
    for r in rows:
        common = {
            "actual": round(r["actual"], 4),
            "exchangeRate": r["exchangeRate"],
            "instrumentImbalance": round(r["actual"] - r["target"], 4) if nlv else 0.0,
            "mv": round(r["mv"], 2),
            "target": r["target"],
        }
        if "conid" not in r:
            cash.append({"ccy": r["ccy"], **common})
            continue
        c = r["contract"]
        positions.append(
            {
                **common,
                "actualRangeMax": round(min(r["target"] + TOLERANCE, 1.0), 4),
                "actualRangeMin": round(max(r["target"] - TOLERANCE, 0.0), 4),
                "ccy": c.currency,
                "conid": c.conid,
                "dlv": round(r["mv"], 2),  # stocks: delta 1
                "flags": 0,
                "instrument": c.symbol,
                "mismatchType": 1 if nlv and abs(r["actual"] - r["target"]) > TOLERANCE else 0,
                "position": round(r["qty"], 4),
            }
        )
    if sort_field is not None:
        positions.sort(key=lambda p: p[sort_field], reverse=direction == "DESC")
    if limit is not None:
        positions = positions[: max(as_int(limit, "limit"), 0)]
    total = round(sum(p["mv"] for p in positions), 2)
    return {
        **answer,
        "cash": cash,
        "mismatched": any(p["mismatchType"] for p in positions),
        "nlv": round(nlv, 2),
        "positionList": positions,
        "stkOnly": all(r["contract"].sec_type == "STK" for r in rows if "conid" in r),
        "totalDlv": total,
        "totalMv": total,
    }


def _independent(state: GatewayState, account: str) -> tuple[float, float]:
    """The account's own cash and net liquidation value (outside every model)."""
    totals = state.book.totals(account, state.now())
    return totals["cash"], totals["net_liq"]


@handles("fa_model_accounts_details")
def _accounts_details(state: GatewayState, req: SimRequest) -> Any:
    models = _book(state)
    req_id, name = _req_id(req), _model_name(req)
    with_pnl = req.field("calcPnls") is True
    model = models.models.get(name) or Model(name, "", False, {}, {})  # unknown: no accounts
    base = state.book.base_currency
    rows: list[dict[str, Any]] = []
    sums = {"cash": 0.0, "cost": 0.0, "nlv": 0.0, "pnl": 0.0}
    for account, holding in model.holdings.items():
        nlv, weights = _weights(state, model, [holding])
        cost = sum(holding.cost.values())
        pnl = nlv - sum(holding.cash.values()) - cost if with_pnl else 0.0
        cash, _ = _independent(state, account)
        imbalance = sum(abs(w["actual"] - w["target"]) for w in weights) / 2 if nlv else 0.0
        rows.append(
            {
                "account": account,
                "accountImbalance": f"{imbalance:.6f}",
                "alias": "",
                "baseCcyAccount": base,
                "cashInIndependent": f"{cash:.2f}",
                "costBasis": f"{cost:.2f}",
                "exchangeRate": 1.0,
                "nlv": f"{nlv:.2f}",
                "numInstrumentsOutsideRange": _outside(weights, bool(nlv)),
                "unrealizedPnL": f"{pnl:.2f}",
            }
        )
        for key, value in (("cash", cash), ("cost", cost), ("nlv", nlv), ("pnl", pnl)):
            sums[key] += value
    if rows:
        rows.append(
            {
                "account": "TOTAL",
                "accountImbalance": "0",
                "alias": "None",
                "baseCcyAccount": base,
                "cashInIndependent": f"{sums['cash']:.2f}",
                "costBasis": f"{sums['cost']:.2f}",
                "exchangeRate": 1.0,
                "nlv": f"{sums['nlv']:.2f}",
                "numInstrumentsOutsideRange": 0,
                "unrealizedPnL": f"{sums['pnl']:.2f}",
            }
        )
    return {"accountInfoList": rows, "baseCcyMaster": base, "model": name, "reqID": req_id}


@handles("fa_model_invest_divest_positions")
def _invested(state: GatewayState, req: SimRequest) -> Any:
    models = _book(state)
    req_id, name = _req_id(req), _model_name(req)
    status = req.field("subscriptionStatus", 1)
    if status not in (0, 1):
        raise GatewayError(400, "Bad Request: subscriptionStatus must be 0 or 1")
    model = models.models.get(name)
    base = state.book.base_currency
    rows = []
    for account in state.sub_accounts:
        in_model = _value(state, model.holdings[account]) if model and account in model.holdings else 0.0
        others = sum(
            _value(state, m.holdings[account])
            for m in models.models.values()
            if m is not model and account in m.holdings
        )
        cash, net_liq = _independent(state, account)
        rows.append(
            {
                "account": account,
                "accountModelNlv": f"{in_model:.2f}",
                "accountOtherModelsNlv": f"{others:.2f}",
                "alias": "",
                "baseCcyAccount": base,
                "baseCcyAccountPrecision": "0.01",
                "cashInIndependentNlv": f"{cash:.2f}",
                "exchangeRate": 1.0,
                "nlv": f"{net_liq + in_model + others:.2f}",
                "positionsInIndependentNlv": f"{net_liq - cash:.2f}",
            }
        )
    return {
        "accountList": rows if model else [],
        "baseCcyMaster": base,
        "baseCcyMasterPrecision": "0.01",
        "model": name,
        "reqID": req_id,
        "subscriptionStatus": status,
    }


# -- changing -------------------------------------------------------------------------------------------------------


def _targets(state: GatewayState, req: SimRequest) -> tuple[dict[str, float], dict[int, float]]:
    raw_cash, raw_positions = req.field("cashTargets"), req.field("positionTargets")
    if not isinstance(raw_cash, list) or not isinstance(raw_positions, list):
        raise GatewayError(400, "Bad Request: cashTargets and positionTargets must be lists")
    cash: dict[str, float] = {}
    positions: dict[int, float] = {}
    for entry in raw_cash + raw_positions:
        if not isinstance(entry, dict):
            raise GatewayError(400, "Bad Request: every target must be an object")
        target = as_float(entry.get("target"), "target")
        if not 0.0 <= target <= 1.0:
            raise GatewayError(400, f"Bad Request: targets are fractions between 0 and 1, got {target}")
        if "ccy" in entry:
            ccy = entry["ccy"]
            if not isinstance(ccy, str) or len(ccy) != 3 or not ccy.isupper() or ccy in cash:
                raise GatewayError(400, f"Bad Request: invalid or repeated cash currency {ccy!r}")
            cash[ccy] = target
        else:
            contract = state.contract(entry.get("conid"))
            if contract.conid in positions:
                raise GatewayError(400, f"Bad Request: conid {contract.conid} is listed twice")
            positions[contract.conid] = target
    if not positions and not cash:
        raise GatewayError(400, "Bad Request: a model needs at least one target")
    if abs(sum(cash.values()) + sum(positions.values()) - 1.0) > 1e-6:
        raise GatewayError(400, "Bad Request: cash and position targets must add up to 1")
    return cash, positions


@handles("fa_model_save")
def _save(state: GatewayState, req: SimRequest) -> Any:
    models = _book(state)
    req_id, name = _req_id(req), _model_name(req)
    desc, static = req.field("desc"), req.field("isStatic")
    if not isinstance(desc, str):
        raise GatewayError(400, "Bad Request: desc is required")
    if not isinstance(static, bool):
        raise GatewayError(400, "Bad Request: isStatic must be true or false")
    cash, positions = _targets(state, req)
    model = models.models.get(name)
    if model is None:
        models.models[name] = Model(name, desc, static, cash, positions)
    else:
        if model.holdings and model.static != static:
            raise GatewayError(400, f"Bad Request: accounts are invested in {name}; isStatic cannot change")
        model.desc, model.static, model.cash_targets, model.position_targets = desc, static, cash, positions
    return {"reqID": req_id, "success": True}


@handles("fa_model_invest_divest")
def _invest(state: GatewayState, req: SimRequest) -> Any:
    models = _book(state)
    req_id, name = _req_id(req), _model_name(req)
    model = models.models.get(name)
    if model is None:
        raise GatewayError(400, f"Bad Request: no model named {name!r}")
    raw = req.field("accountList")
    if not isinstance(raw, list) or not raw:
        raise GatewayError(400, "Bad Request: accountList must name at least one account")
    transfers: list[tuple[str, float]] = []
    for entry in raw:
        account = entry.get("account") if isinstance(entry, dict) else None
        if account not in state.sub_accounts:
            raise GatewayError(400, f"Bad Request: {account!r} is not a sub-account of {state.account_ids[0]}")
        amount = as_float(entry.get("amtToInvest"), "amtToInvest")
        if amount == 0:
            raise GatewayError(500, "amtToInvest must not be zero")
        transfers.append((str(account), amount))
    models.next_draft += 1
    models.drafts[models.next_draft] = (name, transfers)
    return {
        "reqID": str(req_id),
        "subscriptionKey": str(len(models.drafts)),
        "subscriptionStatus": 0,
        "transfersInstructionId": models.next_draft,
    }


def _apply(state: GatewayState, model: Model, account: str, amount: float) -> None:
    now = state.now()
    holding = model.holdings.setdefault(account, Holding())
    if amount > 0:
        for ccy, target in model.cash_targets.items():
            holding.cash[ccy] = holding.cash.get(ccy, 0.0) + amount * target / state.book.fx(ccy, now)
        for conid, target in model.position_targets.items():
            c = state.universe.get(conid)
            if c is None or not target:
                continue
            price = state.book.mark(c, now) * c.multiplier * state.book.fx(c.currency, now)
            holding.shares[conid] = holding.shares.get(conid, 0.0) + amount * target / price
            holding.cost[conid] = holding.cost.get(conid, 0.0) + amount * target
        return
    value = _value(state, holding)
    if -amount >= value - 0.005:  # all of it (to the cent): the account leaves the model
        del model.holdings[account]
        return
    keep = 1.0 - (-amount) / value
    holding.cash = {k: v * keep for k, v in holding.cash.items()}
    holding.shares = {k: v * keep for k, v in holding.shares.items()}
    holding.cost = {k: v * keep for k, v in holding.cost.items()}


@handles("fa_model_submit_transfers")
def _submit(state: GatewayState, req: SimRequest) -> Any:
    models = _book(state)
    req_id = _req_id(req)
    draft_id = as_int(req.field("fpOrderId"), "fpOrderId")
    draft = models.drafts.get(draft_id)
    if draft is None:
        raise GatewayError(500, f"no pending transfers with id {draft_id}")
    name, transfers = draft
    model = models.models.get(name)
    if model is None:
        raise GatewayError(500, f"model {name} no longer exists")
    for account, amount in transfers:  # check everything first: all or nothing
        held = _value(state, model.holdings[account]) if account in model.holdings else 0.0
        if amount < 0 and -amount > held + 0.005:
            raise GatewayError(500, f"{account} holds {held:.2f} in {name}; cannot divest {-amount:.2f}")
    for account, amount in transfers:
        _apply(state, model, account, amount)
    del models.drafts[draft_id]
    return {"reqID": req_id, "success": True}


@handles("fa_preset_get")
def _preset_get(state: GatewayState, req: SimRequest) -> Any:
    return {**_book(state).presets, "reqID": _req_id(req), "subscriptionStatus": 1}


@handles("fa_preset_save")
def _preset_save(state: GatewayState, req: SimRequest) -> Any:
    models = _book(state)
    req_id = _req_id(req)
    body = req.body if isinstance(req.body, dict) else {}
    changes = {}
    for key, value in body.items():
        if key not in _PRESETS:
            continue
        if not isinstance(value, bool):
            raise GatewayError(400, f"Bad Request: {key} must be true or false, got {value!r}")
        changes[key] = value
    models.presets.update(changes)
    return {"error": "None", "reqID": req_id, "subscriptionStatus": 1, "success": True}
