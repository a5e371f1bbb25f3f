"""Adaptive rules in the engine: a CPU threshold above one core (bounded by cpu_max), and the
process switch interval following adaptive.gil_switch_interval (left alone at 0 or without
adaptive rules).
"""

from __future__ import annotations

import sys

import pytest

from engine.support import RULES
from telemetry.governance.engine import Governance
from telemetry.governance.rules import AdaptiveRule, RuleError


def test_adaptive_cpu_threshold_above_one_core(gov: Governance) -> None:
    gov.apply({"adaptive": {"enabled": True, "cpu_threshold": 1.5}})  # below the default cpu_max 2.0
    assert gov.rules.adaptive.cpu_threshold == 1.5
    assert gov.snapshot().adaptive is not None
    gov.apply({"adaptive": {"enabled": True, "cpu_threshold": 4.0, "cpu_max": 8.0}})
    assert gov.snapshot().adaptive is not None
    with pytest.raises(RuleError) as caught:
        gov.apply({"adaptive": {"enabled": True, "cpu_threshold": 4.0}})
    assert caught.value.path == "rules.adaptive.cpu_max"
    assert gov.generation == 2


def test_adaptive_sets_the_switch_interval(gov: Governance) -> None:
    saved_interval = sys.getswitchinterval()
    gov.apply({"adaptive": {"enabled": True, "gil_switch_interval": 0.001}})
    assert sys.getswitchinterval() == pytest.approx(0.001)
    gov.apply({"adaptive": {"enabled": True}})
    assert sys.getswitchinterval() == pytest.approx(AdaptiveRule().gil_switch_interval)
    gov.apply({})
    assert sys.getswitchinterval() == pytest.approx(saved_interval)


def test_gil_switch_interval_zero_leaves_the_interval_alone(gov: Governance) -> None:
    sys.setswitchinterval(0.002)
    gov.apply({"adaptive": {"enabled": True, "gil_switch_interval": 0}})
    assert sys.getswitchinterval() == pytest.approx(0.002)


def test_rules_without_adaptive_do_not_touch_the_switch_interval(gov: Governance) -> None:
    sys.setswitchinterval(0.002)
    gov.apply(RULES)
    assert sys.getswitchinterval() == pytest.approx(0.002)
