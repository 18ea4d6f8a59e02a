#!/usr/bin/env bash
# Bulk re-encryption after rotation: `keygate bench-rewrap` seals COUNT ciphertexts under v1,
# rotates twice, re-encrypts UNARY of them with one ReEncrypt call each and all COUNT through
# ReEncryptStream, at the same concurrency in the same run, and checks every new ciphertext
# decrypts under v3. Prints each run and the median stream / unary ratio (target: at least 5).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
COUNT="${COUNT:-100000}"
UNARY="${UNARY:-20000}"
REWRAP_CONCURRENCY="${REWRAP_CONCURRENCY:-8}"
build
export KEYGATE_TOKEN=kg_bench_root_token
start_gateway --dev --dev-token "$KEYGATE_TOKEN" --data-dir "$work/data"
out="$work/rewrap.jsonl"
for i in $(seq "$RUNS"); do
  KEYGATE_ENDPOINT="$ENDPOINT" "$KEYGATE" bench-rewrap --count "$COUNT" --unary-count "$UNARY" \
    --concurrency "$REWRAP_CONCURRENCY" --server-pid "$server_pid" 2>/dev/null | tee -a "$out" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print("  run: unary %6.0f/s  stream %7.0f/s  ratio %.1f  verified %d of %d  server peak RSS %s kB" % (r["unary"]["per_second"], r["stream"]["per_second"], r["ratio"], r["verified"], r["stream"]["ciphertexts"], r["server_peak_rss_kb"]))'
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
med = lambda f: statistics.median(f(r) for r in runs)
print("rewrap, local provider: median unary %.0f/s, stream %.0f/s, ratio %.1f (%d runs)" % (
    med(lambda r: r["unary"]["per_second"]), med(lambda r: r["stream"]["per_second"]),
    med(lambda r: r["ratio"]), len(runs)))
PY
