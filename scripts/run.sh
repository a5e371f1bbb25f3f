#!/usr/bin/env bash
# The main job. For now: the runnable two-service example (order -> inventory) with an OTLP receiver
# and a load loop, on loopback. Arguments go to examples/quickstart/run.py (e.g. --duration 20).
source "$(dirname "$0")/_setup.sh"
exec python examples/quickstart/run.py "$@"
