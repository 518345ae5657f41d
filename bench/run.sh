#!/usr/bin/env bash
# Issue 21's measurements in one table: esus-ir's `foreach` fan-out against a bare reqwest client
# (examples/bare_client.rs) and `xargs -P C curl`, each against `esus-ir sim` running as its own
# process on 127.0.0.1 with N generated keys — the real topology, both sides sharing the machine.
#
# Usage: bench/run.sh [REPS]     (default 3 pairs per case; whole script < 10 min on 2 cores)
#        bench/run.sh one esus|bare|curl N C [LATENCY_MS]   one contender, one fresh simulator:
#            prints "wall_s rss_kib" (whole process, /usr/bin/time) — handy to pair runs by hand.
#        BENCH_WRAP='perf record -g -o /tmp/esus.perf' bench/run.sh one esus 20000 32
#            runs esus-ir under a profiler (the words of BENCH_WRAP go before the binary).
#
# Every run gets a fresh simulator: the DELETEs consume the keys. Times are whole processes
# (start-up, planning, transcript signing included for esus-ir); ratios are taken pair by pair
# (esus-ir then bare, alternating) and the median quoted, so a machine whose speed drifts still
# gives a fair ratio. Secrets stay out of argv: the token goes through a 0600 file.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/target/release/esus-ir
# Another build of esus-ir as the contender (the simulator stays this tree's): BENCH_BIN=/path bench/run.sh one esus …
client_bin=${BENCH_BIN:-$bin}
bare=$root/target/release/examples/bare_client
work=$(mktemp -d "${TMPDIR:-/tmp}/esus-ir-bench.XXXXXX")
chmod 700 "$work"
sim_pid=
cleanup() {
  if [[ -n $sim_pid ]]; then kill -INT "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

build() {
  cargo build --release --quiet --bin esus-ir --example bare_client --example transcript_rate
}

# A scenario with N generated keys (gen-key-00001 …): the 5000-key bench scenario, resized.
scenario() { # N -> path
  local f=$work/scenario-$1.yaml
  [[ -f $f ]] || sed "s/generate_keys: { count: 5000,/generate_keys: { count: $1,/" \
    bench/sim-fanout-5000-keys.yaml >"$f"
  echo "$f"
}

# Starts a fresh simulator (N keys, optional latency); sets sim_pid and writes $work/ready.json.
sim_start() { # N LATENCY_MS
  local faults=()
  (( ${2:-0} > 0 )) && faults=(--fault "latency=${2}ms")
  rm -f "$work/ready.json"
  "$bin" sim --listen 127.0.0.1:0 --scenario "$(scenario "$1")" --ready-file "$work/ready.json" \
    "${faults[@]}" >/dev/null 2>"$work/sim.err" &
  sim_pid=$!
  for _ in $(seq 600); do
    [[ -s $work/ready.json ]] && break
    kill -0 "$sim_pid" 2>/dev/null || { cat "$work/sim.err" >&2; exit 1; }
    sleep 0.05
  done
  [[ -s $work/ready.json ]] || { echo "the simulator did not start" >&2; exit 1; }
  jq -r .admin_token "$work/ready.json" >"$work/token"
  chmod 600 "$work/token"
}

sim_stop() {
  kill -INT "$sim_pid" 2>/dev/null || true
  wait "$sim_pid" 2>/dev/null || true
  sim_pid=
}

# The runbook: one `foreach` step deleting every listed key, C at a time.
runbook() { # C -> path
  local f=$work/fanout-delete-$1.yaml
  cat >"$f" <<EOF
version: 1
name: fanout-delete
description: bench/run.sh — delete N generated keys, $1 at a time
inputs:
  ids: {type: list, required: true}
steps:
  - id: delete
    name: Delete each key
    action: api_keys.delete
    foreach: inputs.ids
    concurrency: $1
    with: {id: "{{ item }}"}
EOF
  echo "$f"
}

inputs() { # N -> path (YAML mapping with the N key ids)
  local f=$work/inputs-$1.yaml
  [[ -f $f ]] || { echo "ids:"; seq -f 'gen-key-%05g' 1 "$1" | sed 's/^/  - /'; } >"$f"
  echo "$f"
}

# One contender against one fresh simulator; prints "wall_s rss_kib".
one() { # esus|bare|curl N C LATENCY_MS
  local who=$1 n=$2 c=$3 lat=${4:-0} out=$work/time.out
  sim_start "$n" "$lat"
  local base
  base=$(jq -r .base_url "$work/ready.json")
  case $who in
    esus)
      rm -rf "$work/run"
      XDG_CONFIG_HOME=$work/config ESUS_BASE_URL=$base NO_COLOR=1 \
        /usr/bin/time -f '%e %M %U %S' -o "$out" ${BENCH_WRAP:-} \
        "$client_bin" run "$(runbook "$c")" --inputs-file "$(inputs "$n")" --token-file "$work/token" \
        --run-dir "$work/run" --yes --non-interactive --max-items "$n" --operator bench \
        >"$work/run.out" 2>&1 || { cat "$work/run.out" >&2; exit 1; }
      ;;
    bare)
      /usr/bin/time -f '%e %M %U %S' -o "$out" ${BENCH_WRAP_BARE:-} "$bare" "$work/ready.json" "$n" "$c" >/dev/null
      ;;
    curl)
      # curl reads the bearer header from a 0600 file (-H @file), not from argv.
      printf 'Authorization: Bearer %s\n' "$(cat "$work/token")" >"$work/auth"
      chmod 600 "$work/auth"
      /usr/bin/time -f '%e %M %U %S' -o "$out" sh -c \
        'seq -f "gen-key-%05g" 1 "$1" | xargs -P "$2" -I{} curl -sf -o /dev/null -X DELETE -H @"$3" "$4/api-keys/{}"' \
        sh "$n" "$c" "$work/auth" "$base"
      ;;
    *) echo "unknown contender $who" >&2; exit 2 ;;
  esac
  sim_stop
  tail -n1 "$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# One row: REPS pairs (esus-ir, bare), medians and the median of the pair ratios.
case_row() { # N C LATENCY_MS REPS [CURL_N]
  local n=$1 c=$2 lat=$3 reps=$4 curl_n=${5:-0} e b ratios=() es=() bs=() rss=() ecpu=() bcpu=()
  local eu es_ bu bs_
  for _ in $(seq "$reps"); do
    read -r e r eu es_ < <(one esus "$n" "$c" "$lat")
    read -r b _ bu bs_ < <(one bare "$n" "$c" "$lat")
    es+=("$e"); bs+=("$b"); rss+=("$r")
    ecpu+=("$(awk -v u="$eu" -v s="$es_" 'BEGIN {print u + s}')")
    bcpu+=("$(awk -v u="$bu" -v s="$bs_" 'BEGIN {print u + s}')")
    ratios+=("$(awk -v e="$e" -v b="$b" 'BEGIN {printf "%.3f", e / b}')")
  done
  e=$(printf '%s\n' "${es[@]}" | median)
  b=$(printf '%s\n' "${bs[@]}" | median)
  local ratio rss_mib curl="–"
  ratio=$(printf '%s\n' "${ratios[@]}" | median)
  rss_mib=$(printf '%s\n' "${rss[@]}" | median | awk '{printf "%.1f", $1 / 1024}')
  if (( curl_n > 0 )); then
    local t
    read -r t _ _ < <(one curl "$curl_n" "$c" "$lat")
    # curl's per-request cost does not depend on N: scaled to N to compare with esus-ir.
    curl=$(awk -v t="$t" -v cn="$curl_n" -v n="$n" -v e="$e" \
      'BEGIN {s = t * n / cn; printf "%.1f s (%d: %.2f s) = %.0f× esus-ir", s, cn, t, s / e}')
  fi
  # CPU seconds (user + system) of each whole process: what each request costs the client,
  # whatever the simulator, sharing the cores, takes.
  local cpu
  cpu="$(printf '%s\n' "${ecpu[@]}" | median) s / $(printf '%s\n' "${bcpu[@]}" | median) s"
  printf '| %s, %s%s | %s s | %s s | %s | %s | %s | %s MiB | %.0f |\n' "$n" "$c" \
    "$( ((lat > 0)) && echo ", ${lat} ms latency")" "$e" "$b" "$ratio" "$cpu" "$curl" "$rss_mib" \
    "$(awk -v n="$n" -v b="$b" 'BEGIN {print n / b}')"
  printf '%s\n' "${ratios[@]}" >"$work/ratios-$n-$c-$lat"
}

main() {
  local reps=${1:-3}
  build
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$reps pairs per case (esus-ir, bare) each against a fresh \`esus-ir sim\` process; medians"
  echo
  echo "| N, C | esus-ir | bare reqwest | ratio (median of pairs) | CPU esus-ir / bare | curl script | peak RSS of esus-ir | sim req/s (bare) |"
  echo "|---|---|---|---|---|---|---|---|"
  case_row 20000 32 0 "$reps" 2000
  case_row 100000 64 0 "$reps"
  case_row 20000 32 20 "$(( reps < 2 ? reps : 2 ))"
  echo
  # The transcript of one more 100k run: its size and how long `verify` takes.
  one esus 100000 64 0 >/dev/null
  local t records
  t=$work/run/transcript.jsonl
  records=$(wc -l <"$t")
  XDG_CONFIG_HOME=$work/config /usr/bin/time -f '%e %M' -o "$work/verify.time" \
    "$bin" verify "$t" >"$work/verify.out" 2>&1 || { cat "$work/verify.out" >&2; exit 1; }
  verify=$(tail -n1 "$work/verify.time")
  echo "transcript of the 100k run: $records records, $(( $(stat -c %s "$t") / 1048576 )) MiB; verify: $(echo "$verify" | awk '{printf "%s s, %.1f MiB", $1, $2 / 1024}')"
  # The transcript alone, no network: records chained, hashed, signed at checkpoints and written.
  local rate=$root/target/release/examples/transcript_rate
  for threads in 1 2; do
    echo "transcript alone (examples/transcript_rate.rs, 100000 items × 3 records, $threads thread(s)): $("$rate" 100000 "$threads")"
  done
  echo
  critical_path
  echo
  echo "start-up and validate (bench/startup.sh, medians of 20):"
  BENCH_NO_BUILD=1 bench/startup.sh 20 | sed 's/^/  /'
  large_validate
}

# Two parallel chains (3 and 5 GETs) against a simulator answering in 100 ms: the steps' span
# in the transcript (first step-started to last step-finished) against the longer chain's
# latency sum, 500 ms.
critical_path() {
  local f=$work/critical-path.yaml
  {
    echo "version: 1"; echo "name: critical-path"; echo "steps:"
    for i in 1 2 3; do echo "  - {id: a$i, name: A$i, action: api_keys.get, with: {id: k-1001}}"; done
    echo "  - {id: b1, name: B1, action: api_keys.get, with: {id: k-1002}, needs: []}"
    for i in 2 3 4 5; do echo "  - {id: b$i, name: B$i, action: api_keys.get, with: {id: k-1002}}"; done
  } >"$f"
  sim_start 0 100
  rm -rf "$work/run"
  XDG_CONFIG_HOME=$work/config ESUS_BASE_URL=$(jq -r .base_url "$work/ready.json") NO_COLOR=1 \
    "$bin" run "$f" --token-file "$work/token" --run-dir "$work/run" --yes --non-interactive \
    --operator bench >"$work/run.out" 2>&1 || { cat "$work/run.out" >&2; exit 1; }
  sim_stop
  python3 - "$work/run/transcript.jsonl" <<'PY'
import json, sys
from datetime import datetime
recs = [json.loads(l) for l in open(sys.argv[1])]
ts = lambda r: datetime.fromisoformat(r["ts"].replace("Z", "+00:00")).timestamp()
start = min(ts(r) for r in recs if r["type"] == "step-started")
end = max(ts(r) for r in recs if r["type"] == "step-finished")
span = (end - start) * 1000
print(f"critical path: two chains (3 and 5 GETs, 100 ms each): steps span {span:.0f} ms = {span / 500:.2f}x the longer chain's 500 ms")
PY
}

# `validate` of a generated 500-step runbook: median of 20 runs.
large_validate() {
  local f=$work/steps-500.yaml samples=()
  {
    echo "version: 1"; echo "name: steps-500"; echo "steps:"
    for i in $(seq 500); do echo "  - {id: s$i, name: S$i, action: api_keys.get, with: {id: k-1001}}"; done
  } >"$f"
  for _ in $(seq 20); do
    local t0 t1
    t0=${EPOCHREALTIME/./}; "$bin" validate "$f" >/dev/null 2>&1 || { "$bin" validate "$f" >&2; exit 1; }; t1=${EPOCHREALTIME/./}
    samples+=($(( t1 - t0 )))
  done
  printf '  esus-ir validate (generated, 500 steps): %s\n' \
    "$(printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.2f ms (median of %d)", a[int((NR+1)/2)]/1000, NR}')"
}

if [[ ${1:-} == one ]]; then
  shift
  build
  one "$@"
else
  main "$@"
fi
