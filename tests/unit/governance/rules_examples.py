"""What the governance rules tests share: FULL (every field of every rule class, none at its
default), the field paths of the '*' method rules, small rule builders, and ``refused`` (the
RuleError a rule set raises).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from telemetry.governance.rules import GovernanceRules, RuleError

SERVER = "rules.server.methods['*']"
CLIENT = "rules.client.methods['*']"

# Every field of every rule class, none at its default value.
FULL: dict[str, Any] = {
    "enabled": False,
    "server": {
        "methods": {
            "*": {
                "brownout": {"share": 0.25},
                "rate_limit": {
                    "algorithm": "leaky_bucket",
                    "limit": 50.0,
                    "window": 2.0,
                    "burst": 5,
                    "max_wait": 0.5,
                    "warm_up": 20.0,
                    "cold_factor": 4.0,
                    "key": "metadata:user",
                    "allow": ["vip", "ops"],
                    "max_keys": 100,
                    "cluster": True,
                    "shared": "*",
                    "cluster_limit": None,
                    "cluster_burst": None,
                },
                "bulkhead": {"max_concurrent": 3, "shared": "*"},
                "priority": "low",
                "write": True,
                "fallback": {"mode": "last_good", "on": ["limit"], "cache_size": 16, "cache_ttl": 30.0},
            },
            "pkg.Svc/*": {
                "brownout": None,
                "rate_limit": None,
                "bulkhead": None,
                "priority": "high",
                "write": False,
                "fallback": None,
            },
            "pkg.Svc/Get": {
                "brownout": None,
                "rate_limit": {
                    "algorithm": "warm_up",
                    "limit": 7.5,
                    "window": 1.0,
                    "burst": None,
                    "max_wait": 0.0,
                    "warm_up": 5.0,
                    "cold_factor": 1.0,
                    "key": "",
                    "allow": [],
                    "max_keys": 10,
                    "cluster": False,
                    "shared": "",
                    "cluster_limit": None,
                    "cluster_burst": None,
                },
                "bulkhead": None,
                "priority": "critical",
                "write": False,
                "fallback": None,
            },
        }
    },
    "client": {
        "methods": {
            "pkg.Svc/*": {
                "breaker": {
                    "window_type": "time",
                    "window_size": 30,
                    "minimum_calls": 5,
                    "failure_rate_threshold": 0.25,
                    "slow_call_rate_threshold": 0.75,
                    "slow_call_duration": 0.5,
                    "consecutive_failures": 3,
                    "open_wait": 2.0,
                    "max_open_wait": 30.0,
                    "backoff_multiplier": 1.5,
                    "half_open_probes": 2,
                    "ramp_steps": [0.2, 1.0],
                    "ramp_step_duration": 4.0,
                    "failure_codes": ["UNAVAILABLE", "ABORTED"],
                    "force": "closed",
                },
                "throttle": {"k": 2.0, "window": 20.0, "protected": 10},
                "bulkhead": {"max_concurrent": 8, "shared": ""},
                "retry": {
                    "max_attempts": 4,
                    "initial_backoff": 0.1,
                    "max_backoff": 2.0,
                    "multiplier": 3.0,
                    "jitter": 0.5,
                    "codes": ["UNAVAILABLE"],
                    "budget_ratio": 0.2,
                    "budget_min_per_second": 2.0,
                },
                "idempotent": True,
                "fallback": {
                    "mode": "fast_path",
                    "on": ["breaker", "failure"],
                    "cache_size": 8,
                    "cache_ttl": 60.0,
                },
                "defer": True,
                "defer_max_items": 50,
            }
        }
    },
    "adaptive": {
        "enabled": True,
        "cpu_threshold": 0.6,
        "loop_lag_threshold": 0.1,
        "cool_off": 2.0,
        "min_limit": 2,
        "max_limit": 500,
        "initial_limit": 30,
        "tolerance": 2.0,
        "cpu_max": 1.5,
        "gil_switch_interval": 0.001,
        "queue_target": 0.01,
        "queue_interval": 0.2,
    },
    "shedding": {"enabled": True, "levels": [0.5, 0.6, 0.95]},
}


def server(rule: Mapping[str, Any], pattern: str = "*") -> dict[str, Any]:
    return {"server": {"methods": {pattern: rule}}}


def client(rule: Mapping[str, Any], pattern: str = "*") -> dict[str, Any]:
    return {"client": {"methods": {pattern: rule}}}


def rate_limit(**fields: Any) -> dict[str, Any]:
    return server({"rate_limit": {"limit": 10, **fields}})


def breaker(**fields: Any) -> dict[str, Any]:
    return client({"breaker": fields})


def refused(data: Any) -> RuleError:
    with pytest.raises(RuleError) as caught:
        GovernanceRules.from_dict(data)
    return caught.value
