"""Discovery when etcd loses its data (wiped, restarted empty on the same port), against a real etcd.

The instances it lost stay in the directory until they register again or the grace is over; a plain
compaction on a healthy etcd is no loss and changes the directory at once. Where the order of events
matters (the watch re-reads before the instances re-register, or misses a compaction) the instances
or the directory reach etcd through a TCP relay the test cuts: a network partition, not a mock.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from types import TracebackType

import grpc
import pytest
from helpers import wait_until
from pyetcd import etcdrpc

from telemetry.discovery.directory import ServiceDirectory
from telemetry.discovery.etcd import EtcdClient, EtcdConfig, EtcdError
from telemetry.discovery.instance import Instance
from telemetry.discovery.registry import Registration
from telemetry.testing.etcd_server import EtcdServer

TTL = 2
KEEPING = "etcd lost its data: keeping"
GRACE_OVER = "etcd grace over"


class Relay:
    """Forwards loopback TCP connections to ``port``; :meth:`cut` closes them and refuses new ones
    (accepted and closed at once) until :meth:`restore`."""

    def __init__(self, port: int) -> None:
        self._upstream = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.endpoint = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, name="test-relay", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self._upstream), timeout=1)
            except OSError:
                conn.close()
                continue
            conn.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {conn, upstream}
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(src, dst)

    def _drop(self, *socks: socket.socket) -> None:
        for sock in socks:
            with self._lock:
                self._sockets.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv
            sock.close()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            open_now = list(self._sockets)
        self._drop(*open_now)

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._listener.close()


class EmptyWatch:
    """Reads ``directory.instances`` every 2 ms from a thread, as balanced channels do per call,
    and records every read that found a service without instances."""

    def __init__(self, directory: ServiceDirectory, services: tuple[str, ...]) -> None:
        self._directory = directory
        self._services = services
        self._stop = threading.Event()
        self.reads = 0
        self.empty: list[str] = []
        self._thread = threading.Thread(target=self._run, name="test-empty-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            for service in self._services:
                self.reads += 1
                if not self._directory.instances(service):
                    self.empty.append(service)

    def __enter__(self) -> EmptyWatch:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def relay(etcd: EtcdServer) -> Iterator[Relay]:
    r = Relay(etcd.port)
    yield r
    r.close()


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="telemetry.discovery")
    return caplog


@pytest.fixture
def stop_after() -> Iterator[list[ServiceDirectory | Registration | EtcdClient]]:
    """Directories, registrations and clients a test started, stopped in reverse order."""
    things: list[ServiceDirectory | Registration | EtcdClient] = []
    yield things
    for thing in reversed(things):
        if isinstance(thing, ServiceDirectory):
            thing.stop()
        elif isinstance(thing, Registration):
            thing.deregister(timeout=0.5)
        else:
            thing.close()


def instance(service: str, iid: str, port: int) -> Instance:
    return Instance(service=service, id=iid, address=f"127.0.0.1:{port}")


def ids(directory: ServiceDirectory, service: str = "order") -> set[str]:
    return {i.id for i in directory.instances(service)}


def lines(log: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in list(log.records) if text in r.getMessage()]


def stored(client: EtcdClient, key: str) -> bool:
    """Whether ``key`` is in etcd; False while the client cannot reach it yet (just restarted)."""
    try:
        return client.get(key) is not None
    except EtcdError:
        return False


def register(
    things: list[ServiceDirectory | Registration | EtcdClient], endpoint: str, *instances: Instance
) -> list[Registration]:
    """Register ``instances`` with the real registration code, through their own client."""
    c = EtcdClient(EtcdConfig(endpoints=(endpoint,), timeout=1.0))
    things.append(c)
    registrations = [Registration(c, i, ttl=TTL).start() for i in instances]
    things.extend(registrations)
    for registration in registrations:
        assert registration.wait_registered(5)
    return registrations


def directory_on(
    things: list[ServiceDirectory | Registration | EtcdClient],
    client: EtcdClient,
    grace: float | None = None,
) -> ServiceDirectory:
    directory = (
        ServiceDirectory(client) if grace is None else ServiceDirectory(client, retain_after_wipe=grace)
    ).start()
    things.append(directory)
    assert directory.wait_synced(5)
    return directory


def test_no_service_is_ever_empty_while_its_instances_re_register_after_a_wipe(
    etcd: EtcdServer,
    client: EtcdClient,
    relay: Relay,
    log: pytest.LogCaptureFixture,
    stop_after: list[ServiceDirectory | Registration | EtcdClient],
) -> None:
    # The instances reach etcd through the relay: cut during the wipe, they re-register only after
    # the directory has read the empty etcd (else they might win the race and nothing is tested).
    registrations = register(
        stop_after, relay.endpoint,
        instance("order", "a", 50001), instance("order", "b", 50002), instance("payment", "p", 50003),
    )  # fmt: skip
    directory = directory_on(stop_after, client)  # the default grace, 10 s
    wait_until(lambda: ids(directory) == {"a", "b"} and ids(directory, "payment") == {"p"}, message="up")
    before = {s: directory.instances(s) for s in ("order", "payment")}
    with EmptyWatch(directory, ("order", "payment")) as watch:
        relay.cut()
        etcd.restart(wipe=True)
        wait_until(lambda: lines(log, KEEPING), message="the directory read the wiped etcd")
        assert not any(stored(client, r.instance.key) for r in registrations)  # etcd is empty
        relay.restore()
        wait_until(
            lambda: all(stored(client, r.instance.key) for r in registrations),
            timeout=TTL + 5,
            message="every instance re-registered",
        )
        wait_until(lambda: lines(log, GRACE_OVER), message="the grace ends once all are back")
    assert watch.reads > 100 and watch.empty == []
    assert "keeping 3 known entries" in lines(log, KEEPING)[0].getMessage()
    assert "3 re-registered, 0 dropped" in lines(log, GRACE_OVER)[0].getMessage()
    # Exactly the live instances, in the very tuples of before: channels saw no change at all.
    assert all(directory.instances(s) is before[s] for s in before)


def test_an_instance_that_cannot_re_register_is_dropped_when_the_grace_is_over(
    etcd: EtcdServer,
    client: EtcdClient,
    log: pytest.LogCaptureFixture,
    stop_after: list[ServiceDirectory | Registration | EtcdClient],
) -> None:
    grace = 1.5
    (alive,) = register(stop_after, etcd.endpoint, instance("order", "a", 50001))
    dead_client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,), timeout=1.0))
    Registration(dead_client, instance("order", "dead", 50002), ttl=TTL).start().wait_registered(5)
    directory = directory_on(stop_after, client, grace)
    wait_until(lambda: ids(directory) == {"a", "dead"}, message="both registered")
    # Its process is gone: the registration thread ends with its client, without deregistering.
    dead_client.close()
    etcd.restart(wipe=True)
    wait_until(lambda: lines(log, KEEPING), message="the directory read the wiped etcd")
    assert "dead" in ids(directory)
    wait_until(lambda: ids(directory) == {"a"}, timeout=grace + TTL + 5, message="only the live one")
    (kept,), (over,) = lines(log, KEEPING), lines(log, GRACE_OVER)
    assert over.created - kept.created >= grace - 0.05  # not before the grace was over
    assert "/services/order/dead" in over.getMessage()
    assert stored(client, alive.instance.key) and not stored(client, "/services/order/dead")


def test_a_re_registered_instance_that_deregisters_during_the_grace_is_gone_at_once(
    etcd: EtcdServer,
    client: EtcdClient,
    log: pytest.LogCaptureFixture,
    stop_after: list[ServiceDirectory | Registration | EtcdClient],
) -> None:
    (leaving,) = register(stop_after, etcd.endpoint, instance("order", "a", 50001))
    dead_client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,), timeout=1.0))
    Registration(dead_client, instance("order", "dead", 50002), ttl=TTL).start().wait_registered(5)
    directory = directory_on(stop_after, client, grace=60)
    wait_until(lambda: ids(directory) == {"a", "dead"}, message="both registered")
    dead_client.close()
    etcd.restart(wipe=True)
    wait_until(lambda: lines(log, KEEPING), message="the directory read the wiped etcd")
    wait_until(lambda: stored(client, leaving.instance.key), timeout=TTL + 5, message="re-registered")
    leaving.deregister()
    # The delete event is honoured at once; the one that never came back is still retained.
    wait_until(lambda: ids(directory) == {"dead"}, timeout=2, message="the deregistered one gone")
    assert not lines(log, GRACE_OVER)


def compact(endpoint: str, revision: int) -> None:
    """Compact etcd's history up to ``revision`` (the adapter has no call for it: only tests do)."""
    with grpc.insecure_channel(endpoint) as channel:
        request = etcdrpc.CompactionRequest(revision=revision, physical=True)
        etcdrpc.KVStub(channel).Compact(request, timeout=5)


def test_a_compaction_on_a_healthy_etcd_drops_a_deleted_key_at_once(
    etcd: EtcdServer,
    client: EtcdClient,
    relay: Relay,
    log: pytest.LogCaptureFixture,
    stop_after: list[ServiceDirectory | Registration | EtcdClient],
) -> None:
    watching = EtcdClient(EtcdConfig(endpoints=(relay.endpoint,), timeout=1.0))
    stop_after.append(watching)
    for iid, port in (("a", 50001), ("b", 50002)):
        client.put(f"/services/order/{iid}", instance("order", iid, port).to_json())
    # A long grace: were the compaction taken for a loss, "b" would linger for a minute.
    directory = directory_on(stop_after, watching, grace=60)
    seen: list[set[str]] = []
    directory.add_listener(lambda: seen.append(ids(directory)))
    wait_until(lambda: ids(directory) == {"a", "b"}, message="both")
    # While the watch is cut off, "b" goes and the history of its going is compacted away.
    relay.cut()
    client.delete("/services/order/b")
    revision = client.put("/services/order/c", instance("order", "c", 50003).to_json())
    compact(etcd.endpoint, revision)
    relay.restore()
    wait_until(lambda: "c" in ids(directory), message="the watch re-read after the compaction")
    assert ids(directory) == {"a", "c"}
    assert not [s for s in seen if {"b", "c"} <= s]  # never both: "b" was not retained
    assert lines(log, "were compacted, re-reading") and not lines(log, KEEPING)
