#!/usr/bin/env bash
# Local-provider encrypt through the gateway, audit log on the local disk (issue target: at
# least 10,000 ops/s with p99 under 20 ms at concurrency 64 on a 2-core machine).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
build
export KEYGATE_TOKEN=kg_bench_root_token
start_gateway --dev --dev-token "$KEYGATE_TOKEN" --data-dir "$work/data"
bench_runs "encrypt, local provider" --op encrypt
