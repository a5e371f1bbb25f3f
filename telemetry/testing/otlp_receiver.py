"""A small OTLP trace and log receiver (gRPC and HTTP/protobuf) for tests, benchmarks and the native
stack.

Point a real exporter at ``receiver.grpc_endpoint`` or ``receiver.http_endpoint`` and read the decoded
``spans`` (and ``logs``: log records, decoded with the ``opentelemetry-proto`` classes). Run it
standalone with ``python -m telemetry.testing.otlp_receiver --out spans.jsonl`` to
keep spans in a file when no collector is available. The file is size-capped like
:class:`logging.handlers.RotatingFileHandler`: ``--max-bytes`` (default 50 MiB, 0 = no cap) and
``--backups`` (default 2) keep at most ``spans.jsonl`` plus ``spans.jsonl.1`` .. ``.<backups>``, newest
first; a JSON line is never split across files.
"""

from __future__ import annotations

import argparse
import gzip
import os
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from telemetry.testing._poll import poll
from telemetry.testing.otlp_logs_received import LogsResponse, ReceivedLog, decode_logs
from telemetry.tracing.otlp_decoding import ReceivedSpan, decode, decode_bytes, json_line

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
"""Default size cap of the ``--out`` file (50 MiB)."""
DEFAULT_BACKUPS = 2
"""Default number of rotated files kept (``spans.jsonl.1`` .. ``.2``)."""


class LineSink(Protocol):
    """Where the receiver writes its JSON lines: a text file, or a :class:`RotatingLineFile`."""

    def write(self, s: str, /) -> object: ...

    def flush(self) -> None: ...


class RotatingLineFile:
    """An append-only text file capped at ``max_bytes``, rotated like ``RotatingFileHandler``.

    Each :meth:`write` is kept whole in one file: when it would take the file past ``max_bytes``
    the file is first renamed ``<path>.1`` (``.1`` becomes ``.2`` and so on; the one beyond
    ``backups`` is deleted) and a new one started. A file thus never exceeds ``max_bytes`` unless a
    single write is larger than the cap, and then it holds that write alone. ``max_bytes=0`` means
    no cap; ``backups=0`` keeps no old file (the file starts over). An existing file is appended to
    and counts towards the cap. Not thread-safe: the receiver writes under its own lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
    ) -> None:
        if max_bytes < 0 or backups < 0:
            raise ValueError("max_bytes and backups must be >= 0")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.rotations = 0
        self._file: BinaryIO = self._open()
        self._size = os.fstat(self._file.fileno()).st_size

    def _open(self) -> BinaryIO:
        return open(self.path, "ab")

    def backup_path(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def write(self, s: str, /) -> int:
        data = s.encode("utf-8")
        if self.max_bytes and self._size and self._size + len(data) > self.max_bytes:
            self.rotate()
        self._file.write(data)
        self._size += len(data)
        return len(s)

    def flush(self) -> None:
        self._file.flush()

    def rotate(self) -> None:
        """Close the file, shift the backups (dropping the oldest) and start an empty file."""
        self._file.close()
        if self.backups > 0:
            for n in range(self.backups - 1, 0, -1):
                older = self.backup_path(n)
                if older.exists():
                    older.replace(self.backup_path(n + 1))
            if self.path.exists():  # someone may have removed it under us
                self.path.replace(self.backup_path(1))
        else:
            self.path.unlink(missing_ok=True)
        self._file = self._open()
        self._size = 0
        self.rotations += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RotatingLineFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: Callable[[list[ReceivedSpan]], None]) -> None:
        self._sink = sink

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated name
        self._sink(decode(request))
        return trace_service_pb2.ExportTraceServiceResponse()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, sink: Callable[[list[ReceivedLog]], None]) -> None:
        self._sink = sink

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated name
        self._sink(decode_logs(request))
        return LogsResponse()


class OtlpReceiver:
    """Receives OTLP traces and logs on loopback; use as a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        grpc_port: int = 0,
        http_port: int = 0,
        out: LineSink | None = None,
    ) -> None:
        self._host = host
        self._spans: list[ReceivedSpan] = []
        self._logs: list[ReceivedLog] = []
        self._lock = threading.Lock()
        self._out = out
        self.requests = 0
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _TraceService(self._add), self._grpc
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _LogsService(self._add_logs), self._grpc
        )
        self.grpc_port = self._grpc.add_insecure_port(f"{host}:{grpc_port}")
        self._http = ThreadingHTTPServer((host, http_port), _http_handler(self._add, self._add_logs))
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

    @property
    def logs(self) -> list[ReceivedLog]:
        with self._lock:
            return list(self._logs)

    def wait_for_logs(
        self, predicate: Callable[[list[ReceivedLog]], bool], timeout: float = 15.0
    ) -> list[ReceivedLog]:
        return poll(lambda: self.logs, predicate, timeout, "log records")

    def _add_logs(self, logs: list[ReceivedLog]) -> None:
        with self._lock:
            self.requests += 1
            self._logs.extend(logs)

    def _add(self, spans: Iterable[ReceivedSpan]) -> None:
        batch = list(spans)
        with self._lock:
            self.requests += 1
            self._spans.extend(batch)
            if self._out is not None:
                for span in batch:
                    self._out.write(json_line(span))
                self._out.flush()


def _http_handler(
    sink: Callable[[list[ReceivedSpan]], None], log_sink: Callable[[list[ReceivedLog]], None]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            path = self.path.rstrip("/")
            if path not in ("/v1/traces", "/v1/logs"):
                self.send_error(404)
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            try:
                if path == "/v1/logs":
                    log_sink(decode_logs(body))
                else:
                    sink(decode_bytes(body))
            except Exception:
                self.send_error(400, "not an OTLP protobuf request")
                return
            empty = (
                LogsResponse() if path == "/v1/logs" else trace_service_pb2.ExportTraceServiceResponse()
            )
            reply = empty.SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m telemetry.testing.otlp_receiver``."""
    cli = argparse.ArgumentParser(description="Receive OTLP traces and append them to a file.")
    cli.add_argument("--host", default="127.0.0.1")
    cli.add_argument("--grpc-port", type=int, default=4317)
    cli.add_argument("--http-port", type=int, default=4318)
    cli.add_argument("--out", default="-", help="JSON-lines file for received spans (- = none)")
    cli.add_argument(
        "--max-bytes",
        type=_non_negative,
        default=DEFAULT_MAX_BYTES,
        help="rotate --out before it would exceed this many bytes (default 50 MiB; 0 = never)",
    )
    cli.add_argument(
        "--backups",
        type=_non_negative,
        default=DEFAULT_BACKUPS,
        help="rotated files to keep, OUT.1 (newest) .. OUT.N (default 2)",
    )
    return cli


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    out = None if args.out == "-" else RotatingLineFile(args.out, args.max_bytes, args.backups)
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
