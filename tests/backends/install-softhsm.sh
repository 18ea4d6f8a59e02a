#!/usr/bin/env bash
# Installs SoftHSM2 from Debian, only when its module is missing.
#   tests/backends/install-softhsm.sh CACHE_DIR   (the cache is unused: apt owns the files)
# Prints the module path for the test runner to export.
set -euo pipefail
module=/usr/lib/softhsm/libsofthsm2.so
if [ ! -f "$module" ]; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  # Update the index only when installing: it is slow and the module may already be there.
  $sudo_cmd apt-get update >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y softhsm2 >&2
fi
if [ ! -f "$module" ]; then
  echo "install-softhsm.sh: $module is still missing after installing softhsm2" >&2
  exit 1
fi
echo "KEYGATE_PKCS11_MODULE=$module"
