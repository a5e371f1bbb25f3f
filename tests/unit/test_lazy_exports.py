"""``telemetry``'s public names load on first use (PEP 562): each one, from several threads at
once, and the subpackages as attributes, in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys

import telemetry

FIRST_USE_FROM_THREADS = """
import sys, threading
import telemetry
names = list(telemetry.__all__)
errors = []
start = threading.Barrier(8)
def touch(offset):
    start.wait()
    for name in names[offset:] + names[:offset]:
        try:
            getattr(telemetry, name)
        except Exception as exc:
            errors.append(f"{name}: {exc!r}")
threads = [threading.Thread(target=touch, args=(i * 4,)) for i in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print("\\n".join(errors) or "ok")
"""


def run(script: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_every_public_name_resolves() -> None:
    for name in telemetry.__all__:
        assert getattr(telemetry, name) is not None, name
    assert set(telemetry.__all__) <= set(dir(telemetry))


def test_first_use_from_many_threads_at_once() -> None:
    for _ in range(3):  # each in a fresh interpreter: the first use is the racy one
        assert run(FIRST_USE_FROM_THREADS) == "ok"


def test_subpackages_are_attributes_as_after_import() -> None:
    script = "import telemetry; print(telemetry.governance.Governance.__name__, telemetry.rpc.__name__)"
    assert run(script) == "Governance telemetry.rpc"
    assert run("import telemetry; print(hasattr(telemetry, 'no_such_part'))") == "False"
