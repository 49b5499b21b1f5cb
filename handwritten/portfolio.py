"""Portfolio helper: every page of positions in one call.

Why hand-written: `/portfolio/{accountId}/positions/{pageId}` returns at most 100 positions per page; walking the
pages until a short one is client logic.
"""

from __future__ import annotations

from typing import Any

from .._client_base import GeneratedEndpoints
from .errors import ExternalBrokerError
from .flow import Flow, run
from .result import Result

PAGE_SIZE = 100


def positions_all_flow(
    api: Any,
    account_id: str | None,
    model: str | None,
    sort: str | None,
    direction: str | None,
    period: str | None,
    max_pages: int,
) -> Flow[Result]:
    everything: list[object] = []
    for page in range(max_pages):
        result: Result = yield api.positions(
            account_id=account_id, page=page, model=model, sort=sort, direction=direction, period=period
        )
        rows = result.data if isinstance(result.data, list) else []
        everything.extend(rows)
        if len(rows) < PAGE_SIZE:
            return result.copy(data=everything)
    raise ExternalBrokerError(f"positions_all(): still full pages after {max_pages} pages; narrow the request")


class PortfolioOverlay(GeneratedEndpoints):
    """`positions_all`."""

    def positions_all(
        self,
        account_id: str | None = None,
        model: str | None = None,
        sort: str | None = None,
        direction: str | None = None,
        period: str | None = None,
        max_pages: int = 100,
    ) -> Result:
        """All positions of an account: requests page 0, 1, ... until a page holds fewer than 100 positions.

        Returns:
            A `Result` whose data is the list of every position; `request` is that of the last page.

        Raises:
            ExternalBrokerError: more than `max_pages` full pages (the account changes faster than it is read).
        """
        return run(positions_all_flow(self, account_id, model, sort, direction, period, max_pages))
