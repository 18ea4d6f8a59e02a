#!/usr/bin/env bash
# keygate on PostgreSQL against keygate on SQLite, in one run on this machine: local-provider
# encrypt ops/s (closed loop, CONCURRENCY calls in flight in all) through
#   sqlite — one gateway, SQLite in its data directory (synchronous=FULL);
#   pg-1   — one replica on PostgreSQL (fsync and synchronous_commit on);
#   pg-3   — three replicas on that PostgreSQL at once, a bench per replica, ops/s summed;
# then durable audit appends per second on PostgreSQL from one writer and from three (as three
# replicas append to one chain), beside SQLite's. RUNS sets, interleaved; medians printed.
#
#   benches/postgres.sh                       (RUNS=3 DURATION=10s CONCURRENCY=64)
#   NO_BUILD=1 KEYGATE=path benches/postgres.sh
#
# The three replicas share one data directory, so each holds the local provider's bench key
# (a real deployment puts keys in a provider every replica reaches: Vault, a cloud KMS, an HSM).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
build
export KEYGATE_TOKEN=bench-root-token

# A private PostgreSQL on a free loopback port, trust authentication, as Debian's postgres user
# when run as root (PostgreSQL refuses root).
eval "$("$root/tests/backends/install.sh" postgres | grep '=' | sed 's/^/export /')"
pg_bin="$KEYGATE_PG_BIN_DIR"
pg_port="$(free_port)"
mkdir -p "$work/pg"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$KEYGATE_PG_USER" -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown "$KEYGATE_PG_USER" "$work/pg" && chmod 755 "$work"
as_pg "$pg_bin/initdb" -D "$work/pg/data" -A trust -U keygate --no-locale -E UTF8 > "$work/initdb.log"
as_pg "$pg_bin/postgres" -D "$work/pg/data" -p "$pg_port" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories="$work/pg" -c max_connections=200 > "$work/postgres.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.1; done
psql_kg() { "$pg_bin/psql" -q -h 127.0.0.1 -p "$pg_port" -U keygate "$@"; }
psql_kg -d postgres -c "CREATE DATABASE kg" -c "CREATE DATABASE kg_audit"
url="postgres://keygate@127.0.0.1:$pg_port"

head -c 32 /dev/urandom > "$work/hmac.key"
cat > "$work/pg-base.toml" <<TOML
[storage]
kind = "postgres"
url = "$url/kg"
tls = "disable"
pool_size = 16
[audit]
hmac_key = { file = "$work/hmac.key" }
[audit.checkpoints]
enabled = false
TOML
{ echo "dev_only = true"; cat "$work/pg-base.toml"; } > "$work/pg.toml"
"$KEYGATE" migrate --config "$work/pg-base.toml" > /dev/null
for db in kg_audit; do
  sed "s|$url/kg\"|$url/$db\"|" "$work/pg-base.toml" > "$work/$db.toml"
  "$KEYGATE" migrate --config "$work/$db.toml" > /dev/null
done

serve_as sqlite "$KEYGATE" "$work/sqlite"
serve_as r1 "$KEYGATE" "$work/shared" --config "$work/pg.toml"
# The bench key, made on replica 1 before the others open the shared key store.
KEYGATE_ENDPOINT="${ENDPOINT[r1]}" "$KEYGATE" bench --requests 100 --key bench/enc > /dev/null
KEYGATE_ENDPOINT="${ENDPOINT[sqlite]}" "$KEYGATE" bench --requests 100 --key bench/enc > /dev/null
serve_as r2 "$KEYGATE" "$work/shared" --config "$work/pg.toml"
serve_as r3 "$KEYGATE" "$work/shared" --config "$work/pg.toml"

# one LABEL ENDPOINT... : one bench per endpoint at once, CONCURRENCY split among them; appends
# {"label", "ops_per_second" (summed), "p50", "p99" (the worst)} to $work/LABEL.jsonl.
one() {
  local label="$1"; shift
  local n=$# i=0 c=$(( CONCURRENCY / $# ))
  for e in "$@"; do
    KEYGATE_ENDPOINT="$e" "$KEYGATE" bench --json --duration "$DURATION" --concurrency "$c" \
      --key bench/enc 2>/dev/null > "$work/part-$i.json" &
    i=$((i + 1))
  done
  wait_benches "$n"
  python3 - "$label" "$n" "$work" >> "$work/$label.jsonl" <<'PY'
import json, sys
label, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
parts = [json.load(open(f"{work}/part-{i}.json")) for i in range(n)]
print(json.dumps({"ops": sum(p["ops_per_second"] for p in parts),
                  "p50": max(p["latency_ms"]["p50"] for p in parts),
                  "p99": max(p["latency_ms"]["p99"] for p in parts),
                  "errors": sum(sum(p["errors"].values()) if isinstance(p["errors"], dict) else p["errors"] for p in parts)}))
PY
  tail -1 "$work/$label.jsonl" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("  %-6s %7.0f ops/s  p50 %.2f ms  p99 %.2f ms  errors %s" % (sys.argv[1], r["ops"], r["p50"], r["p99"], r["errors"]))' "$label"
}
wait_benches() { for _ in $(seq "$1"); do wait -n; done; }

appends() {
  local label="$1"; shift
  "$KEYGATE" bench-audit append --duration "$DURATION" "$@" >> "$work/$label.jsonl"
  tail -1 "$work/$label.jsonl" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("  %-12s %7.0f appends/s" % (sys.argv[1], r["events_per_second"]))' "$label"
}

for run in $(seq "$RUNS"); do
  echo "== set $run of $RUNS"
  one sqlite "${ENDPOINT[sqlite]}"
  one pg-1 "${ENDPOINT[r1]}"
  one pg-3 "${ENDPOINT[r1]}" "${ENDPOINT[r2]}" "${ENDPOINT[r3]}"
  appends audit-sqlite --data-dir "$work/audit-sqlite"
  appends audit-pg-1 --postgres "$url/kg_audit" --writers 1
  appends audit-pg-3 --postgres "$url/kg_audit" --writers 3
done

echo "== medians of $RUNS"
python3 - "$work" <<'PY'
import json, statistics, sys
work = sys.argv[1]
med = lambda label, f: statistics.median(f(json.loads(l)) for l in open(f"{work}/{label}.jsonl"))
base = med("sqlite", lambda r: r["ops"])
for label in ["sqlite", "pg-1", "pg-3"]:
    ops = med(label, lambda r: r["ops"])
    print("encrypt %-7s %7.0f ops/s (%.2f of sqlite)  p50 %.2f ms  p99 %.2f ms" % (
        label, ops, ops / base, med(label, lambda r: r["p50"]), med(label, lambda r: r["p99"])))
for label in ["audit-sqlite", "audit-pg-1", "audit-pg-3"]:
    print("%-15s %7.0f durable appends/s" % (label, med(label, lambda r: r["events_per_second"])))
PY
