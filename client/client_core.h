// Copyright (c) glint authors.
//
// ClientCore: what a connected Client is inside. It maps the region, owns
// one client slot, and runs every operation on the region through
// core::Store. Process-local state: per object slot, how many Buffers of this
// client hold it (the shared holder bit is set while that count is > 0).

#ifndef GLINT_CLIENT_CLIENT_CORE_H_
#define GLINT_CLIENT_CLIENT_CORE_H_

#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "alloc/heap.h"
#include "core/region.h"
#include "core/store.h"
#include "glint/client.h"

namespace glint::internal {

class ClientCore {
 public:
  static Status Connect(const std::string& socket_path,
                        std::unique_ptr<ClientCore>* out);
  ~ClientCore();

  // metadata: nullptr for none.
  Status BuildObject(const ObjectId& id, int64_t size, MutableBuffer* buffer,
                     std::string_view name, const Metadata* metadata);
  Status GetObject(const ObjectId& id, Buffer* buffer, int64_t timeout_ms);
  Status GetObjectByName(std::string_view name, Buffer* buffer,
                         int64_t timeout_ms);
  Status GetObjects(const std::vector<ObjectId>& ids,
                    std::vector<Buffer>* buffers, int64_t timeout_ms);
  bool Contains(const ObjectId& id);
  Status Delete(const ObjectId& id);
  Status ListObjects(std::vector<ObjectInfo>* objects);
  Status GetObjectInfo(const ObjectId& id, ObjectInfo* info);
  Status GetMetadata(const ObjectId& id, const std::string& key, Buffer* value);
  Status Stats(StoreStats* stats);

  // Called by Buffer / MutableBuffer.
  void Release(Buffer* b);
  Status Seal(MutableBuffer* mb);
  [[gnu::noinline]] Status Abort(MutableBuffer* mb);
  Status Resize(MutableBuffer* mb, int64_t new_size);

  const uint8_t* base() const { return region_.base(); }
  int64_t size() const { return static_cast<int64_t>(region_.size()); }
  uint32_t slot() const { return slot_; }
  int idle_records() const {
    return std::popcount(idle_records_.load(std::memory_order_relaxed));
  }

  // After fork(), in the child: the core stops touching the store.
  void MarkInert();

  // ~Client: gives back every reference and aborts every build of this
  // client, says goodbye to the monitor and unmaps the region. The core is
  // inert afterwards: a Buffer or MutableBuffer still pointing at it does
  // nothing when released (and answers kNotConnected to Seal, Abort,
  // Resize). Returns true when such handles may still exist; the core must
  // then stay allocated for them. (The destructor calls it too.)
  bool Close();

  // Unique per ClientCore in this process (never reused, unlike addresses).
  uint64_t id() const { return id_; }
  // Puts an idle log record a thread kept (see AcquireRecord) back in the
  // pool; called when that thread exits.
  void GiveBackRecord(core::OpRecord* r);

 private:
  ClientCore() = default;
  Status Attach(int region_fd, uint64_t region_size);

  // Takes a reference on `slot` that the caller found in `state`; false if
  // the entry changed (the reference is then already given back).
  bool Hold(uint32_t slot, uint64_t state);
  void Unhold(uint32_t slot);
  void FillBuffer(uint32_t slot, uint64_t state, Buffer* b);
  void FillInfo(uint32_t slot, uint64_t state, ObjectInfo* info) const;

  // Waits for a sealed entry found by `find` (returns a slot and state),
  // holding it on success. `live` finds an entry being built (for kAborted).
  // `deadline()` gives the CLOCK_MONOTONIC nanosecond to give up at
  // (INT64_MAX: never; kNoWait: do not wait at all). It is called only when
  // the entry is not found at once, so the fast path reads no clock.
  // `aborts_since`: the wait bucket's abort count when the wait began, if
  // the caller read it earlier (GetObjects); null: read it now. Aborts
  // numbered from it on answer kAborted (Store::NoteAbort).
  template <typename Deadline, typename Find, typename FindLive>
  Status WaitFor(uint64_t wait_hash, Deadline deadline, Find find,
                 FindLive live, uint32_t* slot, uint64_t* state,
                 const uint64_t* aborts_since = nullptr);
  // WaitFor once the object was not found at once: spin, then sleep.
  template <typename Find, typename FindLive>
  [[gnu::noinline]] Status WaitSlow(uint64_t wait_hash, int64_t deadline, Find find,
                                    FindLive live, uint32_t* slot, uint64_t* state,
                                    const uint64_t* aborts_since);
  // GetObject with a deadline and abort count as WaitFor takes them;
  // GetObjects' waits share one absolute deadline this way, with no
  // rounding to milliseconds, and count aborts from its first pass.
  template <typename Deadline>
  Status GetById(const ObjectId& id, Buffer* buffer, Deadline deadline,
                 const uint64_t* aborts_since = nullptr);

  // Cold paths are kept out of line: the public calls are flattened (every
  // call inlined, client/client.cc) down to these.
  [[gnu::noinline, gnu::cold]] Status CheckUsable() const;

  // The undo-log records of this client (core/region.h): each running
  // operation takes one (a process-local bitmap of idle ones), and gives it
  // back cleared. More threads in operations at once than records: the
  // extra ones yield until one is free. Each thread keeps one idle record
  // of one client for its next operation (a thread-local cache, filled only
  // while kRecordsKeptIdle or more stay in the pool), so a thread's
  // operations take and give back a record without a locked instruction.
  // `clean`: the operation cleared every field it set but `op` (abort,
  // delete, free, wait do), so only `op` is reset.
  // *from_cache: whether it was this thread's cached record (ReleaseRecord
  // then puts it straight back).
  core::OpRecord* AcquireRecord(bool* from_cache);
  // A record only if more than `keep_idle` are idle; else nullptr.
  core::OpRecord* TryAcquireRecord(int keep_idle);
  static constexpr int kRecordsKeptFromSleepers = 8;
  static constexpr int kRecordsKeptIdle = 16;
  void ReleaseRecord(core::OpRecord* rec, bool clean, bool from_cache);
  struct RecordGuard {
    enum Kind { kDirty, kClean };
    // AcquireRecord never answers null (it waits for a record instead):
    // saying so lets the inlined operations drop their `rec != nullptr`
    // checks (those are for core/ unit tests, which pass no record).
    explicit RecordGuard(ClientCore* c, Kind k = kDirty)
        : core(c), rec(c->AcquireRecord(&from_cache)), clean(k == kClean) {
      if (rec == nullptr) __builtin_unreachable();
    }
    // Adopts a record the caller took (TryAcquireRecord).
    RecordGuard(ClientCore* c, core::OpRecord* r, Kind k)
        : core(c), rec(r), clean(k == kClean) {}
    ~RecordGuard() { core->ReleaseRecord(rec, clean, from_cache); }
    RecordGuard(const RecordGuard&) = delete;
    RecordGuard& operator=(const RecordGuard&) = delete;
    ClientCore* core;
    bool from_cache = false;  // before rec: AcquireRecord sets it
    core::OpRecord* rec;
    bool clean;
  };
  [[gnu::noinline, gnu::cold]] Status LostBuild(const ObjectId& id) const;

  uint64_t id_ = 0;
  int sock_fd_ = -1;
  bool inert_ = false;
  bool closed_ = false;  // Close ran (inert_ is set too)
  core::Region region_;
  std::unique_ptr<core::Store> store_;
  uint32_t slot_ = 0;
  uint32_t serial_ = 0;
  uint32_t pid_ = 0;
  std::string socket_path_;
  std::string address_host_;
  alloc::AllocHints hints_;
  std::atomic<uint64_t> idle_records_{0};
  core::OpRecord* records_ = nullptr;  // this client's log records
  // Per object slot: references held by this process (bit 31: a thread is
  // flipping the shared holder bit).
  std::atomic<uint32_t>* local_refs_ = nullptr;
  uint64_t local_refs_bytes_ = 0;
};

}  // namespace glint::internal

#endif  // GLINT_CLIENT_CLIENT_CORE_H_
