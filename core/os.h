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

// Maps `size` bytes of `fd` shared, read-write. populate: MAP_POPULATE.
Status MapShared(int fd, int64_t size, bool populate, void** out);
void Unmap(void* addr, int64_t size);

// A Status for errno `err` of `what` on `path`.
Status ErrnoStatus(int err, const std::string& what, const std::string& path);

std::string Hostname();

}  // namespace glint::os

#endif  // GLINT_CORE_OS_H_
