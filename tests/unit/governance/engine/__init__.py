"""The governance engine (telemetry.governance.engine), deterministic: a FakeClock, a fixed CPU
reading and no channel factory. A package so that its conftest.py and support module have their
own module names (``engine.conftest``) beside the root ``conftest``.
"""
