#!/usr/bin/env bash
# Start-up and `validate` latency of the release binary: both must feel instant (milliseconds).
# Usage: bench/startup.sh [RUNS]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-50}"
# bench/run.sh builds first (with its example, whose dev-dependencies change features: building
# again here without them would rebuild everything).
[[ -n ${BENCH_NO_BUILD:-} ]] || cargo build --release --quiet
bin=target/release/esus-ir
time_ms() { # median wall time in ms of "$@" over $runs runs
  local samples=()
  for _ in $(seq "$runs"); do
    local t0 t1
    # Bash's own clock (microseconds): two `date` processes per sample added a millisecond.
    t0=${EPOCHREALTIME/./}; "$@" >/dev/null 2>&1 || true; t1=${EPOCHREALTIME/./}
    samples+=($(( t1 - t0 )))
  done
  printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.2f ms (median of %d)\n", a[int((NR+1)/2)]/1000, NR}'
}
echo "esus-ir --version:                      $(time_ms "$bin" --version)"
# Each bundled runbook alone (the names `esus-ir runbooks` lists), then all of them in one call.
bundled=(api-key-compromise session-compromise security-monitoring access-review scheduled-key-rotation persistence-sweep)
for rb in "${bundled[@]}"; do
  # A name that stopped being bundled would time an error: fail instead.
  "$bin" validate "$rb" >/dev/null || { echo "validate $rb failed" >&2; exit 1; }
  printf 'esus-ir validate %-23s %s\n' "$rb:" "$(time_ms "$bin" validate "$rb")"
done
echo "esus-ir validate (all bundled):         $(time_ms "$bin" validate "${bundled[@]}")"
echo "esus-ir graph --format mermaid:         $(time_ms "$bin" graph api-key-compromise --format mermaid)"
