#!/usr/bin/env bash
# The main job: the demo stack. With a running Docker engine: `docker compose up --build` (Grafana,
# Jaeger, the OTel Collector, Prometheus, etcd, every service). Without one: the native stack of
# what installs here (etcd, Prometheus, every service and the load generator as local processes;
# see services/stack.py). Arguments go to the native launcher (e.g. --duration 120 --rate 30).
# STACK=native forces the native stack.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${STACK:-}" != "native" ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  compose=()
  if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
  fi
  if [ "${#compose[@]}" -gt 0 ]; then
    if [ "$#" -gt 0 ]; then
      echo "warning: arguments ($*) apply to the native stack only (STACK=native ./scripts/run.sh $*)" >&2
    fi
    exec "${compose[@]}" up --build
  fi
fi

echo "no Docker engine: starting the native stack" >&2
source scripts/_setup.sh
ensure_tool etcd etcd-server
ensure_tool prometheus prometheus
ensure_tool prometheus-alertmanager prometheus-alertmanager || true  # alerts; the stack runs on without
ensure_tool etcdctl etcd-client || true  # for the README's fault commands; the panel does without
exec python -m services.stack "$@"
