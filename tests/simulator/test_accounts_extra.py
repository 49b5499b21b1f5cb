"""Paged sub-accounts, cache invalidation, combination positions, owners."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ibkr_sdk import ExternalBrokerError, IbkrClient
from ibkr_sdk.simulator import Simulator
from tests.simulator.helpers import ACCOUNT


def test_subaccounts_are_paged_by_twenty(client_for: Callable[..., IbkrClient]) -> None:
    accounts = [f"DU{n:07d}" for n in range(1, 26)]
    with Simulator(accounts=accounts) as sim:
        api = client_for(sim)
        first = api.large_portfolio_subaccounts()
        first.parsed()
        assert first.data["metadata"] == {"pageNum": 0, "pageSize": 20, "total": 25}
        assert [a["accountId"] for a in first.data["subaccounts"]] == accounts[:20]
        second = api.large_portfolio_subaccounts(page=1).data
        assert [a["id"] for a in second["subaccounts"]] == accounts[20:]
        assert api.large_portfolio_subaccounts(page=2).data["subaccounts"] == []


def test_invalidate_and_combinations(api: IbkrClient) -> None:
    api.portfolio_accounts()
    done = api.invalidate_backend_portfolio_cache()
    done.parsed()
    assert done.data == {"message": "success"}
    combos = api.combination_positions()
    combos.parsed()
    assert combos.data == []


def test_owners(api: IbkrClient) -> None:
    result = api.signatures_and_owners()
    result.parsed()
    assert result.data["accountId"] == ACCOUNT and result.data["applicant"] == {"signatures": ["John Smith"]}
    (user,) = result.data["users"]
    assert user["roleId"] == "OWNER" and user["entity"]["entityType"] == "INDIVIDUAL"
    with pytest.raises(ExternalBrokerError) as caught:
        api.signatures_and_owners("U0000000")
    assert caught.value.status_code == 400
