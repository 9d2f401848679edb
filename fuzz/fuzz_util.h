// Copyright (c) glint authors.
//
// What the fuzz targets share: reading the input, failing loudly, and
// waiting for the monitor to finish recovering dead clients.

#ifndef GLINT_FUZZ_FUZZ_UTIL_H_
#define GLINT_FUZZ_FUZZ_UTIL_H_

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include "core/region.h"
#include "glint/glint.h"

namespace glint::fuzz {

// The bytes of the fuzzer's input, consumed front to back (zeros when empty).
class Input {
 public:
  Input(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  bool empty() const { return i_ >= n_; }
  uint8_t Byte() { return i_ < n_ ? d_[i_++] : 0; }
  // Little-endian, `bytes` of them (at most 8).
  uint64_t Bytes(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t{Byte()} << (8 * i);
    return v;
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t i_ = 0;
};

// A finding: print it and abort, so that libFuzzer saves the input.
[[noreturn]] inline void Die(const char* target, const char* what,
                             const Status& s = Status()) {
  fprintf(stderr, "%s: %s (%s)\n", target, what, s.ToString().c_str());
  abort();
}

// Id number `i` of a target's small pool: `tag`'s bytes, zeros, and `i`
// in the last byte (which ListObjects checks read back).
// A socket path of this process's own: the pid and the start time, so that
// a store left behind by an earlier run whose pid was the same (pids wrap
// at 32768 here) is never taken for this one's (Monitor::Start would
// re-attach to its region and refuse or reuse it).
inline std::string UniqueSocketPath(const char* tag) {
  const auto t = std::chrono::steady_clock::now().time_since_epoch();
  return "/tmp/glint-fuzz-" + std::string(tag) + "-" + std::to_string(getpid()) + "-" +
         std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(t).count()) +
         ".sock";
}

inline ObjectId PoolId(std::string_view tag, int i) {
  char b[16] = {};
  tag.copy(b, 15);
  b[15] = static_cast<char>(i);
  return ObjectId::FromBinary(std::string_view(b, 16));
}

// The region `client` maps.
inline core::Region RegionOf(const Client& client) {
  return core::Region(const_cast<uint8_t*>(client.region_base()),
                      static_cast<uint64_t>(client.region_size()));
}

// Waits (at most `limit_ms`) until every client slot but `mine` is free,
// that is until the monitor has recovered every other client. False when
// it did not happen in time.
inline bool OthersRecovered(const core::Region& r, int mine, int limit_ms = 5000) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms);
  for (;;) {
    bool alone = true;
    for (uint32_t c = 0; c < r.header()->max_clients; ++c) {
      if (static_cast<int>(c) != mine &&
          r.client(c)->state.load(std::memory_order_acquire) != core::kClientFree) {
        alone = false;
      }
    }
    if (alone) return true;
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

}  // namespace glint::fuzz

#endif  // GLINT_FUZZ_FUZZ_UTIL_H_
