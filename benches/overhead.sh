#!/usr/bin/env bash
# The cost of a call, side by side in one run (the ratios of the performance targets):
#   bare     a tonic + AES-256-GCM server speaking keygate.v1 Encrypt and nothing else
#            (../shared/bench-baseline, or BASELINE_DIR): the ceiling on this machine
#   disk     keygate, local provider, audit on the local disk (synchronous=FULL)
#   tmpfs    the same with the data directory in /dev/shm
#   vault    keygate's vault provider in front of an OpenBao dev server (concurrency VAULT_C)
#   vault-alone  the same binary with shared batch requests off (`coalesce = { in_flight = 0 }`):
#            every call its own Transit request, as before sharing
#   openbao  wrk posting the same Transit encrypt straight to that OpenBao (VAULT_C connections)
# Each run drives all five in turn, RUNS times; every figure is printed with the server's CPU
# per call (utime+stime of the serving process over the calls it answered), then the medians
# and the ratios: disk/bare, tmpfs/bare, vault/openbao, and keygate's own CPU per Vault call
# against its CPU per local call.
#
#   benches/overhead.sh [OLD_KEYGATE]     with OLD_KEYGATE, its disk, tmpfs and Vault figures too
#   RUNS=3 DURATION=8s CONCURRENCY=64 VAULT_C=32
#   ONLY="bare disk tmpfs vault vault-alone openbao"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OLD="${1:-}"
VAULT_C="${VAULT_C:-32}"
# The old binary's servers join the run unless ONLY names what to drive.
[ -n "${ONLY:-}" ] && only_given=1 || only_given=""
ONLY="${ONLY:-bare disk tmpfs vault vault-alone openbao}"
BASELINE_DIR="${BASELINE_DIR:-$root/../shared/bench-baseline}"
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }
build
seconds="${DURATION%s}"
hz="$(getconf CLK_TCK)"

# The bare server, built outside the clone.
basebuild="$HOME/.cache/keygate-bench-baseline"
mkdir -p "$basebuild"
cp -r "$BASELINE_DIR"/Cargo.toml "$BASELINE_DIR"/Cargo.lock "$BASELINE_DIR"/build.rs \
  "$BASELINE_DIR"/src "$BASELINE_DIR"/proto "$basebuild"/
(cd "$basebuild" && CARGO_TARGET_DIR="$basebuild/target" cargo build --release -q)
shm="$(mktemp -d /dev/shm/keygate-bench-XXXXXX)"
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$shm"; cleanup' EXIT
export KEYGATE_TOKEN=kg_bench_token_0123456789 BENCH_VAULT_TOKEN=bench-root

port="$(free_port)"
"$basebuild/target/release/kg-baseline" "127.0.0.1:$port" > "$work/bare.log" 2>&1 &
PID[bare]=$!; pids+=($!); ENDPOINT[bare]="http://127.0.0.1:$port"
serve_as disk "$KEYGATE" "$work/disk"
serve_as tmpfs "$KEYGATE" "$shm/data"
if [ -n "$OLD" ]; then
  serve_as old-disk "$OLD" "$work/old-disk"
  serve_as old-tmpfs "$OLD" "$shm/old-data"
  [ -n "$only_given" ] || ONLY="$ONLY old-disk old-tmpfs"
fi

start_openbao
curl -sf -H "X-Vault-Token: $BENCH_VAULT_TOKEN" -X POST -d '{"type":"aes256-gcm96"}' "$vault/v1/transit/keys/direct" > /dev/null
cat > "$work/encrypt.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"plaintext":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Vault-Token"] = "$BENCH_VAULT_TOKEN"
LUA
serve_as vault "$KEYGATE" "$work/vault-gw" --config "$work/vault.toml"
{ cat "$work/vault.toml"; printf '[providers.vault.guard]\ncoalesce = { in_flight = 0 }\n'; } \
  > "$work/vault-alone.toml"
serve_as vault-alone "$KEYGATE" "$work/vault-alone-gw" --config "$work/vault-alone.toml"
if [ -n "$OLD" ]; then
  serve_as old-vault "$OLD" "$work/old-vault-gw" --config "$work/vault.toml"
  [ -n "$only_given" ] || ONLY="$ONLY old-vault"
fi

for label in disk tmpfs old-disk old-tmpfs vault vault-alone old-vault; do
  [ -n "${ENDPOINT[$label]:-}" ] || continue
  KEYGATE_ENDPOINT="${ENDPOINT[$label]}" "$KEYGATE" key create bench/dek --algorithm aes-256-gcm \
    --owner bench --crypto-period 365d > /dev/null
done

runs="$work/runs.jsonl"
kg_run() { # LABEL CONCURRENCY
  local a b
  a="$(ticks "${PID[$1]}")"
  KEYGATE_ENDPOINT="${ENDPOINT[$1]}" "$KEYGATE" bench --json --op encrypt --key bench/dek \
    --duration "$DURATION" --concurrency "$2" 2>/dev/null > "$work/out.json"
  b="$(ticks "${PID[$1]}")"
  python3 - "$1" "$work/out.json" "$a" "$b" "$seconds" "$hz" <<'PY' | tee -a "$runs"
import json, sys
label, path, a, b, secs, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
r = json.load(open(path)); ops = r["ops_per_second"]
calls = ops * (secs + 1)  # the bench's 1 s warm-up is served too
print(json.dumps({"label": label, "ops": round(ops), "p50": r["latency_ms"]["p50"], "p99": r["latency_ms"]["p99"],
                  "errors": sum(r["errors"].values()) if isinstance(r["errors"], dict) else r["errors"],
                  "us_per_call": round((b - a) / hz / max(calls, 1) * 1e6, 1)}))
PY
}
wrk_run() {
  local a b out
  a="$(ticks "${PID[openbao]}")"
  out="$(wrk -t2 -c"$VAULT_C" -d"$DURATION" --latency -s "$work/encrypt.lua" "$vault/v1/transit/encrypt/direct")"
  b="$(ticks "${PID[openbao]}")"
  python3 - "$a" "$b" "$hz" <<PY | tee -a "$runs"
import json, re, sys
out = """$out"""
a, b, hz = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
n = int(re.search(r"(\d+) requests in", out).group(1))
p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)", out); p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out)
ms = lambda m: float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)]
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print(json.dumps({"label": "openbao", "ops": round(rps), "p50": ms(p50), "p99": ms(p99),
                  "errors": int(non2xx.group(1)) if non2xx else 0,
                  "us_per_call": round((b - a) / hz / max(n, 1) * 1e6, 1)}))
PY
}

for i in $(seq "$RUNS"); do
  echo "== run $i"
  for label in $ONLY; do
    case "$label" in
      openbao) wrk_run ;;
      vault|vault-alone|old-vault) kg_run "$label" "$VAULT_C" ;;
      *) kg_run "$label" "$CONCURRENCY" ;;
    esac
  done
done

python3 - "$runs" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
labels = list(dict.fromkeys(r["label"] for r in runs))
med = {l: {f: statistics.median(r[f] for r in runs if r["label"] == l) for f in ("ops", "p50", "p99", "us_per_call")} for l in labels}
print("\n== medians of %d runs" % max(sum(1 for r in runs if r["label"] == l) for l in labels))
for l in labels:
    m = med[l]
    print("%-10s %7.0f ops/s  p50 %6.2f ms  p99 %6.2f ms  server CPU %6.1f us/call" % (l, m["ops"], m["p50"], m["p99"], m["us_per_call"]))
def ratio(a, b, what):
    if a in med and b in med:
        print("%-16s ops/s %.2f  p99 %.2fx  CPU per call %.2fx" % (what, med[a]["ops"] / med[b]["ops"], med[a]["p99"] / med[b]["p99"], med[a]["us_per_call"] / med[b]["us_per_call"]))
print("\n== ratios")
ratio("disk", "bare", "disk / bare")
ratio("tmpfs", "bare", "tmpfs / bare")
ratio("old-disk", "bare", "old disk / bare")
ratio("old-tmpfs", "bare", "old tmpfs / bare")
ratio("vault", "openbao", "vault / openbao")
ratio("vault-alone", "openbao", "vault, unshared / openbao")
ratio("old-vault", "openbao", "old vault / openbao")
if "vault" in med and "disk" in med:
    print("keygate CPU per Vault call %.1f us = %.2fx its CPU per local call (disk)" % (med["vault"]["us_per_call"], med["vault"]["us_per_call"] / med["disk"]["us_per_call"]))
PY
