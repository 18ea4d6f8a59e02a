#!/usr/bin/env bash
# Stops the LocalStack started by localstack/start.sh: TERM, then KILL if it lingers
# (its graceful shutdown can take longer than anyone wants to wait).
set -euo pipefail
run="${KEYGATE_BACKENDS_CACHE:-$HOME/.cache/keygate-backends}/localstack-run"
if [ -f "$run/pid" ] && kill -0 "$(cat "$run/pid")" 2>/dev/null; then
  pid="$(cat "$run/pid")"
  kill "$pid"
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  echo "LocalStack stopped"
else
  echo "LocalStack is not running"
fi
rm -f "$run/pid"
