"""The chaos benchmark's scenarios: what each one does to the stack when the fault begins and when
it ends, the modes it runs in, and what it notes down. ``chaos.py`` is the entry point."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _chaos_stack import etcd_delete, etcd_put, switch_governance_off
from _chaos_traffic import HOSTILE_RATE, OpenLoop, hostile_order
from chaos_analysis import Record

from services.stack import NativeStack
from telemetry.control.live_rules import rules_key
from telemetry.discovery.etcd import EtcdClient

MODES = ("governed", "ungoverned")
NO_DEFERRAL = "no_deferral"
"""A third mode for the payment scenarios: governed, but order's charges are not deferred (its
``demoshop.v1.Payment/*`` rule keeps only its breaker), so orders fail while payment does and the
breakers' own recovery timeline shows: order's breaker on payment, and the gateway's on order,
which must not be held open by order relaying its breaker's refusals."""
QUICK_SCENARIOS = ("payment_failing", "inventory_kill", "etcd_wiped")


@dataclass(frozen=True)
class Phases:
    """How long each phase of a run lasts, in seconds: warm-up, fault, after."""

    warmup: float
    fault: float
    after: float


@dataclass
class Run:
    """One scenario x mode on one stack: what the scenario's actions need and note down."""

    stack: NativeStack
    etcd: EtcdClient
    mode: str
    rate: float
    notes: dict[str, Any] = field(default_factory=dict)
    load: OpenLoop | None = None
    hostile: OpenLoop | None = None
    records: list[Record] = field(default_factory=list)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    begin: Callable[[Run], None]
    end: Callable[[Run], None]
    modes: tuple[str, ...] = MODES


def _faults(
    service: str, faults: dict[str, dict[str, Any]]
) -> tuple[Callable[[Run], None], Callable[[Run], None]]:
    key = rules_key(service, "faults")

    def begin(run: Run) -> None:
        etcd_put(run.etcd, key, json.dumps(faults))

    def end(run: Run) -> None:
        etcd_delete(run.etcd, key)

    return begin, end


def _kill_begin(run: Run) -> None:
    # SIGKILL (no deregistration, no drain), then hold it down: stop_process on the dead process
    # sends nothing and tells the supervisor not to restart it until start_process.
    run.notes["pid_before"] = run.stack.pid("inventory-1")
    run.stack.kill("inventory-1", sig=signal.SIGKILL)
    run.stack.stop_process("inventory-1", timeout=5.0)


def _restart_end(name: str) -> Callable[[Run], None]:
    def end(run: Run) -> None:
        run.stack.start_process(name)
        started = time.monotonic()
        run.stack.wait_ready(name, timeout=30.0)
        run.notes[f"{name}_ready_s"] = round(time.monotonic() - started, 2)
        run.notes[f"{name}_restarts"] = run.stack.restarts(name)

    return end


def _stop_begin(name: str) -> Callable[[Run], None]:
    def begin(run: Run) -> None:
        started = time.monotonic()
        run.stack.stop_process(name, timeout=10.0)
        run.notes[f"{name}_stop_s"] = round(time.monotonic() - started, 2)

    return begin


def _wipe_begin(run: Run) -> None:
    started = time.monotonic()
    run.stack.restart_etcd(wipe=True, timeout=30.0)
    run.notes["etcd_back_s"] = round(time.monotonic() - started, 2)
    if run.mode == "ungoverned":  # the wipe took the switches with it: restore them
        run.notes["governance_off_reapplied"] = switch_governance_off(run.etcd, timeout=5.0)


def _hostile_begin(run: Run) -> None:
    run.hostile = OpenLoop(run.stack.gateway_url, HOSTILE_RATE, hostile_order, seed=7).start()


def _hostile_end(run: Run) -> None:
    if run.hostile is not None:
        run.hostile.stop(wait=False)


def _nothing(run: Run) -> None:
    pass


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("payment_slow", "payment answers 2 s late",
                 *_faults("payment", {"*": {"latency_ms": 2000}}), (*MODES, NO_DEFERRAL)),
        Scenario("payment_failing", "payment fails every call (UNAVAILABLE)",
                 *_faults("payment", {"*": {"error_rate": 1.0, "error_code": "UNAVAILABLE"}}),
                 (*MODES, NO_DEFERRAL)),
        Scenario("recommendation_failing", "recommendation fails every call (non-core)",
                 *_faults("recommendation", {"*": {"error_rate": 1.0}})),
        Scenario("inventory_kill", "inventory-1 killed (SIGKILL), down, restarted at the end",
                 _kill_begin, _restart_end("inventory-1")),
        Scenario("payment_sigterm", "payment-1 stopped (SIGTERM, drained), started at the end",
                 _stop_begin("payment-1"), _restart_end("payment-1")),
        Scenario("etcd_stopped", "etcd stopped, started at the end",
                 _stop_begin("etcd"), _restart_end("etcd")),
        Scenario("etcd_wiped", "etcd restarted with its data wiped",
                 _wipe_begin, _nothing),
        Scenario("oversized_fields", f"{HOSTILE_RATE:.0f}/s hostile orders with a 20 KB SKU",
                 _hostile_begin, _hostile_end),
    )
}  # fmt: skip
