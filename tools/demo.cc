// Copyright (c) glint authors.
//
// glint demo: an embedded monitor on a temporary store, a producer process
// and a consumer process moving objects of 64 B, 4 KiB and 1 MiB through
// it. Every byte is checked. Prints median and p99 of create+seal, of
// get+release, and of the hand-off (seal in the producer to GetObject
// returning in the consumer), with throughput.

#include "tools/demo.h"

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "glint/glint.h"
#include "tools/cli_util.h"

namespace glint::tools {
namespace {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

ObjectId IdFor(uint32_t round, uint32_t i) {
  uint8_t b[16] = {'d', 'e', 'm', 'o'};
  std::memcpy(b + 4, &round, 4);
  std::memcpy(b + 8, &i, 4);
  return ObjectId::FromBinary(std::string_view(reinterpret_cast<char*>(b), 16));
}

// The payload is a function of (round, i, offset): the consumer recomputes it.
inline uint8_t ByteAt(uint32_t round, uint32_t i, uint64_t off) {
  return static_cast<uint8_t>((off * 131) ^ (i * 7) ^ (round * 29) ^ (off >> 8));
}

void Fill(uint8_t* p, uint64_t n, uint32_t round, uint32_t i) {
  for (uint64_t off = 0; off < n; ++off) p[off] = ByteAt(round, i, off);
}

bool Check(const uint8_t* p, uint64_t n, uint32_t round, uint32_t i) {
  for (uint64_t off = 0; off < n; ++off) {
    if (p[off] != ByteAt(round, i, off)) return false;
  }
  return true;
}

struct Round {
  uint64_t size;
  uint32_t count;
};

constexpr Round kRounds[] = {{64, 20000}, {4096, 20000}, {1 << 20, 400}};
constexpr uint32_t kMaxCount = 20000;
// The producer builds object i+1 only once the consumer has taken object i,
// so the hand-off is a latency (seal -> get returns) and not a queue.
constexpr uint32_t kWindow = 1;

// Shared between the three processes (an anonymous MAP_SHARED mapping).
struct Shared {
  std::atomic<uint32_t> consumed[3];
  std::atomic<uint32_t> failures;
  int64_t round_start_ns[3];
  int64_t round_end_ns[3];
  int64_t seal_start_ns[3][kMaxCount];  // written before Seal()
  int64_t create_seal_ns[3][kMaxCount];
  int64_t get_release_ns[3][kMaxCount];
  int64_t handoff_ns[3][kMaxCount];
  char error[256];
};

void Report(Shared* sh, const char* what) {
  if (sh->failures.fetch_add(1) == 0) {
    snprintf(sh->error, sizeof(sh->error), "%s", what);
  }
}

int Producer(const std::string& socket, Shared* sh) {
  std::unique_ptr<Client> c;
  Status s = Client::Connect(socket, &c);
  if (!s.ok()) {
    Report(sh, ("producer connect: " + s.ToString()).c_str());
    return 1;
  }
  for (uint32_t r = 0; r < 3; ++r) {
    sh->round_start_ns[r] = NowNs();
    for (uint32_t i = 0; i < kRounds[r].count; ++i) {
      for (uint32_t spins = 0;
           i >= sh->consumed[r].load(std::memory_order_acquire) + kWindow; ++spins) {
        if (sh->failures.load() != 0) return 1;
        if (spins > 1000) sched_yield();
      }
      MutableBuffer mb;
      const int64_t t0 = NowNs();
      s = c->BuildObject(IdFor(r, i), static_cast<int64_t>(kRounds[r].size), &mb);
      const int64_t built = NowNs();
      if (!s.ok()) {
        Report(sh, ("producer build: " + s.ToString()).c_str());
        return 1;
      }
      Fill(mb.mutable_data(), kRounds[r].size, r, i);
      sh->seal_start_ns[r][i] = NowNs();
      std::atomic_thread_fence(std::memory_order_release);
      s = mb.Seal();
      const int64_t t1 = NowNs();
      if (!s.ok()) {
        Report(sh, ("producer seal: " + s.ToString()).c_str());
        return 1;
      }
      // Time spent writing the payload is not create+seal's.
      sh->create_seal_ns[r][i] = (built - t0) + (t1 - sh->seal_start_ns[r][i]);
    }
  }
  return 0;
}

int Consumer(const std::string& socket, Shared* sh) {
  std::unique_ptr<Client> c;
  Status s = Client::Connect(socket, &c);
  if (!s.ok()) {
    Report(sh, ("consumer connect: " + s.ToString()).c_str());
    return 1;
  }
  for (uint32_t r = 0; r < 3; ++r) {
    for (uint32_t i = 0; i < kRounds[r].count; ++i) {
      Buffer b;
      s = c->GetObject(IdFor(r, i), &b, 10000);
      const int64_t got = NowNs();
      if (!s.ok()) {
        Report(sh, ("consumer get: " + s.ToString()).c_str());
        return 1;
      }
      std::atomic_thread_fence(std::memory_order_acquire);
      sh->handoff_ns[r][i] = got - sh->seal_start_ns[r][i];
      if (static_cast<uint64_t>(b.size()) != kRounds[r].size ||
          !Check(b.data(), kRounds[r].size, r, i)) {
        Report(sh, "consumer: an object's bytes differ from what was written");
        return 1;
      }
      b.Release();
      // get+release of a sealed object, timed alone.
      const int64_t t0 = NowNs();
      s = c->GetObject(IdFor(r, i), &b, 0);
      b.Release();
      sh->get_release_ns[r][i] = NowNs() - t0;
      if (!s.ok()) {
        Report(sh, ("consumer second get: " + s.ToString()).c_str());
        return 1;
      }
      s = c->Delete(IdFor(r, i));
      if (!s.ok()) {
        Report(sh, ("consumer delete: " + s.ToString()).c_str());
        return 1;
      }
      sh->consumed[r].store(i + 1, std::memory_order_release);
    }
    sh->round_end_ns[r] = NowNs();
  }
  return 0;
}

struct Pct {
  double p50, p99;
};

Pct Percentiles(const int64_t* v, uint32_t n) {
  std::vector<int64_t> s(v, v + n);
  std::sort(s.begin(), s.end());
  return {s[n / 2] / 1000.0, s[std::min<uint32_t>(n - 1, n * 99 / 100)] / 1000.0};
}

pid_t Spawn(int (*fn)(const std::string&, Shared*), const std::string& socket,
            Shared* sh) {
  const pid_t p = fork();  // -1: no child
  if (p == 0) _exit(fn(socket, sh));
  return p;
}

}  // namespace

int RunDemo() {
  const std::string socket = "/tmp/glint-demo-" + std::to_string(getpid()) + ".sock";
  StoreOptions opt;
  opt.socket_path = socket;
  opt.capacity = int64_t{256} << 20;
  std::unique_ptr<Monitor> monitor;
  Status s = Monitor::Start(opt, &monitor);
  if (!s.ok()) {
    fprintf(stderr, "glint demo: cannot start a store: %s\n", s.ToString().c_str());
    return 1;
  }
  printf("glint demo: store %s (region %s, %s)\n", socket.c_str(),
         monitor->region_path().c_str(), FormatSize(opt.capacity).c_str());
  printf("producer and consumer are two processes; every byte is checked\n\n");

  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    perror("glint demo: mmap");
    return 1;
  }
  Shared* sh = new (mem) Shared();
  // An inherited SIGCHLD of SIG_IGN would reap the children before
  // waitpid() could see how they ended.
  signal(SIGCHLD, SIG_DFL);
  const pid_t consumer = Spawn(Consumer, socket, sh);
  if (consumer < 0) {
    perror("glint demo: fork");
    return 1;
  }
  const pid_t producer = Spawn(Producer, socket, sh);
  if (producer < 0) {
    perror("glint demo: fork");
    kill(consumer, SIGKILL);
    waitpid(consumer, nullptr, 0);
    return 1;
  }
  // Whichever ends first: if it failed (or died), the other is waiting for
  // it (the producer for the consumer's progress, the consumer for the next
  // object) and is stopped too.
  int st_p = 0, st_c = 0;
  std::string died;
  for (int left = 2; left > 0;) {
    int st = 0;
    const pid_t w = waitpid(-1, &st, 0);
    if (w < 0) {
      if (errno == EINTR) continue;
      perror("glint demo: waitpid");
      return 1;
    }
    if (w != producer && w != consumer) continue;
    --left;
    const char* who = w == producer ? "the producer" : "the consumer";
    (w == producer ? st_p : st_c) = st;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) continue;
    if (died.empty()) {
      died = std::string(who) +
             (WIFSIGNALED(st) ? " was killed by signal " + std::to_string(WTERMSIG(st))
                              : " failed");
    }
    if (left > 0) kill(w == producer ? consumer : producer, SIGKILL);
  }
  if (sh->failures.load() != 0 || !died.empty()) {
    fprintf(stderr, "glint demo: FAILED: %s\n",
            sh->failures.load() != 0 ? sh->error : died.c_str());
    return 1;
  }

  printf("%-8s %8s  %-19s  %-19s  %-19s  %s\n", "size", "objects",
         "create+seal p50/p99", "get+release p50/p99", "hand-off p50/p99",
         "throughput");
  for (uint32_t r = 0; r < 3; ++r) {
    const uint32_t n = kRounds[r].count;
    const Pct cs = Percentiles(sh->create_seal_ns[r], n);
    const Pct gr = Percentiles(sh->get_release_ns[r], n);
    const Pct ho = Percentiles(sh->handoff_ns[r], n);
    const double secs = (sh->round_end_ns[r] - sh->round_start_ns[r]) / 1e9;
    const double per_s = n / secs;
    const double mb_s = per_s * static_cast<double>(kRounds[r].size) / 1e6;
    char a[32], b[32], c[32];
    snprintf(a, sizeof(a), "%.2f / %.2f us", cs.p50, cs.p99);
    snprintf(b, sizeof(b), "%.2f / %.2f us", gr.p50, gr.p99);
    snprintf(c, sizeof(c), "%.2f / %.2f us", ho.p50, ho.p99);
    printf("%-8s %8u  %-19s  %-19s  %-19s  %.0f objects/s, %.0f MB/s\n",
           FormatSize(static_cast<int64_t>(kRounds[r].size)).c_str(), n, a, b, c,
           per_s, mb_s);
  }
  StoreStats stats;
  std::unique_ptr<Client> check;
  s = Client::Connect(socket, &check);
  if (s.ok()) s = check->Stats(&stats);
  if (!s.ok() || stats.objects_sealed != 0 || stats.bytes_in_use != 0) {
    fprintf(stderr, "glint demo: FAILED: the store is not empty at the end (%s)\n",
            s.ToString().c_str());
    return 1;
  }
  printf("\nall %u objects arrived intact; the store is empty again\n",
         kRounds[0].count + kRounds[1].count + kRounds[2].count);
  munmap(mem, sizeof(Shared));
  return 0;
}

}  // namespace glint::tools
