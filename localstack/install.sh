#!/usr/bin/env bash
# Installs LocalStack (host mode, no Docker) into a virtual environment in CACHE_DIR, idempotently.
#   localstack/install.sh CACHE_DIR
# Prints the venv's python on stdout (the last line); progress goes to stderr.
# Pinned: 4.11+ needs Python 3.12 at run time and fails on CreateKey under 3.11; the unpinned
# dependency resolution breaks start-up, hence the constraints file (a freeze of a working venv).
set -euo pipefail
version="4.10.0"
cache="${1:?usage: localstack/install.sh CACHE_DIR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$cache/localstack-$version"
py="$venv/bin/python"

installed() {
  [ -x "$py" ] && "$py" -c "import importlib.metadata as m, sys, service_identity; sys.exit(m.version('localstack-core') != '$version')" 2>/dev/null
}

if ! installed; then
  echo "localstack: installing localstack-core[runtime]==$version into $venv" >&2
  python3 -m venv "$venv"
  "$py" -m pip install --quiet --upgrade pip >&2
  # service-identity is imported by twisted's TLS support at start-up but declared by nothing
  # LocalStack pulls in.
  "$py" -m pip install --quiet -c "$here/constraints.txt" "localstack-core[runtime]==$version" service-identity >&2
  # plux caches entry points; a stale cache makes start-up say "No component plugins found".
  rm -rf "$HOME/.cache/plux"
else
  echo "localstack: $version already installed in $venv" >&2
fi
echo "$py"
