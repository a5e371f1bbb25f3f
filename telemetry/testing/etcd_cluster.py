"""A throwaway 3-member etcd cluster on free loopback ports, for tests and benchmarks.

with EtcdCluster() as cluster:                 # started, every member healthy, a leader elected
    client = EtcdClient(EtcdConfig(endpoints=cluster.endpoints))
    leader = cluster.leader()                  # index of the member leading now
    cluster.stop_member(leader)                # SIGKILL (signal.SIGTERM: a clean leave)
    cluster.wait_leader(exclude=leader)        # the others elect a new one
    cluster.restart_member(leader)             # back with its data, rejoins as a follower

Static bootstrap (``--initial-cluster``, state ``new``), one data directory per member in one
temporary directory, and a short heartbeat and election timeout (50 / 500 ms by default) so a lost
leader is replaced within about a second. Every process is killed by its PID at ``close()``.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from telemetry.testing.etcd_server import EtcdServer
from telemetry.testing.ports import free_port

__all__ = ["EtcdCluster"]


class EtcdCluster:
    def __init__(
        self,
        size: int = 3,
        *,
        heartbeat_ms: int = 50,
        election_ms: int = 500,
        start: bool = True,
        timeout: float = 30.0,
    ) -> None:
        if size < 1:
            raise ValueError(f"a cluster needs at least one member, got {size}")
        self._dir = Path(tempfile.mkdtemp(prefix="etcd-cluster-"))
        root = self._dir
        names = [f"m{i}" for i in range(size)]
        peer_ports = [free_port() for _ in names]
        peers = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(names, peer_ports, strict=True))
        flags = (
            "--initial-cluster-state", "new", "--initial-cluster-token", self._dir.name,
            "--heartbeat-interval", str(heartbeat_ms), "--election-timeout", str(election_ms),
        )  # fmt: skip
        self.members = [
            EtcdServer(start=False, name=n, directory=root / n, peer_port=p, peers=peers, flags=flags)
            for n, p in zip(names, peer_ports, strict=True)
        ]
        if start:
            self.start(timeout)

    @property
    def endpoints(self) -> tuple[str, ...]:
        """``host:port`` of every member, for ``EtcdConfig(endpoints=...)``."""
        return tuple(m.endpoint for m in self.members)

    def endpoints_from(self, first: int) -> tuple[str, ...]:
        """Every endpoint, member ``first``'s first: a client given these calls that member."""
        endpoints = self.endpoints
        return endpoints[first:] + endpoints[:first]

    def follower(self) -> int:
        """The index of a running member that is not the leader."""
        leader = self.leader()
        return next(i for i, m in enumerate(self.members) if m.running and i != leader)

    def index(self, endpoint: str) -> int:
        """Which member serves ``endpoint`` (``host:port``)."""
        return self.endpoints.index(endpoint)

    def start(self, timeout: float = 30.0) -> None:
        """Start every member that is not running; wait until all are healthy."""
        try:
            for member in self.members:
                member.launch()  # all at once: none is healthy before a quorum runs
            self.wait_healthy(timeout)
        except BaseException:
            self.close()
            raise

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every running member answers ``/health`` true (it runs and sees a leader)."""
        deadline = time.monotonic() + timeout
        for member in self.members:
            if member.running:
                member.wait_healthy(max(0.1, deadline - time.monotonic()))

    def stop_member(self, index: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop one member (SIGKILL by default: a crash); its data stays for a restart."""
        self.members[index].stop(sig)

    def restart_member(self, index: int, timeout: float = 30.0) -> None:
        """Start a stopped member again with its data: it rejoins the cluster."""
        member = self.members[index]
        member.launch()
        member.wait_healthy(timeout)

    def leader(self, timeout: float = 10.0) -> int:
        """The index of the current leader, once the running members agree on one."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._agreed_leader()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise RuntimeError(f"no leader agreed on within {timeout}s")
            time.sleep(0.02)

    def wait_leader(self, exclude: int | None = None, timeout: float = 10.0) -> int:
        """Wait for a leader other than ``exclude`` (a member just stopped); its index."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._agreed_leader()
            if found is not None and found != exclude:
                return found
            if time.monotonic() > deadline:
                raise RuntimeError(f"no new leader within {timeout}s (excluding {exclude})")
            time.sleep(0.02)

    def _agreed_leader(self) -> int | None:
        """The maintenance Status RPC of each running member: which member id each says leads."""
        ids: dict[int, int] = {}
        said: set[int] = set()
        for i, member in enumerate(self.members):
            if not member.running:
                continue
            status = _status(member.endpoint)
            if status is None:
                return None
            ids[int(status.header.member_id)] = i
            said.add(int(status.leader))
        if len(said) != 1:
            return None
        return ids.get(said.pop())

    def close(self) -> None:
        """Kill every member by its PID and remove the data."""
        for member in self.members:
            member.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _status(endpoint: str) -> Any:
    """etcd's Status of one member (None when it does not answer)."""
    import grpc
    from pyetcd import etcdrpc  # the optional "etcd" extra, like the client

    with grpc.insecure_channel(endpoint) as channel:
        try:
            return etcdrpc.MaintenanceStub(channel).Status(etcdrpc.StatusRequest(), timeout=1)
        except grpc.RpcError:
            return None
