// Copyright (c) glint authors.

#include "core/store.h"

#include <bit>

#include "core/atomics.h"
#include "core/crash_point.h"
#include "core/os.h"

namespace glint::core {

// ---------------------------------------------------------------- create
//
// Two creators of one id (or one name) must not both commit. Each creator:
//   (1) claims a free slot (CAS on its bucket's `used`), writes the entry and
//       stores CLAIMED(gen) with release;
//   (2) publishes the slot's fingerprint with a SeqCst RMW (and, for a
//       named object, its name slot's fingerprint the same way);
//   (3) Verify: loads (SeqCst) every fingerprint of the id's first bucket,
//       of its second when we spilled there or the first's spill count says
//       someone may have, and of the name's two buckets; for each other
//       entry of the same id/name:
//       CREATING or SEALED -> it loses; CLAIMED -> it kills that entry
//       (CAS CLAIMED -> KILLED);
//   (4) commits with CAS CLAIMED(gen) -> CREATING(gen); if the CAS fails it
//       was killed, undoes its claim and starts again.
// Why at most one commits: A's store (2) precedes its loads (3), and so for
// B. In the single total order of SeqCst operations one of the two stores
// comes first, so the other creator's loads see it (Dekker). That creator
// then sees its rival as CLAIMED (and kills it: the rival's commit CAS then
// fails) or as committed (and loses). Reading the fingerprint with SeqCst
// synchronises with the rival's store, so its id, name and CLAIMED state,
// written before, are visible. A stopped creator stops nobody: CLAIMED
// entries are killed, never waited for.
Status Store::Create(const CreateArgs& a, uint32_t* out_slot, uint64_t* out_gen,
                     OpRecord* rec) {
  const bool named = !a.name.empty();
  for (uint32_t attempt = 0;; ++attempt) {
    uint32_t slot;
    if (!table_.ClaimObjectSlot(a.id_key, &slot, rec ? &rec->cand_obj : nullptr)) {
      if (ExistsCommitted(a)) return Status::AlreadyExists("an object with this id or name exists");
      return Status::OutOfMemory(
          "object table full: both buckets of this id are taken");
    }
    ObjectEntry* e = r_.entry(slot);
    const uint64_t gen = GenOf(LoadRelaxed(e->state)) + 1;
    // Seqlock writer side: a reader that sees any field we write below (it
    // reads them relaxed, then fences with acquire) must also see that the
    // previous occupant's state is gone when it re-reads the state word.
    std::atomic_thread_fence(std::memory_order_release);
    // (aborted_gens: our generation's bit was cleared when the slot was
    // given back; see SetAbortBits. Create only stores to the entry's
    // second cache line, never loads it.)
    StoreRelaxed(e->id[0], a.id.w[0]);
    StoreRelaxed(e->id[1], a.id.w[1]);
    StoreRelaxed(e->data_offset, a.data_offset);
    StoreRelaxed(e->data_size, a.data_size);
    StoreRelaxed(e->info_offset, a.info_offset);
    StoreRelaxed(e->info_size, a.info_size);
    StoreRelaxed(e->name_len, static_cast<uint16_t>(a.name.size()));
    StoreRelaxed(e->creator_slot, static_cast<uint16_t>(a.client_slot));
    StoreRelaxed(e->name_slot, kNoSlot);
    StoreRelaxed(e->creator_serial, a.client_serial);
    const uint64_t tsc = os::ReadTsc();
    StoreRelaxed(e->create_time_us, clock_.MicrosAt(tsc));
    StoreRelaxed(e->create_tsc, tsc);
    StoreRelaxed(e->seal_tsc, uint64_t{0});
    StoreRelaxed(e->creator_pid, a.pid);
    // Holder bits left on a free slot by a getter that died between setting
    // its bit and finding the entry gone: no getter of this generation can
    // hold it yet (it is not SEALED), so they can all go. Only the words of
    // client slots that exist can have bits (the checker reports others).
    // (Word 0 first, outside the loop: the common store has one word.)
    StoreRelaxed(e->holders[0], uint64_t{0});
    for (uint32_t w = 1; w < holder_words_; ++w) StoreRelaxed(e->holders[w], uint64_t{0});
    StoreRelease(e->state, MakeState(gen, kObjClaimed));
    GLINT_CRASH_POINT();
    table_.PublishObject(slot, a.id_key.fp);
    GLINT_CRASH_POINT();

    if (named) {
      uint32_t ns;
      if (!table_.ClaimNameSlot(a.name_key, &ns, rec ? &rec->cand_name : nullptr)) {
        Unclaim(slot, gen, a.id_key);
        if (ExistsCommitted(a)) return Status::AlreadyExists("an object with this id or name exists");
        return Status::OutOfMemory(
            "name index full: both buckets of this name are taken");
      }
      // The entry names its name slot before the slot points back at it:
      // recovery releases a bound name slot through the entry (ReleaseName
      // checks the back-pointer) and an unbound one through cand_name.
      StoreRelaxed(e->name_slot, ns);
      StoreSeqCst(r_.name_entry(ns)->obj_slot, slot);
      GLINT_CRASH_POINT();
      table_.PublishName(ns, a.name_key.fp);
      GLINT_CRASH_POINT();
    }

    Verdict v = Verify(a, slot);
    if (v == Verdict::kWin) {
      uint64_t expect = MakeState(gen, kObjClaimed);
      if (CasSeqCst(e->state, expect, MakeState(gen, kObjCreating))) {
        GLINT_CRASH_POINT();
        *out_slot = slot;
        *out_gen = gen;
        return Status::OK();
      }
      v = Verdict::kRetry;  // a rival killed us
    }
    Unclaim(slot, gen, a.id_key);
    if (v == Verdict::kLose) {
      return Status::AlreadyExists(named ? "an object with this id or name exists"
                                         : "an object with this id exists");
    }
    // Both rivals killed each other: back off for a pseudo-random while.
    const uint32_t spins = (1u << std::min(attempt, 10u)) +
                           static_cast<uint32_t>((slot * 2654435761u) >> 24);
    for (uint32_t i = 0; i < spins; ++i) CpuRelax();
  }
}

bool Store::ExistsCommitted(const CreateArgs& a) const {
  uint64_t st;
  const uint32_t live = table_.FindLive(a.id_key, a.id, &st);
  if (live != kNoSlot && StateOf(st) != kObjClaimed) return true;
  return !a.name.empty() &&
         (table_.FindByName(a.name_key, a.name, kObjCreating, &st) != kNoSlot ||
          table_.FindByName(a.name_key, a.name, kObjSealed, &st) != kNoSlot);
}

Store::Verdict Store::Verify(const CreateArgs& a, uint32_t my_slot) {
  // Decides one rival entry: kill it if merely claimed, lose if committed.
  auto judge = [&](uint32_t slot, auto&& matches) -> Verdict {
    ObjectEntry* e = r_.entry(slot);
    uint64_t s = LoadSeqCst(e->state);
    for (;;) {
      const ObjState st = StateOf(s);
      if (st != kObjClaimed && st != kObjCreating && st != kObjSealed) {
        return Verdict::kWin;
      }
      if (!matches(slot, s)) {
        // IdMatches/NameMatches also answer false when the entry moved on
        // since we loaded `s` (a rival committing CLAIMED -> CREATING, say):
        // only an unchanged state makes the mismatch a real one.
        const uint64_t now = LoadSeqCst(e->state);
        if (now == s) return Verdict::kWin;
        s = now;
        continue;
      }
      if (st != kObjClaimed) return Verdict::kLose;
      if (CasSeqCst(e->state, s, MakeState(GenOf(s), kObjKilled))) {
        GLINT_CRASH_POINT();
        return Verdict::kWin;
      }
      // s now holds the new state: judge again.
    }
  };
  // The id's first bucket, and its second when we spilled there or the
  // first's spill count (loaded SeqCst, after our publish) says a rival
  // may have: see ObjectTable::ClaimObjectSlot and docs/ARCHITECTURE.md.
  // Judges every rival of the id in bucket `b` (our own slot excluded);
  // true when one of them is committed.
  auto loses_in = [&](uint64_t b) {
    uint64_t m = MatchFingerprints(r_.obj_bucket(b), a.id_key.fp, true);
    if (b == r_.obj_bucket_of(my_slot)) m &= ~(uint64_t{1} << r_.obj_index_of(my_slot));
    while (m != 0) {
      const uint32_t i = std::countr_zero(m);
      m &= m - 1;
      if (judge(r_.obj_slot(b, i), [&](uint32_t sl, uint64_t s) {
            return table_.IdMatches(sl, s, a.id);
          }) == Verdict::kLose) {
        return true;
      }
    }
    return false;
  };
  const uint64_t b0 = a.id_key.bucket[0];
  if (loses_in(b0)) return Verdict::kLose;
  if ((r_.obj_bucket_of(my_slot) != b0 ||
       SpillOf(LoadSeqCst(r_.obj_bucket(b0)->used)) != 0) &&
      loses_in(a.id_key.bucket[1])) {
    return Verdict::kLose;
  }
  if (a.name.empty()) return Verdict::kWin;
  for (uint64_t b : a.name_key.bucket) {
    uint64_t m = MatchFingerprints(r_.name_bucket(b), a.name_key.fp, true);
    while (m != 0) {
      const uint32_t i = std::countr_zero(m);
      m &= m - 1;
      const uint32_t ns = static_cast<uint32_t>(b * kSlotsPerBucket + i);
      const uint32_t slot = LoadAcquire(r_.name_entry(ns)->obj_slot);
      if (slot == my_slot || slot >= r_.num_obj_slots()) continue;
      if (judge(slot, [&](uint32_t sl, uint64_t s) {
            return table_.NameMatches(sl, s, a.name);
          }) == Verdict::kLose) {
        return Verdict::kLose;
      }
    }
  }
  return Verdict::kWin;
}

// aborted_gens of an entry we own: bit (gen % 32) set if `aborted`, and the
// bit of the next generation cleared, before the slot is given back, so the
// next claimer (gen + 1) starts with its bit clear and never reads the word.
// Only the entry's owner writes the word, so a load and a store do.
static void SetAbortBits(ObjectEntry* e, uint64_t gen, bool aborted) {
  uint32_t v = LoadRelaxed(e->aborted_gens) & ~(1u << ((gen + 1) % 32));
  if (aborted) v |= 1u << (gen % 32);
  StoreRelaxed(e->aborted_gens, v);
}

// Undoes a claim that did not commit (CLAIMED or KILLED, both ours): the
// entry goes back to EMPTY(gen), then its used bit (release; the stale
// fingerprint stays, masked by `used`), then a spill count it took.
void Store::Unclaim(uint32_t slot, uint64_t gen, const Key& id_key) {
  ObjectEntry* e = r_.entry(slot);
  ReleaseName(slot);
  SetAbortBits(e, gen, false);
  StoreRelease(e->state, MakeState(gen, kObjEmpty));
  GLINT_CRASH_POINT();
  table_.ReleaseObjectSlot(slot, id_key);
  GLINT_CRASH_POINT();
}

// The key of the id an entry holds (it is ours: freeing, aborting or
// unclaiming it), read before the slot is given back and may be rewritten.
Key Store::IdKeyOf(const ObjectEntry* e) const {
  return MakeKey(IdHash(EntryId(e).w), r_.header()->obj_num_buckets);
}

// The entry is ours (uncommitted, or won for freeing): its name slot goes.
// The name slot is released before the entry forgets it, and only while it
// still points back at us, so a recovery that repeats this (the client
// died half-way) never releases a name slot someone else has since taken.
void Store::ReleaseName(uint32_t slot) {
  ObjectEntry* e = r_.entry(slot);
  const uint32_t ns = LoadRelaxed(e->name_slot);
  if (ns == kNoSlot) return;
  if (ns < r_.header()->name_num_buckets * kSlotsPerBucket &&
      LoadAcquire(r_.name_entry(ns)->obj_slot) == slot) {
    table_.ReleaseNameSlot(ns);
  }
  StoreRelaxed(e->name_slot, kNoSlot);
  GLINT_CRASH_POINT();
}

void Store::SetPayload(uint32_t slot, uint64_t offset, uint64_t size) {
  ObjectEntry* e = r_.entry(slot);
  StoreRelaxed(e->data_offset, offset);
  StoreRelaxed(e->data_size, size);
}

// ---------------------------------------------------------------- seal
//
// The SeqCst CAS to SEALED publishes the payload and every field (release
// half) and is the sealer's side of the waiter handshake: sealer stores
// SEALED then loads `waiters`; a getter increments `waiters` then loads the
// state. One of them sees the other, so a getter never sleeps through a seal.
// (Nobody else writes a CREATING entry while its creator lives, so a plain
// store would own the transition; the full fence is what the CAS is for.
// Moving that fence to the getter with membarrier was tried and reverted:
// docs/ARCHITECTURE.md, decision 9.)
bool Store::Seal(uint32_t slot, uint64_t gen, uint64_t id_hash) {
  ObjectEntry* e = r_.entry(slot);
  // Wake reads the id's wait bucket right after the CAS below, which lets
  // no load pass it: fetch the line now so the miss overlaps the CAS.
  __builtin_prefetch(r_.wait_bucket(id_hash), 0, 3);
  // A named object also wakes the getters of its name: out of line, so the
  // common unnamed seal needs few registers (and saves few).
  if (LoadRelaxed(e->name_len) != 0) return SealNamed(e, gen, id_hash);
  if (!CommitSeal(e, gen)) return false;
  GLINT_CRASH_POINT();
  Wake(id_hash);
  return true;
}

bool Store::SealNamed(ObjectEntry* e, uint64_t gen, uint64_t id_hash) {
  // The name's hash is taken while the entry is still ours: once SEALED, a
  // deleter may free and reuse it at any moment.
  uint64_t name_hash = 0;
  const bool named = NameHashOf(e, &name_hash);
  if (!CommitSeal(e, gen)) return false;
  GLINT_CRASH_POINT();
  Wake(id_hash);
  if (named) Wake(name_hash);
  return true;
}

// The seal time, then CREATING(gen) -> SEALED(gen).
inline bool Store::CommitSeal(ObjectEntry* e, uint64_t gen) {
  StoreRelaxed(e->seal_tsc, os::ReadTsc());
  uint64_t expect = MakeState(gen, kObjCreating);
  return CasSeqCst(e->state, expect, MakeState(gen, kObjSealed));
}

// The hash only picks the wait bucket to wake, so a damaged entry (a length
// past the limit, a block outside the heap: recovery reads entries a dead
// client may have left so) hashes what part of it is in range instead of
// reading or writing out of bounds.
uint64_t Store::HashName(const ObjectEntry* e, uint16_t len) const {
  char name[kMaxNameBytes];
  const uint64_t heap_size = r_.header()->heap_size;
  const uint64_t off = std::min(LoadRelaxed(e->info_offset), heap_size);
  len = static_cast<uint16_t>(std::min<uint64_t>({len, kMaxNameBytes, heap_size - off}));
  const auto* src = reinterpret_cast<const std::atomic<uint8_t>*>(r_.heap() + off);
  for (uint16_t i = 0; i < len; ++i) name[i] = static_cast<char>(LoadRelaxed(src[i]));
  return NameHash(std::string_view(name, len));
}

void Store::WakeSleepers(WaitBucket* wb) {
  wb->seq.fetch_add(1, std::memory_order_seq_cst);
  os::FutexWakeAll(&wb->seq);
}

void Store::FreeBlocks(ObjectEntry* e, OpRecord* rec) {
  const uint64_t dsize = LoadRelaxed(e->data_size);
  const uint32_t isize = LoadRelaxed(e->info_size);
  heap_.Free(LoadRelaxed(e->data_offset), dsize, rec);
  GLINT_CRASH_POINT();
  if (isize > 0) {  // most objects have no info block
    heap_.Free(LoadRelaxed(e->info_offset), isize, rec);
    GLINT_CRASH_POINT();
  }
}

// ---------------------------------------------------------------- abort
//
// Only the creator touches a CREATING entry, so its blocks are freed before
// the entry is unpublished. The wake comes after ABORTED is stored, so a
// waiter that saw CREATING(gen) and wakes finds ABORTED(gen).
//
// Logging: rec says kOpAbort(slot, gen) from before the CAS. A client that
// dies with the entry FREEING(gen) leaves recovery to free what of its
// blocks is still taken and unreferenced, then FinishAbort.
bool Store::Abort(uint32_t slot, uint64_t gen, uint64_t id_hash, OpRecord* rec) {
  ObjectEntry* e = r_.entry(slot);
  StoreRelaxed(rec->obj_slot, slot);
  StoreRelaxed(rec->gen, gen);
  StoreRelease(rec->op, static_cast<uint32_t>(kOpAbort));
  // The abort is noted before it happens: once the CAS below leaves
  // FREEING, a new build of the id (or name) may begin, and a getter that
  // starts waiting for that one must not match this abort. Only the builder
  // (or the monitor for one that left) aborts, so the CAS fails only on a
  // damaged region, and a note without an abort is then harmless.
  uint64_t name_hash = 0;
  const bool named = NameHashOf(e, &name_hash);
  NoteAbort(id_hash);
  if (named) NoteAbort(name_hash);
  // CREATING -> FREEING first: only the builder (or the monitor for a
  // builder that left) may abort, and a CAS proves the entry is still this
  // build before anything is freed.
  uint64_t expect = MakeState(gen, kObjCreating);
  bool won = CasSeqCst(e->state, expect, MakeState(gen, kObjFreeing));
  if (won) {
    GLINT_CRASH_POINT();
    FreeBlocks(e, rec);
    FinishAbort(slot, gen);
    Wake(id_hash);
    if (named) Wake(name_hash);
  }
  StoreRelease(rec->op, static_cast<uint32_t>(kOpNone));
  return won;
}

// A getter that saw the build (CREATING) learns of its abort from the entry
// (WasAborted). One that began waiting before the build began never saw it;
// it reads `aborts` when it starts waiting and, at each look, the tags of
// the aborts numbered since. Ordering, with the getter's side in
// ClientCore::WaitSlow: our fetch_add and tag store (SeqCst), then, after
// the abort, Wake's SeqCst load of `waiters`; the getter counts itself in
// `waiters` (SeqCst), then loads `aborts` and the tags (SeqCst). If our
// load of `waiters` comes first in the single total order, so does our tag
// store, and the getter's loads see it; otherwise we see the getter and
// bump `seq`, so its FUTEX_WAIT returns at once or is woken, and it looks
// again after our tag store. A getter that reads `aborts` already counting
// abort n but an older tag at its place (we are between the two steps)
// does not match (the tag carries n), and is woken the same way.
// Death after the fetch_add and before the tag leaves a number nobody
// matches; the monitor then aborts the dead builder's build itself, noting
// it again (a second note of one abort is harmless).
void Store::NoteAbort(uint64_t hash) {
  WaitBucket* wb = r_.wait_bucket(hash);
  const uint64_t n = wb->aborts.fetch_add(1, std::memory_order_seq_cst);
  GLINT_CRASH_POINT();
  PutAbortTag(wb, n, hash);
  GLINT_CRASH_POINT();
}

// A writer delayed between its two steps while six later aborts took
// numbers could otherwise overwrite a newer tag at its place, which a
// getter waiting since then would miss. A tag's number is 32 bits; compared
// modulo 2^32, older is the half behind. (0: never written.)
void Store::PutAbortTag(WaitBucket* wb, uint64_t n, uint64_t hash) {
  std::atomic<uint64_t>& place = wb->aborted[n % kAbortRing];
  const uint64_t tag = AbortTag(n, hash);
  uint64_t old = LoadSeqCst(place);
  while (old == 0 ||
         static_cast<int32_t>(static_cast<uint32_t>(n) - static_cast<uint32_t>(old >> 32)) > 0) {
    if (place.compare_exchange_weak(old, tag, std::memory_order_seq_cst)) return;
  }
}

bool Store::AbortNotedSince(uint64_t hash, uint64_t since) const {
  const WaitBucket* wb = r_.wait_bucket(hash);
  const uint64_t now = LoadSeqCst(wb->aborts);
  // Only the last kAbortRing are still there.
  const uint64_t first = now - since > kAbortRing ? now - kAbortRing : since;
  for (uint64_t n = first; n != now; ++n) {
    if (LoadSeqCst(wb->aborted[n % kAbortRing]) == AbortTag(n, hash)) return true;
  }
  return false;
}

// FREEING(gen) with its blocks freed -> ABORTED(gen), slot given back.
void Store::FinishAbort(uint32_t slot, uint64_t gen) {
  ObjectEntry* e = r_.entry(slot);
  const Key k = IdKeyOf(e);
  ReleaseName(slot);
  SetAbortBits(e, gen, true);
  StoreSeqCst(e->state, MakeState(gen, kObjAborted));
  GLINT_CRASH_POINT();
  table_.ReleaseObjectSlot(slot, k);
  GLINT_CRASH_POINT();
}

bool Store::WasAborted(uint32_t slot, uint64_t gen) const {
  const ObjectEntry* e = r_.entry(slot);
  const uint64_t cur = LoadAcquire(e->state);
  const uint64_t cg = GenOf(cur);
  if (cg < gen) return false;
  if (cg == gen && StateOf(cur) != kObjAborted) return false;
  // Long gone, never sealed for us. At 31 generations on, the bit of gen
  // may already be cleared: the give-back of gen + 31 clears the bit of
  // gen + 32, which is gen's (SetAbortBits).
  if (cg - gen >= 31) return true;
  return (LoadRelaxed(e->aborted_gens) >> (gen % 32)) & 1;
}

// ---------------------------------------------------------------- holders
//
// Get:    SetHolder (SeqCst RMW)  then load state, must be SEALED(gen).
// Delete: CAS SEALED -> DELETING (SeqCst) then load holders.
// In the SeqCst total order either the getter's RMW precedes the deleter's
// load (the deleter sees the bit and does not free), or the deleter's CAS
// precedes the getter's load (the getter sees DELETING and backs out). So no
// object is freed under a holder. Release mirrors it: ClearHolder then load
// state; if DELETING and nobody holds it, whoever wins the CAS to FREEING
// frees it.
void Store::SetHolder(uint32_t slot, uint32_t c) {
  FetchOrSeqCst(r_.entry(slot)->holders[c / 64], uint64_t{1} << (c % 64));
}

void Store::ClearHolder(uint32_t slot, uint32_t c) {
  FetchAndSeqCst(r_.entry(slot)->holders[c / 64], ~(uint64_t{1} << (c % 64)));
}

bool Store::AnyHolder(uint32_t slot) const {
  const ObjectEntry* e = r_.entry(slot);
  for (uint32_t w = 0; w < holder_words_; ++w) {
    if (LoadSeqCst(e->holders[w]) != 0) return true;
  }
  return false;
}

// SEALED -> DELETING is one CAS: recovery decides it by the state alone
// (a DELETING entry that nobody holds is freed by whoever sees it so).
bool Store::Delete(uint32_t slot, uint64_t state, OpRecord* rec, const Key& id_key) {
  ObjectEntry* e = r_.entry(slot);
  uint64_t expect = state;
  if (!CasSeqCst(e->state, expect, MakeState(GenOf(state), kObjDeleting))) {
    return false;
  }
  GLINT_CRASH_POINT();
  // Our CAS left DELETING(gen): no need to load the state again (if a
  // releaser moved it on since, the CAS to FREEING fails, as it would
  // after a fresh load).
  MaybeFreeFrom(slot, MakeState(GenOf(state), kObjDeleting), rec, &id_key);
  return true;
}

// Logging: rec says kOpFreeEntry(slot, gen) from before the CAS to FREEING
// until the slot is given back; a client that dies in between leaves
// recovery to finish (free what is still taken and unreferenced, then
// FinishFree).
void Store::MaybeFree(uint32_t slot, OpRecord* rec) {
  MaybeFreeFrom(slot, LoadSeqCst(r_.entry(slot)->state), rec);
}

void Store::MaybeFreeFrom(uint32_t slot, uint64_t s, OpRecord* rec, const Key* id_key) {
  ObjectEntry* e = r_.entry(slot);
  if (StateOf(s) != kObjDeleting || AnyHolder(slot)) return;
  StoreRelaxed(rec->obj_slot, slot);
  StoreRelaxed(rec->gen, GenOf(s));
  StoreRelease(rec->op, static_cast<uint32_t>(kOpFreeEntry));
  if (CasSeqCst(e->state, s, MakeState(GenOf(s), kObjFreeing))) {
    GLINT_CRASH_POINT();
    FreeBlocks(e, rec);
    FinishFree(slot, GenOf(s), id_key);
  }
  StoreRelease(rec->op, static_cast<uint32_t>(kOpNone));
}

// FREEING(gen) with its blocks freed -> EMPTY(gen) (release), name and slot
// given back.
void Store::FinishFree(uint32_t slot, uint64_t gen, const Key* id_key) {
  ObjectEntry* e = r_.entry(slot);
  const Key k = id_key != nullptr ? *id_key : IdKeyOf(e);
  ReleaseName(slot);
  SetAbortBits(e, gen, false);
  StoreRelease(e->state, MakeState(gen, kObjEmpty));
  GLINT_CRASH_POINT();
  table_.ReleaseObjectSlot(slot, k);
  GLINT_CRASH_POINT();
}

// ---------------------------------------------------------------- cleanup

void Store::CountObjects(int64_t* sealed, int64_t* building) const {
  *sealed = 0;
  *building = 0;
  for (uint64_t b = 0; b < r_.header()->obj_num_buckets; ++b) {
    uint64_t used = UsedSlots(LoadAcquire(r_.obj_bucket(b)->used));
    while (used != 0) {
      const uint32_t i = std::countr_zero(used);
      used &= used - 1;
      const ObjState st = StateOf(
          LoadAcquire(r_.entry(r_.obj_slot(b, i))->state));
      if (st == kObjSealed) ++*sealed;
      if (st == kObjCreating) ++*building;
    }
  }
}

uint32_t Store::ReleaseClient(uint32_t c, OpRecord* rec) {
  const uint64_t bit = uint64_t{1} << (c % 64);
  uint32_t found = 0;
  // Taken slots only: a holder bit left on a free slot is cleared by the
  // next claimer (see Create).
  for (uint64_t b = 0; b < r_.header()->obj_num_buckets; ++b) {
    uint64_t used = UsedSlots(LoadAcquire(r_.obj_bucket(b)->used));
    while (used != 0) {
      const uint32_t i = std::countr_zero(used);
      used &= used - 1;
      const uint32_t slot = r_.obj_slot(b, i);
      ObjectEntry* e = r_.entry(slot);
      if (LoadSeqCst(e->holders[c / 64]) & bit) {
        ClearHolder(slot, c);
        ++found;
        GLINT_CRASH_POINT();
      }
      // Also finishes a delete whose last holder died before freeing it.
      MaybeFree(slot, rec);
      const uint64_t s = LoadAcquire(e->state);
      if (LoadRelaxed(e->creator_slot) != c || StateOf(s) != kObjCreating) continue;
      ++found;
      Abort(slot, GenOf(s), IdHash(EntryId(e).w), rec);
    }
  }
  return found;
}

}  // namespace glint::core
