"""A throwaway redis-server on a free loopback port, for tests and benchmarks (Debian
``redis-server``): no persistence, killed by its PID.

with RedisServer() as redis:         # started, answering PING
    url = redis.url                  # redis://127.0.0.1:<port>/0
    redis.stop(); redis.start()      # an outage (SIGKILL), then an empty server on the same port
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from telemetry.testing._poll import poll
from telemetry.testing.ports import free_port
from telemetry.testing.processes import stop_child

__all__ = ["RedisServer", "redis_binary"]


def redis_binary() -> str | None:
    places = (Path("/usr/bin/redis-server"), Path("/usr/local/bin/redis-server"))
    return shutil.which("redis-server") or next((str(p) for p in places if p.exists()), None)


def _pings(port: int) -> bool:
    """Does a server on ``port`` answer PING (inline command, no client library)?"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, *, start: bool = True) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self._binary = binary
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self._log = self._dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    self._binary, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", str(self._dir),
                    "--protected-mode", "yes",
                ],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            poll(self._answers, bool, timeout, "redis-server answering PING", interval=0.02)
        except AssertionError:
            self.stop()
            raise

    def _answers(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {self._log.read_text()[-2000:]}")
        return _pings(self.port)

    def stop(self) -> None:
        """Kill the server (SIGKILL: an outage); its data is gone (no persistence)."""
        if self._proc is not None:
            stop_child(self._proc)
            self._proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
