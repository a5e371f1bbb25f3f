"""A small OTLP trace receiver (gRPC and HTTP/protobuf) for tests, benchmarks and the native stack.

Point a real exporter at ``receiver.grpc_endpoint`` or ``receiver.http_endpoint`` and read the decoded
``spans``. Run it standalone with ``python -m telemetry.testing.otlp_receiver --out spans.jsonl`` to
keep spans in a file when no collector is available.
"""

from __future__ import annotations

import argparse
import gzip
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from telemetry.testing._poll import poll
from telemetry.tracing.otlp_decoding import ReceivedSpan, decode, decode_bytes, json_line


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: Callable[[list[ReceivedSpan]], None]) -> None:
        self._sink = sink

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated name
        self._sink(decode(request))
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """Receives OTLP traces on loopback; use as a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        grpc_port: int = 0,
        http_port: int = 0,
        out: TextIO | None = None,
    ) -> None:
        self._host = host
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._out = out
        self.requests = 0
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _TraceService(self._add), self._grpc
        )
        self.grpc_port = self._grpc.add_insecure_port(f"{host}:{grpc_port}")
        self._http = ThreadingHTTPServer((host, http_port), _http_handler(self._add))
        self.http_port = self._http.server_address[1]
        self._http_thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{self._host}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://{self._host}:{self.http_port}/v1/traces"

    def start(self) -> OtlpReceiver:
        self._grpc.start()
        self._http_thread.start()
        return self

    def stop(self) -> None:
        self._grpc.stop(grace=None)
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 15.0
    ) -> list[ReceivedSpan]:
        return poll(lambda: self.spans, predicate, timeout, "spans")

    def _add(self, spans: Iterable[ReceivedSpan]) -> None:
        batch = list(spans)
        with self._lock:
            self.requests += 1
            self._spans.extend(batch)
            if self._out is not None:
                for span in batch:
                    self._out.write(json_line(span))
                self._out.flush()


def _http_handler(sink: Callable[[list[ReceivedSpan]], None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/traces":
                self.send_error(404)
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            try:
                spans = decode_bytes(body)
            except Exception:
                self.send_error(400, "not an OTLP protobuf request")
                return
            sink(spans)
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Receive OTLP traces and append them to a file.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--grpc-port", type=int, default=4317)
    parser.add_argument("--http-port", type=int, default=4318)
    parser.add_argument("--out", default="-", help="JSON-lines file for received spans (- = none)")
    args = parser.parse_args(argv)
    out = None if args.out == "-" else open(args.out, "a", encoding="utf-8")  # noqa: SIM115
    receiver = OtlpReceiver(args.host, args.grpc_port, args.http_port, out).start()
    print(f"otlp receiver: grpc {receiver.grpc_endpoint} http {receiver.http_endpoint}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    receiver.stop()
    if out is not None:
        out.close()


if __name__ == "__main__":
    main()
