// Copyright (c) glint authors.
//
// One build of libglint behind a C interface, for bench/ab_inproc.cc: that
// driver loads two copies of this shim, each linked to a different build,
// into separate link-map namespaces (dlmopen) of one process, and times
// them batch by batch, alternating. Uses only the public API, so it
// compiles against any build (bench/ab_inproc.sh builds it).

#include <glint/glint.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

struct Ctx {
  std::unique_ptr<glint::Monitor> monitor;
  std::unique_ptr<glint::Client> client;
  glint::ObjectId hot;  // the object BM_GetRelease-style runs read
};

double Now() {
  return std::chrono::duration<double, std::nano>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

extern "C" {

// A store of `capacity` bytes with its own monitor, and a client of it.
// Null on failure (the message on stderr).
void* shim_open(int64_t capacity, const char* tag) {
  auto c = std::make_unique<Ctx>();
  glint::StoreOptions o;
  o.socket_path = "/tmp/glint-ab-" + std::to_string(getpid()) + "-" + tag;
  o.capacity = capacity;
  glint::Status s = glint::Monitor::Start(o, &c->monitor);
  if (s.ok()) s = glint::Client::Connect(o.socket_path, &c->client);
  glint::MutableBuffer mb;
  c->hot = glint::ObjectId::Random();
  if (s.ok()) s = c->client->BuildObject(c->hot, 64, &mb);
  if (s.ok()) s = mb.Seal();
  if (!s.ok()) {
    std::fprintf(stderr, "shim_open: %s\n", s.ToString().c_str());
    return nullptr;
  }
  return c.release();
}

// Runs one batch of `n` operations on the ids (16 bytes each) and returns
// the nanoseconds per operation of the timed part, or -1 on an error.
// mode 'c': BuildObject + 64 B memset + Seal (timed), then Delete.
// mode 'd': build and seal (untimed), then Delete (timed).
// mode 'g': GetObject + Release of one object, n times.
// mode 'f': create, write, seal, get, release, delete per id (timed).
double shim_run(void* ctx, char mode, int n, const uint8_t* ids) {
  Ctx& c = *static_cast<Ctx*>(ctx);
  glint::Client& cl = *c.client;
  std::vector<glint::ObjectId> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    v[i] = glint::ObjectId::FromBinary(
        std::string_view(reinterpret_cast<const char*>(ids) + 16 * i, 16));
  }
  glint::MutableBuffer mb;
  glint::Buffer b;
  auto build = [&]() {
    for (const auto& id : v) {
      if (!cl.BuildObject(id, 64, &mb).ok()) return false;
      std::memset(mb.mutable_data(), 1, 64);
      if (!mb.Seal().ok()) return false;
    }
    return true;
  };
  auto remove = [&]() {
    for (const auto& id : v) {
      if (!cl.Delete(id).ok()) return false;
    }
    return true;
  };
  double t0 = 0, t1 = 0;
  switch (mode) {
    case 'c':
      t0 = Now();
      if (!build()) return -1;
      t1 = Now();
      if (!remove()) return -1;
      break;
    case 'd':
      if (!build()) return -1;
      t0 = Now();
      if (!remove()) return -1;
      t1 = Now();
      break;
    case 'g':
      t0 = Now();
      for (int i = 0; i < n; ++i) {
        if (!cl.GetObject(c.hot, &b).ok()) return -1;
        b.Release();
      }
      t1 = Now();
      break;
    case 'f':
      t0 = Now();
      for (const auto& id : v) {
        if (!cl.BuildObject(id, 64, &mb).ok()) return -1;
        std::memset(mb.mutable_data(), 1, 64);
        if (!mb.Seal().ok() || !cl.GetObject(id, &b).ok()) return -1;
        b.Release();
        if (!cl.Delete(id).ok()) return -1;
      }
      t1 = Now();
      break;
    default:
      return -1;
  }
  return (t1 - t0) / n;
}

void shim_close(void* ctx) { delete static_cast<Ctx*>(ctx); }

}  // extern "C"
