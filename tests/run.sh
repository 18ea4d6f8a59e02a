#!/usr/bin/env bash
# The test command: installs what the tests need (idempotently), then runs the suite.
#
#   tests/run.sh            everything
#   tests/run.sh FILTER     only test binaries or tests whose name contains FILTER
#                           (e.g. policy, audit, aws, vault, pkcs11, emulators), installing
#                           only the backends that area needs
#
# Backends are installed into $KEYGATE_BACKENDS_CACHE (default ~/.cache/keygate-backends),
# outside the clone, and started by the tests themselves on free loopback ports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
filter="${1:-}"

# One target directory outside the clone, reused between runs (CI included).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/keygate-target}"

# The test areas a backend serves, besides its own name: `tests/run.sh aws` needs LocalStack.
areas() {
  case "$1" in
    localstack) echo "aws kms" ;;
    openbao) echo "vault" ;;
    softhsm) echo "pkcs11 hsm" ;;
  esac
}

needs() { # needs NAME: does this run need backend NAME?
  [ -z "$filter" ] && return 0
  local name
  for name in "$1" $(areas "$1"); do
    if [[ "$name" == *"$filter"* ]] || [[ "$filter" == *"$name"* ]]; then
      return 0
    fi
  done
  return 1
}

for backend in $(ls tests/backends/install-*.sh 2>/dev/null | sed -E 's|.*/install-(.*)\.sh|\1|'); do
  if needs "$backend"; then
    echo "== installing backend: $backend"
    while IFS= read -r line; do
      case "$line" in
        *=*) export "${line?}"; echo "   $line" ;;
      esac
    done < <(tests/backends/install.sh "$backend")
  fi
done

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

echo "== building"
cargo build --workspace --all-targets --locked 2>&1 | tail -n 3

echo "== testing"
if cargo nextest --version >/dev/null 2>&1; then
  args=(nextest run --workspace --locked --no-fail-fast)
  if [ -n "$filter" ]; then
    args+=(-E "$(filterset "$filter")")
  fi
  cargo "${args[@]}"
else
  cargo test --workspace --locked --no-fail-fast -- ${filter:+"$filter"}
fi
