#!/usr/bin/env bash
# Abuse under load: `keygate bench-abuse` runs, for DURATION (default 20s), 8 connections x
# 1024 unauthenticated calls in flight, each carrying a 1 MiB message, plus a token-guessing
# flood (2 connections x 64 calls with random tokens), while legitimate Encrypt calls run on a
# connection of their own. Loopback only, bounded in time. Prints the server's resident memory
# before and at its peak, the legitimate calls' latency, the growth of the data directory, and
# what the audit log recorded (refusals one by one up to the flood threshold, then aggregates).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DURATION="${ABUSE_DURATION:-20s}"
build
# CLIENT=path drives the load with another binary than the server's (KEYGATE), e.g. an older
# server under the same load.
CLIENT="${CLIENT:-$KEYGATE}"
export KEYGATE_TOKEN=kg_bench_root_token
cat > "$work/abuse.toml" <<TOML
dev_only = true

[audit.flood]
threshold = 100
window = "5s"
TOML
start_gateway --dev --dev-token "$KEYGATE_TOKEN" --config "$work/abuse.toml" --data-dir "$work/data"
rss() { awk -v f="$1" '$1 == f":" {print $2}' "/proc/$server_pid/status"; }
# A first call so the key exists and the process has warmed up before the baseline.
KEYGATE_ENDPOINT="$ENDPOINT" "$CLIENT" bench --requests 200 --concurrency 4 >/dev/null 2>&1
rss_before="$(rss VmRSS)"
size_before="$(du -sk "$work/data" | cut -f1)"
status=0
# shellcheck disable=SC2086 # ABUSE_ARGS: extra bench-abuse options, split on purpose
KEYGATE_ENDPOINT="$ENDPOINT" "$CLIENT" bench-abuse --duration "$DURATION" --settle 7s ${ABUSE_ARGS:-} || status=$?
echo "server resident memory: ${rss_before} kB before, peak $(rss VmHWM) kB, now $(rss VmRSS) kB"
echo "data directory: ${size_before} kB before, $(du -sk "$work/data" | cut -f1) kB after"
exit "$status"
