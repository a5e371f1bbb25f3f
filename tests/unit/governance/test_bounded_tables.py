"""Governance tables and label sets stay bounded whatever callers send (method names, limit keys)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from telemetry.governance.observe import MAX_METHOD_LABELS, DecisionRecorder, GovernanceCollector


def test_distinct_methods_past_the_cap_are_counted_as_other() -> None:
    recorder = DecisionRecorder(max_methods=MAX_METHOD_LABELS)
    for n in range(5_000):  # a client sending 5,000 method names to a generic handler
        recorder.decision_for(f"/svc.S/m{n}-" + "x" * 1000, "rate_limit", "rejected", "limit")
    counts = recorder.counts()
    assert len(counts) == MAX_METHOD_LABELS + 1
    assert counts[("rate_limit", "other", "other", "rejected")] == 5_000 - MAX_METHOD_LABELS
    assert all(len(service) + len(method) <= 400 for _, service, method, _ in counts)
    assert len(recorder._last_logged) <= MAX_METHOD_LABELS + 1  # the log-throttle table too

    registry = CollectorRegistry()
    registry.register(GovernanceCollector(recorder, lambda: iter(())))
    series = [
        sample
        for family in registry.collect()
        if family.name == "governance_decisions"
        for sample in family.samples
        if sample.name == "governance_decisions_total"
    ]
    assert len(series) == MAX_METHOD_LABELS + 1


def test_long_limit_keys_are_digested() -> None:
    from telemetry.rpc.call import CallState, MethodInfo, RpcKind, Side
    from telemetry.rpc.call_keys import MAX_KEY_CHARS, call_key

    info = MethodInfo("/svc.S/M", RpcKind.UNARY, Side.SERVER)
    huge = "u" * 7_000  # 10k such keys used to cost +68 MiB in the per-user table
    state = CallState(info, 0.0, (("x-user", huge),), "ipv4:127.0.0.1:1")
    key = call_key(state, "metadata:x-user")
    assert key.startswith("sha256:") and len(key) == 7 + 64
    assert call_key(state, "metadata:x-user") == key  # stable: acquire and release agree
    short = CallState(info, 0.0, (("x-user", "ada"),), "ipv4:127.0.0.1:1")
    assert call_key(short, "metadata:x-user") == "ada"
    at_limit = CallState(info, 0.0, (("x-user", "v" * MAX_KEY_CHARS),), "ipv4:127.0.0.1:1")
    assert call_key(at_limit, "metadata:x-user") == "v" * MAX_KEY_CHARS  # kept as it is up to the cap
