#!/usr/bin/env bash
# The test command: builds, installs the backends the selected tests need (idempotently), then
# runs them.
#
#   tests/run.sh            everything, then the gateway's gRPC suite again on PostgreSQL
#   tests/run.sh FILTER     only tests, test binaries or packages whose name contains FILTER
#                           (e.g. policy, audit, aws, vault, pkcs11, emulators, postgres), installing
#                           only the backends those tests need
#   KEYGATE_TEST_STORAGE=postgres tests/run.sh [FILTER]
#                           only the PostgreSQL pass: every test server keeps its catalog and
#                           audit log in a database of its own on one private PostgreSQL cluster
#
# Backends are installed into $KEYGATE_BACKENDS_CACHE (default ~/.cache/keygate-backends),
# outside the clone, and started by the tests themselves on free loopback ports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
filter="${1:-}"

# One target directory outside the clone, reused between runs (CI included).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/keygate-target}"

# The test binaries (nextest binary ids, as shell patterns) that start a backend.
serves() {
  case "$1" in
    localstack) echo 'keygate::aws_kms keygate::lifecycle keygate::byok_clouds keygate-provider-aws::* keygate::audit_ingest keygate::byok keygate::byok_keys keygate::byok_reimport keygate::posture_inventory keygate::posture_drift keygate::compliance_report' ;;
    openbao) echo 'keygate::vault keygate::byok_clouds keygate::otlp keygate::resilience keygate-provider-vault::* keygate::audit_ingest keygate::byok keygate::byok_keys keygate::byok_reimport keygate::posture_inventory keygate::posture_drift keygate::posture_audit keygate::compliance_report keygate::approvals_adoption keygate::native_rotation keygate::vault_batch keygate::staged_signing keygate::lifecycle keygate::postgres_replicas keygate::postgres_failover' ;;
    softhsm) echo 'keygate::pkcs11 keygate::pkcs11_retire keygate::byok_clouds keygate-provider-pkcs11 keygate-provider-pkcs11::* keygate::byok keygate::byok_keys keygate::byok_reimport keygate::posture_inventory keygate::compliance_report' ;;
    poppler) echo 'keygate::compliance_report' ;;
    python-grpc) echo 'keygate::python_client' ;;
    prometheus) echo 'keygate::prometheus' ;;
    chromium) echo 'keygate::console' ;;
    postgres) echo 'keygate::postgres* keygate-test-backends::postgres' ;;
  esac
}

# needs BACKEND BINARY_ID...: does one of the selected test binaries start BACKEND?
needs() {
  local backend="$1" binary pattern
  shift
  for binary in "$@"; do
    for pattern in $(serves "$backend"); do
      # shellcheck disable=SC2053 # $pattern is a glob on purpose
      [[ "$binary" == $pattern ]] && return 0
    done
  done
  return 1
}

install_backend() {
  echo "== installing backend: $1"
  while IFS= read -r line; do
    case "$line" in
      *=*) export "${line?}"; echo "   $line" ;;
    esac
  done < <(tests/backends/install.sh "$1")
}

# The nextest filterset for FILTER: tests, test binaries and packages whose name contains it.
# nextest refuses a binary() or package() predicate that matches nothing, so those two are
# added only when some test binary or package name does contain FILTER.
filterset() {
  cargo metadata --no-deps --format-version 1 --locked | python3 -c '
import json, sys
wanted = sys.argv[1]
meta = json.load(sys.stdin)
parts = ["test(~%s)" % wanted]
if any(wanted in t["name"] for p in meta["packages"] for t in p["targets"] if "test" in t["kind"]):
    parts.append("binary(~%s)" % wanted)
if any(wanted in p["name"] for p in meta["packages"]):
    parts.append("package(~%s)" % wanted)
print(" | ".join(parts))
' "$1"
}

backends=$(ls tests/backends/install-*.sh 2>/dev/null | sed -E 's|.*/install-(.*)\.sh|\1|')

echo "== building"
cargo build --workspace --all-targets --locked 2>&1 | tail -n 3

if ! cargo nextest --version >/dev/null 2>&1; then
  # Without nextest the selection is cargo's, so every backend is installed.
  for backend in $backends; do install_backend "$backend"; done
  echo "== testing"
  cargo test --workspace --locked --no-fail-fast -- ${filter:+"$filter"}
  exit
fi

args=(--workspace --locked)
if [ -n "$filter" ]; then
  args+=(-E "$(filterset "$filter")")
fi
# The PostgreSQL pass runs the gateway's test binaries, but not those that are about PostgreSQL
# already (they start their own clusters), nor the tests about the SQLite file itself: its
# tampering (audit_anchor, altered rows), its WAL, and it becoming unwritable (on PostgreSQL,
# postgres_replicas stops the database instead); nor the one production server whose only
# provider is local, which PostgreSQL refuses as the checkpoint signer by design.
sqlite_only='binary(~postgres) | binary(=audit_anchor) | test(=a_forged_hash_format_is_named) | test(=chain_verifies_and_a_altered_row_is_named) | test(=the_wal_starts_over_under_sustained_load) | test(=an_unwritable_audit_store_stops_service_until_it_recovers) | test(=a_tampered_master_json_is_refused_before_deriving)'
# --workspace, not -p keygate: the same features as the first pass, so the same build.
pg_args=(--workspace --locked -E "package(=keygate) & kind(test) & not ($sqlite_only)${filter:+ & ($(filterset "$filter"))}")

storage="${KEYGATE_TEST_STORAGE:-}"
case "$storage" in
  ""|sqlite|postgres) ;;
  *) echo "KEYGATE_TEST_STORAGE is '$storage': use sqlite or postgres" >&2; exit 2 ;;
esac
if [ -z "$storage" ] && [ -n "$filter" ]; then storage=sqlite; fi

# Installs the backends the binaries selected by ARGS need.
install_for() {
  local selected
  selected=$(cargo nextest list "$@" --message-format oneline | awk '{print $1}' | sort -u)
  for backend in $backends; do
    # shellcheck disable=SC2086 # one word per binary id
    if needs "$backend" $selected; then install_backend "$backend"; fi
  done
}

# A failing pass does not stop the other: the run fails at the end with the first failure.
status=0
if [ "$storage" != postgres ]; then
  install_for "${args[@]}"
  echo "== testing"
  cargo nextest run "${args[@]}" --no-fail-fast || status=$?
fi

if [ "$storage" != sqlite ]; then
  install_for "${pg_args[@]}"
  install_backend postgres
  echo "== testing on PostgreSQL"
  unset KEYGATE_TEST_PG_URL KEYGATE_TEST_PG_PASSWORD
  # One cluster for the pass; it stops when its standard input (our end of the pipe) closes.
  coproc CLUSTER { "$CARGO_TARGET_DIR/debug/keygate-test-postgres"; }
  # Plain copies: bash unsets CLUSTER and CLUSTER_PID if the process ends.
  cluster_pid=$CLUSTER_PID
  coproc_out=${CLUSTER[0]} coproc_in=${CLUSTER[1]}
  exec {cluster_out}<&"$coproc_out" {cluster_in}>&"$coproc_in"
  eval "exec $coproc_out<&- $coproc_in>&-"
  while IFS= read -r line <&"$cluster_out"; do
    case "$line" in
      ready) break ;;
      KEYGATE_TEST_PG_*=*) export "${line?}" ;;
    esac
  done
  if [ -z "${KEYGATE_TEST_PG_URL:-}" ]; then
    echo "the PostgreSQL cluster did not start" >&2
    exit 1
  fi
  pg_status=0
  # A FILTER that names no gateway test leaves this pass empty, which is not a failure.
  cargo nextest run "${pg_args[@]}" --no-fail-fast --no-tests=warn || pg_status=$?
  exec {cluster_in}>&- {cluster_out}<&-
  wait "$cluster_pid" 2>/dev/null || true
  if [ "$status" -eq 0 ]; then status=$pg_status; fi
fi
exit "$status"
