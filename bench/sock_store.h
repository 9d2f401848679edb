// Copyright (c) glint authors.
//
// The socket-based baseline store: the object API served the way Plasma
// serves it. One store process owns the region and every piece of metadata
// (an unordered_map from id to offset, size, state and reference count);
// clients send create, seal, get, release and delete as fixed-size requests
// over a unix stream socket and wait for the reply. At connect the store
// passes the region's memfd once with SCM_RIGHTS; payloads are written and
// read in the shared mapping, never sent through the socket.
//
// It uses glint's own allocator (alloc::Heap) over a glint region, so that
// glint against this store differs only in how operations reach the
// metadata: atomics on shared memory, or a request and a reply.
//
// A benchmark baseline, not a product: one client thread per connection,
// no crash handling, no names or metadata.

#ifndef GLINT_BENCH_SOCK_STORE_H_
#define GLINT_BENCH_SOCK_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

namespace glint::bench {

// Serves `socket_path` with a heap of `capacity` bytes until the process
// gets SIGTERM. Returns a process exit code.
int RunSocketStore(const std::string& socket_path, uint64_t capacity);

class SockClient {
 public:
  // Connects, receives the region fd and maps it. nullptr on failure.
  static std::unique_ptr<SockClient> Connect(const std::string& socket_path);
  ~SockClient();
  SockClient(const SockClient&) = delete;
  SockClient& operator=(const SockClient&) = delete;

  // Each is one request and one reply. Ids are 16 bytes.
  bool Create(const uint8_t* id, uint64_t size, uint8_t** data);
  bool Seal(const uint8_t* id);
  // block: the store answers once the object is sealed.
  bool Get(const uint8_t* id, bool block, const uint8_t** data,
           uint64_t* size);
  bool Release(const uint8_t* id);
  bool Delete(const uint8_t* id);

 private:
  SockClient() = default;
  bool Call(uint32_t op, const uint8_t* id, uint64_t arg, uint64_t* off,
            uint64_t* size);

  int fd_ = -1;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace glint::bench

#endif  // GLINT_BENCH_SOCK_STORE_H_
