"""InstancePool routing and bounds: the routing group from baggage (falling back to the default
pool), routing results cached per view and bounded, its arguments checked, a failing close logged
rather than raised, and the module importing without grpc.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from instance_pool_fakes import A, B, FakeChannel, Source, call, inst, make_pool
from opentelemetry import baggage
from opentelemetry import context as otel_context

from telemetry.discovery.balancer import RoundRobinBalancer
from telemetry.discovery.instance_pool import InstancePool

ROOT = Path(__file__).resolve().parents[2]


# -- routing and bounds ----------------------------------------------------------------------------


def test_routing_group_from_baggage_with_fallback_to_the_default_pool() -> None:
    canary = inst("canary", group="canary")
    pool, _, _, _ = make_pool([A, B, canary])
    assert pool.route_group() is None
    token = otel_context.attach(baggage.set_baggage("group", "canary"))
    try:
        group = pool.route_group()
    finally:
        otel_context.detach(token)
    assert group == "canary"
    view = pool.view()
    assert pool.candidates(view, "canary") == [canary]
    assert pool.candidates(view, None) == [A, B]
    assert pool.candidates(view, "gone") == [A, B]  # no such group: the default pool
    assert make_pool(route_baggage_key=None)[0].route_group() is None


def test_routing_results_are_cached_per_view_and_bounded() -> None:
    pool, _, _, _ = make_pool()
    view = pool.view()
    assert pool.candidates(view, None) is pool.candidates(view, None)
    for index in range(200):  # baggage values are caller-controlled
        pool.candidates(view, f"group-{index}")
    assert len(view.routes) <= 64


def test_pool_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="service"):
        InstancePool(
            service="",
            source=Source([]),
            make_channel=FakeChannel,
            close_channel=lambda channel: None,
            balancer=RoundRobinBalancer(),
        )


def test_a_failing_close_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def close_channel(channel: FakeChannel) -> None:
        raise OSError("boom")

    pool, source, _, _ = make_pool([A, B], close_channel=close_channel)
    call(pool)
    call(pool)
    caplog.set_level(logging.ERROR, logger="telemetry.discovery.instance_pool")
    source.current = (B,)
    pool.view()
    assert [r.getMessage() for r in caplog.records] == [
        "closing the channel of a removed svc instance failed"
    ]


def test_imports_without_grpc() -> None:
    """The pool's own import closure has no grpc. The package __init__s (telemetry,
    telemetry.discovery, telemetry.governance) re-export grpc-facing modules, so they are stood in
    for by bare packages here."""
    script = textwrap.dedent(
        """
        import sys, types
        sys.modules["grpc"] = None
        for name in ("telemetry", "telemetry.discovery", "telemetry.governance"):
            package = types.ModuleType(name)
            package.__path__ = [name.replace(".", "/")]
            sys.modules[name] = package
        import telemetry.discovery.instance_pool
        print(sorted(m for m in sys.modules if m.split(".")[0] == "grpc" and sys.modules[m]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
