// Copyright (c) glint authors.
//
// glint_compare: glint side by side with the Lightning design (a global
// lock), a Plasma-style socket store and Redis, and the floor of the
// machine. bench/compare runs it (with a redis-server it starts) and turns
// its output into the table of docs/BENCHMARKS.md. One line per result:
//
//   R <workload> <system> <param> <median> <p99>
//
//   floor_timer   floor  0     two back-to-back clock reads (included in
//                              every per-operation time below), ns
//   floor_line    floor  0     cross-core cache-line round trip, ns
//   floor_futex   floor  0     futex wake-up round trip, ns
//   memcpy        floor  size  one memcpy of `size` bytes into warm shared
//                              memory, ns
//   memcpy_cold   floor  size  the same into memory no cache holds, ns
//   put           sys    size  create + write + seal, ns (one process)
//   get           sys    size  get + read every byte + release, ns
//   put_recycled  sys    size  create + write + seal of an object whose
//                              pages the previous one just freed (each is
//                              deleted after its put), ns
//   handoff_spin  sys    size  ping-pong round trip between two processes
//                              through the store, ns (waiters spin first)
//                              (system glint-poll: glint whose waiters
//                              poll GetObject(timeout 0), a diagnostic)
//   handoff_sleep sys    size  the same with waiters asleep on the futex
//                              (the pause the other side took is removed)
//   cycle         sys    n     full cycles (create, write, seal, get, read,
//                              release, delete) per second from n client
//                              processes: median and minimum of the reps
//
// Every client runs in a forked child process pinned to a CPU; the socket
// store's server is pinned to the last CPU (bench/compare pins redis-server
// there too), so with one client, client and server are on different cores.
//
// Usage: glint_compare [--quick] [--redis SOCKET] [--only WORKLOAD,...]
//                      [--systems SYSTEM,...] [--sizes BYTES,...]

#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "bench/compare_stores.h"
#include "bench/compare_util.h"
#include "bench/sock_store.h"
#include "glint/glint.h"

namespace glint::bench {
namespace {

constexpr uint64_t kSizes[] = {64, 4096, 64 << 10, 1 << 20, 16 << 20};
constexpr uint64_t kMaxSize = 16 << 20;
constexpr uint64_t kCapacity = uint64_t{1} << 30;   // each store's heap
constexpr uint64_t kLiveBudget = uint64_t{256} << 20;  // alive at once
constexpr int64_t kSleepPauseNs = 60 * 1000;  // > glint's 20 µs spin

struct Options {
  bool quick = false;
  std::string redis;
  std::string only;     // comma-separated workloads; empty: all
  std::string systems;  // comma-separated systems; empty: all
  std::string sizes;    // comma-separated sizes in bytes; empty: all
  static bool In(const std::string& list, const std::string& w) {
    return list.empty() || ("," + list + ",").find("," + w + ",") !=
                               std::string::npos;
  }
  bool Wants(const char* w) const { return In(only, w); }
  bool WantsSize(uint64_t size) const { return In(sizes, std::to_string(size)); }
  uint64_t Scale(uint64_t n) const {
    return quick ? std::max<uint64_t>(10, n / 10) : n;
  }
};

struct System {
  std::string name;
  bool fast;    // operations cost ns (glint, global-lock), not µs
  bool sleeps;  // has waiters that sleep (hand-off with sleeping waiters)
  std::function<std::unique_ptr<StoreClient>()> connect;
};

// 16-byte ids: a stream (unique per measurement) and a counter.
struct IdGen {
  uint64_t stream;
  void Make(uint64_t n, uint8_t* out) const {
    std::memcpy(out, &stream, 8);
    std::memcpy(out + 8, &n, 8);
  }
};
uint64_t NewStream() {
  static uint64_t seq = 0;
  return (uint64_t(getpid()) << 32) | ++seq;
}

std::vector<uint8_t> Payload() {
  std::vector<uint8_t> v(kMaxSize);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(i * 131 + 7);
  return v;
}

uint64_t ItersBySize(uint64_t size, const uint64_t (&n)[5]) {
  for (int i = 0; i < 5; ++i) {
    if (kSizes[i] == size) return n[i];
  }
  return 10;
}

// ------------------------------------------------------------ the floor

struct alignas(64) PingLine {
  std::atomic<uint64_t> v{0};
};

void FloorCacheLine(const Options& o) {
  auto* line = new (SharedAnon(4096)) PingLine;
  const uint64_t batches = o.Scale(2000), per = 64;
  auto* out = static_cast<double*>(SharedAnon(batches * sizeof(double)));
  const uint64_t total = (batches + 10) * per;
  const pid_t b = ForkChild(1, [&] {
    for (uint64_t i = 0; i < total; ++i) {
      while (line->v.load(std::memory_order_acquire) != 2 * i + 1) CpuRelax();
      line->v.store(2 * i + 2, std::memory_order_release);
    }
    return 0;
  });
  const pid_t a = ForkChild(0, [&] {
    uint64_t i = 0;
    for (uint64_t k = 0; k < batches + 10; ++k) {
      const int64_t t0 = NowNs();
      for (uint64_t j = 0; j < per; ++j, ++i) {
        line->v.store(2 * i + 1, std::memory_order_release);
        while (line->v.load(std::memory_order_acquire) != 2 * i + 2) CpuRelax();
      }
      if (k >= 10) out[k - 10] = double(NowNs() - t0) / double(per);
    }
    return 0;
  });
  const bool ok = WaitChild(a, "floor_line") & WaitChild(b, "floor_line");
  if (ok) ReportSamples("floor_line", "floor", 0, {out, out + batches});
}

long Futex(std::atomic<uint32_t>* w, int op, uint32_t val) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), op, val, nullptr,
                 nullptr, 0);
}

void FloorFutex(const Options& o) {
  auto* w = new (SharedAnon(4096)) std::atomic<uint32_t>(0);
  const uint32_t n = static_cast<uint32_t>(o.Scale(5000)), warm = 50;
  auto* out = static_cast<double*>(SharedAnon(n * sizeof(double)));
  auto wait_for = [w](uint32_t want) {
    uint32_t v;
    while ((v = w->load(std::memory_order_acquire)) != want) {
      Futex(w, FUTEX_WAIT, v);
    }
  };
  const pid_t b = ForkChild(1, [&] {
    for (uint32_t i = 0; i < n + warm; ++i) {
      wait_for(2 * i + 1);
      w->store(2 * i + 2, std::memory_order_release);
      Futex(w, FUTEX_WAKE, 1);
    }
    return 0;
  });
  const pid_t a = ForkChild(0, [&] {
    for (uint32_t i = 0; i < n + warm; ++i) {
      const int64_t t0 = NowNs();
      w->store(2 * i + 1, std::memory_order_release);
      Futex(w, FUTEX_WAKE, 1);
      wait_for(2 * i + 2);
      if (i >= warm) out[i - warm] = double(NowNs() - t0);
    }
    return 0;
  });
  const bool ok = WaitChild(a, "floor_futex") & WaitChild(b, "floor_futex");
  if (ok) ReportSamples("floor_futex", "floor", 0, {out, out + n});
}

// What the clock read around every timed operation costs (two reads).
void FloorTimer(const Options& o) {
  const pid_t a = ForkChild(0, [&] {
    std::vector<double> v;
    for (uint64_t i = 0; i < o.Scale(100000); ++i) {
      const int64_t t0 = NowNs();
      v.push_back(double(NowNs() - t0));
    }
    ReportSamples("floor_timer", "floor", 0, v);
    return 0;
  });
  WaitChild(a, "floor_timer");
}

void FloorMemcpy(const Options& o) {
  const pid_t a = ForkChild(0, [&] {
    auto* dst = static_cast<uint8_t*>(SharedAnon(kMaxSize));
    std::vector<uint8_t> src = Payload();
    for (uint64_t size : kSizes) {
      const uint64_t reps = std::max<uint64_t>(1, (uint64_t{4} << 20) / size);
      std::vector<double> v;
      for (uint64_t s = 0; s < o.Scale(50) + 3; ++s) {
        const int64_t t0 = NowNs();
        for (uint64_t r = 0; r < reps; ++r) {
          std::memcpy(dst, src.data(), size);
          asm volatile("" : : "r"(dst) : "memory");
        }
        if (s >= 3) v.push_back(double(NowNs() - t0) / double(reps));
      }
      ReportSamples("memcpy", "floor", size, v);
    }
    // Into memory not in any cache: successive destinations through
    // kLiveBudget bytes, as the latency workload's batches of new objects
    // write to heap memory that is cold.
    auto* cold = static_cast<uint8_t*>(SharedAnon(kLiveBudget));
    for (uint64_t size : kSizes) {
      const uint64_t slots = kLiveBudget / size;
      const uint64_t reps = std::max<uint64_t>(1, (uint64_t{4} << 20) / size);
      std::vector<double> v;
      uint64_t next = 0;
      for (uint64_t s = 0; s < o.Scale(50) + 3; ++s) {
        const int64_t t0 = NowNs();
        for (uint64_t r = 0; r < reps; ++r) {
          uint8_t* d = cold + (next++ % slots) * size;
          std::memcpy(d, src.data(), size);
          asm volatile("" : : "r"(d) : "memory");
        }
        if (s >= 3) v.push_back(double(NowNs() - t0) / double(reps));
      }
      ReportSamples("memcpy_cold", "floor", size, v);
    }
    munmap(cold, kLiveBudget);
    return 0;
  });
  WaitChild(a, "memcpy");
}

// ------------------------------------------------------------ workloads

// 1. create + write + seal, then get + read + release, one process.
void Latency(const System& sys, const Options& o) {
  const pid_t a = ForkChild(0, [&]() -> int {
    auto c = sys.connect();
    if (!c) return 1;
    const std::vector<uint8_t> src = Payload();
    const uint64_t fast_n[5] = {20000, 20000, 4000, 400, 40};
    const uint64_t slow_n[5] = {4000, 4000, 2000, 400, 40};
    std::vector<uint8_t> ids;
    uint64_t sum = 0, first = 0;
    for (uint64_t size : kSizes) {
      if (!o.WantsSize(size)) continue;
      const uint64_t n = o.Scale(ItersBySize(size, sys.fast ? fast_n : slow_n));
      const uint64_t warm = std::max<uint64_t>(2, n / 20);
      const uint64_t batch = std::clamp<uint64_t>(kLiveBudget / size, 1, n);
      ids.resize(batch * 16);
      IdGen g{NewStream()};
      std::vector<double> put, get;
      for (uint64_t done = 0; done < n + warm;) {
        const uint64_t b = std::min(batch, n + warm - done);
        for (uint64_t i = 0; i < b; ++i) g.Make(done + i, &ids[i * 16]);
        for (uint64_t i = 0; i < b; ++i) {
          const int64_t t0 = NowNs();
          if (!c->Put(&ids[i * 16], src.data(), size)) return 2;
          if (done + i >= warm) put.push_back(double(NowNs() - t0));
        }
        for (uint64_t i = 0; i < b; ++i) {
          const int64_t t0 = NowNs();
          if (!c->Get(&ids[i * 16], false, &sum, &first)) return 3;
          if (done + i >= warm) get.push_back(double(NowNs() - t0));
        }
        for (uint64_t i = 0; i < b; ++i) {
          if (!c->Delete(&ids[i * 16])) return 4;
        }
        done += b;
      }
      ReportSamples("put", sys.name, size, put);
      ReportSamples("get", sys.name, size, get);
    }
    return sum == 42 ? 5 : 0;  // keeps the reads
  });
  WaitChild(a, ("latency " + sys.name).c_str());
}

// 4'. Write bandwidth into a new object whose pages were just freed: create
// + write + seal, then delete, over and over at one size, so the allocator
// hands the same (cache-warm) pages out again.
void Recycled(const System& sys, const Options& o) {
  const pid_t a = ForkChild(0, [&]() -> int {
    auto c = sys.connect();
    if (!c) return 1;
    const std::vector<uint8_t> src = Payload();
    const uint64_t n_by_size[5] = {0, 0, 2000, 400, 40};
    uint8_t id[16];
    for (uint64_t size : kSizes) {
      if (size < (64 << 10) || !o.WantsSize(size)) continue;
      const uint64_t n = o.Scale(ItersBySize(size, n_by_size));
      const uint64_t warm = std::max<uint64_t>(2, n / 20);
      const IdGen g{NewStream()};
      std::vector<double> put;
      for (uint64_t i = 0; i < n + warm; ++i) {
        g.Make(i, id);
        const int64_t t0 = NowNs();
        if (!c->Put(id, src.data(), size)) return 2;
        if (i >= warm) put.push_back(double(NowNs() - t0));
        if (!c->Delete(id)) return 3;
      }
      ReportSamples("put_recycled", sys.name, size, put);
    }
    return 0;
  });
  WaitChild(a, ("recycled " + sys.name).c_str());
}

// 2. Ping-pong through the store: A builds k, B waits for it and answers
// with k'; A's round trip from before its create to after its get of k'.
void Handoff(const System& sys, const Options& o, bool sleep) {
  const char* name = sleep ? "handoff_sleep" : "handoff_spin";
  const uint64_t fast_n[5] = {5000, 5000, 2000, 200, 20};
  const uint64_t slow_n[5] = {2000, 2000, 1000, 200, 20};
  const uint64_t sleep_n[5] = {1000, 1000, 500, 100, 20};
  for (uint64_t size : kSizes) {
    if (!o.WantsSize(size)) continue;
    const uint64_t n = o.Scale(
        ItersBySize(size, sleep ? sleep_n : sys.fast ? fast_n : slow_n));
    const uint64_t warm = std::max<uint64_t>(2, n / 20);
    auto* out = static_cast<double*>(SharedAnon(n * sizeof(double)));
    const IdGen g{NewStream()};
    const pid_t b = ForkChild(1, [&]() -> int {
      auto c = sys.connect();
      if (!c) return 1;
      std::vector<uint8_t> src = Payload();
      uint8_t k[16], kr[16];
      uint64_t sum = 0, first = 0;
      for (uint64_t i = 0; i < n + warm; ++i) {
        g.Make(2 * i, k);
        if (!c->Get(k, true, &sum, &first)) return 2;
        uint64_t paused = 0;
        if (sleep) paused = uint64_t(BusyPause(kSleepPauseNs));
        std::memcpy(src.data(), &paused, 8);
        g.Make(2 * i + 1, kr);
        if (!c->PutForWaiter(kr, src.data(), size)) return 3;
        if (i > 0) {
          g.Make(2 * i - 1, kr);
          c->Delete(kr);
        }
      }
      return 0;
    });
    const pid_t a = ForkChild(0, [&]() -> int {
      auto c = sys.connect();
      if (!c) return 1;
      const std::vector<uint8_t> src = Payload();
      uint8_t k[16], kr[16];
      uint64_t sum = 0, paused = 0;
      for (uint64_t i = 0; i < n + warm; ++i) {
        g.Make(2 * i, k);
        g.Make(2 * i + 1, kr);
        if (sleep) BusyPause(kSleepPauseNs);  // B falls asleep meanwhile
        const int64_t t0 = NowNs();
        if (!c->PutForWaiter(k, src.data(), size)) return 2;
        if (!c->Get(kr, true, &sum, &paused)) return 3;
        const int64_t rt = NowNs() - t0 - (sleep ? int64_t(paused) : 0);
        if (i >= warm) out[i - warm] = double(rt);
        c->Delete(k);
      }
      g.Make(2 * (n + warm) - 1, kr);
      c->Delete(kr);
      return 0;
    });
    const bool ok = WaitChild(a, name) & WaitChild(b, name);
    if (!ok) {
      kill(a, SIGKILL);
      kill(b, SIGKILL);
      return;
    }
    ReportSamples(name, sys.name, size, {out, out + n});
    munmap(out, n * sizeof(double));
  }
}

// 3. Full cycles from `procs` processes at once, for a fixed window.
struct alignas(64) PerProc {
  uint64_t cycles;
  int64_t ns;
};
struct CycleControl {
  alignas(64) std::atomic<int> ready{0};
  alignas(64) std::atomic<int> go{0};
  alignas(64) std::atomic<int> stop{0};
  PerProc per[64];
};

bool CycleOnce(const System& sys, const Options& o, int procs, double* rate) {
  auto* ctl = new (SharedAnon(sizeof(CycleControl))) CycleControl;
  std::vector<pid_t> pids;
  for (int p = 0; p < procs; ++p) {
    pids.push_back(ForkChild(p, [&, p]() -> int {
      auto c = sys.connect();
      if (!c) return 1;
      const std::vector<uint8_t> src(64, 7);
      const IdGen g{NewStream()};
      uint8_t id[16];
      uint64_t sum = 0, first = 0, i = 0;
      auto cycle = [&] {
        g.Make(i++, id);
        return c->Put(id, src.data(), 64) && c->Get(id, false, &sum, &first) &&
               c->Delete(id);
      };
      for (int w = 0; w < (sys.fast ? 20000 : 300); ++w) {
        if (!cycle()) return 2;
      }
      ctl->ready.fetch_add(1);
      while (ctl->go.load() == 0) CpuRelax();
      const int64_t t0 = NowNs();
      uint64_t n = 0;
      for (;; ++n) {
        if ((n & 15) == 0 && ctl->stop.load(std::memory_order_relaxed)) break;
        if (!cycle()) return 3;
      }
      ctl->per[p].ns = NowNs() - t0;
      ctl->per[p].cycles = n;
      return 0;
    }));
  }
  const int64_t deadline = NowNs() + int64_t{60} * 1000000000;
  while (ctl->ready.load() < procs && NowNs() < deadline) usleep(1000);
  ctl->go.store(1);
  usleep(o.quick ? 100000 : 500000);
  ctl->stop.store(1);
  bool ok = true;
  for (pid_t p : pids) ok &= WaitChild(p, "cycle");
  *rate = 0;
  for (int p = 0; p < procs; ++p) {
    if (ctl->per[p].ns > 0) *rate += double(ctl->per[p].cycles) * 1e9 / double(ctl->per[p].ns);
  }
  munmap(ctl, sizeof(CycleControl));
  return ok;
}

void Cycles(const System& sys, const Options& o) {
  for (int procs : {1, 2, 4}) {
    std::vector<double> rates;
    for (int r = 0; r < (o.quick ? 1 : 3); ++r) {
      double rate;
      if (!CycleOnce(sys, o, procs, &rate)) return;
      rates.push_back(rate);
    }
    const double median = Quantile(&rates, 0.5);  // sorts rates
    Report("cycle", sys.name, uint64_t(procs), median, rates.front());
  }
}

// Waits until a SockClient can connect (the server process is starting).
bool WaitForSocketStore(const std::string& path) {
  for (int i = 0; i < 3000; ++i) {
    if (SockClient::Connect(path)) return true;
    usleep(10000);
  }
  return false;
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--redis" && i + 1 < argc) {
      o.redis = argv[++i];
    } else if (a == "--only" && i + 1 < argc) {
      o.only = argv[++i];
    } else if (a == "--systems" && i + 1 < argc) {
      o.systems = argv[++i];
    } else if (a == "--sizes" && i + 1 < argc) {
      o.sizes = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: glint_compare [--quick] [--redis SOCKET] "
                   "[--only floor,latency,recycled,handoff[_spin|_sleep],cycle] "
                   "[--systems glint,global-lock,socket,redis] "
                   "[--sizes 64,4096,...]\n");
      return 2;
    }
  }
  // A closed stdout (`| head`) must not kill us before the store is
  // stopped: the Monitor's destructor removes the socket and region file.
  signal(SIGPIPE, SIG_IGN);
  const std::string dir = "/tmp/glint-compare-" + std::to_string(getpid());
  StoreOptions so;
  so.socket_path = dir + "-glint";
  so.capacity = int64_t(kCapacity);
  std::unique_ptr<Monitor> monitor;
  Status st = Monitor::Start(so, &monitor);
  if (!st.ok()) {
    std::fprintf(stderr, "glint_compare: %s\n", st.ToString().c_str());
    return 1;
  }
  const std::string sock_path = dir + "-socket";
  const pid_t server = ForkChild(NumCpus() - 1, [&] {
    return RunSocketStore(sock_path, kCapacity);
  });
  if (!WaitForSocketStore(sock_path)) {
    std::fprintf(stderr, "glint_compare: the socket store did not start\n");
    kill(server, SIGKILL);
    return 1;
  }
  auto* lock = new (SharedAnon(4096)) SharedSpinLock;

  std::vector<System> systems;
  systems.push_back({"glint", true, true, [&]() -> std::unique_ptr<StoreClient> {
    std::unique_ptr<Client> c;
    if (!Client::Connect(so.socket_path, &c).ok()) return nullptr;
    return std::make_unique<GlintStoreClient>(std::move(c));
  }});
  systems.push_back({"global-lock", true, false,
                     [&]() -> std::unique_ptr<StoreClient> {
    std::unique_ptr<Client> c;
    if (!Client::Connect(so.socket_path, &c).ok()) return nullptr;
    return std::make_unique<LockedStoreClient>(std::move(c), lock);
  }});
  systems.push_back({"socket", false, true, [&]() -> std::unique_ptr<StoreClient> {
    auto c = SockClient::Connect(sock_path);
    if (!c) return nullptr;
    return std::make_unique<SocketStoreClient>(std::move(c));
  }});
  // A diagnostic, in the spinning hand-off only: glint with waiters that
  // poll GetObject(timeout 0) with one PAUSE in between.
  System glint_poll{"glint-poll", true, false,
                    [&]() -> std::unique_ptr<StoreClient> {
    std::unique_ptr<Client> c;
    if (!Client::Connect(so.socket_path, &c).ok()) return nullptr;
    return std::make_unique<GlintStoreClient>(std::move(c), true);
  }};
  if (!o.redis.empty()) {
    systems.push_back({"redis", false, true, [&] { return ConnectRedis(o.redis); }});
  }

  std::erase_if(systems,
                [&](const System& s) { return !Options::In(o.systems, s.name); });

  if (o.Wants("floor")) {
    FloorTimer(o);
    FloorCacheLine(o);
    FloorFutex(o);
    FloorMemcpy(o);
  }
  if (o.Wants("latency")) {
    for (const System& s : systems) Latency(s, o);
  }
  if (o.Wants("recycled")) {
    for (const System& s : systems) Recycled(s, o);
  }
  if (o.Wants("handoff") || o.Wants("handoff_spin")) {
    for (const System& s : systems) Handoff(s, o, false);
    if (Options::In(o.systems, glint_poll.name)) Handoff(glint_poll, o, false);
  }
  if (o.Wants("handoff") || o.Wants("handoff_sleep")) {
    for (const System& s : systems) {
      if (s.sleeps) Handoff(s, o, true);
    }
  }
  if (o.Wants("cycle")) {
    for (const System& s : systems) Cycles(s, o);
  }
  kill(server, SIGTERM);
  WaitChild(server, "socket store");
  return 0;
}

}  // namespace
}  // namespace glint::bench

#ifndef GLINT_COMPARE_REDIS
namespace glint::bench {
std::unique_ptr<StoreClient> ConnectRedis(const std::string&) {
  std::fprintf(stderr, "glint_compare: built without hiredis\n");
  return nullptr;
}
}  // namespace glint::bench
#endif

int main(int argc, char** argv) { return glint::bench::Main(argc, argv); }
