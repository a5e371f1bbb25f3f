"""Checks shared by the tests of the panel's control transforms (``telemetry.panel.controls``)."""

from __future__ import annotations

import copy
from typing import Any


def methods(section: Any) -> dict[str, Any]:
    """A ``server`` or ``client`` section's ``methods``, checked to be there."""
    assert isinstance(section, dict)
    found = section["methods"]
    assert isinstance(found, dict)
    return found


def twice(transform: Any, value: Any) -> Any:
    """Apply ``transform`` once, check a second application changes nothing, return the value."""
    once = transform(copy.deepcopy(value))
    assert transform(copy.deepcopy(once)) == once
    return once
