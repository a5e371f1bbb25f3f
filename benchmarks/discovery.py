"""Discovery against a real etcd: how fast the registry's view follows reality.

Starts a throwaway etcd (Debian ``etcd-server``) on a free loopback port and real gRPC servers on
loopback, then measures:

- kill -> removal: an instance process registered with a TTL is killed with SIGKILL (no
  deregistration); time until a client's directory no longer lists it. Target <= TTL + 1 s.
- registration -> first call: a client calls the service continuously through a ServiceChannel
  (round robin); a new instance registers; time until it serves its first call. Target <= 1 s.
- rule write -> applied: 5 instances (each its own etcd client, watch and Governance) follow
  ``/governance/<service>/``; a changed rule is written; time until all 5 have it in force, p50 and
  p99 over repeated writes. Target p99 <= 500 ms.
- etcd outage: the client keeps calling two known instances while etcd is down; the share of calls
  that succeed. Target 100%.

    python benchmarks/discovery.py           # about 30 s
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_json, print_table, stubs_dir, wait_true

from telemetry.control.live_rules import LiveRules, rules_key
from telemetry.discovery.balancer import build_balancer
from telemetry.discovery.directory import ServiceDirectory
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.discovery.instance import Instance
from telemetry.discovery.registry import Registration
from telemetry.discovery.service_channel import ServiceChannel
from telemetry.governance.engine import Governance
from telemetry.testing.callers import BackgroundCaller
from telemetry.testing.etcd_server import EtcdServer

TTL = 3


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Backend:
    """A real loopback gRPC server that records when it served its first call."""

    def __init__(self, bench_pb2: Any, bench_pb2_grpc: Any) -> None:
        backend = self
        self.first_call: float | None = None
        self.calls = 0

        class Service(bench_pb2_grpc.BenchServicer):
            def Ping(self, request: Any, context: Any) -> Any:  # noqa: N802
                if backend.first_call is None:
                    backend.first_call = time.monotonic()
                backend.calls += 1
                return bench_pb2.Payload(number=request.number)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        bench_pb2_grpc.add_BenchServicer_to_server(Service(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(None)


def measure_kill_to_removal(etcd: EtcdServer, directory: ServiceDirectory, runs: int) -> list[float]:
    script = (
        "import time\n"
        "from telemetry.discovery.etcd import EtcdClient, EtcdConfig\n"
        "from telemetry.discovery.instance import Instance\n"
        "from telemetry.discovery.registry import Registration\n"
        f"c = EtcdClient(EtcdConfig(endpoints=({etcd.endpoint!r},)))\n"
        "r = Registration(c, Instance(service='victim', id='v', address='127.0.0.1:1'), "
        f"ttl={TTL}).start()\n"
        "r.wait_registered(10); print('registered', flush=True); time.sleep(120)\n"
    )
    times = []
    for _ in range(runs):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "registered"
            wait_true(lambda: directory.instances("victim"), 10, "victim registered")
            killed = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            gone = wait_true(lambda: not directory.instances("victim"), TTL + 10, "victim removed")
            times.append(gone - killed)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    return times


def measure_registration_to_first_call(
    client: EtcdClient, stubs: tuple[Any, Any], runs: int
) -> list[float]:
    bench_pb2, bench_pb2_grpc = stubs
    times = []
    for i in range(runs):
        backend = Backend(bench_pb2, bench_pb2_grpc)
        instance = Instance(service="shop", id=f"new{i}", address=backend.address)
        registration = Registration(client, instance, ttl=TTL).start()
        try:
            registration.wait_registered(10)
            registered = time.monotonic()
            wait_true(lambda b=backend: b.first_call is not None, 10, "first call")
            assert backend.first_call is not None
            times.append(max(0.0, backend.first_call - registered))
        finally:
            registration.deregister()
            backend.stop()
    return times


def measure_rule_propagation(etcd: EtcdServer, writes: int, instances: int = 5) -> list[float]:
    followers = []
    for i in range(instances):
        client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
        governance = Governance()
        live = LiveRules(client, governance, service="rules", instance_id=f"i{i}").start()
        followers.append((client, governance, live))
    writer = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
    times = []
    try:
        for _, _, live in followers:
            live.wait_ready(10)
        for n in range(writes):
            limit = 100 + n
            doc = {"methods": {"*": {"rate_limit": {"limit": limit}}}}

            def applied(lim: int = limit) -> bool:
                for _, gov, _ in followers:
                    rule = gov.rules.server.methods.get("*")
                    if rule is None or rule.rate_limit is None or rule.rate_limit.limit != lim:
                        return False
                return True

            written = time.monotonic()
            writer.put(rules_key("rules", "server"), json.dumps(doc))
            times.append(wait_true(applied, 10, "rule applied everywhere") - written)
    finally:
        for client, _, live in followers:
            live.stop()
            client.close()
        writer.close()
    return times


def measure_outage(etcd: EtcdServer, caller: BackgroundCaller, seconds: float) -> tuple[int, int]:
    """Calls that succeed and fail while etcd is down for ``seconds`` (a measuring window)."""
    etcd.stop()
    try:
        caller.reset()
        time.sleep(seconds)
        return caller.ok, len(caller.failed)
    finally:
        etcd.start()


def run(runs: int, writes: int, outage: float) -> dict[str, Any]:
    stubs_dir()
    import bench_pb2
    import bench_pb2_grpc

    with EtcdServer() as etcd:
        client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
        directory = ServiceDirectory(client).start()
        directory.wait_synced(10)
        kill = measure_kill_to_removal(etcd, directory, runs)

        base = [Backend(bench_pb2, bench_pb2_grpc) for _ in range(2)]
        registrations = [
            Registration(
                client, Instance(service="shop", id=f"base{i}", address=b.address), ttl=TTL
            ).start()
            for i, b in enumerate(base)
        ]
        for registration in registrations:
            registration.wait_registered(10)
        wait_true(lambda: len(directory.instances("shop")) == 2, 10, "base instances")
        channel = ServiceChannel(
            service="shop", source=directory, make_channel=grpc.insecure_channel,
            balancer=build_balancer("round_robin"),
        )  # fmt: skip
        stub, request = bench_pb2_grpc.BenchStub(channel), bench_pb2.Payload(number=1)
        caller = BackgroundCaller(lambda: stub.Ping(request, timeout=1), pause=0.002)
        try:
            first_call = measure_registration_to_first_call(client, (bench_pb2, bench_pb2_grpc), runs)
            ok, failed = measure_outage(etcd, caller, outage)
        finally:
            caller.stop()
            channel.close()
        propagation = measure_rule_propagation(etcd, writes)
        for registration in registrations:
            registration.deregister()
        for backend in base:
            backend.stop()
        directory.stop()
        client.close()
    return {
        "ttl_seconds": TTL,
        "kill_to_removal_seconds": kill,
        "registration_to_first_call_seconds": first_call,
        "rule_propagation_seconds": propagation,
        "outage_calls": {"ok": ok, "failed": failed},
    }


def report(figures: dict[str, Any]) -> None:
    kill = figures["kill_to_removal_seconds"]
    first = figures["registration_to_first_call_seconds"]
    rules = figures["rule_propagation_seconds"]
    outage = figures["outage_calls"]
    total = outage["ok"] + outage["failed"]
    success = outage["ok"] / total if total else 0.0
    targets = {
        "kill_to_removal": max(kill) <= TTL + 1,
        "registration_to_first_call": max(first) <= 1.0,
        "rule_propagation_p99": _percentile(rules, 0.99) <= 0.5,
        "outage_success": success == 1.0,
    }

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.0f}"

    print(f"Discovery against a real etcd (loopback); TTL {TTL} s; 5 instances follow the rules")
    print_table(
        "Figures",
        ["measure", "runs", "p50 ms", "p99/max ms", "target", "met"],
        [
            ["kill -9 -> removed from clients", len(kill), ms(_percentile(kill, 0.5)), ms(max(kill)),
             f"<= {(TTL + 1) * 1000} ms", targets["kill_to_removal"]],
            ["registration -> first call", len(first), ms(_percentile(first, 0.5)), ms(max(first)),
             "<= 1000 ms", targets["registration_to_first_call"]],
            ["rule write -> applied on all 5", len(rules), ms(_percentile(rules, 0.5)),
             ms(_percentile(rules, 0.99)), "p99 <= 500 ms", targets["rule_propagation_p99"]],
            ["calls during etcd outage", total, "", "", "100% succeed",
             f"{success * 100:.2f}% {targets['outage_success']}"],
        ],
    )  # fmt: skip
    figures["outage_success_share"] = success
    figures["targets_met"] = targets
    emit_json({"benchmark": "discovery", **figures})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="kills and registrations")
    parser.add_argument("--writes", type=int, default=50, help="rule writes")
    parser.add_argument("--outage-seconds", type=float, default=3.0)
    args = parser.parse_args()
    report(run(args.runs, args.writes, args.outage_seconds))


if __name__ == "__main__":
    main()
