"""The one table from domain errors to gRPC status codes.

Anything not in the table is a bug: it becomes INTERNAL with a message that points at the server
log (never the exception text, which could hold a secret), and the traceback is logged.
"""

from __future__ import annotations

import logging
import math

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from toolwire.server import errors

log = logging.getLogger(__name__)

ERROR_TABLE: dict[type[errors.ToolwireError], grpc.StatusCode] = {
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.LimitExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.CallEnded: grpc.StatusCode.CANCELLED,
    errors.ModelProtocolError: grpc.StatusCode.UNAVAILABLE,
    errors.ProviderUnauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ProviderPermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.ProviderRejectedRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ProviderModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.ProviderRateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ProviderQuotaExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ProviderUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ProviderTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
}
"""Domain error class → status. `ModelError` carries its own code name (e.g. from a script)."""


MAX_MESSAGE_BYTES = 1024
"""The longest status message, in UTF-8 bytes. A message can echo what the client sent (a tool call
id, a model name); gRPC carries it percent-encoded in a trailer, and a client refuses trailers over
its metadata limit (8 KiB by default) with RESOURCE_EXHAUSTED instead of the real status."""


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client gets for `error` (at most `MAX_MESSAGE_BYTES`)."""
    code, message = _status_for(error)
    return code, bounded(message)


def bounded(message: str) -> str:
    """`message`, cut to `MAX_MESSAGE_BYTES` with a note of how much was cut."""
    encoded = message.encode()
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return message
    kept = encoded[: MAX_MESSAGE_BYTES - 64].decode(errors="ignore")
    return f"{kept}… [cut: the message had {len(message):,} characters]"


def _status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(error, errors.ModelError):
        model_code = grpc.StatusCode.__members__.get(error.code, grpc.StatusCode.UNAVAILABLE)
        return (
            grpc.StatusCode.UNAVAILABLE if model_code is grpc.StatusCode.OK else model_code
        ), error.message
    for error_class in type(error).__mro__:
        table_code = ERROR_TABLE.get(error_class)
        if table_code is not None:
            return table_code, str(error)
    if isinstance(error, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, "the operation timed out"
    log.error("internal error", exc_info=error)
    return grpc.StatusCode.INTERNAL, "internal error in the toolwire server; its log has the details"


def trailing_metadata_for(
    error: BaseException, code: grpc.StatusCode, message: str
) -> tuple[tuple[str, bytes], ...]:
    """The rich status details for `error`: a `google.rpc.RetryInfo` when the provider said when to
    retry, in the standard `grpc-status-details-bin` trailer that grpc-status libraries decode."""
    retry_after = getattr(error, "retry_after", None)
    if not isinstance(retry_after, int | float) or not math.isfinite(retry_after) or retry_after < 0:
        return ()
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(round(retry_after * 1e9))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),)
