// Copyright (c) glint authors.
//
// Crash recovery, proven by killing clients at every step. This file links
// the crash-point variant of the library (core/crash_point.h): a forked
// child arms a countdown and runs one operation, and dies with SIGKILL after
// its k-th shared-memory step, for k = 1, 2, ... until the operation
// completes. After each death the monitor (embedded in the test process)
// recovers the child; the test then checks the whole region with the
// checker (no leaked byte, slot or name, no half-done entry, counts agree,
// no stuck waiter) and that the object is either whole or absent, and that
// its id and name can be built again at once.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/check.h"
#include "core/crash_point.h"
#include "core/object_table.h"
#include "test_util.h"

namespace glint::testing {
namespace {

using core::g_crash_countdown;
using core::g_crash_steps;

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions o = SmallStoreOptions(int64_t{16} << 20);
    o.max_objects = 4096;
    GLINT_ASSERT_OK(Monitor::Start(o, &monitor_));
    GLINT_ASSERT_OK(Client::Connect(monitor_->socket_path(), &client_));
  }

  core::Region region() const {
    return core::Region(const_cast<uint8_t*>(client_->region_base()),
                        static_cast<uint64_t>(client_->region_size()));
  }

  // In a forked child: connect, run `setup`, arm the countdown at `k`, run
  // `op`, exit without any cleanup. Returns 1 if the child was killed at a
  // crash point, 0 if the operation completed, -1 on a setup failure.
  int RunChild(int64_t k, const std::function<bool(Client*)>& setup,
               const std::function<void(Client*)>& op) {
    const pid_t pid = fork();
    if (pid == 0) {
      std::unique_ptr<Client> c;
      if (!Client::Connect(monitor_->socket_path(), &c).ok()) _exit(3);
      if (!setup(c.get())) _exit(4);
      if (k == 0) raise(SIGKILL);  // point 0: dead before the first step
      g_crash_countdown.store(k);
      op(c.get());
      g_crash_countdown.store(0);
      _exit(0);  // no destructor: the monitor recovers us as dead
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) return 1;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    ADD_FAILURE() << "child exited with status " << st;
    return -1;
  }

  // Waits until the monitor has recovered every client but ours, then runs
  // the checker on the quiescent store.
  ::testing::AssertionResult RecoveredAndSound(const std::string& where) {
    // Every client slot but ours free again (recovery done).
    const core::Region r = region();
    const bool alone =
        WaitUntil([&] { return OtherClientsFree(r, client_->client_slot()); });
    if (!alone) return ::testing::AssertionFailure() << where << ": client not recovered";
    const core::CheckReport rep = core::CheckRegion(region(), /*quiescent=*/true);
    if (!rep.ok()) return ::testing::AssertionFailure() << where << ": " << rep.ToString();
    return ::testing::AssertionSuccess();
  }

  // Sweeps crash points 1.. over `op` until it completes; after each, runs
  // `verify` (the object is whole or absent) and `cleanup` (back to the
  // starting content). Returns the number of crash points swept.
  int Sweep(const std::string& name, const std::function<bool(Client*)>& setup,
            const std::function<void(Client*)>& op,
            const std::function<void()>& verify, int max_points = 400) {
    int k = 0;
    for (; k <= max_points; ++k) {
      const int r = RunChild(k, setup, op);
      if (r < 0) return k;
      EXPECT_TRUE(RecoveredAndSound(name + " crash point " + std::to_string(k)));
      verify();
      if (::testing::Test::HasFailure()) {
        ADD_FAILURE() << name << ": first failure at crash point " << k;
        return k;
      }
      if (r == 0 && k > 0) break;  // completed without reaching crash point k
    }
    EXPECT_GT(k, 2) << name << ": the operation passed no crash point";
    std::printf("%s: killed at each of %d crash points (0..%d), then completed\n",
                name.c_str(), k, k - 1);
    return k;
  }

  // Builds, writes and seals `id` of `size` bytes (with a name if given).
  static Status Put(Client* c, const ObjectId& id, int64_t size,
                    const std::string& name = "") {
    MutableBuffer mb;
    Status s = c->BuildObject(id, size, &mb, name, {{"k", "v"}});
    if (!s.ok()) return s;
    FillPattern(mb.mutable_data(), size, SeedOf(id));
    return mb.Seal();
  }

  // `id` is either absent (then its id and name are free: building them
  // again succeeds) or sealed and whole. Leaves it absent.
  void WholeOrAbsent(const ObjectId& id, int64_t size, const std::string& name) {
    Buffer b;
    const Status s = client_->GetObject(id, &b, 0);
    if (s.ok()) {
      EXPECT_EQ(b.size(), size);
      EXPECT_EQ(CheckPattern(b.data(), b.size(), SeedOf(id)), -1) << "torn object";
      if (!name.empty()) {
        Buffer bn;
        GLINT_EXPECT_OK(client_->GetObjectByName(name, &bn, 0));
      }
      b.Release();
      GLINT_EXPECT_OK(client_->Delete(id));
    } else {
      EXPECT_EQ(s.code(), StatusCode::kTimedOut) << s.ToString();
      GLINT_EXPECT_OK(Put(client_.get(), id, size, name));  // id and name free
      GLINT_EXPECT_OK(client_->Delete(id));
    }
    EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
    const core::CheckReport rep = core::CheckRegion(region(), true);
    EXPECT_TRUE(rep.ok()) << rep.ToString();
  }

  std::unique_ptr<Monitor> monitor_;
  std::unique_ptr<Client> client_;
};

auto NoSetup = [](Client*) { return true; };

// A dead client's log record names page runs and blocks with offsets near
// 2^64 (it scribbled on its own record before dying). Recovery must refuse
// them, not index the page bitmap with them: offset + size wrapped below
// the heap size and passed the check (found in review).
TEST_F(CrashTest, DamagedRecordOfADeadClientIsRefused) {
  const uint64_t bitmap_before = region().page_bitmap()[0].load();
  ASSERT_EQ(RunChild(
                0,
                [](Client* c) {
                  core::Region r(const_cast<uint8_t*>(c->region_base()),
                                 static_cast<uint64_t>(c->region_size()));
                  const uint32_t me = static_cast<uint32_t>(c->client_slot());
                  for (uint32_t i : {0u, core::kRecordsPerClient - 1}) {
                    core::OpRecord* rec = r.record(me, i);
                    core::SetBlockRef(rec->cand_pages, ~uint64_t{0} - 4095, 8192);
                    core::SetBlockRef(rec->cand, ~uint64_t{0} - 63, 128);
                    core::SetBlockRef(rec->owned[0], ~uint64_t{0} - (1 << 20) + 1, 1 << 21);
                  }
                  return true;
                },
                [](Client*) {}),
            1);
  EXPECT_TRUE(RecoveredAndSound("damaged record"));
  EXPECT_EQ(region().page_bitmap()[0].load(), bitmap_before);
  MutableBuffer mb;  // the monitor is alive and the store serves
  GLINT_ASSERT_OK(client_->BuildObject(MakeId(77, 1), 100000, &mb));
  GLINT_ASSERT_OK(mb.Seal());
  GLINT_ASSERT_OK(client_->Delete(MakeId(77, 1)));
}

TEST_F(CrashTest, BuildAndSealSmallNamedObject) {
  const ObjectId id = MakeId(1, 1);
  Sweep("build+seal 64 B", NoSetup,
        [&](Client* c) { (void)Put(c, id, 64, "small-name"); },
        [&] { WholeOrAbsent(id, 64, "small-name"); });
}

TEST_F(CrashTest, BuildAndSealLargeObject) {
  const ObjectId id = MakeId(1, 2);
  Sweep("build+seal 1 MiB", NoSetup,
        [&](Client* c) { (void)Put(c, id, 1 << 20); },
        [&] { WholeOrAbsent(id, 1 << 20, ""); });
}

TEST_F(CrashTest, BuildResizeAndSeal) {
  const ObjectId id = MakeId(1, 3);
  const int64_t final_size = 100 * 1024;
  Sweep("build+resize+seal", NoSetup,
        [&](Client* c) {
          MutableBuffer mb;
          if (!c->BuildObject(id, 64, &mb, "resized").ok()) return;
          if (!mb.Resize(final_size).ok()) return;
          FillPattern(mb.mutable_data(), final_size, SeedOf(id));
          (void)mb.Seal();
        },
        [&] {
          Buffer b;
          if (client_->GetObject(id, &b, 0).ok()) {
            EXPECT_EQ(b.size(), final_size);
            EXPECT_EQ(CheckPattern(b.data(), b.size(), SeedOf(id)), -1);
            b.Release();
            GLINT_EXPECT_OK(client_->Delete(id));
          }
          EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
        });
}

TEST_F(CrashTest, BuildThenAbort) {
  const ObjectId id = MakeId(1, 4);
  Sweep("build+abort", NoSetup,
        [&](Client* c) {
          MutableBuffer mb;
          if (c->BuildObject(id, 5000, &mb, "aborted", {{"a", "b"}}).ok()) (void)mb.Abort();
        },
        [&] {
          EXPECT_FALSE(client_->Contains(id));
          GLINT_EXPECT_OK(Put(client_.get(), id, 5000, "aborted"));
          GLINT_EXPECT_OK(client_->Delete(id));
          EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
        });
}

TEST_F(CrashTest, DeleteSealedObject) {
  const ObjectId id = MakeId(1, 5);
  GLINT_ASSERT_OK(Put(client_.get(), id, 20000, "to-delete"));
  Sweep("delete", NoSetup, [&](Client* c) { (void)c->Delete(id); },
        [&] {
          // Whole, or gone; then put it back for the next round.
          Buffer b;
          if (client_->GetObject(id, &b, 0).ok()) {
            EXPECT_EQ(CheckPattern(b.data(), b.size(), SeedOf(id)), -1);
          } else {
            EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
            GLINT_EXPECT_OK(Put(client_.get(), id, 20000, "to-delete"));
          }
        });
}

// An id whose first bucket is full goes to its second and the first counts
// it (the spill count). A creator or deleter of such an id killed at any
// step leaves a count that may be too high, never too low (the checker's
// quiescent check), and the object whole or absent.
class SpillCrashTest : public CrashTest {
 protected:
  void SetUp() override {
    CrashTest::SetUp();
    if (HasFatalFailure()) return;
    const uint64_t nb = region().header()->obj_num_buckets;
    first_ = core::MakeKey(core::IdHash(x_.data()), nb).bucket[0];
    for (uint64_t i = 0; fill_.size() < core::kSlotsPerBucket; ++i) {
      const ObjectId id = MakeId(40, i);
      if (core::MakeKey(core::IdHash(id.data()), nb).bucket[0] == first_) fill_.push_back(id);
    }
    for (const ObjectId& id : fill_) GLINT_ASSERT_OK(Put(client_.get(), id, 64));
  }
  uint32_t Spill() const { return core::SpillOf(region().obj_bucket(first_)->used.load()); }
  // x is whole and found (then deleted, the count back where it was), or
  // absent (then building it spills again and deleting it takes that back).
  void SpilledWholeOrAbsent() {
    const uint32_t before = Spill();
    Buffer b;
    if (client_->GetObject(x_, &b, 0).ok()) {
      EXPECT_EQ(CheckPattern(b.data(), b.size(), SeedOf(x_)), -1) << "torn object";
      b.Release();
      EXPECT_GE(before, 1u);
      GLINT_EXPECT_OK(client_->Delete(x_));
      EXPECT_EQ(Spill(), before - 1);
    } else {
      GLINT_EXPECT_OK(Put(client_.get(), x_, 64));
      EXPECT_EQ(Spill(), before + 1);
      GLINT_EXPECT_OK(client_->Delete(x_));
      EXPECT_EQ(Spill(), before);
    }
    const core::CheckReport rep = core::CheckRegion(region(), true);
    EXPECT_TRUE(rep.ok()) << rep.ToString();
  }

  const ObjectId x_ = MakeId(41, 1);
  uint64_t first_ = 0;
  std::vector<ObjectId> fill_;
};

TEST_F(SpillCrashTest, BuildAndSealSpilledObject) {
  Sweep("spilled build+seal", NoSetup, [&](Client* c) { (void)Put(c, x_, 64); },
        [&] { SpilledWholeOrAbsent(); });
}

TEST_F(SpillCrashTest, DeleteSpilledObject) {
  GLINT_ASSERT_OK(Put(client_.get(), x_, 64));
  ASSERT_EQ(Spill(), 1u);
  Sweep("spilled delete", NoSetup, [&](Client* c) { (void)c->Delete(x_); },
        [&] {
          Buffer b;
          if (client_->GetObject(x_, &b, 0).ok()) {
            EXPECT_EQ(CheckPattern(b.data(), b.size(), SeedOf(x_)), -1);
          } else {
            GLINT_EXPECT_OK(Put(client_.get(), x_, 64));  // for the next round
          }
          const core::CheckReport rep = core::CheckRegion(region(), true);
          EXPECT_TRUE(rep.ok()) << rep.ToString();
        });
}

TEST_F(CrashTest, GetAndRelease) {
  const ObjectId id = MakeId(1, 7);
  GLINT_ASSERT_OK(Put(client_.get(), id, 4000, "got"));
  Sweep("get+release", NoSetup,
        [&](Client* c) {
          Buffer b;
          if (c->GetObject(id, &b, 0).ok()) b.Release();
        },
        [&] {
          // Still there and whole, and nobody holds it: a delete frees it.
          Buffer b;
          GLINT_EXPECT_OK(client_->GetObject(id, &b, 0));
          EXPECT_EQ(CheckPattern(b.data(), b.size(), SeedOf(id)), -1);
        });
  GLINT_EXPECT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(CrashTest, LastReleaseOfADeletedObject) {
  const ObjectId id = MakeId(1, 6);
  Buffer held;
  Sweep("release after delete",
        [&](Client* c) {
          // Hold it in the child, then delete it: the child's release frees.
          if (!Put(c, id, 3000, "held").ok()) return false;
          if (!c->GetObject(id, &held, 0).ok()) return false;
          return c->Delete(id).ok();
        },
        [&](Client*) { held.Release(); },
        [&] {
          EXPECT_FALSE(client_->Contains(id));
          EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
        });
}

// Allocation that must first give empty spans of another class back to the
// page bitmap (RetireSpan), killed at each step of that.
TEST_F(CrashTest, AllocationThatRetiresSpans) {
  StoreStats st = GetStats(client_.get());
  const int n = static_cast<int>(st.capacity / (16 * 1024));
  std::vector<ObjectId> ids;
  for (int i = 0; i < n; ++i) {
    const ObjectId id = MakeId(7, i);
    if (!Put(client_.get(), id, 16 * 1024).ok()) break;
    ids.push_back(id);
  }
  ASSERT_GT(ids.size(), 100u);
  for (const auto& id : ids) GLINT_ASSERT_OK(client_->Delete(id));
  const ObjectId big = MakeId(7, 1000000);
  Sweep("allocation retiring spans", NoSetup,
        [&](Client* c) { (void)Put(c, big, 8 << 20); },
        [&] {
          Buffer b;
          if (client_->GetObject(big, &b, 0).ok()) {
            EXPECT_EQ(CheckPattern(b.data(), b.size(), SeedOf(big)), -1);
            b.Release();
            GLINT_EXPECT_OK(client_->Delete(big));
          }
          const core::CheckReport rep = core::CheckRegion(region(), true);
          EXPECT_TRUE(rep.ok()) << rep.ToString();
        },
        /*max_points=*/60);
  // Whatever happened, the whole heap is usable again.
  GLINT_EXPECT_OK(Put(client_.get(), big, 12 << 20));
  GLINT_EXPECT_OK(client_->Delete(big));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// A getter killed while asleep on the futex leaves no sleeper counted.
TEST_F(CrashTest, GetterKilledAsleep) {
  const ObjectId id = MakeId(1, 8);
  const pid_t pid = fork();
  if (pid == 0) {
    std::unique_ptr<Client> c;
    if (!Client::Connect(monitor_->socket_path(), &c).ok()) _exit(3);
    Buffer b;
    (void)c->GetObject(id, &b, -1);
    _exit(0);
  }
  ASSERT_TRUE(WaitForSleepers(client_.get(), core::IdHash(id.data())));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  EXPECT_TRUE(RecoveredAndSound("getter killed asleep"));
}

// CrashTest's tests that run threads (the label "threads", run under TSan).
class CrashThreadsTest : public CrashTest {
 protected:
  // A getter of `id` by id and one of `name` by name (60 s timeouts), both
  // asleep, and a builder of them in another process, started before the
  // getters or after them (`wait_first`), then killed. Both getters must
  // answer kAborted promptly, and recovery leave the store sound.
  void ExpectWaitersOfAKilledBuilderAborted(const ObjectId& id, const std::string& name,
                                            bool wait_first);
};

void CrashThreadsTest::ExpectWaitersOfAKilledBuilderAborted(const ObjectId& id,
                                                            const std::string& name,
                                                            bool wait_first) {
  std::unique_ptr<Client> c;  // the child's, kept alive while it pauses
  MutableBuffer mb;
  auto fork_builder = [&] {
    std::string answer;
    const pid_t pid = ForkAndPause(
        [&]() -> std::string {
          if (!Client::Connect(monitor_->socket_path(), &c).ok()) return "";
          return c->BuildObject(id, 100, &mb, name).ok() ? "built" : "";
        },
        &answer);
    return answer == "built" ? pid : -1;
  };
  pid_t pid = wait_first ? 0 : fork_builder();
  ASSERT_NE(pid, -1) << "the builder did not build";
  Status by_id, by_name;
  std::thread t1([&] {
    Buffer b;
    by_id = client_->GetObject(id, &b, 60000);
  });
  std::thread t2([&] {
    Buffer b;
    by_name = client_->GetObjectByName(name, &b, 60000);
  });
  EXPECT_TRUE(WaitForSleepers(client_.get(), core::IdHash(id.data())));
  EXPECT_TRUE(WaitForSleepers(client_.get(), core::NameHash(name)));
  if (wait_first) pid = fork_builder();
  EXPECT_NE(pid, -1) << "the builder did not build";
  const auto t0 = std::chrono::steady_clock::now();
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  t1.join();
  t2.join();
  EXPECT_EQ(by_id.code(), StatusCode::kAborted) << by_id.ToString();
  EXPECT_EQ(by_name.code(), StatusCode::kAborted) << by_name.ToString();
  // Promptly: far below the 60 s timeout (a generous bound, not a benchmark).
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  EXPECT_TRUE(RecoveredAndSound("builder killed"));
}

// Waiters on an object whose builder dies get kAborted at once, not their
// timeout.
TEST_F(CrashThreadsTest, WaitersOfADeadBuilderAreAborted) {
  ExpectWaitersOfAKilledBuilderAborted(MakeId(1, 9), "pending", /*wait_first=*/false);
}

// The same when the getters began waiting before the builder (another
// process) even connected: they never saw the build; the monitor's abort
// of it after the kill tells them through the wait buckets' abort tags.
TEST_F(CrashThreadsTest, WaitersFromBeforeTheBuildOfADeadBuilderAreAborted) {
  ExpectWaitersOfAKilledBuilderAborted(MakeId(1, 10), "later", /*wait_first=*/true);
}

// Several clients run a random mix of every operation on shared ids (bytes
// a function of the id) while a driver kills them at random moments and
// starts new ones, so recoveries run while other clients are mid-operation.
// After each round (its clients all killed) the checker must find the
// store sound; at the end every object left must be whole. CI runs a few
// hundred kills; GLINT_KILL_ROUNDS raises the rounds (docs/RELIABILITY.md
// records a 10,000-kill run).
TEST_F(CrashTest, RandomKillsUnderLoad) {
  const char* env = getenv("GLINT_KILL_ROUNDS");
  const int rounds = env != nullptr ? atoi(env) : 100 / kScale;
  constexpr int kClients = 3;
  std::mt19937_64 rng(12345);
  auto start_client = [&](uint64_t seed) {
    const pid_t pid = fork();
    if (pid != 0) return pid;
    std::unique_ptr<Client> c;
    if (!Client::Connect(monitor_->socket_path(), &c).ok()) _exit(3);
    std::mt19937_64 r(seed);
    std::vector<Buffer> held(4);
    for (;;) {
      const ObjectId id = MakeId(100, r() % 48);
      const int64_t sizes[] = {0, 64, 700, 5000, 16384, 40000, 300000};
      switch (r() % 7) {
        case 0:
        case 1:
          (void)Put(c.get(), id, sizes[r() % 7],
                    (r() % 2) ? std::string("n").append(id.hex()) : std::string());
          break;
        case 2: (void)c->GetObject(id, &held[r() % 4], 0); break;
        case 3: held[r() % 4].Release(); break;
        case 4: (void)c->Delete(id); break;
        case 5: {
          MutableBuffer mb;
          if (c->BuildObject(id, sizes[r() % 7], &mb).ok() && (r() % 2)) {
            (void)mb.Resize(sizes[r() % 7]);
          }
          break;  // mb aborts on destruction
        }
        case 6: {  // a short wait on an object someone may be building
          Buffer b;
          (void)c->GetObject(id, &b, 1);
          break;
        }
      }
    }
  };
  int kills = 0;
  for (int round = 0; round < rounds; ++round) {
    std::vector<pid_t> pids;
    for (int i = 0; i < kClients; ++i) pids.push_back(start_client(rng()));
    // Kill them one by one at random moments, starting a new client in the
    // place of each of the first ones (kills while others work).
    for (int i = 0; i < kClients * 2 - 1; ++i) {
      std::this_thread::sleep_for(std::chrono::microseconds(100 + rng() % 2000));
      const size_t v = rng() % pids.size();
      kill(pids[v], SIGKILL);
      waitpid(pids[v], nullptr, 0);
      ++kills;
      pids.erase(pids.begin() + static_cast<long>(v));
      if (i < kClients - 1) pids.push_back(start_client(rng()));
    }
    for (pid_t p : pids) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
      ++kills;
    }
    ASSERT_TRUE(RecoveredAndSound("random kill round " + std::to_string(round)));
  }
  // Everything left is sealed and whole; delete it all: the store is empty.
  std::vector<ObjectInfo> objs;
  GLINT_ASSERT_OK(client_->ListObjects(&objs));
  int checked = 0;
  for (const auto& o : objs) {
    Buffer b;
    if (!client_->GetObject(o.id, &b, 0).ok()) continue;
    EXPECT_EQ(CheckPattern(b.data(), b.size(), SeedOf(o.id)), -1) << o.id.hex();
    ++checked;
    b.Release();
    GLINT_EXPECT_OK(client_->Delete(o.id));
  }
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
  std::printf("%d kills in %d rounds; %d objects left, all whole\n", kills, rounds,
              checked);
}

}  // namespace
}  // namespace glint::testing

namespace glint::testing {
namespace {

// The monitor itself killed in the middle of a recovery, at each of its
// steps: a monitor started again on the same socket re-attaches the region,
// finds the slot still RECOVERING, and finishes the job.
// With the parameter true, every object of the test (kept, held, the two
// the dead client builds) spilled to its second bucket: their common first
// bucket is full of other objects (found in review: recovery by a monitor
// killed and restarted must leave spill counts too high at worst).
class MonitorCrashTest : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Ids, MonitorCrashTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return std::string(i.param ? "Spilled" : "InFirstBucket");
                         });

// `n` ids of tag `tag` whose first bucket (in a table of `nb` buckets) is
// the first one of tag's id 1.
std::vector<ObjectId> IdsSharingAFirstBucket(uint64_t tag, uint64_t nb, uint64_t bucket, size_t n) {
  std::vector<ObjectId> out;
  for (uint64_t i = 1; out.size() < n; ++i) {
    const ObjectId id = MakeId(tag, i);
    if (core::MakeKey(core::IdHash(id.data()), nb).bucket[0] == bucket) out.push_back(id);
  }
  return out;
}

TEST_P(MonitorCrashTest, KilledMidRecoveryAndRestarted) {
  const bool spilled = GetParam();
  int finished_at = -1;
  for (int k = 1; k <= 200 && finished_at < 0; ++k) {
    StoreOptions o = SmallStoreOptions(int64_t{8} << 20);
    o.max_objects = spilled ? 64 : 2048;
    // The monitor's process: its crash points are the recovery's steps.
    std::unique_ptr<Monitor> m;  // the child's
    std::string answer;
    const pid_t mon = ForkAndPause(
        [&]() -> std::string {
          if (!Monitor::Start(o, &m).ok()) return "";
          g_crash_countdown.store(k);
          return "started";
        },
        &answer);
    // A failed assertion below leaves the round early: the paused monitor
    // must not outlive it (ctest would wait for it until its timeout).
    struct KillUnlessReaped {
      pid_t pid;
      ~KillUnlessReaped() {
        if (pid > 0) {
          kill(pid, SIGKILL);
          waitpid(pid, nullptr, 0);
        }
      }
    } monitor_child{mon};
    ASSERT_EQ(answer, "started");
    std::unique_ptr<Client> c;
    GLINT_ASSERT_OK(Client::Connect(o.socket_path, &c));
    const core::Region r(const_cast<uint8_t*>(c->region_base()),
                         static_cast<uint64_t>(c->region_size()));
    const uint64_t nb = r.header()->obj_num_buckets;
    const uint64_t first = core::MakeKey(core::IdHash(MakeId(9, 1).data()), nb).bucket[0];
    // kept, held, and the two the dying client builds.
    const std::vector<ObjectId> ids =
        spilled ? IdsSharingAFirstBucket(9, nb, first, 4)
                : std::vector<ObjectId>{MakeId(9, 1), MakeId(9, 2), MakeId(9, 3), MakeId(9, 4)};
    const ObjectId kept = ids[0], held = ids[1];
    MutableBuffer mb;
    if (spilled) {
      for (const ObjectId& id : IdsSharingAFirstBucket(10, nb, first, core::kSlotsPerBucket)) {
        GLINT_ASSERT_OK(c->BuildObject(id, 64, &mb));
        GLINT_ASSERT_OK(mb.Seal());
      }
    }
    for (const ObjectId& id : {kept, held}) {
      GLINT_ASSERT_OK(c->BuildObject(id, 3000, &mb, std::string("n").append(id.hex())));
      FillPattern(mb.mutable_data(), 3000, SeedOf(id));
      GLINT_ASSERT_OK(mb.Seal());
    }
    if (spilled) {
      ASSERT_EQ(core::SpillOf(r.obj_bucket(first)->used.load()), 2u);
    }
    // A client that dies holding `held` (which we then delete), building a
    // named object and a large one.
    const pid_t cl = fork();
    if (cl == 0) {
      std::unique_ptr<Client> d;
      if (!Client::Connect(o.socket_path, &d).ok()) _exit(3);
      Buffer b;
      MutableBuffer m1, m2;
      if (!d->GetObject(held, &b, 0).ok()) _exit(4);
      if (!d->BuildObject(ids[2], 100, &m1, "building").ok()) _exit(5);
      if (!d->BuildObject(ids[3], 200000, &m2).ok()) _exit(6);
      _exit(0);
    }
    int st = 0;
    waitpid(cl, &st, 0);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    GLINT_ASSERT_OK(c->Delete(held));
    auto others_free = [&] { return OtherClientsFree(r, c->client_slot()); };
    // Either the monitor dies at its k-th step, or recovery completes.
    bool monitor_died = false;
    ASSERT_TRUE(WaitUntil([&] {
      if (waitpid(mon, &st, WNOHANG) == mon) {
        monitor_died = true;
        monitor_child.pid = 0;  // reaped: its pid may be reused
        return true;
      }
      return others_free();
    }));
    std::unique_ptr<Monitor> again;
    if (monitor_died) {
      ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << st;
      GLINT_ASSERT_OK(Monitor::Start(o, &again));  // re-attaches
      ASSERT_TRUE(WaitUntil(others_free)) << "restarted monitor did not finish";
    } else {
      finished_at = k;
    }
    const core::CheckReport rep = core::CheckRegion(r, /*quiescent=*/true);
    EXPECT_TRUE(rep.ok()) << "monitor killed at recovery step " << k << ": "
                          << rep.ToString();
    Buffer b;
    GLINT_EXPECT_OK(c->GetObject(kept, &b, 0));
    EXPECT_EQ(CheckPattern(b.data(), b.size(), SeedOf(kept)), -1);
    EXPECT_FALSE(c->Contains(held));
    EXPECT_FALSE(c->Contains(ids[2]));
    if (spilled) {
      // kept still spilled; a crash may leave the count too high, never low.
      EXPECT_GE(core::SpillOf(r.obj_bucket(first)->used.load()), 1u);
    }
    b.Release();
    c.reset();
    if (!monitor_died) {
      // Its process only pauses: kill it, and let a monitor that
      // re-attaches the region remove it on the way out.
      kill(mon, SIGKILL);
      waitpid(mon, nullptr, 0);
      monitor_child.pid = 0;
      GLINT_EXPECT_OK(Monitor::Start(o, &again));
    }
    again.reset();  // unlinks the region
    unlink(o.socket_path.c_str());
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_GT(finished_at, 3) << "recovery passed too few crash points";
  std::printf("monitor killed at each of %d recovery steps, then completed\n",
              finished_at - 1);
}

}  // namespace
}  // namespace glint::testing

namespace glint::testing {
namespace {

// A monitor restarted on a region whose contents were damaged while no
// monitor ran (random bytes over the client logs, the object table, the
// name index or the allocator state) refuses it with kCorrupt, or, if the
// damage breaks no invariant, serves it soundly. It never crashes (CI runs
// this under ASan too).
TEST(CorruptRegionTest, RestartedMonitorRefusesOrServesSoundly) {
  std::mt19937_64 rng(777);
  int refused = 0, served = 0;
  const int rounds = 40 / kScale;
  for (int round = 0; round < rounds; ++round) {
    StoreOptions o = SmallStoreOptions(int64_t{4} << 20);
    o.max_objects = 1024;
    // A store with sealed, named and unsealed objects, then a SIGKILL.
    std::unique_ptr<Monitor> m;  // the child's
    std::unique_ptr<Client> c;
    MutableBuffer mb;
    std::string region_path;
    const pid_t mon = ForkAndPause(
        [&]() -> std::string {
          if (!Monitor::Start(o, &m).ok() || !Client::Connect(o.socket_path, &c).ok()) {
            return "";
          }
          for (int i = 0; i < 20; ++i) {
            const std::string name =
                i % 2 ? std::string("n").append(std::to_string(i)) : std::string();
            if (!c->BuildObject(MakeId(5, i), 100 * i, &mb, name).ok()) return "";
            if (i % 5 != 0 && !mb.Seal().ok()) return "";
          }
          return m->region_path();
        },
        &region_path);
    ASSERT_FALSE(region_path.empty());
    kill(mon, SIGKILL);
    waitpid(mon, nullptr, 0);

    core::RegionHeader h;
    int fd = open(region_path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << region_path;
    ASSERT_EQ(pread(fd, &h, sizeof(h), 0), static_cast<ssize_t>(sizeof(h)));
    const uint64_t starts[] = {h.clients_offset, h.obj_buckets_offset,
                               h.obj_entries_offset, h.name_buckets_offset,
                               h.name_entries_offset, h.page_bitmap_offset,
                               h.span_table_offset};
    const uint64_t ends[] = {h.waits_offset, h.obj_entries_offset,
                             h.name_buckets_offset, h.name_entries_offset,
                             h.page_bitmap_offset, h.span_table_offset,
                             h.class_hints_offset};
    const size_t section = rng() % 7;
    // In the client table, aim at the first slots (logs in use).
    const uint64_t len = section == 0 ? 2 * core::kClientStride
                                      : ends[section] - starts[section];
    for (int k = 0, n = 1 + static_cast<int>(rng() % 8); k < n; ++k) {
      const uint64_t at = starts[section] + rng() % len;
      uint8_t junk[16];
      for (auto& b : junk) b = static_cast<uint8_t>(rng());
      ASSERT_GT(pwrite(fd, junk, 1 + rng() % 16, static_cast<off_t>(at)), 0);
    }
    close(fd);

    std::unique_ptr<Monitor> again;
    const Status s = Monitor::Start(o, &again);
    if (s.ok()) {
      ++served;
      std::unique_ptr<Client> c;
      GLINT_ASSERT_OK(Client::Connect(o.socket_path, &c));
      const core::Region r(const_cast<uint8_t*>(c->region_base()),
                           static_cast<uint64_t>(c->region_size()));
      const core::CheckReport live = core::CheckRegion(r, false);
      EXPECT_TRUE(live.ok()) << "served a region that is not sound: "
                             << live.ToString();
    } else {
      ++refused;
      EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
      EXPECT_NE(s.message().find(region_path), std::string::npos) << s.ToString();
    }
    again.reset();
    unlink(region_path.c_str());
    unlink(o.socket_path.c_str());
  }
  std::printf("damaged regions: %d refused, %d served soundly\n", refused, served);
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace glint::testing
