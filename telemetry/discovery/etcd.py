"""A small etcd v3 adapter: the few KV, lease and watch calls discovery and live rules need.

It speaks etcd's gRPC API through the generated stubs of ``etcd-sdk-python`` (import ``pyetcd``:
native protobuf, unlike the abandoned ``etcd3``, which needs the 160-320x slower pure-Python
protobuf). Its client class is not used: it marks an endpoint failed for 300 s after one error and
its watches never resume, both wrong for a registry that must ride out etcd restarts. Here every
call has a deadline, is retried on the next member when one fails or holds it (see
:mod:`.etcd_failover`), and raises :class:`EtcdError` (never a raw ``grpc.RpcError``);
:attr:`EtcdClient.current_endpoint` says which member is in use. A username/password token is
fetched lazily (from whichever member answers) and renewed when etcd says it expired, so a client
can be built while etcd is down. Watches ask for a member that sees a leader (etcd ends the stream
of a member cut off from the others, and the watcher resumes elsewhere), and a watchdog ends a
stream to a member that stopped answering (:class:`WatchStream`). Swap this module to use another
client.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import grpc

from telemetry.config import ConfigError
from telemetry.discovery.etcd_failover import Attempts, Members

__all__ = [
    "EtcdClient",
    "EtcdClosedError",
    "EtcdConfig",
    "EtcdError",
    "KeyValue",
    "WatchBatch",
    "WatchStream",
]

_T = TypeVar("_T")
_FAILOVER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_REQUIRE_LEADER = (("hasleader", "true"),)
"""Call metadata (etcd's WithRequireLeader): a member without a leader refuses a call at once,
and ends a watch stream, rather than holding it until its election ends."""


class EtcdError(Exception):
    """etcd could not be reached or refused the request."""


class EtcdClosedError(EtcdError):
    """The client was closed: background loops using it should end."""


@dataclass(frozen=True, kw_only=True)
class EtcdConfig:
    endpoints: tuple[str, ...] = ("127.0.0.1:2379",)
    """``host:port`` of each cluster member; calls fail over between them."""
    username: str | None = None
    password: str | None = None
    ca_cert: str | None = None
    """PEM file: connect with TLS, trusting this CA."""
    cert: str | None = None
    """PEM client certificate (mutual TLS), with ``key``."""
    key: str | None = None
    timeout: float = 2.0
    """Seconds for each call, failovers included (a watch stream is not bounded)."""

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ConfigError("etcd.endpoints: at least one host:port is needed")
        for endpoint in self.endpoints:
            host, sep, port = endpoint.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ConfigError(f"etcd.endpoints: {endpoint!r} is not host:port")
        if (self.username is None) != (self.password is None):
            raise ConfigError("etcd.username: username and password go together")
        if (self.cert is None) != (self.key is None):
            raise ConfigError("etcd.cert: cert and key go together")
        if self.cert is not None and self.ca_cert is None:
            raise ConfigError("etcd.ca_cert: a client certificate needs TLS (ca_cert)")
        if not self.timeout > 0:
            raise ConfigError(f"etcd.timeout: must be > 0, got {self.timeout!r}")

    @classmethod
    def from_env(cls, environ: Any = None, **overrides: Any) -> EtcdConfig:
        """``ETCD_ENDPOINTS`` (comma-separated), ``ETCD_USERNAME``, ``ETCD_PASSWORD``,
        ``ETCD_CA_CERT``, ``ETCD_CERT``, ``ETCD_KEY``, ``ETCD_TIMEOUT``; keywords win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("ETCD_ENDPOINTS"):
            values["endpoints"] = tuple(e.strip() for e in env["ETCD_ENDPOINTS"].split(",") if e.strip())
        for name in ("username", "password", "ca_cert", "cert", "key"):
            if env.get(f"ETCD_{name.upper()}"):
                values[name] = env[f"ETCD_{name.upper()}"]
        if env.get("ETCD_TIMEOUT"):
            try:
                values["timeout"] = float(env["ETCD_TIMEOUT"])
            except ValueError:
                raise ConfigError(f"ETCD_TIMEOUT: not a number: {env['ETCD_TIMEOUT']!r}") from None
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int


class PrefixRead(NamedTuple):
    items: list[KeyValue]
    revision: int
    cluster_id: int


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One watch response: changes (``value`` None for a delete)."""

    changes: tuple[tuple[str, bytes | None, int], ...]
    """(key, value or None when deleted, mod_revision)."""
    compacted: int = 0
    """Non-zero: the start revision was compacted away; resynchronise from a full read."""


def _prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with prefix"."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


class EtcdClient:
    """Thread-safe; cheap to build (connects lazily). ``close()`` when done."""

    def __init__(self, config: EtcdConfig | None = None) -> None:
        from pyetcd import etcdrpc  # the optional "etcd" extra

        self._rpc = etcdrpc
        self.config = config or EtcdConfig()
        credentials = self._credentials()
        # grpc's default reconnect backoff grows to 120 s: after a long etcd outage watches and
        # registrations would come back minutes late. Cap it at 2 s. Keepalive pings (while a call
        # or watch is open; etcd accepts one per 5 s) end a stream to a member that went silent.
        options = [
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
        ]
        self._channels = [
            grpc.secure_channel(e, credentials, options=options)
            if credentials
            else grpc.insecure_channel(e, options=options)
            for e in self.config.endpoints
        ]
        self._members = Members(self.config.endpoints)
        self._token: tuple[tuple[str, str], ...] | None = None
        self._closed = False

    def _credentials(self) -> grpc.ChannelCredentials | None:
        cfg = self.config
        if cfg.ca_cert is None:
            return None

        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise ConfigError(f"etcd: cannot read {path}: {exc}") from None

        return grpc.ssl_channel_credentials(read(cfg.ca_cert), read(cfg.key), read(cfg.cert))

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def current_endpoint(self) -> str:
        """``host:port`` of the member calls go to now (it changes when that member fails)."""
        return self._members.current

    @property
    def failovers(self) -> int:
        """How many times calls moved to another member since the client was built."""
        return self._members.failovers

    def _call(self, stub_name: str, method: str, request: Any, *, leader: bool = True) -> Any:
        """One unary call (see :meth:`_invoke`). ``leader``: the member must see a leader, else
        it answers ``etcdserver: no leader`` at once (UNAVAILABLE: the next member is tried)
        instead of holding the request through an election; False for serializable reads, which
        a member answers alone."""

        def unary(channel: grpc.Channel, metadata: Any, timeout: float) -> Any:
            stub = getattr(self._rpc, stub_name)(channel)
            if leader:
                metadata = (*(metadata or ()), *_REQUIRE_LEADER)
            return getattr(stub, method)(request, timeout=timeout, metadata=metadata)

        return self._invoke(method, unary)

    def _invoke(self, what: str, call: Callable[[grpc.Channel, Any, float], _T]) -> _T:
        """``call(channel, metadata, timeout)`` on the member in use, again on the next member
        when it fails with a connection error, ``UNAVAILABLE`` or a timeout, all within the
        call's deadline; the auth token is renewed once when etcd says it expired."""
        attempts = Attempts(len(self._channels), self.config.timeout)
        while True:
            self._check_open()
            index = self._members.index
            try:
                budget = attempts.budget()
                ends = time.monotonic() + budget
                metadata = self._metadata(index, budget)  # may fetch a token: within the budget
                return call(self._channels[index], metadata, max(0.001, ends - time.monotonic()))
            except grpc.RpcError as exc:
                code = exc.code()
                details = exc.details() or ""
                if "auth token" in details and not attempts.renewed and self.config.username:
                    attempts.renewed = True
                    self._token = None
                    continue
                if details == "context deadline exceeded":  # etcd's side of the attempt's timeout
                    code = grpc.StatusCode.DEADLINE_EXCEEDED
                # An etcd error or a held request: the member runs (an election may be under way).
                reachable = details.startswith("etcdserver") or code is grpc.StatusCode.DEADLINE_EXCEEDED
                if code not in _FAILOVER_CODES or not attempts.again(reachable=reachable):
                    raise EtcdError(f"etcd {what}: {code.name}: {details}") from None
                self._members.failed(index, f"{code.name}: {details}", reachable=reachable)
                attempts.pause()

    def _check_open(self) -> None:
        if self._closed:
            raise EtcdClosedError("etcd client is closed")

    def _metadata(self, index: int, timeout: float) -> tuple[tuple[str, str], ...] | None:
        """The auth token, fetched from member ``index`` when there is none (a failure raises
        ``grpc.RpcError``: the caller fails over)."""
        if self.config.username is None:
            return None
        token = self._token
        if token is None:
            request = self._rpc.AuthenticateRequest(
                name=self.config.username, password=self.config.password
            )
            response = self._rpc.AuthStub(self._channels[index]).Authenticate(request, timeout=timeout)
            token = self._token = (("token", response.token),)
        return token

    # -- KV -----------------------------------------------------------------------------------

    def get_prefix(self, prefix: str) -> PrefixRead:
        """Every key under ``prefix``, with the revision and cluster they were read at."""
        raw = prefix.encode()
        response = self._call(
            "KVStub", "Range", self._rpc.RangeRequest(key=raw, range_end=_prefix_end(raw))
        )
        header = response.header
        return PrefixRead([_kv(kv) for kv in response.kvs], int(header.revision), int(header.cluster_id))

    def get(self, key: str) -> KeyValue | None:
        response = self._call("KVStub", "Range", self._rpc.RangeRequest(key=key.encode()))
        return _kv(response.kvs[0]) if response.kvs else None

    def revision(self, prefix: str = "/", *, serializable: bool = False) -> tuple[int, int]:
        """(cluster id, current revision), without reading values. ``serializable``: as the
        member called knows it (no round trip to the leader, so it answers during an election;
        a member catching up may be behind)."""
        raw = prefix.encode()
        request = self._rpc.RangeRequest(
            key=raw, range_end=_prefix_end(raw), count_only=True, serializable=serializable
        )
        response = self._call("KVStub", "Range", request, leader=not serializable)
        return int(response.header.cluster_id), int(response.header.revision)

    def put(self, key: str, value: str | bytes, lease: int = 0) -> int:
        """Write ``key``; returns the new revision."""
        response = self._call(
            "KVStub", "Put", self._rpc.PutRequest(key=key.encode(), value=_bytes(value), lease=lease)
        )
        return int(response.header.revision)

    def put_if_unchanged(
        self,
        key: str,
        value: str | bytes | None,
        *,
        mod_revision: int,
        also_put: Sequence[tuple[str, str | bytes]] = (),
    ) -> int | None:
        """Write ``key`` (delete it when ``value`` is None) and the ``also_put`` pairs in one
        transaction, only if ``key`` was last modified at ``mod_revision`` (0: it must not exist).
        Returns the new revision, or None when ``key`` changed meanwhile (nothing was written)."""
        rpc = self._rpc
        raw = key.encode()
        compare = rpc.Compare(
            key=raw,
            target=rpc.Compare.CompareTarget.MOD,
            result=rpc.Compare.CompareResult.EQUAL,
            mod_revision=mod_revision,
        )
        first = (
            rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=raw))
            if value is None
            else rpc.RequestOp(request_put=rpc.PutRequest(key=raw, value=_bytes(value)))
        )
        others = [
            rpc.RequestOp(request_put=rpc.PutRequest(key=k.encode(), value=_bytes(v)))
            for k, v in also_put
        ]
        request = rpc.TxnRequest(compare=[compare], success=[first, *others])
        response = self._call("KVStub", "Txn", request)
        return int(response.header.revision) if response.succeeded else None

    def delete(self, key: str) -> int:
        """Delete ``key``; returns how many keys were deleted (0 or 1)."""
        response = self._call("KVStub", "DeleteRange", self._rpc.DeleteRangeRequest(key=key.encode()))
        return int(response.deleted)

    def delete_prefix(self, prefix: str) -> int:
        raw = prefix.encode()
        request = self._rpc.DeleteRangeRequest(key=raw, range_end=_prefix_end(raw))
        return int(self._call("KVStub", "DeleteRange", request).deleted)

    # -- leases -------------------------------------------------------------------------------

    def grant_lease(self, ttl: int) -> int:
        response = self._call("LeaseStub", "LeaseGrant", self._rpc.LeaseGrantRequest(TTL=ttl))
        return int(response.ID)

    def refresh_lease(self, lease_id: int) -> int:
        """Keep the lease alive once; returns its remaining TTL (0: the lease is gone)."""
        request = self._rpc.LeaseKeepAliveRequest(ID=lease_id)

        def keep_alive(channel: grpc.Channel, metadata: Any, timeout: float) -> int:
            stub = self._rpc.LeaseStub(channel)
            metadata = (*(metadata or ()), *_REQUIRE_LEADER)
            responses = stub.LeaseKeepAlive(iter((request,)), timeout=timeout, metadata=metadata)
            return next((int(r.TTL) for r in responses), 0)

        return self._invoke("LeaseKeepAlive", keep_alive)

    def revoke_lease(self, lease_id: int) -> None:
        """Revoke the lease, deleting its keys; a lease that is already gone is fine."""
        try:
            self._call("LeaseStub", "LeaseRevoke", self._rpc.LeaseRevokeRequest(ID=lease_id))
        except EtcdError as exc:
            if "lease not found" not in str(exc):
                raise

    # -- watch --------------------------------------------------------------------------------

    def watch_prefix(self, prefix: str, start_revision: int) -> WatchStream:
        """Changes under ``prefix`` from ``start_revision`` on, until the stream fails (it raises
        :class:`EtcdError`) or is cancelled. Progress notifications keep the revision moving."""
        self._check_open()
        raw = prefix.encode()
        create = self._rpc.WatchRequest(
            create_request=self._rpc.WatchCreateRequest(
                key=raw, range_end=_prefix_end(raw), start_revision=start_revision,
                progress_notify=True,
            )
        )  # fmt: skip
        # The member in use, authenticated (from another member if that one fails).
        channel, metadata = self._invoke("Watch", lambda channel, metadata, _: (channel, metadata))
        index = self._members.index
        return WatchStream(
            self._rpc.WatchStub(channel), create, (*(metadata or ()), *_REQUIRE_LEADER),
            progress=self._rpc.WatchRequest(progress_request=self._rpc.WatchProgressRequest()),
            on_stall=lambda: self._members.failed(index, "watch: no answer", reachable=True),
        )  # fmt: skip

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        for channel in self._channels:
            channel.close()


class WatchStream:
    """One etcd watch: iterate for :class:`WatchBatch` es; ``cancel()`` from any thread.

    A member that stops answering without closing the connection (frozen, its host gone) would
    hold the stream until gRPC's keepalive gives up, about a minute later. So a watchdog thread
    asks for a progress report every ``STALL_AFTER / 3`` seconds (``progress``, etcd >= 3.4; a
    live member answers at once) and, when nothing at all has come for ``STALL_AFTER`` seconds,
    tells ``on_stall`` (the client moves to the next member) and ends the stream with
    :class:`EtcdError`: the watcher resumes from its revision elsewhere.
    """

    STALL_AFTER = 6.0

    def __init__(
        self, stub: Any, create: Any, metadata: Any, *, progress: Any = None,
        on_stall: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        self._closed = threading.Event()
        self._stalled = False
        self._seen = time.monotonic()
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._requests.put(create)
        self._call = stub.Watch(self._request_iterator(), metadata=metadata)
        if progress is not None:
            threading.Thread(
                target=self._watchdog, args=(progress, on_stall), daemon=True,
                name="telemetry-etcd-watchdog",
            ).start()  # fmt: skip

    def _request_iterator(self) -> Iterator[Any]:
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def _watchdog(self, progress: Any, on_stall: Callable[[], None] | None) -> None:
        while not self._closed.wait(self.STALL_AFTER / 3):
            if time.monotonic() - self._seen > self.STALL_AFTER:
                self._stalled = True
                if on_stall is not None:
                    on_stall()
                self.cancel()
                return
            self._requests.put(progress)

    def __iter__(self) -> Iterator[WatchBatch]:
        try:
            for response in self._call:
                self._seen = time.monotonic()
                if response.compact_revision:
                    yield WatchBatch((), int(response.compact_revision))
                    return
                if response.canceled:
                    raise EtcdError(f"etcd watch cancelled: {response.cancel_reason}")
                changes = tuple(
                    (
                        event.kv.key.decode(),
                        None if event.type == 1 else bytes(event.kv.value),  # 1: DELETE
                        int(event.kv.mod_revision),
                    )
                    for event in response.events
                )
                yield WatchBatch(changes)
        except grpc.RpcError as exc:
            if self._stalled:
                raise EtcdError(f"etcd watch: no answer for {self.STALL_AFTER:g}s") from None
            if self._closed.is_set():
                return
            raise EtcdError(f"etcd watch: {exc.code().name}: {exc.details()}") from None
        if self._stalled:
            raise EtcdError(f"etcd watch: no answer for {self.STALL_AFTER:g}s")
        if not self._closed.is_set():
            raise EtcdError("etcd watch: stream ended")

    def cancel(self) -> None:
        self._closed.set()
        self._requests.put(None)
        self._call.cancel()


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _kv(kv: Any) -> KeyValue:
    return KeyValue(kv.key.decode(), bytes(kv.value), int(kv.mod_revision))
