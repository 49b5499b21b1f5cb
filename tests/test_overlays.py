"""Hand-written overlays with the reference's signatures: order question/reply loop, StockQuery, market data
helpers, health check. Scripted answers from a loopback server; every test asserts what was sent."""

from __future__ import annotations

import datetime

import pytest

from ibkr_sdk import (
    ExternalBrokerError,
    IbkrClient,
    OrderQuestionError,
    OrderRequest,
    QuestionType,
    RequestValidationError,
    StockQuery,
    StockQueryError,
)
from tests.recording_server import RecordingServer, Reply

ORDERS = "/iserver/account/DU1234567/orders"
AAPL_LMT = {"conid": 265598, "side": "BUY", "orderType": "LMT", "price": 150.0, "quantity": 10, "tif": "DAY"}


def _question(qid: str, text: str, ids: list[str]) -> Reply:
    return Reply(body=[{"id": qid, "message": [text], "isSuppressed": False, "messageIds": ids}])


ACK = Reply(body=[{"order_id": "1370093239", "order_status": "Submitted", "encrypt_message": "1"}])
NO_MD = "You are submitting an order without market data. We strongly recommend against this. Are you sure?"
PRICE = 'The following order "BUY 10 AAPL NASDAQ.NMS @ 150.0" price exceeds \nthe Percentage constraint of 3%.'


def test_two_questions_answered_with_exactly_two_replies(client: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("POST", ORDERS, _question("q-1", NO_MD, ["o354"]))
    recorder.reply("POST", "/iserver/reply/q-1", _question("q-2", PRICE, ["o163"]))
    recorder.reply("POST", "/iserver/reply/q-2", ACK)
    result = client.place_order(
        AAPL_LMT, answers={QuestionType.MISSING_MARKET_DATA: True, QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True}
    )
    assert result.data["order_id"] == "1370093239"  # one order: its acknowledgement
    placed = recorder.sent("POST", ORDERS)
    assert len(placed) == 1
    body = placed[0].body
    assert body["orders"][0]["conid"] == 265598 and body["orders"][0]["cOID"].startswith("sdk-")
    replies = [r for r in recorder.requests if r.path.startswith("/v1/api/iserver/reply/")]
    assert [(r.path, r.body) for r in replies] == [
        ("/v1/api/iserver/reply/q-1", {"confirmed": True}),
        ("/v1/api/iserver/reply/q-2", {"confirmed": True}),
    ]


def test_answers_by_message_id_and_by_phrase(client: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("POST", ORDERS, _question("q-1", NO_MD, []))  # no ids: matched by text
    recorder.reply("POST", "/iserver/reply/q-1", _question("q-2", "Something else entirely", ["o163"]))
    recorder.reply("POST", "/iserver/reply/q-2", ACK)
    client.place_order(dict(AAPL_LMT, cOID="mine-1"), answers={"WITHOUT market data": True, "o163": True})
    assert recorder.sent("POST", ORDERS)[0].body["orders"][0]["cOID"] == "mine-1"
    assert len(recorder.sent("POST", "/iserver/reply/q-2")) == 1


def test_unanswered_question_is_declined_and_raises(client: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("POST", ORDERS, _question("q-9", PRICE, ["o163"]))
    recorder.reply("POST", "/iserver/reply/q-9", Reply(body={"error": "Order not confirmed"}))
    with pytest.raises(OrderQuestionError) as info:
        client.place_order(AAPL_LMT, answers={QuestionType.MISSING_MARKET_DATA: True})
    assert "Percentage constraint" in str(info.value) and "o163" in str(info.value)
    assert info.value.declined and info.value.message_ids == ["o163"]
    assert [r.body for r in recorder.sent("POST", "/iserver/reply/q-9")] == [{"confirmed": False}]


def test_declined_answer_sends_confirmed_false(client: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("POST", ORDERS, _question("q-3", NO_MD, ["o354"]))
    with pytest.raises(OrderQuestionError, match="declined"):
        client.place_order(AAPL_LMT, answers={QuestionType.MISSING_MARKET_DATA: False})
    assert [r.body for r in recorder.sent("POST", "/iserver/reply/q-3")] == [{"confirmed": False}]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"side": "HOLD"}, "side must be BUY or SELL"),
        ({"orderType": "FANCY"}, "orderType must be one of"),
        ({"tif": "FOREVER"}, "tif must be one of"),
        ({"quantity": 0}, "quantity must be a number above 0"),
        ({"price": None}, "a LMT order needs a price"),
        ({"conidex": "265598@SMART"}, "exactly one of conid or conidex"),
        ({"orderType": "STOP_LIMIT"}, "needs auxPrice"),
    ],
)
def test_invalid_order_is_refused_before_sending(
    client: IbkrClient, recorder: RecordingServer, change: dict[str, object], problem: str
) -> None:
    order = {k: v for k, v in {**AAPL_LMT, **change}.items() if v is not None}
    with pytest.raises(RequestValidationError, match=problem) as info:
        client.place_order(order, answers={})
    assert info.value.method == "place_order" and info.value.param == "order_request"
    assert recorder.requests == []


def test_bracket_keeps_caller_ids_and_fills_missing_ones(client: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("POST", ORDERS, ACK)
    parent = OrderRequest(conid=265598, side="BUY", quantity=5, order_type="LMT", price=150.0, coid="parent-1")
    child = OrderRequest(
        conid=265598,
        side="SELL",
        quantity=5,
        order_type="STP",
        aux_price=140.0,
        parent_id="parent-1",
        extra={"isClose": True},
    )
    client.place_order([parent, child], answers={})
    orders = recorder.sent("POST", ORDERS)[0].body["orders"]
    assert orders[0]["cOID"] == "parent-1" and orders[0]["orderType"] == "LMT"
    assert orders[1]["parentId"] == "parent-1" and orders[1]["auxPrice"] == 140.0 and orders[1]["isClose"] is True
    assert orders[1]["cOID"].startswith("sdk-") and orders[1]["tif"] == "GTC"  # the peer's default


def test_whatif_and_modify_send_their_shapes(client: IbkrClient, recorder: RecordingServer) -> None:
    client.whatif_order(AAPL_LMT, "DU1234567")
    assert recorder.requests[-1].path == "/v1/api/iserver/account/DU1234567/orders/whatif"
    assert recorder.requests[-1].body == {"orders": [AAPL_LMT]}
    recorder.reply("POST", "/iserver/account/DU1234567/order/77", ACK)
    client.modify_order("77", dict(AAPL_LMT, price=151.0), answers={})
    assert recorder.sent("POST", "/iserver/account/DU1234567/order/77")[0].body == dict(AAPL_LMT, price=151.0)


STOCKS = {
    "AAPL": [
        {
            "name": "APPLE INC",
            "assetClass": "STK",
            "contracts": [
                {"conid": 265598, "exchange": "NASDAQ", "isUS": True},
                {"conid": 38708077, "exchange": "MEXI", "isUS": False},
            ],
        },
        {
            "name": "APPLE HOSPITALITY REIT INC",
            "assetClass": "STK",
            "contracts": [{"conid": 142033011, "exchange": "NYSE", "isUS": True}],
        },
    ],
    "MSFT": [
        {
            "name": "MICROSOFT CORP",
            "assetClass": "STK",
            "contracts": [{"conid": 272093, "exchange": "NASDAQ", "isUS": True}],
        }
    ],
}


def test_stock_queries_filter_as_the_reference(client: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("GET", "/trsrv/stocks", Reply(body=STOCKS))
    data = client.security_stocks_by_symbol([StockQuery("AAPL", name_match="apple inc"), "MSFT"]).data
    assert recorder.requests[0].query == {"symbols": "AAPL,MSFT"}
    assert [i["name"] for i in data["AAPL"]] == ["APPLE INC"]
    assert data["AAPL"][0]["contracts"] == [{"conid": 265598, "exchange": "NASDAQ", "isUS": True}]
    non_us = client.security_stocks_by_symbol(StockQuery("AAPL", contract_conditions={"exchange": "MEXI"})).data
    assert non_us["AAPL"][0]["contracts"][0]["conid"] == 38708077
    everything = client.security_stocks_by_symbol("AAPL", default_filtering=False).data
    assert sum(len(i["contracts"]) for i in everything["AAPL"]) == 3


def test_stock_conid_requires_one_match(client: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply("GET", "/trsrv/stocks", Reply(body=STOCKS))
    conids = client.stock_conid_by_symbol([StockQuery("AAPL", name_match="APPLE INC"), "MSFT"]).data
    assert conids == {"AAPL": 265598, "MSFT": 272093}
    assert client.stock_conid_by_symbol("MSFT", return_type="list").data == [272093]
    with pytest.raises(StockQueryError) as info:
        client.stock_conid_by_symbol("AAPL")
    assert isinstance(info.value, RuntimeError)
    assert "2 listings matched" in str(info.value) and "142033011" in str(info.value) and "narrow" in str(info.value)


def test_unsubscribe_sends_one_request_per_conid(client: IbkrClient, recorder: RecordingServer) -> None:
    results = client.marketdata_unsubscribe(["265598", "8314"])
    assert len(results) == 2
    assert [(r.path, r.body) for r in recorder.requests] == [
        ("/v1/api/iserver/marketdata/unsubscribe", {"conid": 265598}),
        ("/v1/api/iserver/marketdata/unsubscribe", {"conid": 8314}),
    ]


def test_unsubscribe_treats_404_as_nothing_to_close(client: IbkrClient, recorder: RecordingServer) -> None:
    recorder.reply(
        "POST",
        "/iserver/marketdata/unsubscribe",
        Reply(404, {"error": "no subscription"}),
        Reply(body={"success": True}),
    )
    results = client.marketdata_unsubscribe(["1", "2"])
    assert results[0].data == {"conid": 1, "unsubscribed": False, "reason": "no subscription"}
    assert results[1].data == {"success": True}
    recorder.reply("POST", "/iserver/marketdata/unsubscribe", Reply(500, {"error": "broken"}))
    with pytest.raises(ExternalBrokerError):
        client.marketdata_unsubscribe("3")


def test_history_by_conids_is_keyed_and_cleaned(client: IbkrClient, recorder: RecordingServer) -> None:
    bars = {"symbol": "AAPL", "data": [{"o": 1.0, "c": 2.0, "h": 3.0, "l": 0.5, "v": 100, "t": 1700000000000}]}
    recorder.reply("GET", "/iserver/marketdata/history", Reply(body=bars))
    out = client.marketdata_history_by_conids({"apple": "265598", "micro": "272093"}, period="1d", bar="1h")
    assert set(out) == {"apple", "micro"}
    assert out["apple"] == [
        {
            "open": 1.0,
            "high": 3.0,
            "low": 0.5,
            "close": 2.0,
            "volume": 100,
            "date": datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc),
        }
    ]
    sent = sorted(r.query["conid"] for r in recorder.requests)
    assert sent == ["265598", "272093"]
    assert all(
        r.query["period"] == "1d" and r.query["bar"] == "1h" and r.query["outsideRth"] == "true"
        for r in recorder.requests
    )


def test_check_health(client: IbkrClient, recorder: RecordingServer) -> None:
    status = {"authenticated": True, "competing": False, "connected": True}
    recorder.reply("POST", "/tickle", Reply(body={"session": "abc", "iserver": {"authStatus": status}}))
    assert client.check_health() is True
    recorder.reply("POST", "/tickle", Reply(body={"iserver": {"authStatus": dict(status, competing=True)}}))
    assert client.check_health() is False
    recorder.reply("POST", "/tickle", Reply(status=401, body={"error": "not authenticated"}))
    assert client.check_health() is False
    assert len(recorder.sent("POST", "/tickle")) == 3
