#!/usr/bin/env bash
# Encrypt (AES-256, 32 bytes) on Google Cloud KMS, here the Cloud KMS emulator (its own
# process), two ways in the same run, interleaved: straight through google-cloud-kms-v1
# (providers/gcp/examples/gcp_direct_encrypt.rs) and through keygate's gateway with the gcp-kms
# provider (`keygate bench`). Medians of RUNS runs each, and their ratio: the gateway's cost.
# Each run also drives the same gateway's local provider, the gateway's own ceiling at that
# moment (policy, audit commit, gRPC), so a slow run of the machine shows as such.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck disable=SC2119 # build takes extra cargo arguments, none here
build
(cd "$root" && cargo build --release --locked -q -p keygate-provider-gcp --example gcp_direct_encrypt \
  && cargo build --release --locked -q -p keygate-emulators --bin keygate-emulators)
seconds="${DURATION%s}"

emulator_port="$(free_port)"
"$CARGO_TARGET_DIR/release/keygate-emulators" gcp --listen "127.0.0.1:$emulator_port" > "$work/emulator.log" 2>&1 &
emulator_pid=$!
trap 'kill "$emulator_pid" 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 100); do grep -q "listening on" "$work/emulator.log" 2>/dev/null && break; sleep 0.1; done
emulator="http://127.0.0.1:$emulator_port"

# Dev mode (its root token, which the owner and separation-of-duties rules exempt) with the two
# providers, as benches/aws.sh runs its gateway; the bench keys are made up front.
export KEYGATE_TOKEN=kg_bench_token_0123456789 BENCH_PASSPHRASE=bench-passphrase
cat > "$work/keygate.toml" <<TOML
dev_only = true
default_provider = "gcp"
[storage]
data_dir = "$work/data"
[providers.local]
kind = "local"
passphrase = { env = "BENCH_PASSPHRASE" }
[providers.gcp]
kind = "gcp-kms"
project = "bench"
location = "global"
key_ring = "keygate"
endpoint = "$emulator"
credentials = { source = "anonymous" }
TOML
start_gateway --dev --dev-token "$KEYGATE_TOKEN" --config "$work/keygate.toml"
# shellcheck disable=SC2128 # start_gateway sets ENDPOINT as a plain value (lib.sh also declares ENDPOINT[LABEL])
endpoint="$ENDPOINT"
for provider in gcp local; do
  KEYGATE_ENDPOINT="$endpoint" "$KEYGATE" key create "bench/$provider-dek" --provider "$provider" \
    --algorithm aes-256-gcm --owner bench --crypto-period 365d > /dev/null
done

direct="$work/direct.jsonl"; gateway="$work/gateway.jsonl"; local_="$work/local.jsonl"
summary() {
  python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); l=r["latency_ms"]; print("%-8s %6.0f ops/s  p50 %.2f ms  p99 %.2f ms  errors %s" % (sys.argv[1], r["ops_per_second"], l["p50"], l["p99"], r["errors"]))' "$1"
}
for i in $(seq "$RUNS"); do
  echo "== run $i"
  "$CARGO_TARGET_DIR/release/examples/gcp_direct_encrypt" "$emulator" "$CONCURRENCY" "$seconds" | tee -a "$direct" | summary direct
  KEYGATE_ENDPOINT="$endpoint" "$KEYGATE" bench --json --op encrypt --provider gcp --key bench/gcp-dek \
    --duration "$DURATION" --concurrency "$CONCURRENCY" 2>/dev/null | tee -a "$gateway" | summary gateway
  KEYGATE_ENDPOINT="$endpoint" "$KEYGATE" bench --json --op encrypt --provider local --key bench/local-dek \
    --duration "$DURATION" --concurrency "$CONCURRENCY" 2>/dev/null | tee -a "$local_" | summary local
done
python3 - "$direct" "$gateway" "$RUNS" "$CONCURRENCY" "$local_" <<'PY'
import json, statistics, sys
def load(p): return [json.loads(l) for l in open(p)]
d, g, l = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[5])
med = lambda rs, f: statistics.median(f(r) for r in rs)
for label, rs in (("direct SDK", d), ("gateway", g), ("local", l)):
    print("%-10s median %6.0f ops/s, p50 %.2f ms, p99 %.2f ms (%d runs, concurrency %s)" % (
        label, med(rs, lambda r: r["ops_per_second"]), med(rs, lambda r: r["latency_ms"]["p50"]),
        med(rs, lambda r: r["latency_ms"]["p99"]), len(rs), sys.argv[4]))
ratio = med(g, lambda r: r["ops_per_second"]) / med(d, lambda r: r["ops_per_second"])
print("gateway / direct throughput: %.2f; p50 latency %.2f ms vs %.2f ms" % (
    ratio, med(g, lambda r: r["latency_ms"]["p50"]), med(d, lambda r: r["latency_ms"]["p50"])))
print("gcp-kms / local provider through the same gateway: %.2f" % (
    med(g, lambda r: r["ops_per_second"]) / med(l, lambda r: r["ops_per_second"])))
PY
