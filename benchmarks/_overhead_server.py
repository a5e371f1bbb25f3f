"""The overhead benchmark's server process: the Bench service (Ping, Stream, PingPong) on sync grpcio
or grpc.aio, plain or with a mode's interceptors; prints READY once it listens.
``overhead.py serve ...`` runs it."""

from __future__ import annotations

import asyncio
from typing import Any

from _overhead_modes import SELECT, _init_telemetry, _otel_provider


def serve(runtime: str, mode: str, port: int, endpoint: str, log_path: str) -> None:
    import bench_pb2

    if runtime == "aio":
        asyncio.run(_serve_aio(mode, port, endpoint, log_path, bench_pb2))
    else:
        _serve_sync(mode, port, endpoint, log_path, bench_pb2)


def _serve_sync(mode: str, port: int, endpoint: str, log_path: str, pb: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import bench_pb2_grpc
    import grpc

    class Bench(bench_pb2_grpc.BenchServicer):
        def Ping(self, request: Any, context: Any) -> Any:  # noqa: N802
            return pb.Payload(text=request.text, number=request.number + 1)

        def Stream(self, request: Any, context: Any) -> Any:  # noqa: N802
            reply = pb.Payload(text=request.text)
            for _ in range(request.number):
                yield reply

        def PingPong(self, requests: Any, context: Any) -> Any:  # noqa: N802
            for request in requests:
                yield pb.Payload(text=request.text, number=request.number + 1)

    if mode in ("bare", "header"):
        server = grpc.server(ThreadPoolExecutor(16))
    elif mode == "peer":
        from opentelemetry.instrumentation.grpc import server_interceptor

        _otel_provider(endpoint)
        server = grpc.server(ThreadPoolExecutor(16), interceptors=[server_interceptor()])
    elif mode == "floor":
        from _overhead_floor import PassThroughServerInterceptor

        server = grpc.server(ThreadPoolExecutor(16), interceptors=[PassThroughServerInterceptor()])
    else:
        tel = _init_telemetry("bench-server", mode, endpoint, log_path)
        server = tel.server(max_workers=16, **SELECT.get(mode, {}))
    bench_pb2_grpc.add_BenchServicer_to_server(Bench(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("READY", flush=True)
    server.wait_for_termination()


async def _serve_aio(mode: str, port: int, endpoint: str, log_path: str, pb: Any) -> None:
    import bench_pb2_grpc
    import grpc.aio

    class Bench(bench_pb2_grpc.BenchServicer):
        async def Ping(self, request: Any, context: Any) -> Any:  # noqa: N802
            return pb.Payload(text=request.text, number=request.number + 1)

        async def Stream(self, request: Any, context: Any) -> Any:  # noqa: N802
            reply = pb.Payload(text=request.text)
            for _ in range(request.number):
                yield reply

        async def PingPong(self, requests: Any, context: Any) -> Any:  # noqa: N802
            async for request in requests:
                yield pb.Payload(text=request.text, number=request.number + 1)

    if mode in ("bare", "header"):
        server = grpc.aio.server()
    elif mode == "peer":
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        _otel_provider(endpoint)
        server = grpc.aio.server(interceptors=[aio_server_interceptor()])
    else:
        tel = _init_telemetry("bench-server", mode, endpoint, log_path)
        server = tel.aio_server(**SELECT.get(mode, {}))
    bench_pb2_grpc.add_BenchServicer_to_server(Bench(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("READY", flush=True)
    await server.wait_for_termination()
