// Copyright (c) glint authors.
//
// Several threads on one Client (and a few Clients in one process). Every
// test here carries the ctest label "threads" and runs under TSan in CI.

#include <atomic>
#include <chrono>
#include <deque>
#include <random>
#include <thread>
#include <vector>

#include "alloc/heap.h"
#include "glint/glint.h"
#include "tests/test_util.h"

namespace glint::testing {
namespace {

using std::chrono::milliseconds;

// Collects failures from worker threads (gtest assertions belong on the
// main thread of a test only for ASSERT_*; EXPECT_* is thread-safe, but a
// count keeps the output short).
struct Failures {
  std::atomic<int> count{0};
  std::atomic<bool> printed{false};
  void Add(const std::string& what) {
    if (count.fetch_add(1) == 0) {
      ADD_FAILURE() << what;
    }
  }
};

using ThreadsTest = StoreTest;

// Threads share one Client: each works on its own ids, and all of them on a
// small set of shared ids (create races, gets, deletes of each other's).
TEST_F(ThreadsTest, SharedClientDistinctAndOverlappingIds) {
  const int kThreads = 4;
  const int kIters = 20000 / kScale;
  const int kShared = 32;
  Failures fail;
  auto own_id = [](int t, int i) { return MakeId(0x100 + t, i); };
  auto shared_id = [](int k) { return MakeId(0x5ba7ed, k); };
  // Shared objects have a fixed size per id, so any builder writes the same.
  auto shared_size = [](int k) -> int64_t { return 100 + k * 531; };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::deque<int> mine;
      for (int i = 0; i < kIters && fail.count.load() == 0; ++i) {
        // Own object: build, seal, get, check.
        const ObjectId id = own_id(t, i);
        const int64_t size = static_cast<int64_t>(rng() % 20000);
        MutableBuffer mb;
        Status s = client_->BuildObject(id, size, &mb);
        if (!s.ok()) return fail.Add("own build: " + s.ToString());
        FillPattern(mb.mutable_data(), size, SeedOf(id));
        s = mb.Seal();
        if (!s.ok()) return fail.Add("own seal: " + s.ToString());
        mine.push_back(i);
        Buffer b;
        s = client_->GetObject(id, &b, 0);
        if (!s.ok()) return fail.Add("own get: " + s.ToString());
        if (CheckPattern(b.data(), b.size(), SeedOf(id)) != -1) {
          return fail.Add("own object bytes differ");
        }
        b.Release();
        if (mine.size() > 8) {
          s = client_->Delete(own_id(t, mine.front()));
          if (!s.ok()) return fail.Add("own delete: " + s.ToString());
          mine.pop_front();
        }
        // A shared id: one of build / get / delete.
        const int k = static_cast<int>(rng() % kShared);
        const ObjectId sid = shared_id(k);
        switch (rng() % 3) {
          case 0: {
            s = client_->BuildObject(sid, shared_size(k), &mb);
            if (s.ok()) {
              FillPattern(mb.mutable_data(), shared_size(k), SeedOf(sid));
              s = mb.Seal();
              if (!s.ok()) return fail.Add("shared seal: " + s.ToString());
            } else if (s.code() != StatusCode::kAlreadyExists) {
              return fail.Add("shared build: " + s.ToString());
            }
            break;
          }
          case 1: {
            s = client_->GetObject(sid, &b, 0);
            if (s.ok()) {
              if (b.size() != shared_size(k) ||
                  CheckPattern(b.data(), b.size(), SeedOf(sid)) != -1) {
                return fail.Add("shared object bytes differ");
              }
            } else if (s.code() != StatusCode::kTimedOut) {
              return fail.Add("shared get: " + s.ToString());
            }
            break;
          }
          default: {
            s = client_->Delete(sid);
            if (!s.ok() && s.code() != StatusCode::kNotFound) {
              return fail.Add("shared delete: " + s.ToString());
            }
          }
        }
      }
      for (int i : mine) {
        const Status s = client_->Delete(own_id(t, i));
        if (!s.ok()) return fail.Add("final delete: " + s.ToString());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(fail.count.load(), 0);
  for (int k = 0; k < kShared; ++k) {
    const Status s = client_->Delete(shared_id(k));
    EXPECT_TRUE(s.ok() || s.code() == StatusCode::kNotFound) << s.ToString();
  }
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// Threads of one Client race, in lockstep, to create the same ids (and
// names): exactly one wins each.
//
// Regression test (caught about 1 run in 30) for the duplicate-commit race
// of Store::Verify described at MultiProcessTest.RaceToCreateSameIds...;
// fixed in 937a2b8.
TEST_F(ThreadsTest, SameIdFromManyThreadsOneWinner) {
  const int kThreads = 3;
  const int kIds = 2000 / kScale;
  std::vector<std::atomic<int>> winners(kIds);
  std::vector<std::atomic<int>> step(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIds; ++i) {
        // Nobody runs more than one id ahead of the others.
        for (int o = 0; o < kThreads; ++o) {
          while (step[o].load() < i) std::this_thread::yield();
        }
        MutableBuffer mb;
        const Status s = client_->BuildObject(MakeId(0x0e, i), 64, &mb,
                                              "name-" + std::to_string(i));
        if (s.ok()) {
          std::memset(mb.mutable_data(), t, 64);
          if (!mb.Seal().ok()) errors.fetch_add(1);
          winners[i].fetch_add(1);
        } else if (s.code() != StatusCode::kAlreadyExists) {
          errors.fetch_add(1);
        }
        step[t].store(i + 1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  for (int i = 0; i < kIds; ++i) {
    ASSERT_EQ(winners[i].load(), 1) << i;
    Buffer b;
    GLINT_ASSERT_OK(client_->GetObjectByName("name-" + std::to_string(i), &b, 0));
    EXPECT_EQ(b.id(), MakeId(0x0e, i));
  }
  EXPECT_EQ(GetStats(client_.get()).objects_sealed, kIds);
}

// Many threads get and release the SAME object in a tight loop while
// another deletes it, round after round: the per-client 0->1 / 1->0 holder
// transitions race with each other and with Delete. A churner reuses freed
// blocks of the same size class with other bytes, so a premature free shows
// up as changed bytes under a holder.
TEST_F(ThreadsTest, GetReleaseSameObjectWhileDeleted) {
  const int kReaders = 4;
  const int kRounds = 200 / kScale;
  const int64_t kSize = 4000;
  std::unique_ptr<Client> churn_client;
  ASSERT_TRUE(Connect(&churn_client));
  Failures fail;
  std::atomic<int> round{-1};
  std::atomic<int> done_readers{0};
  std::atomic<bool> stop{false};
  auto id_of = [](int r) { return MakeId(0x5a3e, r); };

  std::vector<std::thread> readers;
  for (int t = 0; t < kReaders; ++t) {
    readers.emplace_back([&] {
      int seen = -1;
      while (!stop.load()) {
        const int r = round.load();
        if (r == seen) {
          std::this_thread::yield();
          continue;
        }
        // Hammer this round's object until it is gone.
        const ObjectId id = id_of(r);
        int64_t gets = 0;
        std::vector<Buffer> held(3);
        for (;;) {
          Buffer& b = held[gets % held.size()];
          const Status s = client_->GetObject(id, &b, 0);
          if (!s.ok()) {
            if (s.code() != StatusCode::kTimedOut) fail.Add("get: " + s.ToString());
            break;
          }
          ++gets;
          if (b.size() != kSize || CheckPattern(b.data(), kSize, SeedOf(id)) != -1) {
            fail.Add("bytes changed under a holder in round " + std::to_string(r));
            break;
          }
          if (gets % 2 == 0) b.Release();
          // Every Buffer still held reads the right bytes.
          for (const Buffer& h : held) {
            if (h.valid() && CheckPattern(h.data(), kSize, SeedOf(id)) != -1) {
              fail.Add("bytes changed under an older holder");
            }
          }
        }
        for (const Buffer& h : held) {
          if (h.valid() && CheckPattern(h.data(), kSize, SeedOf(id)) != -1) {
            fail.Add("bytes changed after delete under a holder");
          }
        }
        held.clear();
        seen = r;
        done_readers.fetch_add(1);
      }
    });
  }
  // Reuses freed blocks of the same class with other bytes.
  std::thread churner([&] {
    for (uint64_t i = 0; !stop.load(); ++i) {
      MutableBuffer mb;
      const ObjectId id = MakeId(0xc0c0, i);
      if (!churn_client->BuildObject(id, kSize, &mb).ok()) {
        fail.Add("churn build");
        return;
      }
      std::memset(mb.mutable_data(), 0xee, kSize);
      if (!mb.Seal().ok() || !churn_client->Delete(id).ok()) {
        fail.Add("churn seal/delete");
        return;
      }
    }
  });

  for (int r = 0; r < kRounds && fail.count.load() == 0; ++r) {
    ASSERT_TRUE(Put(id_of(r), kSize));
    done_readers.store(0);
    round.store(r);
    // Let the readers run a while, then delete under them.
    std::this_thread::sleep_for(std::chrono::microseconds(200 + (r % 7) * 100));
    GLINT_ASSERT_OK(client_->Delete(id_of(r)));
    ASSERT_TRUE(WaitUntil([&] { return done_readers.load() == kReaders; }));
    // Every reference is gone: the object's memory is back.
    ObjectInfo info;
    GLINT_EXPECT_CODE(client_->GetObjectInfo(id_of(r), &info), StatusCode::kNotFound);
  }
  stop.store(true);
  for (auto& th : readers) th.join();
  churner.join();
  EXPECT_EQ(fail.count.load(), 0);
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// Tight get/release of one object from many threads, with a second client
// doing the same, and counts checked after: the holder bit ends clear.
TEST_F(ThreadsTest, HolderBitSurvivesTightGetReleaseLoops) {
  const ObjectId id = ObjectId::Random();
  ASSERT_TRUE(Put(id, 64));
  std::unique_ptr<Client> other;
  ASSERT_TRUE(Connect(&other));
  const int kThreads = 4;
  const int kIters = 200000 / kScale;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Client* c = t % 2 == 0 ? client_.get() : other.get();
      for (int i = 0; i < kIters; ++i) {
        Buffer b;
        if (!c->GetObject(id, &b, 0).ok() || CheckPattern(b.data(), 64, SeedOf(id)) != -1) {
          errors.fetch_add(1);
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  ObjectInfo info;
  GLINT_ASSERT_OK(client_->GetObjectInfo(id, &info));
  EXPECT_EQ(info.holders, 0);
  // Nobody holds it: delete frees at once.
  GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_EQ(GetStats(client_.get()).bytes_in_use, 0);
}

TEST_F(ThreadsTest, BufferReleasedOnAnotherThread) {
  const ObjectId id = ObjectId::Random();
  ASSERT_TRUE(Put(id, 5000));
  Buffer b;
  GLINT_ASSERT_OK(client_->GetObject(id, &b, 0));
  GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_EQ(GetStats(client_.get()).bytes_in_use,
            static_cast<int64_t>(alloc::AllocSize(5000)));
  std::thread t([buf = std::move(b)]() mutable {
    EXPECT_EQ(CheckPattern(buf.data(), buf.size(), SeedOf(buf.id())), -1);
    buf.Release();
  });
  t.join();
  EXPECT_EQ(GetStats(client_.get()).bytes_in_use, 0);

  // Many Buffers got on one thread, released on others.
  const ObjectId id2 = ObjectId::Random();
  ASSERT_TRUE(Put(id2, 300));
  std::vector<Buffer> bufs(64);
  for (Buffer& x : bufs) GLINT_ASSERT_OK(client_->GetObject(id2, &x, 0));
  std::vector<std::thread> releasers;
  for (int k = 0; k < 4; ++k) {
    std::vector<Buffer> part;
    for (int j = k; j < 64; j += 4) part.push_back(std::move(bufs[j]));
    releasers.emplace_back([p = std::move(part)]() mutable { p.clear(); });
  }
  for (auto& th : releasers) th.join();
  ObjectInfo info;
  GLINT_ASSERT_OK(client_->GetObjectInfo(id2, &info));
  EXPECT_EQ(info.holders, 0);

  // A MutableBuffer built on one thread and sealed on another.
  const ObjectId id3 = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id3, 100, &mb));
  std::thread sealer([m = std::move(mb), id3]() mutable {
    FillPattern(m.mutable_data(), 100, SeedOf(id3));
    EXPECT_TRUE(m.Seal().ok());
  });
  sealer.join();
  Buffer b3;
  GLINT_ASSERT_OK(client_->GetObject(id3, &b3, 0));
  EXPECT_EQ(CheckPattern(b3.data(), 100, SeedOf(id3)), -1);
}

// Waiters wait without a timeout (a lost wake-up would otherwise pass late,
// at the deadline); AllWoken reports a getter that slept through its seal.
TEST_F(ThreadsTest, WaitingThreadWokenBySealOnAnotherThread) {
  const int kWaiters = 6;
  std::unique_ptr<Client> other;
  ASSERT_TRUE(Connect(&other));
  for (int round = 0; round < 4; ++round) {
    const ObjectId id = ObjectId::Random();
    const std::string name = "awaited-" + std::to_string(round);
    std::vector<Status> results(kWaiters);
    std::vector<int64_t> bad(kWaiters, 0);
    std::atomic<int> done{0};
    std::vector<std::thread> waiters;
    for (int w = 0; w < kWaiters; ++w) {
      waiters.emplace_back([&, w] {
        Client* c = w % 2 ? client_.get() : other.get();
        Buffer b;
        results[w] = w % 3 == 2 ? c->GetObjectByName(name, &b, -1) : c->GetObject(id, &b, -1);
        if (results[w].ok()) bad[w] = CheckPattern(b.data(), b.size(), SeedOf(id));
        done.fetch_add(1);
      });
    }
    // Every waiter announced itself (they looked and found nothing).
    const bool same = IdWaitHash(id) % core::kNumWaitBuckets ==
                      NameWaitHash(name) % core::kNumWaitBuckets;
    EXPECT_TRUE(WaitForSleepers(client_.get(), IdWaitHash(id), same ? kWaiters : 4));
    EXPECT_TRUE(WaitForSleepers(client_.get(), NameWaitHash(name), same ? kWaiters : 2));
    std::thread sealer([&] {
      MutableBuffer mb;
      ASSERT_TRUE(client_->BuildObject(id, 2500, &mb, name).ok());
      FillPattern(mb.mutable_data(), 2500, SeedOf(id));
      ASSERT_TRUE(mb.Seal().ok());
    });
    sealer.join();
    EXPECT_TRUE(AllWoken(done, kWaiters, client_.get())) << "name " << name;
    for (auto& th : waiters) th.join();
    for (int w = 0; w < kWaiters; ++w) {
      EXPECT_TRUE(results[w].ok()) << w << ": " << results[w].ToString();
      EXPECT_EQ(bad[w], -1) << w;
    }
  }
}

// Getters wait for objects that a producer on another thread seals one
// after another; every getter gets every object, by id or by name.
TEST_F(ThreadsTest, PipelineOfWaitersAndProducers) {
  const int kObjects = 2000 / kScale;
  const int kGetters = 3;
  std::atomic<int> errors{0};
  std::atomic<int> done{0};
  auto name_of = [](int i) { return "pipe-" + std::to_string(i); };
  std::vector<std::thread> getters;
  for (int g = 0; g < kGetters; ++g) {
    getters.emplace_back([&, g] {
      for (int i = 0; i < kObjects; ++i) {
        Buffer b;
        const ObjectId id = MakeId(0x919e, i);
        const Status s = g == 0 ? client_->GetObjectByName(name_of(i), &b, -1)
                                : client_->GetObject(id, &b, -1);
        if (!s.ok() || CheckPattern(b.data(), b.size(), SeedOf(id)) != -1) {
          errors.fetch_add(1);
          break;
        }
      }
      done.fetch_add(1);
    });
  }
  std::thread producer([&] {
    for (int i = 0; i < kObjects; ++i) {
      const ObjectId id = MakeId(0x919e, i);
      MutableBuffer mb;
      if (!client_->BuildObject(id, i % 3000, &mb, name_of(i)).ok()) {
        errors.fetch_add(1);
        return;
      }
      FillPattern(mb.mutable_data(), i % 3000, SeedOf(id));
      if (!mb.Seal().ok()) errors.fetch_add(1);
      if (i % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  producer.join();
  // Some getters may be rescued more than once; each rescue is reported.
  for (;;) {
    const ::testing::AssertionResult woken = AllWoken(done, kGetters, client_.get());
    if (woken) break;
    ADD_FAILURE() << woken.message();
  }
  for (auto& th : getters) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(GetStats(client_.get()).objects_sealed, kObjects);
}

// Stats, ListObjects and GetObjectInfo while other threads churn: no crash,
// sane values; exact once they stop.
//
// Regression test (under TSan): ClientCore::FillInfo (ListObjects,
// GetObjectInfo) once copied an entry's name and metadata with plain loads
// while another client could free the entry and rewrite the block in
// WriteInfo: a data race. Fixed in 8cf5e97 (atomic copies both ways).
TEST_F(ThreadsTest, InspectionDuringChurn) {
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 2; ++t) {
    workers.emplace_back([&, t] {
      for (uint64_t i = 0; !stop.load(); ++i) {
        const ObjectId id = MakeId(0x1250 + t, i);
        MutableBuffer mb;
        // Appended piecewise: GCC 12 warns falsely (-Wrestrict) on "w" + ...
        std::string name = std::to_string(t);
        name.insert(0, 1, 'w');
        name += '-';
        name += std::to_string(i);
        if (!client_->BuildObject(id, static_cast<int64_t>(i % 9000), &mb, name,
                                  {{"k", "v"}}).ok() ||
            !mb.Seal().ok() || !client_->Delete(id).ok()) {
          errors.fetch_add(1);
          return;
        }
      }
    });
  }
  for (int i = 0; i < 300 / kScale; ++i) {
    StoreStats st;
    GLINT_ASSERT_OK(client_->Stats(&st));
    EXPECT_LE(st.largest_free_block, st.capacity);
    std::vector<ObjectInfo> list;
    GLINT_ASSERT_OK(client_->ListObjects(&list));
    for (const ObjectInfo& info : list) {
      EXPECT_LE(info.size, 9000);
      EXPECT_EQ(info.name[0], 'w');
    }
  }
  stop.store(true);
  for (auto& th : workers) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// Each thread keeps one idle log record of one client between operations
// (ClientCore::AcquireRecord). Short-lived threads give theirs back when
// they exit, a thread may alternate between clients, and a client
// destroyed and connected again in the same thread starts afresh.
TEST_F(ThreadsTest, PerThreadLogRecordsComeAndGo) {
  Failures fail;
  auto cycle = [&](Client* c, const ObjectId& id) {
    MutableBuffer mb;
    Status s = c->BuildObject(id, 64, &mb);
    if (!s.ok()) return fail.Add("build: " + s.ToString());
    s = mb.Seal();
    if (!s.ok()) return fail.Add("seal: " + s.ToString());
    Buffer b;
    s = c->GetObject(id, &b, 0);
    if (!s.ok()) return fail.Add("get: " + s.ToString());
    b.Release();
    s = c->Delete(id);
    if (!s.ok()) return fail.Add("delete: " + s.ToString());
  };
  // Many more short-lived threads than a client has records, 8 at a time.
  for (int round = 0; round < 25; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, round, t] {
        for (int i = 0; i < 4; ++i) cycle(client_.get(), MakeId(0x7ec0 + round * 8 + t, i));
      });
    }
    for (auto& th : threads) th.join();
  }
  // One thread, two clients, alternately.
  std::unique_ptr<Client> other;
  ASSERT_TRUE(Connect(&other));
  for (int i = 0; i < 100; ++i) {
    cycle(i % 2 ? other.get() : client_.get(), MakeId(0x7ec1, i));
  }
  // The second client goes while this thread may hold one of its records;
  // a new one in its place works.
  other.reset();
  ASSERT_TRUE(Connect(&other));
  for (int i = 0; i < 100; ++i) cycle(other.get(), MakeId(0x7ec2, i));
  std::thread late([&] { for (int i = 0; i < 10; ++i) cycle(other.get(), MakeId(0x7ec3, i)); });
  late.join();
  other.reset();
  EXPECT_EQ(fail.count.load(), 0);
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// Found in review: each thread whose thread_local destructor, running
// after glint's thread-exit hook, made an operation kept that record for
// good (up to 14 of a client's 30); and a thread that destroyed a Client
// kept the dying client's record and never cached one again.
struct LateOp {
  Client* client = nullptr;
  ObjectId id;
  ~LateOp() {
    if (client == nullptr) return;
    MutableBuffer mb;
    if (client->BuildObject(id, 8, &mb).ok() && mb.Seal().ok()) (void)client->Delete(id);
  }
};
thread_local LateOp t_late_op;

TEST_F(ThreadsTest, LogRecordsComeBackFromExitingThreadsAndDestroyedClients) {
  auto cycle = [](Client* c, const ObjectId& id) {
    MutableBuffer mb;
    GLINT_ASSERT_OK(c->BuildObject(id, 8, &mb));
    GLINT_ASSERT_OK(mb.Seal());
    GLINT_ASSERT_OK(c->Delete(id));
  };
  for (int i = 0; i < 20; ++i) {
    std::thread t([&, i] {
      t_late_op.client = client_.get();  // built before the exit hook
      t_late_op.id = MakeId(0x1a7e, 1000 + i);
      cycle(client_.get(), MakeId(0x1a7e, i));
    });
    t.join();
  }
  EXPECT_EQ(client_->idle_log_records(), 30) << "records kept by threads that exited";

  std::unique_ptr<Client> a, b;
  ASSERT_TRUE(Connect(&a));
  ASSERT_TRUE(Connect(&b));
  std::thread t([&] {
    cycle(a.get(), MakeId(0x1a7f, 1));
    a.reset();  // this thread's cache must be free for the next client
    cycle(b.get(), MakeId(0x1a7f, 2));
    EXPECT_EQ(b->idle_log_records(), 29) << "the thread no longer caches a record";
  });
  t.join();
  EXPECT_EQ(b->idle_log_records(), 30);
}

}  // namespace
}  // namespace glint::testing
