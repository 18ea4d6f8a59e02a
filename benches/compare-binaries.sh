#!/usr/bin/env bash
# Two keygate binaries side by side in one run: each serves its own gateway (dev mode, data on
# the local disk); the same client (NEW's `keygate bench`) drives them in turn, interleaved,
# RUNS times. Prints every run, then the medians and the NEW/OLD ratios of ops/s and server
# CPU per call.
#
#   benches/compare-binaries.sh OLD_KEYGATE NEW_KEYGATE [bench args, e.g. --op encrypt]
#   RUNS=3 DURATION=8s CONCURRENCY=64
set -euo pipefail
OLD="${1:?usage: compare-binaries.sh OLD_KEYGATE NEW_KEYGATE [bench args]}"
NEW="${2:?usage: compare-binaries.sh OLD_KEYGATE NEW_KEYGATE [bench args]}"
shift 2
[ $# -gt 0 ] || set -- --op encrypt
RUNS="${RUNS:-3}"; DURATION="${DURATION:-8s}"; CONCURRENCY="${CONCURRENCY:-64}"
TOKEN=kg_bench_root_token_0123456789
work="$(mktemp -d "${TMPDIR:-/var/tmp}/keygate-compare-XXXXXX")"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

declare -A ENDPOINT PID
for label in old new; do
  bin=$OLD; [ "$label" = new ] && bin=$NEW
  p=$(port)
  "$bin" serve --dev --dev-token "$TOKEN" --listen "127.0.0.1:$p" --data-dir "$work/$label" --log warn \
    >"$work/$label.log" 2>&1 &
  PID[$label]=$!; pids+=($!)
  ENDPOINT[$label]="http://127.0.0.1:$p"
  for _ in $(seq 100); do grep -q "listening on" "$work/$label.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$work/$label.log" || { cat "$work/$label.log" >&2; exit 1; }
done

secs=$(python3 -c "import sys; d=sys.argv[1]; print(float(d[:-1]) if d.endswith('s') else float(d))" "$DURATION")
for i in $(seq "$RUNS"); do
  for label in old new; do
    a=$(ticks "${PID[$label]}")
    KEYGATE_ENDPOINT="${ENDPOINT[$label]}" KEYGATE_TOKEN="$TOKEN" "$NEW" bench --json \
      --duration "$DURATION" --concurrency "$CONCURRENCY" "$@" 2>/dev/null >"$work/out.json"
    b=$(ticks "${PID[$label]}")
    python3 - "$label" "$work/out.json" "$a" "$b" "$secs" "$(getconf CLK_TCK)" <<'PY' | tee -a "$work/runs"
import json, sys
label, path, a, b, secs, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
r = json.load(open(path)); ops = r["ops_per_second"]
us = (b - a) / hz / max(ops * (secs + 1), 1) * 1e6   # +1 s of bench warm-up
print(json.dumps({"label": label, "ops": round(ops), "p50": r["latency_ms"]["p50"], "p99": r["latency_ms"]["p99"], "server_us_per_op": round(us, 1), "errors": r["errors"]}))
PY
  done
done
python3 - "$work/runs" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
med = lambda lab, f: statistics.median(r[f] for r in runs if r["label"] == lab)
for lab in ("old", "new"):
    print(f"{lab}: median {med(lab, 'ops'):.0f} ops/s, p50 {med(lab, 'p50'):.2f} ms, p99 {med(lab, 'p99'):.2f} ms, {med(lab, 'server_us_per_op')} us server CPU/call")
print(f"new/old: ops/s {med('new', 'ops') / med('old', 'ops'):.3f}, CPU per call {med('new', 'server_us_per_op') / med('old', 'server_us_per_op'):.3f}")
PY
