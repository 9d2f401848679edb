// Copyright (c) glint authors.
//
// A fixed-iteration driver of glint's fast paths for
//   valgrind --tool=callgrind ./glint_callgrind_driver [n]
// (no Google Benchmark, so nothing but glint runs in the measured phases).
// Each measured phase is its own noinline function running exactly n
// operations at 64 B; callgrind_annotate --inclusive=yes then gives the
// instructions of each phase, and Ir / n is the cost of one operation:
//
//   PhaseCreateWriteSeal  n x (BuildObject + memset 64 B + Seal)
//   PhaseGetRelease       n x (GetObject + read 1 byte + Release), one object
//   PhaseDelete           n x Delete of the objects PhaseCreateWriteSeal made
//   PhaseFullCycle        n x (create, write, seal, get, release, delete)
//
// A warm-up of the same work runs first (spans made, caches and branch
// history warm), so the phases see the steady state the benchmarks see.
// Default n = 20000 (the store's table holds 65,536 objects).

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "glint/glint.h"

namespace {

using glint::Buffer;
using glint::Client;
using glint::MutableBuffer;
using glint::ObjectId;
using glint::Status;

constexpr int64_t kSize = 64;

uint64_t g_next = 0;
uint64_t g_stream = 0;
volatile uint8_t g_sink;

ObjectId NextId() {
  ObjectId id;
  const uint64_t lo = g_next++;
  std::memcpy(id.mutable_data(), &lo, 8);
  std::memcpy(id.mutable_data() + 8, &g_stream, 8);
  return id;
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

[[gnu::noinline]] void PhaseCreateWriteSeal(Client& c,
                                            const std::vector<ObjectId>& ids) {
  MutableBuffer mb;
  for (const ObjectId& id : ids) {
    Check(c.BuildObject(id, kSize, &mb), "BuildObject");
    std::memset(mb.mutable_data(), 1, kSize);
    Check(mb.Seal(), "Seal");
  }
}

[[gnu::noinline]] void PhaseGetRelease(Client& c, const ObjectId& id, int64_t n) {
  Buffer b;
  for (int64_t i = 0; i < n; ++i) {
    Check(c.GetObject(id, &b), "GetObject");
    g_sink = *b.data();
    b.Release();
  }
}

[[gnu::noinline]] void PhaseDelete(Client& c, const std::vector<ObjectId>& ids) {
  for (const ObjectId& id : ids) Check(c.Delete(id), "Delete");
}

[[gnu::noinline]] void PhaseFullCycle(Client& c, int64_t n) {
  MutableBuffer mb;
  Buffer b;
  for (int64_t i = 0; i < n; ++i) {
    const ObjectId id = NextId();
    Check(c.BuildObject(id, kSize, &mb), "BuildObject");
    std::memset(mb.mutable_data(), 2, kSize);
    Check(mb.Seal(), "Seal");
    Check(c.GetObject(id, &b), "GetObject");
    g_sink = *b.data();
    b.Release();
    Check(c.Delete(id), "Delete");
  }
}

// The same work under other names, so that it is not counted in the phases.
[[gnu::noinline]] void Warmup(Client& c, int64_t n) {
  std::vector<ObjectId> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = NextId();
  MutableBuffer mb;
  for (const ObjectId& id : ids) {
    Check(c.BuildObject(id, kSize, &mb), "BuildObject");
    std::memset(mb.mutable_data(), 1, kSize);
    Check(mb.Seal(), "Seal");
  }
  Buffer b;
  for (const ObjectId& id : ids) {
    Check(c.GetObject(id, &b), "GetObject");
    g_sink = *b.data();
    b.Release();
  }
  for (const ObjectId& id : ids) Check(c.Delete(id), "Delete");
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 20000;
  if (n <= 0 || n > 60000) {
    std::fprintf(stderr, "usage: %s [iterations, 1..60000]\n", argv[0]);
    return 2;
  }
  g_stream = static_cast<uint64_t>(getpid());
  glint::StoreOptions o;
  o.socket_path = "/tmp/glint-callgrind-" + std::to_string(getpid());
  o.capacity = int64_t{256} << 20;
  // GLINT_STORE=PATH: use a running glintd instead of an embedded monitor
  // (valgrind does not emulate io_uring, which the monitor's loop uses).
  std::unique_ptr<glint::Monitor> monitor;
  if (const char* store = std::getenv("GLINT_STORE")) {
    o.socket_path = store;
  } else {
    Check(glint::Monitor::Start(o, &monitor), "Monitor::Start");
  }
  std::unique_ptr<Client> c;
  Check(Client::Connect(o.socket_path, &c), "Connect");

  Warmup(*c, n);

  std::vector<ObjectId> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = NextId();
  PhaseCreateWriteSeal(*c, ids);
  PhaseGetRelease(*c, ids[0], n);
  PhaseDelete(*c, ids);
  PhaseFullCycle(*c, n);

  glint::StoreStats st;
  Check(c->Stats(&st), "Stats");
  std::printf("n=%lld objects_sealed=%lld bytes_in_use=%lld\n",
              static_cast<long long>(n), static_cast<long long>(st.objects_sealed),
              static_cast<long long>(st.bytes_in_use));
  c.reset();
  monitor.reset();
  return 0;
}
