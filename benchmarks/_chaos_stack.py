"""The chaos benchmark's hold on the native stack: the progress log, which services and instances
run, etcd writes retried while etcd comes back, the governance switch and its wait until every
instance applied it, and each instance's Prometheus counters. ``chaos.py`` is the entry point."""

from __future__ import annotations

import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from chaos_analysis import Snapshot, parse_metrics

from services.stack import NativeStack
from telemetry.control.live_rules import read_all_statuses, rules_key
from telemetry.discovery.etcd import EtcdClient, EtcdError

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("gateway", "order", "inventory", "payment", "recommendation", "notification")
INSTANCES = {"inventory": 2, "payment": 2}
HOP_SERVICES = ("gateway", "order", "inventory", "payment")  # whose counters give the amplification

_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[chaos {time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def instance_names(service: str) -> list[str]:
    """The stack's instance names: one instance keeps the bare name, n > 1 are ``name-1..n``."""
    count = INSTANCES.get(service, 1)
    return [service] if count == 1 else [f"{service}-{i}" for i in range(1, count + 1)]


def etcd_put(client: EtcdClient, key: str, value: str, timeout: float = 10.0) -> int:
    """Write ``key`` (retried until ``timeout``: etcd may be coming back); the revision."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.put(key, value)
        except EtcdError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def etcd_delete(client: EtcdClient, key: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.delete(key)
        except EtcdError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        else:
            return


def wait_applied(client: EtcdClient, revisions: dict[str, int], timeout: float) -> bool:
    """True once every instance of each service reports (``/governance-status/``) its rules
    applied at or after ``revisions[service]``; False when ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            statuses = read_all_statuses(client)
        except EtcdError:
            statuses = {}
        pending = []
        for service, revision in revisions.items():
            done = [
                s for s in statuses.get(service, {}).values()
                if s.get("state") == "applied" and int(s.get("revision") or 0) >= revision
            ]  # fmt: skip
            if len(done) < len(instance_names(service)):
                pending.append(f"{service} {len(done)}/{len(instance_names(service))}")
        if not pending:
            return True
        if time.monotonic() > deadline:
            log(
                f"  governance switch not applied everywhere after {timeout:.0f} s: {', '.join(pending)}"
            )
            return False
        time.sleep(0.2)


def order_without_deferral() -> dict[str, Any]:
    """order's shipped ``client`` rules with its charges no longer deferred (the breaker kept)."""
    rules = yaml.safe_load((ROOT / "services" / "config" / "order.yaml").read_text())
    client = dict(rules["governance"]["client"])
    methods = dict(client["methods"])
    methods["demoshop.v1.Payment/*"] = {"breaker": methods["demoshop.v1.Payment/*"]["breaker"]}
    client["methods"] = methods
    return client


def switch_governance_off(client: EtcdClient, timeout: float = 15.0) -> bool:
    revisions = {s: etcd_put(client, rules_key(s, "enabled"), "false") for s in SERVICES}
    return wait_applied(client, revisions, timeout)


def scrape(stack: NativeStack) -> dict[str, Snapshot]:
    """Instance name -> its samples, for every service of the order path; an instance that does
    not answer (killed, stopped) is left out: its counts are not known."""
    result: dict[str, Snapshot] = {}
    for service in HOP_SERVICES:
        for name in instance_names(service):
            try:
                with urllib.request.urlopen(stack.metrics_url(name), timeout=3.0) as response:
                    result[name] = parse_metrics(response.read().decode())
            except (OSError, ValueError) as exc:
                log(f"  could not read {name}'s metrics: {exc}")
    return result
