"""The shared bearer token: every call must carry `authorization: Bearer <token>` metadata, except
health checks (Kubernetes gRPC probes and load balancers cannot send metadata). Reflection needs it.

The token is compared in constant time and never logged, echoed or put in a status message.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from toolwire.server.refusal import refuse

log = logging.getLogger(__name__)

EXEMPT_PREFIX = "/grpc.health.v1.Health/"

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any]"]]


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses every call without the right token with UNAUTHENTICATED."""

    def __init__(self, token: str, token_env: str) -> None:
        self._token = token.encode()
        self._message = (
            "missing or wrong bearer token: set the authorization metadata to 'Bearer <token>' "
            f"with the token the server reads from ${token_env}"
        )

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        if method.startswith(EXEMPT_PREFIX) or self._authorized(handler_call_details.invocation_metadata):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: grpc answers UNIMPLEMENTED
            return handler
        log.warning("refused a call to %s: missing or wrong bearer token", method)
        return _refusing(handler, self._message)

    def _authorized(self, metadata: Any) -> bool:
        presented = next((value for key, value in metadata or () if key == "authorization"), None)
        if presented is None:
            return False
        text = presented.decode("latin-1") if isinstance(presented, bytes) else str(presented)
        scheme, _, credential = text.strip().partition(" ")
        # compare_digest on bytes: the time taken does not depend on where the tokens differ.
        return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), self._token)


def _refusing(handler: grpc.RpcMethodHandler[Any, Any], message: str) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same kind as `handler` that ends the call with UNAUTHENTICATED."""

    async def refuse_streaming(requests: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await refuse(context, grpc.StatusCode.UNAUTHENTICATED, message)  # see refusal.py

    async def refuse_unary(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)  # the request came with the call

    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse_streaming, **serializers)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse_streaming, **serializers)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse_unary, **serializers)
    return grpc.unary_unary_rpc_method_handler(refuse_unary, **serializers)
