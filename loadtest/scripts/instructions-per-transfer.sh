#!/usr/bin/env bash
# Instructions the server executes per transfer, counted by callgrind: steady
# for a given binary and inputs whatever else the machine is doing (unlike
# wall-clock rates on a shared 2-core machine).
#
# Runs the harness twice against `fundledger serve` under
# `valgrind --tool=callgrind`, with a small and a large count, and prints
# the difference per transfer, so start-up and onboarding cancel out.
#
# usage: loadtest/scripts/instructions-per-transfer.sh [--body json|binary] single|batch [SMALL LARGE] [-- BENCH_ARGS...]
#   single: SMALL=1000 LARGE=5000 transfers, one per request, 8 connections
#   batch:  SMALL=16380 LARGE=81900 transfers, 8190 per request
#   --body binary: batches as application/vnd.fundledger.transfers+binary
#                  (docs/API-notes.md) instead of JSON (batch only)
#   BENCH_ARGS: more `bench` arguments for both runs, say
#               `-- --history-memory-records 16384` so that the history
#               archive writes and merges runs within the counted transfers
#               (at the default it writes its first run after 262,144 records)
# needs: valgrind; a release build (cargo build --release -p fundledger -p fundledger-loadtest)
# FUNDLEDGER_BIN: another server binary to count (say, an older commit's build)
# ACCOUNTS: accounts to onboard (default 100; with 10000, as `bench` runs,
#           each batch becomes thousands of per-account messages instead of
#           about a hundred, which is where the per-message costs show)
# binaries come from $CARGO_TARGET_DIR/release when it is set, else target/release
# keeps the larger run's profile: callgrind_annotate --inclusive=yes <printed file>
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
body=json
if [ "${1:-}" = "--body" ]; then
  body="${2:?--body json or binary}"; shift 2
fi
scenario="${1:?single or batch}"
shift
counts=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do counts+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
case "$scenario" in
  single) small="${counts[0]:-1000}"; large="${counts[1]:-5000}"; extra=() ;;
  batch) small="${counts[0]:-16380}"; large="${counts[1]:-81900}"; extra=(--batch-size 8190) ;;
  *) echo "scenario must be single or batch" >&2; exit 2 ;;
esac
extra+=("$@")
case "$body" in
  json) ;;
  binary) [ "$scenario" = batch ] || { echo "--body binary is for batch" >&2; exit 2; }; extra+=(--body binary) ;;
  *) echo "--body must be json or binary" >&2; exit 2 ;;
esac
target="${CARGO_TARGET_DIR:-$root/target}"
work="$(mktemp -d /tmp/fundledger-callgrind.XXXXXX)"
# The server under callgrind. On SIGTERM the wrapper waits SETTLE_S (30)
# seconds before passing it on: the bank side runs behind the answers (more
# so under valgrind), and a run that exits with bank work still queued
# would undercount it.
cat > "$work/server.sh" <<WRAP
#!/bin/bash
valgrind --tool=callgrind --callgrind-out-file="$work/out.\$\$" "${FUNDLEDGER_BIN:-$target/release/fundledger}" "\$@" 2>"$work/valgrind.\$\$.log" &
child=\$!
trap 'sleep ${SETTLE_S:-30}; kill -TERM \$child' TERM
wait \$child; wait \$child
WRAP
chmod +x "$work/server.sh"
total() {
  rm -f "$work"/out.*
  "$target/release/fundledger-loadtest" bench --server-bin "$work/server.sh" --ready-timeout-s 300 \
    --scenario "$scenario" --accounts "${ACCOUNTS:-100}" --count "$1" --connections 8 "${extra[@]}" > "$work/bench.$1.log" 2>&1
  # The server dumps its profile as it exits; wait for it.
  for _ in $(seq 1 180); do
    file="$(ls "$work"/out.* 2>/dev/null | head -1 || true)"
    if [ -n "$file" ] && grep -q '^totals:\|^summary:' "$file"; then break; fi
    sleep 1
  done
  grep -E '^(summary|totals):' "$file" | head -1 | awk '{print $2}'
  cp "$file" "$work/profile.$1"
}
a="$(total "$small")"
b="$(total "$large")"
echo "scenario $scenario ($body bodies): $a instructions for $small transfers, $b for $large"
echo "instructions per transfer: $(( (b - a) / (large - small) ))"
echo "profile of the larger run: $work/profile.$large"
