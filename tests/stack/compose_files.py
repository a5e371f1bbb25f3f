"""What the demo stack's static checks share: the repository root, the pattern of a pinned release
tag, YAML loading, and docker-compose.yml's services (and whether one has a healthcheck), read as
YAML: no Docker engine is needed.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

# A concrete release: 1.2.3 or v1.2.3, optionally with a suffix (3.11.15-slim-bookworm).
VERSION_TAG = re.compile(r"^v?\d+\.\d+\.\d+([-.+][\w.-]+)?$")


def _load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path}: expected a mapping at the top"
    return data


@cache
def _compose() -> dict[str, Any]:
    return _load_yaml(COMPOSE_FILE)


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict) and services, "docker-compose.yml: no services"
    return services


def _has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    if not isinstance(check, dict) or check.get("disable"):
        return False
    test = check.get("test")
    return bool(test) and test not in (["NONE"], "NONE")
