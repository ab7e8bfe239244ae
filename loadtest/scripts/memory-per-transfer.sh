#!/usr/bin/env bash
# Memory that stays per transfer: start the release server on a temp data
# dir, send ROUNDS rounds of COUNT batched transfers (bench --url), and after
# each round wait until the bank side has answered every instruction (the
# outbox queue is a transient backlog, bounded on its own), then print the
# server's RSS. The growth from one settled round to the next, divided by
# COUNT, is what each transfer leaves in memory.
#
#   loadtest/scripts/memory-per-transfer.sh [ROUNDS] [COUNT] [extra bench flags]
#
# FUNDLEDGER_BIN: another server binary (default target/release/fundledger);
# FUNDLEDGER_CONFIG: the config it starts from (default config/default.toml;
# an older build needs its own, it refuses keys it does not know).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
count=${2:-1000000}
shift 2 || true
bin=${FUNDLEDGER_BIN:-target/release/fundledger}
loadtest=target/release/fundledger-loadtest
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
sed -e "s|^listen = .*|listen = \"127.0.0.1:18466\"|" -e "s|^data_dir = .*|data_dir = \"$work/data\"|" \
  "${FUNDLEDGER_CONFIG:-config/default.toml}" >"$work/config.toml"
"$bin" serve --config "$work/config.toml" >"$work/server.log" 2>&1 &
pid=$!
until curl -sf http://127.0.0.1:18466/readyz >/dev/null; do sleep 0.2; done
metric() { curl -s http://127.0.0.1:18466/metrics | awk -v name="$1" '$1 == name { sum += $2 } END { printf "%d", sum }'; }
settle() {
  local last=-1
  while true; do
    local enqueued answered
    enqueued=$(metric fundledger_bank_work_enqueued_total)
    answered=$(metric fundledger_bank_work_answered_total)
    [ "$enqueued" = "$answered" ] && [ "$enqueued" = "$last" ] && break
    last=$enqueued
    sleep 2
  done
}
rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }
settle
echo "round 0: rss $(rss) MiB (ready, no accounts)"
accounts=10000
for round in $(seq 1 "$rounds"); do
  setup=()
  [ "$round" -gt 1 ] && setup=(--skip-setup)
  "$loadtest" bench --url http://127.0.0.1:18466 --server-pid "$pid" --scenario batch --accounts "$accounts" \
    --connections 4 --count "$count" "${setup[@]}" "$@" | grep -E "load accepted" || true
  settle
  echo "round $round: rss $(rss) MiB after $((round * count)) transfers, bank side settled"
done
