// Copyright (c) glint authors.
//
// The embedded monitor: creates the region, registers clients over a unix
// socket, and cleans up after clients that leave. It is never on the fast
// path: clients only talk to it to connect, and its only other work is
// noticing hang-ups.

#include "glint/monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <list>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/atomics.h"
#include "core/object_table.h"
#include "core/os.h"
#include "core/protocol.h"
#include "core/region.h"
#include "core/store.h"
#include "recovery/cleanup.h"

namespace glint {
namespace internal {

class MonitorImpl {
 public:
  ~MonitorImpl();
  Status Init(const StoreOptions& options);

  // In a child of fork(): forget the parent's sockets and thread.
  void MarkInert();

  StoreOptions options_;
  std::string region_path_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int region_fd_ = -1;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  pid_t owner_pid_ = 0;
  bool inert_ = false;
  std::atomic<int> clients_{0};
  std::unique_ptr<std::thread> thread_;
  // Held by the monitor thread while it changes its connections, and by a
  // fork() around the fork, so a child never sees them half-changed.
  std::mutex mu_;

 private:
  struct Conn {
    int fd;             // the client's socket, or -1 once it closed
    bool registered;    // holds a client slot
    uint32_t slot;
    pid_t pid;
    int64_t accepted_ns;  // when accept() returned (Hello deadline)
    bool said_bye = false;
    int pidfd = -1;     // watched once the socket closed without a Bye
  };
  Status CreateRegion();
  void RequestHugepages();
  Status CreateSocket();
  void Loop();
  void OnHello(Conn* c);
  void OnClientReadable(Conn* c);
  void Leave(Conn* c);
  void Reply(int fd, StatusCode code, const std::string& msg, uint32_t slot,
             uint64_t serial, bool send_fd);

  void Log(const std::string& line) {
    if (options_.log) options_.log(line);
  }

  static constexpr uint32_t kGone = 0xffffffffu;  // Conn::slot once left
  static constexpr int64_t kHelloTimeoutNs = 1000 * 1000 * 1000;
  std::list<Conn> conns_;  // stable addresses: poll() bookkeeping points in
  std::unique_ptr<core::Store> store_;
};

namespace {

std::mutex g_monitors_mu;
std::set<MonitorImpl*>* g_monitors = nullptr;
std::once_flag g_atfork_once;

void Register(MonitorImpl* m) {
  std::call_once(g_atfork_once, [] {
    pthread_atfork(
        [] {
          g_monitors_mu.lock();
          if (g_monitors != nullptr) {
            for (MonitorImpl* m : *g_monitors) m->mu_.lock();
          }
        },
        [] {
          if (g_monitors != nullptr) {
            for (MonitorImpl* m : *g_monitors) m->mu_.unlock();
          }
          g_monitors_mu.unlock();
        },
        [] {
          if (g_monitors != nullptr) {
            for (MonitorImpl* m : *g_monitors) {
              m->MarkInert();
              m->mu_.unlock();
            }
          }
          g_monitors_mu.unlock();
        });
  });
  std::lock_guard<std::mutex> l(g_monitors_mu);
  if (g_monitors == nullptr) g_monitors = new std::set<MonitorImpl*>();
  g_monitors->insert(m);
}

void Unregister(MonitorImpl* m) {
  std::lock_guard<std::mutex> l(g_monitors_mu);
  if (g_monitors != nullptr) g_monitors->erase(m);
}

std::string AbsolutePath(const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  char cwd[4096];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) return p;
  return std::string(cwd) + "/" + p;
}

}  // namespace

std::string RegionPathFor(const StoreOptions& o) {
  const std::string abs = AbsolutePath(o.socket_path);
  char hex[17];
  snprintf(hex, sizeof(hex), "%016llx",
           static_cast<unsigned long long>(core::HashBytes(abs.data(), abs.size(), 0x676c696e74ULL)));
  return o.shm_dir + "/glint-" + hex;
}

Status MonitorImpl::Init(const StoreOptions& o) {
  options_ = o;
  owner_pid_ = getpid();
  if (o.socket_path.empty() || o.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status::InvalidArgument("socket path '" + o.socket_path +
                                   "' is empty or longer than 107 bytes");
  }
  if (o.capacity <= 0) {
    return Status::InvalidArgument("capacity must be positive, got " +
                                   std::to_string(o.capacity));
  }
  if (o.max_objects < 0) {
    return Status::InvalidArgument("max_objects must not be negative");
  }
  if (o.max_clients < 1 || o.max_clients > static_cast<int32_t>(core::kMaxClients)) {
    return Status::InvalidArgument("max_clients must be between 1 and 256, got " +
                                   std::to_string(o.max_clients));
  }
  if ((o.mode & ~0777u) != 0) {
    return Status::InvalidArgument("mode must be permission bits (at most 0777)");
  }
  // Is a store already serving this path?
  struct stat st;
  if (lstat(o.socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::AlreadyExists(o.socket_path +
                                   " exists and is not a socket; refusing to "
                                   "replace it");
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, o.socket_path.c_str(), o.socket_path.size() + 1);
    const bool live =
        probe >= 0 && connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    if (probe >= 0) close(probe);
    if (live) {
      return Status::AlreadyExists("a live glint store already serves " +
                                   o.socket_path);
    }
    unlink(o.socket_path.c_str());  // left by a store that died
  }
  region_path_ = RegionPathFor(o);
  Status s = CreateRegion();
  if (!s.ok()) return s;
  s = CreateSocket();
  if (!s.ok()) return s;
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return os::ErrnoStatus(errno, "eventfd for", o.socket_path);
  Register(this);
  thread_ = std::make_unique<std::thread>([this] { Loop(); });
  return Status::OK();
}

Status MonitorImpl::CreateRegion() {
  core::RegionHeader layout;
  core::LayoutParams p{static_cast<uint64_t>(options_.capacity),
                       static_cast<uint64_t>(options_.max_objects),
                       static_cast<uint32_t>(options_.max_clients)};
  Status s = core::ComputeLayout(p, &layout);
  if (!s.ok()) return s;
  size_ = layout.region_size;
  struct statvfs vfs;
  if (statvfs(options_.shm_dir.c_str(), &vfs) == 0) {
    const uint64_t avail = uint64_t{vfs.f_bavail} * vfs.f_frsize;
    if (avail < size_) {
      return Status::OutOfMemory(options_.shm_dir + " has " + std::to_string(avail) +
                                 " bytes free; the region needs " +
                                 std::to_string(size_));
    }
  }
  // A region left by a store that died is replaced (crash recovery, which
  // re-attaches it, is a later step of the project).
  unlink(region_path_.c_str());
  region_fd_ = open(region_path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
                    options_.mode);
  if (region_fd_ < 0) return os::ErrnoStatus(errno, "create region", region_path_);
  fchmod(region_fd_, options_.mode);  // umask must not narrow what was asked
  if (ftruncate(region_fd_, static_cast<off_t>(size_)) != 0) {
    return os::ErrnoStatus(errno, "size region", region_path_);
  }
  if (options_.prefault) {
    // Allocate every page now, so that no client takes a SIGBUS later and no
    // fast path pays a first-touch fault.
    const int err = posix_fallocate(region_fd_, 0, static_cast<off_t>(size_));
    if (err != 0) {
      return Status::OutOfMemory("cannot allocate " + std::to_string(size_) +
                                 " bytes for " + region_path_ + ": " +
                                 std::strerror(err));
    }
  }
  void* base = nullptr;
  s = os::MapShared(region_fd_, static_cast<int64_t>(size_), options_.prefault, &base);
  if (!s.ok()) return s;
  base_ = static_cast<uint8_t*>(base);
  if (options_.hugepages) RequestHugepages();
  layout.monitor_pid = static_cast<uint32_t>(getpid());
  layout.create_time_us = os::NowMicros();
  layout.tsc_per_us = os::CalibrateTsc();
  const std::string host = os::Hostname();
  std::strncpy(layout.hostname, host.c_str(), sizeof(layout.hostname) - 1);
  const std::string abs = AbsolutePath(options_.socket_path);
  std::strncpy(layout.socket_path, abs.c_str(), sizeof(layout.socket_path) - 1);
  core::Region::Format(base_, layout);
  store_ = std::make_unique<core::Store>(core::Region(base_, size_));
  return Status::OK();
}

// Shared memory gets huge pages through shmem THP: "always" and
// "within_size" give them unasked, "advise" on madvise, "never"/"deny" not
// at all. Without them the store runs on normal pages, with a warning.
void MonitorImpl::RequestHugepages() {
  std::string mode;
  if (FILE* f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r")) {
    char buf[256] = {0};
    if (fgets(buf, sizeof(buf), f) != nullptr) mode = buf;
    fclose(f);
  }
  const auto pos = mode.find('[');
  const std::string sel =
      pos == std::string::npos ? "" : mode.substr(pos + 1, mode.find(']') - pos - 1);
  if (sel == "always" || sel == "within_size" || sel == "force") return;
  if (sel == "advise" && madvise(base_, size_, MADV_HUGEPAGE) == 0) return;
  Log("warning: huge pages requested but shared-memory THP is '" +
      (sel.empty() ? std::string("unavailable") : sel) +
      "' (/sys/kernel/mm/transparent_hugepage/shmem_enabled); using normal "
      "pages");
}

Status MonitorImpl::CreateSocket() {
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) return os::ErrnoStatus(errno, "socket", options_.socket_path);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, options_.socket_path.c_str(),
              options_.socket_path.size() + 1);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return os::ErrnoStatus(errno, "bind", options_.socket_path);
  }
  chmod(options_.socket_path.c_str(), options_.mode);
  if (listen(listen_fd_, 128) != 0) {
    return os::ErrnoStatus(errno, "listen on", options_.socket_path);
  }
  return Status::OK();
}

void MonitorImpl::Reply(int fd, StatusCode code, const std::string& msg,
                        uint32_t slot, uint64_t serial, bool send_fd) {
  core::Welcome w{};
  w.magic = core::kHelloMagic;
  w.protocol_version = core::kProtocolVersion;
  w.status_code = static_cast<uint32_t>(code);
  w.client_slot = slot;
  w.client_serial = serial;
  w.region_size = size_;
  std::strncpy(w.message, msg.c_str(), sizeof(w.message) - 1);
  iovec iov{&w, sizeof(w)};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  char cbuf[CMSG_SPACE(sizeof(int))];
  if (send_fd) {
    std::memset(cbuf, 0, sizeof(cbuf));
    m.msg_control = cbuf;
    m.msg_controllen = sizeof(cbuf);
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &region_fd_, sizeof(int));
  }
  // MSG_NOSIGNAL: a client that vanished mid-handshake costs us an EPIPE,
  // never a SIGPIPE.
  (void)sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void MonitorImpl::OnHello(Conn* c) {
  core::Hello h{};
  const ssize_t n = recv(c->fd, &h, sizeof(h), MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    Leave(c);
    return;
  }
  if (n < 0) return;
  if (n != sizeof(h) || h.magic != core::kHelloMagic) {
    Reply(c->fd, StatusCode::kNotConnected, "not a glint hello", 0, 0, false);
    Leave(c);
    return;
  }
  if (h.protocol_version != core::kProtocolVersion ||
      h.layout_version != core::kLayoutVersion) {
    Reply(c->fd, StatusCode::kIncompatible,
          "client speaks protocol " + std::to_string(h.protocol_version) +
              " / layout " + std::to_string(h.layout_version) +
              "; this store serves protocol " +
              std::to_string(core::kProtocolVersion) + " / layout " +
              std::to_string(core::kLayoutVersion),
          0, 0, false);
    Leave(c);
    return;
  }
  const core::Region r(base_, size_);
  core::RegionHeader* hdr = r.header();
  for (uint32_t i = 0; i < hdr->max_clients; ++i) {
    core::ClientSlot* cs = r.client(i);
    if (core::LoadAcquire(cs->state) != core::kClientFree) continue;
    const uint64_t serial = hdr->next_client_serial.fetch_add(1);
    ucred cred{};
    socklen_t len = sizeof(cred);
    getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
    core::StoreRelaxed(cs->pid, static_cast<uint32_t>(cred.pid));
    core::StoreRelaxed(cs->serial, serial);
    core::StoreRelease(cs->state, static_cast<uint32_t>(core::kClientActive));
    c->registered = true;
    c->slot = i;
    c->pid = cred.pid;
    clients_.fetch_add(1);
    Reply(c->fd, StatusCode::kOk, "", i, serial, true);
    Log("client " + std::to_string(i) + " connected (pid " +
        std::to_string(cred.pid) + ", serial " + std::to_string(serial) + ")");
    return;
  }
  Reply(c->fd, StatusCode::kTooManyClients,
        "all " + std::to_string(hdr->max_clients) + " client slots are taken",
        0, 0, false);
  Log("refused a client: all " + std::to_string(hdr->max_clients) +
      " client slots are taken");
  Leave(c);
}

// A client is gone: release what it held, free its slot, forget it.
void MonitorImpl::Leave(Conn* c) {
  if (c->pidfd >= 0) {
    close(c->pidfd);
    c->pidfd = -1;
  }
  if (c->registered) {
    ReleaseClientSlot(store_.get(), c->slot);
    c->registered = false;
    clients_.fetch_sub(1);
    Log("client " + std::to_string(c->slot) + " left (pid " +
        std::to_string(c->pid) + ")");
  }
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->slot = kGone;
}

void MonitorImpl::OnClientReadable(Conn* c) {
  uint32_t words[16];
  const ssize_t r = recv(c->fd, words, sizeof(words), MSG_DONTWAIT);
  if (r > 0) {
    for (ssize_t i = 0; i + 4 <= r; i += 4) {
      if (words[i / 4] == core::kByeMagic) c->said_bye = true;
    }
    return;
  }
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  // The socket closed. After a Bye the client already released everything:
  // free the slot now. Without one, the process may still run (it closed
  // its descriptors, or exits normally and is still on its way out): watch
  // its pidfd, and release it only once the kernel says it is gone.
  if (c->said_bye) {
    Leave(c);
    return;
  }
  close(c->fd);
  c->fd = -1;
  c->pidfd = static_cast<int>(syscall(SYS_pidfd_open, c->pid, 0));
  if (c->pidfd < 0) {
    Leave(c);  // ESRCH: already gone (or pidfds unsupported: assume gone)
    return;
  }
  pollfd p{c->pidfd, POLLIN, 0};
  if (poll(&p, 1, 0) == 1) Leave(c);
}

void MonitorImpl::Loop() {
  std::vector<pollfd> fds;
  std::vector<Conn*> owners;  // owners[i]: the connection of fds[i], if any
  int64_t listen_paused_until = 0;
  for (;;) {
    const int64_t now = os::MonotonicNanos();
    fds.clear();
    owners.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    owners.push_back(nullptr);
    const bool listening = now >= listen_paused_until;
    if (listening) {
      fds.push_back({listen_fd_, POLLIN, 0});
      owners.push_back(nullptr);
    }
    bool pending = false;
    for (Conn& c : conns_) {
      if (c.fd >= 0) {
        fds.push_back({c.fd, POLLIN, 0});
      } else {
        fds.push_back({c.pidfd, POLLIN, 0});
      }
      owners.push_back(&c);
      pending |= !c.registered;
    }
    // Wake up now and then only when a deadline is pending.
    const int timeout_ms = (pending || !listening) ? 100 : -1;
    const int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) return;
    if (n > 0 && fds[0].revents != 0) return;  // shutdown
    // Everything below changes conns_; a fork() waits for it (AtFork*).
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t after = os::MonotonicNanos();
    for (size_t i = 1; i < fds.size(); ++i) {
      Conn* c = owners[i];
      if (c == nullptr || c->slot == kGone) continue;
      if (!c->registered) {
        if (fds[i].revents != 0) {
          OnHello(c);
        } else if (after - c->accepted_ns > kHelloTimeoutNs) {
          Leave(c);  // connected but never said Hello
        }
      } else if (fds[i].revents != 0) {
        if (c->fd >= 0) {
          OnClientReadable(c);
        } else {
          Leave(c);  // its pidfd: the process exited
        }
      }
    }
    conns_.remove_if([](const Conn& c) { return c.slot == kGone; });
    if (listening && n > 0 && (fds[1].revents & POLLIN)) {
      for (;;) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          conns_.push_back(Conn{fd, false, 0, 0, after});
          continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
          // Out of descriptors: stop polling the listener for a while
          // instead of spinning on it; connectors wait in the backlog.
          listen_paused_until = after + 100 * 1000 * 1000;
          Log("warning: accept failed (" + std::string(std::strerror(errno)) +
              "); pausing new connections for 100 ms");
        }
        break;
      }
    }
  }
}

void MonitorImpl::MarkInert() {
  inert_ = true;
  for (int* fd : {&listen_fd_, &wake_fd_, &region_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  for (Conn& c : conns_) {
    if (c.fd >= 0) close(c.fd);
    if (c.pidfd >= 0) close(c.pidfd);
  }
  // The monitor thread does not exist in the child; its handle is leaked.
  (void)thread_.release();
}

MonitorImpl::~MonitorImpl() {
  Unregister(this);
  if (inert_) {
    if (base_ != nullptr) munmap(base_, size_);
    return;
  }
  if (thread_ != nullptr) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
    thread_->join();
  }
  for (Conn& c : conns_) {
    if (c.fd >= 0) close(c.fd);
    if (c.pidfd >= 0) close(c.pidfd);
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(options_.socket_path.c_str());
  }
  if (wake_fd_ >= 0) close(wake_fd_);
  if (region_fd_ >= 0) {
    close(region_fd_);
    unlink(region_path_.c_str());
  }
  if (base_ != nullptr) munmap(base_, size_);
}

}  // namespace internal

Status Monitor::Start(const StoreOptions& options, std::unique_ptr<Monitor>* out) {
  auto impl = std::make_unique<internal::MonitorImpl>();
  Status s = impl->Init(options);
  if (!s.ok()) {
    // Leave nothing half-built behind.
    const bool made_socket = impl->listen_fd_ >= 0;
    const bool made_region = impl->region_fd_ >= 0;
    if (made_socket) unlink(options.socket_path.c_str());
    if (made_region) unlink(impl->region_path_.c_str());
    return s;
  }
  std::unique_ptr<Monitor> m(new Monitor());
  m->impl_ = std::move(impl);
  *out = std::move(m);
  return Status::OK();
}

Monitor::~Monitor() = default;

const std::string& Monitor::socket_path() const { return impl_->options_.socket_path; }
const std::string& Monitor::region_path() const { return impl_->region_path_; }
int Monitor::clients() const { return impl_->clients_.load(); }

}  // namespace glint
