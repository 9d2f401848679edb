#!/usr/bin/env python3
"""Issue 2's speed goals, measured the way they are stated, over many rounds.

Usage: bench/goals.py ROUNDS GLINT_BENCH [PAUSE_S]

Each round runs the four single-process goal benchmarks (64 B) with five
repetitions and keeps their medians; rounds are PAUSE_S seconds apart
(default 60) so that they sample the machine's slow and quiet minutes
alike. At the end it prints, per goal, every round's median, the median of
those, how many rounds met the goal, and BM_AtomicCas of each round (one
locked instruction on a line in L1: when it holds steady while the goals
move, the slowdown is in the memory system the host shares, as on this VM's
slow evenings, not in the build) and BM_CpuGauge (register arithmetic
only: it slows when the VM gets less of its core, a busy hyperthread
sibling or a lower clock).

Two processes: BM_FullCycleProcesses/1 and /2 and
BM_FullCycleProcesses_SeparateStores/2 run three times per round,
alternated; the round keeps each one's median. The issue asks for "5
million per second or more from one client, and 1.8 times that from two":
read as 1.8 times what one client did in the same round (the ratio) and as
1.8 times 5 M/s (9 M/s from two), both are reported. Separate stores, two
processes that share no store at all, over one client: the most any store
could show on this machine in that round.

Example:
  bench/goals.py 10 build-bench/bench/glint_bench
"""
import json
import statistics
import subprocess
import sys
import time

# name -> (goal, unit, lower is better)
GOALS = {
    "BM_CreateWriteSeal/64": (100.0, "ns", True),
    "BM_GetRelease/64": (40.0, "ns", True),
    "BM_Delete/64": (60.0, "ns", True),
    "BM_FullCycle/64": (200.0, "ns", True),  # 5 M/s
}
GAUGE = "BM_AtomicCas"
CPU_GAUGE = "BM_CpuGauge"


def medians(binary, filt):
    out = subprocess.run(
        [binary, "--benchmark_filter=" + filt, "--benchmark_format=json",
         "--benchmark_repetitions=5", "--benchmark_min_time=0.1",
         "--benchmark_report_aggregates_only=true"],
        capture_output=True, text=True, check=True).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            res[b["run_name"]] = b
    return res


def two_process_rates(binary, runs=3):
    """Medians over `runs` alternated runs of BM_FullCycleProcesses/1 and /2
    and BM_FullCycleProcesses_SeparateStores/2 (cycles/s), or None. Each is
    one 1 s window, so one run alone swings by a third on this VM."""
    filt = "BM_FullCycleProcesses/[12]/|BM_FullCycleProcesses_SeparateStores/2/"
    rate = {"1": [], "2": [], "sep": []}
    for _ in range(runs):
        out = subprocess.run(
            [binary, "--benchmark_filter=" + filt, "--benchmark_format=json"],
            capture_output=True, text=True, check=True).stdout
        for b in json.loads(out)["benchmarks"]:
            if "cycles_per_s" not in b:
                continue
            name, arg = b["run_name"].split("/")[:2]
            key = "sep" if name.endswith("SeparateStores") else arg
            rate[key].append(b["cycles_per_s"])
    if any(len(v) != runs for v in rate.values()) or min(rate["1"]) <= 0:
        return None
    return {k: statistics.median(v) for k, v in rate.items()}


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    rounds, binary = int(sys.argv[1]), sys.argv[2]
    pause = float(sys.argv[3]) if len(sys.argv) == 4 else 60.0
    filt = "|".join(n + "$" for n in list(GOALS) + [GAUGE, CPU_GAUGE])
    seen = {n: [] for n in GOALS}
    gauges, cpus, ratios, twos, ceilings = [], [], [], [], []
    for r in range(rounds):
        if r > 0:
            time.sleep(pause)
        m = medians(binary, filt)
        rates = two_process_rates(binary)
        ratio = rates["2"] / rates["1"] if rates else None
        gauges.append(m[GAUGE]["real_time"])
        cpus.append(m[CPU_GAUGE]["real_time"])
        if rates:
            ratios.append(ratio)
            twos.append(rates["2"] / 1e6)
            ceilings.append(rates["sep"] / rates["1"])
        line = [time.strftime("%H:%M:%S"), "gauge %.2f ns" % gauges[-1],
                "cpu %.1f ns" % cpus[-1]]
        for n in GOALS:
            seen[n].append(m[n]["real_time"])
            line.append("%s %.1f" % (n.split("/")[0][3:], seen[n][-1]))
        line.append("2proc %.2fx = %.1f / %.1f M/s (separate stores %.2fx)"
                    % (ratio, twos[-1], rates["1"] / 1e6, ceilings[-1])
                    if rates else "2proc -")
        print("  ".join(line), flush=True)
    print()
    for n, (goal, unit, _) in GOALS.items():
        v = seen[n]
        met = sum(1 for x in v if x <= goal)
        print("%-24s median of rounds %7.1f %s  goal %5.0f %s  met in %d of %d rounds"
              % (n, statistics.median(v), unit, goal, unit, met, len(v)))
    if ratios:
        met = sum(1 for x in ratios if x >= 1.8)
        print("%-24s median of rounds %7.2fx     goal  1.8x     met in %d of %d rounds"
              % ("two processes", statistics.median(ratios), met, len(ratios)))
        met = sum(1 for x in twos if x >= 9.0)
        print("%-24s median of rounds %7.1f M/s  goal    9 M/s  met in %d of %d rounds"
              % ("two processes", statistics.median(twos), met, len(twos)))
        print("%-24s median of rounds %7.2fx     (the machine's ceiling: two "
              "processes on two stores)" % ("separate stores", statistics.median(ceilings)))
    print("%-24s %s" % ("gauge per round (ns)", " ".join("%.2f" % g for g in gauges)))
    print("%-24s %s" % ("cpu gauge per round (ns)", " ".join("%.1f" % g for g in cpus)))


if __name__ == "__main__":
    main()
