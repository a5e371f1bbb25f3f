"""CircuitBreaker's constructor refuses invalid arguments, naming them."""

from __future__ import annotations

from typing import Any

import pytest

from telemetry.governance.breaker import CircuitBreaker

# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("window_type", "sliding"),
        ("window_size", 0),
        ("window_size", 2.5),
        ("window_size", True),
        ("minimum_calls", 0),
        ("failure_rate_threshold", 0.0),
        ("failure_rate_threshold", 1.5),
        ("failure_rate_threshold", float("nan")),
        ("slow_call_rate_threshold", 0.0),
        ("slow_call_duration", 0.0),
        ("slow_call_duration", float("inf")),
        ("consecutive_failures", -1),
        ("open_wait", 0.0),
        ("open_wait", -1.0),
        ("max_open_wait", 1.0),
        ("backoff_multiplier", 0.5),
        ("half_open_probes", 0),
        ("ramp_steps", (0.5, 0.25, 1.0)),
        ("ramp_steps", (0.0, 1.0)),
        ("ramp_steps", (0.5, 0.9)),
        ("ramp_steps", (0.5, 0.5, 1.0)),
        ("ramp_step_duration", 0.0),
        ("on_transition", "not callable"),
    ],
)
def test_invalid_arguments_are_rejected(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        CircuitBreaker(**{name: value})
