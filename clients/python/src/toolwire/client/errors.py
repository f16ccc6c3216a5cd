"""The error the client raises when a call to the toolwire server ends with a non-OK gRPC status."""

from __future__ import annotations

import grpc


class ToolwireError(Exception):
    """A toolwire call ended with a non-OK gRPC status.

    Attributes:
        code: The gRPC status code, e.g. `grpc.StatusCode.INVALID_ARGUMENT`.
        details: The server's message, which says what went wrong and usually how to fix it.
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> ToolwireError:
        """Converts a gRPC error (usually `grpc.aio.AioRpcError`) to a ToolwireError."""
        return cls(error.code(), error.details() or "")
