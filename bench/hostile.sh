#!/usr/bin/env bash
# How long `esus-ir validate` takes to refuse hostile runbooks under 1 MiB (the security review's
# finding: 100k-deep flow nesting took 28.8 s, 1 MiB of `[` ran past 120 s in the YAML scanner,
# 30k problems took 70 s). Timing lives here, never in tests: tests/it/hostile.rs only shows that
# each is refused within the command timeout and a memory limit.
#
# Usage: bench/hostile.sh [debug|release]   (default release; builds the binary first)
#
# Measured on this project's machine kind (2 cores), debug build, after the fix:
#   deep-flow-1mib   0.05 s    deep-flow-200k  0.04 s    deep-block-400k  0.03 s
#   steps-100k       0.68 s    problems-30k    1.00 s    huge-string      0.42 s
#   too-large        0.01 s    (peak RSS at most 47 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-release}"
if [ "$profile" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
bin="target/$profile/esus-ir"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" <<'PY'
import sys
d = sys.argv[1]
MIB = 1024 * 1024
head = "version: 1\nname: x\nsteps:\n"
files = {
    "deep-flow-1mib": "[" * MIB,
    "deep-flow-200k": head + "  - " + "{a: " * 200000,
    "deep-block-400k": head + "- " * 400000,
    "steps-100k": head + "- {}\n" * 100000,
    "problems-30k": head + "  - id: a\n    name: A\n    action: api_keys.list\n    with: {"
        + ", ".join("p%d: 1" % i for i in range(30000)) + "}\n",
    "huge-string": 'version: 1\nname: "' + "x" * 900000 + '"\nsteps:\n  - {id: a, name: A, action: nope}\n',
    "too-large": head + "# " + "x" * MIB + "\n",
}
for name, text in files.items():
    open(f"{d}/{name}.yaml", "w").write(text)
PY
for f in "$dir"/*.yaml; do
  /usr/bin/time -f "$(basename "$f" .yaml): %e s, peak RSS %M KiB, exit %x" "$bin" validate "$f" >/dev/null 2>"$dir/err" || true
  tail -1 "$dir/err"
done
