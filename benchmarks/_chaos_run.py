"""The chaos benchmark's runs: one scenario x mode on a fresh native stack (warm-up, fault, after,
with the traffic running) and every scenario in every mode, alternating which mode goes first.
``chaos.py`` is the entry point."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from _chaos_report import _fmt, _recovery, chart
from _chaos_scenarios import NO_DEFERRAL, SCENARIOS, Phases, Run, Scenario
from _chaos_stack import (
    INSTANCES,
    etcd_put,
    log,
    order_without_deferral,
    scrape,
    switch_governance_off,
    wait_applied,
)
from _chaos_traffic import OpenLoop, legitimate_order
from chaos_analysis import Record, amplification, status_counts, summarize

from services.stack import NativeStack
from telemetry.control.live_rules import rules_key
from telemetry.discovery.etcd import EtcdClient, EtcdConfig


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
