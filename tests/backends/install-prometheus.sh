#!/usr/bin/env bash
# Installs Prometheus from Debian, only when its binary is missing. The tests start it
# themselves on a free port; its packaged service is not used.
#   tests/backends/install-prometheus.sh CACHE_DIR   (the cache is unused: apt owns the files)
# Prints the binary path for the test runner to export.
set -euo pipefail
binary=/usr/bin/prometheus
if [ ! -x "$binary" ]; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  # Update the index only when installing: it is slow and the binary may already be there.
  $sudo_cmd apt-get update >&2
  # RUNLEVEL=1: the package's scripts must not start its service here (no init system in CI
  # containers, and the tests run their own instance).
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo_cmd apt-get install -y --no-install-recommends prometheus >&2
fi
if [ ! -x "$binary" ]; then
  echo "install-prometheus.sh: $binary is still missing after installing prometheus" >&2
  exit 1
fi
echo "KEYGATE_PROMETHEUS=$binary"
