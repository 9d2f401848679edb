// Copyright (c) glint authors.
//
// The public classes are thin: every operation lives in ClientCore.

#include "glint/client.h"

#include "client/client_core.h"

#if defined(__SANITIZE_ADDRESS__)
#define GLINT_HAS_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define GLINT_HAS_LSAN 1
#endif
#endif
#ifndef GLINT_HAS_LSAN
#define GLINT_HAS_LSAN 0
#endif
#if GLINT_HAS_LSAN
#include <sanitizer/lsan_interface.h>
#endif

namespace glint {

// ------------------------------------------------------------ Buffer

Buffer::Buffer(Buffer&& o) noexcept
    : core_(o.core_), data_(o.data_), size_(o.size_), slot_(o.slot_),
      gen_(o.gen_), id_(o.id_) {
  o.core_ = nullptr;
  o.data_ = nullptr;
  o.size_ = 0;
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    Release();
    core_ = o.core_;
    data_ = o.data_;
    size_ = o.size_;
    slot_ = o.slot_;
    gen_ = o.gen_;
    id_ = o.id_;
    o.core_ = nullptr;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

// The calls on the fast paths (build, seal, get, release, delete, contains)
// are flattened: GCC inlines their whole call tree into them, down to the
// functions marked noinline (slow and error paths: allocation slow paths,
// waiting, aborts, error messages). Across the client, store, table and
// heap layers that removes ~20% of the instructions of each operation
// (docs/BENCHMARKS.md); no other caller changes.
#define GLINT_FLATTEN [[gnu::flatten]]

GLINT_FLATTEN void Buffer::Release() {
  if (core_ != nullptr) core_->Release(this);
  data_ = nullptr;
  size_ = 0;
}

// ------------------------------------------------------------ MutableBuffer

MutableBuffer::~MutableBuffer() {
  if (core_ != nullptr) core_->Abort(this);
}

MutableBuffer::MutableBuffer(MutableBuffer&& o) noexcept
    : core_(o.core_), data_(o.data_), size_(o.size_), slot_(o.slot_),
      gen_(o.gen_), sealed_(o.sealed_), id_(o.id_), id_hash_(o.id_hash_) {
  o.core_ = nullptr;
  o.data_ = nullptr;
  o.size_ = 0;
  o.sealed_ = false;
}

MutableBuffer& MutableBuffer::operator=(MutableBuffer&& o) noexcept {
  if (this != &o) {
    if (core_ != nullptr) core_->Abort(this);
    core_ = o.core_;
    data_ = o.data_;
    size_ = o.size_;
    slot_ = o.slot_;
    gen_ = o.gen_;
    sealed_ = o.sealed_;
    id_ = o.id_;
    id_hash_ = o.id_hash_;
    o.core_ = nullptr;
    o.data_ = nullptr;
    o.size_ = 0;
    o.sealed_ = false;
  }
  return *this;
}

Status MutableBuffer::Resize(int64_t new_size) {
  if (core_ == nullptr) {
    return Status::FailedPrecondition(
        sealed_ ? "cannot resize a sealed object"
                : "cannot resize: this buffer is not building an object");
  }
  return core_->Resize(this, new_size);
}

namespace {
[[gnu::noinline, gnu::cold]] Status CannotSeal(bool sealed, const ObjectId& id) {
  return Status::FailedPrecondition(sealed ? "object " + id.hex() + " is already sealed"
                                           : "cannot seal: this buffer is not building an object");
}
}  // namespace

GLINT_FLATTEN Status MutableBuffer::Seal() {
  if (core_ == nullptr) return CannotSeal(sealed_, id_);
  return core_->Seal(this);
}

Status MutableBuffer::Abort() {
  if (core_ == nullptr) {
    return Status::FailedPrecondition(
        sealed_ ? "cannot abort a sealed object (delete it instead)"
                : "cannot abort: this buffer is not building an object");
  }
  return core_->Abort(this);
}

// ------------------------------------------------------------ Client

Status Client::Connect(const std::string& store_socket,
                       std::unique_ptr<Client>* out) {
  std::unique_ptr<internal::ClientCore> core;
  Status s = internal::ClientCore::Connect(store_socket, &core);
  if (!s.ok()) return s;
  std::unique_ptr<Client> c(new Client());
  c->core_ = std::move(core);
  *out = std::move(c);
  return Status::OK();
}

// Buffers and MutableBuffers still alive keep a pointer to the core: it
// then stays allocated, inert, for them (a few hundred bytes, until the
// process exits; told to LeakSanitizer as intended).
Client::~Client() {
  if (core_ != nullptr && core_->Close()) {
    internal::ClientCore* kept = core_.release();
#if GLINT_HAS_LSAN
    __lsan_ignore_object(kept);
#else
    (void)kept;
#endif
  }
}

GLINT_FLATTEN Status Client::BuildObject(const ObjectId& id, int64_t size,
                                         MutableBuffer* buffer) {
  return core_->BuildObject(id, size, buffer, {}, nullptr);
}

GLINT_FLATTEN Status Client::BuildObject(const ObjectId& id, int64_t size,
                           MutableBuffer* buffer, std::string_view name,
                           const Metadata& metadata) {
  return core_->BuildObject(id, size, buffer, name, &metadata);
}

GLINT_FLATTEN Status Client::GetObject(const ObjectId& id, Buffer* buffer, int64_t timeout_ms) {
  return core_->GetObject(id, buffer, timeout_ms);
}

Status Client::GetObjectByName(std::string_view name, Buffer* buffer,
                               int64_t timeout_ms) {
  return core_->GetObjectByName(name, buffer, timeout_ms);
}

Status Client::GetObjects(const std::vector<ObjectId>& ids,
                          std::vector<Buffer>* buffers, int64_t timeout_ms) {
  return core_->GetObjects(ids, buffers, timeout_ms);
}

GLINT_FLATTEN bool Client::Contains(const ObjectId& id) { return core_->Contains(id); }

GLINT_FLATTEN Status Client::Delete(const ObjectId& id) { return core_->Delete(id); }

Status Client::ListObjects(std::vector<ObjectInfo>* objects) {
  return core_->ListObjects(objects);
}

Status Client::GetObjectInfo(const ObjectId& id, ObjectInfo* info) {
  return core_->GetObjectInfo(id, info);
}

Status Client::GetMetadata(const ObjectId& id, const std::string& key,
                           Buffer* value) {
  return core_->GetMetadata(id, key, value);
}

Status Client::Stats(StoreStats* stats) { return core_->Stats(stats); }

const uint8_t* Client::region_base() const { return core_->base(); }
int64_t Client::region_size() const { return core_->size(); }
int Client::client_slot() const { return static_cast<int>(core_->slot()); }

int Client::idle_log_records() const { return core_->idle_records(); }

}  // namespace glint
