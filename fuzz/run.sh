#!/usr/bin/env bash
# Builds every fuzz target and runs each for a set time on its corpus (fuzz/corpus/<target>),
# JOBS at a time, then prints one line per target: seconds, executions, result.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     default 600 s each, every target
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Environment:
#   JOBS=2                 targets run at once
#   FUZZ_TARGET_DIR=...    cargo's target directory (default ~/.cache/keygate-fuzz-target)
#   SANITIZER=none         cargo fuzz's -s (none: panics, overflows, hangs and OOMs only;
#                          address: ASan too, slower)
# A crash leaves its input in fuzz/artifacts/<target>/ and makes the script exit 1.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds="${1:-600}"
shift || true
jobs="${JOBS:-2}"
sanitizer="${SANITIZER:-none}"
target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/keygate-fuzz-target}"
logs="${FUZZ_LOGS:-$(mktemp -d)}"
mkdir -p "$logs"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "== building ${targets[*]} (sanitizer: $sanitizer)"
cargo +nightly fuzz build --dev -s "$sanitizer" --target-dir "$target_dir" || exit 1

run() {
  local target="$1"
  mkdir -p "corpus/$target" "artifacts/$target"
  # -timeout: one input taking 30 s is a hang; -rss_limit_mb: more is a leak or a bomb.
  nice -n 19 cargo +nightly fuzz run --dev -s "$sanitizer" --target-dir "$target_dir" "$target" \
    "corpus/$target" -- -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
    -print_final_stats=1 >"$logs/$target.log" 2>&1
  echo $? >"$logs/$target.rc"
}

echo "== running each target for ${seconds}s, $jobs at a time (logs: $logs)"
running=0
for target in "${targets[@]}"; do
  run "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

status=0
printf '%-18s %8s %14s  %s\n' target seconds execs result
for target in "${targets[@]}"; do
  log="$logs/$target.log"
  rc=$(cat "$logs/$target.rc" 2>/dev/null || echo '?')
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1)
  if [ "$rc" = 0 ]; then
    result="ok"
  else
    result="FAILED (exit $rc): $(grep -m1 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | cut -c1-120)"
    status=1
  fi
  printf '%-18s %8s %14s  %s\n' "$target" "${secs:-?}" "${execs:-?}" "$result"
done
exit "$status"
