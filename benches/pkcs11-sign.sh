#!/usr/bin/env bash
# ECDSA P-256 sign on SoftHSM2: through the gateway, and with a plain cryptoki loop using the
# same number of sessions (providers/pkcs11/examples/softhsm_sign_bench.rs).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
POOLS="${POOLS:-1 2 4}"
module="$("$root/tests/backends/install.sh" softhsm | sed -n 's/^KEYGATE_PKCS11_MODULE=//p')"
# shellcheck disable=SC2119 # build takes extra cargo arguments, none here
build
(cd "$root" && cargo build --release --locked -q -p keygate-provider-pkcs11 --example softhsm_sign_bench)
seconds="${DURATION%s}"

mkdir -p "$work/tokens"
export SOFTHSM2_CONF="$work/softhsm2.conf"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" > "$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label bench --so-pin 1234 --pin 5678 > /dev/null
export KEYGATE_TOKEN=kg_bench_token_0123456789 BENCH_PIN=5678 BENCH_PASSPHRASE=bench-passphrase

for pool in $POOLS; do
  echo "== $pool session(s)"
  raw="$work/raw-$pool.txt"
  for _ in $(seq "$RUNS"); do
    KEYGATE_PKCS11_MODULE="$module" "$CARGO_TARGET_DIR/release/examples/softhsm_sign_bench" "$pool" "$seconds" token |
      tee /dev/stderr | sed -E 's/.* ([0-9]+) ops\/s.*/\1/' >> "$raw"
  done 2> >(sed 's/^/  run: /' >&2)
  raw_median="$(sort -n "$raw" | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}')"
  echo "raw SoftHSM2 loop, $pool session(s): median $raw_median ops/s ($RUNS runs)"
  # Dev mode (its root token, which the owner and separation-of-duties rules exempt) with the
  # PKCS#11 provider, as benches/aws.sh runs its gateway; the bench key is made up front.
  cat > "$work/keygate.toml" <<TOML
dev_only = true
default_provider = "local"
[storage]
data_dir = "$work/data-$pool"
[providers.local]
kind = "local"
passphrase = { env = "BENCH_PASSPHRASE" }
[providers.hsm]
kind = "pkcs11"
module = "$module"
token = { label = "bench" }
user_pin = { env = "BENCH_PIN" }
session_pool_size = $pool
TOML
  start_gateway --dev --dev-token "$KEYGATE_TOKEN" --config "$work/keygate.toml"
  # shellcheck disable=SC2128 # start_gateway sets ENDPOINT as a plain value (lib.sh also declares ENDPOINT[LABEL])
  KEYGATE_ENDPOINT="$ENDPOINT" "$KEYGATE" key create bench/hsm-p256 --provider hsm \
    --algorithm ecdsa-p256 --owner bench --crypto-period 365d > /dev/null
  bench_runs "gateway, pool $pool" --op sign --provider hsm --key "bench/hsm-p256" | tee "$work/gw-$pool.txt"
  stop_gateway
  python3 -c 'import re,sys; g=float(re.search(r"median (\d+)", open(sys.argv[1]).read().splitlines()[-1]).group(1)); print("gateway / raw with %s session(s): %.0f%%" % (sys.argv[3], 100*g/float(sys.argv[2])))' "$work/gw-$pool.txt" "$raw_median" "$pool"
done
