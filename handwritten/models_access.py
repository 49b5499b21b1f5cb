"""Typed access to responses: what `Result.parsed()` runs.

The response models are generated into `ibkr_sdk.models` (one module per catalogue area) from IBKR's OpenAPI
document. They are opt-in: `import ibkr_sdk` loads neither this module nor pydantic nor any model; `Result.parsed()`
imports this module, which loads pydantic and the one area module of the endpoint asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import IbkrError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .result import Result

__all__ = ["NoResponseModelError", "ResponseValidationError", "parse_result", "response_model"]

_EXTRA_HINT = "typed models need pydantic: pip install 'ibkr-cpapi-sdk[models]'"

# Results whose shape a hand-written method made carry their own label in `Result.endpoint`:
# label -> (module, model), where the module is "overlay" (handwritten/overlay_models.py) or a generated area.
OVERLAY_MODELS: dict[str, tuple[str, str]] = {
    "stock_conid_by_symbol": ("overlay", "ConidsBySymbol"),
    "order_submitted": ("order", "OrderSubmitSuccessItem"),  # one order's acknowledgement (place/modify_order)
}


class ResponseValidationError(IbkrError, ValueError):
    """A response does not match its model. Raised only when a model was asked for (`Result.parsed()`).

    Attributes:
        endpoint: Catalogue name of the endpoint (None when the result does not know it).
        model: The model, as `models.<area>.<Model>` for a generated one.
        errors: Every mismatch, as pydantic reports it (`loc`, `msg`, `type`, `input`).
    """

    def __init__(self, endpoint: str | None, model: str, errors: Sequence[Mapping[str, Any]]) -> None:
        self.endpoint = endpoint
        self.model = model
        self.errors = [dict(e) for e in errors]
        where = f"{endpoint}: " if endpoint else ""
        text = f"{where}the response does not match {model}"
        if self.errors:
            first = self.errors[0]
            got = repr(first.get("input"))
            if len(got) > 60:
                got = got[:57] + "..."
            text += f": field {field_path(first.get('loc', ()))}: {first.get('msg', 'invalid')} (got {got})"
            if len(self.errors) > 1:
                text += f"; {len(self.errors) - 1} more mismatch(es) in .errors"
        super().__init__(text)


class NoResponseModelError(IbkrError, LookupError):
    """No model is known for the endpoint of a result (IBKR's document gives it no response schema)."""


def field_path(loc: Sequence[Any]) -> str:
    """`("orders", 0, "conid")` → `orders[0].conid`; the root itself is `(root)`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _models_package() -> Any:
    """`ibkr_sdk.models` (imported by name: it is a generated sibling of this hand-written package)."""
    return importlib.import_module(__name__.rsplit(".", 2)[0] + ".models")


def response_model(endpoint: str) -> type[BaseModel]:
    """The generated model of `endpoint`'s 200 response; imports its area module (and pydantic) on first use."""
    package = _models_package()
    if endpoint in OVERLAY_MODELS:
        module_name, model_name_ = OVERLAY_MODELS[endpoint]
        try:
            if module_name == "overlay":
                module = importlib.import_module(__name__.rsplit(".", 1)[0] + ".overlay_models")
            else:
                module = importlib.import_module(f"{package.__name__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == "pydantic" or (exc.name or "").startswith("pydantic."):
                raise ModuleNotFoundError(f"{endpoint}: {_EXTRA_HINT}", name=exc.name) from exc
            raise
        overlay_model: type[BaseModel] = getattr(module, model_name_)
        return overlay_model
    try:
        area, name = package.RESPONSE_MODELS[endpoint]
    except KeyError:
        raise NoResponseModelError(
            f"{endpoint}: no response model (IBKR's OpenAPI document gives no response schema for it);"
            " use result.data, or pass a model: result.parsed(MyModel)"
        ) from None
    try:
        module = importlib.import_module(f"{package.__name__}.{area}")
    except ModuleNotFoundError as exc:
        if exc.name == "pydantic" or (exc.name or "").startswith("pydantic."):
            raise ModuleNotFoundError(f"{endpoint}: {_EXTRA_HINT}", name=exc.name) from exc
        raise
    model: type[BaseModel] = getattr(module, name)
    return model


def model_name(model: type[Any]) -> str:
    """`models.<area>.<Model>` for a generated model, else `module.Qualname`."""
    package = _models_package().__name__
    module = model.__module__
    if module.startswith(package + "."):
        return f"models.{module[len(package) + 1 :]}.{model.__qualname__}"
    return f"{module}.{model.__qualname__}"


def parse_result(result: Result, model: type[BaseModel] | None = None) -> Any:
    """Validate `result.data` into `model` (default: the model of `result.endpoint`)."""
    if model is None:
        if result.endpoint is None:
            raise NoResponseModelError(
                "this Result does not say which endpoint answered; pass the model: result.parsed(models.<area>.<Model>)"
            )
        model = response_model(result.endpoint)
    try:
        from pydantic import ValidationError
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(_EXTRA_HINT, name="pydantic") from exc
    try:
        return model.model_validate(result.data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise ResponseValidationError(result.endpoint, model_name(model), errors) from exc
