#!/usr/bin/env bash
# Builds a sample incident of three legs — a decline, a Ctrl-C, a resume to the end — renders its
# post-mortem (`esus-ir report RUN_DIR --format html`) and photographs it with headless Chromium.
#
#   scripts/report-screenshot.sh [OUT.png]
#
# 1. serves the ESUS simulator on a free loopback port (`esus-ir sim --ready-file`);
# 2. leg 1: `esus-ir run api-key-compromise` at a pseudo-terminal: approves the logout prompt and
#    declines the delete prompt (exit 3);
#    leg 2: `esus-ir run --resume RUN_DIR` at a pseudo-terminal: Ctrl-C at the delete prompt
#    (exit 130);
#    leg 3: `esus-ir run --resume RUN_DIR` at a pseudo-terminal: approves the delete; the run
#    contains the key, pulls the audit log and issues the replacement (exit 0).
#    Each prompt is answered after a pause, as a person would, so the report has time waiting for
#    a person to draw apart from time working;
# 3. renders `esus-ir report RUN_DIR --format html` (and checks `esus-ir verify RUN_DIR`);
# 4. opens the HTML in headless Chromium and saves a screenshot to OUT.png (default:
#    ./report-screenshot.png).
#
# Needs: cargo (builds esus-ir in release mode), python3 (drives the prompts through a
# pseudo-terminal) and Chromium — on Debian/Ubuntu `apt-get install -y chromium` (the script
# installs it when it runs as root and finds none). Nothing leaves the machine: the simulator
# listens on 127.0.0.1, Chromium runs with background networking, component updates and sync off
# in a throwaway profile, and the report has no external resources anyway.
# Environment: ESUS_IR (a built esus-ir to use instead of `cargo run --release`), KEEP=1 (keep the
# temporary folder and print its path), WINDOW (default 1280,2850: the summary, the picture, the
# legs, containment, the decisions and the evidence; 1280,9000 for the whole page).
set -euo pipefail

out=${1:-report-screenshot.png}
window=${WINDOW:-1280,2850}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

work=$(mktemp -d)
profile=$(mktemp -d)
sim_pid=
cleanup() {
    if [[ -n "$sim_pid" ]]; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    rm -rf "$profile"
    if [[ "${KEEP:-}" == 1 ]]; then
        echo "kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

if [[ -n "${ESUS_IR:-}" ]]; then
    exe=$ESUS_IR
else
    cargo build --quiet --release --locked --manifest-path "$root/Cargo.toml"
    exe="$root/target/release/esus-ir"
fi
command -v python3 >/dev/null || {
    echo "error: python3 not found (it answers the prompts through a pseudo-terminal)" >&2
    exit 1
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

# Runs sign their transcripts: a throwaway key and config folder, never the operator's own.
export XDG_CONFIG_HOME="$work/config"
export ESUS_IR_SIGN_KEY="$work/sign_ed25519"
export NO_COLOR=1
unset ESUS_TOKEN ESUS_BASE_URL ESUS_REFRESH_TOKEN ESUS_COMPROMISED_TOKEN ESUS_LEAKED_KEY_SECRET
"$exe" keygen -o "$ESUS_IR_SIGN_KEY" --operator oncall@example.org >/dev/null 2>&1

"$exe" sim --listen 127.0.0.1:0 --ready-file "$work/ready.json" --quiet \
    >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 100); do
    [[ -s "$work/ready.json" ]] && break
    sleep 0.1
done
[[ -s "$work/ready.json" ]] || {
    cat "$work/sim.log" >&2
    echo "error: the simulator did not start" >&2
    exit 1
}

echo "building a three-leg incident in $work/run…" >&2
EXE="$exe" WORK="$work" python3 - <<'PY'
import json, os, pty, select, sys, time

exe, work = os.environ["EXE"], os.environ["WORK"]
ready = json.load(open(os.path.join(work, "ready.json")))
run_dir = os.path.join(work, "run")
env = dict(os.environ,
           ESUS_TOKEN=ready["admin_token"],
           ESUS_COMPROMISED_TOKEN=ready["session_token"],
           ESUS_LEAKED_KEY_SECRET=ready["key_secret"])
operator = ["--operator", "oncall@example.org"]

def leg(argv, answers, expect_code, name):
    """Runs argv at a pseudo-terminal; for each (text, pause, keys) waits for text on screen,
    pauses as a person reading it would, then types keys."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    seen = b""
    def read(timeout):
        nonlocal seen
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return False
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return None
        if not chunk:
            return None
        seen += chunk
        return True
    for text, pause, keys in answers:
        deadline = time.time() + 60
        while text.encode() not in seen:
            if time.time() > deadline or read(1) is None:
                sys.exit(f"{name}: never saw {text!r}:\n{seen.decode(errors='replace')}")
        seen = seen.split(text.encode(), 1)[1]
        time.sleep(pause)
        os.write(fd, keys)
    while read(60):
        pass
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != expect_code:
        sys.exit(f"{name}: exit {code}, expected {expect_code}:\n{seen.decode(errors='replace')}")
    print(f"{name}: exit {code}", file=sys.stderr)

leg([exe, "run", "api-key-compromise", "--base-url", ready["base_url"], "--run-dir", run_dir,
     "-i", "key_id=" + ready["key_id"], "-i", "user_id=" + ready["user_id"], *operator],
    [("Log out the compromised session", 1.5, b"y\r"),
     ("Delete API key", 0, b""), ("[y/N]", 2.0, b"n\r")],
    3, "leg 1 (delete declined)")
time.sleep(2)
leg([exe, "run", "--resume", run_dir, *operator],
    [("Delete API key", 0, b""), ("[y/N]", 1.5, b"\x03")],
    130, "leg 2 (Ctrl-C at the delete prompt)")
time.sleep(3)
leg([exe, "run", "--resume", run_dir, *operator],
    [("Delete API key", 0, b""), ("[y/N]", 2.5, b"y\r")],
    0, "leg 3 (resumed to the end)")
PY

"$exe" verify "$work/run" >"$work/verify.txt" || {
    cat "$work/verify.txt" >&2
    echo "error: the incident does not verify" >&2
    exit 1
}
"$exe" report "$work/run" --format html -o "$work/report.html"
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
