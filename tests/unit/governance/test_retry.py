"""RetryPolicy backoff and RetryBudget accounting."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from telemetry.governance.retry import RetryBudget, RetryPolicy
from telemetry.testing import FakeClock


def fixed(value: float) -> Any:
    return lambda: value


# -- RetryPolicy --------------------------------------------------------------------------------


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.initial_backoff, policy.max_backoff) == (3, 0.05, 1.0)
    assert (policy.multiplier, policy.jitter) == (2.0, 0.2)


def test_backoff_sequence_without_jitter_is_exponential_and_capped() -> None:
    policy = RetryPolicy(
        max_attempts=10, initial_backoff=0.05, max_backoff=1.0, multiplier=2.0, jitter=0.0
    )
    delays = [policy.backoff(attempt) for attempt in range(1, 9)]
    assert delays == pytest.approx([0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_with_fixed_random() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, jitter=0.2)
    assert policy.backoff(2, fixed(0.5)) == pytest.approx(0.1)  # the middle of the range
    assert policy.backoff(2, fixed(0.0)) == pytest.approx(0.08)  # -20%
    assert policy.backoff(3, fixed(0.75)) == pytest.approx(0.2 * 1.1)
    assert policy.backoff(3, fixed(0.999999)) == pytest.approx(0.24, rel=1e-5)  # just under +20%


def test_jitter_never_exceeds_the_cap() -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=1.0, jitter=0.2)
    assert policy.backoff(3, fixed(0.999)) == 1.0  # 1.0 * 1.1996, capped
    assert policy.backoff(3, fixed(0.0)) == pytest.approx(0.8)  # jitter still applies downward


def test_jitter_bounds() -> None:
    policy = RetryPolicy(max_attempts=8, initial_backoff=0.05, max_backoff=1.0, jitter=0.2)
    rng = random.Random(7)
    for attempt in range(2, 9):
        base = min(0.05 * 2.0 ** (attempt - 2), 1.0)
        draws = [policy.backoff(attempt, rng.random) for _ in range(200)]
        assert all(0.8 * base - 1e-12 <= d <= min(1.2 * base, 1.0) + 1e-12 for d in draws)
        assert max(draws) - min(draws) > 0.1 * base  # the delays really are spread


def test_huge_attempt_numbers_are_capped() -> None:
    policy = RetryPolicy(multiplier=10.0, jitter=0.0)
    assert policy.backoff(100_000) == 1.0


def test_first_attempt_has_no_delay_and_attempt_zero_is_invalid() -> None:
    policy = RetryPolicy()
    assert policy.backoff(1, fixed(0.0)) == 0.0
    with pytest.raises(ValueError, match="attempt"):
        policy.backoff(0)


def test_policy_is_frozen() -> None:
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 5  # type: ignore[misc]
    assert policy == RetryPolicy()
    assert hash(policy) == hash(RetryPolicy())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", 2.0),
        ("max_attempts", True),
        ("initial_backoff", -0.1),
        ("max_backoff", 0.01),
        ("max_backoff", float("inf")),
        ("multiplier", 0.5),
        ("jitter", -0.1),
        ("jitter", 1.5),
    ],
)
def test_invalid_policy_is_rejected(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        RetryPolicy(**{name: value})


# -- RetryBudget --------------------------------------------------------------------------------


def spend_all(budget: RetryBudget) -> int:
    spent = 0
    while budget.try_spend():
        spent += 1
        assert spent < 10_000
    return spent


def test_floor_allows_min_per_second_times_window_without_traffic() -> None:
    budget = RetryBudget(ratio=0.1, min_per_second=1.0, window=10.0, clock=FakeClock())
    assert budget.available == 10
    assert spend_all(budget) == 10
    assert budget.retries == 10
    assert budget.available == 0
    assert not budget.try_spend()
    assert budget.retries == 10  # a refused retry is not recorded


def test_ratio_of_calls_with_traffic() -> None:
    budget = RetryBudget(ratio=0.1, min_per_second=0.0, window=10.0, clock=FakeClock())
    assert not budget.try_spend()
    for _ in range(100):
        budget.on_call()
    assert budget.calls == 100
    assert spend_all(budget) == 10


def test_floor_and_ratio_add_up() -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=0.5, window=10.0, clock=FakeClock())
    for _ in range(50):
        budget.on_call()
    assert spend_all(budget) == 5 + 10


def test_budget_grows_with_calls() -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, window=10.0, clock=FakeClock())
    budget.on_call()
    assert not budget.try_spend()  # 0.5 of a retry earned
    budget.on_call()
    assert budget.try_spend()
    assert not budget.try_spend()


def test_ratio_without_float_error() -> None:
    budget = RetryBudget(ratio=0.29, min_per_second=0.0, window=10.0, clock=FakeClock())
    for _ in range(100):
        budget.on_call()
    assert spend_all(budget) == 29  # 0.29 * 100 == 28.999999999999996 in floats


def test_window_expiry() -> None:
    clock = FakeClock(1000.0)
    budget = RetryBudget(ratio=0.1, min_per_second=1.0, window=10.0, clock=clock)
    for _ in range(100):
        budget.on_call()
    assert spend_all(budget) == 20
    clock.advance(5.0)
    assert not budget.try_spend()
    for _ in range(50):
        budget.on_call()
    assert spend_all(budget) == 5
    clock.advance(4.999)  # the first second's calls and retries are still in the window
    assert budget.calls == 150
    assert budget.retries == 25
    clock.advance(0.001)  # now they have left it
    assert budget.calls == 50
    assert budget.retries == 5
    assert spend_all(budget) == 10
    clock.advance(60.0)
    assert budget.calls == budget.retries == 0
    assert budget.available == 10


def test_zero_budget() -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=0.0, clock=FakeClock())
    for _ in range(100):
        budget.on_call()
    assert not budget.try_spend()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ratio", -0.1),
        ("ratio", float("nan")),
        ("min_per_second", -1.0),
        ("window", 0.0),
        ("buckets", 0),
    ],
)
def test_invalid_budget_is_rejected(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        RetryBudget(**{name: value})
