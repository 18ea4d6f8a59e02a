#!/usr/bin/env bash
# The cost of telemetry, side by side in one run: the local-provider encrypt benchmark against
#   off   keygate with no telemetry configured
#   on    keygate exporting traces and metrics over OTLP/gRPC to a counting sink
#         (examples/otlp_sink.rs) and serving the Prometheus endpoint, scraped every second
# Both data directories on tmpfs, so the figures show CPU, not fsync. Interleaved, RUNS
# times; prints each run, the medians, on/off, and what the sink received.
#
#   benches/telemetry.sh            RUNS=3 DURATION=8s CONCURRENCY=64
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
build --example otlp_sink
SINK="$CARGO_TARGET_DIR/release/examples/otlp_sink"
seconds="${DURATION%s}"
hz="$(getconf CLK_TCK)"
shm="$(mktemp -d /dev/shm/keygate-telemetry-XXXXXX)"
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$shm"; cleanup' EXIT

sink_port="$(free_port)"
"$SINK" "127.0.0.1:$sink_port" > "$work/sink.log" 2>&1 &
SINK_PID=$!; pids+=($!)
wait_for "$work/sink.log" "otlp sink on"

export KEYGATE_TOKEN=kg_bench_token_0123456789
serve() { # LABEL [CONFIG]
  local config=()
  [ -z "${2:-}" ] || config=(--config "$2")
  serve_as "$1" "$KEYGATE" "$shm/$1" "${config[@]}"
  KEYGATE_ENDPOINT="${ENDPOINT[$1]}" "$KEYGATE" key create bench/dek --algorithm aes-256-gcm \
    --owner bench --crypto-period 365d > /dev/null
}
serve off
metrics_port="$(free_port)"
cat > "$work/on.toml" <<TOML
dev_only = true
[telemetry]
otlp_endpoint = "http://127.0.0.1:$sink_port"
prometheus_listen = "127.0.0.1:$metrics_port"
TOML
serve on "$work/on.toml"
# A scrape a second, as a Prometheus with scrape_interval 1s would.
( while sleep 1; do curl -sf "http://127.0.0.1:$metrics_port/metrics" > /dev/null || true; done ) &
pids+=($!)

runs="$work/runs.jsonl"
run() { # LABEL
  local a b
  a="$(ticks "${PID[$1]}")"
  KEYGATE_ENDPOINT="${ENDPOINT[$1]}" "$KEYGATE" bench --json --op encrypt --key bench/dek \
    --duration "$DURATION" --concurrency "$CONCURRENCY" 2>/dev/null > "$work/out.json"
  b="$(ticks "${PID[$1]}")"
  python3 - "$1" "$work/out.json" "$a" "$b" "$seconds" "$hz" <<'PY' | tee -a "$runs"
import json, sys
label, path, a, b, secs, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
r = json.load(open(path)); ops = r["ops_per_second"]
calls = ops * (secs + 1)  # the bench's 1 s warm-up is served too
print(json.dumps({"label": label, "ops": round(ops), "p50": r["latency_ms"]["p50"], "p99": r["latency_ms"]["p99"],
                  "us_per_call": round((b - a) / hz / max(calls, 1) * 1e6, 1)}))
PY
}
for i in $(seq "$RUNS"); do
  echo "== run $i"
  # Alternate which goes first, so neither always meets a warmer machine.
  if [ $((i % 2)) -eq 1 ]; then run off; run on; else run on; run off; fi
done

kill "${PID[on]}"; wait "${PID[on]}" 2>/dev/null || true   # flushes its last export
kill "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true
python3 - "$runs" "$work/sink.log" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
med = {l: {f: statistics.median(r[f] for r in runs if r["label"] == l) for f in ("ops", "p50", "p99", "us_per_call")} for l in ("off", "on")}
print("\n== medians of %d runs" % sum(1 for r in runs if r["label"] == "off"))
for l in ("off", "on"):
    m = med[l]
    print("%-4s %7.0f ops/s  p50 %6.2f ms  p99 %6.2f ms  server CPU %6.1f us/call" % (l, m["ops"], m["p50"], m["p99"], m["us_per_call"]))
print("on / off: ops/s %.2f  p99 %.2fx  CPU per call %.2fx" % (med["on"]["ops"] / med["off"]["ops"], med["on"]["p99"] / med["off"]["p99"], med["on"]["us_per_call"] / med["off"]["us_per_call"]))
print("sink: " + open(sys.argv[2]).read().strip().splitlines()[-1])
PY
