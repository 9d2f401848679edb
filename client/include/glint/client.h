// Copyright (c) glint authors.
//
// The glint client: build, seal, get, release and delete objects in a store
// that another process (or an embedded Monitor) serves.
//
// Thread safety: a Client may be used from any number of threads at once
// (not from signal handlers).
// A Buffer or MutableBuffer is owned by one thread at a time (it is a
// move-only handle), and may be released on any thread.
//
// Fast path: BuildObject, MutableBuffer::Seal, GetObject of a sealed object,
// Buffer::Release and Delete run entirely on the shared region with atomic
// instructions: no syscall, no lock, no message to the monitor. A call makes a
// syscall only to sleep (a Get waiting for an object), to wake sleepers (a
// Seal or Abort of an object someone waits for), or to sched_yield() while
// another thread of the same Client holds, for a few instructions, what it
// needs (see Buffer::Release).
//
// Lifetime: release or destroy the Buffers and MutableBuffers of a Client
// before the Client. Destroying them afterwards is safe (the Client's
// destructor already released and aborted what they held; they now do
// nothing, and Seal/Abort/Resize answer kNotConnected), but their data()
// is no longer mapped: reading or writing it then is undefined (it
// faults). Such a Client keeps a few hundred bytes allocated until the
// process exits. A process that closes the Client's socket behind its back
// (closefrom) keeps its slot and references until it exits.
//
// fork(): a Client belongs to the process that connected it. In a child of
// fork() the inherited Client is inert: every call that returns a Status
// answers kNotConnected (Contains answers false), inherited Buffers read as
// before but their Release does nothing, and destroying it does not touch
// the store. The child connects its own Client.

#ifndef GLINT_CLIENT_H_
#define GLINT_CLIENT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "glint/object_id.h"
#include "glint/status.h"

namespace glint {

// User metadata of an object: keys to byte strings, fixed at creation.
using Metadata = std::map<std::string, std::string>;

// Limits on what BuildObject accepts.
inline constexpr size_t kMaxNameLength = 255;              // bytes
inline constexpr size_t kMaxMetadataBytes = 64 * 1024;     // keys + values
inline constexpr size_t kPayloadAlignment = 64;            // every payload
inline constexpr size_t kLargePayloadAlignment = 4096;     // payloads > 16 KiB

namespace internal {
class ClientCore;
}

// A read-only reference to a sealed object. While a Buffer holds it, the
// object's bytes stay valid and unchanged, even if the object is deleted.
class Buffer {
 public:
  Buffer() = default;
  ~Buffer() { Release(); }
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  // True while the Buffer holds a reference.
  bool valid() const { return core_ != nullptr; }
  // The first byte of the payload (64-byte aligned), or nullptr when !valid().
  const uint8_t* data() const { return data_; }
  // REQUIRES: valid() and 0 <= offset <= size().
  const uint8_t* data(int64_t offset) const { return data_ + offset; }
  // Payload size in bytes; 0 when !valid().
  int64_t size() const { return size_; }
  // The object's id (all zero when !valid()).
  const ObjectId& id() const { return id_; }

  // Drops the reference. Never blocks. Atomics on the region only, also
  // when this was the last reference to a deleted object and Release frees
  // its memory. The one syscall it may make is sched_yield(), in a wait for
  // another thread of this Client: one midway (two atomic instructions)
  // through taking or dropping this object's holder bit, or, to free a
  // deleted object, one giving back a log record when all 30 of this
  // Client's are in use. Idempotent; in a child of fork(), only forgets the
  // reference.
  void Release();

 private:
  friend class internal::ClientCore;
  internal::ClientCore* core_ = nullptr;
  const uint8_t* data_ = nullptr;
  int64_t size_ = 0;
  uint32_t slot_ = 0;
  uint64_t gen_ = 0;
  ObjectId id_;
};

// The writable view of an object being built. Only its creator sees it until
// Seal(). Destroying a MutableBuffer that is still being built aborts it.
class MutableBuffer {
 public:
  MutableBuffer() = default;
  ~MutableBuffer();
  MutableBuffer(MutableBuffer&& other) noexcept;
  MutableBuffer& operator=(MutableBuffer&& other) noexcept;
  MutableBuffer(const MutableBuffer&) = delete;
  MutableBuffer& operator=(const MutableBuffer&) = delete;

  // True while the object is being built (before Seal or Abort).
  bool building() const { return core_ != nullptr; }
  // True once Seal() succeeded.
  bool sealed() const { return sealed_; }

  // The first payload byte (64-byte aligned; 4096 for payloads over
  // 16 KiB), or nullptr unless building(). After Seal() the MutableBuffer no
  // longer refers to the payload: read the object with Client::GetObject.
  uint8_t* mutable_data() { return data_; }
  // REQUIRES: building() and 0 <= offset <= size().
  uint8_t* mutable_data(int64_t offset) { return data_ + offset; }
  const uint8_t* data() const { return data_; }
  const uint8_t* data(int64_t offset) const { return data_ + offset; }
  // Current payload size (kept after Seal).
  int64_t size() const { return size_; }
  const ObjectId& id() const { return id_; }

  // Changes the payload size, keeping the first min(old, new) bytes (they may
  // move: re-read mutable_data()). Never blocks.
  // Errors: kFailedPrecondition (sealed, aborted or empty buffer),
  // kInvalidArgument (negative or beyond the heap's capacity),
  // kOutOfMemory (no room; the old payload is kept unchanged),
  // kNotConnected (a buffer inherited through fork).
  Status Resize(int64_t new_size);
  // Makes the object immutable and visible to every client; wakes getters
  // waiting for it. Never blocks.
  // Errors: kFailedPrecondition (already sealed, aborted or empty buffer),
  // kNotConnected (a buffer inherited through fork), kAborted (the object's
  // table entry no longer holds this build: the monitor cleans up after a
  // client only once its process exited, so only a damaged region does this).
  Status Seal();
  // Discards the object and frees its memory; its id and name are free for
  // a new builder at once. Getters waiting for its id or name answer
  // kAborted, whether they began waiting before the build or during it
  // (unless six more aborts in the same wait bucket overwrote its note
  // before they looked: they then keep waiting; see GetObject).
  // Errors: kFailedPrecondition (sealed, already aborted or empty buffer),
  // kNotConnected (a buffer inherited through fork), kAborted (as for Seal).
  Status Abort();

 private:
  friend class internal::ClientCore;
  internal::ClientCore* core_ = nullptr;
  uint8_t* data_ = nullptr;
  int64_t size_ = 0;
  uint32_t slot_ = 0;
  uint64_t gen_ = 0;
  bool sealed_ = false;
  ObjectId id_;
  uint64_t id_hash_ = 0;  // the id's hash, for the wake-up at seal or abort
};

// What the store keeps about an object (the seed's ObjectInfo).
struct ObjectInfo {
  ObjectId id;
  std::string name;                // empty when the object has none
  int64_t size = 0;                // payload bytes
  int64_t create_time = 0;         // µs since the Unix epoch
  int64_t construct_duration = 0;  // µs from create to seal; -1 if unsealed
  int64_t creator_id = 0;          // pid of the creating process
  std::string creator_address;     // "<host>/<pid>/<client serial>"
  bool sealed = false;
  int64_t metadata_size = 0;       // bytes of keys and values
  int32_t holders = 0;             // clients holding a reference
};

// A snapshot of the store, computed by scanning the region's allocator and
// object table (nothing is counted on the fast path). Exact when no
// operation is in flight; under concurrent use, each field is read at a
// slightly different moment.
struct StoreStats {
  int64_t capacity = 0;            // bytes of the data heap
  int64_t bytes_in_use = 0;        // handed out by the allocator, rounding incl.
  int64_t bytes_free = 0;          // capacity - bytes_in_use
  int64_t largest_free_block = 0;  // largest allocation that would succeed now
  int64_t objects_sealed = 0;      // sealed and not deleted
  int64_t objects_building = 0;    // being built
  int64_t clients = 0;             // connected clients
};

class Client {
 public:
  // Connects to the store whose monitor listens on `store_socket` (a unix
  // socket path; Plasma's convention, default "/tmp/glint"), maps its region
  // and takes a client slot. REQUIRES: out != nullptr.
  // Blocks for one round trip to the monitor, and at most 5 s for each of
  // its two steps: the monitor taking the connection (it waits while the
  // listener's queue of 128 new connections is full, as behind a stopped
  // or swamped monitor) and the monitor answering (a stopped monitor, or a
  // socket that is not glint's, never does). Then it answers kNotConnected.
  // Errors: kInvalidArgument (store_socket empty, or longer than the 107
  // bytes a sockaddr_un path holds), kNotConnected (nothing serves that
  // path, it is not a glint socket, or it did not take the connection or
  // did not answer within 5 s),
  // kPermissionDenied, kTooManyClients, kIncompatible (another protocol or
  // layout version), kCorrupt (the region fails its header checks),
  // kOutOfMemory (the region cannot be mapped), kIOError. Every message
  // names the path. A Connect that fails leaves no client slot taken, even
  // when it gave up just as the monitor answered.
  static Status Connect(const std::string& store_socket,
                        std::unique_ptr<Client>* out);

  // Releases every reference this client still holds, aborts what it is
  // building, and leaves the store (see "Lifetime" above for handles that
  // outlive it). Never blocks.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Creates object `id` with a payload of `size` bytes (0 allowed), an
  // optional unique `name` and user metadata, and hands its writable buffer
  // to *buffer (releasing or aborting what *buffer held first). The object is
  // invisible to others until buffer->Seal(). Never blocks.
  // REQUIRES: buffer != nullptr.
  // Errors: kInvalidArgument (size < 0 or > capacity, name over 255 bytes,
  // metadata over 64 KiB), kAlreadyExists (a live object, sealed or being
  // built, has this id or this name), kOutOfMemory (heap or table full),
  // kNotConnected (a Client inherited through fork).
  // (Two overloads rather than default arguments: a call without a name
  // then builds no empty Metadata map.)
  Status BuildObject(const ObjectId& id, int64_t size, MutableBuffer* buffer);
  Status BuildObject(const ObjectId& id, int64_t size, MutableBuffer* buffer,
                     std::string_view name, const Metadata& metadata = {});

  // Waits until object `id` is sealed and gives a reference to it in
  // *buffer (releasing what *buffer held first). timeout_ms: -1 (or any
  // other negative value, or one over about 292 years) waits forever, 0
  // does not wait; a wait that times out has lasted at least
  // timeout_ms. Spins briefly, then sleeps on a futex.
  // REQUIRES: buffer != nullptr.
  // Errors: kTimedOut (not sealed in time, missing, or deleted: GetObject
  // never answers NotFound), kAborted (a build of it was aborted, or its
  // builder died, while we waited: also when the build began after the wait
  // did; see docs/ARCHITECTURE.md for the rare case of more than six aborts
  // in one wait bucket at once, where the getter keeps waiting instead),
  // kNotConnected. (A builder's death is noticed by the monitor: while no
  // monitor runs, a getter of what a dead builder left keeps waiting until
  // its timeout, or until a monitor is started on the store again.)
  Status GetObject(const ObjectId& id, Buffer* buffer,
                   int64_t timeout_ms = -1);
  // As GetObject, by name.
  // Errors: as GetObject, plus kInvalidArgument (name empty or too long).
  Status GetObjectByName(std::string_view name, Buffer* buffer,
                         int64_t timeout_ms = -1);
  // Gets many: (*buffers)[i] holds ids[i], or is empty if it was not sealed
  // within the one shared timeout. Every id sealed at the call is taken
  // first, without a wait or a clock read; then it waits for the others in
  // order. OK only when every id was found; otherwise kTimedOut (or
  // kAborted) for the first one missing, with the found ones filled in.
  // Blocks as GetObject does, until one shared deadline timeout_ms after
  // that first pass (an id still missing then is looked up once more, not
  // waited for). Also kNotConnected. REQUIRES: buffers != nullptr (its
  // old contents are released).
  Status GetObjects(const std::vector<ObjectId>& ids,
                    std::vector<Buffer>* buffers, int64_t timeout_ms = -1);

  // True when a sealed, not deleted object `id` exists. Never blocks.
  // False in a Client inherited through fork (it has no Status to say
  // kNotConnected with).
  bool Contains(const ObjectId& id);

  // Removes sealed object `id` for new readers at once; its memory is freed
  // when the last holder releases. Never blocks.
  // Errors: kNotFound (no sealed object with this id: missing, already
  // deleted, or still being built), kNotConnected.
  Status Delete(const ObjectId& id);

  // Replaces *objects with every object sealed or being built
  // (info.sealed tells which): a snapshot taken without stopping anyone,
  // scanning the whole object table. Never blocks.
  // REQUIRES: objects != nullptr.
  // Errors: kNotConnected (a Client inherited through fork).
  Status ListObjects(std::vector<ObjectInfo>* objects);
  // What the store keeps about object `id`, sealed or being built. Never
  // blocks. REQUIRES: info != nullptr.
  // Errors: kNotFound (no live object with this id), kNotConnected.
  Status GetObjectInfo(const ObjectId& id, ObjectInfo* info);
  // The value of metadata `key` of sealed object `id`, as a Buffer that
  // holds a reference to the object (value bytes are 1-byte aligned).
  // Never blocks. REQUIRES: value != nullptr (what it held is released).
  // Errors: kNotFound (no sealed object `id`, or no such key); kCorrupt
  // (its entry names a metadata block outside the heap: a damaged region,
  // which `glint check` reports); kNotConnected.
  Status GetMetadata(const ObjectId& id, const std::string& key,
                     Buffer* value);
  // Store-wide figures. Scans the allocator state and the object table:
  // O(capacity / 64 KiB + max_objects) work, never blocks, not for a hot loop.
  // REQUIRES: stats != nullptr.
  // Errors: kNotConnected (a Client inherited through fork).
  Status Stats(StoreStats* stats);

  // For tests and tools: the mapping of the region in this process.
  const uint8_t* region_base() const;
  int64_t region_size() const;
  // This client's slot in the store's client table.
  int client_slot() const;
  // Undo-log records idle in this client's pool (30 in all; each thread
  // may also keep one idle record of its own, not counted here).
  int idle_log_records() const;

 private:
  Client() = default;
  std::unique_ptr<internal::ClientCore> core_;
};

}  // namespace glint

#endif  // GLINT_CLIENT_H_
