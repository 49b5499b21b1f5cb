"""The value every endpoint method returns."""

from __future__ import annotations

import copy as _copy
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass
class Result:
    """The answer to one API request.

    Attributes:
        data: The decoded JSON body (a list or a dict, sometimes a plain value), or the text of a non-JSON answer.
        request: What was sent: `method`, `url`, and `params` / `json` when present.
    """

    data: Any = None
    request: dict[str, Any] | None = field(default=None)

    def copy(self, data: Any = None, request: dict[str, Any] | None = None) -> Result:
        """A deep copy, optionally with `data` and/or `request` replaced."""
        return replace(
            self,
            data=_copy.deepcopy(self.data) if data is None else data,
            request=_copy.deepcopy(self.request) if request is None else request,
        )
