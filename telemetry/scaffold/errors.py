"""The one error `telemetry new` and `telemetry regen` report: bad input, said in a sentence."""

from __future__ import annotations


class ScaffoldError(Exception):
    """Input the generator refuses (a .proto that does not compile, a bad name, a non-empty
    directory ...); raised before anything is written, so a refusal leaves the disk as it was."""
