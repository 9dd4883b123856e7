"""Errors raised by langchain-dbx-serving.

Every error the package raises on purpose derives from :class:`DatabricksServingError` and
carries what is known about the failed call: ``status_code``, ``error_code`` (Databricks'
``error_code`` such as ``REQUEST_LIMIT_EXCEEDED``), ``message``, ``endpoint`` and
``request_id`` (the ``x-request-id`` / ``databricks_request_id`` of the reply). Messages say
what happened and what to do about it.

The hierarchy::

    DatabricksServingError
    ├── ConfigurationError           host or credentials missing or unusable; nothing was sent
    │   └── UnknownArgumentError     a constructor argument no field takes (also a TypeError)
    │   └── ModelRuleError           the request breaks a rule of the model family; nothing was sent
    ├── RequestEncodingError         a request value JSON cannot carry (also a ValueError)
    ├── TransportError               no usable HTTP reply arrived
    │   ├── ServingConnectionError   connect refused/reset before a reply (also a ConnectionError)
    │   ├── ServingTimeoutError      connect/read/write/pool timeout (also a TimeoutError)
    │   ├── StreamInterruptedError   the connection dropped mid-stream; ``partial`` holds what came
    │   └── BackgroundTimeoutError   a background run was not done in time; ``run`` is its handle
    ├── APIStatusError               the endpoint answered with an HTTP error status
    │   ├── BadRequestError              400
    │   ├── AuthenticationError          401
    │   ├── PermissionDeniedError        403
    │   ├── EndpointNotFoundError        404
    │   ├── RateLimitError               429 (``retry_after`` in seconds when the server said)
    │   └── ServerError                  5xx
    │       └── ServiceUnavailableError  503
    ├── ResponseError                a reply that could not be understood
    │   ├── MalformedResponseError   bad JSON or an unexpected shape; names the offending event
    │   └── TraceParseError          a returned MLflow trace that ``get_trace`` cannot read
    ├── AgentError                   the remote model or agent reported an error in its reply
    │   └── RunNotFoundError         the server does not know (or forgot) a background run
    └── UnsupportedOperationError    the server does not offer this operation (e.g. cancel: 501)

Every message, and every field that may hold text a server sent (``body``, ``event``,
``partial``, ``error_code``), passes through :func:`langchain_dbx_serving._redact.redact` when the
error is built: a credential echoed back by a server never reaches an error, in any encoding.

The module imports nothing heavy so that ``import langchain_dbx_serving`` stays fast.
"""

from __future__ import annotations

from typing import Any

from langchain_dbx_serving._redact import redact, redact_value

__all__ = [
    "APIStatusError",
    "AgentError",
    "AuthenticationError",
    "BackgroundTimeoutError",
    "BadRequestError",
    "ConfigurationError",
    "DatabricksServingError",
    "EndpointNotFoundError",
    "MalformedResponseError",
    "ModelRuleError",
    "PermissionDeniedError",
    "RequestEncodingError",
    "RateLimitError",
    "ResponseError",
    "RunNotFoundError",
    "ServerError",
    "ServiceUnavailableError",
    "ServingConnectionError",
    "ServingTimeoutError",
    "StreamInterruptedError",
    "TraceParseError",
    "TransportError",
    "UnknownArgumentError",
    "UnsupportedOperationError",
    "status_error_class",
]


class DatabricksServingError(Exception):
    """Base class of every error raised by langchain-dbx-serving.

    ``partial`` holds what a stream delivered before the error (an ``AIMessageChunk`` for chat
    models, an ``AgentResponse`` for ``AgentEndpoint``), or ``None`` when no stream began.
    """

    partial: Any = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        endpoint: str | None = None,
        request_id: str | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_code = redact(error_code) if error_code else error_code
        self.endpoint = endpoint
        self.request_id = redact(request_id) if request_id else request_id

    def __str__(self) -> str:
        if self.request_id:
            return f"{self.message} (request id {self.request_id})"
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the keyword-only fields across process boundaries (Spark, multiprocessing).
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[DatabricksServingError], message: str, state: dict[str, Any]) -> Any:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ConfigurationError(DatabricksServingError):
    """The client is missing a host or credentials, or they are unusable. Nothing was sent."""


class UnknownArgumentError(ConfigurationError, TypeError):
    """A constructor argument that no field takes (a typo, or another package's name).

    ``argument`` is the name given, ``suggestion`` the nearest field name (or ``None``).
    """

    def __init__(self, message: str, *, argument: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument
        self.suggestion = suggestion


class ModelRuleError(ConfigurationError, ValueError):
    """The request breaks a documented rule of the model family behind the endpoint (for
    example a Claude thinking budget not below ``max_tokens``). Raised before sending; the
    message names the rule, its source, and what to change."""


class RequestEncodingError(DatabricksServingError, ValueError):
    """A request value JSON cannot carry (``NaN``, a ``datetime``, a lone surrogate, a
    non-string key). Raised before anything is sent; ``field`` names where it is."""

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class TransportError(DatabricksServingError):
    """No usable HTTP reply arrived (connection, timeout, dropped stream)."""


class ServingConnectionError(TransportError, ConnectionError):
    """The connection was refused or reset before any reply arrived."""


class ServingTimeoutError(TransportError, TimeoutError):
    """A connect, read, write or pool timeout fired."""


class StreamInterruptedError(TransportError):
    """The connection dropped while a streamed reply was arriving.

    ``partial`` holds the chunks (or text) received before the drop, so callers can see what
    arrived; the reply is never returned as if it were complete.
    """

    def __init__(self, message: str, *, partial: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.partial = redact_value(partial)


class APIStatusError(DatabricksServingError):
    """The endpoint answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        retry_after: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, status_code=status_code, **kwargs)
        self.body = redact_value(body)
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """400: the endpoint rejected the request body."""


class AuthenticationError(APIStatusError):
    """401: the token is missing, expired or invalid."""


class PermissionDeniedError(APIStatusError):
    """403: the token may not query this endpoint (or its rate limit is 0)."""


class EndpointNotFoundError(APIStatusError):
    """404: no endpoint of that name is visible to the caller."""


class RateLimitError(APIStatusError):
    """429: the endpoint's request or token rate limit was exceeded."""


class ServerError(APIStatusError):
    """5xx: the endpoint failed while serving the request."""


class ServiceUnavailableError(ServerError):
    """503: the endpoint is scaling up, overloaded or not ready."""


class ResponseError(DatabricksServingError):
    """The endpoint's reply could not be understood."""


class MalformedResponseError(ResponseError):
    """A reply or stream event was not valid JSON or not of the expected shape.

    ``event`` holds (a prefix of) the offending payload.
    """

    def __init__(self, message: str, *, event: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.event = redact(event) if event else event


class TraceParseError(ResponseError):
    """A returned MLflow trace is not valid trace JSON (schema V2 or V3).

    Raised by ``get_trace`` and ``Trace.from_dict`` only, never by a model call: the raw trace
    stays in ``response_metadata["trace"]``. ``trace_id`` holds the trace's id when it is known.
    """

    def __init__(self, message: str, *, trace_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.trace_id = trace_id


class AgentError(DatabricksServingError):
    """The remote model or agent reported an error inside an otherwise valid reply."""


class BackgroundTimeoutError(ServingTimeoutError):
    """A background run was still running when the wait ended. ``run`` is its handle: the run
    goes on on the server, and ``run.wait()`` / ``run.result()`` can collect it later."""

    def __init__(self, message: str, *, run: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.run = run


class RunNotFoundError(AgentError):
    """The server does not know the background run (wrong id, expired, or another server)."""


class UnsupportedOperationError(DatabricksServingError):
    """The server does not offer this operation (e.g. cancelling a background run: 501)."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: EndpointNotFoundError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The error class for an HTTP error status."""
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    if status_code >= 500:
        return ServerError
    return APIStatusError
