"""How provider failures become domain errors: one table from HTTP status and from in-stream error
types to `ProviderError` classes (which `status.py` maps to gRPC codes), plus `Retry-After` parsing
and the redaction that keeps API keys out of every message we pass on.

Adapters catch their own SDK's exceptions and call these functions; nothing here imports an SDK.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Mapping

from toolwire.server import errors

_BY_STATUS: dict[int, type[errors.ProviderError]] = {
    400: errors.ProviderRejectedRequest,
    401: errors.ProviderUnauthenticated,
    403: errors.ProviderPermissionDenied,
    404: errors.ProviderModelNotFound,
    408: errors.ProviderTimeout,
    413: errors.ProviderRejectedRequest,
    422: errors.ProviderRejectedRequest,
    429: errors.ProviderRateLimited,
    504: errors.ProviderTimeout,
}
"""HTTP status → error class. Any other 5xx (500, 502, 503, Anthropic's 529) is unavailable."""

_BY_ERROR_TYPE: dict[str, type[errors.ProviderError]] = {
    "invalid_request_error": errors.ProviderRejectedRequest,
    "request_too_large": errors.ProviderRejectedRequest,
    "authentication_error": errors.ProviderUnauthenticated,
    "permission_error": errors.ProviderPermissionDenied,
    "not_found_error": errors.ProviderModelNotFound,
    "rate_limit_error": errors.ProviderRateLimited,
    "overloaded_error": errors.ProviderUnavailable,
    "api_error": errors.ProviderUnavailable,
    "server_error": errors.ProviderUnavailable,
    "timeout_error": errors.ProviderTimeout,
    "insufficient_quota": errors.ProviderQuotaExceeded,
}
"""The `type` of an error object inside a stream (Anthropic's and OpenAI's names) → error class."""

_MORE_THAN_THE_STATUS: dict[str, type[errors.ProviderError]] = {
    "insufficient_quota": errors.ProviderQuotaExceeded,
}
"""Error types of an HTTP error body that say more than its status: OpenAI sends a spent quota as 429,
the status of a rate limit, which is retried."""

_KEY_SHAPED = re.compile(
    r"(?i)\b(?:sk|pk|rk|gsk|xai|key)[-_][\w\-.*]{6,}|\bbearer\s+[\w\-.~+/=*]{6,}|\bAIza[\w\-]{20,}"
)
"""Text that looks like an API key or bearer token (including masked forms like `sk-pro****abcd`)."""


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the given secrets and anything key-shaped replaced by `[redacted]`."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _KEY_SHAPED.sub("[redacted]", text)


def error_for_status(
    status: int,
    provider_message: str,
    *,
    provider: str,
    retry_after: float | None = None,
    secrets: Iterable[str] = (),
    error_type: str | None = None,
) -> errors.ProviderError:
    """The domain error for an HTTP error response of `provider` (`error_type`: the body's error type
    or code, when it has one); `secrets` are redacted from it."""
    error_class = _MORE_THAN_THE_STATUS.get(error_type or "") or _BY_STATUS.get(status)
    if error_class is None:
        error_class = errors.ProviderUnavailable if status >= 500 else errors.ProviderRejectedRequest
    message = _message(provider, f"HTTP {status}", redact(provider_message, secrets), retry_after)
    return error_class(message, retry_after=retry_after)


def error_for_stream_event(
    error_object: object, *, provider: str, secrets: Iterable[str] = ()
) -> errors.ProviderError:
    """The domain error for an error object sent inside a stream, e.g. Anthropic's
    `{"type": "overloaded_error", "message": "Overloaded"}` or an OpenAI-compatible
    `{"message": ..., "type": "invalid_request_error", "status_code": 400}`."""
    fields = error_object if isinstance(error_object, Mapping) else {"message": str(error_object)}
    error_type = str(fields.get("type") or fields.get("code") or "")
    message = redact(str(fields.get("message") or error_type or "unknown error"), secrets)
    error_class = _BY_ERROR_TYPE.get(error_type)
    status = fields.get("status_code") or fields.get("status")
    if error_class is None and isinstance(status, int):
        return error_for_status(status, message, provider=provider, secrets=secrets)
    if error_class is None:
        error_class = errors.ProviderUnavailable
    label = f"error event {error_type}" if error_type else "error event"
    return error_class(_message(provider, label, message, None))


def error_for_timeout(*, provider: str, seconds: float | None) -> errors.ProviderTimeout:
    """The provider did not answer or stalled mid-stream."""
    within = f" within {seconds:g} s" if seconds else ""
    return errors.ProviderTimeout(f"{provider}: no response{within} (the provider stalled or is unreachable)")


def error_for_connection(*, provider: str, what: str) -> errors.ProviderUnavailable:
    """The connection failed or broke; `what` names the failure without any header or key."""
    return errors.ProviderUnavailable(f"{provider}: connection failed: {what}")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The delay a provider asked for: `retry-after-ms`, `retry-after` in seconds or as an HTTP date."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message(provider: str, label: str, provider_message: str, retry_after: float | None) -> str:
    text = f"{provider} ({label}): {redact(provider_message.strip()) or 'no message'}"
    if retry_after is not None:
        text += f"; retry after {retry_after:g} s"
    return text
