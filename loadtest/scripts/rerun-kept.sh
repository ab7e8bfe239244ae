#!/usr/bin/env bash
# One more `bench` run against a work directory an earlier run kept
# (`bench --keep-data`), served by the build given: so that two builds
# can be compared over a million accounts without onboarding them again
# (four minutes on a 2-core machine) for every run.
#
# Starts SERVER_BIN on the directory's data (its fundledger.toml, on a
# fixed loopback port), which recovers from the checkpoint and the log
# like any restart; then runs `bench --url ... --skip-setup` with
# BENCH_ARGS; then stops the server (SIGTERM) and prints
#   - the server's start-up line (records replayed after the checkpoint,
#     the checkpoint's load time and the whole start-up's, in ms),
#   - the checkpoints the server wrote during the run (records read, ms),
#   - the report's accepted rate and batch or request latency p50/p99,
#   - each second's accepted transfers, in thousands,
#   - each thread's CPU per transfer in µs during the run (threads of one
#     name summed; read from /proc just before and just after the run,
#     so threads that came and went in between, the gateway's blocking
#     pool, count in total= only).
# Each run adds its transfers to the directory: alternate the builds.
#
# usage: loadtest/scripts/rerun-kept.sh WORK_DIR SERVER_BIN [BENCH_ARGS...]
#   WORK_DIR: the directory `bench --keep-data` printed
#   BENCH_ARGS: say `--scenario batch --accounts 1000000 --duration 30`
#               (--accounts must not exceed the accounts it onboarded)
# PORT: the loopback port to serve on (default 18080)
# binaries come from $CARGO_TARGET_DIR/release when it is set, else target/release
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(cd "${1:?work directory kept by bench --keep-data}" && pwd)"
bin="$(realpath "${2:?server binary}")"
shift 2
port="${PORT:-18080}"
config="$work/rerun.toml"
sed "s/^listen = .*/listen = \"127.0.0.1:$port\"/" "$work/fundledger.toml" > "$config"
log="$work/rerun-$(basename "$bin").log"
"$bin" serve --config "$config" > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
until curl -sf "127.0.0.1:$port/readyz" > /dev/null; do
  kill -0 "$pid" 2>/dev/null || { echo "the server stopped:" >&2; tail -5 "$log" >&2; exit 1; }
  sleep 0.2
done
hz="$(getconf CLK_TCK)"
cpu() {
  for task in /proc/"$pid"/task/*; do
    printf '%s %s\n' "$(cat "$task/comm" 2>/dev/null)" "$(awk '{print $14 + $15}' "$task/stat" 2>/dev/null)"
  done | awk 'NF == 2 { cpu[$1] += $2 } END { for (name in cpu) print name, cpu[name] }'
  printf 'total %s\n' "$(awk '{print $14 + $15}' /proc/"$pid"/stat)"
}
before="$(cpu)"
out="$("${CARGO_TARGET_DIR:-$root/target}/release/fundledger-loadtest" bench --url "http://127.0.0.1:$port" \
  --skip-setup --server-pid "$pid" "$@" 2>&1)" || { echo "bench failed:" >&2; tail -20 <<< "$out" >&2; exit 1; }
after="$(cpu)"
kill "$pid"
wait "$pid" || true
trap - EXIT
plain() { sed 's/\x1b\[[0-9;]*m//g' "$log"; }
plain | grep -o 'recovered checkpoint_lsn.*' | head -1
plain | grep -o 'written=Written {[^}]*}' || echo "no checkpoint written during the run"
grep -E "load accepted =|latency  p(50|99) " <<< "$out"
printf 'per second (thousands): '
grep 'accepted/s' <<< "$out" | sed 's/.* \([0-9,]*\) accepted\/s.*/\1/' | tr -d , | awk '{ printf "%d ", $1 / 1000 } END { print "" }'
transfers="$(grep "load accepted =" <<< "$out" | sed 's/.*(\([0-9,]*\) in.*/\1/' | tr -d ,)"
printf 'cpu per transfer (µs): '
awk -v hz="$hz" -v n="$transfers" 'NR == FNR { was[$1] = $2; next }
  { used = $2 - was[$1]; if (used > 0) printf "%s=%.2f ", $1, used / hz / n * 1e6 } END { print "" }' \
  <(echo "$before") <(echo "$after")
