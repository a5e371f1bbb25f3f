"""Service configuration: a YAML file per service, then environment overrides.

``services/config/<name>.yaml`` (or the file named by ``SHOP_CONFIG``) holds every setting with its
default. ``SHOP_<KEY>`` overrides a top-level scalar (``SHOP_LISTEN=0.0.0.0:50051``,
``SHOP_MAX_WORKERS=8``), parsed as the type the file gives it; ``ETCD_ENDPOINTS`` overrides ``etcd``.
A bad value fails at start with a message naming the variable or the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "config"
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class ServiceConfigError(ValueError):
    """A setting is missing or has the wrong type; the message names it."""


def load(name: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    path = Path(env.get("SHOP_CONFIG") or CONFIG_DIR / f"{name}.yaml")
    try:
        settings = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ServiceConfigError(f"{path}: {exc}") from exc
    if not isinstance(settings, dict):
        raise ServiceConfigError(f"{path}: expected a mapping of settings")
    for key, default in list(settings.items()):
        variable = f"SHOP_{key.upper()}"
        if variable in env and not isinstance(default, dict | list):
            settings[key] = parse(variable, env[variable], default)
    if env.get("ETCD_ENDPOINTS"):
        settings["etcd"] = env["ETCD_ENDPOINTS"]
    return settings


def parse(variable: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        if raw.strip().lower() not in _BOOLEANS:
            raise ServiceConfigError(f"{variable}: expected true or false, got {raw!r}")
        return _BOOLEANS[raw.strip().lower()]
    if isinstance(default, int | float):
        try:
            return type(default)(raw)
        except ValueError:
            raise ServiceConfigError(
                f"{variable}: expected {type(default).__name__}, got {raw!r}"
            ) from None
    return raw


def require(settings: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """``settings[key]`` checked against ``kind``; a clear error naming the field otherwise."""
    if key not in settings:
        raise ServiceConfigError(f"{key}: missing")
    value = settings[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise ServiceConfigError(f"{key}: expected {_names(kind)}, got {value!r}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))
