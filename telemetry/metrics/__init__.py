"""Prometheus metrics: go-grpc-prometheus RPC families and their HTTP exposition."""
