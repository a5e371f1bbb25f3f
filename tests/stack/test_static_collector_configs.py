"""Static checks of the OpenTelemetry Collector's and Jaeger's configs: the collector image matches
the recorded component list and its config uses only components of that pinned release, every
pipeline is wired (memory-limited first, for the collector) with nothing unused, OTLP binds all
interfaces, the endpoints and exemplars, and Jaeger's bounded in-memory store and healthcheck.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from stack.compose_files import ROOT, _has_healthcheck, _load_yaml, _services

COLLECTOR_DIR = ROOT / "otel-collector"
JAEGER_CONFIG = ROOT / "jaeger" / "config.yaml"

COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib"
COMPONENT_KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")


# --- OpenTelemetry Collector --------------------------------------------------------------------


@cache
def _components() -> dict[str, Any]:
    files = sorted(COLLECTOR_DIR.glob("components-*.yaml"))
    assert len(files) == 1, f"expected one otel-collector/components-<version>.yaml, got {files}"
    data = _load_yaml(files[0])
    assert files[0].name == f"components-{data['version']}.yaml"
    return data


def _check_pipelines(config: dict[str, Any], source: str) -> None:
    """Every pipeline names defined components; connectors bridge pipelines; nothing is unused."""
    service = config["service"]
    used: dict[str, set[str]] = {kind: set() for kind in COMPONENT_KINDS}
    for pipeline_id, pipeline in service["pipelines"].items():
        signal = pipeline_id.split("/")[0]
        assert signal in ("traces", "metrics", "logs"), f"{source}: pipeline {pipeline_id}"
        assert pipeline.get("receivers") and pipeline.get("exporters"), f"{source}: {pipeline_id}"
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                connector = component in config.get("connectors", {})
                defined = component in (config.get(kind) or {}) or (kind != "processors" and connector)
                assert defined, (
                    f"{source}: pipeline {pipeline_id} uses undefined {kind[:-1]} {component}"
                )
                used["connectors" if connector and kind != "processors" else kind].add(component)
    for extension in service.get("extensions", []):
        assert extension in (config.get("extensions") or {}), (
            f"{source}: undefined extension {extension}"
        )
        used["extensions"].add(extension)
    for kind in COMPONENT_KINDS:
        unused = set(config.get(kind) or {}) - used[kind]
        assert not unused, f"{source}: defined but unused {kind}: {sorted(unused)}"


def _check_otlp_binds_all_interfaces(config: dict[str, Any], source: str) -> None:
    protocols = config["receivers"]["otlp"]["protocols"]
    assert set(protocols) == {"grpc", "http"}, f"{source}: OTLP gRPC and HTTP"
    for protocol, port in (("grpc", 4317), ("http", 4318)):
        endpoint = (protocols[protocol] or {}).get("endpoint")
        assert endpoint == f"0.0.0.0:{port}", f"{source}: otlp {protocol} binds {endpoint}, not 0.0.0.0"


def _check_readers_not_address(config: dict[str, Any], source: str) -> None:
    metrics = config["service"]["telemetry"]["metrics"]
    assert "address" not in metrics, f"{source}: service.telemetry.metrics.address is deprecated"
    (reader,) = metrics["readers"]
    prometheus = reader["pull"]["exporter"]["prometheus"]
    assert (prometheus["host"], prometheus["port"]) == ("0.0.0.0", 8888), source


def test_collector_image_matches_the_recorded_component_list() -> None:
    image = _services()["otel-collector"]["image"]
    assert image == f"{COLLECTOR_IMAGE}:{_components()['version']}"
    assert "manifest.yaml" in _components()["manifest"]


def test_collector_config_uses_only_components_of_the_pinned_release() -> None:
    config = _load_yaml(COLLECTOR_DIR / "config.yaml")
    recorded = _components()
    for kind in COMPONENT_KINDS:
        modules = {entry.split()[0].rsplit("/", 1)[-1] for entry in recorded["modules"][kind]}
        types = recorded["config_types"][kind]
        for module in types.values():
            assert module in modules, f"config_types names {module}, not in the {kind} of the manifest"
        for component in config.get(kind) or {}:
            assert component.split("/")[0] in types, f"{kind[:-1]} {component}: not a recorded type"


def test_collector_pipelines_are_wired_and_memory_limited() -> None:
    config = _load_yaml(COLLECTOR_DIR / "config.yaml")
    _check_pipelines(config, "otel-collector/config.yaml")
    for pipeline_id, pipeline in config["service"]["pipelines"].items():
        processors = pipeline.get("processors", [])
        assert processors and processors[0] == "memory_limiter", f"{pipeline_id}: memory_limiter first"
    traces = config["service"]["pipelines"]["traces"]
    assert set(traces["exporters"]) == {"otlp/jaeger", "spanmetrics"}
    assert any("spanmetrics" in p["receivers"] for p in config["service"]["pipelines"].values())


def test_collector_endpoints_and_exemplars() -> None:
    config = _load_yaml(COLLECTOR_DIR / "config.yaml")
    source = "otel-collector/config.yaml"
    _check_otlp_binds_all_interfaces(config, source)
    _check_readers_not_address(config, source)
    jaeger = config["exporters"]["otlp/jaeger"]
    assert jaeger["endpoint"] == "jaeger:4317" and jaeger["tls"]["insecure"] is True
    prometheus = config["exporters"]["prometheus"]
    assert prometheus["endpoint"] == "0.0.0.0:8889"
    assert prometheus["enable_open_metrics"] is True, "exemplars are only exported as OpenMetrics"
    spanmetrics = config["connectors"]["spanmetrics"]
    assert spanmetrics["exemplars"]["enabled"] is True
    assert "explicit" in spanmetrics["histogram"]
    dimensions = {d["name"] for d in spanmetrics["dimensions"]}
    assert {"rpc.method", "rpc.response.status_code"} <= dimensions
    assert config["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"


# --- Jaeger -------------------------------------------------------------------------------------


def test_jaeger_config_is_wired_bounded_and_reachable() -> None:
    config = _load_yaml(JAEGER_CONFIG)
    source = "jaeger/config.yaml"
    _check_pipelines(config, source)
    _check_otlp_binds_all_interfaces(config, source)
    _check_readers_not_address(config, source)
    backends = config["extensions"]["jaeger_storage"]["backends"]
    assert config["extensions"]["jaeger_query"]["storage"]["traces"] in backends
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] in backends
    for name, backend in backends.items():
        assert 0 < backend["memory"]["max_traces"] <= 50_000, f"{name}: bound the in-memory store"
    jaeger = _services()["jaeger"]
    assert jaeger["command"] == ["--config=/etc/jaeger/config.yaml"]
    # The compose healthcheck probes healthcheckv2; bound beyond loopback so others can ask too.
    assert config["extensions"]["healthcheckv2"]["http"]["endpoint"] == "0.0.0.0:13133"
    assert _has_healthcheck(jaeger) and ":13133/" in " ".join(jaeger["healthcheck"]["test"])
