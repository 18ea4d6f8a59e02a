#!/usr/bin/env bash
# Installs Python's gRPC stack (grpcio, grpcio-tools for stub generation, grpcio-status for
# the richer error model) into a venv under the cache dir, once: the polyglot client tests use
# it. Prints KEYGATE_GRPC_PYTHON=… for the test runner to export.
#   tests/backends/install-python-grpc.sh CACHE_DIR
set -euo pipefail
version="1.85.1"
cache="${1:?usage: install-python-grpc.sh CACHE_DIR}"
venv="$cache/python-grpc-$version"
# The marker is written only after a complete install, so an interrupted run is redone.
if [ ! -f "$venv/.installed" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "grpcio==$version" "grpcio-tools==$version" "grpcio-status==$version" >&2
  "$venv/bin/python" -c 'import grpc, grpc_tools, grpc_status' >&2
  touch "$venv/.installed"
fi
echo "KEYGATE_GRPC_PYTHON=$venv/bin/python"
