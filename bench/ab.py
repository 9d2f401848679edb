#!/usr/bin/env python3
"""Two builds of glint_bench side by side, interleaved, on a noisy machine.

Usage: bench/ab.py N FILTER OLD_GLINT_BENCH NEW_GLINT_BENCH

Runs each binary N times (0.2 s per benchmark, order alternating each round,
so slow drifts of the machine hit both alike) and prints, per benchmark, the
median time of each and the median of the paired ratios new/old with their
range. On a shared VM whose speed wanders by 30% from minute to minute, the
paired ratio is the figure to quote; the medians are today's, not the
machine's best.

Example (the old build from a worktree at the commit to compare against):
  git worktree add /tmp/old 6095715 && cmake -S /tmp/old -B /tmp/old/b -G Ninja \\
      -DCMAKE_BUILD_TYPE=Release -DGLINT_BUILD_TESTS=OFF && ninja -C /tmp/old/b glint_bench
  bench/ab.py 12 'BM_CreateWriteSeal/64$|BM_Delete/64$|BM_FullCycle/64$' \\
      /tmp/old/b/bench/glint_bench build-bench/bench/glint_bench
"""
import json
import statistics
import subprocess
import sys


def run(binary, filt):
    out = subprocess.run(
        [binary, "--benchmark_filter=" + filt, "--benchmark_format=json",
         "--benchmark_min_time=0.2"],
        capture_output=True, text=True, check=True).stdout
    return {b["name"]: b["real_time"] for b in json.loads(out)["benchmarks"]}


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    n, filt, old, new = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    times = {old: {}, new: {}}
    for i in range(n):
        for b in (old, new) if i % 2 == 0 else (new, old):
            for name, t in run(b, filt).items():
                times[b].setdefault(name, []).append(t)
    print(f"{'benchmark':36s} {'old ns':>8s} {'new ns':>8s}  new/old paired median (range)")
    for name in times[old]:
        a, b = times[old][name], times[new][name]
        ratios = [y / x for x, y in zip(a, b)]
        print(f"{name:36s} {statistics.median(a):8.1f} {statistics.median(b):8.1f}  "
              f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
