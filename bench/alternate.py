#!/usr/bin/env python3
"""Runs single multi-process benchmarks alternately, each alone in its process.

Usage: bench/alternate.py ROUNDS GLINT_BENCH:FILTER [GLINT_BENCH:FILTER ...]

Each round runs every GLINT_BENCH with its FILTER once (the filter must
select one benchmark, e.g. 'BM_FullCycleProcesses/2/'), in the order given
on even rounds and reversed on odd ones, so that drift and the order within
a round favour no one. Each run is a fresh process with a fresh store: no
run inherits a store another benchmark used. Prints each run's cycles per
second, then per entry the median over rounds and the median (and
quartiles) of its per-round ratio to the first entry.

The 1 s windows of BM_FullCycleProcesses* swing by a third from one minute
to the next on the shared VM; a difference smaller than the quartiles of
the ratio is noise.

Examples:
  # the store's own cost with two processes: one store against two
  bench/alternate.py 12 build-bench/bench/glint_bench:'BM_FullCycleProcesses/2/' \\
      build-bench/bench/glint_bench:'BM_FullCycleProcesses_SeparateStores/2/'
  # two builds
  bench/alternate.py 30 OLD/bench/glint_bench:'BM_FullCycleProcesses/2/' \\
      NEW/bench/glint_bench:'BM_FullCycleProcesses/2/'
"""
import json
import statistics
import subprocess
import sys


def run(binary, filt):
    out = subprocess.run(
        [binary, "--benchmark_filter=" + filt, "--benchmark_format=json"],
        capture_output=True, text=True, check=True).stdout
    rates = [b["cycles_per_s"] for b in json.loads(out)["benchmarks"]
             if "cycles_per_s" in b]
    if len(rates) != 1:
        sys.exit("%s: filter %r selected %d multi-process benchmarks, not 1"
                 % (binary, filt, len(rates)))
    return rates[0] / 1e6


def main():
    if len(sys.argv) < 3 or any(":" not in a for a in sys.argv[2:]):
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    entries = [tuple(a.split(":", 1)) for a in sys.argv[2:]]
    rates = [[] for _ in entries]
    for r in range(rounds):
        order = list(range(len(entries)))
        if r % 2:
            order.reverse()
        for i in order:
            rates[i].append(run(*entries[i]))
        print("round %2d  " % r + "  ".join("%.2f" % rates[i][-1]
                                            for i in range(len(entries))),
              flush=True)
    print()
    for i, (binary, filt) in enumerate(entries):
        ratio = [x / y for x, y in zip(rates[i], rates[0])]
        q = statistics.quantiles(ratio, n=4) if len(ratio) > 1 else ratio * 3
        print("%-60s median %6.2f M/s  vs first %.3f (quartiles %.3f-%.3f)"
              % (binary + ":" + filt, statistics.median(rates[i]),
                 statistics.median(ratio), q[0], q[2]))


if __name__ == "__main__":
    main()
