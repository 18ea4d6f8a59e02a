#!/usr/bin/env bash
# Starts LocalStack (KMS only, host mode) in the background for manual use.
#   localstack/start.sh [PORT]      (default 4566)
# Installs it first if needed (localstack/install.sh). Its pid, log and data live in
# $KEYGATE_BACKENDS_CACHE (default ~/.cache/keygate-backends)/localstack-run/.
# Use: AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 and endpoint
# http://127.0.0.1:PORT. Stop with localstack/stop.sh. The tests start their own instance.
set -euo pipefail
port="${1:-4566}"
cache="${KEYGATE_BACKENDS_CACHE:-$HOME/.cache/keygate-backends}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$("$here/install.sh" "$cache" | tail -n 1)"
run="$cache/localstack-run"
mkdir -p "$run/volume"
if [ -f "$run/pid" ] && kill -0 "$(cat "$run/pid")" 2>/dev/null; then
  echo "LocalStack already running (pid $(cat "$run/pid"))"; exit 0
fi
cd "$run"
GATEWAY_LISTEN="127.0.0.1:$port" SERVICES=kms EAGER_SERVICE_LOADING=1 \
DISABLE_EVENTS=1 DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 SKIP_INFRA_DOWNLOADS=1 PERSISTENCE=0 \
LOCALSTACK_VOLUME_DIR="$run/volume" FILESYSTEM_ROOT="$run/fs" \
  nohup "$py" -m localstack.runtime.main >"$run/localstack.log" 2>&1 &
echo $! >"$run/pid"
for _ in $(seq 1 180); do
  if curl -fsS "http://127.0.0.1:$port/_localstack/health" 2>/dev/null | grep -Eq '"kms": *"(available|running)"'; then
    echo "LocalStack KMS ready on http://127.0.0.1:$port (pid $(cat "$run/pid"), log $run/localstack.log)"
    exit 0
  fi
  kill -0 "$(cat "$run/pid")" 2>/dev/null || break
  sleep 0.5
done
echo "LocalStack did not come up; last log lines:" >&2
tail -n 30 "$run/localstack.log" >&2
exit 1
