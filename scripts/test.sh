#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, lint, types, tests. Non-zero on any failure.
# Extra arguments go to pytest (e.g. scripts/test.sh -k deadline).
source "$(dirname "$0")/_setup.sh"

ensure_tool openssl openssl  # the TLS test makes a throwaway certificate
ensure_tool etcd etcd-server  # discovery and live-rules tests run a real etcd
ensure_tool etcdctl etcd-client  # tests read and write etcd with the reference client
ensure_tool prometheus prometheus  # the native demo stack's Prometheus; promtool checks the configs
ensure_tool prometheus-alertmanager prometheus-alertmanager  # the native stack's Alertmanager; amtool checks its config
ensure_tool redis-server redis-server  # cluster rate limits on a real Redis (tests, native stack)
ensure_tool docker-compose docker-compose --no-install-recommends  # `config` validates the compose file
ensure_tool chromium chromium --no-install-recommends  # the panel's real-browser check

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
mypy telemetry services tests benchmarks examples
echo "== pytest"
python -m pytest -q "$@"
