"""The panel's pure parts: control transforms, validation, change descriptions, settings, autolimit.

Each control is a transform of one key's JSON value; it changes only what it is about (a breaker
flip keeps the bulkheads and fallbacks beside it), a new pattern starts from the entry governing
it now, applying it twice is applying it once, and every value it produces is valid for the
instances. Invalid values raise the instances' own errors, naming the field.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from transform_checks import methods, twice

from telemetry.config import ConfigError
from telemetry.governance.rules import GovernanceRules, RuleError
from telemetry.panel.autolimit import AutoLimit, parse_autolimit
from telemetry.panel.control_plane import AUTOLIMIT, Change, describe, etcd_key, validate
from telemetry.panel.controls import (
    set_adaptive,
    set_breaker,
    set_cluster_limit,
    set_concurrency_cap,
    set_enabled,
    set_fault,
    set_rate_limit,
    set_sampling,
    set_shed_methods,
    set_shedding,
)
from telemetry.panel.settings import PanelSettings

PAYMENT = "demoshop.v1.Payment"
STAR_CLIENT = {"bulkhead": {"max_concurrent": 5}, "retry": {"max_attempts": 2}, "idempotent": True}
PAYMENT_CLIENT = {"bulkhead": {"max_concurrent": 2}, "fallback": {"mode": "default"}}
CLIENT = {"methods": {"*": STAR_CLIENT, f"{PAYMENT}/*": PAYMENT_CLIENT}}
LIMIT_10 = {"algorithm": "token_bucket", "limit": 10}
SERVER = {"methods": {"*": {"rate_limit": LIMIT_10}}}


# -- rate limits ----------------------------------------------------------------------------------


def test_rate_limit_is_set_on_an_unset_section() -> None:
    after = twice(set_rate_limit("*", {"limit": 50}), None)
    assert after == {"methods": {"*": {"rate_limit": {"limit": 50}}}}


def test_rate_limit_keeps_the_other_fields_of_its_entry_and_the_other_entries() -> None:
    section = {
        "methods": {
            "*": {"rate_limit": LIMIT_10, "priority": "high", "fallback": {"mode": "last_good"}},
            "a.B/M": {"write": True},
        }
    }
    before = copy.deepcopy(section)
    after = twice(set_rate_limit("*", {"limit": 99, "algorithm": "fixed_window"}), section)
    assert section == before  # the transform does not edit what it is given
    assert methods(after)["*"] == {
        "rate_limit": {"limit": 99, "algorithm": "fixed_window"},
        "priority": "high",
        "fallback": {"mode": "last_good"},
    }
    assert methods(after)["a.B/M"] == {"write": True}


def test_a_new_pattern_starts_from_the_most_specific_entry_governing_it() -> None:
    section = {
        "methods": {
            "*": {"rate_limit": LIMIT_10, "priority": "high"},
            "a.B/*": {"rate_limit": {"limit": 3}, "write": True},
        }
    }
    after = set_rate_limit("a.B/M", {"limit": 1})(copy.deepcopy(section))
    assert methods(after)["a.B/M"] == {"rate_limit": {"limit": 1}, "write": True}  # from a.B/*
    after = set_rate_limit("c.D/*", {"limit": 2})(copy.deepcopy(section))
    assert methods(after)["c.D/*"] == {"rate_limit": {"limit": 2}, "priority": "high"}  # from *
    assert {k: methods(after)[k] for k in section["methods"]} == section["methods"]


def test_removing_a_rate_limit_tidies_the_entry_it_leaves_empty() -> None:
    section = {"methods": {"a.B/M": {"rate_limit": LIMIT_10, "priority": "normal"}}}
    assert twice(set_rate_limit("a.B/M", None), section) == {"methods": {}}
    kept = {"methods": {"a.B/M": {"rate_limit": LIMIT_10, "priority": "high"}}}
    assert set_rate_limit("a.B/M", None)(kept) == {"methods": {"a.B/M": {"priority": "high"}}}


def test_removing_a_rate_limit_under_a_broader_one_says_not_here() -> None:
    # Dropping the emptied entry would hand a.B/M back to the limit on *: it stays, empty.
    after = twice(set_rate_limit("a.B/M", None), SERVER)
    assert methods(after) == {"*": {"rate_limit": LIMIT_10}, "a.B/M": {}}
    rules = GovernanceRules.from_dict({"server": after})
    assert rules.server.methods["a.B/M"].rate_limit is None
    assert rules.server.methods["*"].rate_limit is not None


@pytest.mark.parametrize("pattern", ["pkg.Service", "*/M", "a.B/c/d", "a*.B/M", "a.B/M*", ""])
def test_an_invalid_pattern_raises_a_rule_error(pattern: str) -> None:
    makers: list[Callable[[], object]] = [
        lambda: set_rate_limit(pattern, {"limit": 1}),
        lambda: set_breaker(pattern, force="open"),
        lambda: set_fault(pattern, {"latency_ms": 5}),
        lambda: set_cluster_limit(pattern, 5),
        lambda: set_shed_methods([pattern], []),
    ]
    for make in makers:
        with pytest.raises(RuleError, match="method pattern must be"):
            make()


# -- breakers -------------------------------------------------------------------------------------


def test_a_breaker_flip_keeps_bulkheads_retries_and_fallbacks() -> None:
    after = twice(set_breaker(f"{PAYMENT}/*", force="open"), CLIENT)
    assert methods(after)[f"{PAYMENT}/*"] == {**PAYMENT_CLIENT, "breaker": {"force": "open"}}
    assert methods(after)["*"] == STAR_CLIENT


def test_a_breaker_on_a_new_pattern_is_copied_from_star() -> None:
    section = {"methods": {"*": STAR_CLIENT}}
    after = twice(set_breaker(f"{PAYMENT}/*", force="open"), section)
    assert methods(after)[f"{PAYMENT}/*"] == {**STAR_CLIENT, "breaker": {"force": "open"}}
    assert methods(after)["*"] == STAR_CLIENT  # * keeps no breaker
    rules = GovernanceRules.from_dict({"client": after})
    breaker = rules.client.methods[f"{PAYMENT}/*"].breaker
    assert breaker is not None and breaker.force == "open"
    assert rules.client.methods["*"].breaker is None


def test_breaker_thresholds_merge_into_its_settings_and_automatic_unpins_it() -> None:
    section = {"methods": {"*": {"breaker": {"failure_rate_threshold": 0.3, "window_size": 50}}}}
    after = twice(set_breaker("*", force="closed", thresholds={"failure_rate_threshold": 0.6}), section)
    assert methods(after)["*"]["breaker"] == {
        "failure_rate_threshold": 0.6,
        "window_size": 50,
        "force": "closed",
    }
    after = set_breaker("*", force="")(after)
    assert methods(after)["*"]["breaker"]["force"] == ""
    assert methods(after)["*"]["breaker"]["window_size"] == 50


def test_a_breaker_force_must_be_known() -> None:
    with pytest.raises(ValueError, match="force must be"):
        set_breaker("*", force="half-open")


# -- sections -------------------------------------------------------------------------------------


def test_adaptive_settings_merge() -> None:
    current = GovernanceRules().to_dict()["adaptive"]
    after = twice(set_adaptive({"enabled": True, "cpu_threshold": 0.9}), current)
    assert after == {**current, "enabled": True, "cpu_threshold": 0.9}
    assert twice(set_adaptive({"enabled": True}), None) == {"enabled": True}


def test_shedding_on_off_and_its_levels() -> None:
    current = {"enabled": False, "levels": [0.7, 0.8, 0.9]}
    after = twice(set_shedding(enabled=True, levels=(0.5, 0.6, 0.7)), current)
    assert after == {"enabled": True, "levels": [0.5, 0.6, 0.7]}
    assert set_shedding(enabled=False)(after) == {"enabled": False, "levels": [0.5, 0.6, 0.7]}
    assert set_shedding(enabled=True)(None) == {"enabled": True}


def test_shed_methods_marks_the_chosen_and_unmarks_the_others() -> None:
    section = {
        "methods": {
            "*": {"rate_limit": LIMIT_10},
            "a.B/Old": {"priority": "low"},
            "a.B/Write": {"priority": "low", "write": True},
            "a.B/Keep": {"priority": "high"},
        }
    }
    candidates = ["a.B/New", "a.B/Old", "a.B/Write", "a.B/Keep"]
    after = twice(set_shed_methods(["a.B/New", "a.B/Keep"], candidates), section)
    assert methods(after) == {
        "*": {"rate_limit": LIMIT_10},
        "a.B/New": {"rate_limit": LIMIT_10, "priority": "low"},  # copied from *
        "a.B/Keep": {"priority": "low"},
        # Unmarked: back to normal; the entry under * stays, or * would govern it again.
        "a.B/Old": {"priority": "normal"},
        "a.B/Write": {"priority": "normal", "write": True},
    }
    GovernanceRules.from_dict({"server": after})


def test_unmarking_a_method_drops_its_entry_when_nothing_broader_governs() -> None:
    section = {"methods": {"a.B/Old": {"priority": "low"}, "a.B/Other": {"priority": "low"}}}
    after = twice(set_shed_methods([], ["a.B/Old"]), section)
    assert after == {"methods": {"a.B/Other": {"priority": "low"}}}  # not a candidate: untouched


def test_enabled_is_the_value() -> None:
    assert set_enabled(False)(True) is False
    assert set_enabled(True)(None) is True


def test_faults_per_pattern_and_removed_when_every_knob_is_zero() -> None:
    after = twice(set_fault("*", {"latency_ms": 50, "error_rate": 0.1}), None)
    assert after == {"*": {"latency_ms": 50, "error_rate": 0.1}}
    after = twice(set_fault(f"{PAYMENT}/Pay", {"error_rate": 0.5, "error_code": "INTERNAL"}), after)
    assert set(after) == {"*", f"{PAYMENT}/Pay"}
    zero = {"latency_ms": 0, "error_rate": 0, "cpu_burn_ms": 0, "error_code": "INTERNAL"}
    after = twice(set_fault("*", zero), after)
    assert after == {f"{PAYMENT}/Pay": {"error_rate": 0.5, "error_code": "INTERNAL"}}
    assert set_fault(f"{PAYMENT}/Pay", None)(after) is None  # the last one: no faults at all


def test_sampling_modes() -> None:
    assert set_sampling(ratio=0.25)({"traces_per_second": 5}) == {"ratio": 0.25}
    assert set_sampling(traces_per_second=5)(None) == {"traces_per_second": 5}
    assert set_sampling()({"ratio": 0.25}) is None  # back to the configured sampler
    with pytest.raises(ValueError, match="not both"):
        set_sampling(ratio=0.5, traces_per_second=5)


def test_cluster_limits_per_pattern() -> None:
    after = twice(set_cluster_limit("*", 400), None)
    assert after == {"*": 400}
    after = twice(set_cluster_limit("a.B/*", 40), after)
    assert after == {"*": 400, "a.B/*": 40}
    after = twice(set_cluster_limit("*", None), after)
    assert after == {"a.B/*": 40}
    assert set_cluster_limit("a.B/*", None)(after) is None
    with_burst = twice(set_cluster_limit("*", 24, burst=2), after)
    assert with_burst == {"*": {"limit": 24, "burst": 2}, "a.B/*": 40}


# -- validation -----------------------------------------------------------------------------------

PRODUCED = [
    ("server", set_rate_limit("*", {"algorithm": "fixed_window", "limit": 5, "window": 2}), SERVER),
    ("server", set_rate_limit("a.B/M", None), SERVER),
    ("server", set_shed_methods(["a.B/M"], ["a.B/N"]), SERVER),
    ("client", set_breaker(f"{PAYMENT}/*", force="open"), CLIENT),
    ("client", set_breaker("*", force="", thresholds={"failure_rate_threshold": 0.2}), None),
    ("adaptive", set_adaptive({"enabled": True, "cpu_threshold": 1.2}), None),
    ("shedding", set_shedding(enabled=True, levels=[0.6, 0.7, 0.8]), None),
    ("enabled", set_enabled(False), True),
    ("faults", set_fault("*", {"latency_ms": 20, "error_rate": 0.5, "cpu_burn_ms": 1}), None),
    ("faults", set_fault("*", None), {"*": {"latency_ms": 20}}),
    ("sampling", set_sampling(ratio=0.1), None),
    ("sampling", set_sampling(traces_per_second=2.5), None),
    ("sampling", set_sampling(), {"ratio": 0.1}),
    ("cluster", set_cluster_limit("a.B/*", 120.5), None),
    ("cluster", set_cluster_limit("*", 24, burst=2), {"a.B/*": 120.5}),
    ("server", set_concurrency_cap(3), SERVER),
]


@pytest.mark.parametrize(("key", "transform", "start"), PRODUCED)
def test_every_produced_value_is_valid(key: str, transform: Any, start: Any) -> None:
    validate(key, transform(copy.deepcopy(start)))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("server", {"methods": {"*": {"rate_limit": {"limit": 0}}}},
         "rules.server.methods['*'].rate_limit.limit: must be > 0"),
        ("client", {"methods": {"*": {"breaker": {"failure_rate_threshold": 1.5}}}},
         "rules.client.methods['*'].breaker.failure_rate_threshold: must be <= 1.0"),
        ("faults", {"*": {"error_rate": 2}}, "faults.*.error_rate: must be between 0 and 1"),
        ("sampling", {"ratio": 3}, "sampling.ratio: must be between 0 and 1"),
        ("sampling", {}, "sampling: give exactly one of"),
        ("cluster", {"*": 0}, "cluster.*: must be > 0"),
        ("server", {"methods": {"*": {"bulkhead": {"max_concurrent": 3, "shared": "a b"}}}},
         "rules.server.methods['*'].bulkhead.shared: "),
        ("enabled", "yes", "rules.enabled: must be true or false"),
        ("shedding", {"levels": [0.9, 0.8, 0.7]}, "rules.shedding.levels: must be three rising"),
        ("rules", [1], "rules: must be an object"),
        ("rules", {"server": {"methods": {"x": {}}}}, "rules.server.methods['x']: method pattern"),
        (AUTOLIMIT, {"enabled": True, "minimum": 5, "maximum": 1}, "autolimit.maximum: must be >="),
        ("bogus", 1, "bogus: unknown governance key"),
    ],
)  # fmt: skip
def test_invalid_values_raise_naming_the_field(key: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        validate(key, value)
    assert str(raised.value).startswith(message)


def test_deleting_any_known_key_is_valid() -> None:
    for key in ("server", "client", "rules", "faults", "sampling", "cluster", AUTOLIMIT):
        validate(key, None)


def test_etcd_keys() -> None:
    assert etcd_key("order", "client") == "/governance/order/client"
    assert etcd_key("order", AUTOLIMIT) == "/governance-panel/order/autolimit"
    with pytest.raises(ValueError, match="unknown governance key"):
        etcd_key("order", "bogus")
    with pytest.raises(ValueError, match="service must be"):
        etcd_key("a/b", AUTOLIMIT)


# -- describing changes ---------------------------------------------------------------------------


def change(before: Any, after: Any, *, actor: str = "ada", reason: str = "") -> Change:
    return Change(
        service="order", key="client", before=before, after=after, actor=actor, reason=reason,
        at=1.0, revision=7,
    )  # fmt: skip


def test_describe_names_set_removed_and_changed_nested_fields() -> None:
    before = {"methods": {"*": {"breaker": {"force": "", "window_size": 20}, "idempotent": True}}}
    after = {
        "methods": {
            "*": {"breaker": {"force": "open", "window_size": 20}},
            "a.B/*": {"bulkhead": {"max_concurrent": 2}},
        }
    }
    assert describe(change(before, after)) == (
        'methods.*.breaker.force: "" -> "open"; '
        "methods.*.idempotent removed (was true); "
        'methods.a.B/* set to {"bulkhead": {"max_concurrent": 2}}'
    )


def test_describe_whole_values_and_no_change() -> None:
    assert describe(change(None, {"ratio": 0.5})) == 'value set to {"ratio": 0.5}'
    assert describe(change({"ratio": 0.5}, None)) == 'value removed (was {"ratio": 0.5})'
    assert describe(change(True, False)) == "value: true -> false"
    assert describe(change({"a": [1, 2]}, {"a": [1, 2]})) == "no change"
    many = describe(change({}, {f"k{i}": i for i in range(9)}))
    assert many.startswith("k0 set to 0; k1 set to 1;") and many.endswith("; and 3 more")


def test_change_summary_and_json() -> None:
    flip = change({"x": 1}, {"x": 2}, reason="payment provider down")
    assert flip.summary() == "order/client by ada (payment provider down): x: 1 -> 2"
    assert change(1, 2, actor="").summary() == "order/client by unknown: value: 1 -> 2"
    assert flip.written
    back = Change.from_json(flip.to_json().encode(), 7)
    assert back == flip
    assert json.loads(flip.to_json())["reason"] == "payment provider down"


# -- settings -------------------------------------------------------------------------------------

PASSWORD = "correct horse"


def test_settings_defaults_are_read_only() -> None:
    settings = PanelSettings.from_env({})
    assert settings.password is None and not settings.writable
    assert settings.prometheus_url == "http://127.0.0.1:9090"
    assert settings.refresh_seconds == 2.0 and settings.window_minutes == 15
    assert settings.service_label == "job"
    assert settings.grafana_url is None and settings.grafana_token is None
    assert settings.etcd.endpoints == ("127.0.0.1:2379",)


def test_settings_from_the_environment() -> None:
    settings = PanelSettings.from_env(
        {
            "ETCD_ENDPOINTS": "etcd-1:2379, etcd-2:2379",
            "PROMETHEUS_URL": "http://prometheus:9090/",
            "PANEL_PASSWORD": PASSWORD,
            "PANEL_REFRESH_SECONDS": "5",
            "PANEL_WINDOW_MINUTES": "30",
            "PANEL_SERVICE_LABEL": "service_name",
            "GRAFANA_URL": "https://grafana.example/",
            "GRAFANA_USER": "admin",
            "GRAFANA_PASSWORD": "pw",
        }
    )
    assert settings.writable and settings.password == PASSWORD
    assert settings.etcd.endpoints == ("etcd-1:2379", "etcd-2:2379")
    assert settings.prometheus_url == "http://prometheus:9090"
    assert (settings.refresh_seconds, settings.window_minutes) == (5.0, 30)
    assert settings.service_label == "service_name"
    assert settings.grafana_url == "https://grafana.example"
    assert settings.grafana_basic_auth == ("admin", "pw") and settings.grafana_token is None
    with_token = PanelSettings.from_env({"GRAFANA_URL": "http://g:3000", "GRAFANA_TOKEN": "glsa_x"})
    assert with_token.grafana_token == "glsa_x" and with_token.grafana_basic_auth is None


def test_the_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(f"{PASSWORD}\n")
    settings = PanelSettings.from_env({"PANEL_PASSWORD_FILE": str(secret)})
    assert settings.password == PASSWORD and settings.writable
    direct = PanelSettings.from_env(
        {"PANEL_PASSWORD": "the other one", "PANEL_PASSWORD_FILE": str(secret)}
    )
    assert direct.password == "the other one"
    secret.write_text("short\n")
    with pytest.raises(ConfigError, match=r"^PANEL_PASSWORD_FILE: the password must have at least 8"):
        PanelSettings.from_env({"PANEL_PASSWORD_FILE": str(secret)})
    with pytest.raises(ConfigError, match=r"^PANEL_PASSWORD_FILE: cannot read it"):
        PanelSettings.from_env({"PANEL_PASSWORD_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PANEL_PASSWORD": "short"}, "PANEL_PASSWORD: the password must have at least 8 characters"),
        ({"PROMETHEUS_URL": "prometheus:9090"}, "PROMETHEUS_URL: must be an http(s) URL"),
        ({"PROMETHEUS_URL": "ftp://prometheus"}, "PROMETHEUS_URL: must be an http(s) URL"),
        ({"GRAFANA_URL": "grafana"}, "GRAFANA_URL: must be an http(s) URL"),
        ({"PANEL_REFRESH_SECONDS": "fast"}, "PANEL_REFRESH_SECONDS: not a number: 'fast'"),
        ({"PANEL_REFRESH_SECONDS": "0.1"}, "PANEL_REFRESH_SECONDS: must be within [0.5, 300]"),
        ({"PANEL_REFRESH_SECONDS": "nan"}, "PANEL_REFRESH_SECONDS: must be within [0.5, 300]"),
        ({"PANEL_WINDOW_MINUTES": "0"}, "PANEL_WINDOW_MINUTES: must be within [1, 1440]"),
        ({"PANEL_WINDOW_MINUTES": "1.5"}, "PANEL_WINDOW_MINUTES: not a whole number"),
        ({"PANEL_WINDOW_MINUTES": "nan"}, "PANEL_WINDOW_MINUTES: not a whole number"),
        ({"PANEL_WINDOW_MINUTES": "inf"}, "PANEL_WINDOW_MINUTES: not a whole number"),
        ({"PANEL_SERVICE_LABEL": "service-name"}, "PANEL_SERVICE_LABEL: not a Prometheus label"),
        ({"PANEL_SERVICE_LABEL": "1job"}, "PANEL_SERVICE_LABEL: not a Prometheus label"),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        PanelSettings.from_env(environ)
    assert str(raised.value).startswith(message)


# -- autolimit ------------------------------------------------------------------------------------


def test_autolimit_valid() -> None:
    assert parse_autolimit(None) == AutoLimit()
    setting = parse_autolimit({"enabled": True, "pattern": f"{PAYMENT}/*", "minimum": 5, "maximum": 50})
    assert setting == AutoLimit(enabled=True, pattern=f"{PAYMENT}/*", minimum=5.0, maximum=50.0)
    assert parse_autolimit(setting.to_dict()) == setting
    assert parse_autolimit({"minimum": 7, "maximum": 7}).maximum == 7.0
    validate(AUTOLIMIT, setting.to_dict())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "autolimit: must be an object"),
        ({"enable": True}, "autolimit.enable: unknown field"),
        ({"enabled": "yes"}, "autolimit.enabled: must be true or false"),
        ({"pattern": 5}, "autolimit.pattern: must be a string"),
        ({"pattern": "Payment"}, "autolimit.pattern: method pattern must be"),
        ({"minimum": 0}, "autolimit.minimum: must be > 0"),
        ({"minimum": -1}, "autolimit.minimum: must be > 0"),
        ({"maximum": float("inf")}, "autolimit.maximum: must be a finite number"),
        ({"maximum": "10"}, "autolimit.maximum: must be a finite number"),
        ({"maximum": True}, "autolimit.maximum: must be a finite number"),
        ({"minimum": 50, "maximum": 10}, "autolimit.maximum: must be >= minimum"),
    ],
)
def test_autolimit_invalid(value: Any, message: str) -> None:
    with pytest.raises(RuleError) as raised:
        parse_autolimit(value)
    assert str(raised.value).startswith(message)
