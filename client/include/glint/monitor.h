// Copyright (c) glint authors.
//
// Monitor: creates a store's region and registers its clients. It does
// nothing on the fast path. Embedded here as a background thread of the
// calling process (tests, demos, programs that own the store); the glintd
// program runs the same Monitor.
//
// Thread safety: Start and the destructor may be called from any thread;
// the accessors are safe from any thread.
//
// The monitor's event loop runs on io_uring: accepts, the clients' sockets,
// a pidfd per client (opened when it registers) and its timers all go
// through one ring. It never polls /proc.

#ifndef GLINT_MONITOR_H_
#define GLINT_MONITOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "glint/status.h"

namespace glint {

struct StoreOptions {
  // The unix socket clients connect to (1..107 bytes; its directory must
  // exist). The region's file name is derived from it, so stores on
  // different sockets coexist.
  std::string socket_path = "/tmp/glint";
  // Bytes of the data heap (payloads and metadata): 1 byte to 16 TiB
  // (2^44), rounded up to a multiple of 64 KiB.
  int64_t capacity = int64_t{256} << 20;
  // Objects the table holds at once: at least max_objects (0..2^28). It
  // keeps two slots per object, rounded up to a power of two of 56-slot
  // buckets, so it practically never fills before max_objects are live
  // (when it is full, BuildObject answers kOutOfMemory). 0 picks
  // max(65536, capacity / 16 KiB), at most 2^28.
  int64_t max_objects = 0;
  // Clients connected at once (1..256).
  int32_t max_clients = 64;
  // Permission bits of the socket and of the region file (at most 0777).
  uint32_t mode = 0600;
  // Back the region with huge pages (2 MiB) where its file system allows
  // them: a tmpfs mounted with huge=advise, always or within_size (not
  // Debian's /dev/shm, huge=never by default), unless
  // /sys/kernel/mm/transparent_hugepage/shmem_enabled says deny. Every
  // client then maps the region with them too. Start logs "the region is on
  // huge pages", or a warning naming the fix and keeps normal pages; it
  // never fails for want of them. Fixed at creation: a re-attached region
  // keeps what it was created with.
  bool hugepages = false;
  // Allocate every page of the region at creation (clients map it with
  // MAP_POPULATE). Off only for stores larger than the machine should
  // commit at once: then no one allocates a page before touching it, and a
  // process that touches a page when shm_dir's file system is full gets
  // SIGBUS (as with any shared-memory file); with prefault, Start answers
  // kOutOfMemory instead and nothing is served.
  bool prefault = true;
  // Region file directory; must exist.
  std::string shm_dir = "/dev/shm";
  // Receives one line per notable event (a client connects or leaves, a
  // hugepage request cannot be met). Called from the monitor's thread; must
  // not block for long. Empty: no log.
  std::function<void(const std::string&)> log;
};

namespace internal {
class MonitorImpl;
}

class Monitor {
 public:
  // Creates the region and the socket and serves registrations from a
  // background thread until the Monitor is destroyed. Blocks only while it
  // sets up. REQUIRES: out != nullptr.
  //
  // Restart: when no live store serves socket_path but its region file
  // (region_path()) exists, as a monitor killed with SIGKILL leaves it, Start
  // re-attaches that region instead of creating one: its objects stay, and
  // its geometry too (capacity, max_objects and max_clients of `options`
  // are then ignored, with a warning in the log when they differ). Before
  // it returns, every client slot whose process is gone (no such pid, or the
  // pid now names a process with another start time) is recovered; clients
  // still running are watched and recovered when they exit. A region file
  // that does not validate (another program's file, truncated, another
  // layout version) or whose contents are damaged (the checker, core/check.h,
  // finds a problem before recovery; or after it, when no client is left,
  // the exact checks find a leaked block or a miscounted span) is never
  // replaced or served: Start fails with kIncompatible or kCorrupt and
  // names it.
  //
  // Errors: kInvalidArgument (an option out of the range StoreOptions
  // gives; shm_dir, or the directory of socket_path, missing or not a
  // directory: the message names the option), kAlreadyExists (a live store
  // already serves socket_path, even a stopped one whose queue of new
  // connections is full; a file that is not a socket sits there,
  // which Start never replaces; or another monitor created the region file
  // while this one started), kOutOfMemory (the shm directory cannot hold
  // the region), kIncompatible or kCorrupt (the region file exists and
  // cannot be re-attached), kPermissionDenied, kIOError (including:
  // io_uring is not available to this process). Never kNotConnected.
  static Status Start(const StoreOptions& options,
                      std::unique_ptr<Monitor>* out);

  // Stops serving, removes the socket and unlinks the region. Clients that
  // still map it keep working on it until they disconnect. (A process killed
  // with SIGKILL runs no destructor: socket and region stay, and the next
  // Start on the same socket re-attaches the region.)
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  const std::string& socket_path() const;
  // The region's file, e.g. /dev/shm/glint-3f2a...
  const std::string& region_path() const;
  // Clients registered now (those found running at a re-attach included).
  int clients() const;
  // Whether Start re-attached an existing region rather than creating one.
  bool reattached() const;
  // The region's data heap bytes and client slots (its own, when re-attached).
  int64_t capacity() const;
  int32_t max_clients() const;

 private:
  Monitor() = default;
  std::unique_ptr<internal::MonitorImpl> impl_;
};

}  // namespace glint

#endif  // GLINT_MONITOR_H_
