// Copyright (c) glint authors.
//
// The object life cycle on the shared region: create, seal, abort, hold,
// release, delete and free. Every method is lock-free and makes no syscall,
// except Wake (one FUTEX_WAKE, only when a getter announced it sleeps).
//
//   EMPTY/ABORTED --claim--> CLAIMED --commit--> CREATING --seal--> SEALED
//        ^                      |                   |                  |
//        |                    killed             abort              delete
//        |                      v                   v                  v
//        +------------------ KILLED           ABORTED(gen)        DELETING
//        |                                                             |
//        +----------- EMPTY(gen) <-- FREEING <-- last holder gone -----+
//
// The memory-ordering argument of each step is written at the step, in
// store.cc, and collected in docs/ARCHITECTURE.md.

#ifndef GLINT_CORE_STORE_H_
#define GLINT_CORE_STORE_H_

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "alloc/heap.h"
#include "core/atomics.h"
#include "core/object_table.h"
#include "core/os.h"
#include "core/region.h"
#include "glint/status.h"

namespace glint::core {

struct CreateArgs {
  IdWords id;
  Key id_key;
  std::string_view name;  // empty: no name
  Key name_key;
  uint64_t data_offset = 0;  // payload block (already allocated)
  uint64_t data_size = 0;
  uint64_t info_offset = 0;  // name + metadata block (already written)
  uint32_t info_size = 0;
  uint32_t client_slot = 0;
  uint32_t client_serial = 0;
  uint32_t pid = 0;
};

class Store {
 public:
  explicit Store(const Region& r)
      : r_(r),
        table_(r),
        heap_(r),
        clock_(r.header()->tsc_per_us),
        holder_words_(std::min<uint32_t>((r.header()->max_clients + 63) / 64, kHolderWords)) {}

  const Region& region() const { return r_; }
  ObjectTable& table() { return table_; }
  alloc::Heap& heap() { return heap_; }

  // Claims a slot for a.id (and a.name), proves no other live object has
  // either, and commits the entry as CREATING with the payload and info
  // blocks the caller allocated (still the caller's to free on error). Errors: kAlreadyExists, kOutOfMemory (both buckets full).
  // `rec` (may be null in unit tests) gets the slots about to be claimed.
  Status Create(const CreateArgs& a, uint32_t* slot, uint64_t* gen,
                OpRecord* rec = nullptr);
  // Creator only, while CREATING.
  void SetPayload(uint32_t slot, uint64_t offset, uint64_t size);
  // Creator only: CAS CREATING(gen) -> SEALED(gen), then wakes waiters (of
  // the id, whose hash is id_hash, and of the name if any). False when the
  // entry is no longer this build (a damaged region: the monitor recovers a
  // client only once its process has exited).
  bool Seal(uint32_t slot, uint64_t gen, uint64_t id_hash);
  // Creator only: frees the payload and info blocks, unpublishes the entry
  // (ABORTED(gen)) and wakes waiters.
  // False when the entry is no longer this build.
  // `rec`: the caller's idle log record (its op is kOpNone again after).
  [[gnu::noinline]] bool Abort(uint32_t slot, uint64_t gen, uint64_t id_hash,
                               OpRecord* rec);
  // The tail of an abort, once the blocks are freed: FREEING(gen) ->
  // ABORTED(gen), name and slot given back. Recovery runs it too.
  void FinishAbort(uint32_t slot, uint64_t gen);
  // True when generation `gen` of `slot`, once seen being built, was aborted
  // (or is long gone without the caller having found it sealed).
  bool WasAborted(uint32_t slot, uint64_t gen) const;

  // Sets / clears client `c`'s holder bit on `slot` (SeqCst: the Dekker
  // handshake with Delete).
  void SetHolder(uint32_t slot, uint32_t c);
  void ClearHolder(uint32_t slot, uint32_t c);
  bool AnyHolder(uint32_t slot) const;

  // SEALED(gen) -> DELETING(gen); frees at once when nobody holds it.
  // Returns false if the entry was no longer SEALED(gen). `id_key`: the key
  // of the id the caller found in `slot` in `state`.
  bool Delete(uint32_t slot, uint64_t state, OpRecord* rec, const Key& id_key);
  // Frees `slot` if it is DELETING and holder-free; exactly one caller wins.
  // `rec`: the caller's idle log record (kOpNone again after).
  void MaybeFree(uint32_t slot, OpRecord* rec);
  // MaybeFree with the entry's state `s` already known (SeqCst-loaded, or
  // the value of the caller's own SeqCst CAS).
  // `id_key`: the entry's id's key when the caller knows it (saves a hash).
  void MaybeFreeFrom(uint32_t slot, uint64_t s, OpRecord* rec,
                     const Key* id_key = nullptr);
  // The tail of a free, once the blocks are freed: FREEING(gen) ->
  // EMPTY(gen), name and slot given back. Recovery runs it too.
  // `id_key` as for MaybeFreeFrom (null: hashed from the entry's id).
  void FinishFree(uint32_t slot, uint64_t gen, const Key* id_key = nullptr);
  // Gives back the entry's name slot if it still points at `slot`.
  void ReleaseName(uint32_t slot);
  // The hash of the entry's name; false when it has none.
  bool NameHashOf(const ObjectEntry* e, uint64_t* hash) const {
    const uint16_t len = LoadRelaxed(e->name_len);
    return len != 0 && (*hash = HashName(e, len), true);
  }

  // Wakes getters sleeping in the wait bucket of `hash`, if any.
  void Wake(uint64_t hash) {
    WaitBucket* wb = r_.wait_bucket(hash);
    if (LoadSeqCst(wb->waiters) != 0) WakeSleepers(wb);  // else no syscall
  }

  // Before an abort takes effect: records it in the wait bucket of `hash`
  // (the id's or the name's) for getters that wait there, so that getters
  // that began waiting before the build began learn of it too (see
  // WaitBucket). The caller wakes the bucket once the abort is done. Two
  // locked instructions; aborts only.
  void NoteAbort(uint64_t hash);
  // NoteAbort's second step, for abort number `n` (tests call it to act a
  // writer delayed between the two steps): stores the tag unless a newer
  // abort's tag already took the place.
  static void PutAbortTag(WaitBucket* wb, uint64_t n, uint64_t hash);
  // True when an abort of `hash` was noted in its wait bucket as number
  // `since` (WaitBucket::aborts, read earlier) or later. An abort whose tag
  // was overwritten (more than kAbortRing since) is not found.
  bool AbortNotedSince(uint64_t hash, uint64_t since) const;

  // True when a committed (being built or sealed) object has a.id or a.name.
  // For error paths: lets a full store still answer AlreadyExists.
  [[gnu::noinline]] bool ExistsCommitted(const CreateArgs& a) const;

  // Counts by scanning the table: objects sealed and objects being built.
  void CountObjects(int64_t* sealed, int64_t* building) const;

  // Releases everything client slot `c` holds and aborts what it builds.
  // Returns how many objects it found held or being built by `c`.
  // REQUIRES: client `c` runs no operation (it left, or its Client is being
  // destroyed). Used by Client's destructor and by the monitor.
  uint32_t ReleaseClient(uint32_t c, OpRecord* rec);

 private:
  void FreeBlocks(ObjectEntry* e, OpRecord* rec);
  // Seal of an object with a name (see Seal).
  [[gnu::noinline]] bool SealNamed(ObjectEntry* e, uint64_t gen, uint64_t id_hash);
  bool CommitSeal(ObjectEntry* e, uint64_t gen);
  // Bumps the bucket's seq and wakes its sleepers (a syscall).
  [[gnu::noinline]] void WakeSleepers(WaitBucket* wb);
  void Unclaim(uint32_t slot, uint64_t gen, const Key& id_key);
  Key IdKeyOf(const ObjectEntry* e) const;
  // The hash of the entry's name of `len` (> 0) bytes. Out of line: its
  // name buffer would otherwise enlarge the frame of every seal.
  [[gnu::noinline]] uint64_t HashName(const ObjectEntry* e, uint16_t len) const;
  static constexpr size_t kMaxNameBytes = 255;
  enum class Verdict { kWin, kLose, kRetry };
  Verdict Verify(const CreateArgs& a, uint32_t my_slot);

  Region r_;
  ObjectTable table_;
  alloc::Heap heap_;
  os::TscClock clock_;  // create_time_us from the create's TSC reading
  uint32_t holder_words_;  // holder words in use: (max_clients + 63) / 64
};

}  // namespace glint::core

#endif  // GLINT_CORE_STORE_H_
