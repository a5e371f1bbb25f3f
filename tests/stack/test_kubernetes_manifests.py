"""Static checks of the Kubernetes manifests (deploy/kubernetes/): kubectl's kustomize renders the
base and both overlays, every object passes the Kubernetes API schema in strict mode, and the
promises of docs/kubernetes.md hold: requests, limits and probes everywhere, the restricted Pod
Security Standard, images pinned to compose's tags, a three-member etcd that every client is
given whole, gRPC probes, budgets and grace periods for the shop, HPAs on existing Deployments,
Services that select pods, and the panel's password only from a Secret. The config files shared
with docker-compose.yml are checked in test_kubernetes_config_sources.py.
"""

from __future__ import annotations

import base64
import inspect
import re
import subprocess
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from services import config as shop_config
from stack.compose_files import ROOT, VERSION_TAG, _services
from stack.kubernetes_manifests import (
    ETCD_MEMBERS,
    KUSTOMIZATIONS,
    KUSTOMIZE_DIR,
    Obj,
    all_containers,
    containers,
    env,
    env_values,
    hpa_for,
    image_parts,
    kubectl,
    min_replicas,
    named,
    of_kind,
    pod_spec,
    render,
    selected_workloads,
    selects,
    workloads,
)
from telemetry import lifecycle
from telemetry.handle import Telemetry

# The API version the manifests must be valid for (kubectl here is 1.32; schemas from
# kubernetes-validate, strict: an unknown field fails).
KUBERNETES_VERSION = "1.32"
STATELESS = {"gateway", "payment", "recommendation", "notification"}
SECRET_NAMES = re.compile(r"PASSWORD|TOKEN|SECRET", re.IGNORECASE)


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> tuple[Obj, ...]:
    return render(request.param)


def _k8s_name(compose_service: str) -> str:
    """compose's inventory-1 and inventory-2 are one Deployment, inventory."""
    return re.sub(r"-\d+$", "", compose_service)


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    return {str(key): str(value) for key, value in (service.get("environment") or {}).items()}


def _grpc_services() -> dict[str, dict[str, Any]]:
    """compose's gRPC services (those probed with services.healthcheck grpc), by Kubernetes name."""
    return {
        _k8s_name(name): svc
        for name, svc in _services().items()
        if "grpc" in (svc.get("healthcheck") or {}).get("test", [])
    }


def _grace_seconds(name: str) -> float:
    """The longest a service's tel.serve drains: its configured grace or the package's default."""
    defaults = [
        inspect.signature(function).parameters["grace"].default
        for function in (lifecycle.serve, lifecycle.serve_aio, Telemetry.serve, Telemetry.serve_aio)
    ]
    configured = shop_config.load(name, environ={}).get("grace_seconds", 0)
    return float(max(*defaults, configured))


def _pre_stop_seconds(container: Obj) -> float:
    pre_stop = (container.get("lifecycle") or {}).get("preStop")
    if pre_stop is None:
        return 0.0
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, f"preStop: {command}: sleep N only"
    return float(command[1])


# --- rendering and schema -----------------------------------------------------------------------


def test_the_documented_flag_is_needed_and_named() -> None:
    # The configs are compose's own files, outside the kustomization roots: kustomize's default
    # load restrictor refuses them, so docs/kubernetes.md must give the flag.
    result = subprocess.run([kubectl(), "kustomize", str(KUSTOMIZE_DIR / "base")],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode != 0 and "is not in or below" in result.stderr, result.stderr
    assert "--load-restrictor LoadRestrictionsNone" in (ROOT / "docs" / "kubernetes.md").read_text()


def test_every_object_passes_the_api_schema_strictly(rendered: tuple[Obj, ...]) -> None:
    for obj in rendered:
        name = f"{obj['kind']} {obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(part) for part in exc.absolute_path)
            pytest.fail(f"{name}: {where}: not valid for Kubernetes {KUBERNETES_VERSION}: {exc.message}")


# --- every workload -----------------------------------------------------------------------------


def test_every_container_has_requests_limits_and_probes(rendered: tuple[Obj, ...]) -> None:
    for workload, container in all_containers(rendered):
        where = f"{workload['metadata']['name']}/{container['name']}"
        resources = container.get("resources") or {}
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(bound) or {}), f"{where}: {bound}"
        for probe in ("readinessProbe", "livenessProbe"):
            assert container.get(probe), f"{where}: no {probe}"


def test_every_pod_meets_the_restricted_pod_security_standard(rendered: tuple[Obj, ...]) -> None:
    # https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
    for workload in workloads(rendered):
        name, spec = workload["metadata"]["name"], pod_spec(workload)
        pod = spec.get("securityContext") or {}
        assert pod.get("runAsNonRoot") is True, f"{name}: runAsNonRoot"
        assert pod.get("runAsUser", 1) != 0, f"{name}: runs as root"
        assert (pod.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{name}: seccomp"
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(host), f"{name}: {host}"
        assert not any("hostPath" in volume for volume in spec.get("volumes", [])), name
        # Service links put <SERVICE>_PORT ... into the environment: etcd reads ETCD_* as flags,
        # the panel reads PANEL_*.
        assert spec.get("enableServiceLinks") is False, f"{name}: enableServiceLinks: false"
        if spec.get("serviceAccountName") != "prometheus":  # kubernetes_sd needs its token
            assert spec.get("automountServiceAccountToken") is False, f"{name}: API token"
        for container in containers(workload):
            where = f"{name}/{container['name']}"
            context = container.get("securityContext") or {}
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert not context.get("privileged"), where
            assert (context.get("capabilities") or {}).get("drop") == ["ALL"], where
            assert not any("hostPort" in port for port in container.get("ports", [])), where
    for namespace in of_kind(rendered, "Namespace"):
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_images_are_pinned_to_compose_tags(rendered: tuple[Obj, ...]) -> None:
    pinned = dict(image_parts(svc["image"]) for svc in _services().values() if "build" not in svc)
    (demo_image,) = {svc["image"] for svc in _services().values() if "build" in svc}
    # Production is where users set their own registry and tag (kustomize's images: entry).
    production = any(ns["metadata"]["name"] == "telemetry" for ns in of_kind(rendered, "Namespace"))
    for workload, container in all_containers(rendered):
        where = f"{workload['metadata']['name']}/{container['name']}"
        image = container["image"]
        repository, tag = image_parts(image)
        assert tag and tag != "latest", f"{where}: {image} is not pinned"
        if repository == image_parts(demo_image)[0]:
            assert production or image == demo_image, f"{where}: {image}, compose builds {demo_image}"
        elif repository in pinned:
            assert tag == pinned[repository], f"{where}: {image}, compose pins {pinned[repository]}"
        else:  # not in compose
            assert VERSION_TAG.match(tag), f"{where}: {image} is not a release tag"


# --- etcd ---------------------------------------------------------------------------------------


def _flags(container: Obj) -> dict[str, str]:
    args = [*container.get("command", []), *container.get("args", [])]
    return dict(arg[2:].split("=", 1) for arg in args if arg.startswith("--") and "=" in arg)


def test_etcd_is_three_members_on_stable_names(rendered: tuple[Obj, ...]) -> None:
    etcd = named(rendered, "StatefulSet", "etcd")
    assert etcd["spec"]["replicas"] == 3
    assert etcd["spec"]["podManagementPolicy"] == "Parallel", "members must start together"
    peers = named(rendered, "Service", etcd["spec"]["serviceName"])
    assert peers["spec"]["clusterIP"] == "None" and peers["spec"]["publishNotReadyAddresses"]
    (container,) = containers(etcd)
    flags = _flags(container)
    members = dict(member.split("=", 1) for member in flags["initial-cluster"].split(","))
    service = peers["metadata"]["name"]
    assert members == {f"etcd-{n}": f"http://etcd-{n}.{service}:2380" for n in range(3)}
    assert flags["initial-advertise-peer-urls"] == f"http://$(POD_NAME).{service}:2380"
    assert env(container)["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # Probes on etcd's /health at the metrics URL.
    metrics_port = int(flags["listen-metrics-urls"].rsplit(":", 1)[1])
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"].split("?")[0] == "/health", probe
        assert ports.get(get["port"], get["port"]) == metrics_port, probe
    assert etcd["spec"]["volumeClaimTemplates"], "etcd keeps its data on PersistentVolumeClaims"
    budget = named(rendered, "PodDisruptionBudget", "etcd")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": etcd["spec"]["selector"]}
    client = named(rendered, "Service", "etcd")
    assert selects(client["spec"]["selector"], etcd["spec"]["template"]["metadata"]["labels"])


def test_etcd_clients_are_given_every_member(rendered: tuple[Obj, ...]) -> None:
    clients = [(w, c) for w, c in all_containers(rendered) if "ETCD_ENDPOINTS" in env(c)]
    assert len(clients) >= 7, "the shop services and the panel use etcd"
    for workload, container in clients:
        endpoints = env_values(container)["ETCD_ENDPOINTS"].split(",")
        assert tuple(endpoints) == ETCD_MEMBERS, f"{workload['metadata']['name']}: {endpoints}"


# --- the shop -----------------------------------------------------------------------------------


def test_every_compose_service_has_its_workload() -> None:
    # scrape-targets served compose's http_sd for services registered in etcd; here Prometheus
    # finds every annotated pod itself (docs/kubernetes.md).
    names = {w["metadata"]["name"] for w in workloads(render("overlays/demo"))}
    missing = {_k8s_name(s) for s in _services()} - names - {"scrape-targets"}
    assert not missing, f"compose services without a workload: {sorted(missing)}"


def test_env_is_compose_env_with_cluster_addresses(rendered: tuple[Obj, ...]) -> None:
    cluster_addresses = {"ETCD_ENDPOINTS", "OTEL_EXPORTER_OTLP_ENDPOINT", "SHOP_ADVERTISE",
                         "SHOP_INSTANCE_ID", "PANEL_PASSWORD"}  # fmt: skip
    services = {_k8s_name(name): svc for name, svc in _services().items() if "build" in svc}
    for workload, container in all_containers(rendered):
        name = workload["metadata"]["name"]
        if name not in services:
            continue
        values = env_values(container)
        for key, value in _compose_env(services[name]).items():
            assert key in env(container), f"{name}: {key} is in compose's environment, not here"
            if key not in cluster_addresses:
                assert values.get(key) == value, f"{name}: {key}={values.get(key)}, compose {value}"
        assert values.get("OTEL_EXPORTER_OTLP_ENDPOINT") == "http://otel-agent:4317", name


def test_grpc_services_probe_budget_and_drain(rendered: tuple[Obj, ...]) -> None:
    grpc = _grpc_services()
    assert set(grpc) == {"order", "inventory", "payment", "recommendation", "notification"}
    budgets = of_kind(rendered, "PodDisruptionBudget")
    for name, compose in grpc.items():
        deployment = named(rendered, "Deployment", name)
        (container,) = containers(deployment)
        port = int(_compose_env(compose)["SHOP_LISTEN"].rsplit(":", 1)[1])
        assert env_values(container)["SHOP_LISTEN"] == f"0.0.0.0:{port}"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port, f"{name}: {probe} on gRPC health"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)], name
        assert env_values(container)["TELEMETRY_REDIS_URL"] == "redis://redis:6379/0", name
        advertise = env(container)["SHOP_ADVERTISE"]["value"]
        assert advertise == f"$(POD_IP):{port}", f"{name}: register the pod's own address"
        assert env(container)["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    for name in [*grpc, "gateway"]:
        deployment = named(rendered, "Deployment", name)
        (container,) = containers(deployment)
        drain = _pre_stop_seconds(container) + _grace_seconds(name)
        grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
        assert grace > drain, f"{name}: terminationGracePeriodSeconds {grace} <= {drain} s of drain"
    redis = named(rendered, "Service", "redis")
    assert [p["port"] for p in redis["spec"]["ports"]] == [6379]
    (redis_container,) = containers(named(rendered, "Deployment", "redis"))
    assert redis_container["readinessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    if "redis" in _services():  # the same server settings as compose's
        assert redis_container["args"] == _services()["redis"]["command"]


def test_services_and_budgets_select_pods(rendered: tuple[Obj, ...]) -> None:
    for service in of_kind(rendered, "Service"):
        selector = service["spec"].get("selector") or {}
        assert selected_workloads(rendered, selector), f"Service {service['metadata']['name']}"
    for budget in of_kind(rendered, "PodDisruptionBudget"):
        name, spec = budget["metadata"]["name"], budget["spec"]
        selected = selected_workloads(rendered, spec["selector"]["matchLabels"])
        assert selected, f"PodDisruptionBudget {name} selects no pods"
        for workload in selected:  # a node drain can always evict one pod
            if "minAvailable" in spec:
                fewest = min_replicas(rendered, workload)
                assert spec["minAvailable"] < fewest, f"{name}: minAvailable blocks drains"
            else:
                assert spec["maxUnavailable"] >= 1, name


def test_hpas_scale_existing_deployments_by_cpu(rendered: tuple[Obj, ...]) -> None:
    for hpa in of_kind(rendered, "HorizontalPodAutoscaler"):
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        deployment = named(rendered, target["kind"], target["name"])
        assert target["kind"] == "Deployment" and target["name"] in STATELESS
        # The HPA owns the count: a manifest's replicas would reset it on every apply.
        assert "replicas" not in deployment["spec"], f"{target['name']}: replicas beside its HPA"
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"
        (container,) = containers(deployment)  # utilization is relative to the request
        assert container["resources"]["requests"]["cpu"]


def test_demo_is_one_replica_each_with_the_load_generator() -> None:
    objects = render("overlays/demo")
    assert not of_kind(objects, "HorizontalPodAutoscaler")
    for deployment in of_kind(objects, "Deployment"):
        assert deployment["spec"]["replicas"] == 1, deployment["metadata"]["name"]
    named(objects, "Deployment", "loadgen")
    production = {w["metadata"]["name"] for w in workloads(render("overlays/production"))}
    assert "loadgen" not in production


def test_production_runs_two_or_more_spread_and_autoscaled() -> None:
    objects = render("overlays/production")
    stateless = {
        d["metadata"]["name"]
        for d in of_kind(objects, "Deployment")
        if d["metadata"]["labels"].get("telemetry-demo/stateless") == "true"
    }
    assert stateless == STATELESS
    for name in STATELESS:
        deployment = named(objects, "Deployment", name)
        hpa = hpa_for(objects, deployment)
        assert hpa is not None and hpa["spec"]["minReplicas"] >= 2, f"{name}: HPA from 2"
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"], name
        assert named(objects, "PodDisruptionBudget", name)["spec"]["minAvailable"] == 1, name
    for name in ("inventory", "otel-collector"):
        assert named(objects, "Deployment", name)["spec"]["replicas"] >= 2, name
    for deployment in of_kind(objects, "Deployment"):
        if deployment["metadata"]["labels"].get("app.kubernetes.io/component") == "shop":
            spread = pod_spec(deployment).get("topologySpreadConstraints") or []
            keys = {constraint["topologyKey"] for constraint in spread}
            assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    etcd_affinity = pod_spec(named(objects, "StatefulSet", "etcd"))["affinity"]["podAntiAffinity"]
    assert etcd_affinity["requiredDuringSchedulingIgnoredDuringExecution"]


# --- secrets ------------------------------------------------------------------------------------


def test_panel_password_only_from_a_secret(rendered: tuple[Obj, ...]) -> None:
    for workload, container in all_containers(rendered):
        for name, entry in env(container).items():
            if SECRET_NAMES.search(name):
                assert "value" not in entry, f"{workload['metadata']['name']}: {name} is a literal"
    (panel,) = containers(named(rendered, "Deployment", "panel"))
    reference = env(panel)["PANEL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert reference["key"] == "password"
    secrets = {s["metadata"]["name"]: s for s in of_kind(rendered, "Secret")}
    if any(ns["metadata"]["name"] == "telemetry-demo" for ns in of_kind(rendered, "Namespace")):
        secret = secrets[reference["name"]]  # generated, with its hash suffix
        password = base64.b64decode(secret["data"]["password"]).decode()
        assert "demo" in password and len(password) >= 8, "a clearly demo-only password"
    else:  # base and production: the operator's own Secret, never generated here
        assert not secrets, f"generated Secrets outside the demo: {sorted(secrets)}"
        assert reference["name"] == "panel-password"


def _peer_allowed(peer: Obj, labels: dict[str, str]) -> bool:
    selector = peer.get("podSelector", {})  # {}: every pod of the namespace
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(
        labels.get(e["key"]) in e["values"] if e["operator"] == "In" else False
        for e in selector.get("matchExpressions", [])
    )


def _ingress_allows(policy: Obj, labels: dict[str, str], port: int) -> bool:
    return any(
        any(p["port"] == port for p in rule.get("ports", []))
        and any(_peer_allowed(peer, labels) for peer in rule.get("from", []))
        for rule in policy["spec"].get("ingress", [])
    )


def test_network_policies_let_every_client_in_and_no_one_else(rendered: tuple[Obj, ...]) -> None:
    # A NetworkPolicy that forgot a client would cut it off silently in a cluster that enforces
    # them: every pod given ETCD_ENDPOINTS (or TELEMETRY_REDIS_URL) must be let in, others not.
    for name, variable, port in (
        ("etcd", "ETCD_ENDPOINTS", 2379),
        ("redis", "TELEMETRY_REDIS_URL", 6379),
    ):
        policy = named(rendered, "NetworkPolicy", name)
        assert selects(policy["spec"]["podSelector"]["matchLabels"], {"app.kubernetes.io/name": name})
        for workload in workloads(rendered):
            labels = workload["spec"]["template"]["metadata"]["labels"]
            client = any(variable in env(c) for c in containers(workload))
            allowed = _ingress_allows(policy, labels, port)
            if client:
                assert allowed, f"{workload['metadata']['name']} uses {name} but may not reach it"
            elif labels.get("app.kubernetes.io/name") != name:
                assert not allowed, f"{workload['metadata']['name']} may reach {name} without using it"
