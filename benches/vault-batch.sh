#!/usr/bin/env bash
# Bulk re-encryption on the Vault provider, two keygate binaries side by side in one run: each
# serves its own gateway on one OpenBao dev server, and NEW's `keygate bench-rewrap
# --provider vault` drives them in turn, interleaved, RUNS times (COUNT ciphertexts through
# ReEncryptStream, UNARY through one ReEncrypt call each). A binary whose Vault provider sends
# batch items as Transit `batch_input` shows it in the stream rate; the unary rate is the
# same work one call at a time on each. Prints every run, then the medians and NEW/OLD.
#
#   benches/vault-batch.sh OLD_KEYGATE NEW_KEYGATE
#   RUNS=3 COUNT=20000 UNARY=5000 REWRAP_CONCURRENCY=8
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OLD="${1:?usage: vault-batch.sh OLD_KEYGATE NEW_KEYGATE}"
NEW="${2:?usage: vault-batch.sh OLD_KEYGATE NEW_KEYGATE}"
COUNT="${COUNT:-20000}"
UNARY="${UNARY:-5000}"
REWRAP_CONCURRENCY="${REWRAP_CONCURRENCY:-8}"

trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; cleanup' EXIT
export KEYGATE_TOKEN=kg_bench_token_0123456789 BENCH_VAULT_TOKEN=bench-root
start_openbao

serve_as old "$OLD" "$work/old" --config "$work/vault.toml"
serve_as new "$NEW" "$work/new" --config "$work/vault.toml"

out="$work/runs.jsonl"
for i in $(seq "$RUNS"); do
  for label in old new; do
    KEYGATE_ENDPOINT="${ENDPOINT[$label]}" "$NEW" bench-rewrap --provider vault --count "$COUNT" \
      --unary-count "$UNARY" --concurrency "$REWRAP_CONCURRENCY" --server-pid "${PID[$label]}" 2>/dev/null |
      python3 -c 'import json,sys; r=json.load(sys.stdin); r["label"]=sys.argv[1]; print(json.dumps(r))' "$label" |
      tee -a "$out" |
      python3 -c 'import json,sys; r=json.load(sys.stdin); print("  %s: unary %6.0f/s  stream %7.0f/s  verified %d of %d" % (r["label"], r["unary"]["per_second"], r["stream"]["per_second"], r["verified"], r["stream"]["ciphertexts"]))'
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for label in ("old", "new"):
    mine = [r for r in runs if r["label"] == label]
    med[label] = (statistics.median(r["unary"]["per_second"] for r in mine),
                  statistics.median(r["stream"]["per_second"] for r in mine))
    print("%s: median unary %.0f/s, stream %.0f/s (%d runs)" % (label, med[label][0], med[label][1], len(mine)))
print("stream new/old %.2f; stream/unary old %.1f, new %.1f" % (
    med["new"][1] / med["old"][1], med["old"][1] / med["old"][0], med["new"][1] / med["new"][0]))
PY
