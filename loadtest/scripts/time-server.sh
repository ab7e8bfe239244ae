#!/usr/bin/env bash
# The server under `/usr/bin/time`, for `bench --server-bin`: when the run
# ends it writes the server's user and system CPU seconds to $TIME_OUT, so
# a run's CPU per transfer can be compared between builds on a machine
# whose speed moves by the hour (docs/BENCHMARKS.md).
#
# usage: TIME_OUT=/tmp/time.txt FUNDLEDGER_BIN=/tmp/fl-X \
#          fundledger-loadtest bench ... --server-bin loadtest/scripts/time-server.sh
#   FUNDLEDGER_BIN: the server binary (default target/release/fundledger,
#                   or $CARGO_TARGET_DIR/release/fundledger)
#   TIME_OUT:       where to write "user <s> sys <s>" (default
#                   /tmp/fundledger-time.txt)
# needs: GNU time (/usr/bin/time)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
server="${FUNDLEDGER_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/fundledger}"
/usr/bin/time -o "${TIME_OUT:-/tmp/fundledger-time.txt}" -f "user %U sys %S" "$server" "$@" &
timer=$!
# The harness stops the server with SIGTERM: pass it on to the server
# itself (time's child), so that it shuts down as usual and time reports.
trap 'kill -TERM $(pgrep -P "$timer") 2>/dev/null || true' TERM INT
# A trapped signal ends `wait` early: wait again until time has exited.
set +e
while :; do
  wait "$timer"
  status=$?
  kill -0 "$timer" 2>/dev/null || break
done
exit "$status"
