"""A throwaway etcd server on free loopback ports, for tests and benchmarks (Debian ``etcd-server``).

with EtcdServer() as etcd:           # started; data in a temporary directory
    client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
    etcd.stop(); etcd.start()        # an outage, then the same data back
    etcd.restart(wipe=True)          # a new, empty cluster on the same port
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from telemetry.testing.ports import free_port

__all__ = ["EtcdServer", "etcd_binary"]


def etcd_binary() -> str | None:
    return shutil.which("etcd") or next(
        (str(p) for p in (Path("/usr/bin/etcd"), Path("/usr/local/bin/etcd")) if p.exists()), None
    )


class EtcdServer:
    def __init__(self, *, start: bool = True) -> None:
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("etcd is not installed (Debian package etcd-server)")
        self._binary = binary
        self.port = free_port()
        self._peer_port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="etcd-test-"))
        self._log = self._dir / "etcd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        if self.running:
            return
        client_url = f"http://127.0.0.1:{self.port}"
        peer_url = f"http://127.0.0.1:{self._peer_port}"
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    self._binary, "--name", "test", "--data-dir", str(self._dir / "data"),
                    "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                    "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                    "--initial-cluster", f"test={peer_url}", "--log-level", "error",
                ],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {self._log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{client_url}/health", timeout=1) as response:
                    if b'"true"' in response.read():
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"etcd did not become healthy within {timeout}s")

    def stop(self) -> None:
        """Kill etcd (SIGKILL: an outage, not a clean leave); its data stays."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait(10)
            self._proc = None

    def restart(self, *, wipe: bool = False) -> None:
        self.stop()
        if wipe:
            shutil.rmtree(self._dir / "data", ignore_errors=True)
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EtcdServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
