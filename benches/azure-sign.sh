#!/usr/bin/env bash
# ECDSA P-256 sign on the Key Vault emulator (HTTPS, real crypto): through the gateway's Azure
# provider, and the same load sent straight to the emulator through the Azure SDK
# (providers/azure/examples/direct_sign.rs). The two alternate run by run against one
# emulator, so both see the same machine; medians of RUNS each, and their ratio.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
build --bin keygate-emulators -p keygate-emulators
(cd "$root" && cargo build --release --locked -q -p keygate-provider-azure --example direct_sign)
seconds="${DURATION%s}"

port="$(free_port)"
"$CARGO_TARGET_DIR/release/keygate-emulators" azure --listen "127.0.0.1:$port" --ca-out "$work/ca.pem" > "$work/emulator.log" 2>&1 &
emulator_pid=$!
trap 'kill "$emulator_pid" 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 100); do grep -q "listening on" "$work/emulator.log" && break; sleep 0.1; done
vault="https://127.0.0.1:$port/"

# Dev mode (its root token, which the owner and separation-of-duties rules exempt) with the
# Azure provider, as benches/aws.sh runs its gateway; the bench key is made up front.
export KEYGATE_TOKEN=kg_bench_token_0123456789 BENCH_PASSPHRASE=bench-passphrase
echo "bench-client-secret" > "$work/client-secret"
cat > "$work/keygate.toml" <<TOML
dev_only = true
default_provider = "local"
[storage]
data_dir = "$work/data"
[providers.local]
kind = "local"
passphrase = { env = "BENCH_PASSPHRASE" }
[providers.azure]
kind = "azure-keyvault"
vault_url = "$vault"
authority_host = "$vault"
ca_bundle = "$work/ca.pem"
verify_challenge_resource = false
credential = { source = "client-secret", tenant_id = "bench", client_id = "keygate-bench", secret = { file = "$work/client-secret" } }
TOML
start_gateway --dev --dev-token "$KEYGATE_TOKEN" --config "$work/keygate.toml"
# shellcheck disable=SC2128 # start_gateway sets ENDPOINT as a plain value (lib.sh also declares ENDPOINT[LABEL])
endpoint="$ENDPOINT"
KEYGATE_ENDPOINT="$endpoint" "$KEYGATE" key create bench/kv-p256 --provider azure \
  --algorithm ecdsa-p256 --owner bench --crypto-period 365d > /dev/null

gw="$work/gateway.jsonl"; direct="$work/direct.jsonl"
for i in $(seq "$RUNS"); do
  KEYGATE_ENDPOINT="$endpoint" "$KEYGATE" bench --json --op sign --provider azure --key bench/kv-p256 \
    --duration "$DURATION" --concurrency "$CONCURRENCY" 2>/dev/null >> "$gw"
  "$CARGO_TARGET_DIR/release/examples/direct_sign" "$CONCURRENCY" "$seconds" "$vault" "$work/ca.pem" >> "$direct"
  python3 - "$gw" "$direct" "$i" <<'PY'
import json, sys
g = json.loads(open(sys.argv[1]).read().splitlines()[-1]); d = json.loads(open(sys.argv[2]).read().splitlines()[-1])
print("  run %s: gateway %6.0f ops/s p50 %.2f ms p99 %.2f ms errors %s | direct SDK %6.0f ops/s p50 %.2f ms p99 %.2f ms errors %s" % (
    sys.argv[3], g["ops_per_second"], g["latency_ms"]["p50"], g["latency_ms"]["p99"], g["errors"],
    d["ops_per_second"], d["latency_ms"]["p50"], d["latency_ms"]["p99"], d["errors"]))
PY
done
python3 - "$gw" "$direct" <<'PY'
import json, statistics, sys
g = [json.loads(l) for l in open(sys.argv[1])]; d = [json.loads(l) for l in open(sys.argv[2])]
med = lambda rs, f: statistics.median(f(r) for r in rs)
go, do = med(g, lambda r: r["ops_per_second"]), med(d, lambda r: r["ops_per_second"])
print("gateway (Azure provider): median %.0f ops/s, p50 %.2f ms, p99 %.2f ms (%d runs)" % (go, med(g, lambda r: r["latency_ms"]["p50"]), med(g, lambda r: r["latency_ms"]["p99"]), len(g)))
print("direct SDK:               median %.0f ops/s, p50 %.2f ms, p99 %.2f ms (%d runs)" % (do, med(d, lambda r: r["latency_ms"]["p50"]), med(d, lambda r: r["latency_ms"]["p99"]), len(d)))
print("gateway / direct: %.2f" % (go / do))
PY
