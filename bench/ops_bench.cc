// Copyright (c) glint authors.
//
// The benchmark suite of glint's fast paths (Google Benchmark). What each
// benchmark measures, how to run it and what it measured on our machine is in
// docs/BENCHMARKS.md. The goals come from issue 2, section "Speed".
//
// One embedded Monitor serves every benchmark of a run: a 1 GiB store
// (prefaulted) on a socket path unique to this process
// (/tmp/glint-bench-<pid>), started the first time a benchmark needs it and
// stopped at the end of main(). Each benchmark uses fresh ids (a counter in
// the low 8 bytes, a stream number unique to the benchmark run in the high
// 8 bytes) and deletes everything it created before it returns.
//
// Keeping the store from filling during create benchmarks: objects are
// created in batches (KeepRunningBatch) of ids generated in advance; after
// each batch the timer is paused, the batch deleted and new ids generated,
// and the timer resumed. A PauseTiming/ResumeTiming pair costs about 1.3 µs
// here (it reads the process CPU clock, a syscall; most of it falls outside
// the timed region anyway); BM_PauseResume measures it, and spread over a
// batch of 4096 operations it adds at most ~0.3 ns to a ~100 ns operation.
// The batch is smaller only for large payloads (at most a quarter of the heap
// alive at once), where one operation costs tens of µs anyway; the _b256
// variants show what a smaller batch (a working set that fits in L2) changes.
//
// Harness overhead is visible in its own benchmarks: BM_EmptyLoop (the
// benchmark loop itself), BM_PauseResume (one pause/resume pair),
// BM_IdGen (making an id inline, as BM_FullCycle does) and BM_TscOverhead (an
// empty rdtsc bracket, as the latency benchmarks use); BM_Atomic* give the
// price of one locked instruction for scale.
//
// Benchmarks whose name has a suffix after the operation (_b256, _SameId,
// _SmallTable, _OwnClass, _Disjoint) are diagnostics: each changes one thing
// to show where the time of the main benchmark goes.

#include <benchmark/benchmark.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "glint/glint.h"

namespace {

using glint::Buffer;
using glint::Client;
using glint::MutableBuffer;
using glint::ObjectId;
using glint::Status;

constexpr int64_t kCapacity = int64_t{1} << 30;  // 1 GiB data heap
constexpr int64_t kMaxBatch = 4096;

// ------------------------------------------------------------------ store

struct BenchStore {
  std::string path;
  std::unique_ptr<glint::Monitor> monitor;
  std::unique_ptr<Client> client;  // destroyed before the monitor
};

// kMain: the 1 GiB store every benchmark uses (default table: 65,536
// objects, 4,096 buckets, 28 MiB of entries). kSmallTable: a 64 MiB store
// whose table holds 4,096 objects (256 buckets, 1.8 MiB of entries), for the
// diagnostic BM_FullCycle_SmallTable. kSecond: another store like kMain, for
// the diagnostic BM_FullCycleProcesses_SeparateStores.
enum StoreKind { kMain = 0, kSmallTable = 1, kSecond = 2, kNumStores = 3 };

std::unique_ptr<BenchStore> g_stores[kNumStores];
std::string g_store_error;

BenchStore* TheStore(StoreKind kind = kMain) {
  if (g_stores[kind] != nullptr) return g_stores[kind].get();
  if (!g_store_error.empty()) return nullptr;
  auto s = std::make_unique<BenchStore>();
  const bool small = kind == kSmallTable;
  s->path = "/tmp/glint-bench-" + std::to_string(getpid()) +
            (small ? "-small" : kind == kSecond ? "-second" : "");
  glint::StoreOptions o;
  o.socket_path = s->path;
  o.capacity = small ? int64_t{64} << 20 : kCapacity;
  o.max_objects = small ? 4096 : 0;
  o.prefault = true;
  Status st = glint::Monitor::Start(o, &s->monitor);
  if (st.ok()) st = Client::Connect(s->path, &s->client);
  if (!st.ok()) {
    g_store_error = "cannot start the benchmark store: " + st.ToString();
    return nullptr;
  }
  g_stores[kind] = std::move(s);
  return g_stores[kind].get();
}

// Stops every store; complains (to stderr) if a benchmark left anything in
// one, since that would skew the benchmarks that ran after it.
int StopStores() {
  int leaks = 0;
  for (auto& s : g_stores) {
    if (s == nullptr) continue;
    glint::StoreStats st;
    if (s->client->Stats(&st).ok() &&
        (st.objects_sealed != 0 || st.objects_building != 0 ||
         st.bytes_in_use != 0)) {
      std::fprintf(stderr,
                   "glint_bench: store %s not empty at exit: %lld sealed, "
                   "%lld building, %lld bytes in use\n",
                   s->path.c_str(), static_cast<long long>(st.objects_sealed),
                   static_cast<long long>(st.objects_building),
                   static_cast<long long>(st.bytes_in_use));
      ++leaks;
    }
    s.reset();
  }
  return leaks;
}

#define GLINT_STORE_OR_SKIP(state, store)           \
  BenchStore* store = TheStore();                   \
  if (store == nullptr) {                           \
    (state).SkipWithError(g_store_error.c_str());   \
    return;                                         \
  }

// ------------------------------------------------------------------ ids

// A stream number unique to one benchmark run in this process: no two runs
// (or two processes) ever build the same id.
uint64_t NewStream() {
  static std::atomic<uint32_t> n{0};
  return (uint64_t{static_cast<uint32_t>(getpid())} << 32) |
         n.fetch_add(1, std::memory_order_relaxed);
}

class IdGen {
 public:
  explicit IdGen(uint64_t stream) : hi_(stream) {}
  ObjectId Next() {
    ObjectId id;
    const uint64_t lo = next_++;
    std::memcpy(id.mutable_data(), &lo, 8);
    std::memcpy(id.mutable_data() + 8, &hi_, 8);
    return id;
  }

 private:
  uint64_t hi_;
  uint64_t next_ = 0;
};

// Objects alive at once in a batched benchmark: at most a quarter of the heap
// and at most kMaxBatch.
int64_t BatchFor(int64_t size) {
  const int64_t block = size <= 16 * 1024 ? std::max<int64_t>(64, (size + 63) / 64 * 64)
                                          : (size + 4095) / 4096 * 4096;
  return std::clamp<int64_t>(kCapacity / 4 / block, 1, kMaxBatch);
}

void Fill(IdGen& gen, std::vector<ObjectId>* ids) {
  for (auto& id : *ids) id = gen.Next();
}

// Deletes ids[0, n), ignoring ids that are not there (cleanup after errors).
Status DeleteIds(Client& c, const std::vector<ObjectId>& ids, size_t n,
                 bool must_exist) {
  for (size_t i = 0; i < n && i < ids.size(); ++i) {
    Status s = c.Delete(ids[i]);
    if (!s.ok() && must_exist) return s;
  }
  return Status::OK();
}

Status CreateSealed(Client& c, const ObjectId& id, int64_t size, uint8_t fill) {
  MutableBuffer mb;
  Status s = c.BuildObject(id, size, &mb);
  if (!s.ok()) return s;
  std::memset(mb.mutable_data(), fill, static_cast<size_t>(size));
  return mb.Seal();
}

// ------------------------------------------------------------------ time

inline uint64_t TscBegin() {
  _mm_lfence();
  const uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}

inline uint64_t TscEnd() {
  unsigned aux;
  const uint64_t t = __rdtscp(&aux);
  _mm_lfence();
  return t;
}

int64_t NowNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

int64_t ProcessCpuNanos() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

int64_t InvoluntarySwitches() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nivcsw;
}

// TSC ticks per nanosecond, measured once against CLOCK_MONOTONIC (100 ms).
double TscPerNs() {
  static const double v = [] {
    const int64_t n0 = NowNanos();
    const uint64_t t0 = TscBegin();
    while (NowNanos() - n0 < 100 * 1000 * 1000) {
    }
    const int64_t n1 = NowNanos();
    const uint64_t t1 = TscEnd();
    return static_cast<double>(t1 - t0) / static_cast<double>(n1 - n0);
  }();
  return v;
}

// A latency histogram in TSC ticks: exact below kExact ticks (~6.7 µs at
// 2.45 GHz), power-of-two buckets above. Constant memory, ~1 ns per sample.
class TickHistogram {
 public:
  static constexpr uint64_t kExact = 16384;
  TickHistogram() : exact_(kExact, 0) {}
  void Add(uint64_t ticks) {
    ++n_;
    if (ticks < kExact) {
      ++exact_[ticks];
    } else {
      ++over_[63 - std::countl_zero(ticks)];
    }
  }
  uint64_t count() const { return n_; }
  // The smallest tick value t such that at least p of the samples are <= t
  // (for samples beyond kExact: the lower bound of their power-of-two bucket).
  uint64_t Percentile(double p) const {
    if (n_ == 0) return 0;
    const uint64_t want = std::max<uint64_t>(1, static_cast<uint64_t>(p * static_cast<double>(n_) + 0.5));
    uint64_t seen = 0;
    for (uint64_t t = 0; t < kExact; ++t) {
      seen += exact_[t];
      if (seen >= want) return t;
    }
    for (int b = 0; b < 64; ++b) {
      seen += over_[b];
      if (seen >= want) return uint64_t{1} << b;
    }
    return ~uint64_t{0};
  }

 private:
  std::vector<uint64_t> exact_;
  std::array<uint64_t, 64> over_{};
  uint64_t n_ = 0;
};

void ReportPercentiles(benchmark::State& state, const TickHistogram& h) {
  const double tpn = TscPerNs();
  auto ns = [&](double p) {
    return benchmark::Counter(static_cast<double>(h.Percentile(p)) / tpn);
  };
  state.counters["p50_ns"] = ns(0.50);
  state.counters["p90_ns"] = ns(0.90);
  state.counters["p99_ns"] = ns(0.99);
  state.counters["p999_ns"] = ns(0.999);
}

// ------------------------------------------------------------------ harness

// The benchmark loop itself.
void BM_EmptyLoop(benchmark::State& state) {
  for (auto _ : state) benchmark::ClobberMemory();
}
BENCHMARK(BM_EmptyLoop);

// One PauseTiming + ResumeTiming pair, timed by hand (the library cannot time
// its own pause). Divide by the batch (4096 at 64 B) for the cost per op.
void BM_PauseResume(benchmark::State& state) {
  for (auto _ : state) {
    const int64_t t0 = NowNanos();
    state.PauseTiming();
    state.ResumeTiming();
    state.SetIterationTime(static_cast<double>(NowNanos() - t0) * 1e-9);
  }
}
BENCHMARK(BM_PauseResume)->UseManualTime();

// Making an id inline (BM_FullCycle does it every cycle).
void BM_IdGen(benchmark::State& state) {
  IdGen gen(NewStream());
  for (auto _ : state) {
    ObjectId id = gen.Next();
    benchmark::DoNotOptimize(id);
  }
}
BENCHMARK(BM_IdGen);

// An empty rdtsc bracket as the latency benchmarks use it: subtract its p50
// from theirs for the cost of the operation alone.
void BM_TscOverhead(benchmark::State& state) {
  TickHistogram h;
  for (auto _ : state) {
    const uint64_t t0 = TscBegin();
    const uint64_t t1 = TscEnd();
    h.Add(t1 - t0);
  }
  ReportPercentiles(state, h);
}
BENCHMARK(BM_TscOverhead);

// The price of one locked read-modify-write (uncontended, cache line in L1):
// glint's fast paths are built of these (see docs/BENCHMARKS.md for how many
// each operation executes), so they set a floor under each operation.
void BM_AtomicFetchAdd(benchmark::State& state) {
  alignas(64) std::atomic<uint64_t> word{0};
  for (auto _ : state) word.fetch_add(1, std::memory_order_relaxed);
  benchmark::DoNotOptimize(word.load());
}
BENCHMARK(BM_AtomicFetchAdd);

void BM_AtomicCas(benchmark::State& state) {
  alignas(64) std::atomic<uint64_t> word{0};
  uint64_t v = 0;
  for (auto _ : state) {
    while (!word.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) {
    }
  }
  benchmark::DoNotOptimize(word.load());
}
BENCHMARK(BM_AtomicCas);

// Plain register arithmetic: two chains of three dependent adds/xors per
// iteration, 64 iterations per benchmark iteration, nothing in memory. It
// gauges how much of the core this VM gets right now: its time moves with
// a busy hyperthread sibling or the clock, which BM_AtomicCas (latency
// bound) barely feels. bench/goals.py prints it next to each round.
void BM_CpuGauge(benchmark::State& state) {
  uint64_t a = 1, b = 2, c = 3, d = 4, e = 5, f = 6;
  for (auto _ : state) {
    for (uint64_t i = 0; i < 64; ++i) {
      a += i; b ^= a; c += b;
      d ^= i; e += d; f ^= e;
      asm volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d), "+r"(e), "+r"(f));
    }
  }
  benchmark::DoNotOptimize(a + b + c + d + e + f);
}
BENCHMARK(BM_CpuGauge);

// Writing the payload alone (memset into one object being built, in the
// region): the part of BM_CreateWriteSeal that is not glint's.
void BM_WriteOnly(benchmark::State& state) {
  GLINT_STORE_OR_SKIP(state, store);
  const int64_t size = state.range(0);
  IdGen gen(NewStream());
  MutableBuffer mb;
  Status s = store->client->BuildObject(gen.Next(), size, &mb);
  if (!s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  uint8_t fill = 0;
  for (auto _ : state) {
    std::memset(mb.mutable_data(), ++fill, static_cast<size_t>(size));
    benchmark::ClobberMemory();
  }
  mb.Abort();
  state.SetBytesProcessed(state.iterations() * size);
}
BENCHMARK(BM_WriteOnly)->Arg(64)->Arg(4096)->Arg(65536)->Arg(1 << 20);

// ------------------------------------------------------------------ create

// BuildObject + memset of the payload + Seal. Batches of BatchFor(size) ids
// generated in advance; the batch is deleted with the timer paused.
void CreateWriteSeal(benchmark::State& state, int64_t max_batch) {
  GLINT_STORE_OR_SKIP(state, store);
  Client& c = *store->client;
  const int64_t size = state.range(0);
  const int64_t batch = std::min(max_batch, BatchFor(size));
  IdGen gen(NewStream());
  std::vector<ObjectId> ids(static_cast<size_t>(batch));
  Fill(gen, &ids);
  MutableBuffer mb;
  uint8_t fill = 0;
  size_t built = 0;  // of the current batch, for cleanup after an error
  while (state.KeepRunningBatch(batch)) {
    Status s;
    for (built = 0; built < ids.size(); ++built) {
      s = c.BuildObject(ids[built], size, &mb);
      if (!s.ok()) break;
      std::memset(mb.mutable_data(), ++fill, static_cast<size_t>(size));
      s = mb.Seal();
      if (!s.ok()) break;
    }
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      continue;  // KeepRunningBatch now answers false
    }
    state.PauseTiming();
    s = DeleteIds(c, ids, ids.size(), /*must_exist=*/true);
    built = 0;
    Fill(gen, &ids);
    state.ResumeTiming();
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  DeleteIds(c, ids, built + 1, /*must_exist=*/false);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * size);
  state.counters["batch"] = static_cast<double>(batch);
}
void BM_CreateWriteSeal(benchmark::State& state) {
  CreateWriteSeal(state, kMaxBatch);
}
BENCHMARK(BM_CreateWriteSeal)->Arg(64)->Arg(4096)->Arg(65536)->Arg(1 << 20);
// With 256 objects per batch instead of 4096: the batch's table entries and
// payloads stay in L1/L2, where 4096 of them (~1 MiB with the id list and
// bucket headers) do not. The pause costs ~16x more per op here.
void BM_CreateWriteSeal_b256(benchmark::State& state) {
  CreateWriteSeal(state, 256);
}
BENCHMARK(BM_CreateWriteSeal_b256)->Arg(64);

// The same, with every operation bracketed by rdtsc: per-op percentiles.
// The time per iteration includes the bracket (see BM_TscOverhead).
void BM_CreateWriteSealLatency(benchmark::State& state) {
  GLINT_STORE_OR_SKIP(state, store);
  Client& c = *store->client;
  const int64_t size = state.range(0);
  const int64_t batch = BatchFor(size);
  IdGen gen(NewStream());
  std::vector<ObjectId> ids(static_cast<size_t>(batch));
  Fill(gen, &ids);
  MutableBuffer mb;
  TickHistogram h;
  uint8_t fill = 0;
  size_t built = 0;
  while (state.KeepRunningBatch(batch)) {
    Status s;
    for (built = 0; built < ids.size(); ++built) {
      const uint64_t t0 = TscBegin();
      s = c.BuildObject(ids[built], size, &mb);
      if (!s.ok()) break;
      std::memset(mb.mutable_data(), ++fill, static_cast<size_t>(size));
      s = mb.Seal();
      const uint64_t t1 = TscEnd();
      if (!s.ok()) break;
      h.Add(t1 - t0);
    }
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      continue;
    }
    state.PauseTiming();
    s = DeleteIds(c, ids, ids.size(), /*must_exist=*/true);
    built = 0;
    Fill(gen, &ids);
    state.ResumeTiming();
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  DeleteIds(c, ids, built + 1, /*must_exist=*/false);
  ReportPercentiles(state, h);
}
BENCHMARK(BM_CreateWriteSealLatency)->Arg(64);

// ------------------------------------------------------------------ get

// GetObject + read one byte + Release of one existing sealed object (hot in
// cache: the best case).
void BM_GetRelease(benchmark::State& state) {
  GLINT_STORE_OR_SKIP(state, store);
  Client& c = *store->client;
  const int64_t size = state.range(0);
  IdGen gen(NewStream());
  const ObjectId id = gen.Next();
  Status s = CreateSealed(c, id, size, 7);
  if (!s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  Buffer b;
  for (auto _ : state) {
    s = c.GetObject(id, &b);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    uint8_t v = *b.data();
    benchmark::DoNotOptimize(v);
    b.Release();
  }
  b.Release();
  c.Delete(id);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetRelease)->Arg(64);

// The same over 16,384 objects visited in a random order: table entries,
// bucket headers and payloads mostly miss the L1/L2 caches.
void BM_GetReleaseMany(benchmark::State& state) {
  GLINT_STORE_OR_SKIP(state, store);
  Client& c = *store->client;
  const int64_t size = state.range(0);
  constexpr size_t kObjects = 16384;
  IdGen gen(NewStream());
  std::vector<ObjectId> ids(kObjects);
  Fill(gen, &ids);
  for (size_t i = 0; i < ids.size(); ++i) {
    Status s = CreateSealed(c, ids[i], size, static_cast<uint8_t>(i));
    if (!s.ok()) {
      DeleteIds(c, ids, i, false);
      state.SkipWithError(s.ToString().c_str());
      return;
    }
  }
  std::shuffle(ids.begin(), ids.end(), std::mt19937_64(42));
  Buffer b;
  size_t i = 0;
  for (auto _ : state) {
    Status s = c.GetObject(ids[i], &b);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    uint8_t v = *b.data();
    benchmark::DoNotOptimize(v);
    b.Release();
    if (++i == kObjects) i = 0;
  }
  b.Release();
  DeleteIds(c, ids, ids.size(), false);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetReleaseMany)->Arg(64);

// Gets of 64 objects at a time out of 16,384 (shuffled: the table is not in
// cache), payload's first byte read, all released; per object. Arg 1: one
// GetObjects call per 64; arg 0: 64 GetObject calls, for comparison.
void BM_GetObjects(benchmark::State& state) {
  GLINT_STORE_OR_SKIP(state, store);
  Client& c = *store->client;
  constexpr size_t kObjects = 16384;
  constexpr size_t kBatch = 64;
  IdGen gen(NewStream());
  std::vector<ObjectId> ids(kObjects);
  Fill(gen, &ids);
  for (size_t i = 0; i < ids.size(); ++i) {
    Status s = CreateSealed(c, ids[i], 64, static_cast<uint8_t>(i));
    if (!s.ok()) {
      DeleteIds(c, ids, i, false);
      state.SkipWithError(s.ToString().c_str());
      return;
    }
  }
  std::shuffle(ids.begin(), ids.end(), std::mt19937_64(42));
  const bool batched = state.range(0) == 1;
  std::vector<std::vector<ObjectId>> batches;
  for (size_t i = 0; i < kObjects; i += kBatch) {
    batches.emplace_back(ids.begin() + i, ids.begin() + i + kBatch);
  }
  std::vector<Buffer> bufs(kBatch);
  size_t next = 0;
  for (auto _ : state) {
    const std::vector<ObjectId>& batch = batches[next];
    Status s;
    if (batched) {
      s = c.GetObjects(batch, &bufs);
    } else {
      for (size_t k = 0; k < kBatch && s.ok(); ++k) s = c.GetObject(batch[k], &bufs[k]);
    }
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    for (Buffer& b : bufs) {
      uint8_t v = *b.data();
      benchmark::DoNotOptimize(v);
      b.Release();
    }
    if (++next == batches.size()) next = 0;
  }
  for (Buffer& b : bufs) b.Release();
  DeleteIds(c, ids, ids.size(), false);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBatch));
}
BENCHMARK(BM_GetObjects)->Arg(0)->Arg(1);

void BM_GetReleaseLatency(benchmark::State& state) {
  GLINT_STORE_OR_SKIP(state, store);
  Client& c = *store->client;
  const int64_t size = state.range(0);
  IdGen gen(NewStream());
  const ObjectId id = gen.Next();
  Status s = CreateSealed(c, id, size, 7);
  if (!s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  Buffer b;
  TickHistogram h;
  for (auto _ : state) {
    const uint64_t t0 = TscBegin();
    s = c.GetObject(id, &b);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    uint8_t v = *b.data();
    benchmark::DoNotOptimize(v);
    b.Release();
    const uint64_t t1 = TscEnd();
    h.Add(t1 - t0);
  }
  b.Release();
  c.Delete(id);
  ReportPercentiles(state, h);
}
BENCHMARK(BM_GetReleaseLatency)->Arg(64);

// ------------------------------------------------------------------ delete

// Delete of sealed objects nobody holds (so the memory is freed at once).
// Each batch is created with the timer paused.
void DeleteBench(benchmark::State& state, int64_t max_batch) {
  GLINT_STORE_OR_SKIP(state, store);
  Client& c = *store->client;
  const int64_t size = state.range(0);
  const int64_t batch = std::min(max_batch, BatchFor(size));
  IdGen gen(NewStream());
  std::vector<ObjectId> ids(static_cast<size_t>(batch));
  size_t left = 0;  // ids[left, batch) still exist, for cleanup after errors
  while (state.KeepRunningBatch(batch)) {
    state.PauseTiming();
    Fill(gen, &ids);
    Status s;
    for (size_t i = 0; i < ids.size() && s.ok(); ++i) {
      s = CreateSealed(c, ids[i], size, static_cast<uint8_t>(i));
      if (!s.ok()) DeleteIds(c, ids, i, false);
    }
    state.ResumeTiming();
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      continue;
    }
    for (left = 0; left < ids.size(); ++left) {
      s = c.Delete(ids[left]);
      if (!s.ok()) break;
    }
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  for (; left < ids.size(); ++left) c.Delete(ids[left]);
  state.SetItemsProcessed(state.iterations());
  state.counters["batch"] = static_cast<double>(batch);
}
void BM_Delete(benchmark::State& state) { DeleteBench(state, kMaxBatch); }
BENCHMARK(BM_Delete)->Arg(64);
void BM_Delete_b256(benchmark::State& state) { DeleteBench(state, 256); }
BENCHMARK(BM_Delete_b256)->Arg(64);

// ------------------------------------------------------------------ cycle

// One full cycle on a fresh id: create, write, seal, get, read, release,
// delete. Returns false (with *s set) on the first error.
inline bool FullCycle(Client& c, const ObjectId& id, int64_t size,
                      MutableBuffer& mb, Buffer& b, Status* s) {
  *s = c.BuildObject(id, size, &mb);
  if (!s->ok()) return false;
  std::memset(mb.mutable_data(), static_cast<uint8_t>(size), static_cast<size_t>(size));
  *s = mb.Seal();
  if (!s->ok()) return false;
  *s = c.GetObject(id, &b);
  if (!s->ok()) return false;
  uint8_t v = *b.data();
  benchmark::DoNotOptimize(v);
  b.Release();
  *s = c.Delete(id);
  return s->ok();
}

void FullCycleBench(benchmark::State& state, StoreKind kind, bool same_id) {
  BenchStore* store = TheStore(kind);
  if (store == nullptr) {
    state.SkipWithError(g_store_error.c_str());
    return;
  }
  Client& c = *store->client;
  const int64_t size = state.range(0);
  IdGen gen(NewStream());
  MutableBuffer mb;
  Buffer b;
  Status s;
  if (same_id) {
    const ObjectId id = gen.Next();
    for (auto _ : state) {
      s = c.BuildObject(id, size, &mb);
      if (s.ok()) {
        std::memset(mb.mutable_data(), 1, static_cast<size_t>(size));
        s = mb.Seal();
      }
      if (s.ok()) s = c.GetObject(id, &b);
      if (s.ok()) {
        uint8_t v = *b.data();
        benchmark::DoNotOptimize(v);
        b.Release();
        s = c.Delete(id);
      }
      if (!s.ok()) {
        state.SkipWithError(s.ToString().c_str());
        break;
      }
    }
  } else {
    for (auto _ : state) {
      if (!FullCycle(c, gen.Next(), size, mb, b, &s)) {
        state.SkipWithError(s.ToString().c_str());
        break;
      }
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_FullCycle(benchmark::State& state) {
  FullCycleBench(state, kMain, false);
}
BENCHMARK(BM_FullCycle)->Arg(64);

// Diagnostics for where a cycle's time goes. _SameId: one id over and over
// (same bucket, same entry, same local reference word: everything hot).
// _SmallTable: fresh ids in a store whose table has 256 buckets instead of
// 4,096, so the entries a cycle lands on span 1.8 MiB (450 pages) instead of
// 28 MiB (one 4 KiB page per bucket touched): the difference is the cost of
// cache and TLB misses on a big table.
void BM_FullCycle_SameId(benchmark::State& state) {
  FullCycleBench(state, kMain, true);
}
BENCHMARK(BM_FullCycle_SameId)->Arg(64);
void BM_FullCycle_SmallTable(benchmark::State& state) {
  FullCycleBench(state, kSmallTable, false);
}
BENCHMARK(BM_FullCycle_SmallTable)->Arg(64);

// ------------------------------------------------------------ processes
//
// N child processes (fork) each connect their own Client and run full cycles
// on their own ids. Each child warms up, reports ready and spins (yielding)
// until the parent says go; the parent then sleeps for the window and says
// stop. Children check `stop` every 64 cycles (~10 µs), time their own run
// with CLOCK_MONOTONIC and report their cycle count through a shared
// anonymous mapping. The aggregate rate is the sum of the children's rates.
// Anything unexpected (a child that fails, dies, or does not answer within
// 30 s) makes the benchmark report an error; stuck children are SIGKILLed.
// Children leave with _exit(): no atexit handler of the parent (the Monitor)
// runs in them.

constexpr int kMaxProcs = 8;
constexpr int64_t kWindowNanos = 1000 * 1000 * 1000;  // 1 s
constexpr int64_t kAnswerNanos = int64_t{30} * 1000 * 1000 * 1000;

enum ChildState : int { kStarting = 0, kReady = 1, kDone = 2, kFailed = -1 };

struct alignas(64) ChildReport {
  std::atomic<int> state{kStarting};
  uint64_t cycles = 0;
  int64_t t0 = 0;      // CLOCK_MONOTONIC at the start and end of the run
  int64_t t1 = 0;
  int64_t cpu_ns = 0;  // CPU time the child used during the run
  int64_t preempted = 0;  // involuntary context switches during the run
  char error[256] = {0};
};

struct ProcShared {
  alignas(64) std::atomic<int> go{0};
  alignas(64) std::atomic<int> stop{0};
  ChildReport child[kMaxProcs];
};

// How the children of BM_FullCycleProcesses* share the store.
enum class Sharing {
  kShared,    // same size class, fresh random ids: what users do
  kOwnClass,  // child i builds 64 * (i + 1) bytes: no span in common
  kDisjoint,  // own class, and child i only uses ids whose two buckets have
              // parity i: no bucket header or table entry in common either
  kSeparate,  // child i uses store i % 2: two stores, nothing in common but
              // the machine (its ceiling for any store)
};

// Where an id lives in the table: the same mapping as core::MakeKey (bucket
// 0 = low bits of the hash, bucket 1 = bits 32.. of the hash, moved to the
// neighbour bucket when both coincide), through the public ObjectId::Hash().
// If the store's mapping changes, kDisjoint degrades to kOwnClass; it stays
// correct.
bool InPartition(const ObjectId& id, int part) {
  const uint64_t h = id.Hash();
  const uint64_t b0 = h & 0xffffffffu, b1 = h >> 32;
  return (b0 & 1) == static_cast<uint64_t>(part) &&
         (b1 & 1) == static_cast<uint64_t>(part) && (b0 & 0xfff) != (b1 & 0xfff);
}

// Ids for one child: fresh ones, or (kDisjoint) a ring of 4096 ids of the
// child's partition made in advance, reused once each cycle deleted them.
class ChildIds {
 public:
  ChildIds(Sharing sharing, int part) : gen_(NewStream()) {
    if (sharing != Sharing::kDisjoint) return;
    ring_.reserve(kRing);
    while (ring_.size() < kRing) {
      const ObjectId id = gen_.Next();
      if (InPartition(id, part)) ring_.push_back(id);
    }
  }
  ObjectId Next() {
    if (ring_.empty()) return gen_.Next();
    return ring_[next_++ & (kRing - 1)];
  }

 private:
  static constexpr size_t kRing = 4096;
  IdGen gen_;
  std::vector<ObjectId> ring_;
  size_t next_ = 0;
};

int ChildMain(const std::string& path, ProcShared* sh, int idx, int64_t size,
              Sharing sharing) {
  ChildReport& me = sh->child[idx];
  auto fail = [&](const Status& s) {
    std::snprintf(me.error, sizeof(me.error), "child %d: %s", idx,
                  s.ToString().c_str());
    me.state.store(kFailed, std::memory_order_release);
    return 1;
  };
  std::unique_ptr<Client> c;
  Status s = Client::Connect(path, &c);
  if (!s.ok()) return fail(s);
  {
    ChildIds ids(sharing, idx);
    MutableBuffer mb;
    Buffer b;
    for (int i = 0; i < 20000; ++i) {  // warm-up: spans, caches, branch history
      if (!FullCycle(*c, ids.Next(), size, mb, b, &s)) return fail(s);
    }
    me.state.store(kReady, std::memory_order_release);
    while (sh->go.load(std::memory_order_acquire) == 0) sched_yield();
    uint64_t n = 0;
    const int64_t sw0 = InvoluntarySwitches();
    const int64_t c0 = ProcessCpuNanos();
    const int64_t t0 = NowNanos();
    while (sh->stop.load(std::memory_order_relaxed) == 0) {
      for (int k = 0; k < 64; ++k) {
        if (!FullCycle(*c, ids.Next(), size, mb, b, &s)) return fail(s);
      }
      n += 64;
    }
    const int64_t t1 = NowNanos();
    me.cpu_ns = ProcessCpuNanos() - c0;
    me.preempted = InvoluntarySwitches() - sw0;
    me.cycles = n;
    me.t0 = t0;
    me.t1 = t1;
  }
  c.reset();
  me.state.store(kDone, std::memory_order_release);
  return 0;
}

struct ProcResult {
  double agg_rate = 0;       // sum of the children's cycles/s (wall clock)
  double min_rate = 0;       // the slowest child's cycles/s
  double agg_cpu_rate = 0;   // sum of the children's cycles per CPU-second
  double window_s = 0;       // first start to last end
  uint64_t cycles = 0;
  int64_t preempted = 0;     // involuntary context switches, all children
};

// Reaps every child, killing those that have not exited by `deadline`.
bool ReapAll(std::vector<pid_t>* pids, int64_t deadline, std::string* err) {
  bool ok = true;
  while (!pids->empty()) {
    for (size_t i = 0; i < pids->size();) {
      int st = 0;
      const pid_t r = waitpid((*pids)[i], &st, WNOHANG);
      if (r == 0) {
        ++i;
        continue;
      }
      if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        if (err->empty()) {
          *err = "child " + std::to_string((*pids)[i]) + " ended badly (status " +
                 std::to_string(st) + ")";
        }
        ok = false;
      }
      pids->erase(pids->begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (pids->empty()) break;
    if (NowNanos() > deadline) {
      for (pid_t p : *pids) {
        kill(p, SIGKILL);
        waitpid(p, nullptr, 0);
      }
      if (err->empty()) *err = "children did not exit in time (killed)";
      pids->clear();
      return false;
    }
    usleep(1000);
  }
  return ok;
}

// Child i connects to paths[i % paths.size()].
bool RunProcesses(const std::vector<std::string>& paths, int nprocs, int64_t size,
                  Sharing sharing, ProcResult* out, std::string* err) {
  void* mem = mmap(nullptr, sizeof(ProcShared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    *err = std::string("mmap: ") + std::strerror(errno);
    return false;
  }
  auto* sh = new (mem) ProcShared();
  std::vector<pid_t> pids;
  bool ok = true;
  std::fflush(nullptr);
  for (int i = 0; i < nprocs; ++i) {
    const pid_t pid = fork();
    if (pid < 0) {
      *err = std::string("fork: ") + std::strerror(errno);
      ok = false;
      break;
    }
    if (pid == 0) {
      const bool own_class = sharing == Sharing::kOwnClass || sharing == Sharing::kDisjoint;
      const int64_t sz = own_class ? size * (i + 1) : size;
      _exit(ChildMain(paths[static_cast<size_t>(i) % paths.size()], sh, i, sz,
                      sharing));
    }
    pids.push_back(pid);
  }
  // Wait until every child is ready (or one failed, or died).
  const int64_t ready_deadline = NowNanos() + kAnswerNanos;
  while (ok) {
    int ready = 0;
    for (int i = 0; i < nprocs; ++i) {
      const int st = sh->child[i].state.load(std::memory_order_acquire);
      if (st == kFailed) {
        *err = sh->child[i].error;
        ok = false;
      }
      ready += st == kReady;
    }
    if (!ok || ready == nprocs) break;
    for (pid_t p : pids) {
      int st;
      if (waitpid(p, &st, WNOHANG) == p) {
        *err = "child " + std::to_string(p) + " died before the start";
        ok = false;
      }
    }
    if (NowNanos() > ready_deadline) {
      *err = "children not ready within 30 s";
      ok = false;
    }
    if (ok) usleep(1000);
  }
  if (ok) {
    sh->go.store(1, std::memory_order_release);
    const timespec window{kWindowNanos / 1000000000, kWindowNanos % 1000000000};
    nanosleep(&window, nullptr);
  }
  sh->stop.store(1, std::memory_order_release);
  sh->go.store(1, std::memory_order_release);  // release anyone still waiting
  if (!ReapAll(&pids, NowNanos() + kAnswerNanos, err)) ok = false;
  if (ok) {
    int64_t first = INT64_MAX, last = 0;
    out->min_rate = 1e300;
    for (int i = 0; i < nprocs; ++i) {
      const ChildReport& r = sh->child[i];
      if (r.state.load(std::memory_order_acquire) != kDone || r.t1 <= r.t0) {
        *err = r.error[0] ? r.error : "a child reported nothing";
        ok = false;
        break;
      }
      const double rate = static_cast<double>(r.cycles) * 1e9 /
                          static_cast<double>(r.t1 - r.t0);
      out->agg_rate += rate;
      out->agg_cpu_rate += r.cpu_ns > 0 ? static_cast<double>(r.cycles) * 1e9 /
                                               static_cast<double>(r.cpu_ns)
                                         : 0;
      out->preempted += r.preempted;
      out->min_rate = std::min(out->min_rate, rate);
      out->cycles += r.cycles;
      first = std::min(first, r.t0);
      last = std::max(last, r.t1);
    }
    out->window_s = static_cast<double>(last - first) * 1e-9;
  }
  sh->~ProcShared();
  munmap(mem, sizeof(ProcShared));
  return ok;
}

// Arg: number of client processes. One iteration = one 1 s window; the time
// column is that window; read the counters:
//   cycles_per_s      aggregate cycles per wall-clock second (the goal's unit)
//   per_proc_per_s    the same per process; slowest_per_s: the slowest one
//   cycles_per_cpu_s  sum over children of cycles per CPU-second they used:
//                     what the machine does when nothing else runs (robust
//                     to other processes stealing a core; still includes
//                     contention between the children)
//   preempted         involuntary context switches of the children during
//                     the window: > a few means something else ran, and the
//                     wall-clock counters of that run understate glint.
void FullCycleProcesses(benchmark::State& state, Sharing sharing) {
  GLINT_STORE_OR_SKIP(state, store);
  const int nprocs = static_cast<int>(state.range(0));
  if (nprocs < 1 || nprocs > kMaxProcs) {
    state.SkipWithError("1 to 8 processes");
    return;
  }
  std::vector<std::string> paths{store->path};
  if (sharing == Sharing::kSeparate) {
    BenchStore* second = TheStore(kSecond);
    if (second == nullptr) {
      state.SkipWithError(g_store_error.c_str());
      return;
    }
    paths.push_back(second->path);
  }
  ProcResult r;
  for (auto _ : state) {
    std::string err;
    if (!RunProcesses(paths, nprocs, 64, sharing, &r, &err)) {
      state.SkipWithError(err.c_str());
      break;
    }
    state.SetIterationTime(r.window_s);
  }
  state.counters["procs"] = nprocs;
  state.counters["cycles_per_s"] = r.agg_rate;
  state.counters["per_proc_per_s"] = r.agg_rate / nprocs;
  state.counters["slowest_per_s"] = r.min_rate;
  state.counters["ns_per_cycle"] = r.agg_rate > 0 ? 1e9 * nprocs / r.agg_rate : 0;
  state.counters["cycles_per_cpu_s"] = r.agg_cpu_rate;
  state.counters["preempted"] = static_cast<double>(r.preempted);
}
// Every multi-process benchmark: one iteration, timed by its 1 s window.
void OneWindow(benchmark::internal::Benchmark* b) {
  b->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
}

void BM_FullCycleProcesses(benchmark::State& state) {
  FullCycleProcesses(state, Sharing::kShared);
}
BENCHMARK(BM_FullCycleProcesses)
    ->Arg(1)
    ->Arg(2)
    ->Apply(OneWindow);

// Diagnostics for what two processes share. _OwnClass: child i builds
// 64 * (i + 1) bytes, so the children never allocate from the same span.
// _Disjoint: own class, and each child's ids live in buckets of its own
// parity, so the children write no cache line in common at all (no span, no
// bucket header, no table entry). Compare cycles_per_cpu_s with
// BM_FullCycleProcesses/2 and with twice BM_FullCycleProcesses/1.
void BM_FullCycleProcesses_OwnClass(benchmark::State& state) {
  FullCycleProcesses(state, Sharing::kOwnClass);
}
BENCHMARK(BM_FullCycleProcesses_OwnClass)
    ->Arg(2)
    ->Apply(OneWindow);
void BM_FullCycleProcesses_Disjoint(benchmark::State& state) {
  FullCycleProcesses(state, Sharing::kDisjoint);
}
BENCHMARK(BM_FullCycleProcesses_Disjoint)
    ->Arg(1)
    ->Arg(2)
    ->Apply(OneWindow);
// The machine's ceiling: child i uses store i % 2, so two children share no
// store, no region, no monitor. What /2 here gets over /1 of
// BM_FullCycleProcesses is the most any store could get from two processes
// on this machine in that minute (two cores that are not two whole cores on
// a busy VM); compare BM_FullCycleProcesses/2 with it.
void BM_FullCycleProcesses_SeparateStores(benchmark::State& state) {
  FullCycleProcesses(state, Sharing::kSeparate);
}
BENCHMARK(BM_FullCycleProcesses_SeparateStores)
    ->Arg(2)
    ->Apply(OneWindow);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return StopStores() == 0 ? 0 : 1;
}
