#!/usr/bin/env python3
"""Per-function instructions per request, before and after: what a change cost, and where.

    KEEP=/tmp/before scripts/bench-instructions.sh OLD-GWHOST
    KEEP=/tmp/after  scripts/bench-instructions.sh
    scripts/callgrind-diff.py /tmp/before/plain /tmp/after/plain [--inclusive]

Each argument is a profile's path without its suffix (`X.callgrind` and `X.n`, the request
count, as `KEEP` leaves them). Self cost by default: a function the compiler stopped
inlining shows up as a new line here, its cost moved out of its caller's. Plugin code
has no names (plugins load from a memfd): map `0x…` with `nm -n --defined-only` of the
`.so`.
"""
import collections
import re
import subprocess
import sys


def load(prefix, inclusive):
    requests = int(open(prefix + ".n").read())
    out = subprocess.run(
        ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
         "--threshold=100", "--show-percs=no", prefix + ".callgrind"],
        capture_output=True, text=True, check=True).stdout
    per_request = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(.*)", line)
        if not m or ":" not in m.group(2):
            continue
        name = m.group(2)
        # `file:function [object]`: the function and its object are what tell it apart.
        name = name.split(":", 1)[1] if name.startswith(("/", "?", ".")) else name
        per_request[name[:160]] += int(m.group(1).replace(",", "")) / requests
    return per_request


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__)
    inclusive = "--inclusive" in sys.argv
    before, after = (load(a, inclusive) for a in args)
    print(f"total per request: {sum(before.values()):.0f} -> {sum(after.values()):.0f}")
    changed = sorted(set(before) | set(after), key=lambda k: before[k] - after[k])
    for name in changed:
        delta = after[name] - before[name]
        if abs(delta) >= 8:
            print(f"{before[name]:8.0f} {after[name]:8.0f} {delta:+7.0f}  {name}")


if __name__ == "__main__":
    main()
