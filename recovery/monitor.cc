// Copyright (c) glint authors.
//
// The embedded monitor: creates the region, registers clients over a unix
// socket, and cleans up after clients that leave. It is never on the fast
// path: clients only talk to it to connect, and its only other work is
// noticing hang-ups.

#include "glint/monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
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
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/atomics.h"
#include "core/check.h"
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

  // In a child of fork(): forget the parent's sockets, ring and thread.
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
  bool ring_ready_ = false;
  bool created_region_ = false;  // this monitor made the region file
  bool reattached_ = false;      // it re-attached one left by another
  std::atomic<int> clients_{0};
  std::unique_ptr<std::thread> thread_;
  // Held by the monitor thread while it changes its connections and its
  // ring, and by a fork() around the fork, so a child never sees them
  // half-changed.
  std::mutex mu_;

 private:
  // What a completion is about: the low 4 bits of its user_data. The bits
  // above are the id of the connection it concerns (0: none). Ids are never
  // reused, so a late completion for a connection that is gone finds no one.
  enum Op : uint64_t {
    kOpWake = 0,         // poll of wake_fd_: stop
    kOpAccept = 1,       // accept on listen_fd_
    kOpAcceptPause = 2,  // timer: accept again after running out of fds
    kOpSocket = 3,       // poll of a client's socket
    kOpPidfd = 4,        // poll of a client's pidfd: the process exited
    kOpHelloTimer = 5,   // timer: a connection's Hello deadline
    kOpCancel = 6,       // a cancellation's own completion (ignored)
    kOpRetry = 7,        // timer: call a deferred recovery again
  };
  static constexpr uint64_t kOpBits = 4;
  static uint64_t Tag(uint64_t id, Op op) { return (id << kOpBits) | op; }

  struct Conn {
    uint64_t id = 0;
    int fd = -1;     // the client's socket; -1 once it closed
    int pidfd = -1;  // the client process, opened when its Hello is accepted
    bool registered = false;  // holds a client slot
    bool said_bye = false;
    bool gone = false;        // left; erased after this batch
    bool fd_polled = false;   // a poll of fd is in the ring
    bool pidfd_polled = false;
    bool retrying = false;    // its recovery was deferred; a timer is armed
    std::string why;          // completes its "left" log line
    uint32_t slot = 0;
    pid_t pid = 0;
  };
  Status CreateRegion();
  Status FillNewRegion(const std::string& tmp, core::RegionHeader* layout);
  Status AttachRegion();
  void RecoverClients();
  Status CheckRecovered();
  Status Refuse(StatusCode code, const std::string& problem) const;
  Status RefuseIfDamaged(bool quiescent, const std::string& when) const;
  void CheckHugepages();
  Status CreateSocket();
  Status CreateRing();
  void Loop();
  void Dispatch(uint64_t user_data, int32_t res);
  void OnAccept(int32_t res);
  void OnHello(Conn* c);
  void OnClientReadable(Conn* c);
  void Leave(Conn* c, const char* why);
  void Recover(Conn* c);
  // Sends the Welcome; false when it did not go out whole (the client hung
  // up: it never gets what the Welcome carries).
  bool Reply(int fd, StatusCode code, const std::string& msg, uint32_t slot,
             uint64_t serial, bool send_fd);

  // Ring submissions. Sqe() never returns null: it submits when the
  // submission queue is full.
  io_uring_sqe* Sqe();
  void PollFd(int fd, uint64_t user_data);
  void Timer(__kernel_timespec* ts, uint64_t user_data);
  void ArmAccept();
  void ArmSocket(Conn* c);
  void ArmPidfd(Conn* c);
  void Cancel(uint64_t user_data);

  void Log(const std::string& line) {
    if (options_.log) options_.log(line);
  }

  io_uring ring_{};
  std::unordered_map<uint64_t, Conn> conns_;
  uint64_t next_conn_id_ = 1;
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

// Relative timeouts of the ring's timers. The kernel reads them when the
// request is submitted.
__kernel_timespec g_hello_timeout{1, 0};                 // a Hello's deadline
__kernel_timespec g_accept_pause{0, 100 * 1000 * 1000};  // out of fds
__kernel_timespec g_recover_retry{0, 2 * 1000 * 1000};   // a deferred recovery

// SO_PEERPIDFD (Linux 6.5): a pidfd of the process that connected, with no
// window for its pid to be reused. Older headers lack the constant.
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

// Whether pidfd_open's errno says no process has this pid: ESRCH, or (Linux
// 6.9 and later) ENOENT when the number names a thread that is not a
// process's main thread. A client slot holds a process id, so in both
// cases the client is gone.
bool NoSuchProcess(int err) { return err == ESRCH || err == ENOENT; }

// A pidfd of the socket's peer process `pid`, or -1 with errno (ESRCH: it is
// gone). Asks the socket first (no pid-reuse race), then pidfd_open.
int OpenPeerPidfd(int sock, pid_t pid) {
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 &&
      pidfd >= 0) {
    return pidfd;
  }
  if (errno == ESRCH) return -1;
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

// Field 22 of /proc/PID/stat: the process's start time in clock ticks since
// boot; 0 when it cannot be read (the process is gone). Read once per
// registration, so that a restarted monitor can tell the client from a
// process that reused its pid.
uint64_t ProcessStartTime(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  // The command name (field 2) may hold spaces and parentheses: fields are
  // counted from its last ')'. Field 3 follows it.
  const char* p = strrchr(buf, ')');
  if (p == nullptr) return 0;
  ++p;
  for (int field = 3; field <= 22; ++field) {
    while (*p == ' ') ++p;
    if (*p == 0) return 0;
    if (field == 22) return strtoull(p, nullptr, 10);
    while (*p != ' ' && *p != 0) ++p;
  }
  return 0;
}

// Whether a live process listens on the unix socket at `path`. A connect()
// alone can succeed for a moment after the listener died: the kernel tears
// its io_uring down asynchronously, and the pending accept holds the
// listening socket open until then. So the listener (SO_PEERCRED of a
// connected socket names the process that called listen()) must also live.
// The probe does not wait on the listener: one whose queue of new
// connections is full (a stopped or swamped glintd) answers EAGAIN at
// once. A queue that stays full for 100 ms counts as live (a dead
// listener's queue goes within milliseconds, with its io_uring).
bool SocketServedByLiveProcess(const std::string& path) {
  const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  bool connected = false;
  bool full = false;
  for (int attempt = 0; attempt < 10; ++attempt) {
    connected = connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    full = !connected && errno == EAGAIN;
    if (!full) break;
    usleep(10000);
  }
  bool live = connected || full;
  if (connected) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(probe, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0) {
      const int pidfd = OpenPeerPidfd(probe, cred.pid);
      if (pidfd < 0) {
        live = !NoSuchProcess(errno);
      } else {
        pollfd p{pidfd, POLLIN, 0};
        live = poll(&p, 1, 0) == 0;  // readable: the listener exited
        close(pidfd);
      }
    }
  }
  close(probe);
  return live;
}

std::string AbsolutePath(const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  char cwd[4096];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) return p;
  return std::string(cwd) + "/" + p;
}

// The directory of `path`: "." for a bare name.
std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// kInvalidArgument naming `option` (whose value is `value`) unless `dir`,
// where that option puts a file, is an existing directory.
Status CheckDirectory(const std::string& option, const std::string& value,
                      const std::string& dir) {
  const std::string what =
      value == dir ? option : option + " '" + value + "'";
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      return Status::InvalidArgument(what + ": the directory " + dir +
                                     " does not exist");
    }
    if (err == ENOTDIR) {
      return Status::InvalidArgument(what + ": " + dir + " is not a directory");
    }
    return os::ErrnoStatus(err, what + ": stat the directory", dir);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument(what + ": " + dir + " is not a directory");
  }
  return Status::OK();
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
  if (o.shm_dir.empty()) return Status::InvalidArgument("shm_dir is empty");
  // Before anything is created: a missing directory is a bad option, not
  // the I/O error (ENOENT) the region file and the socket would meet.
  Status s = CheckDirectory("shm_dir", o.shm_dir, o.shm_dir);
  if (!s.ok()) return s;
  s = CheckDirectory("socket_path", o.socket_path, DirectoryOf(o.socket_path));
  if (!s.ok()) return s;
  // Is a store already serving this path?
  struct stat st;
  if (lstat(o.socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::AlreadyExists(o.socket_path +
                                   " exists and is not a socket; refusing to "
                                   "replace it");
    }
    if (SocketServedByLiveProcess(o.socket_path)) {
      return Status::AlreadyExists("a live glint store already serves " +
                                   o.socket_path);
    }
    unlink(o.socket_path.c_str());  // left by a store that died
  }
  region_path_ = RegionPathFor(o);
  // A region file without a live store is what a monitor killed with
  // SIGKILL left: its objects and its clients live on. Re-attach it and
  // finish the recovery of clients that died meanwhile; never wipe it.
  struct stat rst;
  if (lstat(region_path_.c_str(), &rst) == 0) {
    s = AttachRegion();
    if (!s.ok()) return s;
    RecoverClients();
    s = CheckRecovered();
    if (!s.ok()) return s;
  } else {
    s = CreateRegion();
    if (!s.ok()) return s;
  }
  s = CreateSocket();
  if (!s.ok()) return s;
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return os::ErrnoStatus(errno, "eventfd for", o.socket_path);
  s = CreateRing();
  if (!s.ok()) return s;
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
  // Built under a temporary name and renamed into place once formatted, so
  // that a file at region_path_ is always a whole region: a monitor killed
  // half-way leaves only the temporary file (removed by the next start).
  const std::string tmp = region_path_ + ".new";
  unlink(tmp.c_str());
  region_fd_ = open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
                    options_.mode);
  if (region_fd_ < 0) return os::ErrnoStatus(errno, "create region", tmp);
  s = FillNewRegion(tmp, &layout);
  if (s.ok() && renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, region_path_.c_str(),
                          RENAME_NOREPLACE) != 0) {
    s = errno == EEXIST
            ? Status::AlreadyExists(region_path_ +
                                    " appeared while this store started; is "
                                    "another glintd starting on " +
                                    options_.socket_path + "?")
            : os::ErrnoStatus(errno, "rename the new region to", region_path_);
  }
  if (!s.ok()) {
    unlink(tmp.c_str());
    return s;
  }
  created_region_ = true;
  store_ = std::make_unique<core::Store>(core::Region(base_, size_));
  return Status::OK();
}

Status MonitorImpl::FillNewRegion(const std::string& tmp,
                                  core::RegionHeader* layout_in) {
  core::RegionHeader& layout = *layout_in;
  fchmod(region_fd_, options_.mode);  // umask must not narrow what was asked
  if (ftruncate(region_fd_, static_cast<off_t>(size_)) != 0) {
    return os::ErrnoStatus(errno, "size region", tmp);
  }
  const bool huge = options_.hugepages;
  // Huge pages are allocated by faults in a mapping advised for them, never
  // by fallocate (which takes normal pages): a huge region is populated by
  // MapShared, through its mapping.
  if (options_.prefault && !huge) {
    // Allocate every page now, so that no client takes a SIGBUS later and no
    // fast path pays a first-touch fault.
    const int err = posix_fallocate(region_fd_, 0, static_cast<off_t>(size_));
    if (err != 0) {
      return Status::OutOfMemory("cannot allocate " + std::to_string(size_) +
                                 " bytes for " + tmp + ": " +
                                 std::strerror(err));
    }
  }
  void* base = nullptr;
  Status s = os::MapShared(region_fd_, static_cast<int64_t>(size_),
                           options_.prefault, &base, huge);
  if (!s.ok()) return Status(s.code(), s.message() + " (" + tmp + ")");
  base_ = static_cast<uint8_t*>(base);
  layout.monitor_pid = static_cast<uint32_t>(getpid());
  layout.flags = (huge ? core::kRegionHugepages : 0u) |
                 (options_.prefault ? 0u : core::kRegionLazyPages);
  layout.create_time_us = os::NowMicros();
  layout.tsc_per_us = os::CalibrateTsc();
  const std::string host = os::Hostname();
  std::strncpy(layout.hostname, host.c_str(), sizeof(layout.hostname) - 1);
  const std::string abs = AbsolutePath(options_.socket_path);
  std::strncpy(layout.socket_path, abs.c_str(), sizeof(layout.socket_path) - 1);
  core::Region::Format(base_, layout);
  if (huge) CheckHugepages();
  return Status::OK();
}

// A region file that cannot be served: never replaced, never wiped.
Status MonitorImpl::Refuse(StatusCode code, const std::string& problem) const {
  return Status(code, "the region file " + region_path_ + " " + problem +
                          "; refusing to serve or replace it (delete it to start "
                          "an empty store on " +
                          options_.socket_path + ")");
}

// Runs the checker over the attached region; a damaged one is refused,
// with its first problems (`glint check` lists them all).
Status MonitorImpl::RefuseIfDamaged(bool quiescent, const std::string& when) const {
  const core::CheckReport rep = core::CheckRegion(core::Region(base_, size_), quiescent);
  if (rep.ok()) return Status::OK();
  std::string first;
  for (size_t i = 0; i < rep.problems.size() && i < 3; ++i) {
    first += (i ? "; " : "") + rep.problems[i];
  }
  return Refuse(StatusCode::kCorrupt, "is corrupt" + when + " (" +
                                          std::to_string(rep.problems.size()) +
                                          " problem(s): " + first + ")");
}

Status MonitorImpl::AttachRegion() {
  const std::string& path = region_path_;
  auto refuse = [&](StatusCode code, const std::string& problem) {
    return Refuse(code, "exists but " + problem);
  };
  region_fd_ = open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (region_fd_ < 0 && errno == ELOOP) {
    // Following it would let whoever made the link choose the file we write.
    return refuse(StatusCode::kCorrupt, "is a symbolic link");
  }
  if (region_fd_ < 0 && errno == EISDIR) {
    return refuse(StatusCode::kCorrupt, "is not a regular file (a directory)");
  }
  if (region_fd_ < 0) return os::ErrnoStatus(errno, "open the existing region", path);
  struct stat st;
  if (fstat(region_fd_, &st) != 0) return os::ErrnoStatus(errno, "fstat", path);
  if (!S_ISREG(st.st_mode)) {
    return refuse(StatusCode::kCorrupt, "is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) < core::kPageSize) {
    return refuse(StatusCode::kCorrupt,
                  "is too small to be a glint region (" +
                      std::to_string(st.st_size) + " bytes)");
  }
  size_ = static_cast<uint64_t>(st.st_size);
  // Not populated: the file may be anything until it validates, and a
  // region's pages were allocated when it was created. A region on huge
  // pages is advised before anything faults it in (as a client maps it), so
  // that our mapping maps them huge too and the check below can see what
  // the region got; Validate refuses unknown flag bits.
  void* base = nullptr;
  Status s = os::MapShared(region_fd_, static_cast<int64_t>(size_), false, &base,
                           (core::Region::FlagsOfFile(region_fd_) &
                            core::kRegionHugepages) != 0);
  if (!s.ok()) return s;
  base_ = static_cast<uint8_t*>(base);
  s = core::Region::Validate(base_, size_);
  if (!s.ok()) {
    return refuse(s.code(), "is not a region this glintd can re-attach: " +
                                s.message());
  }
  // Recovery writes to the region on the word of what it reads: a region
  // whose contents are corrupt (not merely left mid-operation by clients
  // that may still run) is refused before anything is written to it.
  s = RefuseIfDamaged(/*quiescent=*/false, "");
  if (!s.ok()) return s;
  core::RegionHeader* h = reinterpret_cast<core::RegionHeader*>(base_);
  Log("re-attached the existing region " + path + " (capacity " +
      std::to_string(h->heap_size) + " bytes, max-objects " +
      std::to_string(h->max_objects) + ", max-clients " +
      std::to_string(h->max_clients) +
      "): its objects are kept, its clients checked");
  // Its geometry is the region's own; options that differ are ignored.
  core::RegionHeader want;
  core::LayoutParams p{static_cast<uint64_t>(options_.capacity),
                       static_cast<uint64_t>(options_.max_objects),
                       static_cast<uint32_t>(options_.max_clients)};
  if (core::ComputeLayout(p, &want).ok()) {
    auto differs = [&](const char* what, uint64_t asked, uint64_t kept) {
      if (asked == kept) return;
      Log(std::string("warning: ") + what + " " + std::to_string(asked) +
          " was asked, but the existing region's " + what + " " +
          std::to_string(kept) +
          " is kept (delete the region file to change it)");
    };
    differs("capacity", want.heap_size, h->heap_size);
    differs("max-objects", want.max_objects, h->max_objects);
    differs("max-clients", want.max_clients, h->max_clients);
  }
  const std::string abs = AbsolutePath(options_.socket_path);
  if (strncmp(h->socket_path, abs.c_str(), sizeof(h->socket_path)) != 0) {
    Log("warning: the region was created for socket '" +
        std::string(h->socket_path, strnlen(h->socket_path, sizeof(h->socket_path))) +
        "', not " + abs);
  }
  // Clients may read the header right now: a single atomic store.
  std::atomic_ref<uint32_t>(h->monitor_pid)
      .store(static_cast<uint32_t>(getpid()), std::memory_order_relaxed);
  if ((h->flags & core::kRegionHugepages) != 0) {
    CheckHugepages();
  } else if (options_.hugepages) {
    Log("warning: huge pages were asked, but the existing region was created "
        "without them and keeps normal pages (delete the region file to "
        "change it)");
  }
  reattached_ = true;
  store_ = std::make_unique<core::Store>(core::Region(base_, size_));
  return Status::OK();
}

// After a re-attach: every slot still taken belongs to a client registered
// by an earlier monitor. Clients whose process is gone (no pidfd, or the
// pid now names a process that started at another time) are recovered now;
// live ones are watched through their pidfd and recovered when they exit.
// They have no socket to this monitor, so they leave only by exiting.
void MonitorImpl::RecoverClients() {
  const core::Region r(base_, size_);
  const uint32_t n = r.header()->max_clients;  // validated: <= kMaxClients
  int recovered = 0;
  int watched = 0;
  for (uint32_t i = 0; i < n; ++i) {
    core::ClientSlot* cs = r.client(i);
    if (core::LoadAcquire(cs->state) == core::kClientFree) continue;
    const uint32_t raw_pid = core::LoadRelaxed(cs->pid);
    const uint64_t start = core::LoadRelaxed(cs->pid_start_time);
    const pid_t pid = static_cast<pid_t>(raw_pid);
    int pidfd = -1;
    std::string why;
    if (core::LoadAcquire(cs->state) == core::kClientRecovering) {
      // A monitor found it dead and was killed while recovering it.
      why = "was being recovered when the last monitor stopped";
    } else if (raw_pid == 0 || raw_pid > static_cast<uint32_t>(INT32_MAX)) {
      why = "no valid pid in its slot";
    } else {
      pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
      if (pidfd < 0 && !NoSuchProcess(errno)) {
        // Cannot tell (out of descriptors?): leave the slot as it is rather
        // than recover a client that may still run.
        Log("warning: client " + std::to_string(i) + " (pid " +
            std::to_string(pid) + "): cannot watch it (pidfd: " +
            std::strerror(errno) + "); its slot stays taken");
        continue;
      }
      if (pidfd < 0) {
        why = "died while no monitor ran";
      } else {
        // Read after the pidfd is open: if the pid is reused now, the
        // start time shows it; if later, the pidfd reports the exit.
        const uint64_t now_start = ProcessStartTime(pid);
        if (start != 0 && now_start != 0 && now_start != start) {
          close(pidfd);
          pidfd = -1;
          why = "died while no monitor ran; its pid now names another process";
        }
      }
    }
    const uint64_t id = next_conn_id_++;
    Conn& c = conns_[id];
    c.id = id;
    c.registered = true;
    c.slot = i;
    c.pid = pid;
    clients_.fetch_add(1);
    if (pidfd < 0) {
      ++recovered;
      c.why = ", " + why + "; recovered";
      Log("client " + std::to_string(i) + " (pid " + std::to_string(raw_pid) +
          ") " + why + "; recovering it");
      Recover(&c);  // a deferral is retried once the loop runs
      continue;
    }
    c.pidfd = pidfd;  // armed when the loop starts
    ++watched;
    Log("client " + std::to_string(i) + " (pid " + std::to_string(pid) +
        ") still runs; watching it");
  }
  Log("re-attach: " + std::to_string(recovered) + " dead client(s) recovered, " +
      std::to_string(watched) + " live one(s) watched");
}

// After the re-attach's recovery: when no client is left (none still runs,
// none deferred), nothing can be mid-operation, and the store must pass the
// exact checks too: every taken block owned, every span's count equal to
// its bitmap. (The check before recovery can only be the live one, which
// cannot tell a damaged count from a client's reservation.) A store that
// fails them is refused, as a corrupt one is before recovery.
Status MonitorImpl::CheckRecovered() {
  if (clients_.load() != 0) return Status::OK();
  return RefuseIfDamaged(/*quiescent=*/true, " with every client recovered");
}

// Whether the kernel gave the region huge pages is decided by the file
// system the region lives on (a tmpfs mount's huge= option: never, the
// default, whatever the advice; advise, always or within_size allow them)
// and by /sys/kernel/mm/transparent_hugepage/shmem_enabled (deny forbids
// them, force imposes them). Rather than second-guess those rules, look at
// the result: the header page, written by now, is on a huge page or not.
void MonitorImpl::CheckHugepages() {
  if (os::HugeMappedKib(base_) > 0) {
    Log("the region is on huge pages");
    return;
  }
  Log("warning: huge pages were asked, but the region " + region_path_ +
      " is on normal pages: its file system must allow them (a tmpfs "
      "mounted with huge=advise, e.g. 'mount -o remount,huge=advise " +
      options_.shm_dir + "', and transparent huge pages not 'deny' in "
      "/sys/kernel/mm/transparent_hugepage/shmem_enabled)");
}

Status MonitorImpl::CreateSocket() {
  // Blocking: only the ring accepts on it, and it waits without a thread.
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
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

bool MonitorImpl::Reply(int fd, StatusCode code, const std::string& msg,
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
  return sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(sizeof(w));
}

void MonitorImpl::OnHello(Conn* c) {
  core::Hello h{};
  const ssize_t n = recv(c->fd, &h, sizeof(h), MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    Leave(c, "");
    return;
  }
  if (n < 0) {
    ArmSocket(c);
    return;
  }
  if (n != sizeof(h) || h.magic != core::kHelloMagic) {
    Reply(c->fd, StatusCode::kNotConnected, "not a glint hello", 0, 0, false);
    Leave(c, "");
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
    Leave(c, "");
    return;
  }
  // Who is it? Its pidfd is opened now, before it gets a slot: the socket
  // alone would hide its death from us if a child inherited the socket.
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      cred.pid <= 0) {
    Reply(c->fd, StatusCode::kIOError,
          "the monitor cannot tell which process connected", 0, 0, false);
    Leave(c, "");
    return;
  }
  const int pidfd = OpenPeerPidfd(c->fd, cred.pid);
  if (pidfd < 0) {
    const int err = errno;
    if (err != ESRCH) {
      Reply(c->fd, StatusCode::kIOError,
            std::string("the monitor cannot watch this process (pidfd: ") +
                std::strerror(err) + ")",
            0, 0, false);
      Log("refused a client (pid " + std::to_string(cred.pid) +
          "): no pidfd: " + std::strerror(err));
    }
    Leave(c, "");  // ESRCH: it is gone already
    return;
  }
  const uint64_t start_time = ProcessStartTime(cred.pid);
  const core::Region r(base_, size_);
  core::RegionHeader* hdr = r.header();
  for (uint32_t i = 0; i < hdr->max_clients; ++i) {
    core::ClientSlot* cs = r.client(i);
    if (core::LoadAcquire(cs->state) != core::kClientFree) continue;
    const uint64_t serial = hdr->next_client_serial.fetch_add(1);
    core::StoreRelaxed(cs->pid, static_cast<uint32_t>(cred.pid));
    core::StoreRelaxed(cs->pid_start_time, start_time);
    core::StoreRelaxed(cs->serial, serial);
    core::StoreRelease(cs->state, static_cast<uint32_t>(core::kClientActive));
    c->registered = true;
    c->slot = i;
    c->pid = cred.pid;
    c->pidfd = pidfd;
    clients_.fetch_add(1);
    if (!Reply(c->fd, StatusCode::kOk, "", i, serial, true)) {
      // It hung up before our answer (a Connect that timed out while this
      // monitor was stopped or busy): it never got the region, so its slot
      // comes back now, not when its process exits.
      Leave(c, ", hung up before the monitor answered");
      return;
    }
    Log("client " + std::to_string(i) + " connected (pid " +
        std::to_string(cred.pid) + ", serial " + std::to_string(serial) + ")");
    ArmPidfd(c);
    ArmSocket(c);  // for its Bye and its hang-up
    return;
  }
  close(pidfd);
  Reply(c->fd, StatusCode::kTooManyClients,
        "all " + std::to_string(hdr->max_clients) + " client slots are taken",
        0, 0, false);
  Log("refused a client: all " + std::to_string(hdr->max_clients) +
      " client slots are taken");
  Leave(c, "");
}

// A client is gone: release what it held, free its slot, forget it. `why`
// completes the log line ("" or ", ...").
void MonitorImpl::Leave(Conn* c, const char* why) {
  // A poll in the ring holds its file open: cancel it, or closing our
  // descriptor would not close the socket.
  if (c->fd_polled) Cancel(Tag(c->id, kOpSocket));
  if (c->pidfd_polled) Cancel(Tag(c->id, kOpPidfd));
  c->fd_polled = c->pidfd_polled = false;
  if (c->pidfd >= 0) close(c->pidfd);
  c->pidfd = -1;
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  if (c->registered) {
    c->why = why;
    Recover(c);
    return;
  }
  c->gone = true;
}

// Recovers the slot of a client that left (a no-op check after a Bye). A
// step that must wait for a live client a few instructions into an
// allocation makes RecoverClient return false: try again in 2 ms, from
// the ring, without blocking anyone.
void MonitorImpl::Recover(Conn* c) {
  if (!RecoverClient(store_.get(), c->slot)) {
    c->retrying = true;
    if (ring_ready_) Timer(&g_recover_retry, Tag(c->id, kOpRetry));
    return;  // before the loop runs: Loop() arms the timer
  }
  c->retrying = false;
  c->registered = false;
  clients_.fetch_sub(1);
  Log("client " + std::to_string(c->slot) + " left (pid " +
      std::to_string(c->pid) + c->why + ")");
  c->gone = true;
}

void MonitorImpl::OnClientReadable(Conn* c) {
  uint32_t words[16];
  const ssize_t r = recv(c->fd, words, sizeof(words), MSG_DONTWAIT);
  if (r > 0) {
    for (ssize_t i = 0; i + 4 <= r; i += 4) {
      if (words[i / 4] == core::kByeMagic) c->said_bye = true;
    }
    ArmSocket(c);
    return;
  }
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
    ArmSocket(c);
    return;
  }
  // The socket closed. After a Bye the client already released everything:
  // free the slot now. Without one, the process may still run (it closed
  // its descriptors, or exits normally and is still on its way out): its
  // pidfd, watched since registration, says when it is gone.
  if (c->said_bye || c->pidfd < 0) {
    Leave(c, "");
    return;
  }
  close(c->fd);
  c->fd = -1;
}

io_uring_sqe* MonitorImpl::Sqe() {
  for (;;) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe != nullptr) return sqe;
    // Full: hand what is queued to the kernel. The loop submits after every
    // batch, so this is rare.
    const int r = io_uring_submit(&ring_);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      Log(std::string("warning: io_uring_submit: ") + std::strerror(-r));
    }
  }
}

void MonitorImpl::PollFd(int fd, uint64_t user_data) {
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_poll_add(sqe, fd, POLLIN);
  io_uring_sqe_set_data64(sqe, user_data);
}

void MonitorImpl::Timer(__kernel_timespec* ts, uint64_t user_data) {
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_timeout(sqe, ts, 0, 0);
  io_uring_sqe_set_data64(sqe, user_data);
}

void MonitorImpl::ArmAccept() {
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, Tag(0, kOpAccept));
}

void MonitorImpl::ArmSocket(Conn* c) {
  if (c->fd < 0 || c->fd_polled) return;
  PollFd(c->fd, Tag(c->id, kOpSocket));
  c->fd_polled = true;
}

void MonitorImpl::ArmPidfd(Conn* c) {
  if (c->pidfd < 0 || c->pidfd_polled) return;
  PollFd(c->pidfd, Tag(c->id, kOpPidfd));
  c->pidfd_polled = true;
}

void MonitorImpl::Cancel(uint64_t user_data) {
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_poll_remove(sqe, user_data);
  io_uring_sqe_set_data64(sqe, Tag(0, kOpCancel));
}

void MonitorImpl::OnAccept(int32_t res) {
  if (res >= 0) {
    const uint64_t id = next_conn_id_++;
    Conn& c = conns_[id];
    c.id = id;
    c.fd = res;
    ArmSocket(&c);
    Timer(&g_hello_timeout, Tag(id, kOpHelloTimer));
    ArmAccept();
    return;
  }
  const int err = -res;
  if (err == ECONNABORTED || err == EINTR || err == EAGAIN) {
    ArmAccept();
    return;
  }
  // Out of descriptors (or another failure that may repeat): stop accepting
  // for a while instead of spinning; connectors wait in the backlog.
  Log("warning: accept failed (" + std::string(std::strerror(err)) +
      "); pausing new connections for 100 ms");
  Timer(&g_accept_pause, Tag(0, kOpAcceptPause));
}

void MonitorImpl::Dispatch(uint64_t user_data, int32_t res) {
  const Op op = static_cast<Op>(user_data & ((1u << kOpBits) - 1));
  const uint64_t id = user_data >> kOpBits;
  switch (op) {
    case kOpAccept:
      OnAccept(res);
      return;
    case kOpAcceptPause:
      ArmAccept();
      return;
    case kOpWake:
    case kOpCancel:
      return;
    default:
      break;
  }
  auto it = conns_.find(id);
  if (it == conns_.end() || it->second.gone) return;  // a late completion
  Conn* c = &it->second;
  if (c->retrying) {
    // Its descriptors are closed; only the retry timer concerns it now.
    if (op == kOpRetry) Recover(c);
    return;
  }
  if (op == kOpSocket) {
    c->fd_polled = false;
    if (res == -ECANCELED || c->fd < 0) return;
    if (!c->registered) {
      OnHello(c);
    } else {
      OnClientReadable(c);
    }
  } else if (op == kOpPidfd) {
    c->pidfd_polled = false;
    if (res == -ECANCELED) return;
    // The process exited (or its pidfd failed, which we cannot watch
    // again): whatever it left is ours to release.
    Leave(c, c->said_bye ? "" : ", exited without a Bye; recovered");
  } else if (op == kOpHelloTimer) {
    if (!c->registered) Leave(c, "");  // connected but never said Hello
  }
}

void MonitorImpl::Loop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    PollFd(wake_fd_, Tag(0, kOpWake));
    ArmAccept();
    for (auto& [id, c] : conns_) {
      ArmSocket(&c);
      ArmPidfd(&c);
      if (c.retrying) Timer(&g_recover_retry, Tag(id, kOpRetry));
    }
    io_uring_submit(&ring_);
  }
  struct Event {
    uint64_t user_data;
    int32_t res;
  };
  Event events[128];
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    const int w = io_uring_wait_cqe(&ring_, &cqe);
    if (w == -EINTR) continue;
    if (w < 0) {
      Log(std::string("error: the monitor's ring failed: ") + std::strerror(-w));
      return;
    }
    // Everything below changes conns_ and the ring; a fork() waits for it.
    std::lock_guard<std::mutex> lock(mu_);
    unsigned head;
    unsigned n = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if (n == sizeof(events) / sizeof(events[0])) break;
      events[n++] = {io_uring_cqe_get_data64(cqe), cqe->res};
    }
    io_uring_cq_advance(&ring_, n);
    for (unsigned i = 0; i < n; ++i) {
      if (events[i].user_data == Tag(0, kOpWake)) return;  // shutdown
      Dispatch(events[i].user_data, events[i].res);
    }
    std::erase_if(conns_, [](const auto& kv) { return kv.second.gone; });
    io_uring_submit(&ring_);
  }
}

void MonitorImpl::MarkInert() {
  inert_ = true;
  for (int* fd : {&listen_fd_, &wake_fd_, &region_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  for (auto& [id, c] : conns_) {
    if (c.fd >= 0) close(c.fd);
    if (c.pidfd >= 0) close(c.pidfd);
  }
  conns_.clear();
  // The ring stays the parent's: drop our mapping and descriptor only.
  if (ring_ready_) io_uring_queue_exit(&ring_);
  ring_ready_ = false;
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
  // Tearing the ring down cancels what is in flight and lets go of the
  // files its requests held.
  if (ring_ready_) io_uring_queue_exit(&ring_);
  for (auto& [id, c] : conns_) {
    if (c.fd >= 0) close(c.fd);
    if (c.pidfd >= 0) close(c.pidfd);
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(options_.socket_path.c_str());
  }
  if (wake_fd_ >= 0) close(wake_fd_);
  if (region_fd_ >= 0) close(region_fd_);
  // A clean stop of a store that served removes its region. A start that
  // failed leaves a region it re-attached or refused (Start removes one it
  // created).
  if (thread_ != nullptr) unlink(region_path_.c_str());
  if (base_ != nullptr) munmap(base_, size_);
}

Status MonitorImpl::CreateRing() {
  // 256 entries; completions beyond the CQ ring's 512 wait in the kernel
  // (IORING_FEAT_NODROP, Linux 5.5) rather than being lost.
  const int r = io_uring_queue_init(256, &ring_, 0);
  if (r < 0) {
    return Status::IOError(
        std::string("cannot set up the monitor's io_uring: ") +
        std::strerror(-r) +
        " (is io_uring disabled by kernel.io_uring_disabled or a seccomp "
        "profile?)");
  }
  ring_ready_ = true;
  return Status::OK();
}

}  // namespace internal

Status Monitor::Start(const StoreOptions& options, std::unique_ptr<Monitor>* out) {
  auto impl = std::make_unique<internal::MonitorImpl>();
  Status s = impl->Init(options);
  if (!s.ok()) {
    // Leave nothing half-built behind.
    // A region it re-attached (or refused) stays: it holds objects.
    const bool made_socket = impl->listen_fd_ >= 0;
    if (made_socket) unlink(options.socket_path.c_str());
    if (impl->created_region_) unlink(impl->region_path_.c_str());
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
bool Monitor::reattached() const { return impl_->reattached_; }
int64_t Monitor::capacity() const {
  return static_cast<int64_t>(
      reinterpret_cast<const core::RegionHeader*>(impl_->base_)->heap_size);
}
int32_t Monitor::max_clients() const {
  return static_cast<int32_t>(
      reinterpret_cast<const core::RegionHeader*>(impl_->base_)->max_clients);
}

}  // namespace glint
