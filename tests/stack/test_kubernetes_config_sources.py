"""The Kubernetes manifests run compose's own configuration (deploy/kubernetes/base/
kustomization.yaml generates the ConfigMaps from the files docker-compose.yml mounts, no copies):
each ConfigMap holds exactly the files compose mounts at the same path, byte for byte; the rules
pass promtool; the addresses inside those files are Services here. And the Kubernetes-only
configs: Prometheus's kubernetes_sd scraping (and its RBAC) and the collector agent.
"""

from __future__ import annotations

import base64
import posixpath
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from stack.compose_files import ROOT, _load_yaml, _services
from stack.kubernetes_manifests import (
    KUSTOMIZE_DIR,
    Obj,
    containers,
    env_values,
    named,
    of_kind,
    pod_spec,
    render,
    selected_workloads,
    selects,
    workloads,
)

OVERLAYS = ("overlays/demo", "overlays/production")
# Compose mounts it, Kubernetes has its own: static targets there, kubernetes_sd here.
KUBERNETES_OWN = {"./prometheus/prometheus.yml": "base/prometheus/prometheus.yml"}
AGENT_CONFIG = KUSTOMIZE_DIR / "base" / "otel-agent" / "config.yaml"
COMPONENT_KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[Obj, ...]:
    return render(request.param)


def _bind_mounts() -> list[tuple[str, str, str]]:
    """(compose service, repository path, container path) of every bind mount from the repo."""
    mounts = []
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                mounts.append((name, source, target))
    return mounts


def _config_map_at(objects: tuple[Obj, ...], workload: Obj, path: str) -> tuple[Obj, str | None]:
    """The ConfigMap a workload mounts at ``path`` (a directory), or at its parent directory
    (a file: then its key, the file's name, is returned too)."""
    volumes = {volume["name"]: volume for volume in pod_spec(workload).get("volumes", [])}
    for container in containers(workload):
        for mount in container.get("volumeMounts", []):
            config_map = volumes[mount["name"]].get("configMap")
            if config_map is None or "subPath" in mount:
                continue
            if mount["mountPath"] in (path, posixpath.dirname(path)):
                key = None if mount["mountPath"] == path else posixpath.basename(path)
                return named(objects, "ConfigMap", config_map["name"]), key
    raise AssertionError(f"{workload['metadata']['name']}: no ConfigMap mounted at {path}")


def _files(source: Path) -> dict[str, Path]:
    if source.is_dir():
        return {path.name: path for path in sorted(source.iterdir()) if path.is_file()}
    return {source.name: source}


def test_config_maps_hold_exactly_the_files_compose_mounts(rendered: tuple[Obj, ...]) -> None:
    deployed = {w["metadata"]["name"]: w for w in workloads(rendered)}
    checked = 0
    for service, source, target in _bind_mounts():
        if source in KUBERNETES_OWN or service not in deployed:
            continue  # scrape-targets is not deployed (docs/kubernetes.md)
        config_map, key = _config_map_at(rendered, deployed[service], target)
        data: dict[str, str] = config_map.get("data") or {}
        expected = _files(ROOT / source)
        if key is not None:  # a file compose mounts at <dir>/<key>
            assert set(expected) == {key} or (ROOT / source).is_file(), (service, source)
            expected = {key: ROOT / source}
        assert set(data) == set(expected), (
            f"{service}: ConfigMap {config_map['metadata']['name']} has {sorted(data)}, compose "
            f"mounts {sorted(expected)} from {source}: update deploy/kubernetes/base/kustomization.yaml"
        )
        for name, path in expected.items():
            assert data[name] == path.read_text(), f"{service}: {name} differs from {path}"
        checked += 1
    assert checked >= 7, "collector, jaeger, loki, rules, alertmanager and grafana's three dirs"
    prometheus = named(rendered, "Deployment", "prometheus")
    config_map, _ = _config_map_at(rendered, prometheus, "/etc/prometheus/config")
    for source, own in KUBERNETES_OWN.items():
        path = KUSTOMIZE_DIR / own
        assert config_map["data"] == {path.name: path.read_text()}, f"instead of {source}"


def test_compose_named_volumes_are_claims_at_the_same_paths(rendered: tuple[Obj, ...]) -> None:
    # State (Jaeger's traces, Loki's logs) outlives a pod as it outlives a container in compose.
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith(("./", "/")):
                continue
            workload = named(rendered, "Deployment", name)
            volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
            mounts = {m["mountPath"]: m["name"] for c in containers(workload)
                      for m in c.get("volumeMounts", [])}  # fmt: skip
            assert target in mounts, f"{name}: nothing mounted at {target} (compose: {source})"
            claim = volumes[mounts[target]].get("persistentVolumeClaim")
            assert claim is not None, f"{name}: {target} is not on a PersistentVolumeClaim"
            named(rendered, "PersistentVolumeClaim", claim["claimName"])


def test_grafana_env_is_compose_env_file_in_the_demo() -> None:
    objects = render("overlays/demo")
    (grafana,) = containers(named(objects, "Deployment", "grafana"))
    (reference,) = [source["secretRef"]["name"] for source in grafana["envFrom"]]
    secret = named(objects, "Secret", reference)
    decoded = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    env_file = _services()["grafana"]["env_file"]
    env_file = env_file if isinstance(env_file, str) else env_file[0]
    expected = {}
    for line in (ROOT / env_file).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            expected[key.strip()] = value.strip()
    assert decoded == expected
    compose_env = {k: str(v) for k, v in (_services()["grafana"].get("environment") or {}).items()}
    assert compose_env.items() <= env_values(grafana).items()


def test_prometheus_rules_in_the_config_map_pass_promtool(promtool: str, tmp_path: Path) -> None:
    objects = render("overlays/demo")
    prometheus = named(objects, "Deployment", "prometheus")
    rules, _ = _config_map_at(objects, prometheus, "/etc/prometheus/rules")
    paths = []
    for name, text in rules["data"].items():
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    result = subprocess.run([promtool, "check", "rules", *paths],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, f"promtool check rules:\n{result.stdout}{result.stderr}"


def _service_ports(objects: tuple[Obj, ...]) -> dict[str, set[int]]:
    return {
        svc["metadata"]["name"]: {port["port"] for port in svc["spec"]["ports"]}
        for svc in of_kind(objects, "Service")
    }


def _addresses(config: Any) -> list[str]:
    """host:port of every URL or endpoint string in a parsed config file."""
    found: list[str] = []
    if isinstance(config, dict):
        for key, value in config.items():
            if key in ("url", "endpoint") and isinstance(value, str) and "://" in value:
                found.append(urlsplit(value).netloc)
            elif key == "endpoint" and isinstance(value, str) and not value.startswith("0.0.0.0"):
                found.append(value)
            else:
                found.extend(_addresses(value))
    elif isinstance(config, list):
        for item in config:
            found.extend(_addresses(item))
    return found


def test_addresses_in_the_shared_configs_are_services(rendered: tuple[Obj, ...]) -> None:
    ports = _service_ports(rendered)
    sources = ["otel-collector/config.yaml", "grafana/provisioning/datasources/datasources.yml",
               "alertmanager/alertmanager.yml"]  # fmt: skip
    for source in sources:
        for address in _addresses(_load_yaml(ROOT / source)):
            host, _, port = address.rpartition(":")
            assert int(port) in ports.get(host, set()), f"{source}: no Service {host} on {port}"
    config = yaml.safe_load((KUSTOMIZE_DIR / "base/prometheus/prometheus.yml").read_text())
    for alertmanagers in config["alerting"]["alertmanagers"]:
        for target in alertmanagers["static_configs"][0]["targets"]:
            host, _, port = target.rpartition(":")
            assert int(port) in ports.get(host, set()), f"prometheus.yml: no Service {target}"


# --- Prometheus on Kubernetes -------------------------------------------------------------------


def test_prometheus_discovers_the_jobs_compose_scrapes(rendered: tuple[Obj, ...]) -> None:
    config = yaml.safe_load((KUSTOMIZE_DIR / "base/prometheus/prometheus.yml").read_text())
    prometheus = named(rendered, "Deployment", "prometheus")
    (container,) = containers(prometheus)
    assert "--config.file=/etc/prometheus/config/prometheus.yml" in container["args"]
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for job in jobs.values():
        assert [sd["role"] for sd in job["kubernetes_sd_configs"]] == ["pod"], job["job_name"]
    assert jobs["spanmetrics"]["honor_labels"] is True
    # The job label is the pod's app.kubernetes.io/name: every job compose scrapes by name is
    # an annotated pod here (registered: compose's etcd-driven http_sd, replaced by annotations).
    relabel = jobs["kubernetes-pods"]["relabel_configs"]
    assert {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
            "regex": "(.+)", "target_label": "job"} in relabel  # fmt: skip
    compose = _load_yaml(ROOT / "prometheus" / "prometheus.yml")
    compose_jobs = {job["job_name"] for job in compose["scrape_configs"]} - {"registered", "spanmetrics"}
    annotated = set()
    for workload in workloads(rendered):
        template = workload["spec"]["template"]
        annotations = template["metadata"].get("annotations") or {}
        if annotations.get("prometheus.io/scrape") == "true":
            annotated.add(template["metadata"]["labels"]["app.kubernetes.io/name"])
            declared = {p["containerPort"] for c in containers(workload) for p in c.get("ports", [])}
            assert int(annotations["prometheus.io/port"]) in declared, workload["metadata"]["name"]
    deployed = {w["metadata"]["name"] for w in workloads(rendered)}
    expected = compose_jobs if "loadgen" in deployed else compose_jobs - {"loadgen"}  # production
    assert expected <= annotated, f"not scraped: {sorted(expected - annotated)}"


def test_prometheus_may_list_and_watch_pods(rendered: tuple[Obj, ...]) -> None:
    prometheus = named(rendered, "Deployment", "prometheus")
    account = pod_spec(prometheus)["serviceAccountName"]
    namespace = named(rendered, "ServiceAccount", account)["metadata"]["namespace"]
    (binding,) = of_kind(rendered, "ClusterRoleBinding")
    assert {"kind": "ServiceAccount", "name": account, "namespace": namespace} in binding["subjects"]
    role = named(rendered, "ClusterRole", binding["roleRef"]["name"])
    (rule,) = role["rules"]
    assert set(rule["resources"]) == {"pods", "endpoints", "services"}
    assert set(rule["verbs"]) == {"get", "list", "watch"}, "read-only"


# --- the collector: agents and gateways ---------------------------------------------------------


def test_agent_config_uses_recorded_components_and_wired_pipelines() -> None:
    config = _load_yaml(AGENT_CONFIG)
    (manifest,) = sorted((ROOT / "otel-collector").glob("components-*.yaml"))
    types = _load_yaml(manifest)["config_types"]
    for kind in COMPONENT_KINDS:
        for component in config.get(kind) or {}:
            assert component.split("/")[0] in types[kind], f"{kind[:-1]} {component}: not recorded"
    used: set[str] = set(config["service"]["extensions"])
    for pipeline_id, pipeline in config["service"]["pipelines"].items():
        assert pipeline["processors"][0] == "memory_limiter", pipeline_id
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline[kind]:
                assert component in config[kind], f"{pipeline_id}: undefined {component}"
                used.add(component)
    defined = {c for kind in COMPONENT_KINDS for c in config.get(kind) or {}}
    assert defined == used, f"defined but unused: {sorted(defined - used)}"
    # Traces and logs, as the gateway's own pipelines take them.
    gateway = _load_yaml(ROOT / "otel-collector" / "config.yaml")
    otlp_signals = {p.split("/")[0] for p, v in gateway["service"]["pipelines"].items()
                    if "otlp" in v["receivers"]}  # fmt: skip
    assert {p.split("/")[0] for p in config["service"]["pipelines"]} == otlp_signals


def test_pods_export_to_their_node_agent_which_feeds_every_gateway(rendered: tuple[Obj, ...]) -> None:
    agent_service = named(rendered, "Service", "otel-agent")
    assert agent_service["spec"]["internalTrafficPolicy"] == "Local", "the agent on the pod's node"
    (agents,) = selected_workloads(rendered, agent_service["spec"]["selector"])
    assert agents["kind"] == "DaemonSet"
    exporter = _load_yaml(AGENT_CONFIG)["exporters"]["otlp"]
    host, _, port = exporter["endpoint"].removeprefix("dns:///").rpartition(":")
    headless = named(rendered, "Service", host)
    assert headless["spec"]["clusterIP"] == "None" and int(port) in _service_ports(rendered)[host]
    assert exporter["balancer_name"] == "round_robin"
    (gateway,) = selected_workloads(rendered, headless["spec"]["selector"])
    assert gateway["metadata"]["name"] == "otel-collector"
    compose_name = named(rendered, "Service", "otel-collector")  # compose's name still works
    assert selects(compose_name["spec"]["selector"], gateway["spec"]["template"]["metadata"]["labels"])
