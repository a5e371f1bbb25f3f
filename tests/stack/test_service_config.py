"""Demo service settings: YAML defaults, SHOP_<KEY> overrides typed by the default, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import config
from services.gateway import route_of
from telemetry import GovernanceRules

SERVICES = ("gateway", "order", "inventory", "payment", "recommendation", "notification", "loadgen")


@pytest.mark.parametrize("name", SERVICES)
def test_every_shipped_config_loads_and_its_rules_validate(name: str) -> None:
    settings = config.load(name, environ={})
    GovernanceRules.from_dict(settings.get("governance") or {})


def test_environment_overrides_scalars_with_the_defaults_type(tmp_path: Path) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text("listen: 127.0.0.1:1\nmax_workers: 4\nverbose: false\nratio: 0.5\nnested: {a: 1}\n")
    settings = config.load("svc", environ={
        "SHOP_CONFIG": str(path), "SHOP_LISTEN": "0.0.0.0:50051", "SHOP_MAX_WORKERS": "8",
        "SHOP_VERBOSE": "yes", "SHOP_RATIO": "0.25", "SHOP_NESTED": "ignored",
        "ETCD_ENDPOINTS": "etcd:2379",
    })  # fmt: skip
    assert settings == {"listen": "0.0.0.0:50051", "max_workers": 8, "verbose": True, "ratio": 0.25,
                        "nested": {"a": 1}, "etcd": "etcd:2379"}  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [("SHOP_MAX_WORKERS", "many", "SHOP_MAX_WORKERS: expected int, got 'many'"),
     ("SHOP_VERBOSE", "perhaps", "SHOP_VERBOSE: expected true or false, got 'perhaps'")],
)  # fmt: skip
def test_a_bad_override_names_the_variable(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text("max_workers: 4\nverbose: false\n")
    with pytest.raises(config.ServiceConfigError, match=message):
        config.load("svc", environ={"SHOP_CONFIG": str(path), variable: value})


def test_a_missing_or_mistyped_setting_is_named() -> None:
    with pytest.raises(config.ServiceConfigError, match="listen: missing"):
        config.require({}, "listen", str)
    with pytest.raises(config.ServiceConfigError, match="rate: expected int or float, got True"):
        config.require({"rate": True}, "rate", (int, float))


@pytest.mark.parametrize(
    ("path", "route"),
    [("/orders", "/orders"), ("/orders/ord_1", "/orders/{id}"), ("/stock/sku-mug", "/stock/{sku}"),
     ("/healthz", "/healthz"), ("/a/b/c", "other"), ("/orders/1/x", "other")],
)  # fmt: skip
def test_gateway_routes_have_low_cardinality_names(path: str, route: str) -> None:
    assert route_of(path) == route
