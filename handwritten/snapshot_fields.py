"""IBKR market data snapshot fields by name: `snapshot_keys_to_ids(["last_price", "bid_price"])` gives
`["31", "84"]`.

The names are those the peer library ibind uses (so `live_marketdata_snapshot_by_symbol` answers with the same keys);
the ids are IBKR's documented snapshot field ids (`/iserver/marketdata/snapshot`, `fields=`).
"""

from __future__ import annotations

from collections.abc import Iterable

SNAPSHOT_FIELDS: dict[str, str] = {
    "symbol": "55",
    "conid": "6008",
    "sec_type": "6070",
    "underlying_conid": "6457",
    "market_data_availability": "6509",
    "conid_exchange": "7094",
    "contract_description": "7219",
    "contract_description_alt": "7220",
    "ask_codes": "7057",
    "bid_codes": "7068",
    "last_exch_codes": "7058",
    "open": "7295",
    "high": "70",
    "low": "71",
    "close": "7296",
    "last_price": "31",
    "bid_price": "84",
    "ask_price": "86",
    "last_size": "7059",
    "bid_size": "88",
    "ask_size": "85",
    "prior_close": "7741",
    "mark_price": "7635",
    "volume": "87",
    "volume_long": "7762",
    "change": "82",
    "change_since_open": "7682",
    "change_percent": "83",
    "implied_vol_hist_vol_percent": "7084",
    "hist_vol_close_percent": "7088",
    "spx_delta": "7696",
    "beta": "7718",
    "hist_vol_percent": "7087",
    "average_volume_90": "7282",
    "dividend_amount": "7286",
    "dividend_yield_percent": "7287",
    "ex_date_dividend": "7288",
    "market_cap": "7289",
    "p_e": "7290",
    "eps": "7291",
    "52_week_high": "7293",
    "52_week_low": "7294",
    "ema_200": "7674",
    "ema_100": "7675",
    "ema_50": "7676",
    "ema_20": "7677",
    "price_to_ema_200_percent": "7678",
    "price_to_ema_100_percent": "7679",
    "price_to_ema_50_percent": "7724",
    "price_to_ema_20_percent": "7681",
    "market_value": "73",
    "avg_price": "74",
    "unrealized_pnl": "75",
    "formatted_position": "76",
    "formatted_unrealized_pnl": "77",
    "daily_pnl": "78",
    "realized_pnl": "79",
    "unrealized_pnl_percent": "80",
    "daily_pnl_raw": "7920",
    "cost_basis_raw": "7921",
    "cost_basis": "7292",
    "company_name": "7051",
    "exchange": "6004",
    "listing_exchange": "7221",
    "industry": "7280",
    "category": "7281",
    "ratings": "7706",
    "bond_state_code": "7707",
    "bond_type": "7708",
    "last_trading_date": "7714",
    "issue_date": "7715",
    "organization_type": "7704",
    "debt_class": "7705",
    "text": "58",
    "opt_volume": "7089",
    "put_call_ratio": "7285",
    "option_open_interest": "7638",
    "percent_of_mark_value": "7639",
    "probability_of_max_return": "7694",
    "break_even": "7695",
    "probability_of_max_loss": "7702",
    "profit_probability": "7703",
    "last_yield": "7698",
    "bid_yield": "7699",
    "ask_yield": "7720",
    "futures_open_interest": "7697",
    "shortable_shares": "7636",
    "shortable_fee_rate_percent": "7637",
    "put_call_interest": "7085",
    "put_call_volume": "7086",
    "option_implied_vol_percent": "7283",
    "delta": "7308",
    "gamma": "7309",
    "theta": "7310",
    "vega": "7311",
    "implied_vol_percent": "7633",
    "opt_volume_change_percent": "7607",
    "right": "201",
    "upcoming_event": "7683",
    "upcoming_event_date": "7684",
    "upcoming_analyst_meeting": "7685",
    "upcoming_earnings": "7686",
    "upcoming_misc_event": "7687",
    "recent_analyst_meeting": "7688",
    "recent_earnings": "7689",
    "recent_misc_event": "7690",
    "morningstar_rating": "7655",
    "dividends": "7671",
    "dividends_ttm": "7672",
    "can_be_traded": "7184",
    "shortable": "7644",
    "service_params": "6508",
    "market_data_marker": "6119",
    "months": "6072",
    "regular_expiry": "6073",
    "has_trading_permissions": "7768",
}
"""Field name → IBKR field id."""

SNAPSHOT_FIELD_NAMES: dict[str, str] = {field_id: name for name, field_id in SNAPSHOT_FIELDS.items()}
"""IBKR field id → field name."""


def snapshot_keys_to_ids(keys: Iterable[str]) -> list[str]:
    """Field names → IBKR field ids, in order.

    Raises:
        KeyError: a name is not a known snapshot field.
    """
    return [SNAPSHOT_FIELDS[key] for key in keys]


def snapshot_ids_to_keys(ids: Iterable[str | int]) -> list[str]:
    """IBKR field ids (strings or ints) → field names, in order.

    Raises:
        KeyError: an id is not a known snapshot field.
    """
    return [SNAPSHOT_FIELD_NAMES[str(field_id)] for field_id in ids]


def name_snapshot_fields(entry: dict[str, object]) -> dict[str, object]:
    """One snapshot entry with its field ids replaced by field names; other keys (`conid`, `_updated`, ...) kept."""
    return {SNAPSHOT_FIELD_NAMES.get(key, key): value for key, value in entry.items()}
