// Copyright (c) glint authors.
//
// The OS boundary: every syscall glint makes sits behind this small interface,
// so the algorithms in core/ and alloc/ read as pure logic.

#ifndef GLINT_CORE_OS_H_
#define GLINT_CORE_OS_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "glint/status.h"

namespace glint::os {

// Sleeps while *word == expected, at most timeout_ns (-1: no limit).
// Returns false on timeout. Spurious returns are allowed: callers re-check.
bool FutexWait(std::atomic<uint32_t>* word, uint32_t expected,
               int64_t timeout_ns);
// Wakes up to `count` sleepers on *word (INT32_MAX: all).
void FutexWakeAll(std::atomic<uint32_t>* word);

// Microseconds since the Unix epoch (vDSO, no syscall).
int64_t NowMicros();
// Microseconds since the Unix epoch from the coarse clock (a few ms of
// resolution, ~8 ns to read).
int64_t CoarseNowMicros();
// Monotonic nanoseconds (vDSO, no syscall).
int64_t MonotonicNanos();
// The CPU's time-stamp counter (invariant on the machines glint targets);
// MonotonicNanos() where there is none.
uint64_t ReadTsc();
// Ticks of ReadTsc() per microsecond, measured over ~20 ms (blocks that long).
double CalibrateTsc();

// Realtime microseconds derived from time-stamp counter readings, so that
// a caller who reads the TSC anyway gets the time for a multiply instead of
// a clock_gettime per call. It re-anchors on CLOCK_REALTIME once a second
// of ticks has passed (or the TSC went backwards), so the drift between the
// calibrated rate and the real clock stays within that second's error.
// Without a TSC rate (tsc_per_us <= 0) every call reads the coarse clock.
// Thread-safe; process-local.
class TscClock {
 public:
  explicit TscClock(double tsc_per_us);
  // Microseconds since the epoch at `tsc`, a ReadTsc() reading (normally
  // just taken; an older one is converted, never taken for now).
  int64_t MicrosAt(uint64_t tsc) {
    // Unsigned: a TSC below the anchor wraps to a huge distance.
    if (tsc - anchor_tsc_.load(std::memory_order_acquire) < window_ticks_) {
      return base_us_.load(std::memory_order_relaxed) +
             static_cast<int64_t>(static_cast<double>(tsc) * us_per_tick_);
    }
    return Reanchor(tsc);
  }

 private:
  int64_t Reanchor(uint64_t tsc);
  double us_per_tick_ = 0;
  uint64_t window_ticks_ = 0;  // 0: never anchored (no TSC rate)
  // now_us - tsc * us_per_tick_ at the anchor. Consecutive anchors differ
  // only by the clock's drift, so a reader that pairs a new anchor_tsc_
  // with the previous base_us_ is off by microseconds at most.
  std::atomic<int64_t> base_us_{0};
  std::atomic<uint64_t> anchor_tsc_{0};
};

// Maps `size` bytes of `fd` shared, read-write. populate: every page is
// mapped (and allocated if it was not) before this returns. huge: the
// mapping is advised MADV_HUGEPAGE first, so that the faults that populate
// it map (and allocate) huge pages where the file system allows them; a
// kernel without MADV_POPULATE_READ (before 5.14) then faults lazily, and
// a page that cannot be allocated is kOutOfMemory.
Status MapShared(int fd, int64_t size, bool populate, void** out, bool huge = false);
// Kibibytes of the mapping holding `addr` that huge-page (PMD) entries map,
// from /proc/self/smaps; -1 when there is no such mapping or no smaps.
int64_t HugeMappedKib(const void* addr);
void Unmap(void* addr, int64_t size);
// Reads exactly n bytes of `fd` at `offset` (pread); false on error or a
// short read.
bool ReadAt(int fd, void* buf, size_t n, int64_t offset);

// A Status for errno `err` of `what` on `path`: kPermissionDenied,
// kOutOfMemory, else kIOError. (What an errno means to the caller beyond
// that, such as a client's "no store serves that path", the caller says.)
Status ErrnoStatus(int err, const std::string& what, const std::string& path);

std::string Hostname();

}  // namespace glint::os

#endif  // GLINT_CORE_OS_H_
