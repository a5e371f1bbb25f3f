"""Live governance rules against a real etcd, on real loopback servers: rules written to etcd reach
every instance's Governance through its LiveRules watcher, each instance reports what it did under
/governance-status/, invalid or hostile rules are refused with the field named while the previous
ones stay, sections override the whole document, an etcd outage changes nothing and the watch
resumes after it, and cluster-wide limits are split across the live instances.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from helpers import wait_until

from live_rules.support import (
    APPLY_WITHIN,
    ECHO,
    LIMIT_50,
    StartLive,
    etcd_client,
    put,
    server_limit,
    status,
    wait_status,
)
from telemetry.control import LiveRules, read_statuses, rules_key
from telemetry.discovery.etcd import EtcdClient, EtcdError
from telemetry.governance import Governance
from telemetry.testing.etcd_server import EtcdServer

# -- rules ----------------------------------------------------------------------------------------


def test_a_rule_written_to_etcd_is_applied_and_reported(
    client: EtcdClient, live: StartLive, service: str
) -> None:
    gov = Governance()
    live(gov, service)
    first = status(client, service)
    assert first is not None and first["state"] == "applied" and first["error"] is None

    before = time.time()
    revision = put(client, service, "server", LIMIT_50)
    wait_until(lambda: server_limit(gov) == 50, APPLY_WITHIN, "limit 50 in force")

    reported = wait_status(client, service, revision, "applied")
    assert reported["generation"] == gov.generation
    assert reported["error"] is None
    assert before - 1 <= reported["applied_at"] <= time.time() + 1


def test_two_instances_both_apply_and_report(client: EtcdClient, live: StartLive, service: str) -> None:
    gov_a, gov_b = Governance(), Governance()
    live(gov_a, service, "a")
    live(gov_b, service, "b")

    revision = put(client, service, "server", LIMIT_50)
    wait_until(
        lambda: server_limit(gov_a) == 50 and server_limit(gov_b) == 50, APPLY_WITHIN, "both apply"
    )
    wait_status(client, service, revision, "applied", "a")
    wait_status(client, service, revision, "applied", "b")
    statuses = read_statuses(client, service)
    assert set(statuses) == {"a", "b"}
    assert {s["revision"] for s in statuses.values()} == {revision}


def test_an_invalid_rule_is_refused_and_the_previous_rules_stay(
    client: EtcdClient, live: StartLive, service: str
) -> None:
    gov = Governance()
    live(gov, service)
    good = put(client, service, "server", LIMIT_50)
    applied = wait_status(client, service, good, "applied")
    generation = gov.generation

    bad = put(client, service, "server", {"methods": {"*": {"rate_limit": {"limit": 0}}}})
    rejected = wait_status(client, service, bad, "rejected")
    assert rejected["error"].startswith("rules.server.methods['*'].rate_limit.limit: must be > 0")
    assert rejected["applied_at"] == applied["applied_at"]
    assert rejected["generation"] == generation == gov.generation
    assert server_limit(gov) == 50

    not_json = client.put(rules_key(service, "adaptive"), "{enabled: true")
    rejected = wait_status(client, service, not_json, "rejected")
    assert rejected["error"].startswith(f"rules.adaptive: not valid JSON in /governance/{service}/")
    fixed = put(client, service, "server", {"methods": {"*": {"rate_limit": {"limit": 7}}}})
    rejected = wait_status(client, service, fixed, "rejected")  # the document is one whole
    assert rejected["error"].startswith("rules.adaptive: not valid JSON")

    unknown = client.put(f"/governance/{service}/adaptiv", "{}")
    client.delete(rules_key(service, "adaptive"))
    rejected = wait_status(client, service, unknown + 1, "rejected")  # after the delete
    assert rejected["error"].startswith(f"/governance/{service}/adaptiv: unknown governance key")
    assert server_limit(gov) == 50 and gov.generation == generation

    client.delete(f"/governance/{service}/adaptiv")
    wait_until(
        lambda: server_limit(gov) == 7 and (s := status(client, service)) and s["state"] == "applied",
        APPLY_WITHIN,
        "the fixed rules in force and reported",
    )


def test_hostile_values_are_rejected_naming_the_problem_and_the_rules_stay(
    client: EtcdClient, live: StartLive, service: str
) -> None:
    gov = Governance()
    live(gov, service)
    applied = wait_status(client, service, put(client, service, "server", LIMIT_50), "applied")
    generation = gov.generation

    # 100,000 levels: json.loads would raise RecursionError; refused before it parses.
    deep = client.put(rules_key(service, "server"), "[" * 100_000 + "]" * 100_000)
    rejected = wait_status(client, service, deep, "rejected")
    assert rejected["error"] == (
        f"rules.server: nesting too deep in /governance/{service}/server (more than 32 levels)"
    )
    assert server_limit(gov) == 50 and gov.generation == generation

    # Sub-normal: 1 / 1e-310 is infinite, and an infinite interval would admit every call.
    tiny = put(client, service, "server", {"methods": {"*": {"rate_limit": {"limit": 1e-310}}}})
    rejected = wait_status(client, service, tiny, "rejected")
    assert rejected["error"] == (
        "rules.server.methods['*'].rate_limit.limit: must be >= 0.001, got 1e-310"
    )
    assert rejected["applied_at"] == applied["applied_at"]
    assert server_limit(gov) == 50 and gov.generation == generation


def test_a_section_write_flips_governance_off_on_a_real_server(
    client: EtcdClient, live: StartLive, service: str, sync_service: Callable[..., Any]
) -> None:
    # One call per hour: the second call is refused while governance is on.
    gov = Governance(
        {"server": {"methods": {"*": {"rate_limit": {"algorithm": "fixed_window", "limit": 1,
                                                     "window": 3600}}}}}
    )  # fmt: skip
    echo = sync_service("flip", governance=gov)
    live(gov, service)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(echo.target))
    stub.Unary(echo_pb2.EchoRequest(text="first"), timeout=5)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Unary(echo_pb2.EchoRequest(text="limited"), timeout=5)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    put(client, service, "enabled", False)
    wait_until(lambda: not gov.rules.enabled, APPLY_WITHIN, "governance off")
    assert server_limit(gov) == 1  # the other sections are untouched
    for _ in range(3):
        stub.Unary(echo_pb2.EchoRequest(text="free"), timeout=5)

    client.delete(rules_key(service, "enabled"))  # back to the rules given in code
    wait_until(lambda: gov.rules.enabled, APPLY_WITHIN, "governance on again")
    with pytest.raises(grpc.RpcError) as refused:
        stub.Unary(echo_pb2.EchoRequest(text="limited"), timeout=5)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_sections_override_the_whole_document(client: EtcdClient, live: StartLive, service: str) -> None:
    gov = Governance()
    live(gov, service)
    put(client, service, "rules", {"enabled": False, "server": LIMIT_50})
    wait_until(lambda: server_limit(gov) == 50 and not gov.rules.enabled, APPLY_WITHIN, "document")
    put(client, service, "enabled", True)
    wait_until(lambda: gov.rules.enabled, APPLY_WITHIN, "the section wins")
    assert server_limit(gov) == 50


def test_etcd_outage_keeps_the_rules_and_the_watch_resumes(service: str) -> None:
    with EtcdServer() as own:  # its own etcd: the module's stays up for the other tests
        client = etcd_client(own)
        count = [2]
        gov = Governance()
        live = LiveRules(
            client, gov, service=service, instance_id="a", instance_count=lambda: count[0]
        ).start()
        try:
            assert live.wait_ready(5)
            put(client, service, "cluster", {"*": 100})
            wait_until(lambda: server_limit(gov) == 50, APPLY_WITHIN, "cluster limit applied")

            own.stop()
            assert server_limit(gov) == 50
            count[0] = 4
            live.refresh()  # applies locally; its status write fails quietly
            assert server_limit(gov) == 25
            assert live.status is not None and live.status["state"] == "applied"

            own.start()
            revisions: list[int] = []

            def write() -> bool:  # the client's channel reconnects with its own backoff
                try:
                    revisions.append(put(client, service, "enabled", False))
                except EtcdError:
                    return False
                return True

            wait_until(write, 5.0, "etcd accepting writes again")
            revision = revisions[0]
            wait_until(lambda: not gov.rules.enabled, 5.0, "a rule written after the restart")
            assert server_limit(gov) == 25
            wait_status(client, service, revision, "applied")
        finally:
            live.stop()
            client.close()


def test_cluster_limits_are_split_across_live_instances(
    client: EtcdClient, live: StartLive, service: str
) -> None:
    count = [4]
    gov = Governance()
    live_rules = live(gov, service, instance_count=lambda: count[0])
    put(
        client,
        service,
        "server",
        {"methods": {f"{ECHO}/Unary": {"rate_limit": {"algorithm": "fixed_window", "limit": 1,
                                                       "window": 60}}}},
    )  # fmt: skip
    revision = put(client, service, "cluster", {"*": 100, f"{ECHO}/Unary": 40})
    wait_until(lambda: server_limit(gov) == 25, APPLY_WITHIN, "100 / 4 instances")
    wait_status(client, service, revision, "applied")
    created = gov.rules.server.methods["*"].rate_limit
    assert created is not None and created.algorithm == "token_bucket" and created.window == 1.0
    kept = gov.rules.server.methods[f"{ECHO}/Unary"].rate_limit
    assert kept is not None and (kept.algorithm, kept.window, kept.limit) == ("fixed_window", 60, 10)

    generation = gov.generation
    live_rules.refresh()  # same count: nothing to re-apply
    assert gov.generation == generation
    count[0] = 2
    live_rules.refresh()
    assert server_limit(gov) == 50 and server_limit(gov, f"{ECHO}/Unary") == 20
    count[0] = 0  # no instance registered (yet): this one still counts
    live_rules.refresh()
    assert server_limit(gov) == 100

    bad = put(client, service, "cluster", {"*": 0})
    rejected = wait_status(client, service, bad, "rejected")
    assert rejected["error"].startswith("cluster.*: must be > 0")
    assert server_limit(gov) == 100


def test_rate_limits_marked_cluster_are_split_across_live_instances(
    client: EtcdClient, live: StartLive, service: str
) -> None:
    count = [4]
    gov = Governance()
    live_rules = live(gov, service, instance_count=lambda: count[0])
    put(client, service, "server", {"methods": {"*": {"rate_limit": {"limit": 100, "cluster": True}}}})
    wait_until(lambda: server_limit(gov) == 25, APPLY_WITHIN, "100 / 4 instances")
    count[0] = 5
    live_rules.refresh()
    assert server_limit(gov) == 20  # the total is split again, not the previous share
