"""Structured logging: one pipeline for structlog and stdlib, a non-blocking writer, access lines."""

from telemetry.logging.pipeline import add_log_fields, configure, get_logger

__all__ = ["add_log_fields", "configure", "get_logger"]
