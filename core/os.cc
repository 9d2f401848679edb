// Copyright (c) glint authors.

#include "core/os.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif
#include <cstdio>
#include <cstring>

namespace glint::os {

bool FutexWait(std::atomic<uint32_t>* word, uint32_t expected,
               int64_t timeout_ns) {
  struct timespec ts;
  struct timespec* tsp = nullptr;
  if (timeout_ns >= 0) {
    ts.tv_sec = timeout_ns / 1000000000;
    ts.tv_nsec = timeout_ns % 1000000000;
    tsp = &ts;
  }
  // Shared futex (no FUTEX_PRIVATE_FLAG): the word lives in a MAP_SHARED
  // mapping that other processes map at other addresses.
  long r = syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT,
                   expected, tsp, nullptr, 0);
  return !(r == -1 && errno == ETIMEDOUT);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX,
          nullptr, nullptr, 0);
}

int64_t NowMicros() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000;
}

int64_t CoarseNowMicros() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000;
}

uint64_t ReadTsc() {
#if defined(__x86_64__)
  return __rdtsc();
#else
  return static_cast<uint64_t>(MonotonicNanos());
#endif
}

TscClock::TscClock(double tsc_per_us) {
  if (tsc_per_us > 0 && tsc_per_us < 1e5) {  // Region::Validate's range
    us_per_tick_ = 1.0 / tsc_per_us;
    window_ticks_ = static_cast<uint64_t>(tsc_per_us * 1e6);  // one second
    // Anchored from the start: a TSC that is still below one second of
    // ticks (a VM just booted) must not read as seconds after 1970.
    Reanchor(ReadTsc());
  }
}

// The anchor is a fresh pair (TSC now, realtime now), never the caller's
// reading: that one may be stale (its thread was preempted after reading
// it), and pairing it with "now" would stamp every create until the next
// anchor that much too late. The caller's reading is converted against it.
int64_t TscClock::Reanchor(uint64_t tsc) {
  if (window_ticks_ == 0) return CoarseNowMicros();
  const uint64_t anchor = ReadTsc();
  const int64_t now = NowMicros();
  const int64_t base = now - static_cast<int64_t>(static_cast<double>(anchor) * us_per_tick_);
  base_us_.store(base, std::memory_order_relaxed);
  anchor_tsc_.store(anchor, std::memory_order_release);
  return base + static_cast<int64_t>(static_cast<double>(tsc) * us_per_tick_);
}

double CalibrateTsc() {
#if defined(__x86_64__)
  const uint64_t t0 = ReadTsc();
  const int64_t n0 = MonotonicNanos();
  struct timespec nap = {0, 20 * 1000 * 1000};
  nanosleep(&nap, nullptr);
  const uint64_t t1 = ReadTsc();
  const int64_t n1 = MonotonicNanos();
  if (n1 <= n0 || t1 <= t0) return 0;
  return static_cast<double>(t1 - t0) / (static_cast<double>(n1 - n0) / 1000.0);
#else
  return 1000.0;  // ReadTsc counts nanoseconds
#endif
}

int64_t MonotonicNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

Status MapShared(int fd, int64_t size, bool populate, void** out, bool huge) {
  // MAP_POPULATE would fault every page before madvise could ask for huge
  // ones: a huge mapping is populated after the advice instead.
  const int flags = MAP_SHARED | (populate && !huge ? MAP_POPULATE : 0);
  void* p = mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE,
                 flags, fd, 0);
  if (p == MAP_FAILED) return ErrnoStatus(errno, "mmap", "region");
  if (huge) {
    // Advice: without THP in this kernel the pages stay normal ones.
    (void)madvise(p, static_cast<size_t>(size), MADV_HUGEPAGE);
    // A kernel before 5.14 has no MADV_POPULATE_READ (EINVAL): pages are
    // then faulted lazily. Any other failure is a page that could not be
    // allocated (EFAULT: the file system is full), reported now rather
    // than as a SIGBUS on first touch.
    if (populate && madvise(p, static_cast<size_t>(size), MADV_POPULATE_READ) != 0 &&
        errno != EINVAL) {
      const int err = errno == EFAULT ? ENOSPC : errno;
      munmap(p, static_cast<size_t>(size));
      return ErrnoStatus(err, "populate", "region");
    }
  }
  *out = p;
  return Status::OK();
}

int64_t HugeMappedKib(const void* addr) {
  FILE* f = fopen("/proc/self/smaps", "re");
  if (f == nullptr) return -1;
  const auto a = reinterpret_cast<uintptr_t>(addr);
  char line[512];
  bool in = false, found = false;
  int64_t kib = 0;
  while (fgets(line, sizeof(line), f) != nullptr) {
    unsigned long lo, hi;
    // A mapping's first line: "lo-hi perms offset dev inode [path]".
    // (No field line parses as two hex numbers and a dash.)
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
      if (in) break;
      in = a >= lo && a < hi;
      found = found || in;
      continue;
    }
    long long v;
    if (in && (sscanf(line, "ShmemPmdMapped: %lld kB", &v) == 1 ||
               sscanf(line, "FilePmdMapped: %lld kB", &v) == 1)) {
      kib += v;
    }
  }
  fclose(f);
  return found ? kib : -1;
}

bool ReadAt(int fd, void* buf, size_t n, int64_t offset) {
  return pread(fd, buf, n, static_cast<off_t>(offset)) == static_cast<ssize_t>(n);
}

void Unmap(void* addr, int64_t size) {
  if (addr != nullptr) munmap(addr, static_cast<size_t>(size));
}

Status ErrnoStatus(int err, const std::string& what, const std::string& path) {
  std::string msg = what + " " + path + ": " + std::strerror(err);
  switch (err) {
    case EACCES:
    case EPERM:
      return Status::PermissionDenied(msg);
    case ENOMEM:
    case ENOSPC:
      return Status::OutOfMemory(msg);
    default:
      return Status::IOError(msg);
  }
}

std::string Hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

}  // namespace glint::os

#ifdef GLINT_CRASH_POINTS
#include <signal.h>

#include "core/crash_point.h"

namespace glint::core {
std::atomic<int64_t> g_crash_countdown{0};
std::atomic<int64_t> g_crash_steps{0};
void CrashNow() {
  raise(SIGKILL);
  __builtin_unreachable();
}
}  // namespace glint::core
#endif
