// Copyright (c) glint authors.
//
// The socket-based baseline store (see sock_store.h). The server is one
// thread with a poll() loop, as Plasma's store is one event loop.

#include "bench/sock_store.h"

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "alloc/heap.h"
#include "core/region.h"

namespace glint::bench {
namespace {

enum Op : uint32_t { kCreate = 1, kSeal, kGet, kGetBlocking, kRelease, kDelete };
enum Code : int32_t { kOk = 0, kNotFound, kExists, kNoMemory, kBadState };

struct Request {
  uint32_t op;
  uint32_t pad;
  uint8_t id[16];
  uint64_t arg;  // create: the size
};
struct Reply {
  int32_t code;
  uint32_t pad;
  uint64_t offset;  // from the region's start
  uint64_t size;
};
struct Hello {
  uint64_t region_size;
};

bool WriteAll(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = recv(fd, c, n, MSG_WAITALL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

sockaddr_un AddrOf(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
  return a;
}

struct Object {
  uint64_t offset = 0;  // from the heap's start
  uint64_t size = 0;
  bool sealed = false;
  bool deleted = false;  // invisible; freed when refs drops to 0
  uint32_t refs = 0;
};

using Key = std::string;  // the 16 id bytes

class Server {
 public:
  Server(uint8_t* base, uint64_t size)
      : region_(base, size), heap_(region_) {}

  // Answers one request. A blocking get of an unsealed object answers
  // nothing now: the fd is queued and answered by the seal.
  void Handle(int fd, const Request& q) {
    const Key key(reinterpret_cast<const char*>(q.id), 16);
    Reply r{};
    auto it = objects_.find(key);
    switch (q.op) {
      case kCreate: {
        if (it != objects_.end()) {
          r.code = kExists;
          break;
        }
        Object o;
        o.size = q.arg;
        if (o.size > 0 && !heap_.Allocate(o.size, &hints_, &o.offset)) {
          r.code = kNoMemory;
          break;
        }
        objects_.emplace(key, o);
        r.offset = region_.header()->heap_offset + o.offset;
        r.size = o.size;
        break;
      }
      case kSeal: {
        if (it == objects_.end() || it->second.sealed) {
          r.code = kBadState;
          break;
        }
        it->second.sealed = true;
        auto w = waiters_.find(key);
        if (w != waiters_.end()) {
          for (int wfd : w->second) {
            it->second.refs++;
            Reply g{kOk, 0, region_.header()->heap_offset + it->second.offset,
                    it->second.size};
            WriteAll(wfd, &g, sizeof(g));
          }
          waiters_.erase(w);
        }
        break;
      }
      case kGet:
      case kGetBlocking: {
        if (it == objects_.end() || !it->second.sealed || it->second.deleted) {
          if (q.op == kGetBlocking) {
            waiters_[key].push_back(fd);
            return;
          }
          r.code = kNotFound;
          break;
        }
        it->second.refs++;
        r.offset = region_.header()->heap_offset + it->second.offset;
        r.size = it->second.size;
        break;
      }
      case kRelease: {
        if (it == objects_.end() || it->second.refs == 0) {
          r.code = kBadState;
          break;
        }
        if (--it->second.refs == 0 && it->second.deleted) Erase(it);
        break;
      }
      case kDelete: {
        if (it == objects_.end() || it->second.deleted) {
          r.code = kNotFound;
          break;
        }
        if (!it->second.sealed) {
          r.code = kBadState;
          break;
        }
        it->second.deleted = true;
        if (it->second.refs == 0) Erase(it);
        break;
      }
      default:
        r.code = kBadState;
    }
    WriteAll(fd, &r, sizeof(r));
  }

  // A client left: forget its queued gets.
  void Forget(int fd) {
    for (auto& [k, v] : waiters_) std::erase(v, fd);
  }

 private:
  void Erase(std::unordered_map<Key, Object>::iterator it) {
    if (it->second.size > 0) heap_.Free(it->second.offset, it->second.size);
    objects_.erase(it);
  }

  core::Region region_;
  alloc::Heap heap_;
  alloc::AllocHints hints_;
  std::unordered_map<Key, Object> objects_;
  std::unordered_map<Key, std::vector<int>> waiters_;
};

volatile sig_atomic_t g_stop = 0;
void OnTerm(int) { g_stop = 1; }

}  // namespace

int RunSocketStore(const std::string& socket_path, uint64_t capacity) {
  core::RegionHeader layout{};
  if (!core::ComputeLayout({capacity, 1024, 4}, &layout).ok()) return 2;
  const int mfd = memfd_create("glint-sockstore", MFD_CLOEXEC);
  if (mfd < 0 || ftruncate(mfd, static_cast<off_t>(layout.region_size)) != 0) {
    std::perror("sockstore: memfd");
    return 2;
  }
  // Prefaulted, as glint's monitor prefaults its region.
  void* m = mmap(nullptr, layout.region_size, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_POPULATE, mfd, 0);
  if (m == MAP_FAILED) {
    std::perror("sockstore: mmap");
    return 2;
  }
  core::Region::Format(static_cast<uint8_t*>(m), layout);
  Server server(static_cast<uint8_t*>(m), layout.region_size);

  unlink(socket_path.c_str());
  const int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un a = AddrOf(socket_path);
  if (lfd < 0 || bind(lfd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(lfd, 64) != 0) {
    std::perror("sockstore: listen");
    return 2;
  }
  struct sigaction sa{};
  sa.sa_handler = OnTerm;
  sigaction(SIGTERM, &sa, nullptr);

  std::vector<pollfd> fds{{lfd, POLLIN, 0}};
  while (!g_stop) {
    const int n = poll(fds.data(), fds.size(), 200);
    if (n <= 0) continue;
    for (size_t i = fds.size(); i-- > 1;) {
      if (fds[i].revents == 0) continue;
      Request q;
      if ((fds[i].revents & POLLIN) && ReadAll(fds[i].fd, &q, sizeof(q))) {
        server.Handle(fds[i].fd, q);
        continue;
      }
      server.Forget(fds[i].fd);
      close(fds[i].fd);
      fds.erase(fds.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (fds[0].revents & POLLIN) {
      const int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      // The hello carries the region fd (SCM_RIGHTS), once per client.
      Hello h{layout.region_size};
      iovec iov{&h, sizeof(h)};
      alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = ctl;
      msg.msg_controllen = sizeof(ctl);
      cmsghdr* cm = CMSG_FIRSTHDR(&msg);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(cm), &mfd, sizeof(int));
      if (sendmsg(c, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(h))) {
        close(c);
        continue;
      }
      fds.push_back({c, POLLIN, 0});
    }
  }
  for (size_t i = 1; i < fds.size(); ++i) close(fds[i].fd);
  close(lfd);
  unlink(socket_path.c_str());
  return 0;
}

std::unique_ptr<SockClient> SockClient::Connect(const std::string& socket_path) {
  std::unique_ptr<SockClient> c(new SockClient);
  c->fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un a = AddrOf(socket_path);
  if (c->fd_ < 0 ||
      connect(c->fd_, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0) {
    return nullptr;
  }
  Hello h{};
  iovec iov{&h, sizeof(h)};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof(ctl);
  if (recvmsg(c->fd_, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC) !=
      static_cast<ssize_t>(sizeof(h))) {
    return nullptr;
  }
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  if (cm == nullptr || cm->cmsg_type != SCM_RIGHTS) return nullptr;
  int rfd;
  std::memcpy(&rfd, CMSG_DATA(cm), sizeof(int));
  void* m = mmap(nullptr, h.region_size, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_POPULATE, rfd, 0);
  close(rfd);
  if (m == MAP_FAILED) return nullptr;
  c->base_ = static_cast<uint8_t*>(m);
  c->size_ = h.region_size;
  return c;
}

SockClient::~SockClient() {
  if (base_ != nullptr) munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
}

bool SockClient::Call(uint32_t op, const uint8_t* id, uint64_t arg,
                      uint64_t* off, uint64_t* size) {
  Request q{op, 0, {}, arg};
  std::memcpy(q.id, id, 16);
  Reply r;
  if (!WriteAll(fd_, &q, sizeof(q)) || !ReadAll(fd_, &r, sizeof(r))) {
    return false;
  }
  if (r.code != kOk || r.offset + r.size > size_) return false;
  if (off != nullptr) *off = r.offset;
  if (size != nullptr) *size = r.size;
  return true;
}

bool SockClient::Create(const uint8_t* id, uint64_t size, uint8_t** data) {
  uint64_t off;
  if (!Call(kCreate, id, size, &off, nullptr)) return false;
  *data = base_ + off;
  return true;
}

bool SockClient::Seal(const uint8_t* id) {
  return Call(kSeal, id, 0, nullptr, nullptr);
}

bool SockClient::Get(const uint8_t* id, bool block, const uint8_t** data,
                     uint64_t* size) {
  uint64_t off;
  if (!Call(block ? kGetBlocking : kGet, id, 0, &off, size)) return false;
  *data = base_ + off;
  return true;
}

bool SockClient::Release(const uint8_t* id) {
  return Call(kRelease, id, 0, nullptr, nullptr);
}

bool SockClient::Delete(const uint8_t* id) {
  return Call(kDelete, id, 0, nullptr, nullptr);
}

}  // namespace glint::bench
