#!/usr/bin/env bash
# The guard's token bucket holds a provider instance to its configured rate: encrypt on a local
# provider with `guard.rate` set, driven well above that rate, reporting achieved ops/s against
# the configured rate (medians of RUNS runs). The bucket's burst is kept small so the first
# second's burst adds little to a run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RATES="${RATES:-500 2000 8000}"
BURST="${BURST:-20}"
# shellcheck disable=SC2119 # build takes extra cargo arguments, none here
build
export KEYGATE_TOKEN=kg_bench_token_0123456789 BENCH_PASSPHRASE=bench-passphrase
for rate in $RATES; do
  echo "== guard.rate.per_second = $rate (burst $BURST)"
  # Dev mode (its root token, which the owner and separation-of-duties rules exempt) with the
  # limited provider, as benches/aws.sh runs its paced one; the bench key is made up front.
  cat > "$work/keygate.toml" <<TOML
dev_only = true
default_provider = "limited"
[storage]
data_dir = "$work/data-$rate"
[providers.limited]
kind = "local"
passphrase = { env = "BENCH_PASSPHRASE" }
[providers.limited.guard]
rate = { per_second = $rate, burst = $BURST }
TOML
  start_gateway --dev --dev-token "$KEYGATE_TOKEN" --config "$work/keygate.toml"
  # shellcheck disable=SC2128 # start_gateway sets ENDPOINT as a plain value (lib.sh also declares ENDPOINT[LABEL])
  KEYGATE_ENDPOINT="$ENDPOINT" "$KEYGATE" key create "bench/limited-$rate" --provider limited \
    --algorithm aes-256-gcm --owner bench --crypto-period 365d > /dev/null
  bench_runs "rate $rate/s" --op encrypt --provider limited --key "bench/limited-$rate" | tee "$work/rate-$rate.txt"
  stop_gateway
  python3 -c 'import re,sys; g=float(re.search(r"median (\d+)", open(sys.argv[1]).read().splitlines()[-1]).group(1)); r=float(sys.argv[2]); print("achieved / configured at %g/s: %.0f / %g = %.1f%%" % (r, g, r, 100*g/r))' "$work/rate-$rate.txt" "$rate"
done
