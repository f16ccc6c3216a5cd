"""Domain errors. Each class names one way a chat can fail; `status.py` maps them to gRPC codes.

Messages are written for the person who has to fix the problem: they say what was wrong and what
to do instead, and never contain a secret.
"""

from __future__ import annotations


class ToolwireError(Exception):
    """Base of every error toolwire reports to a client on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ToolwireError):
    """The client's request is malformed or breaks the protocol; resending it unchanged will fail."""


class ModelNotFound(ToolwireError):
    """The requested provider or model is not configured on this server."""


class LimitExceeded(ToolwireError):
    """A size or count limit of this server was exceeded."""


class FailedPrecondition(ToolwireError):
    """The chat cannot go on in its current state (e.g. a scripted model ran out of turns)."""


class CallEnded(ToolwireError):
    """gRPC ended the call under the chat: the client went away, or gRPC itself failed the call (e.g.
    a request message over max_request_bytes, answered RESOURCE_EXHAUSTED by gRPC). The client
    already has its status; this one only names the chat's end in the server's log."""


class ModelError(ToolwireError):
    """A model call failed. `code` is the canonical status name (e.g. "UNAVAILABLE")."""

    def __init__(self, message: str, code: str = "UNAVAILABLE") -> None:
        super().__init__(message)
        self.code = code


class ModelProtocolError(ToolwireError):
    """The model's stream broke its own protocol in a way the server cannot repair."""


class ProviderError(ToolwireError):
    """A provider refused or failed a model call. Subclasses name how; `status.py` maps them.

    `retryable` says whether the same call may succeed if tried again (after `retry_after` seconds,
    when the provider said). The retry layer only retries while nothing of the call reached the client.
    """

    retryable = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnauthenticated(ProviderError):
    """The provider rejected the API key (HTTP 401), or no key is configured."""


class ProviderPermissionDenied(ProviderError):
    """The key is valid but may not use this model or feature (HTTP 403)."""


class ProviderRejectedRequest(ProviderError):
    """The provider found the request invalid (HTTP 400/413/422); its message says why."""


class ProviderModelNotFound(ProviderError):
    """The provider does not know the model (HTTP 404)."""


class ProviderRateLimited(ProviderError):
    """The provider asks to slow down (HTTP 429, Anthropic `rate_limit_error`)."""

    retryable = True


class ProviderQuotaExceeded(ProviderError):
    """The account's quota or credit is spent (OpenAI's `insufficient_quota`, sent with HTTP 429):
    unlike a rate limit, waiting does not help, so it is not retried."""


class ProviderUnavailable(ProviderError):
    """The provider failed or could not be reached (HTTP 5xx/529, connection errors, overload)."""

    retryable = True


class ProviderTimeout(ProviderError):
    """The provider did not answer, or stalled mid-stream, within the configured time."""

    retryable = True


class ProviderStreamBroken(ModelError):
    """A provider failure after part of the answer already reached the client: not retried, so that
    no text is duplicated and no tool call replayed. `code` keeps the status of the original failure."""
