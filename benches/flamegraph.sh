#!/usr/bin/env bash
# A flame graph of the local-provider encrypt path under load: `keygate serve --dev` with its
# data directory on the local disk (durable audit), `keygate bench --op encrypt` driving it,
# and `perf record` on the server in the middle of the run (cpu-clock: this VM has no hardware
# counters; DWARF call graphs from .eh_frame, so a plain release build will do).
#
#   benches/flamegraph.sh OUT.svg       CONCURRENCY=64 SECONDS_RECORDED=8
# Needs perf (Debian's linux-perf) and inferno (cargo install inferno) on PATH.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
out="${1:?usage: benches/flamegraph.sh OUT.svg}"
recorded="${SECONDS_RECORDED:-8}"
for tool in perf inferno-collapse-perf inferno-flamegraph; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (see the header)" >&2; exit 2; }
done
build
export KEYGATE_TOKEN=kg_bench_token_0123456789
start_gateway --dev --dev-token "$KEYGATE_TOKEN" --data-dir "$work/data"
KEYGATE_ENDPOINT="$ENDPOINT" "$KEYGATE" key create bench/dek --algorithm aes-256-gcm \
  --owner bench --crypto-period 365d > /dev/null
KEYGATE_ENDPOINT="$ENDPOINT" "$KEYGATE" bench --op encrypt --key bench/dek \
  --duration "$((recorded + 4))s" --concurrency "$CONCURRENCY" > "$work/bench.txt" 2>/dev/null &
bench_pid=$!
sleep 2
perf record -q -e cpu-clock -F 499 -g --call-graph dwarf,32768 -p "$server_pid" \
  -o "$work/perf.data" -- sleep "$recorded" 2>/dev/null
wait "$bench_pid"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf > "$work/folded.txt"
inferno-flamegraph --title "keygate local encrypt, audit on disk, concurrency $CONCURRENCY" \
  < "$work/folded.txt" > "$out"
cp "$work/folded.txt" "${out%.svg}.folded"
cat "$work/bench.txt"
echo "flame graph: $out, its folded stacks: ${out%.svg}.folded"
