#!/usr/bin/env python3
"""Instructions per transfer, function by function, from the two profiles
that instructions-per-transfer.sh leaves (profile.SMALL and profile.LARGE
in its work directory): each function's count in the larger run minus the
smaller, divided by the transfers between them, so start-up and onboarding
cancel out. Per-function figures move less between runs than the total
(threads interleave differently from run to run).

usage: callgrind-per-transfer.py WORK_DIR [TOP] [--self] [--match REGEX]
       callgrind-per-transfer.py WORK_DIR_A WORK_DIR_B [TOP] [--self] [--match REGEX]
  one directory: the TOP (default 60) functions by inclusive instructions
  per transfer (--self: by their own instructions only)
  two directories (two builds): the functions whose figure changed most
  --match: only functions whose name matches (say `^fundledger`: generic
  frames such as futures' `poll` are inlined differently from build to
  build and swing by thousands)
needs: callgrind_annotate (valgrind)
"""
import collections
import glob
import os
import re
import subprocess
import sys


def profiles(work):
    found = {}
    for path in glob.glob(os.path.join(work, "profile.*")):
        suffix = path.rsplit(".", 1)[1]
        if suffix.isdigit():
            found[int(suffix)] = path
    if len(found) != 2:
        sys.exit(f"{work}: expected profile.SMALL and profile.LARGE, found {sorted(found)}")
    (small, small_path), (large, large_path) = sorted(found.items())
    return small_path, large_path, large - small


def counts(path, inclusive):
    mode = "--inclusive=yes" if inclusive else "--inclusive=no"
    out = subprocess.run(["callgrind_annotate", mode, "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    table = collections.Counter()
    for line in out.split("\n"):
        match = re.match(r"^\s*([0-9,]+) \([ 0-9.]+%\)\s+(\S.*)$", line)
        if not match or "=>" in line or "PROGRAM TOTALS" in line:
            continue
        name = re.sub(r" \[[^\]]*\]$", "", match.group(2))
        name = name.split(":", 1)[1] if ":" in name else name
        table[name] = max(table[name], int(match.group(1).replace(",", "")))
    return table


def per_transfer(work, inclusive):
    small_path, large_path, transfers = profiles(work)
    small, large = counts(small_path, inclusive), counts(large_path, inclusive)
    return {name: (large[name] - small.get(name, 0)) / transfers for name in large}


def main():
    argv = sys.argv[1:]
    pattern = re.compile(".")
    if "--match" in argv:
        at = argv.index("--match")
        pattern = re.compile(argv[at + 1])
        del argv[at : at + 2]
    args = [a for a in argv if a != "--self"]
    inclusive = "--self" not in argv
    dirs = [a for a in args if os.path.isdir(a)]
    top = int(next((a for a in args if a.isdigit()), "60"))
    if len(dirs) == 1:
        table = {k: v for k, v in per_transfer(dirs[0], inclusive).items() if pattern.search(k)}
        for name, value in sorted(table.items(), key=lambda item: -item[1])[:top]:
            print(f"{value:9.0f}  {name[:150]}")
    elif len(dirs) == 2:
        a, b = per_transfer(dirs[0], inclusive), per_transfer(dirs[1], inclusive)
        names = sorted({name for name in set(a) | set(b) if pattern.search(name)}, key=lambda name: -abs(b.get(name, 0) - a.get(name, 0)))
        print(f"{'A':>9}  {'B':>9}  {'B-A':>8}  function")
        for name in names[:top]:
            print(f"{a.get(name, 0):9.0f}  {b.get(name, 0):9.0f}  {b.get(name, 0) - a.get(name, 0):+8.0f}  {name[:120]}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
