"""The exception hierarchy. Every error the SDK raises derives from `IbkrError`.

`ExternalBrokerError` keeps the name users of the reference client already catch for failed requests.
"""

from __future__ import annotations


class IbkrError(Exception):
    """Base of every error raised by ibkr_sdk."""


class RequestValidationError(IbkrError, ValueError):
    """An argument was refused before anything was sent.

    Attributes:
        method: The client method that was called.
        param: The offending parameter (None when the problem is not tied to one parameter).
    """

    def __init__(self, method: str, param: str | None, problem: str) -> None:
        self.method = method
        self.param = param
        self.problem = problem
        where = f"{method}(): parameter {param!r}" if param else f"{method}()"
        super().__init__(f"{where} {problem}. Nothing was sent.")


class ExternalBrokerError(IbkrError):
    """A request reached IBKR (or the gateway) and failed, or its answer could not be used.

    Attributes:
        status_code: HTTP status, or None when no response was received.
        method: HTTP method of the request.
        path: Path of the request below the base URL.
        message: The server's own error text, when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.method = method
        self.path = path
        self.message = message
        parts = []
        if method and path:
            parts.append(f"{method} {path}")
        if status_code is not None:
            parts.append(f"HTTP {status_code}")
        text = (" failed (" + ", ".join(parts) + ")" if parts else "request failed") + f": {message}"
        if hint:
            text += f" {hint}"
        super().__init__(text.lstrip())


class ApiConnectionError(ExternalBrokerError):
    """No usable response: the connection failed or was cut."""


class ApiTimeoutError(ApiConnectionError):
    """The server did not answer within the timeout."""


class OrderQuestionError(IbkrError):
    """IBKR asked a confirmation question the caller's `answers` did not approve; the order was declined.

    Attributes:
        question: The question text as IBKR sent it.
        message_ids: IBKR's ids for the question (e.g. `["o354"]`).
        declined: True when the client declined the question on the server (`confirmed: false`), so nothing is left
            pending.
    """

    def __init__(self, question: str, message_ids: list[str], reason: str, declined: bool) -> None:
        self.question = question
        self.message_ids = message_ids
        self.declined = declined
        ids = ", ".join(message_ids) or "no id"
        state = "It was declined on the server; the order was not placed." if declined else ""
        super().__init__(
            f"{reason}: {question!r} (message ids: {ids}). {state} "
            "To accept it, add its QuestionType, its message id or a phrase of its text to `answers` with True."
        )


class StockQueryError(IbkrError, RuntimeError):
    """A stock query did not identify exactly one instrument and one contract (a RuntimeError, as in the reference)."""
