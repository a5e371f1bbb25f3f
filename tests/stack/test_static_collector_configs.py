"""Static checks of the OpenTelemetry Collector's, Jaeger's and Loki's configs: the collector image
matches the recorded component list and its config uses only components of that pinned release,
every pipeline (traces, metrics, logs) is wired (memory-limited first, for the collector) with
nothing unused, OTLP binds all interfaces, the endpoints and exemplars, Jaeger's persistent Badger
store with its TTL and healthcheck, and Loki's single-binary config: OTLP ingestion, retention.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from stack.compose_files import ROOT, _compose, _has_healthcheck, _load_yaml, _services

COLLECTOR_DIR = ROOT / "otel-collector"
JAEGER_CONFIG = ROOT / "jaeger" / "config.yaml"
LOKI_CONFIG = ROOT / "loki" / "config.yaml"
LOKI_OTLP = "http://loki:3100/otlp"  # Loki's native OTLP base; otlphttp appends /v1/logs

# What the dashboards look back over (their time range is now-15m); stored traces must outlive it.
DASHBOARD_WINDOW = timedelta(minutes=15)
_DURATION = re.compile(r"(\d+)(ms|s|m|h)")

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
    pipelines = config["service"]["pipelines"]
    traces = pipelines["traces"]
    assert set(traces["exporters"]) == {"otlp/jaeger", "spanmetrics", "servicegraph"}
    # Both connectors' metrics leave through the Prometheus exporter Prometheus scrapes (:8889).
    [derived] = [p for p in pipelines.values() if "spanmetrics" in p["receivers"]]
    assert set(derived["receivers"]) == {"spanmetrics", "servicegraph"}
    assert derived["exporters"] == ["prometheus"]
    # Logs: the services' OTLP logs (same receiver as their spans), batched as the traces are, to
    # Loki's OTLP endpoint and nowhere else.
    logs = pipelines["logs"]
    assert logs["receivers"] == ["otlp"]
    assert logs["processors"] == traces["processors"] == ["memory_limiter", "batch"]
    assert logs["exporters"] == ["otlphttp/loki"]
    assert {pipeline_id.split("/")[0] for pipeline_id in pipelines} == {"traces", "metrics", "logs"}


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
    _check_servicegraph(config["connectors"]["servicegraph"], spanmetrics)
    loki = config["exporters"]["otlphttp/loki"]
    assert loki["endpoint"] == LOKI_OTLP, "Loki's native OTLP endpoint (the exporter adds /v1/logs)"
    assert "logs_endpoint" not in loki, "a logs_endpoint would bypass the /v1/logs suffix"


def _check_servicegraph(servicegraph: dict[str, Any], spanmetrics: dict[str, Any]) -> None:
    # Its store is bounded in entries and time (a span waits there for its other half), and long
    # enough for halves exported a second or two apart and for the demo's slow calls (2 s faults).
    store = servicegraph["store"]
    assert 1_000 <= store["max_items"] <= 100_000
    assert timedelta(seconds=5) <= _duration(store["ttl"]) <= timedelta(seconds=60)
    # The map's latencies bucketed like the span metrics' RED panels.
    assert servicegraph["latency_histogram_buckets"] == spanmetrics["histogram"]["explicit"]["buckets"]
    assert _duration(servicegraph["metrics_flush_interval"]) <= timedelta(seconds=15)


# --- Jaeger -------------------------------------------------------------------------------------


def _duration(text: str) -> timedelta:
    """A Go duration as Jaeger's config reads it (2h, 90m, 1h30m)."""
    parts = _DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    unit = {"ms": timedelta(milliseconds=1), "s": timedelta(seconds=1), "m": timedelta(minutes=1),
            "h": timedelta(hours=1)}  # fmt: skip
    return sum((int(number) * unit[suffix] for number, suffix in parts), timedelta())


def _named_volume_target(service: str) -> str:
    """Where a service mounts its (one) named volume."""
    declared = _compose().get("volumes") or {}
    targets = [
        str(volume).split(":")[1]
        for volume in _services()[service].get("volumes", [])
        if str(volume).split(":")[0] in declared
    ]
    assert len(targets) == 1, f"{service}: expected one named volume, got {targets}"
    return targets[0]


def test_jaeger_config_is_wired_persistent_and_reachable() -> None:
    config = _load_yaml(JAEGER_CONFIG)
    source = "jaeger/config.yaml"
    _check_pipelines(config, source)
    _check_otlp_binds_all_interfaces(config, source)
    _check_readers_not_address(config, source)
    backends = config["extensions"]["jaeger_storage"]["backends"]
    assert config["extensions"]["jaeger_query"]["storage"]["traces"] in backends
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] in backends
    mount = _named_volume_target("jaeger")
    for name, backend in backends.items():
        # Badger on the named volume: traces survive a restart, and an exemplar from the
        # dashboards' window still opens its trace.
        badger = backend["badger"]
        assert badger["ephemeral"] is False, f"{name}: ephemeral Badger loses traces on restart"
        for kind in ("keys", "values"):
            assert badger["directories"][kind].startswith(mount.rstrip("/") + "/"), f"{name}: {kind}"
        ttl = _duration(badger["ttl"]["spans"])
        assert 4 * DASHBOARD_WINDOW <= ttl <= timedelta(hours=24), f"{name}: ttl {ttl}"
    # The sizing behind the TTL is written down where the TTL is set.
    header = JAEGER_CONFIG.read_text().split("\nservice:")[0]
    for term in ("spans per trace", "bytes per span", "TTL"):
        assert term in header, f"{source}: the header's sizing should give {term!r}"
    jaeger = _services()["jaeger"]
    assert jaeger["command"] == ["--config=/etc/jaeger/config.yaml"]
    # The compose healthcheck probes healthcheckv2; bound beyond loopback so others can ask too.
    assert config["extensions"]["healthcheckv2"]["http"]["endpoint"] == "0.0.0.0:13133"
    assert _has_healthcheck(jaeger) and ":13133/" in " ".join(jaeger["healthcheck"]["test"])


def test_jaeger_monitor_tab_reads_the_collectors_span_metrics() -> None:
    # Jaeger v2's Service Performance Monitoring (cmd/jaeger/config-spm.yaml, v2.11.0) queries
    # <namespace>_calls_total and <namespace>_duration_<unit>_bucket: the names the collector's
    # Prometheus exporter gives the spanmetrics connector's output (dots to underscores, `_total`
    # on counters, the unit on the histogram).
    config = _load_yaml(JAEGER_CONFIG)
    storage = config["extensions"]["jaeger_query"]["storage"]
    prometheus = config["extensions"]["jaeger_storage"]["metric_backends"][storage["metrics"]][
        "prometheus"
    ]
    scraped = urlsplit(prometheus["endpoint"])
    assert scraped.hostname in _services() and scraped.port == 9090, prometheus["endpoint"]
    assert prometheus["normalize_calls"] is True and prometheus["normalize_duration"] is True
    spanmetrics = _load_yaml(COLLECTOR_DIR / "config.yaml")["connectors"]["spanmetrics"]
    assert prometheus["metric_namespace"] == spanmetrics["namespace"].replace(".", "_")
    # The connector's default histogram unit is ms; Jaeger must read the same unit.
    assert spanmetrics["histogram"].get("unit", "ms") == prometheus["latency_unit"] == "ms"
    # Prometheus scrapes the connector's output with its own labels (service_name, span_name,
    # span_kind, status_code: what Jaeger's queries filter on).
    [job] = [j for j in _load_yaml(ROOT / "prometheus/prometheus.yml")["scrape_configs"]
             if j["job_name"] == "spanmetrics"]  # fmt: skip
    assert job["honor_labels"] is True
    assert job["static_configs"] == [{"targets": ["otel-collector:8889"]}]


# --- Loki ---------------------------------------------------------------------------------------


def test_loki_config_ingests_otlp_and_enforces_retention() -> None:
    config = _load_yaml(LOKI_CONFIG)
    loki = _services()["loki"]
    assert loki["command"] == ["-config.file=/etc/loki/config.yaml"]
    assert "./loki/config.yaml:/etc/loki/config.yaml:ro" in loki["volumes"]
    assert config["auth_enabled"] is False, "one tenant: the collector and Grafana send no org id"
    # Loki 3 (native OTLP ingestion, structured metadata), on the port the collector posts to and
    # the healthcheck probes.
    assert loki["image"].startswith("grafana/loki:3."), loki["image"]
    target = urlsplit(LOKI_OTLP)
    assert target.hostname in _services() and target.port == config["server"]["http_listen_port"]
    assert f":{target.port}/ready" in loki["healthcheck"]["test"][-1]
    # Single binary, everything on the named volume.
    data = _named_volume_target("loki")
    assert config["common"]["path_prefix"] == data
    assert config["common"]["replication_factor"] == 1
    assert config["common"]["ring"]["kvstore"]["store"] == "inmemory"
    for directory in config["common"]["storage"]["filesystem"].values():
        assert directory.startswith(data + "/"), directory
    assert config["compactor"]["working_directory"].startswith(data + "/")
    # OTLP keeps severity_text, trace_id, span_id as structured metadata: TSDB with schema v13.
    [schema] = config["schema_config"]["configs"]
    assert (schema["store"], schema["schema"], schema["object_store"]) == ("tsdb", "v13", "filesystem")
    limits = config["limits_config"]
    assert limits["allow_structured_metadata"] is True
    # Retention is the compactor's job; without retention_enabled the period is ignored.
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"] == "filesystem"
    assert DASHBOARD_WINDOW < _duration(limits["retention_period"]) <= timedelta(days=7)
    assert config["analytics"]["reporting_enabled"] is False
