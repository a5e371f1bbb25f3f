"""What Prometheus should scrape, read from the registry: a live target list for its generic
service discovery.

Prometheus has no etcd service discovery; its generic ones, ``http_sd_configs`` and
``file_sd_configs``, read a JSON list of target groups::

    [{"labels": {"job": "shop"}, "targets": ["10.0.0.5:9464", "10.0.0.6:9464"]}]

:func:`scrape_targets` makes that list from the registrations under ``/services/``, and
:class:`RegistryTargets` keeps it current with a watch. A registration carries where its metrics
are scraped in its ``metrics`` metadata (``host:port``: :meth:`telemetry.Telemetry.register` adds
it whenever the handle serves /metrics; metadata, not a new field, so registries read by older
versions, whose :class:`~telemetry.discovery.instance.Instance` refuses unknown fields, keep
working). Each service is one group labelled ``job=<service>``, as a static job per service would
be, so dashboards, recording rules and the control panel, which select services by ``job``, see a
registered service as they see any other. A registration without ``metrics`` (metrics switched off)
has nothing to scrape and is passed over.

The registry is hostile input (whoever can write to etcd writes there). An entry that is not valid
is skipped and logged, never listed:

* the registration must parse (:meth:`Instance.from_json <telemetry.discovery.instance.Instance.
  from_json>`) and its service name be a plain name (``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``): it
  becomes the ``job`` label;
* the metrics address must be ``host:port`` with an IPv4 address, a bracketed IPv6 address or a DNS
  name (RFC 1123), and a port 1-65535; with ``loopback_only`` the host must be loopback
  (``127.0.0.0/8``, ``::1``, ``localhost``): a registration cannot make a local Prometheus fetch
  from another machine;
* an address is listed once (a second registration naming it is skipped);
* at most ``limit`` targets, the first by key (the same ones each time); the rest are counted and
  logged as one line.

What the static configuration scrapes is left out on purpose (``skip_jobs``, ``skip_addresses``):
the demo's own services have a job each, which scrapes every instance under the labels the
dashboards expect; listing them again would scrape each twice. A registration is left to its static
job when that job lists its address, silently; under a static job's name at another address it is
skipped and logged (its series would mix with that job's under one ``job`` label: rename the
service, or add the target to the job); at an address a static job lists, under another name, it
is skipped and logged too. The job's name and the address are both compared, not just one: an
address alone misses a service whose registration spells its host otherwise than the job does, and
a name alone would scrape a renamed copy of a demo service twice.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from telemetry.config import ConfigError
from telemetry.discovery.etcd import EtcdClient
from telemetry.discovery.instance import SERVICES_PREFIX, Instance
from telemetry.discovery.watch import PrefixWatcher

__all__ = ["MAX_TARGETS", "RegistryTargets", "ScrapeTargets", "check_address", "scrape_targets"]

_log = logging.getLogger("telemetry.discovery")

MAX_TARGETS = 1000
"""Targets listed at most, by default (Prometheus scrapes each every few seconds)."""
MAX_LOGGED = 20
"""Skipped entries named per rebuild; the rest are counted in one line."""
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _host_problem(host: str, *, loopback_only: bool) -> str | None:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    if host.startswith("[") and host.endswith("]"):
        try:
            ip = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host!r:.80} is not an IPv6 address"
        if ip.scope_id:
            return f"{host!r:.80}: a zone index is not scrapable"
    else:
        try:
            ip = ipaddress.IPv4Address(host)
        except ValueError:
            labels = host.split(".")
            if len(host) > 253 or labels[-1].isdigit() or not all(map(_DNS_LABEL.fullmatch, labels)):
                return f"{host!r:.80} is not a host name or an IP address"
    if loopback_only and not (host.lower() == "localhost" or (ip is not None and ip.is_loopback)):
        return f"{host!r:.80} is not a loopback address (this target list is loopback only)"
    return None


def _printable(text: str, limit: int = 300) -> str:
    """``text`` for a log line: as it is when printable, else escaped (no forged lines); cut."""
    shown = text if text.isprintable() else repr(text)
    return shown if len(shown) <= limit else f"{shown[:limit]}..."


def check_address(address: object, *, loopback_only: bool = False) -> str | None:
    """None when ``address`` is a ``host:port`` Prometheus may scrape, else why not."""
    if not isinstance(address, str) or not 3 <= len(address) <= 261:
        return f"expected host:port, got {address!r:.80}"
    host, sep, port = address.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or len(port) > 5:
        return f"expected host:port, got {address!r:.80}"
    if not 0 < int(port) < 65536:
        return f"port {port} is outside 1-65535"
    return _host_problem(host, loopback_only=loopback_only)


@dataclass(frozen=True)
class ScrapeTargets:
    """One build of the target list."""

    groups: list[dict[str, Any]]
    """Prometheus's target groups, one per service, sorted."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Registry key -> why it is not listed (invalid, a duplicate, statically scraped)."""
    over_limit: int = 0
    """Valid targets left out because ``limit`` were listed already."""

    @property
    def count(self) -> int:
        return sum(len(group["targets"]) for group in self.groups)

    def document(self) -> bytes:
        """The JSON Prometheus's http_sd and file_sd read."""
        return json.dumps(self.groups, sort_keys=True).encode()


def _metrics_address(
    service: str, instance_id: str, value: bytes | str, loopback_only: bool
) -> str | None:
    """Where one registration's metrics are scraped (None: nowhere); raises :class:`ConfigError`
    naming the problem."""
    if not _SERVICE.fullmatch(service):
        raise ConfigError(f"service name {service!r:.80} is not a plain name (it becomes the job label)")
    address = Instance.from_json(service, instance_id, value).metadata.get("metrics")
    if address is None:
        return None
    problem = check_address(address, loopback_only=loopback_only)
    if problem:
        raise ConfigError(f"metadata.metrics: {problem}")
    return address


def _clash(
    service: str, address: str, skip_jobs: frozenset[str], static: frozenset[str], taken: dict[str, str]
) -> str | None:
    """Why a valid target is not listed (None: it is); ``address`` in lower case."""
    if service in skip_jobs:
        return (f"{service} has a static job, which does not list {address}: rename the service "
                "(the job label is taken) or add the target to that job")  # fmt: skip
    if address in static:
        return f"{address} is scraped already, by the static configuration"
    if address in taken:
        return f"{address} is scraped already, for {taken[address]}"
    return None


def scrape_targets(
    state: Mapping[str, bytes | str],
    *,
    skip_jobs: Iterable[str] = (),
    skip_addresses: Iterable[str] = (),
    loopback_only: bool = False,
    limit: int = MAX_TARGETS,
) -> ScrapeTargets:
    """The targets of the registrations in ``state`` (registry key -> value, keys under
    ``/services/``) that the static configuration, its jobs (``skip_jobs``) and their targets
    (``skip_addresses``), leaves to discover; see the module's docstring."""
    skip_jobs = frozenset(skip_jobs)
    static = frozenset(address.lower() for address in skip_addresses)
    taken: dict[str, str] = {}  # address -> the key listing it
    by_service: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    listed = over_limit = 0
    for key in sorted(state):
        if not key.startswith(SERVICES_PREFIX):
            continue
        service, _, instance_id = key[len(SERVICES_PREFIX) :].partition("/")
        try:
            address = _metrics_address(service, instance_id, state[key], loopback_only)
        except ConfigError as exc:
            skipped[key] = str(exc)
            continue
        if address is None or (service in skip_jobs and address.lower() in static):
            continue  # nothing to scrape, or its static job scrapes it
        why = _clash(service, address.lower(), skip_jobs, static, taken)
        if why:
            skipped[key] = why
        elif listed >= limit:
            over_limit += 1
        else:
            taken[address.lower()] = key
            by_service.setdefault(service, []).append(address)
            listed += 1
    groups = [{"labels": {"job": s}, "targets": sorted(t)} for s, t in sorted(by_service.items())]
    return ScrapeTargets(groups, skipped, over_limit)


class RegistryTargets:
    """:func:`scrape_targets` of the registry, kept current by a watch of ``/services/``. The
    document is rebuilt after every change (and after an etcd outage the last one stays, as the
    watch keeps its state); :meth:`document` is None until the registry was read once. Skipped
    entries are logged once each (until they change), at most :data:`MAX_LOGGED` by name per
    rebuild."""

    def __init__(
        self,
        client: EtcdClient,
        *,
        skip_jobs: Iterable[str] = (),
        skip_addresses: Iterable[str] = (),
        loopback_only: bool = False,
        limit: int = MAX_TARGETS,
        retain_after_wipe: float = 10.0,
    ) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit!r}")
        self._options: dict[str, Any] = {
            "skip_jobs": frozenset(skip_jobs), "skip_addresses": frozenset(skip_addresses),
            "loopback_only": loopback_only, "limit": limit,
        }  # fmt: skip
        self._watcher = PrefixWatcher(client, SERVICES_PREFIX, retain_after_wipe=retain_after_wipe)
        self._watcher.add_listener(self._on_change)
        self._reported: dict[str, str] = {}
        self._over_limit = 0
        self._latest: ScrapeTargets | None = None
        self._document: bytes | None = None
        self._changed = threading.Condition()

    def start(self) -> RegistryTargets:
        self._watcher.start()
        return self

    def stop(self) -> None:
        self._watcher.stop()

    @property
    def latest(self) -> ScrapeTargets | None:
        """The last build, None until the registry was read once."""
        return self._latest

    def document(self) -> bytes | None:
        """The JSON of :attr:`latest` (one whole build: swapped, never written in place)."""
        return self._document

    def wait_for(self, ready: Callable[[ScrapeTargets], bool], timeout: float) -> ScrapeTargets | None:
        """The first build for which ``ready(build)`` is true, None after ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self._latest is not None and ready(self._latest), timeout)
            latest = self._latest
        return latest if latest is not None and ready(latest) else None

    def _on_change(self, state: Mapping[str, bytes], revision: int) -> None:
        built = scrape_targets(state, **self._options)
        self._report(built)
        document = built.document()
        with self._changed:
            self._latest, self._document = built, document
            self._changed.notify_all()

    def _report(self, built: ScrapeTargets) -> None:
        fresh = {k: why for k, why in built.skipped.items() if self._reported.get(k) != why}
        for key, why in list(fresh.items())[:MAX_LOGGED]:
            _log.warning("not scraping %s: %s", _printable(key), _printable(why))
        if len(fresh) > MAX_LOGGED:
            _log.warning("not scraping %d more registrations (invalid or duplicate)",
                         len(fresh) - MAX_LOGGED)  # fmt: skip
        self._reported = dict(built.skipped)  # as many as the registry holds: bounded with it
        if built.over_limit != self._over_limit and built.over_limit:
            _log.warning("listing %d scrape targets, the limit: %d more left out",
                         built.count, built.over_limit)  # fmt: skip
        self._over_limit = built.over_limit
        previous = self._latest
        if previous is None or previous.groups != built.groups:
            _log.info("listing %d scrape targets of %d services", built.count, len(built.groups))
