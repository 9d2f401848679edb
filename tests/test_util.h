// Copyright (c) glint authors.
//
// Helpers shared by the test files: a store per test on a unique socket
// path, status assertions, byte patterns that are a function of an id, and
// polling with generous deadlines (never a timed assertion of speed).

#ifndef GLINT_TESTS_TEST_UTIL_H_
#define GLINT_TESTS_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "core/object_table.h"
#include "core/os.h"
#include "core/region.h"
#include "glint/glint.h"

// GLINT_TEST_ASAN / GLINT_TEST_TSAN: built with that sanitizer (GCC
// defines __SANITIZE_*__, Clang answers __has_feature).
#if defined(__SANITIZE_ADDRESS__)
#define GLINT_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GLINT_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define GLINT_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GLINT_TEST_TSAN 1
#endif
#endif

namespace glint::testing {

// Sanitizer builds run several times slower: loops whose length does not
// matter to what they test run kScale times fewer iterations there.
#if defined(GLINT_TEST_ASAN) || defined(GLINT_TEST_TSAN)
inline constexpr int kScale = 4;
#else
inline constexpr int kScale = 1;
#endif

// ------------------------------------------------------------ assertions

#define GLINT_ASSERT_OK(expr)                                  \
  do {                                                         \
    const ::glint::Status _st = (expr);                        \
    ASSERT_TRUE(_st.ok()) << #expr << " -> " << _st.ToString(); \
  } while (0)

#define GLINT_EXPECT_OK(expr)                                  \
  do {                                                         \
    const ::glint::Status _st = (expr);                        \
    EXPECT_TRUE(_st.ok()) << #expr << " -> " << _st.ToString(); \
  } while (0)

#define GLINT_EXPECT_CODE(expr, want)                                  \
  do {                                                                 \
    const ::glint::Status _st = (expr);                                \
    EXPECT_EQ(_st.code(), (want)) << #expr << " -> " << _st.ToString(); \
  } while (0)

#define GLINT_ASSERT_CODE(expr, want)                                  \
  do {                                                                 \
    const ::glint::Status _st = (expr);                                \
    ASSERT_EQ(_st.code(), (want)) << #expr << " -> " << _st.ToString(); \
  } while (0)

// ------------------------------------------------------------ paths

// A socket path no other test (or test process) uses: the pid and a
// process-wide counter.
inline std::string UniqueSocketPath(const char* tag = "s") {
  static std::atomic<int> counter{0};
  return "/tmp/glint-test-" + std::to_string(getpid()) + "-" + tag + "-" +
         std::to_string(counter.fetch_add(1));
}

inline StoreOptions SmallStoreOptions(int64_t capacity = int64_t{64} << 20) {
  StoreOptions o;
  o.socket_path = UniqueSocketPath();
  o.capacity = capacity;
  return o;
}

// ------------------------------------------------------------ ids

// An id made of a 64-bit tag and a 64-bit number, so tests can make many
// distinct ids deterministically (and processes agree on them).
inline ObjectId MakeId(uint64_t tag, uint64_t n) {
  ObjectId id;
  std::memcpy(id.mutable_data(), &tag, 8);
  std::memcpy(id.mutable_data() + 8, &n, 8);
  return id;
}

// ------------------------------------------------------------ patterns

inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

inline uint64_t SeedOf(const ObjectId& id) {
  uint64_t a, b;
  std::memcpy(&a, id.data(), 8);
  std::memcpy(&b, id.data() + 8, 8);
  return Mix64(a ^ Mix64(b));
}

// Byte i of the pattern of `seed` (computed 8 bytes at a time).
inline void FillPattern(uint8_t* p, int64_t n, uint64_t seed) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t w = seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL;
    std::memcpy(p + i, &w, 8);
  }
  if (i == n) return;
  const uint64_t w = seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL;
  std::memcpy(p + i, &w, static_cast<size_t>(n - i));
}

// Offset of the first byte that differs from the pattern, or -1.
inline int64_t CheckPattern(const uint8_t* p, int64_t n, uint64_t seed) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t w = seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL;
    if (std::memcmp(p + i, &w, 8) != 0) return i;
  }
  if (i == n) return -1;
  const uint64_t w = seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL;
  if (std::memcmp(p + i, &w, static_cast<size_t>(n - i)) != 0) return i;
  return -1;
}

// ------------------------------------------------------------ waiting

// Polls `pred` until it holds or `timeout` passes. Returns the last value.
inline bool WaitUntil(const std::function<bool()>& pred,
                      std::chrono::milliseconds timeout =
                          std::chrono::milliseconds(10000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

inline StoreStats GetStats(Client* c) {
  StoreStats s;
  const Status st = c->Stats(&s);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return s;
}

// Waits (up to 10 s) until the store is empty: no byte in use, no object
// sealed or being built, and the whole heap free in one block.
inline ::testing::AssertionResult StoreBecomesEmpty(Client* c) {
  StoreStats s;
  const bool ok = WaitUntil([&] {
    if (!c->Stats(&s).ok()) return false;
    return s.bytes_in_use == 0 && s.objects_sealed == 0 &&
           s.objects_building == 0 && s.largest_free_block == s.capacity &&
           s.bytes_free == s.capacity;
  });
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "store not empty: bytes_in_use=" << s.bytes_in_use
         << " bytes_free=" << s.bytes_free
         << " largest_free_block=" << s.largest_free_block
         << " capacity=" << s.capacity
         << " objects_sealed=" << s.objects_sealed
         << " objects_building=" << s.objects_building;
}

// Getters that sleep announce themselves in the wait bucket of the id's (or
// name's) hash, after they looked at the object once. Waits (up to 10 s)
// until at least `n` getters wait in the bucket of `hash`: then a seal or
// abort is certain to reach them. Reads the region (internal layout).
inline bool WaitForSleepers(const Client* c, uint64_t hash, uint32_t n = 1) {
  const core::Region r(const_cast<uint8_t*>(c->region_base()),
                       static_cast<uint64_t>(c->region_size()));
  core::WaitBucket* wb = r.wait_bucket(hash);
  return WaitUntil([&] { return wb->waiters.load() >= n; });
}
inline uint64_t IdWaitHash(const ObjectId& id) { return core::IdHash(id.data()); }
inline uint64_t NameWaitHash(std::string_view name) { return core::NameHash(name); }

// Bumps every wait bucket and wakes its sleepers: a rescue for getters that
// slept through their wake-up, so that a test can report it and finish.
inline void WakeEveryBucket(const Client* c) {
  const core::Region r(const_cast<uint8_t*>(c->region_base()),
                       static_cast<uint64_t>(c->region_size()));
  for (uint64_t b = 0; b < core::kNumWaitBuckets; ++b) {
    core::WaitBucket* wb = r.wait_bucket(b);
    wb->seq.fetch_add(1);
    os::FutexWakeAll(&wb->seq);
  }
}

// Getters that wait without a timeout were just given what they wait for
// (a seal, an abort). Each increments `done` when its call returns. A woken
// getter returns within moments; one still asleep after `timeout` slept
// through its wake-up (a lost wake-up): that is a failure, and the sleepers
// are then rescued so that the test can join its threads.
inline ::testing::AssertionResult AllWoken(
    const std::atomic<int>& done, int want, const Client* c,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  if (WaitUntil([&] { return done.load() >= want; }, timeout)) {
    return ::testing::AssertionSuccess();
  }
  const int got = done.load();
  WakeEveryBucket(c);
  return ::testing::AssertionFailure()
         << "lost wake-up: only " << got << " of " << want
         << " waiters returned after their object was sealed or aborted";
}

// ------------------------------------------------------------ processes

// Forks a process that runs `setup`, sends its answer back through a pipe
// and then pauses until the test kills it. An empty answer means setup
// failed (the child exits). Returns the child's pid; *answer gets the
// answer ("" if the child died first).
inline pid_t ForkAndPause(const std::function<std::string()>& setup, std::string* answer) {
  int ready[2];
  if (pipe(ready) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    const std::string a = setup();
    if (a.empty()) _exit(3);
    (void)!write(ready[1], a.data(), a.size());
    for (;;) pause();
  }
  close(ready[1]);
  char buf[512];
  const ssize_t n = read(ready[0], buf, sizeof(buf));
  close(ready[0]);
  answer->assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
  return pid;
}


// True when every client slot but `mine` is free (recovery is done).
inline bool OtherClientsFree(const core::Region& r, int mine) {
  for (uint32_t c = 0; c < r.header()->max_clients; ++c) {
    if (static_cast<int>(c) != mine && r.client(c)->state.load() != core::kClientFree) {
      return false;
    }
  }
  return true;
}


// ------------------------------------------------------------ fixture

// A store of 64 MiB on a unique socket, and one client connected to it.
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_ = SmallStoreOptions();
    CustomizeOptions(&options_);
    const Status s = Monitor::Start(options_, &monitor_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(Connect(&client_));
  }
  void TearDown() override {
    client_.reset();
    monitor_.reset();
  }
  virtual void CustomizeOptions(StoreOptions*) {}

  ::testing::AssertionResult Connect(std::unique_ptr<Client>* out) {
    const Status s = Client::Connect(options_.socket_path, out);
    if (s.ok()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << s.ToString();
  }

  // Builds, fills with the pattern of `id` and seals an object.
  ::testing::AssertionResult Put(Client* c, const ObjectId& id, int64_t size,
                                 std::string_view name = {},
                                 const Metadata& md = {}) {
    MutableBuffer mb;
    Status s = c->BuildObject(id, size, &mb, name, md);
    if (!s.ok()) return ::testing::AssertionFailure() << s.ToString();
    FillPattern(mb.mutable_data(), size, SeedOf(id));
    s = mb.Seal();
    if (!s.ok()) return ::testing::AssertionFailure() << s.ToString();
    return ::testing::AssertionSuccess();
  }
  ::testing::AssertionResult Put(const ObjectId& id, int64_t size,
                                 std::string_view name = {},
                                 const Metadata& md = {}) {
    return Put(client_.get(), id, size, name, md);
  }

  StoreOptions options_;
  std::unique_ptr<Monitor> monitor_;
  std::unique_ptr<Client> client_;
};

}  // namespace glint::testing

#endif  // GLINT_TESTS_TEST_UTIL_H_
