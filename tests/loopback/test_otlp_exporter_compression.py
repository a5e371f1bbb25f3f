"""The span exporter's gzip compression: the HTTP body, and the gRPC message as it crosses the wire
(read from the HTTP/2 frames through a loopback TCP relay).
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading

import pytest
from otlp_receivers import GrpcReceiver, HttpReceiver, Request, end_spans, from_env, start

import telemetry


class TcpTap:
    """A loopback TCP relay to ``port`` that keeps the bytes the client sent, to read the HTTP/2
    frames of a gRPC call as they crossed the wire."""

    def __init__(self, port: int) -> None:
        self._upstream = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.sent = bytearray()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._upstream))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, keep: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    return
                if keep:
                    with self._lock:
                        self.sent += data
                sink.sendall(data)
            except OSError:
                return

    def grpc_message_flags(self) -> list[int]:
        """The compressed-flag byte of each gRPC message the client sent (gRPC over HTTP/2:
        every message is a 1-byte flag, a 4-byte length, then the message, in DATA frames)."""
        with self._lock:
            wire = bytes(self.sent)
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        assert wire.startswith(preface)
        streams: dict[int, bytearray] = {}
        at = len(preface)
        while at + 9 <= len(wire):
            length = int.from_bytes(wire[at : at + 3], "big")
            kind, flags = wire[at + 3], wire[at + 4]
            stream = struct.unpack(">I", wire[at + 5 : at + 9])[0] & 0x7FFFFFFF
            payload = wire[at + 9 : at + 9 + length]
            at += 9 + length
            if kind == 0:  # DATA; PADDED (0x8): a pad length byte first, padding last
                if flags & 0x8:
                    payload = payload[1 : len(payload) - payload[0]]
                streams.setdefault(stream, bytearray()).extend(payload)
        flags_seen = []
        for data in streams.values():
            offset = 0
            while offset + 5 <= len(data):
                flags_seen.append(data[offset])
                offset += 5 + int.from_bytes(data[offset + 1 : offset + 5], "big")
        return flags_seen

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


# -- compression ----------------------------------------------------------------------------------


def test_http_gzip_compresses_the_body(handles: list[telemetry.Telemetry]) -> None:
    with HttpReceiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base,
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
        }
        tel = start(handles, from_env(env))
        end_spans(tel, 50)
        assert tel.force_flush(10)
        hits = receiver.hits
    assert sum(h.spans for h in hits) == 50
    for hit in hits:
        assert hit.headers["content-encoding"] == "gzip"
        raw = gzip.decompress(hit.body)  # gzip on the wire, an OTLP request inside
        assert Request.FromString(raw) == hit.request and len(hit.body) < len(raw)


@pytest.mark.parametrize(("compression", "flag"), [("gzip", 1), ("none", 0)])
def test_grpc_gzip_compresses_the_message_on_the_wire(
    compression: str, flag: int, handles: list[telemetry.Telemetry]
) -> None:
    with GrpcReceiver() as receiver:
        tap = TcpTap(receiver.port)
        try:
            tel = start(
                handles, otlp_endpoint=f"http://127.0.0.1:{tap.port}", otlp_compression=compression
            )
            end_spans(tel, 50)
            assert tel.force_flush(10)
            assert receiver.accepted_spans == 50  # decompressed intact by the server
            # The one Export message crossed the wire with the gRPC compressed flag set (gzip).
            assert tap.grpc_message_flags() == [flag] * len(receiver.hits)
        finally:
            tap.close()
