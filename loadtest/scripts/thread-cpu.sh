#!/usr/bin/env bash
# CPU seconds each of the server's threads used during one `bench` run,
# by thread name (threads of one name summed: the gateway's tokio workers
# and blocking pool are all `tokio-rt-worker`), read from /proc once
# more every half second while the harness runs, so the last reading is
# from just before the server stops. Divided by the transfers the report
# counts, that is one thread's CPU per transfer: how a change to, say,
# the history archive's writer is judged when the whole server's CPU
# moves more between runs than that thread's share (docs/PERFORMANCE.md).
#
# usage: loadtest/scripts/thread-cpu.sh SERVER_BIN BENCH_ARGS...
#   SERVER_BIN: the server binary to run (`bench --server-bin`), say a
#               copy of an older build; found by `pgrep -f "NAME serve"`,
#               so give each build a distinct file name
# prints the report's "load accepted" line, then name=seconds per thread
# name and process= for the whole server (setup included; threads that
# exited during the run count only there), then the same for the run
# alone (from the first reading after setup), in µs per transfer, and
# the server's minor page faults during the run (a page the allocator gave
# back and takes again faults in anew: see src/allocator.rs) and the
# bytes it wrote (write calls to files and sockets, /proc/PID/io wchar)
# THREAD_CPU_REPORT=FILE in the environment keeps the harness's whole
# output (its report and progress lines) in FILE.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${1:?server binary}"
shift
out="$(mktemp /tmp/fundledger-thread-cpu.XXXXXX)"
"${CARGO_TARGET_DIR:-$root/target}/release/fundledger-loadtest" bench --server-bin "$bin" "$@" > "$out" 2>&1 &
harness=$!
pid=""
for _ in $(seq 1 120); do
  pid="$(pgrep -f "$(basename "$bin") serve" | head -1 || true)"
  [ -n "$pid" ] && break
  sleep 0.5
done
[ -n "$pid" ] || { echo "no server process found" >&2; cat "$out" >&2; exit 1; }
hz="$(getconf CLK_TCK)"
last=""
start=""
while kill -0 "$harness" 2>/dev/null; do
  # Thread id, name, utime + stime (fields 14 and 15 of stat; comm has
  # no spaces here).
  reading="$(for task in /proc/"$pid"/task/*; do
    printf '%s %s %s\n' "${task##*/}" "$(cat "$task/comm" 2>/dev/null)" "$(awk '{print $14 + $15}' "$task/stat" 2>/dev/null)"
  done; printf '0 process %s\n' "$(awk '{print $14 + $15}' /proc/"$pid"/stat 2>/dev/null)"
  printf -- '-1 minflt %s\n' "$(awk '{print $10}' /proc/"$pid"/stat 2>/dev/null)"
  printf -- '-2 wchar %s\n' "$(awk '$1 == "wchar:" {print $2}' /proc/"$pid"/io 2>/dev/null)")" || true
  # The first reading after setup: what each thread had used before the
  # run (onboarding a million accounts dwarfs a 20-s run).
  if [ -z "$start" ] && grep -q 'starts at unix time' "$out"; then
    start="$reading"
  fi
  # A reading taken while the server stops misses the threads already
  # gone: keep the last one in which the log's writer still runs (it
  # stops last). Threads that came and went (the blocking pool's idle
  # out after 10 s) count in process= only.
  if grep -q '^0 process [0-9]' <<< "$reading" && grep -q '^[0-9]* wal-writer ' <<< "$reading"; then
    last="$reading"
  fi
  sleep 0.5
done
wait "$harness" || { echo "bench failed:" >&2; tail -20 "$out" >&2; exit 1; }
grep "load accepted =" "$out" | sed 's/load accepted = //'
awk -v hz="$hz" 'NF == 3 && $3 != "" && $2 != "minflt" && $2 != "wchar" { cpu[$2] += $3 } END { for (name in cpu) printf "%s=%.1fs ", name, cpu[name] / hz; print "" }' <<< "$last"
# The run alone, per transfer: each thread's CPU since the reading taken
# when the run started (threads started since count from zero).
transfers="$(grep "load accepted =" "$out" | sed -E 's/.*\(([0-9,]+) in .*/\1/' | tr -d ,)"
awk -v hz="$hz" -v transfers="$transfers" '
  FNR == NR { if (NF == 3) before[$1] = $3; next }
  NF == 3 && $3 != "" && $2 == "minflt" { faults = $3 - before[$1]; next }
  NF == 3 && $3 != "" && $2 == "wchar" { written = $3 - before[$1]; next }
  NF == 3 && $3 != "" { cpu[$2] += $3 - before[$1] }
  END {
    printf "run, us per transfer:"
    for (name in cpu) printf " %s=%.2f", name, cpu[name] / hz * 1e6 / transfers
    print ""
    printf "run, page faults (minor) of the server: %.0f, %.3f per transfer\n", faults, faults / transfers
    printf "run, bytes the server wrote (wchar: files and sockets): %.0f, %.0f per transfer\n", written, written / transfers
  }' <(printf '%s\n' "$start") <(printf '%s\n' "$last")
if [ -n "${THREAD_CPU_REPORT:-}" ]; then cp "$out" "$THREAD_CPU_REPORT"; fi
rm -f "$out"
