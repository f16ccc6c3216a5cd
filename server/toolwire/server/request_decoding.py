"""A request that is not the message its method takes gets INVALID_ARGUMENT, on every unary method.

grpc.aio decodes a unary method's request before the handler runs, and ends the call with `UNKNOWN`
("Unexpected <class 'DecodeError'>") and an error traceback in the log when the bytes are not that
message. `Chat` reads its requests itself and answers such bytes in servicer.py; this interceptor
does the same for the rest (ListModels, the health check, and any unary method added later): the
request is decoded in a wrapper that keeps the failure, and the handler ends the call with a status
that says what to send.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any]"]]


class _Undecodable:
    """What the wrapped decoder gives for bytes that are not the method's request message."""

    __slots__ = ()


_UNDECODABLE = _Undecodable()


class RequestDecodingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Answers an undecodable request of a unary method with INVALID_ARGUMENT instead of UNKNOWN.

    It wraps the handler of each call anew (a few closures, for unary calls only): an interceptor
    after it may give a call a handler of its own (the token check refuses that way)."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler  # unknown (UNIMPLEMENTED), or a stream that reads its own requests (Chat)
        return _decoding_safely(handler)


def _decoding_safely(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` with a decoder that keeps a failure, and a behaviour that reports it."""
    decode = handler.request_deserializer
    assert decode is not None
    expected = _message_name(decode)
    message = (
        f"the request is not a {expected} (its protobuf wire format is corrupt, or a string field "
        f"is not UTF-8): send a message serialized from the {expected} type"
    )

    def decode_safely(raw: bytes) -> object:
        try:
            return decode(raw)
        except DecodeError:
            return _UNDECODABLE

    serializers = {"request_deserializer": decode_safely, "response_serializer": handler.response_serializer}
    if handler.response_streaming:
        stream: Any = handler.unary_stream  # typed as grpc's synchronous handler; here it is grpc.aio's
        assert stream is not None

        async def unary_stream(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if request is _UNDECODABLE:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
            responses = stream(request, context)
            if inspect.isasyncgen(responses):
                async for response in responses:
                    yield response
            else:  # a handler that writes with context.write
                await responses

        return grpc.unary_stream_rpc_method_handler(unary_stream, **serializers)
    unary: Any = handler.unary_unary
    assert unary is not None

    async def unary_unary(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if request is _UNDECODABLE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        response = unary(request, context)
        return await response if inspect.isawaitable(response) else response

    return grpc.unary_unary_rpc_method_handler(unary_unary, **serializers)


def _message_name(decode: Callable[[bytes], Any]) -> str:
    """The full name of the message a generated decoder (`Message.FromString`) makes."""
    message_type = getattr(decode, "__self__", None)
    descriptor = getattr(message_type, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request message of this method"))
