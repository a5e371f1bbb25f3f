"""The overhead benchmark's two floor diagnostics (sync unary only), no telemetry in either:

- ``header``: bare grpcio whose calls carry one ``traceparent`` header, what any W3C tracing sends;
- ``floor``: grpcio's own interceptor hooks (``grpc.ServerInterceptor``, ``grpc.intercept_channel``)
  that pass every call through and add that header: the floor under an interceptor-based chain
  such as the peer's (this package's client skips ``intercept_channel``, see telemetry/rpc/channel.py).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import grpc

TRACEPARENT = ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")


class _Details(
    collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


class PassThroughServerInterceptor(grpc.ServerInterceptor):
    """Wraps each unary behaviour in a function that reads the metadata and calls it."""

    def intercept_service(self, continuation: Callable[..., Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.request_streaming or handler.response_streaming:
            return handler
        behavior = handler.unary_unary

        def unary(request: Any, context: Any) -> Any:
            context.invocation_metadata()
            return behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary, handler.request_deserializer, handler.response_serializer
        )


class PassThroughClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds a ``traceparent`` header and continues."""

    @staticmethod
    def _details(details: Any) -> _Details:
        metadata = (*(details.metadata or ()), TRACEPARENT)
        return _Details(details.method, details.timeout, metadata, details.credentials,
                        details.wait_for_ready, details.compression)  # fmt: skip

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)
