// Copyright (c) glint authors.
//
// Crash recovery latency: a client process holding `refs` references and
// building one object that another thread waits on (asleep on the futex) is
// killed with SIGKILL. Measured from the kill(2) call to
//   - woken:  the waiter's GetObject returning kAborted, and
//   - noticed: the monitor starting the recovery (the kernel's exit path and
//     the death notification),
//   - freed:  the dead client's slot free again (all its memory given back),
//   - recovery: freed minus noticed, the monitor's own work,
// with an embedded monitor (the same code glintd runs). Reports the median
// and p99 over the iterations as counters (microseconds); the benchmark's
// own time is the "freed" latency.
//
//   build/bench/glint_recovery_bench   (args: references held, heap MiB)

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/object_table.h"
#include "core/region.h"
#include "glint/glint.h"

namespace {

using glint::Buffer;
using glint::Client;
using glint::MutableBuffer;
using glint::ObjectId;
using Clock = std::chrono::steady_clock;

ObjectId IdOf(uint64_t tag, uint64_t n) {
  ObjectId id;
  std::memcpy(id.mutable_data(), &tag, 8);
  std::memcpy(id.mutable_data() + 8, &n, 8);
  return id;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

void BM_Recovery(benchmark::State& state) {
  const int refs = static_cast<int>(state.range(0));
  const int64_t capacity_mib = state.range(1);
  glint::StoreOptions o;
  o.socket_path = "/tmp/glint-recovery-bench-" + std::to_string(getpid());
  // The dying client's kernel exit path unmaps its populated mapping of
  // the whole region: its size is the second argument (MiB of heap; the
  // object table is sized for 4,096 objects).
  o.capacity = capacity_mib << 20;
  o.max_objects = 4096;
  std::unique_ptr<glint::Monitor> monitor;
  if (!glint::Monitor::Start(o, &monitor).ok()) {
    state.SkipWithError("Monitor::Start failed");
    return;
  }
  std::unique_ptr<Client> c;
  if (!Client::Connect(o.socket_path, &c).ok()) {
    state.SkipWithError("Connect failed");
    return;
  }
  MutableBuffer mb;
  for (int i = 0; i < refs; ++i) {
    if (!c->BuildObject(IdOf(1, i), 64, &mb).ok() || !mb.Seal().ok()) {
      state.SkipWithError("setup failed");
      return;
    }
  }
  const glint::core::Region region(const_cast<uint8_t*>(c->region_base()),
                                   static_cast<uint64_t>(c->region_size()));
  std::vector<double> woken_us, freed_us, noticed_us, recovery_us;
  uint64_t round = 0;
  for (auto _ : state) {
    const ObjectId pending = IdOf(2, round++);
    int ready[2];
    if (pipe(ready) != 0) std::abort();
    const pid_t pid = fork();
    if (pid == 0) {
      std::unique_ptr<Client> d;
      if (!Client::Connect(o.socket_path, &d).ok()) _exit(3);
      std::vector<Buffer> held(static_cast<size_t>(refs));
      for (int i = 0; i < refs; ++i) {
        if (!d->GetObject(IdOf(1, i), &held[static_cast<size_t>(i)], 0).ok()) _exit(4);
      }
      MutableBuffer m;
      if (!d->BuildObject(pending, 64, &m).ok()) _exit(5);
      const uint32_t slot = static_cast<uint32_t>(d->client_slot());
      (void)!write(ready[1], &slot, sizeof(slot));
      pause();
      _exit(0);
    }
    uint32_t slot = 0;
    if (read(ready[0], &slot, sizeof(slot)) != sizeof(slot)) std::abort();
    close(ready[0]);
    close(ready[1]);
    // A waiter asleep on the object being built.
    Clock::time_point woke;
    std::thread waiter([&] {
      Buffer b;
      (void)c->GetObject(pending, &b, 10000);
      woke = Clock::now();
    });
    // Until the waiter sleeps in the object's wait bucket.
    glint::core::WaitBucket* wb = region.wait_bucket(glint::core::IdHash(pending.data()));
    while (wb->waiters.load(std::memory_order_acquire) == 0) std::this_thread::yield();
    const Clock::time_point t0 = Clock::now();
    kill(pid, SIGKILL);
    Clock::time_point started = t0;
    for (uint32_t st;
         (st = region.client(slot)->state.load(std::memory_order_acquire)) !=
         glint::core::kClientFree;) {
      if (st == glint::core::kClientRecovering && started == t0) started = Clock::now();
      std::this_thread::yield();
    }
    const Clock::time_point freed = Clock::now();
    if (started == t0) started = freed;
    noticed_us.push_back(std::chrono::duration<double, std::micro>(started - t0).count());
    recovery_us.push_back(std::chrono::duration<double, std::micro>(freed - started).count());
    waiter.join();
    waitpid(pid, nullptr, 0);
    const double f = std::chrono::duration<double, std::micro>(freed - t0).count();
    freed_us.push_back(f);
    woken_us.push_back(std::chrono::duration<double, std::micro>(woke - t0).count());
    state.SetIterationTime(f / 1e6);
  }
  state.counters["woken_p50_us"] = Percentile(woken_us, 0.5);
  state.counters["woken_p99_us"] = Percentile(woken_us, 0.99);
  state.counters["noticed_p50_us"] = Percentile(noticed_us, 0.5);
  state.counters["recovery_p50_us"] = Percentile(recovery_us, 0.5);
  state.counters["recovery_p99_us"] = Percentile(recovery_us, 0.99);
  state.counters["freed_p50_us"] = Percentile(freed_us, 0.5);
  state.counters["freed_p99_us"] = Percentile(freed_us, 0.99);
}
BENCHMARK(BM_Recovery)->Args({0, 8})->Args({1000, 8})->Args({1000, 64})->Args({1000, 512})
    ->Iterations(200)->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
