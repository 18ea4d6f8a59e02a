#!/usr/bin/env bash
# tests/backends/install-localstack.sh CACHE_DIR: installs LocalStack through localstack/install.sh
# and prints the variable the fixture (tests/backends/src/localstack.rs) reads.
set -euo pipefail
cache="${1:?usage: install-localstack.sh CACHE_DIR}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py="$("$root/localstack/install.sh" "$cache" | tail -n 1)"
echo "KEYGATE_LOCALSTACK_PYTHON=$py"
