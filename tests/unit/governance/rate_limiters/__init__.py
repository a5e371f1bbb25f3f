"""The rate limiters (telemetry.governance.ratelimit), driven by a FakeClock: no sleeps, exact
counts. Time steps are binary fractions (0.25, 1/64 ...) wherever a count must be exact, so float
rounding never decides a test; the 1 ns tolerance is checked separately with decimal steps.

A package so that its conftest.py and support module have their own module names
(``rate_limiters.conftest``) beside the root ``conftest``.
"""
