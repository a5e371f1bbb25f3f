"""The package's version, read once from the installed distribution's metadata (pyproject.toml is its
one source). It is ``telemetry.__version__`` and the instrumentation scope version of every span this
package makes: the RPC spans and the spans handler code starts through ``Telemetry.tracer``."""

from __future__ import annotations

import importlib.metadata
from typing import Final

DISTRIBUTION: Final = "grpc-telemetry-toolkit"
_UNINSTALLED = "0.1.0"  # run from a source tree that was never installed: pyproject.toml's version


def _installed_version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return _UNINSTALLED


VERSION: Final = _installed_version()
SCOPE_NAME: Final = "telemetry"
"""The instrumentation scope name of this package's spans, RPC and handler spans alike."""
