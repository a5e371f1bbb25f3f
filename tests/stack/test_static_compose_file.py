"""Static checks of docker-compose.yml. docker-compose (1.29, Debian's package) validates the file
with ``config -q``; the rest is read as YAML. The rules checked are the ones the stack promises:
pinned images, one image for the repo's code, a healthcheck (or a stated reason) everywhere,
deterministic start order, memory limits both compose versions apply, a restart policy
everywhere, a ports table in the header that tells the truth, host paths that exist (mounted
read-only; state only in declared named volumes), modules that exist, addresses other containers
reach, the telemetry backends up before what sends or reads them, and no anonymous Grafana admin.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.compose_files import COMPOSE_FILE, ROOT, VERSION_TAG, _compose, _has_healthcheck, _services

GRAFANA_ENV = "grafana/grafana.env"

# Ports every demo user is told about; the rest may change.
REQUIRED_PORTS = {"gateway": 8080, "grafana": 3000, "jaeger": 16686, "prometheus": 9090, "panel": 8501}
TABLE_ROW = re.compile(r"^# \| (?P<service>[\w-]+)\s*\| (?P<port>\d+)\s*\| (?P<url>\S+)\s*\|$")
MEMORY = re.compile(r"^(?P<number>\d+)(?P<unit>[bkmg]?)$", re.IGNORECASE)


def _repo_services() -> dict[str, dict[str, Any]]:
    """Services that run this repository's code (the ones with a build section)."""
    return {name: svc for name, svc in _services().items() if "build" in svc}


def _default_profile(service: dict[str, Any]) -> bool:
    return not service.get("profiles")


def _depends_on(service: dict[str, Any]) -> dict[str, Any]:
    deps = service.get("depends_on", {})
    assert isinstance(deps, dict), f"depends_on must use the long form with conditions, got {deps!r}"
    return deps


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file", [])
    return [files] if isinstance(files, str) else list(files)


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each short-syntax port mapping."""
    out = []
    for entry in service.get("ports", []):
        assert isinstance(entry, str), f"use the short port syntax 'IP:HOST:CONTAINER', got {entry!r}"
        parts = entry.split("/")[0].split(":")
        assert len(parts) == 3, f"port {entry!r}: give the host IP explicitly (IP:HOST:CONTAINER)"
        out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def _memory_bytes(value: object) -> int:
    match = MEMORY.match(str(value).strip())
    assert match, f"memory limit {value!r}: expected e.g. 256m"
    scale = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match["unit"].lower()]
    return int(match["number"]) * scale


def _module_exists(module: str) -> bool:
    path = ROOT.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()


def _python_modules(command: object) -> list[str]:
    """Modules run with ``python -m X`` in a command or healthcheck test list."""
    if not isinstance(command, list):
        return []
    return [
        str(command[i + 2])
        for i in range(len(command) - 2)
        if str(command[i]).startswith("python") and command[i + 1] == "-m"
    ]


# --- docker-compose validates it ----------------------------------------------------------------


def test_docker_compose_accepts_the_file() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail(
            "docker-compose is not on PATH: the stack tests need it to validate docker-compose.yml "
            "(Debian package docker-compose; scripts/test.sh installs it)"
        )
    args = [tool, "-f", str(COMPOSE_FILE)]
    result = subprocess.run(
        [*args, "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}{result.stdout}"


def test_compose_spec_without_version_key() -> None:
    assert "version" not in _compose(), "the Compose Spec has no top-level version: remove it"


# --- images -------------------------------------------------------------------------------------


def test_every_image_is_pinned_to_a_release() -> None:
    for name, service in _services().items():
        image = service.get("image")
        assert isinstance(image, str), f"{name}: no image"
        if "build" in service:
            continue  # built here; its base image is checked in the Dockerfile test
        assert "@sha256:" in image or ":" in image.rsplit("/", 1)[-1], f"{name}: {image} has no tag"
        tag = image.split("@")[0].rsplit(":", 1)[-1]
        assert tag != "latest" and VERSION_TAG.match(tag), f"{name}: {image} is not pinned to a release"


def test_repository_code_runs_from_one_image_and_one_build() -> None:
    repo = _repo_services()
    assert repo, "no service builds this repository"
    builds = {yaml.safe_dump(svc["build"], sort_keys=True) for svc in repo.values()}
    images = {svc.get("image") for svc in repo.values()}
    assert len(builds) == 1, f"services build the repository differently: {sorted(builds)}"
    assert len(images) == 1 and None not in images, f"one tag for the repository image, got {images}"
    build = next(iter(repo.values()))["build"]
    context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (context / dockerfile).is_file(), f"build points at a missing {context / dockerfile}"
    (image,) = images
    others = [
        name for name, svc in _services().items() if svc.get("image") == image and name not in repo
    ]
    assert not others, f"{others} use {image} without its build section"
    expected = {"gateway", "order", "inventory-1", "inventory-2", "payment", "recommendation"}
    assert expected | {"notification", "loadgen", "panel"} <= set(repo), "a demo service is missing"


# --- health and start order ---------------------------------------------------------------------


def test_every_service_has_a_healthcheck_or_says_why_not() -> None:
    for name, service in _services().items():
        reason = service.get("x-healthcheck-reason")
        if _has_healthcheck(service):
            assert reason is None, f"{name}: has a healthcheck and an x-healthcheck-reason"
        else:
            assert isinstance(reason, str) and len(reason) > 20, (
                f"{name}: no healthcheck and no x-healthcheck-reason explaining why"
            )


def test_depends_on_waits_for_health_wherever_there_is_one() -> None:
    services = _services()
    for name, service in services.items():
        for dep, spec in _depends_on(service).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert isinstance(spec, dict) and "condition" in spec, f"{name} -> {dep}: no condition"
            expected = "service_healthy" if _has_healthcheck(services[dep]) else "service_started"
            assert spec["condition"] == expected, f"{name} -> {dep}: condition should be {expected}"
            if _default_profile(service):
                assert _default_profile(services[dep]), f"{name} depends on profile-only {dep}"


def _reaches(services: dict[str, dict[str, Any]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        current = todo.pop()
        if current == goal:
            return True
        if current not in seen:
            seen.add(current)
            todo.extend(_depends_on(services[current]))
    return False


def test_telemetry_backends_are_healthy_before_the_collector_and_grafana() -> None:
    services = _services()
    for backend in ("jaeger", "loki"):
        assert _has_healthcheck(services[backend]), f"{backend}: healthcheck"
        for client in ("otel-collector", "grafana"):
            spec = _depends_on(services[client]).get(backend)
            assert spec == {"condition": "service_healthy"}, f"{client} must wait for {backend}"
    loki = services["loki"]["healthcheck"]["test"]
    assert loki[0] == "CMD" and loki[-1] == "http://127.0.0.1:3100/ready", loki


def test_start_order_is_etcd_backends_order_gateway_loadgen() -> None:
    services = _services()
    backends = ["inventory-1", "inventory-2", "payment", "recommendation", "notification"]
    chain = [("order", b) for b in backends] + [("gateway", "order"), ("loadgen", "gateway")]
    chain += [(name, "etcd") for name in _repo_services()]
    chain += [(name, "otel-collector") for name in _repo_services()]
    for later, earlier in chain:
        assert _reaches(services, later, earlier), f"{later} does not wait for {earlier}"
    for name in services:
        assert not any(_reaches(services, dep, name) for dep in _depends_on(services[name])), (
            f"dependency cycle through {name}"
        )


# --- resources, restarts, ports -----------------------------------------------------------------


def test_every_service_has_a_memory_limit_both_compose_versions_apply() -> None:
    for name, service in _services().items():
        # mem_limit, not deploy.resources: docker-compose 1.29 ignores deploy limits without
        # --compatibility, Compose v2 applies both.
        assert "mem_limit" in service, f"{name}: no mem_limit"
        assert 64 << 20 <= _memory_bytes(service["mem_limit"]) <= 2 << 30, f"{name}: odd mem_limit"


def test_every_service_declares_a_restart_policy() -> None:
    # Killing a container is part of the demo: a long-running service comes back by itself. A
    # one-shot (init) container says so in x-one-shot and exits for good ("no") or retries failures.
    for name, service in _services().items():
        assert "restart" in service, f"{name}: no restart policy (restart: unless-stopped)"
        policy = service["restart"]
        assert isinstance(policy, str), f"{name}: restart {policy!r}: quote it (YAML reads no as false)"
        if service.get("x-one-shot"):
            assert policy == "no" or policy.startswith("on-failure"), f"{name}: one-shot, {policy}"
        else:
            assert policy in ("unless-stopped", "always"), (
                f"{name}: restart {policy}; a long-running service restarts unless-stopped "
                "(or set x-one-shot to say why it runs once)"
            )


def test_ports_table_in_the_header_matches_published_ports() -> None:
    rows = [TABLE_ROW.match(line) for line in COMPOSE_FILE.read_text().splitlines()]
    table = {m["service"]: int(m["port"]) for m in rows if m}
    urls = {m["service"]: m["url"] for m in rows if m}
    published: dict[str, int] = {}
    for name, service in _services().items():
        for host_ip, host_port, _ in _published(service):
            assert host_ip == "127.0.0.1", f"{name}: publish on 127.0.0.1 only (default credentials)"
            assert name not in published, f"{name}: publishes more than one port; extend the table"
            published[name] = host_port
    assert table == published, f"header table {table} != published ports {published}"
    for name, port in table.items():
        assert urls[name].startswith(f"http://localhost:{port}"), f"{name}: URL {urls[name]}"
    for name, port in REQUIRED_PORTS.items():
        assert (port, port) in {(h, c) for _, h, c in _published(_services()[name])}, f"{name}: {port}"


def _named_volumes() -> dict[str, Any]:
    volumes = _compose().get("volumes") or {}
    assert isinstance(volumes, dict), "top-level volumes: a mapping of volume names"
    return volumes


def _is_named_volume(source: str) -> bool:
    # Compose reads a source without a path prefix as a volume name.
    return not source.startswith(("./", "../", "/", "~"))


def test_every_mounted_host_path_exists() -> None:
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            assert isinstance(volume, str), f"{name}: use the short volume syntax, got {volume!r}"
            source = volume.split(":")[0]
            if _is_named_volume(source):
                continue  # state, checked below
            assert source.startswith("./"), f"{name}: {volume} is not a bind mount from the repo"
            assert (ROOT / source).exists(), f"{name}: mounts {source}, which does not exist"
            assert volume.endswith(":ro"), f"{name}: mount {volume} read-only"
        for env_file in _env_files(service):
            assert (ROOT / env_file).is_file(), f"{name}: env_file {env_file} does not exist"


def test_state_lives_only_in_declared_named_volumes() -> None:
    # Traces (Jaeger's Badger) and logs (Loki) survive a restart; nothing else keeps state.
    declared = _named_volumes()
    mounted: dict[str, str] = {}
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if _is_named_volume(source):
                assert source in declared, f"{name}: volume {source} is not declared under volumes:"
                assert source not in mounted, f"{source}: shared by {mounted[source]} and {name}"
                mounted[source] = name
                assert target.startswith("/"), f"{name}: {volume}"
    assert set(mounted) == set(declared), f"declared but unused volumes: {set(declared) - set(mounted)}"
    assert mounted == {"jaeger-data": "jaeger", "loki-data": "loki"}


# --- the services' own settings -----------------------------------------------------------------


def test_commands_and_healthchecks_name_modules_that_exist() -> None:
    for name, service in _repo_services().items():
        command = service.get("command")
        assert isinstance(command, list) and command, f"{name}: set command as a list"
        modules = _python_modules(command) + _python_modules(service["healthcheck"]["test"])
        assert modules, f"{name}: command should be python -m services.<name>"
        for module in modules:
            if module == "telemetry.panel":  # the control panel ships in the package
                assert (ROOT / "telemetry" / "panel" / "__main__.py").is_file()
                continue
            assert module.startswith("services."), f"{name}: runs {module}, not a demo service"
            assert _module_exists(module), (
                f"{name}: python -m {module}, but neither {module.replace('.', '/')}.py nor "
                f"{module.replace('.', '/')}/__main__.py exists"
            )


def test_services_advertise_the_address_other_containers_reach() -> None:
    for name, service in _repo_services().items():
        env = _environment(service)
        assert env.get("ETCD_ENDPOINTS") == "etcd:2379", f"{name}: ETCD_ENDPOINTS"
        assert env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == "http://otel-collector:4317", name
        assert env.get("OTEL_LOGS_EXPORTER") == "otlp", f"{name}: log records to the collector (Loki)"
        if "SHOP_ADVERTISE" in env:
            host, _, port = env["SHOP_ADVERTISE"].rpartition(":")
            assert host == name, f"{name}: advertises {host}, not its compose name"
            assert env["SHOP_LISTEN"].endswith(f":{port}"), f"{name}: listens and advertises apart"
            assert env["SHOP_LISTEN"].startswith("0.0.0.0:"), f"{name}: listen on all interfaces"
        if name in ("order", "inventory-1", "inventory-2", "payment", "recommendation", "notification"):
            assert env.get("SHOP_LISTEN") == "0.0.0.0:50051", f"{name}: gRPC port per the contract"
            assert "SHOP_ADVERTISE" in env, f"{name}: registers in etcd, so it needs SHOP_ADVERTISE"


def test_grafana_has_no_anonymous_admin_and_reads_credentials_from_the_env_file() -> None:
    grafana = _services()["grafana"]
    assert GRAFANA_ENV in _env_files(grafana), f"grafana: env_file {GRAFANA_ENV}"
    from_file = _read_env_file(ROOT / GRAFANA_ENV)
    inline = _environment(grafana)
    for key in ("GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"):
        assert from_file.get(key), f"{GRAFANA_ENV}: {key} missing"
        assert key not in inline, f"grafana: {key} belongs in {GRAFANA_ENV}, not in environment"
    settings = {**from_file, **inline}
    if settings.get("GF_AUTH_ANONYMOUS_ENABLED", "false").lower() == "true":
        assert settings.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer", "anonymous users must be Viewers"
    assert settings.get("GF_AUTH_DISABLE_LOGIN_FORM", "false").lower() != "true"
    assert "change" in (ROOT / GRAFANA_ENV).read_text().lower(), f"{GRAFANA_ENV}: say to change them"
