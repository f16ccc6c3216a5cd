"""The one table from domain errors to gRPC status codes.

Anything not in the table is a bug: it becomes INTERNAL with a message that points at the server
log (never the exception text, which could hold a secret), and the traceback is logged.
"""

from __future__ import annotations

import logging

import grpc

from toolwire.server import errors

log = logging.getLogger(__name__)

ERROR_TABLE: dict[type[errors.ToolwireError], grpc.StatusCode] = {
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.LimitExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ModelProtocolError: grpc.StatusCode.UNAVAILABLE,
}
"""Domain error class → status. `ModelError` carries its own code name (e.g. from a script)."""


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client gets for `error`."""
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
