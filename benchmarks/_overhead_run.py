"""The overhead benchmark's run: CPU placement, one server and client process pair per mode, and the
interleaved slices (bare, mode, bare, mode ...) sampled against their bare neighbours.
``overhead.py`` is the entry point."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from _common import SpanSink, spawn, stop
from _overhead_modes import CONCURRENCY, RUNTIMES

from telemetry.testing import free_port

SCRIPT = str(Path(__file__).resolve().parent / "overhead.py")
"""What each pair's processes run (``overhead.py serve ...`` and ``overhead.py client ...``)."""


def pin_to(cpu: int) -> None:
    """Run this process on one CPU (-1: anywhere); called first, so every thread started later
    inherits it."""
    if cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def cpus_for_pairs(pin: bool) -> tuple[int, int]:
    """(server CPU, client CPU): two distinct CPUs this process may use, or (-1, -1)."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return -1, -1
    usable = sorted(os.sched_getaffinity(0))
    return (usable[0], usable[1]) if len(usable) >= 2 else (-1, -1)


# -- the run ----------------------------------------------------------------------------------------


class Pair:
    """One mode's server and client processes for one runtime, kept up for the whole run."""

    def __init__(
        self, runtime: str, mode: str, endpoint: str, log_path: str, cpus: tuple[int, int]
    ) -> None:
        port = free_port()
        self.server = spawn([SCRIPT, "serve", runtime, mode, str(port), endpoint, log_path,
                             f"--cpu={cpus[0]}"], ready_line="READY")  # fmt: skip
        self.client = spawn(
            [SCRIPT, "client", runtime, mode, f"127.0.0.1:{port}", endpoint, log_path,
             str(self.server.pid), f"--cpu={cpus[1]}"],
            ready_line="READY",
            stdin=True,
        )  # fmt: skip

    def slice(self, kind: str, concurrency: int, seconds: float) -> dict[str, float]:
        assert self.client.stdin is not None and self.client.stdout is not None
        self.client.stdin.write(f"run {kind} {concurrency} {seconds}\n")
        self.client.stdin.flush()
        line = self.client.stdout.readline()
        if not line:
            raise RuntimeError("benchmark client exited")
        return dict(json.loads(line))

    def close(self) -> None:
        if self.client.stdin is not None:
            self.client.stdin.write("quit\n")
            self.client.stdin.close()
        stop(self.client)
        stop(self.server)


Sample = tuple[dict[str, float], dict[str, float]]  # (a mode slice, the mean of its bare neighbours)
Samples = dict[tuple[str, str, int], list[Sample]]  # (workload, mode, concurrency) -> samples


Pairs = dict[tuple[str, str], list[Pair]]  # (runtime, mode) -> its process pairs


def run(
    slices: int,
    seconds: float,
    modes: tuple[str, ...],
    workloads: tuple[str, ...],
    pair_count: int,
    cpus: tuple[int, int],
) -> dict[str, Any]:
    sink = SpanSink()
    dead = f"http://127.0.0.1:{free_port()}"
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    others = [m for m in modes if m != "bare"]
    runtimes = sorted({w.split("_", 1)[0] for w in workloads}, key=RUNTIMES.index)
    pairs: Pairs = {}
    samples: Samples = {(w, m, c): [] for w in workloads for m in others for c in CONCURRENCY}
    try:
        for runtime in runtimes:
            for mode in modes:  # filled as they start: the finally stops every one started
                endpoint = dead if mode == "full_dead" else sink.endpoint
                log_path = str(logs / f"{runtime}-{mode}.log")
                pairs[(runtime, mode)] = [Pair(runtime, mode, endpoint, log_path, cpus)
                                          for _ in range(pair_count)]  # fmt: skip
        for workload in workloads:
            for concurrency in CONCURRENCY:
                _measure(pairs, samples, workload, concurrency, modes=modes, slices=slices,
                         seconds=seconds, pair_count=pair_count)  # fmt: skip
                print(f"{workload} c={concurrency}: {slices} slices per mode done", flush=True)
    finally:
        for mode_pairs in pairs.values():
            for pair in mode_pairs:
                pair.close()
        sink.server.stop(None)
    log_lines = sum(1 for p in logs.glob("*-full.log") for _ in p.open())
    shutil.rmtree(logs, ignore_errors=True)
    return {"samples": samples, "sink_batches": sink.batches, "full_log_lines": log_lines}


def _measure(
    pairs: Pairs,
    samples: Samples,
    workload: str,
    concurrency: int,
    *,
    modes: tuple[str, ...],
    slices: int,
    seconds: float,
    pair_count: int,
) -> None:
    """One workload at one concurrency: every pair warmed, then ``slices`` rounds of bare, mode,
    bare, mode ... (the modes' order reversed every other round), each mode's slice sampled with
    the mean of the bare slices either side of it, so slow drift cancels."""
    runtime, kind = workload.split("_", 1)
    others = [m for m in modes if m != "bare"]
    for mode in modes:  # warm every pair on this workload and concurrency
        for pair in pairs[(runtime, mode)]:
            pair.slice(kind, concurrency, 0.3)
    for index in range(slices):
        order = others if index % 2 == 0 else list(reversed(others))
        bare_pair = pairs[(runtime, "bare")][index % pair_count]
        before = bare_pair.slice(kind, concurrency, seconds)
        for mode in order:
            figures = pairs[(runtime, mode)][index % pair_count].slice(kind, concurrency, seconds)
            after = bare_pair.slice(kind, concurrency, seconds)
            bare = {k: (before[k] + after[k]) / 2 for k in before}
            samples[(workload, mode, concurrency)].append((figures, bare))
            before = after
