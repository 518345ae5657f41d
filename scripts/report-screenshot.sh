#!/usr/bin/env bash
# Renders a sample post-mortem report and takes a PNG screenshot of it with headless Chromium.
#
#   scripts/report-screenshot.sh [OUT.png] [RUNBOOK]
#
# 1. runs a drill of RUNBOOK (default: api-key-compromise) against the embedded simulator, into a
#    fresh temporary run folder (transcript, signature, evidence);
# 2. renders `esus-ir report … --format html` from its transcript;
# 3. opens the HTML in headless Chromium and saves a 1280×2000 screenshot to OUT.png (default:
#    ./report-screenshot.png).
#
# Needs: cargo (builds esus-ir in release mode) and Chromium — on Debian/Ubuntu
# `apt-get install -y chromium` (the script installs it when it runs as root and finds none).
# Chromium runs with no network access of its own to speak of (background networking, component
# updates and sync off) in a throwaway profile; the report has no external resources anyway.
# Environment: ESUS_IR (a built esus-ir to use instead of `cargo run --release`), KEEP=1 (keep the
# temporary folder and print its path), WINDOW (default 1280,2000).
set -euo pipefail

out=${1:-report-screenshot.png}
runbook=${2:-api-key-compromise}
window=${WINDOW:-1280,2000}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

work=$(mktemp -d)
profile=$(mktemp -d)
cleanup() {
    rm -rf "$profile"
    if [[ "${KEEP:-}" == 1 ]]; then
        echo "kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

esus_ir() {
    if [[ -n "${ESUS_IR:-}" ]]; then
        "$ESUS_IR" "$@"
    else
        cargo run --quiet --release --manifest-path "$root/Cargo.toml" -- "$@"
    fi
}

chromium=$(command -v chromium || command -v chromium-browser || true)
if [[ -z "$chromium" ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "installing chromium (apt-get install -y chromium)…" >&2
        apt-get install -y chromium >/dev/null
        chromium=$(command -v chromium)
    else
        echo "error: chromium not found; install it (Debian: apt-get install -y chromium)" >&2
        exit 1
    fi
fi

# A drill signs its transcript: use a throwaway key, not the operator's per-user key.
export ESUS_IR_SIGN_KEY="$work/sign_ed25519"
esus_ir keygen -o "$ESUS_IR_SIGN_KEY" --operator "drill@example.org" >/dev/null 2>&1

echo "drilling $runbook into $work/run…" >&2
esus_ir drill "$runbook" --run-dir "$work/run" --operator drill@example.org --non-interactive \
    >"$work/drill.txt" 2>&1 || {
    cat "$work/drill.txt" >&2
    echo "error: the drill failed (its report above); the screenshot needs a transcript" >&2
    exit 1
}

esus_ir report "$work/run/transcript.jsonl" --format html -o "$work/report.html"
echo "rendered $work/report.html" >&2

"$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run \
    --user-data-dir="$profile" --hide-scrollbars \
    --screenshot="$work/shot.png" --window-size="$window" \
    "file://$work/report.html" >"$work/chromium.log" 2>&1 || {
    cat "$work/chromium.log" >&2
    exit 1
}
if [[ ! -s "$work/shot.png" ]]; then
    cat "$work/chromium.log" >&2
    echo "error: chromium wrote no screenshot" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
cp "$work/shot.png" "$out"
echo "screenshot: $out" >&2
