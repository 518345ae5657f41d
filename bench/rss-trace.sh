#!/usr/bin/env bash
# Where a run's memory goes over time: runs the command given, and every 50 ms writes its RSS
# (/proc, KiB) and how many lines its transcript has to ${RSS_TRACE_OUT:-rss-trace.log}.
# Usage: BENCH_WRAP=bench/rss-trace.sh bench/run.sh one esus 100000 64
set -uo pipefail
out=${RSS_TRACE_OUT:-rss-trace.log}
transcript=
prev=
for a in "$@"; do # the transcript is <--run-dir>/transcript.jsonl
  [[ $prev == --run-dir ]] && transcript=$a/transcript.jsonl
  prev=$a
done
: >"$out"
"$@" &
pid=$!
start=$(date +%s%N)
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
  lines=0
  [[ -n $transcript && -f $transcript ]] && lines=$(wc -l <"$transcript")
  echo "$(( ($(date +%s%N) - start) / 1000000 )) ms rss_kib=${rss:-0} transcript_lines=$lines" >>"$out"
  sleep 0.05
done
wait "$pid"
