"""The value every endpoint method returns."""

from __future__ import annotations

import copy as _copy
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from pydantic import BaseModel

    _M = TypeVar("_M", bound=BaseModel)


@dataclass
class Result:
    """The answer to one API request.

    Attributes:
        data: The decoded JSON body (a list or a dict, sometimes a plain value), or the text of a non-JSON answer.
        request: What was sent: `method`, `url`, and `params` / `json` when present.
        endpoint: Catalogue name of the endpoint that answered (e.g. `"live_orders"`), or the label of a
            hand-written method that reshaped the answer (`"stock_conid_by_symbol"`, `"order_submitted"`), which
            `parsed()` uses to pick the response model; None when unknown.
    """

    data: Any = None
    request: dict[str, Any] | None = field(default=None)
    endpoint: str | None = None

    def copy(self, data: Any = None, request: dict[str, Any] | None = None) -> Result:
        """A deep copy, optionally with `data` and/or `request` replaced."""
        return replace(
            self,
            data=_copy.deepcopy(self.data) if data is None else data,
            request=_copy.deepcopy(self.request) if request is None else request,
        )

    @overload
    def parsed(self) -> Any: ...

    @overload
    def parsed(self, model: type[_M]) -> _M: ...

    def parsed(self, model: type[BaseModel] | None = None) -> Any:
        """`data` validated into a typed model (needs pydantic: the `models` extra).

        Without `model`, the model of this result's endpoint, generated from IBKR's OpenAPI document and named in
        the endpoint method's docstring (`models.<area>.<Model>`); pass a model class to choose it yourself and
        get a statically typed return value. Fields the model does not know are kept (`model_extra`). `data`
        itself is never changed.

        Raises:
            ResponseValidationError: `data` does not match the model; the message names the endpoint and the field.
            NoResponseModelError: no model is known for this endpoint and none was passed.
        """
        from .models_access import parse_result

        return parse_result(self, model)
