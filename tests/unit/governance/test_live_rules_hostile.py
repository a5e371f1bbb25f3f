"""LiveRules answers every write with a status, whatever was written: hostile values are rejected
naming the problem, an unforeseen exception is rejected too (its stack logged), and the rules in
force stay. Driven without etcd: a fake client records the status, and each test feeds the
watcher's state to the update LiveRules runs on every change.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import pytest
from helpers import FakeEtcd
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from telemetry.control import live_rules as live_module
from telemetry.control.cluster_limits import ClusterLimit
from telemetry.control.faults import FaultInjector
from telemetry.control.live_rules import LiveRules, parse_cluster, read_all_statuses, status_key
from telemetry.discovery.etcd import EtcdClient
from telemetry.governance import rules as model
from telemetry.governance.engine import Governance
from telemetry.governance.rules import MAX_JSON_DEPTH, RuleError
from telemetry.testing import FakeClock
from telemetry.tracing.samplers import LiveSampler

SERVICE = "svc"
PREFIX = f"/governance/{SERVICE}/"
LIMIT_50 = {"methods": {"*": {"rate_limit": {"limit": 50}}}}
DEEP = 100_000


class Harness:
    def __init__(self, **kw: Any) -> None:
        self.etcd = FakeEtcd()
        self.gov = Governance(clock=FakeClock(), cpu=lambda: 0.1)
        self.live = LiveRules(
            cast(EtcdClient, self.etcd), self.gov, service=SERVICE, instance_id="a", **kw
        )
        self.state: dict[str, bytes] = {}
        self.revision = 0

    def write(self, section: str, value: Any, *, raw: bool = False, count: int = 1) -> dict[str, Any]:
        """Put ``value`` (JSON unless ``raw``) under ``section`` and return the status it got."""
        text = value if raw else json.dumps(value)
        self.state[PREFIX + section] = text.encode() if isinstance(text, str) else text
        return self.update(count)

    def update(self, count: int = 1) -> dict[str, Any]:
        self.revision += 1
        self.live._update(dict(self.state), self.revision, count, forced=True)  # what a change runs
        status = json.loads(self.etcd.values[status_key(SERVICE, "a")])
        assert status["revision"] == self.revision
        return cast(dict[str, Any], status)

    def limit(self) -> float | None:
        rule = self.gov.rules.server.methods.get("*")
        return None if rule is None or rule.rate_limit is None else rule.rate_limit.limit


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    assert harness.write("server", LIMIT_50)["state"] == "applied"
    assert harness.limit() == 50
    return harness


def rejected(status: dict[str, Any]) -> str:
    assert status["state"] == "rejected", status
    assert isinstance(status["error"], str) and status["error"]
    return status["error"]


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("section", ["server", "client", "adaptive", "shedding", "enabled"])
def test_a_deeply_nested_section_is_rejected_and_the_rules_stay(h: Harness, section: str) -> None:
    generation = h.gov.generation
    error = rejected(h.write(section, deep(DEEP), raw=True))
    assert error == (
        f"rules.{section}: nesting too deep in {PREFIX}{section} (more than {MAX_JSON_DEPTH} levels)"
    )
    assert h.limit() == 50 and h.gov.generation == generation


@pytest.mark.parametrize(
    ("section", "path"), [("rules", "rules"), ("cluster", "cluster")], ids=["document", "cluster"]
)
def test_deep_nesting_in_the_document_and_the_cluster_key(h: Harness, section: str, path: str) -> None:
    error = rejected(h.write(section, '{"a":' * 10_000, raw=True))  # 50 KB: within the size bound
    assert error.startswith(f"{path}: nesting too deep in {PREFIX}{section}")
    assert h.limit() == 50


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        (1e-310, "must be >= 0.001, got 1e-310"),
        (5e-324, "must be >= 0.001, got 5e-324"),
        (1e308, "must be <= 1e6, got 1e+308"),
        (0, "must be > 0 (at least 0.001), got 0.0"),
        (True, "must be a finite number, got True"),
        ("100", "must be a finite number, got '100'"),
        (10**400, "must be a finite number, got 1000"),
    ],
)
def test_out_of_range_limits_are_rejected_naming_the_field(h: Harness, limit: Any, message: str) -> None:
    section = {"methods": {"*": {"rate_limit": {"algorithm": "token_bucket", "limit": limit}}}}
    error = rejected(h.write("server", section))
    assert error.startswith(f"rules.server.methods['*'].rate_limit.limit: {message}")
    assert h.limit() == 50


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_numbers_are_rejected(h: Harness, value: str) -> None:
    text = '{"methods": {"*": {"rate_limit": {"limit": ' + value + "}}}}"
    error = rejected(h.write("server", text, raw=True))
    assert error.startswith("rules.server.methods['*'].rate_limit.limit: must be a finite number")
    assert h.limit() == 50


@pytest.mark.parametrize(
    ("total", "message"),
    [
        (0, "must be > 0 (at least 0.001), got 0.0"),
        (1e-310, "must be >= 0.001, got 1e-310"),
        (1e308, "must be <= 1e6, got 1e+308"),
        (True, "must be a finite number, got True"),
        (None, "must be a finite number, got None"),
    ],
)
def test_cluster_totals_have_the_range_of_a_rate_limit(h: Harness, total: Any, message: str) -> None:
    assert rejected(h.write("cluster", {"*": total})) == f"cluster.*: {message}"
    assert h.limit() == 50
    with pytest.raises(RuleError):
        parse_cluster({"*": total})


WHOLE = "cluster.*.burst: must be a whole number from 1 to 1000000"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"limit": 10, "burst": 0}, f"{WHOLE}, got 0"),
        ({"limit": 10, "burst": 2.5}, f"{WHOLE}, got 2.5"),
        ({"limit": 10, "burst": True}, f"{WHOLE}, got True"),
        ({"limit": 10, "burst": 10**7}, f"{WHOLE}, got 10000000"),
        ({"burst": 2}, "cluster.*.limit: required"),
        ({"limit": 10, "bust": 2}, "cluster.*.bust: unknown field (known: limit, burst)"),
        ({"limit": "10"}, "cluster.*.limit: must be a finite number, got '10'"),
    ],
)
def test_cluster_entries_with_a_burst_are_checked(h: Harness, entry: Any, message: str) -> None:
    assert rejected(h.write("cluster", {"*": entry})) == message
    assert h.limit() == 50  # the rules in force stay


def test_a_cluster_entry_carries_its_burst(h: Harness) -> None:
    assert h.write("cluster", {"*": {"limit": 40, "burst": 3}}, count=2)["state"] == "applied"
    rule = h.gov.rules.server.methods["*"].rate_limit
    assert rule is not None and (rule.limit, rule.burst) == (20, 2)
    assert parse_cluster({"*": {"limit": 40}})["*"] == ClusterLimit(40.0)
    assert parse_cluster({"*": 40})["*"] == ClusterLimit(40.0)


def test_a_small_cluster_total_is_never_split_below_the_smallest_limit(h: Harness) -> None:
    assert h.write("cluster", {"*": 0.001}, count=4)["state"] == "applied"
    assert h.limit() == 0.001  # not 0.00025, which would be refused once instances join
    assert h.write("cluster", {"*": 1e6}, count=3)["state"] == "applied"
    assert h.limit() == pytest.approx(1e6 / 3)


def test_a_cluster_marked_rate_limit_out_of_range_is_reported_whole(h: Harness) -> None:
    section = {"methods": {"*": {"rate_limit": {"limit": 1e-310, "cluster": True}}}}
    error = rejected(h.write("server", section, count=4))
    assert error == "rules.server.methods['*'].rate_limit.limit: must be >= 0.001, got 1e-310"


def test_huge_keys_give_short_errors(h: Harness) -> None:
    huge = "x" * 200_000
    for section, value in [
        ("cluster", {huge: 1}),
        ("server", {"methods": {huge: {}}}),
        ("server", {"methods": {"*": {"rate_limit": {"limit": 1, huge: 1}}}}),
    ]:
        assert len(rejected(h.write(section, value))) < 400
    assert h.limit() == 50


def test_oversized_values_are_rejected_unparsed(h: Harness) -> None:
    error = rejected(h.write("server", " " * (300 * 1024), raw=True))
    assert error == f"rules.server: too large in {PREFIX}server: 307200 bytes, at most 262144"


def test_faults_and_sampling_are_bounded_too() -> None:
    h = Harness(faults=FaultInjector(), sampler=LiveSampler(ALWAYS_ON))
    assert rejected(h.write("faults", deep(DEEP), raw=True)).startswith(
        f"faults: nesting too deep in {PREFIX}faults"
    )
    del h.state[PREFIX + "faults"]
    assert rejected(h.write("sampling", deep(DEEP), raw=True)).startswith(
        f"sampling: nesting too deep in {PREFIX}sampling"
    )
    assert h.write("sampling", {"traces_per_second": 1.0})["state"] == "applied"


@pytest.mark.parametrize(
    ("where", "stage"),
    [
        ("apply", "rules: could not be applied"),
        ("parse", "rules: could not be validated"),
        ("faults", "faults: could not be validated"),
    ],
)
def test_an_unforeseen_exception_is_a_rejection_with_its_stack_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, where: str, stage: str
) -> None:
    h = Harness(faults=FaultInjector())
    assert h.write("server", LIMIT_50)["state"] == "applied"
    generation = h.gov.generation

    def boom(*args: Any) -> Any:
        raise TypeError("boom")

    if where == "apply":
        monkeypatch.setattr(h.gov, "apply", boom)
    elif where == "parse":
        monkeypatch.setattr(model, "_parse", boom)  # from_dict's last resort turns it into a RuleError
        stage = "rules: could not be validated (TypeError: boom)"
    else:
        monkeypatch.setattr(live_module, "parse_faults", boom)
    with caplog.at_level(logging.WARNING, logger="telemetry.control"):
        status = h.write(
            "faults" if where == "faults" else "server", {"*": {}} if where == "faults" else {}
        )
    error = rejected(status)
    assert error.startswith(stage)
    assert "TypeError: boom" in error
    assert h.gov.generation == generation and h.limit() == 50
    [record] = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert record.exc_info is not None  # the stack, once: this report was written once
    assert "Traceback" in caplog.text

    monkeypatch.undo()
    assert h.write("server", {"methods": {"*": {"rate_limit": {"limit": 7}}}})["state"] == "applied"
    assert h.limit() == 7


def test_a_named_rejection_logs_no_stack(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="telemetry.control"):
        rejected(h.write("server", {"methods": {"*": {"rate_limit": {"limit": 0}}}}))
    [record] = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert record.exc_info is None


def test_a_refresh_that_fails_keeps_the_previous_count(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert h.write("cluster", {"*": 100}, count=2)["state"] == "applied"
    assert h.limit() == 50

    def boom(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(h.gov, "apply", boom)
    assert "RuntimeError: boom" in rejected(h.update(count=4))
    assert h.limit() == 50 and h.live._count == 2  # the rules in force were split by 2


def test_junk_statuses_are_skipped() -> None:
    etcd = FakeEtcd()
    etcd.put("/governance-status/svc/a", json.dumps({"state": "applied"}))
    etcd.put("/governance-status/svc/b", deep(DEEP))
    etcd.put("/governance-status/svc/c", b"\xff")
    statuses = read_all_statuses(cast(EtcdClient, etcd))
    assert statuses == {"svc": {"a": {"state": "applied"}}}
