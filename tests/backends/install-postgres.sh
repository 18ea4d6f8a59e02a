#!/usr/bin/env bash
# Installs PostgreSQL from Debian, only when its server is missing. The tests start private
# clusters themselves (initdb + postgres on a free loopback port, in a temp dir, as an
# unprivileged user); the packaged cluster and service are not used.
#   tests/backends/install-postgres.sh CACHE_DIR   (the cache is unused: apt owns the files)
# Prints the server's bin directory, and the user to run it as when this runs as root
# (PostgreSQL refuses to run as root).
set -euo pipefail
find_bin_dir() {
  # The newest installed major version (Debian installs under /usr/lib/postgresql/MAJOR/bin).
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
bin_dir="$(find_bin_dir)"
if [ -z "$bin_dir" ] || [ ! -x "$bin_dir/postgres" ] || [ ! -x "$bin_dir/initdb" ]; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  # Update the index only when installing: it is slow and the server may already be there.
  $sudo_cmd apt-get update >&2
  # RUNLEVEL=1: the package's scripts must not start its service here (no init system in CI
  # containers, and the tests run their own clusters).
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo_cmd apt-get install -y --no-install-recommends postgresql >&2
  bin_dir="$(find_bin_dir)"
fi
if [ -z "$bin_dir" ] || [ ! -x "$bin_dir/postgres" ]; then
  echo "install-postgres.sh: no /usr/lib/postgresql/*/bin/postgres after installing postgresql" >&2
  exit 1
fi
echo "KEYGATE_PG_BIN_DIR=$bin_dir"
if [ "$(id -u)" -eq 0 ]; then
  # The package creates the `postgres` system user; make sure it exists even if the package
  # was installed some other way.
  if ! id -u postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres >&2
  fi
  echo "KEYGATE_PG_USER=postgres"
fi
