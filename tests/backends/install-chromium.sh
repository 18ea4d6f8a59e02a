#!/usr/bin/env bash
# Installs Debian's Chromium and its ChromeDriver, only when either is missing, for the web
# console's browser tests (tests/console.rs), which start chromedriver themselves.
#   tests/backends/install-chromium.sh CACHE_DIR   (the cache is unused: apt owns the files)
# Prints the two paths for the test runner to export.
set -euo pipefail
chromium=/usr/bin/chromium
driver=/usr/bin/chromedriver
if [ ! -x "$chromium" ] || [ ! -x "$driver" ]; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core >&2
fi
for binary in "$chromium" "$driver"; do
  if [ ! -x "$binary" ]; then
    echo "install-chromium.sh: $binary is still missing after installing chromium" >&2
    exit 1
  fi
done
echo "KEYGATE_CHROMIUM=$chromium"
echo "KEYGATE_CHROMEDRIVER=$driver"
