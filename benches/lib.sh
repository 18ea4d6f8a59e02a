# Shared by the benchmark scripts: build, a gateway on a free port, medians.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/keygate-target}"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-10s}"
CONCURRENCY="${CONCURRENCY:-64}"
# KEYGATE=path and NO_BUILD=1 measure a binary built before (e.g. an older commit's).
KEYGATE="${KEYGATE:-$CARGO_TARGET_DIR/release/keygate}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/keygate-bench-XXXXXX")"
server_pid=""

cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

build() {
  [ -z "${NO_BUILD:-}" ] || return 0
  echo "== building (release)" >&2
  (cd "$root" && cargo build --release --locked -q -p keygate --bin keygate "$@")
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_gateway ARGS...: `keygate serve ARGS` in the background; sets ENDPOINT.
start_gateway() {
  local port; port="$(free_port)"
  # Emptied before the server starts: a log left by the previous gateway says "listening on".
  : > "$work/serve.log"
  "$KEYGATE" serve --listen "127.0.0.1:$port" --log warn "$@" > "$work/serve.log" 2>&1 &
  server_pid=$!
  ENDPOINT="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    grep -q "listening on" "$work/serve.log" 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log" >&2; return 1; }
    sleep 0.1
  done
  echo "keygate did not start:" >&2; cat "$work/serve.log" >&2; return 1
}

stop_gateway() {
  kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

# bench_runs LABEL ARGS...: RUNS runs of `keygate bench --json ARGS`, one line each, then the medians.
bench_runs() {
  local label="$1"; shift
  local out="$work/runs-$RANDOM.jsonl"
  for i in $(seq "$RUNS"); do
    KEYGATE_ENDPOINT="$ENDPOINT" "$KEYGATE" bench --json --duration "$DURATION" \
      --concurrency "$CONCURRENCY" "$@" 2>/dev/null | tee -a "$out" |
      python3 -c 'import json,sys; r=json.load(sys.stdin); l=r["latency_ms"]; print("  run: %6.0f ops/s  p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms  errors %s" % (r["ops_per_second"], l["p50"], l["p99"], l["p99.9"], l["max"], r["errors"]))'
  done
  python3 - "$label" "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[2])]
med = lambda f: statistics.median(f(r) for r in runs)
print("%s: median %.0f ops/s, p50 %.2f ms, p99 %.2f ms (%d runs)" % (
    sys.argv[1], med(lambda r: r["ops_per_second"]), med(lambda r: r["latency_ms"]["p50"]),
    med(lambda r: r["latency_ms"]["p99"]), len(runs)))
PY
}

# The scripts below run several servers at once: each one's PID goes into `pids` (the script's
# EXIT trap stops them), and a gateway's into PID[LABEL] and ENDPOINT[LABEL].
pids=()
declare -A PID ENDPOINT

# ticks PID: CPU time (user + system, in clock ticks) the process has used so far.
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# wait_for LOG TEXT: until LOG holds TEXT (15 s at most).
wait_for() {
  for _ in $(seq 150); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "did not start:" >&2; cat "$1" >&2; return 1
}

# serve_as LABEL BINARY DATA_DIR [ARGS...]: `BINARY serve --dev` on a free port, with
# KEYGATE_TOKEN as its dev token; sets PID[LABEL] and ENDPOINT[LABEL].
serve_as() {
  local label="$1" binary="$2" data="$3" port; shift 3
  port="$(free_port)"
  "$binary" serve --dev --dev-token "$KEYGATE_TOKEN" --listen "127.0.0.1:$port" --data-dir "$data" \
    --log warn "$@" > "$work/$label.log" 2>&1 &
  PID[$label]=$!; pids+=($!); ENDPOINT[$label]="http://127.0.0.1:$port"
  wait_for "$work/$label.log" "listening on"
}

# start_openbao: an OpenBao dev server (root token BENCH_VAULT_TOKEN) with Transit mounted, and
# `$work/vault.toml`, a gateway configuration whose default provider is it. Sets `vault` (its
# address) and PID[openbao].
start_openbao() {
  local bao port
  bao="$("$root/tests/backends/install.sh" openbao | sed -n 's/^KEYGATE_BAO_BIN=//p')"
  port="$(free_port)"; vault="http://127.0.0.1:$port"
  "$bao" server -dev -dev-root-token-id="$BENCH_VAULT_TOKEN" -dev-listen-address="127.0.0.1:$port" \
    > "$work/openbao.log" 2>&1 &
  PID[openbao]=$!; pids+=($!)
  for _ in $(seq 100); do curl -sf "$vault/v1/sys/health" >/dev/null && break; sleep 0.1; done
  curl -sf -H "X-Vault-Token: $BENCH_VAULT_TOKEN" -X POST -d '{"type":"transit"}' "$vault/v1/sys/mounts/transit"
  cat > "$work/vault.toml" <<TOML
dev_only = true
default_provider = "vault"
[providers.vault]
kind = "vault"
address = "$vault"
mount = "transit"
auth = { method = "token", token = { env = "BENCH_VAULT_TOKEN" } }
TOML
}
