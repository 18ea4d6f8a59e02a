#!/usr/bin/env bash
# Stops the LocalStack started by localstack/start.sh.
set -euo pipefail
run="${KEYGATE_BACKENDS_CACHE:-$HOME/.cache/keygate-backends}/localstack-run"
if [ -f "$run/pid" ] && kill -0 "$(cat "$run/pid")" 2>/dev/null; then
  kill "$(cat "$run/pid")"
  echo "LocalStack stopped"
else
  echo "LocalStack is not running"
fi
rm -f "$run/pid"
