// Copyright (c) glint authors.
//
// Small helpers shared by the side-by-side comparison programs
// (glint_compare, glint_compare_alloc): a monotonic clock, percentiles,
// pinning to a CPU, shared anonymous memory, forking a measured child, and
// the one line format every result is printed in:
//
//   R <workload> <system> <param> <median> <p99>
//
// bench/compare_report.py reads those lines and writes the table and plots.

#ifndef GLINT_BENCH_COMPARE_UTIL_H_
#define GLINT_BENCH_COMPARE_UTIL_H_

#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace glint::bench {

inline int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

inline void CpuRelax() { __builtin_ia32_pause(); }

// Busy-waits `ns` nanoseconds; returns how long it really took.
inline int64_t BusyPause(int64_t ns) {
  const int64_t t0 = NowNs();
  int64_t t;
  while ((t = NowNs()) - t0 < ns) CpuRelax();
  return t - t0;
}

// The q-quantile (0..1) of v (sorted here), nearest rank.
inline double Quantile(std::vector<double>* v, double q) {
  if (v->empty()) return 0;
  std::sort(v->begin(), v->end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v->size()));
  if (i >= v->size()) i = v->size() - 1;
  return (*v)[i];
}

inline void Report(const char* workload, const std::string& system,
                   uint64_t param, double median, double p99) {
  std::printf("R %s %s %llu %.6g %.6g\n", workload, system.c_str(),
              static_cast<unsigned long long>(param), median, p99);
  std::fflush(stdout);
}

inline void ReportSamples(const char* workload, const std::string& system,
                          uint64_t param, std::vector<double> v) {
  const double med = Quantile(&v, 0.5);
  const double p99 = Quantile(&v, 0.99);
  Report(workload, system, param, med, p99);
}

inline int NumCpus() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

// Pins the calling process to cpu % NumCpus().
inline void PinToCpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % NumCpus(), &set);
  sched_setaffinity(0, sizeof(set), &set);
}

// Shared, zeroed memory that survives fork (MAP_SHARED | MAP_ANONYMOUS).
inline void* SharedAnon(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    std::exit(2);
  }
  return p;
}

// Forks a child pinned to `cpu` (-1: not pinned) that runs fn and leaves
// with _exit (no atexit handler of the parent runs in it). Returns its pid.
inline pid_t ForkChild(int cpu, const std::function<int()>& fn) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(2);
  }
  if (pid == 0) {
    if (cpu >= 0) PinToCpu(cpu);
    const int rc = fn();
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(rc);
  }
  return pid;
}

// Waits for pid; true if it exited with status 0.
inline bool WaitChild(pid_t pid, const char* what) {
  int st = 0;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::fprintf(stderr, "compare: %s: child %d failed (status %d)\n", what,
                 static_cast<int>(pid), st);
    return false;
  }
  return true;
}

// Reads every byte of [p, p + n) (the "read" of get+read+release).
inline uint64_t Checksum(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    s += w;
  }
  for (; i < n; ++i) s += p[i];
  return s;
}

}  // namespace glint::bench

#endif  // GLINT_BENCH_COMPARE_UTIL_H_
