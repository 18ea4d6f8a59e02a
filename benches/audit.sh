#!/usr/bin/env bash
# The audit log, measured in-process with `keygate bench-audit` (release build, data on the
# local disk, synchronous=FULL), RUNS runs each, medians:
#   1. sustained durable append rate: PRODUCERS tasks appending at once, each waiting for its
#      event to be durable (the issue's target: at least 50,000 events/s);
#   2. a store of EVENTS events (default 5,000,000) over 10 days and 100 keys, then one key's
#      24-hour window queried in-process and through `keygate audit query` against a gateway on
#      that store (target: under 100 ms);
#   3. incremental verification right after a checkpoint, and with a checkpoint interval
#      (10,000 events) after it (target: under 1 s); the first run checks every checkpoint's
#      signature, later ones (as in a running gateway) only new ones;
#   4. OpenBao audit records ingested from a file (request and response halves; the responses
#      become bypass findings: no gateway call made them).
# Options: RUNS (3), DURATION (10s), PRODUCERS (256), EVENTS (5000000), RECORDS (200000).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PRODUCERS="${PRODUCERS:-256}"
EVENTS="${EVENTS:-5000000}"
RECORDS="${RECORDS:-200000}"
build
med() { python3 -c 'import json,statistics,sys; f=sys.argv[1]; print(statistics.median(json.loads(l)[f] for l in open(sys.argv[2])))' "$@"; }

echo "== append: $PRODUCERS producers, $DURATION, $RUNS runs"
for i in $(seq "$RUNS"); do
  "$KEYGATE" bench-audit append --data-dir "$work/append-$i" --producers "$PRODUCERS" --duration "$DURATION" | tee -a "$work/append.jsonl"
  rm -rf "$work/append-$i"
done
echo "append: median $(med events_per_second "$work/append.jsonl") events/s"

echo "== fill: $EVENTS events"
"$KEYGATE" bench-audit fill --data-dir "$work/store" --events "$EVENTS" | tee "$work/fill.json"
du -sh "$work/store" | sed 's/^/store size: /'

echo "== incremental verify"
"$KEYGATE" bench-audit verify --data-dir "$work/store" --runs "$RUNS"

echo "== query: one key, a 24-hour window"
"$KEYGATE" bench-audit query --data-dir "$work/store" --runs "$((RUNS * 2 + 1))"
export KEYGATE_TOKEN=kg_bench_root_token
start_gateway --dev --dev-token "$KEYGATE_TOKEN" --data-dir "$work/store"
since=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["window_start"])' "$work/fill.json")
until=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["window_end"])' "$work/fill.json")
for i in $(seq "$((RUNS * 2 + 1))"); do
  python3 - "$KEYGATE" "$ENDPOINT" "$since" "$until" <<'PY' | tee -a "$work/cli-query.jsonl"
import json, subprocess, sys, time
keygate, endpoint, since, until = sys.argv[1:5]
t = time.monotonic()
out = subprocess.run([keygate, "--endpoint", endpoint, "--json", "audit", "query", "--key", "bench/key-0007",
                      "--since", since, "--until", until, "--limit", "100"], capture_output=True, check=True)
ms = (time.monotonic() - t) * 1000
print(json.dumps({"cli_ms": ms, "events": len(out.stdout.splitlines())}))
PY
done
echo "query through the CLI (process start, connection, gRPC, first 100 events): median $(med cli_ms "$work/cli-query.jsonl") ms"
stop_gateway

rm -rf "$work/store"

echo "== ingest: $RECORDS OpenBao records, $RUNS runs"
for i in $(seq "$RUNS"); do
  "$KEYGATE" bench-audit ingest --data-dir "$work/ingest-$i" --records "$RECORDS" | tee -a "$work/ingest.jsonl"
  rm -rf "$work/ingest-$i"
done
echo "ingest: median $(med records_per_second "$work/ingest.jsonl") records/s ($(med events_per_second "$work/ingest.jsonl") events/s)"
