"""Losing the etcd leader: calls through discovery and live rules while a 3-member etcd fails over.

Each round starts a real 3-member etcd cluster on loopback (telemetry.testing.etcd_cluster: 50 ms
heartbeats, 500 ms election timeout), two Bench servers and one caller, each a Telemetry handle
with etcd (registration, discovery, live rules) whose client calls the leader first, so the loss
hits every process at once. The caller calls the servers through discovery continuously (a
ServiceChannel, p2c); then the leader is killed (SIGKILL), a governance rule is written at once by
a client that also called the leader, and the time until both servers have it in force is taken;
calls go on for another second; the member is restarted and rejoins. Figures:

- failed calls from the kill to a second after the rule is in force (target 0);
- rule write (issued right at the kill) -> in force on both servers, p50 / max (target <= 1 s);
  also from the moment the write returned (the election is in the first figure, not in this one);
- etcd member switches of the clients (each process's client fails over to a live member);
- the killed member restarted -> healthy again.

    python benchmarks/etcd_failover.py            # 10 rounds, about 40 s
    python benchmarks/etcd_failover.py --quick    # 3 rounds
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_json, median, print_table, stubs_dir, wait_true

import telemetry
from telemetry.control.live_rules import rules_key
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.testing.callers import BackgroundCaller
from telemetry.testing.etcd_cluster import EtcdCluster

SERVICE = "bench"
AFTER = 1.0  # seconds of calls after the rule is in force


def _handle(name: str, instance_id: str, etcd: EtcdConfig) -> telemetry.Telemetry:
    config = telemetry.TelemetryConfig(
        service_name=name, tracing_enabled=False, metrics_port=None, access_log=False,
        log_level="warning", log_stream=io.StringIO(),
    )  # fmt: skip
    return telemetry.Telemetry(
        config, registry=CollectorRegistry(), governance={}, etcd=etcd, instance_id=instance_id
    )


class Server:
    """A Bench server on loopback, registered and following live rules through etcd."""

    def __init__(self, bench_pb2: Any, bench_pb2_grpc: Any, instance_id: str, etcd: EtcdConfig) -> None:
        class Service(bench_pb2_grpc.BenchServicer):
            def Ping(self, request: Any, context: Any) -> Any:  # noqa: N802
                return bench_pb2.Payload(number=request.number)

        self.tel = _handle(SERVICE, instance_id, etcd)
        self.server = self.tel.server(max_workers=4)
        bench_pb2_grpc.add_BenchServicer_to_server(Service(), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.tel.register(f"127.0.0.1:{port}", ttl=3)

    def limit(self) -> float | None:
        governance = self.tel.governance
        rule = governance.rules.server.methods.get("*") if governance else None
        return rule.rate_limit.limit if rule is not None and rule.rate_limit is not None else None

    def close(self) -> None:
        self.server.stop(None)
        self.tel.shutdown()


def one_round(stubs: tuple[Any, Any], number: int) -> dict[str, Any]:
    with EtcdCluster() as cluster:
        leader = cluster.leader()
        etcd = EtcdConfig(endpoints=cluster.endpoints_from(leader))
        servers = [Server(*stubs, f"s{i}", etcd) for i in range(2)]
        caller_tel = _handle("caller", "c", etcd)
        writer = EtcdClient(etcd)
        caller: BackgroundCaller | None = None
        try:
            discovery = caller_tel.discovery
            assert discovery is not None
            wait_true(lambda: len(discovery.directory.instances(SERVICE)) == 2, 10, "both servers seen")
            stub, request = stubs[1].BenchStub(caller_tel.channel(SERVICE)), stubs[0].Payload(number=1)
            caller = BackgroundCaller(lambda: stub.Ping(request, timeout=2))
            wait_true(lambda: caller is not None and caller.ok >= 50, 10, "calls flowing")
            ok_before = caller.ok

            cluster.stop_member(leader)
            killed = time.monotonic()
            limit = 100_000 + number  # a rule no call runs into, new each round
            rule = {"methods": {"*": {"rate_limit": {"limit": limit}}}}
            writer.put(rules_key(SERVICE, "server"), json.dumps(rule))
            written = time.monotonic()
            applied = wait_true(lambda: all(s.limit() == limit for s in servers), 10, "rule in force")
            time.sleep(AFTER)  # a measuring window: calls keep flowing after the rule change
            caller.stop()
            calls = caller.ok - ok_before + len(caller.failed)

            restarting = time.monotonic()
            cluster.restart_member(leader)
            rejoined = time.monotonic()
            clients = [discovery.client, writer]
            clients += [s.tel.discovery.client for s in servers if s.tel.discovery is not None]
            dead = cluster.members[leader].endpoint
            return {
                "calls": calls,
                "failed": len(caller.failed),
                "failures": caller.failed[:5],
                "kill_to_applied_seconds": applied - killed,
                "write_to_applied_seconds": applied - written,
                "write_seconds": written - killed,
                "caller_switches": discovery.client.failovers,
                "caller_left_dead_member": discovery.client.current_endpoint != dead,
                "switches_all_clients": sum(c.failovers for c in clients),
                "restart_to_healthy_seconds": rejoined - restarting,
            }
        finally:
            if caller is not None:
                caller.stop()
            writer.close()
            for server in servers:
                server.close()
            caller_tel.shutdown()


def report(rounds: list[dict[str, Any]]) -> None:
    kill = [r["kill_to_applied_seconds"] for r in rounds]
    write = [r["write_to_applied_seconds"] for r in rounds]
    rejoin = [r["restart_to_healthy_seconds"] for r in rounds]
    failed = sum(r["failed"] for r in rounds)
    calls = sum(r["calls"] for r in rounds)
    targets = {"failed_calls": failed == 0, "kill_to_applied_max": max(kill) <= 1.0}

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.0f}"

    print(
        "Losing the etcd leader of a 3-member cluster (loopback, election timeout 500 ms), "
        f"{len(rounds)} rounds"
    )
    print_table(
        "Per round",
        ["round", "calls", "failed", "kill->applied ms", "write returned->applied ms",
         "caller switches", "all clients' switches", "member rejoined ms"],
        [[i + 1, r["calls"], r["failed"], ms(r["kill_to_applied_seconds"]),
          ms(r["write_to_applied_seconds"]), r["caller_switches"], r["switches_all_clients"],
          ms(r["restart_to_healthy_seconds"])] for i, r in enumerate(rounds)],
    )  # fmt: skip
    print_table(
        "Figures",
        ["measure", "p50", "max", "target", "met"],
        [
            ["failed calls (all rounds)", "", f"{failed} of {calls}", "0", targets["failed_calls"]],
            ["rule written at the kill -> in force on both servers", f"{ms(median(kill))} ms",
             f"{ms(max(kill))} ms", "<= 1000 ms", targets["kill_to_applied_max"]],
            ["rule write returned -> in force", f"{ms(median(write))} ms", f"{ms(max(write))} ms",
             "", ""],
            ["killed member restarted -> healthy", f"{ms(median(rejoin))} ms",
             f"{ms(max(rejoin))} ms", "", ""],
        ],
    )  # fmt: skip
    emit_json({
        "benchmark": "etcd_failover",
        "rounds": len(rounds),
        "calls": calls,
        "failed_calls": failed,
        "kill_to_applied_seconds": {"p50": median(kill), "max": max(kill)},
        "write_to_applied_seconds": {"p50": median(write), "max": max(write)},
        "caller_switches": [r["caller_switches"] for r in rounds],
        "switches_all_clients": [r["switches_all_clients"] for r in rounds],
        "restart_to_healthy_seconds": {"p50": median(rejoin), "max": max(rejoin)},
        "targets_met": targets,
    })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, help="rounds (default 10; --quick 3)")
    parser.add_argument("--quick", action="store_true", help="a short run: 3 rounds")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 10)
    stubs_dir()
    import bench_pb2
    import bench_pb2_grpc

    report([one_round((bench_pb2, bench_pb2_grpc), n) for n in range(rounds)])


if __name__ == "__main__":
    main()
