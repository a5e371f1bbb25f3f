"""Static checks of the Dockerfile and .dockerignore: a pinned base image, a non-root user,
dependencies installed before the code is copied, extras that exist in pyproject.toml, and a
.dockerignore that keeps local state out and lets the copied sources in.
"""

from __future__ import annotations

import re
import tomllib

from stack.compose_files import ROOT, VERSION_TAG

DOCKERFILE = ROOT / "Dockerfile"


def _dockerfile_lines() -> list[str]:
    """Instructions with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [
        line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


# --- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_pins_its_base_runs_as_non_root_and_installs_deps_before_code() -> None:
    lines = _dockerfile_lines()
    (base,) = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert base.startswith("python:3.11.") and VERSION_TAG.match(base.split(":")[1]), base
    assert "WORKDIR /app" in lines
    assert not any(line.upper().startswith(("CMD", "ENTRYPOINT")) for line in lines), (
        "compose picks the service with command:, the image has no CMD"
    )
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the image must end as a non-root user"

    def index(prefix: str) -> int:
        return next(i for i, line in enumerate(lines) if line.startswith(prefix))

    deps = next(i for i, line in enumerate(lines) if "pip install -r" in line)
    assert index("COPY pyproject.toml") < deps < index("COPY telemetry") < index("COPY services"), (
        "install dependencies from pyproject.toml before copying code, so code edits reuse the layer"
    )


def test_dockerfile_extras_exist_in_pyproject() -> None:
    (extras,) = [m for line in _dockerfile_lines() if (m := re.match(r"ARG EXTRAS=(\S+)", line))]
    pyproject = (ROOT / "pyproject.toml").read_text()
    optional = tomllib.loads(pyproject)["project"]["optional-dependencies"]
    for extra in extras[1].split(","):
        assert extra in optional, f"Dockerfile installs extra [{extra}], which pyproject.toml lacks"
    # The services use what compose gives them: etcd (discovery, rules), Redis (cluster limits).
    assert {"etcd", "redis", "demo"} <= set(extras[1].split(","))


def test_dockerignore_keeps_local_state_out_and_lets_copied_sources_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore should be an allow-list starting with '*'"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for line in _dockerfile_lines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert source.rstrip("/") in allowed, f".dockerignore drops {source}, which COPY needs"
    assert not allowed & {".venv", ".run", ".git", "tests", "benchmarks"}
