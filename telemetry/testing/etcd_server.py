"""A throwaway etcd server on free loopback ports, for tests and benchmarks (Debian ``etcd-server``).

with EtcdServer() as etcd:           # started; data in a temporary directory
    client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
    etcd.stop(); etcd.start()        # an outage, then the same data back
    etcd.restart(wipe=True)          # a new, empty cluster on the same port

One member of a cluster is the same object with ``name``, ``peers`` and ``flags`` given (see
:class:`~telemetry.testing.etcd_cluster.EtcdCluster`): ``launch()`` then ``wait_healthy()``, since a
member is healthy only once a quorum of its peers runs.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from telemetry.testing._poll import poll
from telemetry.testing.ports import free_port
from telemetry.testing.processes import stop_child

__all__ = ["EtcdServer", "etcd_binary"]


def etcd_binary() -> str | None:
    return shutil.which("etcd") or next(
        (str(p) for p in (Path("/usr/bin/etcd"), Path("/usr/local/bin/etcd")) if p.exists()), None
    )


class EtcdServer:
    def __init__(
        self,
        *,
        start: bool = True,
        name: str = "test",
        directory: Path | None = None,
        peer_port: int = 0,
        peers: str | None = None,
        flags: Sequence[str] = (),
    ) -> None:
        """``peers``: the ``--initial-cluster`` value (default: this member alone); ``flags``:
        more etcd flags; ``directory``: where data and log go (default: a new temporary one)."""
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("etcd is not installed (Debian package etcd-server)")
        self._binary = binary
        self.name = name
        self.port = free_port()
        self.peer_port = peer_port or free_port()
        self._peers = peers or f"{name}={self.peer_url}"
        self._flags = tuple(flags)
        self._dir = directory or Path(tempfile.mkdtemp(prefix="etcd-test-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        self._log = self._dir / "etcd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        if self.running:
            return
        self.launch()
        self.wait_healthy(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to be healthy."""
        if self.running:
            return
        client_url = f"http://127.0.0.1:{self.port}"
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    self._binary, "--name", self.name, "--data-dir", str(self._dir / "data"),
                    "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                    "--listen-peer-urls", self.peer_url,
                    "--initial-advertise-peer-urls", self.peer_url,
                    "--initial-cluster", self._peers, "--log-level", "error", *self._flags,
                ],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def healthy(self) -> bool:
        """``/health`` says true: the member runs and sees a leader. Raises if etcd exited."""
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"etcd {self.name} exited: {self._log.read_text()[-2000:]}")
        try:
            url = f"http://127.0.0.1:{self.port}/health"
            with urllib.request.urlopen(url, timeout=1) as response:
                return b'"true"' in response.read()
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 20.0) -> None:
        try:
            poll(self.healthy, bool, timeout, f"etcd {self.name} healthy", interval=0.05)
        except AssertionError:
            self.stop()
            raise

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop etcd, by default with SIGKILL (an outage, not a clean leave); its data stays.
        ``SIGTERM``: a clean stop (a leader hands its leadership over first)."""
        if self._proc is not None:
            stop_child(self._proc, sig)
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
