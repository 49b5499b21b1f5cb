"""Routing from the catalogue: every endpoint has a route, unmodelled ones answer 501, unknown paths 404."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk._endpoint_table import ENDPOINTS
from ibkr_sdk.simulator import Simulator
from ibkr_sdk.simulator._core import HANDLERS
from tests.simulator.helpers import raw_request


def test_every_catalogue_endpoint_is_modelled() -> None:
    assert sorted(set(ENDPOINTS) - set(HANDLERS)) == []
    assert len(HANDLERS) == len(ENDPOINTS) == 172


def test_unmodelled_endpoint_answers_501_naming_it(api: IbkrClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(HANDLERS, "regulatory_snapshot")  # as if the simulator did not model it
    with pytest.raises(ExternalBrokerError) as caught:
        api.regulatory_snapshot("265598")
    assert caught.value.status_code == 501
    assert "regulatory_snapshot" in str(caught.value)
    assert "/md/regsnapshot" in str(caught.value)


def test_unknown_path_404_and_wrong_method_405(sim: Simulator) -> None:
    status, body = raw_request(sim, "GET", "/v1/api/no/such/thing")
    assert status == 404 and "no such endpoint" in body["error"]
    status, _ = raw_request(sim, "GET", "/elsewhere")
    assert status == 404
    status, body = raw_request(sim, "GET", "/v1/api/tickle")
    assert status == 405 and "POST" in body["error"]


def test_every_catalogue_endpoint_is_routed(sim: Simulator) -> None:
    """Each endpoint, with placeholder values and an empty body, reaches its route; handlers never crash."""
    seen = set()
    first, last = "receive_brokerage_accounts", "logout"
    order = [first] + sorted(n for n in ENDPOINTS if n not in (first, last)) + [last]
    for name in order:
        spec = ENDPOINTS[name]
        path = (spec.base or "/v1/api") + spec.path
        for p in spec.params:
            if p.location == "path":
                path = path.replace("{" + p.wire + "}", "1")
        body: dict[str, Any] | None = {} if spec.http in ("POST", "PUT", "PATCH") else None
        status, answer = raw_request(sim, spec.http, path, body)
        assert status != 405 and not (status == 404 and "no such endpoint" in str(answer)), (spec.name, answer)
        assert not (status == 500 and "simulator error" in str(answer)), (spec.name, answer)
        if status == 501:
            assert spec.name not in HANDLERS
            assert spec.name in answer["error"]
        seen.add(spec.name)
    assert seen == set(ENDPOINTS)
    logged = {r.endpoint for r in sim.requests}
    assert logged == set(ENDPOINTS)


def test_handlers_cover_the_modelled_areas() -> None:
    assert set(HANDLERS) <= set(ENDPOINTS)
    for name in (
        "authentication_status",
        "initialize_brokerage_session",
        "tickle",
        "logout",
        "validate",
        "reauthenticate",
        "receive_brokerage_accounts",
        "portfolio_accounts",
        "portfolio_subaccounts",
        "account_summary",
        "switch_account",
        "security_stocks_by_symbol",
        "security_definition_by_conid",
        "search_contract_by_symbol",
        "search_strikes_by_conid",
        "search_secdef_info_by_conid",
        "security_future_by_symbol",
        "contract_information_by_conid",
        "live_marketdata_snapshot",
        "marketdata_history_by_conid",
        "historical_marketdata_beta",
        "marketdata_unsubscribe",
        "marketdata_unsubscribe_all",
        "place_order",
        "reply",
        "suppress_messages",
        "reset_suppressed_messages",
        "live_orders",
        "order_status",
        "cancel_order",
        "modify_order",
        "whatif_order",
        "trades",
        "positions",
        "positions2",
        "get_ledger",
        "portfolio_summary",
        "portfolio_account_information",
        "position_and_contract_info",
        "create_watchlist",
        "get_all_watchlists",
        "get_watchlist_information",
        "delete_watchlist",
        "info_and_rules_by_conid",
        "search_contract_rules",
        "algo_params_by_conid",
        "currency_pairs",
        "currency_exchange_rate",
        "trading_schedule_by_symbol",
        "trading_schedule_by_conid",
        "all_conids_by_exchange",
        "scanner_parameters",
        "market_scanner",
        "hmds_scanner_parameters",
        "hmds_market_scanner",
        "create_alert",
        "list_alerts",
        "alert_details",
        "activate_alert",
        "delete_alert",
        "mta_alert",
        "fyi_unread_count",
        "fyi_settings",
        "modify_fyi_setting",
        "fyi_disclaimer",
        "mark_fyi_disclaimer_read",
        "fyi_delivery_options",
        "set_fyi_email_delivery",
        "set_fyi_device_delivery",
        "delete_fyi_device",
        "fyi_notifications",
        "mark_fyi_notification_read",
        "account_summary_available_funds",
        "account_summary_balances",
        "account_summary_margins",
        "account_summary_market_value",
        "account_profit_and_loss",
        "account_performance",
        "all_periods",
        "transaction_history",
        "large_portfolio_subaccounts",
        "invalidate_backend_portfolio_cache",
        "combination_positions",
        "signatures_and_owners",
        "forecast_categories",
        "forecast_contract_markets",
        "forecast_contract_details",
        "forecast_contract_rules",
        "forecast_contract_schedules",
        "allocation_accounts",
        "allocation_groups",
        "create_allocation_group",
        "modify_allocation_group",
        "delete_allocation_group",
        "allocation_group",
        "allocation_presets",
        "set_allocation_presets",
        "fa_model_list",
        "fa_model_positions",
        "fa_model_summary",
        "fa_model_accounts_details",
        "fa_model_save",
        "fa_model_invest_divest",
        "fa_model_invest_divest_positions",
        "fa_model_submit_transfers",
        "fa_preset_get",
        "fa_preset_save",
    ):
        assert name in HANDLERS, name


def test_invalid_json_body_is_refused(sim: Simulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        conn.request("POST", "/v1/api/iserver/account", body=b"{not json", headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 400
        assert "not valid JSON" in json.loads(resp.read())["error"]
    finally:
        conn.close()
