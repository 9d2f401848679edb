#!/usr/bin/env python3
"""Turns the result lines of glint_compare and glint_compare_alloc into one
markdown table (table.md) and two gnuplot pictures (latency.png,
scaling.png) in the results folder.

Usage: compare_report.py RESULTS_DIR
Reads RESULTS_DIR/raw.txt (lines "R workload system param median p99") and
RESULTS_DIR/machine.txt (free text, copied under "Machine").
"""

import os
import subprocess
import sys

SIZES = [64, 4096, 65536, 1 << 20, 16 << 20]
SYSTEMS = ["glint", "glint-poll", "global-lock", "socket", "redis"]


def load(path):
    """Results by (workload, system, param). A key measured in several runs
    (bench/compare --runs N) gets the median of the runs' medians and the
    median of their p99s."""
    runs = {}
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) == 6 and p[0] == "R":
                runs.setdefault((p[1], p[2], int(p[3])), []).append(
                    (float(p[4]), float(p[5])))
    r = {}
    for k, v in runs.items():
        med = sorted(x[0] for x in v)[len(v) // 2]
        p99 = sorted(x[1] for x in v)[len(v) // 2]
        r[k] = (med, p99)
    return r


def size_name(s):
    if s >= 1 << 20:
        return "%d MiB" % (s >> 20)
    if s >= 1024:
        return "%d KiB" % (s >> 10)
    return "%d B" % s


def t(ns):
    """A duration in ns, in a readable unit."""
    if ns is None:
        return "—"
    if ns < 1e3:
        return "%.0f ns" % ns
    if ns < 1e6:
        return "%.1f µs" % (ns / 1e3) if ns < 1e4 else "%.0f µs" % (ns / 1e3)
    return "%.1f ms" % (ns / 1e6) if ns < 1e7 else "%.0f ms" % (ns / 1e6)


def rate(x):
    if x is None:
        return "—"
    if x >= 1e6:
        return "%.2f M/s" % (x / 1e6)
    if x >= 1e3:
        return "%.1f k/s" % (x / 1e3)
    return "%.0f /s" % x


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    x = a / b
    return "%.0f x" % x if x >= 10 else "%.2f x" % x


class Report:
    def __init__(self, res):
        self.res = res
        self.out = []
        self.goals = []

    def get(self, w, s, p, which=0):
        v = self.res.get((w, s, p))
        return None if v is None else v[which]

    def systems(self, w):
        return [s for s in SYSTEMS if any((w, s, z) in self.res for z in SIZES + [1, 2, 4])]

    def line(self, s=""):
        self.out.append(s)

    def table(self, head, rows):
        self.line("| " + " | ".join(head) + " |")
        self.line("|" + "---|" * len(head))
        for r in rows:
            self.line("| " + " | ".join(r) + " |")
        self.line()

    def goal(self, what, target, measured, met, note=""):
        self.goals.append([what, target, measured,
                           "**met**" if met else "missed" + (" (%s)" % note if note else "")])

    # ------------------------------------------------------------------
    def floor(self):
        line = self.get("floor_line", "floor", 0)
        futex = self.get("floor_futex", "floor", 0)
        self.line("### The floor of this machine")
        self.line()
        rows = [["clock read pair (inside every per-operation time below)",
                 t(self.get("floor_timer", "floor", 0)), t(self.get("floor_timer", "floor", 0, 1))],
                ["cache-line round trip, two processes on two cores",
                 t(line), t(self.get("floor_line", "floor", 0, 1))],
                ["futex wake-up round trip, two sleeping processes",
                 t(futex), t(self.get("floor_futex", "floor", 0, 1))]]
        for s in SIZES:
            m = self.get("memcpy", "floor", s)
            if m:
                rows.append(["memcpy of %s into warm shared memory" % size_name(s),
                             "%s = %.1f GB/s" % (t(m), s / m), t(self.get("memcpy", "floor", s, 1))])
        self.table(["", "median", "p99"], rows)

    def latency(self):
        for w, title in [("put", "create + write + seal"), ("get", "get + read every byte + release")]:
            syss = self.systems(w)
            if not syss:
                continue
            self.line("### %s, one process (median / p99)" % title)
            self.line()
            head = ["size"] + syss + ["%s / glint" % s for s in syss if s != "glint"]
            rows = []
            for z in SIZES:
                g = self.get(w, "glint", z)
                row = [size_name(z)]
                for s in syss:
                    row.append("%s / %s" % (t(self.get(w, s, z)), t(self.get(w, s, z, 1))))
                for s in syss:
                    if s != "glint":
                        row.append(ratio(self.get(w, s, z), g))
                rows.append(row)
            self.table(head, rows)
        g = sum_or_none(self.get("put", "glint", 64), self.get("get", "glint", 64))
        for s in ["socket", "redis"]:
            o = sum_or_none(self.get("put", s, 64), self.get("get", s, 64))
            if g and o:
                x = o / g
                self.goal("64 B create+seal+get+release vs %s" % s, "≥ 100 x faster",
                          "%.0f x (%s against %s)" % (x, t(g), t(o)), x >= 100,
                          "%.0f%% of the goal" % x)

    def bandwidth(self):
        self.line("### Large objects: write bandwidth into a new object (create + write + seal)")
        self.line()
        self.line("The percentages are of memcpy into warm memory (the goal's measure) / "
                  "of memcpy into memory no cache holds (what a new object's pages are here: "
                  "the latency workload keeps up to 256 MiB of objects alive).")
        self.line()
        self.line("\"recycled\": each object is deleted right after its put, so the next one "
                  "gets the same, cache-warm pages (percentage of warm memcpy).")
        self.line()
        syss = [s for s in self.systems("put")]
        head = ["size", "memcpy warm", "memcpy cold"] + \
            ["%s: new (of warm / cold); recycled" % s for s in syss]
        rows = []
        for z in SIZES[2:]:
            m = self.get("memcpy", "floor", z)
            mc = self.get("memcpy_cold", "floor", z)
            row = [size_name(z), "%.1f GB/s" % (z / m) if m else "—",
                   "%.1f GB/s" % (z / mc) if mc else "—"]
            for s in syss:
                p = self.get("put", s, z)
                r = self.get("put_recycled", s, z)
                cell = "%.1f GB/s (%.0f%% / %.0f%%)" % (z / p, 100 * m / p, 100 * mc / p) \
                    if p and m and mc else "—"
                if r and m:
                    cell += "; %.1f GB/s (%.0f%%)" % (z / r, 100 * m / r)
                row.append(cell)
            rows.append(row)
            r = self.get("put_recycled", "glint", z)
            if z >= 1 << 20 and r and m:
                f = m / r
                self.goal("%s write bandwidth, recycled pages" % size_name(z), "≥ 80% of memcpy",
                          "%.0f%% (%.1f of %.1f GB/s)" % (100 * f, z / r, z / m), f >= 0.8,
                          "%.0f points short" % (80 - 100 * f))
            p = self.get("put", "glint", z)
            if z >= 1 << 20 and p and m:
                f = m / p
                mc = self.get("memcpy_cold", "floor", z)
                self.goal("%s write bandwidth, new object" % size_name(z), "≥ 80% of memcpy",
                          "%.0f%% (%.1f of %.1f GB/s)%s" % (
                              100 * f, z / p, z / m,
                              "; %.0f%% of memcpy into cold memory" % (100 * mc / p) if mc else ""),
                          f >= 0.8,
                          "%.0f points short" % (80 - 100 * f))
        self.table(head, rows)

    def handoff(self):
        line = self.get("floor_line", "floor", 0)
        futex = self.get("floor_futex", "floor", 0)
        for w, title, fl in [("handoff_spin", "spinning waiters", line),
                             ("handoff_sleep", "waiters asleep on the futex", futex)]:
            syss = self.systems(w)
            if not syss:
                continue
            self.line("### Cross-process hand-off round trip, %s (median / p99)" % title)
            self.line()
            if w == "handoff_spin":
                self.line("Floor: one cache-line round trip plus two memcpy of the payload.")
            else:
                self.line("Floor: one futex wake-up round trip plus two memcpy of the payload. "
                          "Each side busy-waits 60 µs before it answers, so the other side has "
                          "fallen asleep; that pause is subtracted.")
            self.line()
            head = ["size", "floor"] + syss + ["glint / floor"] + \
                ["%s / glint" % s for s in syss if s != "glint"]
            rows = []
            for z in SIZES:
                m = self.get("memcpy", "floor", z)
                f = fl + 2 * m if fl is not None and m is not None else None
                g = self.get(w, "glint", z)
                row = [size_name(z), t(f)]
                for s in syss:
                    row.append("%s / %s" % (t(self.get(w, s, z)), t(self.get(w, s, z, 1))))
                row.append(ratio(g, f))
                for s in syss:
                    if s != "glint":
                        row.append(ratio(self.get(w, s, z), g))
                rows.append(row)
            self.table(head, rows)
            g = self.get(w, "glint", 64)
            if g and fl:
                lim = 4.0 if w == "handoff_spin" else 1.5
                base = "cache-line round trip" if w == "handoff_spin" else "futex round trip"
                self.goal("64 B hand-off, %s" % title, "≤ %.1f x the %s" % (lim, base),
                          "%.2f x (%s against %s)" % (g / fl, t(g), t(fl)), g / fl <= lim,
                          "%.0f%% over" % (100 * (g / fl / lim - 1)))

    def cycles(self):
        syss = self.systems("cycle")
        if not syss:
            return
        self.line("### Full cycles (create, write 64 B, seal, get, read, release, delete) "
                  "from n client processes: median of the runs (slowest run)")
        self.line()
        head = ["processes"] + syss + ["glint / global-lock", "glint / socket", "glint / redis"]
        rows = []
        for n in [1, 2, 4]:
            g = self.get("cycle", "glint", n)
            row = [str(n)]
            for s in syss:
                row.append("%s (%s)" % (rate(self.get("cycle", s, n)), rate(self.get("cycle", s, n, 1))))
            for s in ["global-lock", "socket", "redis"]:
                row.append(ratio(g, self.get("cycle", s, n)))
            rows.append(row)
        self.table(head, rows)
        g1, g2 = self.get("cycle", "glint", 1), self.get("cycle", "glint", 2)
        l1, l2 = self.get("cycle", "global-lock", 1), self.get("cycle", "global-lock", 2)
        if g1 and g2:
            self.line("Two processes against one: glint %.2f x, global lock %s." %
                      (g2 / g1, "%.2f x" % (l2 / l1) if l1 and l2 else "—"))
            self.line()

    def alloc(self):
        rows = []
        for pat, title in [("mix", "random mix, 64 B .. 64 KiB, churn at 90%"),
                           ("frag", "fragmenting pattern")]:
            g = self.get("alloc_" + pat, "glint", 0)
            m = self.get("alloc_" + pat, "mimalloc", 0)
            if g is None:
                continue
            lk = [k for k in self.res if k[0] == "alloc_largest_" + pat]
            largest = free = used = None
            if lk:
                used = lk[0][2]
                largest, free = self.res[lk[0]]
            fk = self.res.get(("alloc_failed_" + pat, "glint", 0))
            rows.append([title, rate(g), rate(m), ratio(g, m),
                         "%d%%" % used if used is not None else "—",
                         "%s of %s free" % (bytes_name(largest), bytes_name(free)) if largest is not None else "—",
                         "%d of %d" % (fk[0], fk[1]) if fk else "—"])
            if m:
                self.goal("allocator, %s" % title, "≥ 0.5 x mimalloc's ops/s",
                          "%.2f x" % (g / m), g / m >= 0.5)
        if rows:
            self.line("### Allocator: glint's heap against mimalloc, one process (ops/s, median of 5)")
            self.line()
            self.table(["pattern", "glint", "mimalloc", "glint / mimalloc",
                        "heap used at the end", "largest request that succeeds then",
                        "glint allocations that failed"], rows)

    def render(self, machine):
        self.out = []
        self.floor()
        floor = self.out
        self.out = []
        self.latency()
        self.handoff()
        self.cycles()
        self.bandwidth()
        self.alloc()
        body = self.out
        self.out = []
        self.line("### Goals of issue 5")
        self.line()
        self.table(["goal", "target", "measured", "met?"], self.goals)
        goals = self.out
        text = []
        if machine:
            text += ["### Machine", "", "```", machine.rstrip(), "```", ""]
        return "\n".join(text + goals + floor + body) + "\n"


def sum_or_none(a, b):
    return None if a is None or b is None else a + b


def bytes_name(b):
    if b is None:
        return "—"
    if b >= 1 << 20:
        return "%.1f MiB" % (b / (1 << 20))
    if b >= 1024:
        return "%.0f KiB" % (b / 1024)
    return "%d B" % b


def plots(res, d):
    """latency.png (hand-off round trip against size, log-log) and
    scaling.png (full cycles per second against client processes)."""
    def g(w, s, p):
        v = res.get((w, s, p))
        return None if v is None else v[0]
    cols = []
    with open(os.path.join(d, "latency.dat"), "w") as f:
        f.write("# size floor " + " ".join(SYSTEMS) + " (hand-off round trip, µs)\n")
        for z in SIZES:
            line, m = g("floor_line", "floor", 0), g("memcpy", "floor", z)
            vals = [line + 2 * m if line is not None and m is not None else None]
            vals += [g("handoff_spin", s, z) for s in SYSTEMS]
            f.write("%d %s\n" % (z, " ".join("?" if v is None else "%.4f" % (v / 1e3) for v in vals)))
    names = ["floor (cache line + 2 memcpy)"] + SYSTEMS
    for i, n in enumerate(names):
        if any(res.get(("handoff_spin", n, z)) for z in SIZES) or i == 0:
            cols.append("'latency.dat' using 1:%d with linespoints title '%s'" % (i + 2, n))
    gp = """set terminal pngcairo size 900,600
set output 'latency.png'
set logscale xy
set datafile missing '?'
set xlabel 'object size (bytes)'
set ylabel 'hand-off round trip, median (µs)'
set title 'Cross-process hand-off through the store (spinning waiters)'
set key top left
set xtics ("64 B" 64, "4 KiB" 4096, "64 KiB" 65536, "1 MiB" 1048576, "16 MiB" 16777216)
plot %s
""" % ", \\\n     ".join(cols)
    with open(os.path.join(d, "latency.gp"), "w") as f:
        f.write(gp)
    with open(os.path.join(d, "scaling.dat"), "w") as f:
        f.write("# processes " + " ".join(SYSTEMS) + " (full cycles per second, millions)\n")
        for n in [1, 2, 4]:
            vals = [g("cycle", s, n) for s in SYSTEMS]
            f.write("%d %s\n" % (n, " ".join("?" if v is None else "%.6f" % (v / 1e6) for v in vals)))
    gp = """set terminal pngcairo size 900,600
set output 'scaling.png'
set datafile missing '?'
set xlabel 'client processes'
set ylabel 'full cycles per second (millions)'
set title 'Full-cycle throughput, 64 B objects (%d CPUs)'
set xtics (1, 2, 4)
set yrange [0:*]
set key top right
plot 'scaling.dat' using 1:2 with linespoints title 'glint', \\
     'scaling.dat' using 1:3 with linespoints title 'global lock (Lightning design)'
""" % os.cpu_count()
    with open(os.path.join(d, "scaling.gp"), "w") as f:
        f.write(gp)
    for p in ["latency.gp", "scaling.gp"]:
        try:
            subprocess.run(["gnuplot", p], cwd=d, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            print("compare_report: gnuplot %s: %s" % (p, e), file=sys.stderr)


def main():
    d = sys.argv[1]
    res = load(os.path.join(d, "raw.txt"))
    machine = ""
    mp = os.path.join(d, "machine.txt")
    if os.path.exists(mp):
        machine = open(mp).read()
    md = Report(res).render(machine)
    with open(os.path.join(d, "table.md"), "w") as f:
        f.write(md)
    plots(res, d)
    print(md)


if __name__ == "__main__":
    main()
