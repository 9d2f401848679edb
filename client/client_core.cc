// Copyright (c) glint authors.

#include "client/client_core.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <chrono>

#include "core/atomics.h"
#include "core/crash_point.h"
#include "core/object_table.h"
#include "core/os.h"
#include "core/protocol.h"

namespace glint::internal {

using core::kNoSlot;
using core::LoadAcquire;
using core::LoadRelaxed;
using core::LoadSeqCst;
using core::StoreRelaxed;
using core::StoreRelease;

namespace {

constexpr uint32_t kBusy = 1u << 31;

// How long Connect waits for the monitor: to take the connection, then to
// answer the Hello.
constexpr int64_t kConnectTimeoutSeconds = 5;

// Sets the socket timeout `opt` (SO_SNDTIMEO or SO_RCVTIMEO) to the time
// left until `deadline_ns` (MonotonicNanos). False, with errno EAGAIN, when
// none is left: the caller's wait then ends as a timed-out one would.
bool ArmTimeout(int fd, int opt, int64_t deadline_ns) {
  const int64_t left = deadline_ns - os::MonotonicNanos();
  if (left <= 0) {
    errno = EAGAIN;
    return false;
  }
  timeval tv{static_cast<time_t>(left / 1000000000),
             static_cast<suseconds_t>((left % 1000000000) / 1000)};
  if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1;  // {0, 0} is forever
  setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
  return true;
}

// ------------------------------------------------------------ fork safety
// A child of fork() inherits every Client of its parent. The child must not
// act for the parent's client slot, and must not keep the parent's
// registration socket open (the monitor would miss the parent's exit).
std::mutex g_cores_mu;
std::set<ClientCore*>* g_cores = nullptr;
std::once_flag g_atfork_once;

void AtForkPrepare() { g_cores_mu.lock(); }
void AtForkParent() { g_cores_mu.unlock(); }
void AtForkChild() {
  if (g_cores != nullptr) {
    for (ClientCore* c : *g_cores) c->MarkInert();
  }
  g_cores_mu.unlock();
}

// ------------------------------------------------------------ record cache
// One idle log record per thread (see ClientCore::AcquireRecord), of the
// client `core_id`. Plain thread-local data: only its thread touches it.
// Initial-exec TLS: a plain %fs-relative access, no __tls_get_addr call.
std::atomic<uint64_t> g_next_core_id{1};
struct RecordCache {
  uint64_t core_id;
  core::OpRecord* rec;
  bool exit_hook;  // t_record_returner is registered for this thread
  // t_record_returner has run: the thread is exiting, and an operation
  // made from a later thread_local destructor must not cache its record
  // (nothing would give it back).
  bool exited;
};
__attribute__((tls_model("initial-exec"))) constinit thread_local RecordCache
    t_record_cache = {0, nullptr, false, false};

// Gives the thread's cached record back to its client when the thread
// exits, if that client still exists (else the record went with it).
// Touched only when a thread first caches a record, which registers it.
struct RecordReturner {
  ~RecordReturner();
};
thread_local RecordReturner t_record_returner;

void InstallForkHandlers() {
  std::call_once(g_atfork_once, [] {
    pthread_atfork(AtForkPrepare, AtForkParent, AtForkChild);
  });
}

// Tells the monitor that this client holds nothing in the region (4 bytes;
// the monitor frees the slot when the socket then closes).
void SendBye(int fd) {
  const uint32_t bye = core::kByeMagic;
  (void)send(fd, &bye, sizeof(bye), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// Connect gives up after its Hello. The monitor may have given this
// connection a slot just before (its answer went unread): the Bye makes it
// free the slot when the socket closes, not when this process exits
// (without a Bye, a closed socket only means "watch the pidfd", since the
// process may still use the region). The shutdown ends the stream for the
// monitor even if a fork() in another thread copied the descriptor
// meanwhile; nobody else uses this socket.
void AbandonHandshake(int fd) {
  SendBye(fd);
  shutdown(fd, SHUT_WR);
  close(fd);
}

// A thread of ours is between the two instructions of a holder-bit flip;
// it is normally done within nanoseconds, but it may have been preempted.
void BusyWait(uint32_t spins) {
  if (spins < 64) {
    core::CpuRelax();
  } else {
    sched_yield();
  }
}

void Register(ClientCore* c) {
  InstallForkHandlers();
  std::lock_guard<std::mutex> l(g_cores_mu);
  if (g_cores == nullptr) g_cores = new std::set<ClientCore*>();
  g_cores->insert(c);
}

void Unregister(ClientCore* c) {
  std::lock_guard<std::mutex> l(g_cores_mu);
  if (g_cores != nullptr) g_cores->erase(c);
}

RecordReturner::~RecordReturner() {
  RecordCache& tc = t_record_cache;
  tc.exited = true;
  if (tc.rec == nullptr) return;
  std::lock_guard<std::mutex> l(g_cores_mu);
  if (g_cores != nullptr) {
    for (ClientCore* c : *g_cores) {
      if (c->id() == tc.core_id) {
        c->GiveBackRecord(tc.rec);
        break;
      }
    }
  }
  tc.rec = nullptr;
}

// The name and metadata block is read by other clients without holding the
// object (a creator comparing names, ListObjects), possibly while its memory
// is being reused; every access to it is therefore a relaxed atomic byte
// access, so racing with a reuse is never a data race.
void AtomicCopyIn(uint8_t* dst, const void* src, size_t n) {
  auto* d = reinterpret_cast<std::atomic<uint8_t>*>(dst);
  const auto* p = static_cast<const uint8_t*>(src);
  for (size_t i = 0; i < n; ++i) d[i].store(p[i], std::memory_order_relaxed);
}

void AtomicCopyOut(void* dst, const uint8_t* src, size_t n) {
  const auto* s = reinterpret_cast<const std::atomic<uint8_t>*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  for (size_t i = 0; i < n; ++i) d[i] = s[i].load(std::memory_order_relaxed);
}

// ------------------------------------------------------------ info block
// [name][pad to 4][u32 count]{[u32 klen][u32 vlen][key][value]}*
// md: nullptr for none.
uint64_t InfoSize(std::string_view name, const Metadata* md) {
  if (name.empty() && (md == nullptr || md->empty())) return 0;
  uint64_t n = (name.size() + 3) / 4 * 4 + 4;
  if (md != nullptr) {
    for (const auto& [k, v] : *md) n += 8 + k.size() + v.size();
  }
  return n;
}

void WriteInfo(uint8_t* dst, uint64_t size, std::string_view name,
               const Metadata* md) {  // md: nullptr for none
  // Straight into the region, no temporary: the create path stays free of
  // heap allocations.
  uint64_t off = 0;
  auto put = [&](const void* p, size_t n) {
    AtomicCopyIn(dst + off, p, n);
    off += n;
  };
  static constexpr uint8_t kZeros[4] = {0, 0, 0, 0};
  put(name.data(), name.size());
  put(kZeros, (name.size() + 3) / 4 * 4 - name.size());
  const uint32_t count = md != nullptr ? static_cast<uint32_t>(md->size()) : 0;
  put(&count, 4);
  if (md == nullptr) return;
  for (const auto& [k, v] : *md) {
    const uint32_t lens[2] = {static_cast<uint32_t>(k.size()),
                              static_cast<uint32_t>(v.size())};
    put(lens, 8);
    put(k.data(), k.size());
    put(v.data(), v.size());
  }
  (void)size;  // == off: InfoSize computed the same layout
}

// Walks the metadata of an info block of `size` bytes; calls fn(key, value
// offset, value length) per entry until it returns true. Bounds-checked.
template <typename Fn>
bool ForEachMeta(const uint8_t* p, uint64_t size, uint16_t name_len, Fn fn) {
  if (size == 0) return false;
  uint64_t off = (uint64_t{name_len} + 3) / 4 * 4;
  if (off + 4 > size) return false;
  uint32_t count;
  std::memcpy(&count, p + off, 4);
  off += 4;
  for (uint32_t i = 0; i < count; ++i) {
    if (off + 8 > size) return false;
    uint32_t kl, vl;
    std::memcpy(&kl, p + off, 4);
    std::memcpy(&vl, p + off + 4, 4);
    if (off + 8 + uint64_t{kl} + vl > size) return false;
    std::string_view key(reinterpret_cast<const char*>(p + off + 8), kl);
    if (fn(key, off + 8 + kl, vl)) return true;
    off += 8 + uint64_t{kl} + vl;
  }
  return false;
}

// now + timeout_ms, saturating (-1, or any timeout past 2262, is forever).
int64_t DeadlineAfter(int64_t now_ns, int64_t timeout_ms) {
  if (timeout_ms < 0 || timeout_ms > (INT64_MAX - now_ns) / 1000000) {
    return INT64_MAX;
  }
  return now_ns + timeout_ms * 1000000;
}

// The deadline of a wait that starts now (see ClientCore::WaitFor): with
// timeout 0 no wait at all, and no clock read.
constexpr int64_t kNoWait = INT64_MIN;
int64_t WaitDeadline(int64_t timeout_ms) {
  return timeout_ms == 0 ? kNoWait : DeadlineAfter(os::MonotonicNanos(), timeout_ms);
}

// BuildObject's refusals of a size, out of line (cold).
[[gnu::noinline, gnu::cold]] Status BadSize(int64_t size, uint64_t heap_size) {
  if (size < 0) {
    return Status::InvalidArgument("object size " + std::to_string(size) + " is negative");
  }
  return Status::InvalidArgument("object size " + std::to_string(size) +
                                 " exceeds the store's capacity of " +
                                 std::to_string(heap_size) + " bytes");
}

// A failed create's status, naming the id (cold).
[[gnu::noinline, gnu::cold]] Status WithId(const Status& s, const ObjectId& id) {
  return Status(s.code(), s.message() + " (id " + id.hex() + ")");
}

Status ValidateName(std::string_view name) {
  if (name.size() > kMaxNameLength) {
    return Status::InvalidArgument("name is " + std::to_string(name.size()) +
                                   " bytes; the limit is 255");
  }
  return Status::OK();
}

}  // namespace

// ------------------------------------------------------------ connect

Status ClientCore::Connect(const std::string& path,
                           std::unique_ptr<ClientCore>* out) {
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status::InvalidArgument("socket path '" + path +
                                   "' is empty or longer than 107 bytes");
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    const int err = errno;
    // A directory on the way the user may not search hides whether a store
    // is there: that is a permission to fix, not a store to start.
    if (err == EACCES || err == EPERM) {
      return os::ErrnoStatus(err, "cannot reach the glint socket", path);
    }
    return Status::NotConnected("no glint store at " + path + ": " +
                                std::strerror(err));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Status::NotConnected("no glint store at " + path +
                                ": not a unix socket");
  }
  // Before the socket exists: a fork() in another thread must already find
  // the handler that closes it in the child.
  InstallForkHandlers();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return os::ErrnoStatus(errno, "socket for", path);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // A monitor answers at once; a socket that never answers is not a store.
  // The send timeout also bounds connect(), which on a unix socket waits
  // while the listener's queue is full (a frozen or swamped monitor); the
  // receive timeout bounds the wait for the Welcome.
  // A signal interrupts either wait (EINTR) and the call is made again
  // with the time left, so that signals cannot stretch a step past its 5 s.
  int64_t deadline = os::MonotonicNanos() + kConnectTimeoutSeconds * 1000000000;
  int rc;
  do {  // a unix socket whose connect() was interrupted is still unconnected
    rc = ArmTimeout(fd, SO_SNDTIMEO, deadline)
             ? connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
             : -1;
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    close(fd);
    if (err == EAGAIN) {
      return Status::NotConnected(
          "the glint monitor at " + path + " accepted no connection for " +
          std::to_string(kConnectTimeoutSeconds) +
          " s (its queue of new connections stayed full: glintd is stopped "
          "or swamped)");
    }
    if (err == ECONNREFUSED) {
      // Typically a glintd that was killed: its socket file stays, its
      // clients keep working, and a glintd restarted on this socket
      // re-attaches the store.
      return Status::NotConnected(
          "no glint monitor serves " + path +
          " (connection refused: glintd is not running; start it again on "
          "this socket to re-attach its store)");
    }
    if (err == ENOENT || err == ENOTSOCK || err == EPROTOTYPE) {
      // Gone since the stat above, or not a stream socket: no store there.
      return Status::NotConnected("no glint store at " + path + ": connect: " +
                                  std::strerror(err));
    }
    return os::ErrnoStatus(err, "connect to", path);
  }
  core::Hello hello{core::kHelloMagic, core::kProtocolVersion,
                    core::kLayoutVersion, 0};
  ssize_t sent;
  do {
    sent = send(fd, &hello, sizeof(hello), MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent != sizeof(hello)) {
    const int err = errno;
    close(fd);
    return Status::NotConnected("no glint monitor serves " + path + ": " +
                                std::strerror(err));
  }
  core::Welcome w{};
  char cbuf[CMSG_SPACE(sizeof(int))];
  iovec iov{&w, sizeof(w)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  // A socket with a receive timeout is not restarted after a signal
  // handler, nor after io_uring task work (a Monitor in this process): the
  // call fails with EINTR before anything arrives. Ask again, for the time
  // left.
  deadline = os::MonotonicNanos() + kConnectTimeoutSeconds * 1000000000;
  ssize_t n;
  do {
    n = ArmTimeout(fd, SO_RCVTIMEO, deadline)
            ? recvmsg(fd, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC)
            : -1;
  } while (n < 0 && errno == EINTR);
  const int recv_err = n < 0 ? errno : 0;
  int region_fd = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      std::memcpy(&region_fd, CMSG_DATA(c), sizeof(int));
    }
  }
  if (n != sizeof(w) || w.magic != core::kHelloMagic) {
    if (region_fd >= 0) close(region_fd);
    AbandonHandshake(fd);
    // n <= 0: the connection closed unanswered, as it does for a moment
    // after glintd is killed (the kernel still holds its listening socket).
    return Status::NotConnected(
        "no glint monitor serves " + path +
        (n == 0 ? ": the connection closed without an answer (glintd "
                  "stopped or was killed?)"
         : n < 0 ? std::string(": no answer (") + std::strerror(recv_err) + ")"
                 : ": the socket did not answer as a glint monitor"));
  }
  w.message[sizeof(w.message) - 1] = 0;
  const auto code = static_cast<StatusCode>(w.status_code);
  if (code != StatusCode::kOk) {
    if (region_fd >= 0) close(region_fd);
    close(fd);
    return Status(code, std::string(w.message) + " (store " + path + ")");
  }
  if (region_fd < 0) {
    AbandonHandshake(fd);
    return Status::IOError("store " + path + " sent no region descriptor");
  }
  std::unique_ptr<ClientCore> core(new ClientCore());
  core->id_ = g_next_core_id.fetch_add(1, std::memory_order_relaxed);
  core->sock_fd_ = fd;
  core->slot_ = w.client_slot;
  core->serial_ = static_cast<uint32_t>(w.client_serial);
  core->pid_ = static_cast<uint32_t>(getpid());
  core->socket_path_ = path;
  Status s = core->Attach(region_fd, w.region_size);
  close(region_fd);
  if (!s.ok()) {
    return Status(s.code(), s.message() + " (store " + path + ")");
  }
  Register(core.get());
  *out = std::move(core);
  return Status::OK();
}

Status ClientCore::Attach(int region_fd, uint64_t region_size) {
  struct stat st;
  if (fstat(region_fd, &st) != 0) return os::ErrnoStatus(errno, "fstat", "region");
  if (static_cast<uint64_t>(st.st_size) != region_size) {
    return Status::Corrupt("region file size differs from what the monitor said");
  }
  // A store on huge pages is mapped with them only if the mapping is
  // advised before it is populated, and a store that was not prefaulted is
  // not populated (that would allocate every page).
  const uint32_t flags = core::Region::FlagsOfFile(region_fd);
  void* base = nullptr;
  Status s = os::MapShared(region_fd, static_cast<int64_t>(region_size),
                           (flags & core::kRegionLazyPages) == 0, &base,
                           (flags & core::kRegionHugepages) != 0);
  if (!s.ok()) return s;
  region_ = core::Region(static_cast<uint8_t*>(base), region_size);
  s = core::Region::Validate(region_.base(), region_size);
  if (!s.ok()) return s;
  if (slot_ >= region_.header()->max_clients) {
    return Status::Corrupt("monitor gave a client slot beyond the table");
  }
  store_ = std::make_unique<core::Store>(region_);
  hints_.owner = slot_;
  records_ = region_.record(slot_, 0);
  for (uint32_t i = 0; i < core::kRecordsPerClient; ++i) {
    core::OpRecord* r = region_.record(slot_, i);
    std::memset(static_cast<void*>(r), 0, sizeof(*r));
  }
  idle_records_.store((uint64_t{1} << core::kRecordsPerClient) - 1,
                      std::memory_order_release);
  local_refs_bytes_ = region_.num_obj_slots() * sizeof(std::atomic<uint32_t>);
  void* refs = mmap(nullptr, local_refs_bytes_, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (refs == MAP_FAILED) return os::ErrnoStatus(errno, "mmap", "reference table");
  local_refs_ = static_cast<std::atomic<uint32_t>*>(refs);
  address_host_ = std::string(region_.header()->hostname,
                              strnlen(region_.header()->hostname, 64));
  return Status::OK();
}

ClientCore::~ClientCore() { Close(); }

bool ClientCore::Close() {
  if (closed_) return false;
  closed_ = true;
  Unregister(this);
  // A child of fork() cannot tell which handles it inherited (its parent
  // goes on sealing and aborting them): it keeps the core for them.
  bool handles = inert_;
  if (!inert_ && store_ != nullptr) {
    // Give back every reference and abort every build at once, so the store
    // is whole when the destructor returns; the monitor repeats this (a
    // no-op then) when it sees the socket close. What it finds held or
    // being built are Buffers and MutableBuffers that are still alive.
    RecordGuard g(this, RecordGuard::kClean);
    handles = store_->ReleaseClient(slot_, g.rec) > 0;
  }
  // This thread's cached record, if ours (ReleaseClient's just above
  // included), goes back, so the thread can cache one of its next client.
  // Other threads' cached records of ours are dropped when they exit.
  if (t_record_cache.rec != nullptr && t_record_cache.core_id == id_) {
    GiveBackRecord(t_record_cache.rec);
    t_record_cache.rec = nullptr;
  }
  if (sock_fd_ >= 0) {
    // A plain close after the Bye: a child made without glibc's fork
    // handlers may still hold the socket and use the region.
    if (!inert_) SendBye(sock_fd_);
    close(sock_fd_);
    sock_fd_ = -1;
  }
  if (local_refs_ != nullptr) munmap(local_refs_, local_refs_bytes_);
  local_refs_ = nullptr;
  store_.reset();
  if (region_.base() != nullptr) {
    os::Unmap(region_.base(), static_cast<int64_t>(region_.size()));
  }
  region_ = core::Region();
  records_ = nullptr;
  inert_ = true;
  return handles;
}

core::OpRecord* ClientCore::AcquireRecord(bool* from_cache) {
  RecordCache& tc = t_record_cache;
  if (tc.rec != nullptr && tc.core_id == id_) {
    core::OpRecord* r = tc.rec;  // the common case: no atomic at all
    tc.rec = nullptr;
    *from_cache = true;
    return r;
  }
  *from_cache = false;
  uint64_t v = idle_records_.load(std::memory_order_relaxed);
  for (uint32_t spins = 0;; ++spins) {  // usually one CAS, no spin
    if (v == 0) {
      BusyWait(spins);
      v = idle_records_.load(std::memory_order_relaxed);
      continue;
    }
    if (idle_records_.compare_exchange_weak(v, v & (v - 1),
                                            std::memory_order_acquire)) {
      return records_ + std::countr_zero(v);
    }
  }
}

core::OpRecord* ClientCore::TryAcquireRecord(int keep_idle) {
  uint64_t v = idle_records_.load(std::memory_order_relaxed);
  while (std::popcount(v) > keep_idle) {
    if (idle_records_.compare_exchange_weak(v, v & (v - 1),
                                            std::memory_order_acquire)) {
      return records_ + std::countr_zero(v);
    }
  }
  return nullptr;
}

// Cleared field by field (the monitor may read a live client's record at
// any time), then marked idle.
void ClientCore::ReleaseRecord(core::OpRecord* r, bool clean, bool from_cache) {
  if (clean) {
    StoreRelease(r->op, static_cast<uint32_t>(core::kOpNone));
  } else {
    core::ClearRecord(*r);
  }
  RecordCache& tc = t_record_cache;
  // Back to the cache it came from (still this client's: core_id is kept
  // while the record is out, and a thread runs one operation at a time).
  if (from_cache) {
    tc.rec = r;
    return;
  }
  // Kept by this thread for its next operation while the pool has plenty
  // (sleeping getters and other threads always find kRecordsKeptIdle);
  // a cache holding nothing may change clients.
  if (tc.rec == nullptr && !tc.exited &&
      std::popcount(idle_records_.load(std::memory_order_relaxed)) >= kRecordsKeptIdle) {
    if (!tc.exit_hook) {
      // Registers the thread-exit destructor (the first access of a
      // thread_local with a destructor does).
      [[maybe_unused]] RecordReturner* volatile hook = &t_record_returner;
      tc.exit_hook = true;
    }
    tc.core_id = id_;
    tc.rec = r;
    return;
  }
  GiveBackRecord(r);
}

void ClientCore::GiveBackRecord(core::OpRecord* r) {
  idle_records_.fetch_or(uint64_t{1} << (r - records_), std::memory_order_release);
}

void ClientCore::MarkInert() {
  inert_ = true;
  if (sock_fd_ >= 0) {
    close(sock_fd_);
    sock_fd_ = -1;
  }
}

Status ClientCore::CheckUsable() const {
  if (closed_) {
    return Status::NotConnected(
        "the Client of this buffer was destroyed (its store connection is gone)");
  }
  if (inert_) {
    return Status::NotConnected(
        "this Client was inherited through fork(); connect a new one in the "
        "child");
  }
  return Status::OK();
}

// ------------------------------------------------------------ holding
//
// The shared holder bit of this client is set while the process-local count
// of the slot is > 0. The 0 -> 1 and 1 -> 0 transitions flip the shared bit
// while the local word carries kBusy, so two threads of this client never
// flip it in the wrong order; other counts change with a plain CAS. (Only
// threads of this one client can meet on the kBusy flag, for the two atomic
// instructions of a flip; other clients never wait on it.)
bool ClientCore::Hold(uint32_t slot, uint64_t state) {
  std::atomic<uint32_t>& l = local_refs_[slot];
  uint32_t c = LoadRelaxed(l);
  for (uint32_t spins = 0;; ++spins) {
    if (c & kBusy) {
      BusyWait(spins);
      c = LoadRelaxed(l);
      continue;
    }
    if (c == 0) {
      if (!l.compare_exchange_weak(c, kBusy | 1, std::memory_order_acquire)) continue;
      store_->SetHolder(slot, slot_);
      GLINT_CRASH_POINT();
      l.store(1, std::memory_order_release);
      break;
    }
    if (l.compare_exchange_weak(c, c + 1, std::memory_order_acquire)) break;
  }
  // Our holder bit is set (by us, or by a thread of ours that published it
  // before our CAS read its count). Now the entry must still be what we
  // found: see Store's holder handshake.
  if (LoadSeqCst(region_.entry(slot)->state) == state) return true;
  Unhold(slot);
  return false;
}

void ClientCore::Unhold(uint32_t slot) {
  std::atomic<uint32_t>& l = local_refs_[slot];
  uint32_t c = LoadRelaxed(l);
  for (uint32_t spins = 0;; ++spins) {
    if (c & kBusy) {
      BusyWait(spins);
      c = LoadRelaxed(l);
      continue;
    }
    if (c == 1) {
      if (!l.compare_exchange_weak(c, kBusy, std::memory_order_acq_rel)) continue;
      store_->ClearHolder(slot, slot_);
      GLINT_CRASH_POINT();
      l.store(0, std::memory_order_release);
      // A log record only when there may be something to free (the last
      // holder of a deleted object); the SeqCst load keeps the handshake.
      if (core::StateOf(LoadSeqCst(region_.entry(slot)->state)) == core::kObjDeleting) {
        RecordGuard g(this, RecordGuard::kClean);
        store_->MaybeFree(slot, g.rec);
      }
      return;
    }
    if (l.compare_exchange_weak(c, c - 1, std::memory_order_acq_rel)) return;
  }
}

void ClientCore::FillBuffer(uint32_t slot, uint64_t state, Buffer* b) {
  const core::ObjectEntry* e = region_.entry(slot);
  b->core_ = this;
  b->slot_ = slot;
  b->gen_ = core::GenOf(state);
  b->data_ = region_.heap() + LoadRelaxed(e->data_offset);
  b->size_ = static_cast<int64_t>(LoadRelaxed(e->data_size));
  std::memcpy(b->id_.mutable_data(), core::EntryId(e).w, 16);
}

void ClientCore::Release(Buffer* b) {
  if (b->core_ != this) return;
  b->core_ = nullptr;
  b->data_ = nullptr;
  b->size_ = 0;
  if (inert_) return;
  Unhold(b->slot_);
}


// ------------------------------------------------------------ build

Status ClientCore::BuildObject(const ObjectId& id, int64_t size,
                               MutableBuffer* mb, std::string_view name,
                               const Metadata* md) {
  if (mb->core_ != nullptr) mb->core_->Abort(mb);
  mb->sealed_ = false;
  mb->size_ = 0;
  mb->data_ = nullptr;
  if (inert_) return CheckUsable();
  const uint64_t heap_size = region_.header()->heap_size;
  if (size < 0 || static_cast<uint64_t>(size) > heap_size) return BadSize(size, heap_size);
  // The common case, no name and no metadata, has nothing to check here
  // and no info block (InfoSize 0).
  const bool plain = name.empty() && (md == nullptr || md->empty());
  if (!plain) {
    Status v = ValidateName(name);
    if (!v.ok()) return v;
    uint64_t md_bytes = 0;
    if (md != nullptr) {
      for (const auto& [k, val] : *md) md_bytes += k.size() + val.size();
    }
    if (md_bytes > kMaxMetadataBytes) {
      return Status::InvalidArgument("metadata is " + std::to_string(md_bytes) +
                                     " bytes; the limit is 65536");
    }
  }

  core::CreateArgs a;
  a.id = core::LoadIdWords(id.data());
  const uint64_t id_hash = core::IdHash(id.data());
  a.id_key = core::MakeKey(id_hash, region_.header()->obj_num_buckets);
  // Before the allocation, so that the table's misses overlap it.
  store_->table().PrefetchForCreate(a.id_key);
  a.name = name;
  if (!name.empty()) {
    a.name_key = core::MakeKey(core::NameHash(name),
                               region_.header()->name_num_buckets);
  }
  // The payload is allocated before the id is claimed (the claim is what
  // makes the object visible to rivals). When the heap is full, a duplicate
  // id or name still answers AlreadyExists, the more useful of the two.
  auto out_of_memory = [&](const std::string& msg) {
    return WithId(store_->ExistsCommitted(a)
                      ? Status::AlreadyExists("an object with this id or name exists")
                      : Status::OutOfMemory(msg),
                  id);
  };
  alloc::Heap& heap = store_->heap();
  const uint64_t isize = plain ? 0 : InfoSize(name, md);
  uint64_t ioff = 0, doff = 0;
  // The log record holds every block taken until the entry references it
  // (kOpBuild: owned[0] info, owned[1] payload); see docs/ARCHITECTURE.md.
  RecordGuard g(this);
  core::OpRecord* rec = g.rec;
  StoreRelease(rec->op, static_cast<uint32_t>(core::kOpBuild));
  if (isize > 0) {
    if (!heap.Allocate(isize, &hints_, &ioff, rec)) {
      return out_of_memory("store full: no room for " + std::to_string(isize) +
                           " bytes of name and metadata");
    }
    core::SetBlockRef(rec->owned[0], ioff, isize);
    core::ClearBlockRef(rec->cand);
    GLINT_CRASH_POINT();
    WriteInfo(region_.heap() + ioff, isize, name, md);
  }
  if (size > 0 &&
      !heap.Allocate(static_cast<uint64_t>(size), &hints_, &doff, rec)) {
    heap.Free(ioff, isize, rec);
    return out_of_memory("store full: no free block of " + std::to_string(size) +
                         " bytes");
  }
  if (size > 0) {
    // The caller writes the payload next, and Seal's CAS cannot complete
    // before those stores drain: start the first line's miss now, so it
    // overlaps the table work (a hint only; later lines are sequential and
    // the hardware prefetcher follows them).
    __builtin_prefetch(region_.heap() + doff, 1, 3);
    core::SetBlockRef(rec->owned[1], doff, static_cast<uint64_t>(size));
    core::ClearBlockRef(rec->cand);
    GLINT_CRASH_POINT();
  }
  a.data_offset = doff;
  a.data_size = static_cast<uint64_t>(size);
  a.info_offset = ioff;
  a.info_size = static_cast<uint32_t>(isize);
  a.client_slot = slot_;
  a.client_serial = serial_;
  a.pid = pid_;
  uint32_t slot;
  uint64_t gen;
  Status s = store_->Create(a, &slot, &gen, rec);
  if (!s.ok()) {
    heap.Free(doff, static_cast<uint64_t>(size), rec);
    GLINT_CRASH_POINT();
    heap.Free(ioff, isize, rec);
    return WithId(s, id);
  }
  mb->core_ = this;
  mb->data_ = region_.heap() + doff;
  mb->size_ = size;
  mb->slot_ = slot;
  mb->gen_ = gen;
  mb->id_ = id;
  mb->id_hash_ = id_hash;
  return Status::OK();
}

Status ClientCore::Resize(MutableBuffer* mb, int64_t new_size) {
  if (inert_) return CheckUsable();
  const uint64_t heap_size = region_.header()->heap_size;
  if (new_size < 0 || static_cast<uint64_t>(new_size) > heap_size) {
    return Status::InvalidArgument("new size " + std::to_string(new_size) +
                                   " is negative or exceeds the capacity of " +
                                   std::to_string(heap_size) + " bytes");
  }
  const uint64_t old_size = static_cast<uint64_t>(mb->size_);
  const uint64_t nsize = static_cast<uint64_t>(new_size);
  core::ObjectEntry* e = region_.entry(mb->slot_);
  const uint64_t old_off = LoadRelaxed(e->data_offset);
  if (alloc::AllocSize(nsize) == alloc::AllocSize(old_size)) {
    store_->SetPayload(mb->slot_, old_off, nsize);  // same block
    mb->size_ = new_size;
    return Status::OK();
  }
  // kOpResize: owned[0] the new block, owned[1] the old one. Recovery
  // makes the entry's offset and size agree again (SetPayload is two
  // stores), then frees whichever of the two the entry does not reference.
  RecordGuard g(this);
  core::OpRecord* rec = g.rec;
  StoreRelaxed(rec->obj_slot, mb->slot_);
  StoreRelaxed(rec->gen, mb->gen_);
  core::SetBlockRef(rec->owned[1], old_off, old_size);
  StoreRelease(rec->op, static_cast<uint32_t>(core::kOpResize));
  uint64_t new_off = 0;
  if (nsize > 0 && !store_->heap().Allocate(nsize, &hints_, &new_off, rec)) {
    return Status::OutOfMemory("store full: no free block of " +
                               std::to_string(nsize) +
                               " bytes (the old payload is kept)");
  }
  core::SetBlockRef(rec->owned[0], new_off, nsize);
  core::ClearBlockRef(rec->cand);
  GLINT_CRASH_POINT();
  std::memmove(region_.heap() + new_off, region_.heap() + old_off,
               std::min(old_size, nsize));
  store_->SetPayload(mb->slot_, new_off, nsize);
  GLINT_CRASH_POINT();
  store_->heap().Free(old_off, old_size, rec);
  mb->data_ = region_.heap() + new_off;
  mb->size_ = new_size;
  return Status::OK();
}

Status ClientCore::Seal(MutableBuffer* mb) {
  if (inert_) return CheckUsable();
  const bool ok = store_->Seal(mb->slot_, mb->gen_, mb->id_hash_);
  mb->core_ = nullptr;
  mb->data_ = nullptr;
  if (!ok) return LostBuild(mb->id_);
  mb->sealed_ = true;
  return Status::OK();
}

Status ClientCore::Abort(MutableBuffer* mb) {
  mb->core_ = nullptr;
  mb->data_ = nullptr;
  if (inert_) return CheckUsable();
  RecordGuard g(this, RecordGuard::kClean);
  if (!store_->Abort(mb->slot_, mb->gen_, mb->id_hash_, g.rec)) {
    return LostBuild(mb->id_);
  }
  return Status::OK();
}

// The entry no longer holds our build. The monitor recovers a client only
// after its process exited, so only damage to the region (or a buffer used
// after its Client was destroyed) gets here.
Status ClientCore::LostBuild(const ObjectId& id) const {
  return Status::Aborted("object " + id.hex() +
                         " is no longer being built by this client (its "
                         "table entry changed under it)");
}

// ------------------------------------------------------------ get

namespace {
constexpr int64_t kSpinNanos = 20 * 1000;  // below one futex wake-up (~27 µs)
}

template <typename Deadline, typename Find, typename FindLive>
Status ClientCore::WaitFor(uint64_t wait_hash, Deadline deadline, Find find,
                           FindLive live, uint32_t* slot, uint64_t* state,
                           const uint64_t* aborts_since) {
  // The fast path: found, held, done. No clock read, no syscall.
  for (;;) {
    *slot = find(state);
    if (*slot == kNoSlot) break;
    if (Hold(*slot, *state)) return Status::OK();
  }
  return WaitSlow(wait_hash, deadline(), find, live, slot, state, aborts_since);
}

template <typename Find, typename FindLive>
Status ClientCore::WaitSlow(uint64_t wait_hash, int64_t deadline, Find find,
                            FindLive live, uint32_t* slot, uint64_t* state,
                            const uint64_t* aborts_since) {
  if (deadline == kNoWait) return Status::TimedOut("not sealed");

  const int64_t start = os::MonotonicNanos();
  // (Already past: GetObjects' later ids. The caller's look-up just now
  // was the last chance.)
  if (start >= deadline) return Status::TimedOut("not sealed in time");
  core::WaitBucket* wb = region_.wait_bucket(wait_hash);
  // Aborts noted from here on are of builds that ended while we waited,
  // including ones that began after us (Store::NoteAbort).
  const uint64_t aborts_before =
      aborts_since != nullptr ? *aborts_since : LoadSeqCst(wb->aborts);
  uint32_t seen_slot = kNoSlot;  // an entry of the object being built
  uint64_t seen_gen = 0;
  // 1: found and held; 2: a build was aborted while we waited; 0: keep
  // waiting.
  auto check = [&]() -> int {
    for (;;) {
      *slot = find(state);
      if (*slot == kNoSlot) break;
      if (Hold(*slot, *state)) return 1;
    }
    if (seen_slot != kNoSlot && store_->WasAborted(seen_slot, seen_gen)) {
      return 2;
    }
    if (store_->AbortNotedSince(wait_hash, aborts_before)) return 2;
    uint64_t ls;
    const uint32_t l = live(&ls);
    if (l != kNoSlot && core::StateOf(ls) == core::kObjCreating) {
      seen_slot = l;
      seen_gen = core::GenOf(ls);
    }
    return 0;
  };
  auto verdict = [](int r) {
    return r == 1 ? Status::OK()
                  : Status::Aborted("its builder aborted it while we waited");
  };

  // Spin for about the cost of a futex wake-up, then sleep.
  const int64_t spin_until = std::min(deadline, start + kSpinNanos);
  for (uint32_t i = 0;; ++i) {
    if (int r = check()) return verdict(r);
    if ((i & 7) == 7 && os::MonotonicNanos() >= spin_until) break;
    for (int k = 0; k < 16; ++k) core::CpuRelax();
  }
  // The record says kOpWait with gen = bucket + 1 from before the first
  // increment (recovery then leaves the bucket's count alone, see
  // Recovery::RecountWaiters), and wait_bucket only while our count is in
  // `waiters` (set after the increment, cleared before the decrement), so
  // recovery takes back the count of a getter that died asleep, never one
  // too many.
  //
  // A sleeper holds its record while it sleeps; it takes one only while
  // kRecordsKeptFromSleepers others stay idle, so sleepers can never starve
  // the builder they wait for (or any other operation) of a record. Beyond
  // that, a getter polls every millisecond instead of sleeping on the futex.
  core::OpRecord* rec = TryAcquireRecord(kRecordsKeptFromSleepers);
  if (rec == nullptr) {
    for (;;) {
      if (int r = check()) return verdict(r);
      const int64_t now = os::MonotonicNanos();
      if (now >= deadline) return Status::TimedOut("not sealed in time");
      std::this_thread::sleep_for(
          std::chrono::nanoseconds(std::min<int64_t>(deadline - now, 1000 * 1000)));
    }
  }
  RecordGuard g(this, rec, RecordGuard::kClean);
  const uint32_t wb_index = static_cast<uint32_t>(wait_hash % core::kNumWaitBuckets);
  StoreRelaxed(g.rec->gen, uint64_t{wb_index} + 1);
  StoreRelease(g.rec->op, static_cast<uint32_t>(core::kOpWait));
  for (;;) {
    // Announce, re-check, sleep: the getter's side of the handshake with
    // Store::Seal/Wake (waiters++ then load state; seal stores state then
    // loads waiters). The bucket's seq read before announcing makes a wake
    // between our re-check and FUTEX_WAIT return at once.
    const uint32_t seq = LoadAcquire(wb->seq);
    wb->waiters.fetch_add(1, std::memory_order_seq_cst);
    StoreRelease(g.rec->wait_bucket, wb_index + 1);
    core::FenceSeqCst();
    const int r = check();
    const int64_t now = os::MonotonicNanos();
    if (r != 0 || now >= deadline) {
      StoreRelease(g.rec->wait_bucket, 0u);
      wb->waiters.fetch_sub(1, std::memory_order_relaxed);
      return r != 0 ? verdict(r) : Status::TimedOut("not sealed in time");
    }
    os::FutexWait(&wb->seq, seq, deadline == INT64_MAX ? -1 : deadline - now);
    StoreRelease(g.rec->wait_bucket, 0u);
    wb->waiters.fetch_sub(1, std::memory_order_relaxed);
  }
}

Status ClientCore::GetObject(const ObjectId& id, Buffer* buffer,
                             int64_t timeout_ms) {
  return GetById(id, buffer, [timeout_ms] { return WaitDeadline(timeout_ms); });
}

template <typename Deadline>
Status ClientCore::GetById(const ObjectId& id, Buffer* buffer, Deadline deadline,
                           const uint64_t* aborts_since) {
  buffer->Release();
  if (inert_) return CheckUsable();
  const core::Key key =
      core::MakeKey(core::IdHash(id.data()), region_.header()->obj_num_buckets);
  const core::IdWords idw = core::LoadIdWords(id.data());
  const core::ObjectTable& table = store_->table();
  uint32_t slot;
  uint64_t state;
  Status s = WaitFor(
      key.hash, deadline,
      [&](uint64_t* st) { return table.Find(key, idw, core::kObjSealed, st); },
      [&](uint64_t* st) { return table.FindLive(key, idw, st); }, &slot,
      &state, aborts_since);
  if (!s.ok()) {
    return Status(s.code(), "object " + id.hex() + ": " + s.message());
  }
  FillBuffer(slot, state, buffer);
  return Status::OK();
}

Status ClientCore::GetObjectByName(std::string_view name, Buffer* buffer,
                                   int64_t timeout_ms) {
  buffer->Release();
  Status s = CheckUsable();
  if (!s.ok()) return s;
  if (name.empty()) return Status::InvalidArgument("name is empty");
  s = ValidateName(name);
  if (!s.ok()) return s;
  const core::Key key =
      core::MakeKey(core::NameHash(name), region_.header()->name_num_buckets);
  const core::ObjectTable& table = store_->table();
  uint32_t slot;
  uint64_t state;
  s = WaitFor(
      key.hash, [timeout_ms] { return WaitDeadline(timeout_ms); },
      [&](uint64_t* st) {
        return table.FindByName(key, name, core::kObjSealed, st);
      },
      [&](uint64_t* st) {
        return table.FindByName(key, name, core::kObjCreating, st);
      },
      &slot, &state);
  if (!s.ok()) {
    return Status(s.code(),
                  "object named '" + std::string(name) + "': " + s.message());
  }
  FillBuffer(slot, state, buffer);
  return Status::OK();
}

Status ClientCore::GetObjects(const std::vector<ObjectId>& ids,
                              std::vector<Buffer>* buffers,
                              int64_t timeout_ms) {
  buffers->clear();
  buffers->resize(ids.size());
  Status s = CheckUsable();
  if (!s.ok()) return s;
  // First every id that is sealed now: no clock read, no wait. The keys
  // are made kAhead ids early and their lines prefetched (bucket header and
  // both lines of the slot-0 entry, as for a create: Hold writes the holder
  // word on the second), so that on a table not in cache the misses of a
  // batch overlap instead of following one another.
  constexpr size_t kAhead = 8;
  const size_t n = ids.size();
  const uint64_t num_buckets = region_.header()->obj_num_buckets;
  const core::ObjectTable& table = store_->table();
  core::Key keys[kAhead];
  auto key_ahead = [&](size_t i) {
    keys[i % kAhead] = core::MakeKey(core::IdHash(ids[i].data()), num_buckets);
    table.PrefetchForCreate(keys[i % kAhead]);
  };
  for (size_t i = 0; i < std::min(n, kAhead); ++i) key_ahead(i);
  size_t missing = 0;
  std::vector<uint64_t> aborts_since;  // per missing id (allocated only then)
  for (size_t i = 0; i < n; ++i) {
    const core::Key key = keys[i % kAhead];
    if (i + kAhead < n) key_ahead(i + kAhead);
    const core::IdWords idw = core::LoadIdWords(ids[i].data());
    uint32_t slot;
    uint64_t state;
    for (;;) {
      slot = table.Find(key, idw, core::kObjSealed, &state);
      if (slot == kNoSlot || Hold(slot, state)) break;
    }
    if (slot == kNoSlot) {
      // Its wait begins now: aborts of it from here on answer kAborted, even
      // while we wait for an earlier id (Store::NoteAbort).
      if (missing++ == 0) aborts_since.resize(n);
      aborts_since[i] = LoadSeqCst(region_.wait_bucket(key.hash)->aborts);
    } else {
      FillBuffer(slot, state, &(*buffers)[i]);
    }
  }
  if (missing == 0) return Status::OK();
  // Then the others, one by one, within the one deadline, to the
  // nanosecond. Each is looked up once more even when the deadline has
  // passed (it may have been sealed while we waited for an earlier one);
  // with timeout 0 none waits.
  const int64_t deadline = WaitDeadline(timeout_ms);
  Status first_error;
  for (size_t i = 0; i < n; ++i) {
    if ((*buffers)[i].valid()) continue;
    Status r = GetById(ids[i], &(*buffers)[i], [deadline] { return deadline; },
                       &aborts_since[i]);
    if (!r.ok() && first_error.ok()) first_error = r;
  }
  return first_error;
}

bool ClientCore::Contains(const ObjectId& id) {
  if (inert_) return false;
  const core::Key key =
      core::MakeKey(core::IdHash(id.data()), region_.header()->obj_num_buckets);
  uint64_t st;
  return store_->table().Find(key, core::LoadIdWords(id.data()),
                              core::kObjSealed, &st) != kNoSlot;
}

Status ClientCore::Delete(const ObjectId& id) {
  if (inert_) return CheckUsable();
  const core::Key key =
      core::MakeKey(core::IdHash(id.data()), region_.header()->obj_num_buckets);
  const core::IdWords idw = core::LoadIdWords(id.data());
  for (;;) {
    uint64_t st;
    const uint32_t slot = store_->table().Find(key, idw, core::kObjSealed, &st);
    if (slot == kNoSlot) {
      return Status::NotFound("no sealed object " + id.hex());
    }
    RecordGuard g(this, RecordGuard::kClean);
    if (store_->Delete(slot, st, g.rec, key)) return Status::OK();
  }
}

// ------------------------------------------------------------ inspection

void ClientCore::FillInfo(uint32_t slot, uint64_t state, ObjectInfo* info) const {
  const core::ObjectEntry* e = region_.entry(slot);
  std::memcpy(info->id.mutable_data(), core::EntryId(e).w, 16);
  info->size = static_cast<int64_t>(LoadRelaxed(e->data_size));
  info->create_time = LoadRelaxed(e->create_time_us);
  const uint64_t c_tsc = LoadRelaxed(e->create_tsc);
  const uint64_t s_tsc = LoadRelaxed(e->seal_tsc);
  // Unknown (-1) when not sealed, or when the header's TSC rate is not one
  // a clock has (Region::Validate refuses those; this keeps the cast defined
  // for any value the header holds).
  const double tpu = region_.header()->tsc_per_us;
  const double us = static_cast<double>(s_tsc - c_tsc) / tpu;
  info->construct_duration =
      (s_tsc == 0 || !(tpu >= 1.0) || s_tsc < c_tsc || !(us < 9.0e18))
          ? -1
          : static_cast<int64_t>(us);
  info->creator_id = LoadRelaxed(e->creator_pid);
  info->creator_address = address_host_ + "/" + std::to_string(info->creator_id) +
                          "/" + std::to_string(LoadRelaxed(e->creator_serial));
  info->sealed = core::StateOf(state) == core::kObjSealed;
  int32_t holders = 0;
  for (const auto& w : e->holders) holders += std::popcount(LoadRelaxed(w));
  info->holders = holders;
  const uint16_t name_len = LoadRelaxed(e->name_len);
  const uint32_t isize = LoadRelaxed(e->info_size);
  const uint64_t ioff = LoadRelaxed(e->info_offset);
  info->name.clear();
  info->metadata_size = 0;
  const uint64_t heap_size = region_.header()->heap_size;
  if (isize > 0 && isize <= heap_size && ioff <= heap_size - isize &&  // no wrap
      name_len <= isize) {
    std::vector<uint8_t> copy(isize);
    AtomicCopyOut(copy.data(), region_.heap() + ioff, isize);
    const uint8_t* p = copy.data();
    info->name.assign(reinterpret_cast<const char*>(p), name_len);
    int64_t md = 0;
    ForEachMeta(p, isize, name_len,
                [&](std::string_view k, uint64_t, uint32_t vlen) {
                  md += static_cast<int64_t>(k.size()) + vlen;
                  return false;
                });
    info->metadata_size = md;
  }
}

Status ClientCore::GetObjectInfo(const ObjectId& id, ObjectInfo* info) {
  Status s = CheckUsable();
  if (!s.ok()) return s;
  const core::Key key =
      core::MakeKey(core::IdHash(id.data()), region_.header()->obj_num_buckets);
  const core::IdWords idw = core::LoadIdWords(id.data());
  for (int attempt = 0; attempt < 100; ++attempt) {
    uint64_t st;
    uint32_t slot = store_->table().Find(key, idw, core::kObjSealed, &st);
    if (slot == kNoSlot) {
      slot = store_->table().Find(key, idw, core::kObjCreating, &st);
    }
    if (slot == kNoSlot) break;
    FillInfo(slot, st, info);
    // A consistent snapshot: the entry did not change while we read it.
    if (LoadAcquire(region_.entry(slot)->state) == st) return Status::OK();
  }
  return Status::NotFound("no object " + id.hex());
}

Status ClientCore::ListObjects(std::vector<ObjectInfo>* objects) {
  objects->clear();
  Status s = CheckUsable();
  if (!s.ok()) return s;
  const uint64_t nb = region_.header()->obj_num_buckets;
  for (uint64_t b = 0; b < nb; ++b) {
    uint64_t used = core::UsedSlots(LoadAcquire(region_.obj_bucket(b)->used));
    while (used != 0) {
      const uint32_t i = std::countr_zero(used);
      used &= used - 1;
      const uint32_t slot = region_.obj_slot(b, i);
      const uint64_t st = LoadAcquire(region_.entry(slot)->state);
      const auto state = core::StateOf(st);
      if (state != core::kObjCreating && state != core::kObjSealed) continue;
      ObjectInfo info;
      FillInfo(slot, st, &info);
      if (LoadAcquire(region_.entry(slot)->state) == st) {
        objects->push_back(std::move(info));
      }
    }
  }
  return Status::OK();
}

Status ClientCore::GetMetadata(const ObjectId& id, const std::string& key,
                               Buffer* value) {
  value->Release();
  Status s = CheckUsable();
  if (!s.ok()) return s;
  const core::Key k =
      core::MakeKey(core::IdHash(id.data()), region_.header()->obj_num_buckets);
  const core::IdWords idw = core::LoadIdWords(id.data());
  uint32_t slot;
  uint64_t st;
  for (;;) {
    slot = store_->table().Find(k, idw, core::kObjSealed, &st);
    if (slot == kNoSlot) return Status::NotFound("no sealed object " + id.hex());
    if (Hold(slot, st)) break;
  }
  const core::ObjectEntry* e = region_.entry(slot);
  const uint64_t ioff = LoadRelaxed(e->info_offset);
  const uint32_t isize = LoadRelaxed(e->info_size);
  const uint64_t heap_size = region_.header()->heap_size;
  if (isize > heap_size || ioff > heap_size - isize) {  // a damaged entry
    Unhold(slot);
    return Status::Corrupt("object " + id.hex() + ": its metadata block [" +
                           std::to_string(ioff) + ", +" + std::to_string(isize) +
                           ") lies outside the heap");
  }
  const uint8_t* p = region_.heap() + ioff;
  uint64_t voff = 0;
  uint32_t vlen = 0;
  const bool found = ForEachMeta(
      p, isize, LoadRelaxed(e->name_len),
      [&](std::string_view kk, uint64_t off, uint32_t len) {
        if (kk != key) return false;
        voff = off;
        vlen = len;
        return true;
      });
  if (!found) {
    Unhold(slot);
    return Status::NotFound("object " + id.hex() + " has no metadata key '" +
                            key + "'");
  }
  FillBuffer(slot, st, value);
  value->data_ = p + voff;
  value->size_ = vlen;
  return Status::OK();
}

Status ClientCore::Stats(StoreStats* stats) {
  Status s = CheckUsable();
  if (!s.ok()) return s;
  const core::RegionHeader* h = region_.header();
  int64_t clients = 0;
  for (uint32_t i = 0; i < h->max_clients; ++i) {
    if (LoadAcquire(region_.client(i)->state) == core::kClientActive) ++clients;
  }
  int64_t sealed = 0, building = 0;
  store_->CountObjects(&sealed, &building);
  const int64_t bytes = static_cast<int64_t>(store_->heap().BytesInUseByScan());
  stats->capacity = static_cast<int64_t>(h->heap_size);
  stats->bytes_in_use = bytes;
  stats->bytes_free = stats->capacity - bytes;
  stats->largest_free_block = static_cast<int64_t>(store_->heap().LargestFree());
  stats->objects_sealed = sealed;
  stats->objects_building = building;
  stats->clients = clients;
  return Status::OK();
}

}  // namespace glint::internal
