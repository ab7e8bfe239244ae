#!/usr/bin/env bash
# One `bench` run against a server that has rested PAUSE_S seconds after
# onboarding its accounts: whether a run's rate depends on the work
# onboarding leaves behind (the checkpoint of the new accounts' state, the
# history's flushes and merges, the sandbox bank's queue) or is the steady
# rate over that many accounts (docs/PERFORMANCE.md, 2026-12-07,
# 19:35-22:35 UTC).
#
# Starts SERVER_BIN on a fresh data directory with the harness's own
# configuration (`fundledger-loadtest server-config`: what `bench` writes),
# onboards and funds ACCOUNTS accounts with `bench --url ... --duration 1`, sleeps
# PAUSE_S, then runs `bench --url ... --skip-setup --scenario batch
# --accounts ACCOUNTS --duration DURATION_S` against the same process and
# prints its report's accepted rate and CPU line; the server is stopped and
# its directory removed at the end.
#
# usage: loadtest/scripts/pause-after-setup.sh SERVER_BIN ACCOUNTS PAUSE_S [DURATION_S]
#   alternate PAUSE_S 60 and 0 in one set: only runs of one set compare
# PORT: the loopback port to serve on (default 18081)
# binaries come from $CARGO_TARGET_DIR/release when it is set, else target/release
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$(realpath "${1:?server binary}")"
accounts="${2:?accounts}"
pause="${3:?seconds to rest after onboarding}"
duration="${4:-20}"
port="${PORT:-18081}"
loadtest="${CARGO_TARGET_DIR:-$root/target}/release/fundledger-loadtest"
work="$(mktemp -d "${TMPDIR:-/tmp}/fundledger-pause.XXXXXX")"
"$loadtest" server-config --data-dir "$work/data" > "$work/fundledger.toml"
RUST_LOG=warn "$bin" serve --config "$work/fundledger.toml" --listen "127.0.0.1:$port" > "$work/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
until curl -sf "127.0.0.1:$port/readyz" > /dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
    sleep 0.2
done
url="http://127.0.0.1:$port"
"$loadtest" bench --url "$url" --server-pid "$pid" --scenario batch --accounts "$accounts" --duration 1 \
    > "$work/setup.txt" 2>&1 || { cat "$work/setup.txt"; exit 1; }
echo "onboarded $accounts accounts; resting ${pause} s"
sleep "$pause"
"$loadtest" bench --url "$url" --server-pid "$pid" --skip-setup --scenario batch --accounts "$accounts" \
    --duration "$duration" > "$work/run.txt" 2>&1 || { cat "$work/run.txt"; exit 1; }
grep -E 'load accepted|cpu during run' "$work/run.txt"
