// Copyright (c) glint authors.
//
// The systems glint_compare puts side by side, each behind one small
// interface seen from one client process:
//   glint        glint's Client, as is;
//   global-lock  glint's Client with one process-shared spinlock taken around
//                every operation: the Lightning prototype's design;
//   socket       the Plasma-style store of sock_store.h;
//   redis        redis-server through hiredis (compare_redis.cc; only when
//                hiredis was found at build time).

#ifndef GLINT_BENCH_COMPARE_STORES_H_
#define GLINT_BENCH_COMPARE_STORES_H_

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "bench/compare_util.h"
#include "bench/sock_store.h"
#include "glint/glint.h"

namespace glint::bench {

// One client of one store. Ids are 16 bytes.
class StoreClient {
 public:
  virtual ~StoreClient() = default;
  // create + write (a copy of src) + seal.
  virtual bool Put(const uint8_t* id, const uint8_t* src, uint64_t size) = 0;
  // Put, for an object another process waits for with Get(block = true).
  virtual bool PutForWaiter(const uint8_t* id, const uint8_t* src,
                            uint64_t size) {
    return Put(id, src, size);
  }
  // get + read every byte + release. block: wait until it is sealed.
  // *first: the payload's first 8 bytes (0 if shorter).
  virtual bool Get(const uint8_t* id, bool block, uint64_t* sum,
                   uint64_t* first) = 0;
  virtual bool Delete(const uint8_t* id) = 0;
};

inline uint64_t FirstWord(const uint8_t* p, uint64_t n) {
  uint64_t w = 0;
  if (n >= 8) std::memcpy(&w, p, 8);
  return w;
}

class GlintStoreClient : public StoreClient {
 public:
  // poll: a blocking get retries GetObject(timeout 0) with one PAUSE in
  // between instead of glint's own wait (a diagnostic of how fast glint's
  // spin notices a seal).
  explicit GlintStoreClient(std::unique_ptr<Client> c, bool poll = false)
      : c_(std::move(c)), poll_(poll) {}
  bool Put(const uint8_t* id, const uint8_t* src, uint64_t size) override {
    MutableBuffer mb;
    if (!c_->BuildObject(Id(id), static_cast<int64_t>(size), &mb).ok()) {
      return false;
    }
    std::memcpy(mb.mutable_data(), src, size);
    return mb.Seal().ok();
  }
  bool Get(const uint8_t* id, bool block, uint64_t* sum,
           uint64_t* first) override {
    Buffer b;
    if (poll_ && block) {
      const int64_t deadline = NowNs() + int64_t{30} * 1000000000;
      while (!c_->GetObject(Id(id), &b, 0).ok()) {
        if (NowNs() > deadline) return false;
        CpuRelax();
      }
    } else if (!c_->GetObject(Id(id), &b, block ? 30000 : 0).ok()) {
      return false;
    }
    const uint64_t n = static_cast<uint64_t>(b.size());
    *sum += Checksum(b.data(), n);
    *first = FirstWord(b.data(), n);
    b.Release();
    return true;
  }
  bool Delete(const uint8_t* id) override { return c_->Delete(Id(id)).ok(); }

 private:
  static ObjectId Id(const uint8_t* id) {
    return ObjectId::FromBinary(
        std::string_view(reinterpret_cast<const char*>(id), 16));
  }
  std::unique_ptr<Client> c_;
  bool poll_;
};

// A test-and-test-and-set spinlock in shared memory (the Lightning
// prototype's one global lock).
struct alignas(64) SharedSpinLock {
  std::atomic<uint32_t> word{0};
  void Lock() {
    for (;;) {
      if (word.exchange(1, std::memory_order_acquire) == 0) return;
      while (word.load(std::memory_order_relaxed) != 0) CpuRelax();
    }
  }
  void Unlock() { word.store(0, std::memory_order_release); }
};

// glint with every operation under the global lock. The payload is written
// and read outside it (as Lightning's clients do); a blocking get polls,
// taking the lock for each attempt.
class LockedStoreClient : public StoreClient {
 public:
  LockedStoreClient(std::unique_ptr<Client> c, SharedSpinLock* lock)
      : c_(std::move(c)), lock_(lock) {}
  bool Put(const uint8_t* id, const uint8_t* src, uint64_t size) override {
    MutableBuffer mb;
    lock_->Lock();
    const bool ok = c_->BuildObject(Id(id), static_cast<int64_t>(size), &mb).ok();
    lock_->Unlock();
    if (!ok) return false;
    std::memcpy(mb.mutable_data(), src, size);
    lock_->Lock();
    const bool sealed = mb.Seal().ok();
    lock_->Unlock();
    return sealed;
  }
  bool Get(const uint8_t* id, bool block, uint64_t* sum,
           uint64_t* first) override {
    Buffer b;
    const int64_t deadline = NowNs() + int64_t{30} * 1000000000;
    for (;;) {
      lock_->Lock();
      const bool ok = c_->GetObject(Id(id), &b, 0).ok();
      lock_->Unlock();
      if (ok) break;
      if (!block || NowNs() > deadline) return false;
      for (int i = 0; i < 16; ++i) CpuRelax();
    }
    const uint64_t n = static_cast<uint64_t>(b.size());
    *sum += Checksum(b.data(), n);
    *first = FirstWord(b.data(), n);
    lock_->Lock();
    b.Release();
    lock_->Unlock();
    return true;
  }
  bool Delete(const uint8_t* id) override {
    lock_->Lock();
    const bool ok = c_->Delete(Id(id)).ok();
    lock_->Unlock();
    return ok;
  }

 private:
  static ObjectId Id(const uint8_t* id) {
    return ObjectId::FromBinary(
        std::string_view(reinterpret_cast<const char*>(id), 16));
  }
  std::unique_ptr<Client> c_;
  SharedSpinLock* lock_;
};

class SocketStoreClient : public StoreClient {
 public:
  explicit SocketStoreClient(std::unique_ptr<SockClient> c)
      : c_(std::move(c)) {}
  bool Put(const uint8_t* id, const uint8_t* src, uint64_t size) override {
    uint8_t* d;
    if (!c_->Create(id, size, &d)) return false;
    std::memcpy(d, src, size);
    return c_->Seal(id);
  }
  bool Get(const uint8_t* id, bool block, uint64_t* sum,
           uint64_t* first) override {
    const uint8_t* d;
    uint64_t n;
    if (!c_->Get(id, block, &d, &n)) return false;
    *sum += Checksum(d, n);
    *first = FirstWord(d, n);
    return c_->Release(id);
  }
  bool Delete(const uint8_t* id) override { return c_->Delete(id); }

 private:
  std::unique_ptr<SockClient> c_;
};

// Defined in compare_redis.cc when hiredis is available; nullptr otherwise.
std::unique_ptr<StoreClient> ConnectRedis(const std::string& socket_path);

}  // namespace glint::bench

#endif  // GLINT_BENCH_COMPARE_STORES_H_
