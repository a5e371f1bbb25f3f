"""Chaos: what the demo shop's customers see when a part of it fails, with the demo's governance
rules (``governed``) and with governance switched off (``ungoverned``), on the native stack.

For each scenario, twice in one run (governed, ungoverned; the order alternates between scenarios so
drift on a shared machine favours neither; the two payment scenarios a third time, ``no_deferral``:
governed, but order's charges not deferred, which shows the breakers' own recovery), a FRESH
native stack (``services/stack.py``: etcd, Prometheus, the span receiver, gateway, order, 2
inventory, 2 payment, recommendation, notification; no load generator, no panel) is started in a
temporary directory. ``ungoverned`` writes ``false`` to ``/governance/<service>/enabled`` for every
service and waits (up to 15 s) until every instance's
``/governance-status/`` shows it applied; ``governed`` runs the rules as shipped
(``services/config/*.yaml``). An open-loop generator in this process then sends ``POST /orders``
at ``--rate`` per second (a send is never delayed by a slow answer; at most 512 requests in flight,
the others counted as failed, "skipped"), ``x-request-timeout-ms: 2000``, 20 users, 1-3 catalogue
SKUs per order. Phases: warm-up (``--warmup``), fault (``--fault``), after (``--after``).

Scenarios (the fault starts at t = 0 and ends at t = fault):

- ``payment_slow``: ``/governance/payment/faults`` = ``{"*": {"latency_ms": 2000}}``, deleted at
  the end (both payment instances answer 2 s late; order gives payment 1.5 s).
- ``payment_failing``: ``{"*": {"error_rate": 1.0, "error_code": "UNAVAILABLE"}}`` on payment.
- ``recommendation_failing``: ``{"*": {"error_rate": 1.0}}`` on recommendation (non-core: orders
  should still be placed, with the default recommendations: "degraded" in the JSON).
- ``inventory_kill``: ``stack.kill("inventory-1")`` (SIGKILL: no deregistration, no drain), at
  once ``stack.stop_process("inventory-1")`` so the supervisor holds it down instead of
  restarting it; at the end ``start_process`` + ``wait_ready``.
- ``payment_sigterm``: ``stack.stop_process("payment-1")`` (SIGTERM: deregisters, drains; held
  down), ``start_process("payment-1")`` at the end.
- ``etcd_stopped``: ``stack.stop_process("etcd")``; ``start_process("etcd")`` at the end.
- ``etcd_wiped``: ``stack.restart_etcd(wipe=True)`` at t = 0 (registrations and rules lost; the
  fault window is the ``--fault`` seconds after it). In ``ungoverned`` the ``enabled: false`` keys
  are written again once etcd is back (an operator restoring the configuration), so the mode stays
  what it says; until the services see them again they may run the rules they started with.
- ``oversized_fields``: during the fault a second open-loop sender posts 20 orders/s whose SKU is
  20 KB long, as user ``mallory``; only the legitimate orders count in the figures, the hostile
  ones' statuses are reported apart (``hostile``).

Figures, per scenario and mode (a request counts by its SEND time; "failed" = any answer but 201,
no answer, or skipped):

- ``failed_during`` / ``sent_during``: orders sent in ``[0, fault)`` that failed.
- ``failed_after`` / ``sent_after``: orders sent in ``[fault, fault + after)`` that failed.
- ``recovery_s``: the smallest t >= 0 such that >= 95% of the orders sent in
  ``[fault + t, fault + t + 5 s)`` succeeded (candidates: t = 0 and each send after the fault's end;
  the window must end before the run does); ``never`` (None) when no such window exists; 0 when
  nothing fails after the fault.
- ``p99_ok_ms``: p99 latency (nearest rank) of the successful orders of the whole run (warm-up
  included); ``p99_ok_during_ms``: of those sent during the fault.
- ``amplification``: downstream calls per upstream request during the fault, read from the
  services' own Prometheus counters (each instance's ``/metrics``, read just before the fault
  starts and at its end, instance by instance: a killed instance adds nothing, a restarted one
  what it counted since): per hop, the calls that REACHED the callee (its
  ``grpc_server_started_total``: ``gateway->order`` PlaceOrder, ``order->inventory`` Reserve,
  ``order->payment`` Charge) over the requests the caller received (gateway: the orders this
  benchmark sent during the fault, hostile ones included -- the gateway's own HTTP histogram counts
  a request when it ends, which lags during a slow fault; order:
  ``grpc_server_started_total{grpc_method="PlaceOrder"}``). A call the caller's breaker refuses
  locally never reaches the callee and is not counted; every retry that goes out is. The table
  shows the largest hop; the JSON has all (None: the caller received nothing). The retry budget
  bounds it by ``1 + ratio`` (0.1) plus its floor (1 retry/s per caller: at 10 orders/s another
  0.1).

How to read it: governance should turn a failing dependency into fast, bounded failures (a low p99
during the fault, amplification near 1) and a quick recovery (the breaker half-opens and closes
again); a non-core failure (recommendation) should cost no orders at all. Compare ``governed``
with ``ungoverned`` on the same row of the comparison lines; the charts
(``benchmarks/chaos/<scenario>.png``) show per 1 s bin the success rate and the p99 latency of the
successful orders, both modes, the fault window shaded, and each mode's recovery point.

    python benchmarks/chaos.py                      # 8 scenarios x 2 modes, about 20 minutes
    python benchmarks/chaos.py --quick              # 3 scenarios, 5/8/12 s phases, about 4 min
    python benchmarks/chaos.py --scenarios payment_slow,etcd_wiped --rate 20

Only 127.0.0.1 is contacted; every stack is stopped (also on Ctrl-C or SIGTERM); a table, one
comparison line per scenario and ONE JSON line are printed to stdout, progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import command_output, emit_json, print_table, sigterm_as_interrupt
from chaos_analysis import (
    NO_ANSWER,
    SKIPPED,
    Bin,
    Record,
    Snapshot,
    amplification,
    bins,
    parse_metrics,
    status_counts,
    summarize,
)

from services.catalog import CATALOG
from services.stack import NativeStack
from telemetry.control.live_rules import read_all_statuses, rules_key
from telemetry.discovery.etcd import EtcdClient, EtcdConfig, EtcdError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODES = ("governed", "ungoverned")
NO_DEFERRAL = "no_deferral"
"""A third mode for the payment scenarios: governed, but order's charges are not deferred (its
``demoshop.v1.Payment/*`` rule keeps only its breaker), so orders fail while payment does and the
breakers' own recovery timeline shows: order's breaker on payment, and the gateway's on order,
which must not be held open by order relaying its breaker's refusals."""
SERVICES = ("gateway", "order", "inventory", "payment", "recommendation", "notification")
INSTANCES = {"inventory": 2, "payment": 2}
HOP_SERVICES = ("gateway", "order", "inventory", "payment")  # whose counters give the amplification
TIMEOUT_MS = 2000
MAX_IN_FLIGHT = 512
USERS = tuple(f"user-{n:03d}" for n in range(20))
HOSTILE_RATE = 20.0
HOSTILE_SKU_BYTES = 20 * 1024
HOSTILE_USER = "mallory"
QUICK_SCENARIOS = ("payment_failing", "inventory_kill", "etcd_wiped")
COLOURS = {"governed": "#1f77b4", "ungoverned": "#d62728", NO_DEFERRAL: "#2a9d8f"}

_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[chaos {time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def instance_names(service: str) -> list[str]:
    """The stack's instance names: one instance keeps the bare name, n > 1 are ``name-1..n``."""
    count = INSTANCES.get(service, 1)
    return [service] if count == 1 else [f"{service}-{i}" for i in range(1, count + 1)]


# -- traffic ----------------------------------------------------------------------------------------

Body = Callable[[random.Random], tuple[str, bytes]]  # rng -> (user, JSON body)


def legitimate_order(rng: random.Random) -> tuple[str, bytes]:
    skus = sorted(CATALOG)
    user = rng.choice(USERS)
    items = [{"sku": sku, "quantity": rng.randint(1, 3)} for sku in rng.sample(skus, rng.randint(1, 3))]
    return user, json.dumps({"user": user, "items": items}).encode()


_HOSTILE_BODY = json.dumps(
    {"user": HOSTILE_USER, "items": [{"sku": "sku-" + "x" * (HOSTILE_SKU_BYTES - 4), "quantity": 1}]}
).encode()


def hostile_order(_rng: random.Random) -> tuple[str, bytes]:
    return HOSTILE_USER, _HOSTILE_BODY


class OpenLoop:
    """Sends ``POST /orders`` at ``rate`` per second on a fixed schedule, whatever the answers do
    (one pool thread per request in flight, at most ``MAX_IN_FLIGHT``); records every request with
    its monotonic send time."""

    def __init__(self, url: str, rate: float, body: Body, seed: int) -> None:
        target = urlsplit(url)
        self._host, self._port = target.hostname or "127.0.0.1", target.port or 80
        self._rate = rate
        self._body = body
        self._rng = random.Random(seed)
        self._pool = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="chaos-load")
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._schedule, name="chaos-schedule", daemon=True)
        self.records: list[Record] = []  # sent: monotonic seconds, until shifted by the caller

    def start(self) -> OpenLoop:
        self._thread.start()
        return self

    def stop(self, wait: bool = True) -> None:
        """Stop sending; with ``wait``, until every request in flight has its answer (each is
        bounded by its socket timeout)."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._pool.shutdown(wait=wait)

    def _schedule(self) -> None:
        interval, next_at = 1.0 / self._rate, time.monotonic()
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            next_at = max(next_at + interval, time.monotonic() - interval)  # late: not made up twice
            user, body = self._body(self._rng)
            if not self._in_flight.acquire(blocking=False):
                self._record(Record(time.monotonic(), 0.0, SKIPPED))
                continue
            try:
                self._pool.submit(self._send, user, body)
            except RuntimeError:  # the pool shut down under us: stopping
                self._in_flight.release()
                return

    def _send(self, user: str, body: bytes) -> None:
        headers = {"x-user": user, "x-request-timeout-ms": str(TIMEOUT_MS),
                   "content-type": "application/json"}  # fmt: skip
        sent = time.monotonic()
        status, degraded = NO_ANSWER, False
        connection = http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT_MS / 1000 + 1)
        try:
            connection.request("POST", "/orders", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            status = response.status
            if status == 201:
                with contextlib.suppress(ValueError, AttributeError):
                    degraded = bool(json.loads(payload).get("recommendations_degraded"))
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
            self._in_flight.release()
        self._record(Record(sent, time.monotonic() - sent, status, degraded))

    def _record(self, record: Record) -> None:
        with self._lock:
            self.records.append(record)

    def shifted(self, origin: float) -> list[Record]:
        """The records with send times relative to ``origin`` (monotonic), by send time."""
        with self._lock:
            records = list(self.records)
        return sorted(
            (Record(r.sent - origin, r.latency, r.status, r.degraded) for r in records),
            key=lambda r: r.sent,
        )


# -- the stack's etcd and metrics -------------------------------------------------------------------


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


# -- scenarios --------------------------------------------------------------------------------------


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


# -- one run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phases:
    warmup: float
    fault: float
    after: float


def sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _timeline(run: Run, scenario: Scenario, phases: Phases, seed: int) -> dict[str, Any]:
    """Warm-up, fault, after, with the traffic running; the figures of the legitimate orders."""
    stack = run.stack
    run.load = OpenLoop(stack.gateway_url, run.rate, legitimate_order, seed).start()
    log(f"  warm-up {phases.warmup:g} s")
    time.sleep(phases.warmup)
    before = scrape(stack)
    origin = time.monotonic()
    log(f"  fault: {scenario.description}")
    scenario.begin(run)
    took = time.monotonic() - origin
    if took > phases.fault:
        log(f"  starting the fault took {took:.1f} s, longer than the fault window")
    sleep_until(origin + phases.fault)
    after = scrape(stack)
    log("  fault over")
    scenario.end(run)
    sleep_until(origin + phases.fault + phases.after)
    run.load.stop()
    if run.hostile is not None:
        run.hostile.stop()
    run.records = run.load.shifted(origin)
    hostile = run.hostile.shifted(origin) if run.hostile is not None else []
    # The gateway's requests between the two scrapes: every order sent during the fault.
    sent = sum(1 for r in (*run.records, *hostile) if 0.0 <= r.sent < phases.fault)
    hops = amplification(before, after, received={"gateway": sent})
    figures = summarize(run.records, phases.fault, phases.fault + phases.after, hops)
    figures["notes"] = run.notes
    if run.hostile is not None:
        figures["hostile"] = {"sent": len(hostile), "statuses": status_counts(hostile)}
    return figures


def run_one(
    scenario: Scenario, mode: str, phases: Phases, rate: float, workdir: Path, seed: int
) -> tuple[dict[str, Any], list[Record]]:
    """One scenario x mode on a fresh stack: its figures and its (fault-relative) records."""
    stack = NativeStack(workdir, loadgen=False, panel=False, standard_ports=False,
                        instances=dict(INSTANCES), otlp_endpoint=None)  # fmt: skip
    run: Run | None = None
    try:
        started = time.monotonic()
        stack.start()
        log(f"  stack up in {time.monotonic() - started:.1f} s ({workdir})")
        run = Run(
            stack, EtcdClient(EtcdConfig(endpoints=(stack.etcd_endpoint,), timeout=2.0)), mode, rate
        )
        if mode == "ungoverned":
            started = time.monotonic()
            run.notes["governance_off_applied"] = switch_governance_off(run.etcd)
            log(f"  governance off in {time.monotonic() - started:.1f} s")
        elif mode == NO_DEFERRAL:
            revision = etcd_put(
                run.etcd, rules_key("order", "client"), json.dumps(order_without_deferral())
            )
            run.notes["no_deferral_applied"] = wait_applied(run.etcd, {"order": revision}, 15.0)
        return _timeline(run, scenario, phases, seed), run.records
    finally:
        if run is not None:
            for generator in (run.load, run.hostile):
                if generator is not None:
                    generator.stop(wait=False)
            run.etcd.close()
        started = time.monotonic()
        stack.stop()
        log(f"  stack stopped in {time.monotonic() - started:.1f} s")


# -- report -----------------------------------------------------------------------------------------


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:g}{unit}" if isinstance(value, float | int) else str(value)


def _recovery(figures: dict[str, Any]) -> str:
    value = figures.get("recovery_s")
    return "never" if value is None else f"{value:g}"


def table_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for name, entry in results.items():
        for mode in entry.get("order", MODES):
            f = entry.get(mode)
            if f is None:
                continue
            if "error" in f:
                rows.append(
                    [name, mode, "error: " + f["error"].splitlines()[0][:60], "", "", "", "", ""]
                )
                continue
            hops = f["amplification_hops"]
            worst = max((h for h in hops if hops[h] is not None), key=lambda h: hops[h], default=None)
            rows.append([
                name, mode, f"{f['failed_during']}/{f['sent_during']}",
                f"{f['failed_after']}/{f['sent_after']}", _recovery(f), _fmt(f["p99_ok_ms"]),
                _fmt(f["p99_ok_during_ms"]),
                "-" if worst is None else f"{hops[worst]:g} ({worst})",
            ])  # fmt: skip
    return rows


def comparison(name: str, entry: dict[str, Any], mode: str = "governed") -> str:
    g, u = entry.get(mode), entry.get("ungoverned")
    if not g or not u or "error" in g or "error" in u:
        return f"{name}: no comparison (a run failed)"
    return (
        f"{name}: {mode} vs ungoverned: failed during {g['failed_during']} vs {u['failed_during']}"
        f" (of {g['sent_during']} / {u['sent_during']}), after {g['failed_after']} vs "
        f"{u['failed_after']}, recovery {_recovery(g)} vs {_recovery(u)} s, p99 during fault "
        f"{_fmt(g['p99_ok_during_ms'])} vs {_fmt(u['p99_ok_during_ms'])} ms, amplification "
        f"{_fmt(g['amplification'])} vs {_fmt(u['amplification'])}"
    )


def chart(
    path: Path, scenario: Scenario, phases: Phases, runs: dict[str, tuple[dict[str, Any], list[Record]]]
) -> None:
    """Success rate and p99 latency per 1 s bin, both modes, the fault window shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(11, 6.5), height_ratios=(1, 1))
    start, end = -phases.warmup, phases.fault + phases.after
    subtitle = []
    for mode in (*MODES, NO_DEFERRAL):
        if mode not in runs:
            continue
        figures, records = runs[mode]
        series: list[Bin] = bins(records, start, end, 1.0)
        xs = [b.start + 0.5 for b in series]
        rates = [None if b.success_rate is None else 100 * b.success_rate for b in series]
        colour = COLOURS[mode]
        top.plot(xs, [float("nan") if r is None else r for r in rates], color=colour, lw=1.6,
                 marker=".", ms=4, label=mode)  # fmt: skip
        bottom.plot(xs, [float("nan") if b.p99_ok_ms is None else b.p99_ok_ms for b in series],
                    color=colour, lw=1.4, marker=".", ms=4, label=mode)  # fmt: skip
        recovery = figures.get("recovery_s")
        if recovery is not None and recovery > 0:
            for axis in (top, bottom):
                axis.axvline(phases.fault + recovery, color=colour, ls="--", lw=1)
        subtitle.append(
            f"{mode}: failed {figures['failed_during']}/{figures['sent_during']} during, "
            f"{figures['failed_after']}/{figures['sent_after']} after, recovery "
            f"{'never' if recovery is None else f'{recovery:g} s'}, "
            f"p99 during {_fmt(figures['p99_ok_during_ms'])} ms, amp {_fmt(figures['amplification'])}"
        )
    for axis in (top, bottom):
        axis.axvspan(0, phases.fault, color="#f4a261", alpha=0.25, lw=0)
        axis.grid(True, alpha=0.3)
    top.text(phases.fault / 2, 103, "fault", ha="center", va="bottom", fontsize=9, color="#b5651d")
    top.set_ylim(-3, 112)
    top.set_ylabel("orders OK per 1 s bin (%)")
    top.axhline(95, color="grey", ls=":", lw=1, label="95% (recovery threshold)")
    top.legend(loc="lower left", fontsize=8)
    bottom.set_yscale("log")
    bottom.axhline(TIMEOUT_MS, color="grey", ls=":", lw=1, label="request timeout")
    bottom.legend(loc="upper left", fontsize=8)
    bottom.set_ylabel("p99 of OK orders (ms, log)")
    bottom.set_xlabel("seconds since the fault started (by send time; dashed: recovered)")
    bottom.set_xlim(start, end)
    fig.suptitle(f"{scenario.name}: {scenario.description}\n" + "\n".join(subtitle), fontsize=9.5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Phases, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help=f"5/8/12 s phases and {', '.join(QUICK_SCENARIOS)}")  # fmt: skip
    parser.add_argument("--scenarios", help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    parser.add_argument("--rate", type=float, default=10.0, help="orders per second (default 10)")
    parser.add_argument("--warmup", type=float, help="seconds (default 10; --quick 5)")
    parser.add_argument("--fault", type=float, help="seconds (default 20; --quick 8)")
    parser.add_argument("--after", type=float, help="seconds (default 30; --quick 12)")
    parser.add_argument("--out", type=Path, default=HERE / "chaos", help="where the charts go")
    parser.add_argument("--keep", action="store_true", help="keep the stacks' work directories")
    args = parser.parse_args(argv)
    default = (5.0, 8.0, 12.0) if args.quick else (10.0, 20.0, 30.0)
    phases = Phases(
        args.warmup if args.warmup is not None else default[0],
        args.fault if args.fault is not None else default[1],
        args.after if args.after is not None else default[2],
    )
    if args.rate <= 0 or min(phases.warmup, phases.fault, phases.after) <= 0:
        parser.error("--rate and the phases must be > 0")
    if not args.scenarios:
        return args, phases, list(QUICK_SCENARIOS if args.quick else SCENARIOS)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        parser.error(f"unknown scenarios {unknown} (known: {', '.join(SCENARIOS)})")
    return args, phases, names


def run_all(
    names: list[str], phases: Phases, rate: float, root: Path, out: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, str], bool]:
    """Every scenario, both modes (alternating which goes first); results, charts, any failure."""
    results: dict[str, dict[str, Any]] = {}
    charts: dict[str, str] = {}
    failed = False
    for index, name in enumerate(names):
        scenario = SCENARIOS[name]
        order = scenario.modes if index % 2 == 0 else scenario.modes[::-1]
        entry: dict[str, Any] = {"description": scenario.description, "order": list(order)}
        runs: dict[str, tuple[dict[str, Any], list[Record]]] = {}
        for mode in order:
            log(f"{name} ({index + 1}/{len(names)}), {mode}")
            try:
                figures, records = run_one(scenario, mode, phases, rate, root / f"{name}-{mode}", index)
            except Exception as exc:
                failed = True
                log(f"  FAILED: {type(exc).__name__}: {exc}")
                entry[mode] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            entry[mode] = figures
            runs[mode] = (figures, records)
            log(f"  failed during {figures['failed_during']}/{figures['sent_during']}, after "
                f"{figures['failed_after']}/{figures['sent_after']}, recovery {_recovery(figures)}, "
                f"amplification {_fmt(figures['amplification'])}")  # fmt: skip
        results[name] = entry
        if runs:
            path = out / f"{name}.png"
            chart(path, scenario, phases, runs)
            charts[name] = str(path)
            log(f"  chart: {path}")
    return results, charts, failed


def main(argv: list[str] | None = None) -> int:
    args, phases, names = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="chaos-"))
    per_run = phases.warmup + phases.fault + phases.after + 30
    log(f"{len(names)} scenarios x 2 modes, about {len(names) * 2 * per_run / 60:.0f} min; "
        f"work directories under {root}")  # fmt: skip
    failed = True
    try:
        with sigterm_as_interrupt():
            results, charts, failed = run_all(names, phases, args.rate, root, args.out)
    finally:
        if args.keep or failed:
            log(f"work directories (logs) kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_table(
        f"Chaos on the native demo stack: {args.rate:g} orders/s open loop, timeout {TIMEOUT_MS} ms, "
        f"warm-up {phases.warmup:g} s, fault {phases.fault:g} s, after {phases.after:g} s",
        ["scenario", "mode", "failed during", "failed after", "recovery s", "p99 ok ms",
         "p99 during ms", "amplification (max hop)"],
        table_rows(results),
    )  # fmt: skip
    print()
    for name, entry in results.items():
        print(comparison(name, entry))
        if NO_DEFERRAL in entry:
            print(comparison(name, entry, NO_DEFERRAL))
    emit_json({
        "benchmark": "chaos",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": command_output(["git", "rev-parse", "--short", "HEAD"]),
        "nproc": int(command_output(["nproc"]) or os.cpu_count() or 0),
        "parameters": {
            "rate": args.rate, "warmup_s": phases.warmup, "fault_s": phases.fault,
            "after_s": phases.after, "timeout_ms": TIMEOUT_MS, "max_in_flight": MAX_IN_FLIGHT,
            "recovery_window_s": 5.0, "recovery_threshold": 0.95, "instances": INSTANCES,
            "hostile_rate": HOSTILE_RATE, "hostile_sku_bytes": HOSTILE_SKU_BYTES,
            "quick": args.quick, "scenarios": names,
        },
        "scenarios": results,
        "charts": charts,
    })  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
