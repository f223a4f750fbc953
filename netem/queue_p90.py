#!/usr/bin/env python3
"""queue_p90.py BEFORE AFTER DIR: the 90th percentile, in ms, of the
bottleneck queueing delay of the packets that crossed direction DIR (c2s or
s2c) between two snapshots of the emulator's counters (emu.stats, its
queue_delay_hist=bucket:count,... field; buckets are 1 ms below 256 ms,
8 ms above). Prints "-" when there is nothing to measure."""
import sys


def hist(path, direction):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return {}
    for line in lines:
        words = line.split()
        if not words or words[0] != direction:
            continue
        for kv in words[1:]:
            if kv.startswith("queue_delay_hist="):
                pairs = (p.split(":") for p in kv.split("=", 1)[1].split(",") if p)
                return {int(b): int(c) for b, c in pairs}
    return {}


def bucket_ms(b):
    return b if b < 256 else 256 + (b - 256) * 8


def main():
    before, after = hist(sys.argv[1], sys.argv[3]), hist(sys.argv[2], sys.argv[3])
    delta = {b: c - before.get(b, 0) for b, c in after.items() if c > before.get(b, 0)}
    n = sum(delta.values())
    if n == 0:
        print("-")
        return
    seen = 0
    for b in sorted(delta):
        seen += delta[b]
        if seen >= 0.9 * n:
            print(bucket_ms(b))
            return


main()
