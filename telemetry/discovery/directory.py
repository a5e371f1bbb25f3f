"""The local view of the registry: which instances each service has, kept current by a watch.

:class:`ServiceDirectory` mirrors ``/services/`` through a :class:`PrefixWatcher` and answers
``instances(service)`` from memory (no etcd call on the request path). When etcd is unreachable
the last known instances stay in use; with ``cache_file`` the view is also written to disk after
each change and read back at start, so a process restarted during an etcd outage still finds its
peers. When etcd comes back empty (its data wiped) the instances it lost stay in use for
``retain_after_wipe`` seconds, until each re-registers (then it is etcd's entry again) or the time
is up (then it is dropped): calls never find a service empty meanwhile. Malformed entries are
skipped with a log line naming the field.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from telemetry.discovery.etcd import EtcdClient
from telemetry.discovery.instance import SERVICES_PREFIX, Instance, parse_registrations
from telemetry.discovery.watch import PrefixWatcher

__all__ = ["ServiceDirectory"]

_log = logging.getLogger("telemetry.discovery")


class ServiceDirectory:
    def __init__(
        self,
        client: EtcdClient,
        *,
        cache_file: str | Path | None = None,
        retain_after_wipe: float = 10.0,
    ) -> None:
        """``retain_after_wipe``: seconds an instance etcd lost with its data stays in use while
        it registers again; it must exceed the registrations' lease TTL (the default 10 s is twice
        :class:`~telemetry.discovery.registry.Registration`'s default 5 s); 0: drop at once."""
        self.client = client
        """The etcd client the watch uses (its metrics are exported with the directory's)."""
        self._cache_file = Path(cache_file) if cache_file else None
        self._by_service: dict[str, tuple[Instance, ...]] = {}
        initial = self._load_cache()
        self._watcher = PrefixWatcher(
            client, SERVICES_PREFIX, initial=initial, retain_after_wipe=retain_after_wipe
        )
        if initial:
            self._rebuild(initial)
        # First on the watcher: listeners added later run after the view is rebuilt.
        self._watcher.add_listener(self._on_change)

    def start(self) -> ServiceDirectory:
        self._watcher.start()
        return self

    def stop(self) -> None:
        self._watcher.stop()

    def wait_synced(self, timeout: float) -> bool:
        return self._watcher.wait_synced(timeout)

    # -- InstanceSource -----------------------------------------------------------------------

    def instances(self, service: str) -> tuple[Instance, ...]:
        return self._by_service.get(service, ())

    def counts(self) -> dict[str, int]:
        """Live instances per service, for every service in the registry."""
        return {service: len(found) for service, found in self._by_service.items()}

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Called (from the watch thread) after every change; a failing listener is logged and
        does not stop the others."""
        self._watcher.add_listener(lambda _state, _revision: listener())

    # -- updates ------------------------------------------------------------------------------

    def _on_change(self, state: Mapping[str, bytes], revision: int) -> None:
        self._rebuild(state)
        self._save_cache(state)

    def _rebuild(self, state: Mapping[str, bytes]) -> None:
        # Only the watch thread (or __init__) writes; readers see the old or the new dict whole.
        old = self._by_service
        fresh = {s: tuple(i) for s, i in parse_registrations(state.items(), _log).items()}
        # Unchanged services keep their very tuple: channels detect change by identity.
        self._by_service = {s: old[s] if old.get(s) == t else t for s, t in fresh.items()}

    def _load_cache(self) -> dict[str, bytes]:
        if self._cache_file is None or not self._cache_file.exists():
            return {}
        try:
            data = json.loads(self._cache_file.read_text())
            return {str(k): str(v).encode() for k, v in data.items()}
        except (OSError, ValueError, AttributeError) as exc:
            _log.warning("ignoring discovery cache %s: %s", self._cache_file, exc)
            return {}

    def _save_cache(self, state: Mapping[str, bytes]) -> None:
        if self._cache_file is None:
            return
        tmp = self._cache_file.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({k: v.decode() for k, v in state.items()}, sort_keys=True))
            os.replace(tmp, self._cache_file)  # atomic: a crash never leaves half a file
        except OSError as exc:
            _log.warning("cannot write discovery cache %s: %s", self._cache_file, exc)
