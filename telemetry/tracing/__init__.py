"""Tracing: provider/exporter setup, samplers, and the server/client span concerns."""

from telemetry.tracing.samplers import RateLimitingSampler, sampler_from_name

__all__ = ["RateLimitingSampler", "sampler_from_name"]
