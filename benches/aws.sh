#!/usr/bin/env bash
# Encrypt (AES-256, 32 bytes) on AWS KMS, here LocalStack (host mode, its own Python process),
# two ways in the same run, interleaved: straight through aws-sdk-kms
# (providers/aws/examples/direct_encrypt.rs) and through keygate's gateway with the aws-kms
# provider (`keygate bench`). Each run also drives the same gateway's local provider, the
# gateway's own ceiling at that moment (policy, audit commit, gRPC), so a slow run of the
# machine shows as such; and a local provider held by its guard.rate to PACED calls/s (default
# 450, about LocalStack's pace here): the gateway's own CPU per call at that low rate.
# Medians of RUNS runs each, the gateway / direct ratio, and CPU per call (utime+stime over the
# calls answered, warm-up included) of keygate, of LocalStack and of the direct client:
# keygate's CPU per call beyond the backend's.
#
#   RUNS=3 DURATION=8s CONCURRENCY=32 benches/aws.sh   (CONCURRENCY defaults to 32 here: LocalStack
#   answers from one Python process, and more calls in flight only queue there)
CONCURRENCY="${CONCURRENCY:-32}"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck disable=SC2119 # build takes extra cargo arguments, none here
build
(cd "$root" && cargo build --release --locked -q -p keygate-provider-aws --example direct_encrypt)
seconds="${DURATION%s}"
hz="$(getconf CLK_TCK)"

# LocalStack as tests/backends/src/localstack.rs starts it (KMS only here), in $work.
py="$("$root/tests/backends/install.sh" localstack | sed -n 's/^KEYGATE_LOCALSTACK_PYTHON=//p')"
ls_port="$(free_port)"; ls_dir="$work/localstack"; mkdir -p "$ls_dir/volume"
(cd "$ls_dir" && GATEWAY_LISTEN="127.0.0.1:$ls_port" SERVICES=kms EAGER_SERVICE_LOADING=1 \
  DISABLE_EVENTS=1 DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 SKIP_INFRA_DOWNLOADS=1 PERSISTENCE=0 \
  LOCALSTACK_VOLUME_DIR="$ls_dir/volume" CUSTOM_SSL_CERT_PATH="$ls_dir/server.test.pem" \
  FILESYSTEM_ROOT="$ls_dir/fs" exec "$py" -m localstack.runtime.main > "$work/localstack.log" 2>&1) &
ls_pid=$!
stop_localstack() { # TERM, then KILL: its graceful shutdown can take long
  kill "$ls_pid" 2>/dev/null || return 0
  for _ in $(seq 20); do kill -0 "$ls_pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$ls_pid" 2>/dev/null || true; wait "$ls_pid" 2>/dev/null || true
}
trap 'stop_localstack; cleanup' EXIT
localstack="http://127.0.0.1:$ls_port"
for _ in $(seq 360); do
  curl -fsS "$localstack/_localstack/health" 2>/dev/null | grep -Eq '"kms": *"(available|running)"' && break
  kill -0 "$ls_pid" 2>/dev/null || { echo "LocalStack exited:" >&2; tail -n 30 "$work/localstack.log" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "$localstack/_localstack/health" | grep -Eq '"kms": *"(available|running)"' \
  || { echo "LocalStack did not come up:" >&2; tail -n 30 "$work/localstack.log" >&2; exit 1; }

# Dev mode (its root token, its local provider with a generated master key) plus the aws-kms
# provider, as benches/overhead.sh runs its Vault gateway; the bench keys are made up front.
PACED="${PACED:-450}"
export KEYGATE_TOKEN=kg_bench_token_0123456789 BENCH_PASSPHRASE=bench-passphrase
export BENCH_AWS_ACCESS_KEY_ID=test BENCH_AWS_SECRET_ACCESS_KEY=test
cat > "$work/keygate.toml" <<TOML
dev_only = true
[providers.aws]
kind = "aws-kms"
region = "us-east-1"
endpoint_url = "$localstack"
credentials = { source = "env", access_key_id_env = "BENCH_AWS_ACCESS_KEY_ID", secret_access_key_env = "BENCH_AWS_SECRET_ACCESS_KEY" }
[providers.paced]
kind = "local"
passphrase = { env = "BENCH_PASSPHRASE" }
[providers.paced.guard]
rate = { per_second = $PACED, burst = 20 }
TOML
start_gateway --dev --dev-token "$KEYGATE_TOKEN" --data-dir "$work/data" --config "$work/keygate.toml"
# shellcheck disable=SC2128 # start_gateway sets ENDPOINT as a plain value (lib.sh also declares ENDPOINT[LABEL])
gateway="$ENDPOINT"
for provider in aws local paced; do
  KEYGATE_ENDPOINT="$gateway" "$KEYGATE" key create "bench/$provider-dek" --provider "$provider" \
    --algorithm aes-256-gcm --owner bench --crypto-period 365d > /dev/null
done

runs="$work/runs.jsonl"
# record LABEL OUT_JSON KG_TICKS LS_TICKS: one line of figures into $runs.
record() {
  python3 - "$1" "$2" "$3" "$4" "$seconds" "$hz" <<'PY' | tee -a "$runs"
import json, sys
label, path, kg, ls, secs, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
r = json.load(open(path)); ops = r["ops_per_second"]
# Calls answered: what the direct client counted, else the bench's rate over its 1 s warm-up too.
calls = max(r.get("calls_sent") or ops * (secs + 1), 1)
us = lambda ticks: round(ticks / hz / calls * 1e6, 1)
errors = r["errors"]
out = {"label": label, "ops": round(ops), "p50": r["latency_ms"]["p50"], "p99": r["latency_ms"]["p99"],
       "errors": sum(errors.values()) if isinstance(errors, dict) else errors,
       "keygate_us": us(kg), "localstack_us": us(ls)}
if "cpu_ticks" in r:
    out["client_us"] = us(r["cpu_ticks"])
print(json.dumps(out))
PY
}
for i in $(seq "$RUNS"); do
  echo "== run $i"
  a="$(ticks "$server_pid")"; b="$(ticks "$ls_pid")"
  "$CARGO_TARGET_DIR/release/examples/direct_encrypt" "$CONCURRENCY" "$seconds" "$localstack" > "$work/out.json"
  record direct "$work/out.json" $(($(ticks "$server_pid") - a)) $(($(ticks "$ls_pid") - b))
  for provider in aws local paced; do
    a="$(ticks "$server_pid")"; b="$(ticks "$ls_pid")"
    KEYGATE_ENDPOINT="$gateway" "$KEYGATE" bench --json --op encrypt --provider "$provider" \
      --key "bench/$provider-dek" --duration "$DURATION" --concurrency "$CONCURRENCY" 2> "$work/bench.err" > "$work/out.json" \
      || { echo "keygate bench --provider $provider failed:" >&2; cat "$work/bench.err" "$work/out.json" >&2; exit 1; }
    record "$provider" "$work/out.json" $(($(ticks "$server_pid") - a)) $(($(ticks "$ls_pid") - b))
  done
done
python3 - "$runs" "$CONCURRENCY" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def med(label, f):
    return statistics.median(r[f] for r in runs if r["label"] == label)
names = {"direct": "direct SDK", "aws": "gateway aws-kms", "local": "gateway local", "paced": "local, paced"}
print("\n== medians of %d runs, concurrency %s" % (sum(r["label"] == "direct" for r in runs), sys.argv[2]))
for l in ("direct", "aws", "local", "paced"):
    print("%-16s %6.0f ops/s  p50 %6.2f ms  p99 %6.2f ms  CPU per call: keygate %6.1f us, LocalStack %6.1f us%s" % (
        names[l], med(l, "ops"), med(l, "p50"), med(l, "p99"), med(l, "keygate_us"), med(l, "localstack_us"),
        ", client %.1f us" % med(l, "client_us") if l == "direct" else ""))
print("gateway / direct throughput: %.2f; p50 %.2f ms vs %.2f ms, p99 %.2f ms vs %.2f ms" % (
    med("aws", "ops") / med("direct", "ops"), med("aws", "p50"), med("direct", "p50"), med("aws", "p99"), med("direct", "p99")))
print("aws-kms / local provider through the same gateway: %.2f" % (med("aws", "ops") / med("local", "ops")))
kg, ls, cl, pc = med("aws", "keygate_us"), med("direct", "localstack_us"), med("direct", "client_us"), med("paced", "keygate_us")
print("keygate CPU per aws-kms call %.1f us = %.2fx LocalStack's per direct call (%.1f us); "
      "%.1f us beyond the direct SDK client's own %.1f us" % (kg, kg / ls, ls, kg - cl, cl))
print("keygate CPU per local call paced to %.0f/s: %.1f us (%.1f us at full speed); "
      "per aws-kms call %.1f us beyond the paced local call" % (med("paced", "ops"), pc, med("local", "keygate_us"), kg - pc))
PY
