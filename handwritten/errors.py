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
        preflight: When the request that failed was the preflight of the call made (e.g. `/iserver/accounts`
            before an order), the preflight endpoint's name: the call itself was not sent. None otherwise.
    """

    preflight: str | None = None
    sdk_method: str | None = None
    """The client method that was called (e.g. `"portfolio_summary"`), once the client has named it."""

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


def name_method(exc: ExternalBrokerError, method: str) -> ExternalBrokerError:
    """Let a failed request's error start with the client method that was called (`summary(): failed (GET ...`).

    The transport knows the HTTP request only; the client names the call once, here. Idempotent.
    """
    if exc.sdk_method is None:
        exc.sdk_method = method
    text = str(exc)
    if not text.startswith(f"{method}()"):
        exc.args = (f"{method}(): {text}", *exc.args[1:])
    return exc


class ApiConnectionError(ExternalBrokerError):
    """No usable response: the connection failed or was cut.

    Attributes:
        maybe_sent: False when the failure happened while connecting, so the request surely did not reach the
            server; True when it may have been received and acted on.
    """

    def __init__(
        self,
        message: str,
        *,
        maybe_sent: bool = True,
        method: str | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.maybe_sent = maybe_sent
        if hint is None:
            hint = (
                "The request may have reached the server."
                if maybe_sent
                else "Nothing reached the server: is the gateway running at this address?"
            )
        super().__init__(message, method=method, path=path, hint=hint)


class ApiTimeoutError(ApiConnectionError):
    """The server did not answer within the timeout."""


class ClientClosedError(ApiConnectionError):
    """The client was closed: it sends nothing more. `maybe_sent` is True only for a request cut off by `close()`
    while it was in flight."""

    def __init__(
        self, message: str, *, maybe_sent: bool = False, method: str | None = None, path: str | None = None
    ) -> None:
        hint = "Create a new client to send more requests." if not maybe_sent else None
        super().__init__(message, maybe_sent=maybe_sent, method=method, path=path, hint=hint)


class NotAuthenticatedError(ExternalBrokerError):
    """The session is not authenticated (HTTP 401), or the brokerage session is not open ("no bridge")."""


class SessionCompetingError(NotAuthenticatedError):
    """Another login is competing for the brokerage session and holds it (`competing: true`).

    The client never takes the session back on its own, since that logs the other session out: end the other
    session, or call `initialize_brokerage_session(compete=True)` to take it over.
    """


class RateLimitedError(ExternalBrokerError):
    """IBKR's pacing limit was exceeded (HTTP 429).

    Attributes:
        retry_after: Seconds the server asked to wait, when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = 429,
        method: str | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status_code=status_code, method=method, path=path, hint=hint)


class ServerError(ExternalBrokerError):
    """The server failed (HTTP 5xx)."""


class OrderStateUnknownError(IbkrError):
    """An order request failed in a way that leaves open whether IBKR received it, and the order could not be found.

    Nothing was sent again. Look the order up before placing it again: a blind retry may double it.

    Attributes:
        coid: The client order id the order was sent with; look for it in `live_orders()` (field `order_ref`)
            before placing the order again. None only for a modification of an order whose cOID is not known.
        order_id: For a modification (`modify_order`): the order that was being changed; None for a placement.
    """

    def __init__(self, coid: str | None, cause: str, *, order_id: str | None = None) -> None:
        self.coid = coid
        self.order_id = order_id
        if order_id is not None:
            named = f"order {order_id}" + (f" (cOID {coid!r})" if coid else "")
            text = (
                f"The modification of {named} may or may not have been applied ({cause}), and live_orders() did "
                f"not show it. Check order_status({order_id!r}) before sending it again."
            )
        else:
            text = (
                f"The order with cOID {coid!r} may or may not have been placed ({cause}), and it was not found "
                f"among the live orders. Check live_orders() for order_ref {coid!r} before sending it again."
            )
        super().__init__(text)


class OrderRejectedError(ExternalBrokerError):
    """IBKR answered an order request (placement, reply, modification or cancellation) with a refusal: nothing was
    placed or changed, so correcting the request and sending it again is safe.

    Attributes:
        sdk_method: The client method that was called (e.g. `"place_order"`).
    """

    def __init__(self, sdk_method: str, message: str, *, subject: str = "the order") -> None:
        self.sdk_method = sdk_method
        super().__init__(message)
        self.args = (f"{sdk_method}(): IBKR refused {subject}: {' '.join(message.split())}",)


class OrderQuestionError(IbkrError, RuntimeError):
    """IBKR asked a confirmation question the caller's `answers` did not approve; the order was declined.

    Also a `RuntimeError`, which is what the peer library raises there.

    Attributes:
        question: The question text as IBKR sent it.
        message_ids: IBKR's ids for the question (e.g. `["o354"]`).
        declined: True when the client declined the question on the server (`confirmed: false`), so nothing is left
            pending.
    """

    ACCEPT_HINT = "To accept it, add its QuestionType, its message id or a phrase of its text to `answers` with True."
    """The last sentence of the message; the command line says `--answer` there instead."""

    def __init__(self, question: str, message_ids: list[str], reason: str, declined: bool) -> None:
        self.question = question
        self.message_ids = message_ids
        self.declined = declined
        ids = ", ".join(message_ids) or "no id"
        state = "It was declined on the server; the order was not placed." if declined else ""
        super().__init__(f"{reason}: {question!r} (message ids: {ids}). {state} {self.ACCEPT_HINT}")


class CoordinationError(IbkrError):
    """The store shared with other processes (`IbkrClient(coordination=...)`) could not be used: unreachable,
    corrupt or not permitted. Raised before the request was sent.

    Attributes:
        store: Which store: a directory or file, or a Redis URL without its password.
    """

    def __init__(self, message: str, *, store: str) -> None:
        self.store = store
        super().__init__(message)


class StockQueryError(IbkrError, RuntimeError):
    """A stock query did not identify exactly one instrument and one contract (a RuntimeError, as in the reference)."""
