#!/usr/bin/env bash
# Installs a real backend for the tests, idempotently, into a cache outside the clone.
#   tests/backends/install.sh NAME    (openbao | softhsm | localstack | python-grpc | prometheus | postgres | chromium | poppler)
# Prints `VAR=value` lines for tests/run.sh to export (where the fixture finds the program).
set -euo pipefail
cache="${KEYGATE_BACKENDS_CACHE:-$HOME/.cache/keygate-backends}"
mkdir -p "$cache"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
name="${1:?usage: install.sh openbao|softhsm|localstack|python-grpc|prometheus|postgres|chromium|poppler}"
if [ -x "$here/install-$name.sh" ]; then
  exec "$here/install-$name.sh" "$cache"
fi
echo "install.sh: unknown backend '$name'" >&2
exit 2
