"""The load generator's live settings: every field bounded, hostile input refused naming the
field, and the step and ramp profiles' rate at each moment (an injected clock)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from telemetry import RuleError
from telemetry.load.schedule import LoadPlan
from telemetry.load.settings import RATE_MAX, LoadSettings, Profile, parse_load
from telemetry.testing.clock import FakeClock

BASE = LoadSettings(rate=20.0, scraper_rate=8.0, mix={"place_order": 1.0, "get_stock": 1.0})


def test_a_partial_value_keeps_the_base_for_what_it_does_not_set() -> None:
    settings = parse_load({"rate": 40}, BASE)
    assert settings == LoadSettings(rate=40.0, scraper_rate=8.0, mix=BASE.mix, profile=Profile())
    assert parse_load({}, BASE) == BASE


def test_a_full_value_round_trips_through_json() -> None:
    value = {"rate": 5.5, "scraper_rate": 0, "mix": {"get_order": 3, "invalid_order": 0},
             "profile": {"kind": "ramp", "from": 1, "to": 50, "over_seconds": 30}}  # fmt: skip
    settings = parse_load(json.dumps(value).encode(), BASE)
    assert parse_load(settings.to_dict(), BASE) == settings
    assert settings.to_dict()["profile"] == value["profile"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"rate": -1}, r"load\.rate: .*-1"),
        ({"rate": RATE_MAX * 2}, r"load\.rate: "),
        ({"rate": 1e308}, r"load\.rate: "),
        ({"rate": float("nan")}, r"load\.rate: must be a finite number"),
        ({"rate": True}, r"load\.rate: must be a finite number, got True"),
        ({"rate": "40"}, r"load\.rate: must be a finite number, got '40'"),
        ({"rate": 10**400}, r"load\.rate: must be a finite number"),
        ({"scraper_rate": -0.5}, r"load\.scraper_rate: "),
        ({"speed": 1}, r"load\.speed: unknown field"),
        ({"mix": {"place_order": 1, "drop_tables": 1}}, r"load\.mix\.drop_tables: unknown field"),
        ({"mix": {"place_order": 0}}, r"load\.mix: at least one scenario needs a weight above 0"),
        ({"mix": {"place_order": -3}}, r"load\.mix\.place_order: "),
        ({"mix": []}, r"load\.mix: must be an object, got list"),
        ({"profile": {"kind": "sawtooth"}}, r"load\.profile\.kind: must be one of steady, step, ramp"),
        ({"profile": {"kind": "step", "from": 1, "to": 9, "step": 1}},
         r"load\.profile\.hold_seconds: missing"),
        ({"profile": {"kind": "step", "from": 1, "to": 9, "step": 0, "hold_seconds": 1}},
         r"load\.profile\.step: "),
        ({"profile": {"kind": "ramp", "from": 1, "to": 9, "over_seconds": 0}},
         r"load\.profile\.over_seconds: "),
        ({"profile": {"kind": "ramp", "from": 1, "to": 1e9, "over_seconds": 5}}, r"load\.profile\.to: "),
        ({"profile": {"kind": "steady", "from": 1}}, r"load\.profile\.from: unknown field"),
        ("[1, 2]", r"load: must be an object, got list"),
        ("not json", r"load: not valid JSON"),
        ("[" * 100_000, r"load: .*nesting too deep"),
        ('{"rate": "' + "x" * 300_000 + '"}', r"load: "),
        (42, r"load: must be an object, got int"),
    ],
)  # fmt: skip
def test_bad_and_hostile_values_are_refused_naming_the_field(value: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_load(value, BASE)


@pytest.mark.parametrize(
    ("elapsed", "rate"),
    [(0, 10), (4.9, 10), (5, 25), (9.99, 25), (10, 40), (15, 50), (60, 50), (-1, 10)],
)
def test_a_step_profile_rises_by_step_every_hold_and_then_holds(elapsed: float, rate: float) -> None:
    profile = Profile(kind="step", start=10, end=50, step=15, hold_seconds=5)
    assert profile.rate(steady=99, elapsed=elapsed) == pytest.approx(rate)


def test_a_step_profile_can_step_down() -> None:
    profile = Profile(kind="step", start=50, end=20, step=20, hold_seconds=2)
    assert [profile.rate(0, t) for t in (0, 2, 4, 100)] == [50, 30, 20, 20]


@pytest.mark.parametrize(("elapsed", "rate"), [(0, 10), (5, 30), (10, 50), (11, 50)])
def test_a_ramp_profile_moves_linearly_then_holds(elapsed: float, rate: float) -> None:
    profile = Profile(kind="ramp", start=10, end=50, over_seconds=10)
    assert profile.rate(steady=99, elapsed=elapsed) == pytest.approx(rate)


def test_the_plan_starts_a_profile_over_when_settings_change() -> None:
    clock = FakeClock()
    plan = LoadPlan(BASE, clock=clock)
    assert plan.mix_rate() == 20.0  # steady: the settings' rate
    clock.advance(100)
    plan.use(parse_load({"profile": {"kind": "step", "from": 5, "to": 15, "step": 5,
                                     "hold_seconds": 1}}, BASE))  # fmt: skip
    seen = []
    for _ in range(4):
        seen.append(plan.mix_rate())
        clock.advance(1)
    assert seen == [5, 10, 15, 15]
    generation = plan.generation
    plan.use(parse_load({"profile": {"kind": "ramp", "from": 0, "to": 100, "over_seconds": 4}}, BASE))
    assert plan.generation == generation + 1
    clock.advance(1)
    assert plan.mix_rate() == 25.0
    assert plan.wait(generation, 0.0), "a new generation wakes a waiting schedule at once"
