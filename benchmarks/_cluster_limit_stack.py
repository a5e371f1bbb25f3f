"""The cluster limit in the running demo stack: three inventory processes registered in etcd, one
cluster limit written as a live rule (``/governance/inventory/cluster``), and traffic skewed
80/10/10 sent straight to each instance's gRPC port (GetStock), paced, at ``offered`` x the limit.

Phases: ``redis`` (the stack's redis-server, every instance taking tokens from one bucket),
``redis_down`` (the same processes after Redis is stopped: each falls back to its even share) and
``split`` (a second stack started without Redis: today's even split). Admitted calls (OK) and
refusals (RESOURCE_EXHAUSTED) are counted after a warm-up that spends the bucket's burst, so the
rate is the steady one. ``cluster_limit.py`` is the entry point.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc

from services.protos import demoshop_pb2, demoshop_pb2_grpc
from services.stack import NativeStack
from telemetry.control.live_rules import rules_key
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.panel.control_plane import ControlPlane, Rollout
from telemetry.testing._poll import poll

SERVICE = "inventory"
INSTANCES = 3


def _wait_rules(plane: ControlPlane, revision: int, timeout: float = 30.0) -> Rollout:
    """The rollout of ``revision`` once every inventory instance has applied it."""
    return poll(
        lambda: plane.rollout(SERVICE, revision),
        lambda rollout: rollout.done and len(rollout.instances) == INSTANCES,
        timeout, f"rules applied on {INSTANCES} {SERVICE} instances", interval=0.2,
    )  # fmt: skip


def _modes(plane: ControlPlane, revision: int) -> list[str]:
    """Where each instance's cluster limits count (``none``: no Redis configured)."""
    return sorted(i.cluster_mode or "none" for i in plane.rollout(SERVICE, revision).instances)


def _sender(
    target: str, rate: float, start: float, warm: float, end: float, counts: Counter[str]
) -> None:
    """Calls ``target`` at ``rate``/s from ``start`` (open loop: a late call goes at once) until
    ``end``, counting the codes of calls sent after ``warm``."""
    request = demoshop_pb2.GetStockRequest(sku="sku-mug")
    with grpc.insecure_channel(target) as channel:
        stub = demoshop_pb2_grpc.InventoryStub(channel)  # type: ignore[no-untyped-call]
        sent = 0
        while True:
            due = start + sent / rate
            if due >= end:
                return
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sent += 1
            try:
                stub.GetStock(request, timeout=1.0)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            if due >= warm:
                counts[code] += 1


def offer(targets: list[str], limit: float, offered: float, skew: tuple[float, ...],
          warmup: float, seconds: float) -> dict[str, Any]:  # fmt: skip
    """Admitted calls per second per instance (and in all) over ``seconds`` after ``warmup``."""
    start = time.monotonic() + 0.2
    warm, end = start + warmup, start + warmup + seconds
    counts: list[Counter[str]] = [Counter() for _ in targets]
    threads = [
        threading.Thread(target=_sender, args=(t, offered * limit * share, start, warm, end, c))
        for t, share, c in zip(targets, skew, counts, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    admitted = [c["OK"] / seconds for c in counts]
    return {
        "admitted_per_s": sum(admitted),
        "per_instance_per_s": [round(a, 1) for a in admitted],
        "of_limit": sum(admitted) / limit,
        "codes": dict(sum(counts, Counter())),
    }


def _stack_phase(redis: bool, limit: float, burst: int, offered: float, skew: tuple[float, ...],
                 warmup: float, seconds: float) -> dict[str, dict[str, Any]]:  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="cluster-limit-stack-"))
    stack = NativeStack(workdir, loadgen=False, panel=False, standard_ports=False,
                        instances={SERVICE: INSTANCES}, redis=redis)  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    with stack:
        client = EtcdClient(EtcdConfig(endpoints=(stack.etcd_endpoint,), timeout=2.0))
        plane = ControlPlane(client)
        try:
            # Only the cluster limit decides: inventory's own GetStock limit (per user) and its
            # CPU-driven adaptive limiter are taken out for the run.
            client.put(rules_key(SERVICE, "server"), json.dumps({"methods": {}}))
            client.put(rules_key(SERVICE, "adaptive"), json.dumps({"enabled": False}))
            rule = {"*": {"limit": limit, "burst": burst}}
            revision = client.put(rules_key(SERVICE, "cluster"), json.dumps(rule))
            _wait_rules(plane, revision)
            targets = [f"127.0.0.1:{stack.ports[f'{SERVICE}-{i}']}" for i in range(1, INSTANCES + 1)]
            phase = "redis" if redis else "split"
            results[phase] = offer(targets, limit, offered, skew, warmup, seconds)
            results[phase]["modes"] = _modes(plane, revision)
            if redis:
                stack.stop_process("redis")
                results["redis_down"] = offer(targets, limit, offered, skew, warmup, seconds)
                results["redis_down"]["modes"] = _modes(plane, revision)
        finally:
            client.close()
    return results


def stack_phases(limit: float, burst: int, offered: float, skew: tuple[float, ...],
                 warmup: float, seconds: float) -> dict[str, dict[str, Any]]:  # fmt: skip
    """``redis``, ``redis_down`` and ``split`` on the demo stack, each with its bound: the limit
    (redis), the offered rate capped by each instance's even share (split, redis down)."""
    results = {
        **_stack_phase(True, limit, burst, offered, skew, warmup, seconds),
        **_stack_phase(False, limit, burst, offered, skew, warmup, seconds),
    }
    share = limit / INSTANCES
    split_bound = sum(min(offered * limit * s, share) for s in skew)
    for mode, result in results.items():
        bound = limit if mode == "redis" else split_bound
        result["bound_per_s"] = bound
        result["of_bound"] = result["admitted_per_s"] / bound
        result["burst_share"] = burst if mode == "redis" else math.ceil(burst / INSTANCES)
    return results
