// Copyright (c) glint authors.
//
// Crash points for the crash-recovery tests. In the library that ships they
// compile to nothing. In the test variant (built with GLINT_CRASH_POINTS,
// see tests/CMakeLists.txt) every GLINT_CRASH_POINT() counts down a
// process-wide counter and, when it reaches zero, kills the process with
// SIGKILL on the spot: no destructor, no atexit, exactly as a crash. A test
// arms the counter in a forked child, runs one operation, and so dies after
// the k-th shared-memory step of it, for every k.

#ifndef GLINT_CORE_CRASH_POINT_H_
#define GLINT_CORE_CRASH_POINT_H_

#ifdef GLINT_CRASH_POINTS
#include <atomic>
#include <cstdint>

namespace glint::core {
// Steps left before the crash; <= 0: disarmed.
extern std::atomic<int64_t> g_crash_countdown;
// Steps passed since the counter was last armed (tests find each
// operation's number of steps with it).
extern std::atomic<int64_t> g_crash_steps;
[[noreturn]] void CrashNow();
inline void CrashPoint() {
  g_crash_steps.fetch_add(1, std::memory_order_relaxed);
  if (g_crash_countdown.load(std::memory_order_relaxed) > 0 &&
      g_crash_countdown.fetch_sub(1, std::memory_order_relaxed) == 1) {
    CrashNow();
  }
}
}  // namespace glint::core
#define GLINT_CRASH_POINT() ::glint::core::CrashPoint()
#else
#define GLINT_CRASH_POINT() \
  do {                      \
  } while (0)
#endif

#endif  // GLINT_CORE_CRASH_POINT_H_
