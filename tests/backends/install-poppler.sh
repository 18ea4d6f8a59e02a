#!/usr/bin/env bash
# Installs poppler-utils from Debian (pdftoppm, to turn the compliance report's PDF into page
# images), only when pdftoppm is missing.
#   tests/backends/install-poppler.sh CACHE_DIR   (the cache is unused: apt owns the files)
set -euo pipefail
if ! command -v pdftoppm >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  # Update the index only when installing: it is slow and the tool may already be there.
  $sudo_cmd apt-get update >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y poppler-utils >&2
fi
if ! command -v pdftoppm >/dev/null 2>&1; then
  echo "install-poppler.sh: pdftoppm is still missing after installing poppler-utils" >&2
  exit 1
fi
