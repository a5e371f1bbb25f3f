"""The one retry engine (RetryCall), grpc's retry pushback, relay marks and bounded details: pure."""

from __future__ import annotations

import grpc
import pytest

from telemetry.governance.retry import RetryBudget, RetryCall, RetryPlan, RetryPolicy
from telemetry.rpc.relay import (
    DECISION_KEY,
    NO_RETRY,
    RELAYED_KEY,
    parse_pushback,
    refusal,
    relay_metadata,
    relayed,
    retry_hints,
)
from telemetry.rpc.status import MAX_STATUS_DETAILS, bounded_details
from telemetry.testing import FakeClock

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
CODES = frozenset({UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


def plan(attempts: int = 3, budget: RetryBudget | None = None, **policy: float) -> RetryPlan:
    policy.setdefault("jitter", 0.0)
    return RetryPlan(RetryPolicy(max_attempts=attempts, **policy), CODES, budget)


def test_backoff_then_attempts_run_out() -> None:
    retrying = RetryCall(plan(3, initial_backoff=0.1, multiplier=2.0))
    assert retrying.next_delay(UNAVAILABLE) == pytest.approx(0.1)
    assert retrying.next_delay(UNAVAILABLE) == pytest.approx(0.2)
    assert retrying.attempt == 3
    assert retrying.next_delay(UNAVAILABLE) is None
    assert retrying.stopped == "attempts"


@pytest.mark.parametrize(
    ("code", "pushback", "relays", "why"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, None, False, "code"),
        (UNAVAILABLE, NO_RETRY, False, "pushback"),
        (UNAVAILABLE, None, True, "relayed"),
    ],
)
def test_what_is_never_retried(
    code: grpc.StatusCode, pushback: float | None, relays: bool, why: str
) -> None:
    retrying = RetryCall(plan())
    assert retrying.next_delay(code, pushback, relays) is None
    assert retrying.stopped == why


def test_server_pushback_replaces_the_backoff() -> None:
    retrying = RetryCall(plan(initial_backoff=0.01))
    assert retrying.next_delay(grpc.StatusCode.RESOURCE_EXHAUSTED, 0.25) == 0.25
    # Longer than the policy's max_backoff (1 s): give up rather than hold the caller that long.
    assert retrying.next_delay(grpc.StatusCode.RESOURCE_EXHAUSTED, 30.0) is None
    assert retrying.stopped == "pushback"


def test_another_target_is_tried_at_once() -> None:
    """The failed target's pushback and the backoff are about it: another one goes now; only a
    pushback of -1 (do not retry) still stops."""
    retrying = RetryCall(plan(initial_backoff=0.5))
    assert retrying.next_delay(UNAVAILABLE, 30.0, elsewhere=True) == 0.0
    assert retrying.next_delay(UNAVAILABLE, elsewhere=True) == 0.0
    assert retrying.attempt == 3
    assert RetryCall(plan()).next_delay(UNAVAILABLE, NO_RETRY, elsewhere=True) is None


def test_jitter_is_drawn_from_the_plans_random_source() -> None:
    seeded = RetryPlan(RetryPolicy(initial_backoff=1.0, max_backoff=2.0, jitter=0.5), CODES,
                       random=lambda: 1.0)  # fmt: skip
    assert RetryCall(seeded).next_delay(UNAVAILABLE) == pytest.approx(1.5)


def test_no_retry_that_would_start_after_the_timeout_or_the_chain_deadline() -> None:
    clock = FakeClock()
    late = RetryCall(plan(initial_backoff=0.5), clock=clock, give_up_at=clock() + 0.4)
    assert late.next_delay(UNAVAILABLE) is None
    assert late.stopped == "time"
    chain = RetryCall(plan(initial_backoff=0.5), clock=clock, time_left=lambda: 0.3)
    assert chain.next_delay(UNAVAILABLE) is None
    in_time = RetryCall(plan(initial_backoff=0.1), clock=clock, give_up_at=clock() + 1.0)
    assert in_time.next_delay(UNAVAILABLE) == pytest.approx(0.1)
    clock.advance(0.3)
    assert in_time.remaining() == pytest.approx(0.7)


def test_one_budget_across_calls_and_its_refusals_are_reported() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, window=10.0, clock=clock)  # one retry
    seen: list[tuple[str, str]] = []
    shared = RetryPlan(RetryPolicy(max_attempts=5, jitter=0.0), CODES, budget,
                       lambda outcome, reason: seen.append((outcome, reason)))  # fmt: skip
    assert RetryCall(shared, clock=clock).next_delay(UNAVAILABLE) is not None
    second = RetryCall(shared, clock=clock)
    assert second.next_delay(UNAVAILABLE) is None
    assert second.stopped == "budget"
    assert seen == [("retried", "UNAVAILABLE, attempt 2"), ("rejected", "retry budget exhausted")]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), ("250", 0.25), (b"0", 0.0), ("-1", NO_RETRY), ("1.5", NO_RETRY), ("x", NO_RETRY),
     ("+5", NO_RETRY), ("99999999999", NO_RETRY), ("3600001", NO_RETRY), ("²", NO_RETRY)],
)  # fmt: skip
def test_pushback_follows_grpc_a6(value: object, seconds: float | None) -> None:
    assert parse_pushback(value) == seconds


def test_relay_marks() -> None:
    relaying = ((RELAYED_KEY, "breaker"), ("grpc-retry-pushback-ms", "-1"))
    assert relayed(relaying) == "breaker"
    assert refusal(relaying) == "breaker"
    assert retry_hints(relaying) == (NO_RETRY, True)
    own = ((DECISION_KEY, "rejected:rate_limit"),)
    assert relayed(own) is None
    assert refusal(own) == "rate_limit"
    assert refusal(((DECISION_KEY, "fallback:breaker"),)) is None
    assert refusal(None) is None
    assert relay_metadata("breaker", (("a", "1"), (RELAYED_KEY, "old"))) == (
        ("a", "1"),
        (RELAYED_KEY, "breaker"),
    )
    assert len(relayed(((RELAYED_KEY, "x" * 10_000),)) or "") <= 32  # a peer's value, bounded


def test_bounded_details() -> None:
    assert bounded_details("short") == "short"
    exact = "a" * MAX_STATUS_DETAILS
    assert bounded_details(exact) == exact
    for text in ("a" * 20_000, "é" * 10_000, "€" * 5_000 + "z"):
        bounded = bounded_details(text)
        assert len(bounded.encode()) <= MAX_STATUS_DETAILS
        assert bounded.endswith(" bytes]")
        cut = int(bounded.rsplit("[truncated ", 1)[1].split()[0])
        assert len(bounded.split("...")[0].encode()) + cut == len(text.encode())
