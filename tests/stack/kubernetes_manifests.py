"""What the Kubernetes manifest checks share: deploy/kubernetes/ rendered with kubectl's own
kustomize (once per kustomization per test run), and helpers to walk the rendered objects.

The configuration files are the repository's (the ones docker-compose.yml mounts), outside the
kustomization roots, hence ``--load-restrictor LoadRestrictionsNone`` (docs/kubernetes.md).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
import yaml

from stack.compose_files import ROOT

KUSTOMIZE_DIR = ROOT / "deploy" / "kubernetes"
KUSTOMIZATIONS = ("base", "overlays/demo", "overlays/production")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# Kubernetes objects are plain mappings here (as PyYAML loads them).
Obj = dict[str, Any]

# The three etcd members' client URLs (base/etcd.yaml): what every etcd client is given.
ETCD_MEMBERS = tuple(f"etcd-{n}.etcd-peers:2379" for n in range(3))


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail(
            "kubectl not found on PATH: install it (https://kubernetes.io/docs/tasks/tools/); "
            "its built-in kustomize renders deploy/kubernetes/, and these checks must not be skipped"
        )
    return path


@cache
def render(kustomization: str) -> tuple[Obj, ...]:
    """Every object of ``deploy/kubernetes/<kustomization>``, as kubectl renders it."""
    result = subprocess.run(
        [kubectl(), "kustomize", "--load-restrictor", "LoadRestrictionsNone",
         str(KUSTOMIZE_DIR / kustomization)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"kubectl kustomize {kustomization} failed:\n{result.stderr}"
    objects = tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)
    assert objects, f"{kustomization}: rendered nothing"
    return objects


def of_kind(objects: tuple[Obj, ...], *kinds: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] in kinds]


def named(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    found = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(objects: tuple[Obj, ...]) -> list[Obj]:
    return of_kind(objects, *WORKLOAD_KINDS)


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def all_containers(objects: tuple[Obj, ...]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, container) for every container of every workload."""
    for workload in workloads(objects):
        for container in containers(workload):
            yield workload, container


def env(container: Obj) -> dict[str, Obj]:
    """A container's env entries by name (each with ``value`` or ``valueFrom``)."""
    return {entry["name"]: entry for entry in container.get("env", [])}


def env_values(container: Obj) -> dict[str, str]:
    """The literal values of a container's env (entries from ``valueFrom`` left out)."""
    return {name: str(entry["value"]) for name, entry in env(container).items() if "value" in entry}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def selected_workloads(objects: tuple[Obj, ...], selector: dict[str, str]) -> list[Obj]:
    """Workloads whose pod template carries every label of ``selector``."""
    return [
        w for w in workloads(objects) if selects(selector, w["spec"]["template"]["metadata"]["labels"])
    ]


def hpa_for(objects: tuple[Obj, ...], workload: Obj) -> Obj | None:
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) == (workload["kind"], workload["metadata"]["name"]):
            return hpa
    return None


def min_replicas(objects: tuple[Obj, ...], workload: Obj) -> int:
    """The fewest pods a Deployment or StatefulSet runs: its HPA's minimum, else its replicas."""
    hpa = hpa_for(objects, workload)
    if hpa is not None:
        return int(hpa["spec"].get("minReplicas", 1))
    return int(workload["spec"].get("replicas", 1))


def image_parts(image: str) -> tuple[str, str]:
    """(repository, tag) of ``registry/name:tag``; the tag is "" when there is none."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag, only a registry's port
        return image, ""
    return name, tag
