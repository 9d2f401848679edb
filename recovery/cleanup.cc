// Copyright (c) glint authors.
//
// Crash recovery. The decisions here all follow one pattern, "free it if
// nobody owns it": a block, page run, table slot or name slot that the dead
// client's log names, and that is taken, is the dead client's (and so is
// given back) unless something live references it. What can reference it:
//   - an entry in a state that owns its blocks (CLAIMED .. FREEING);
//   - a span (for pages): any span not FREE owns its 16 pages;
//   - the log record of a live client (cand, cand_pages, owned[], touch,
//     cand_obj, cand_name): a client in the middle of taking it.
// A reference moves from a record to an entry only after the entry holds it
// (the record is cleared after), so reading the live records, then the
// entries, then the live records again, sees every reference that existed
// throughout — provided the memory was not freed and re-taken meanwhile,
// which the free counters detect (the span state's `frees`, the page
// epochs, the name slot's `seq`, the entry's generation): the final step
// is a CAS (or a check) against what was read first. A live record naming
// it means "maybe theirs": the step is deferred, not decided.

#include "recovery/cleanup.h"

#include <unistd.h>

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "alloc/heap.h"
#include "core/atomics.h"
#include "core/crash_point.h"
#include "core/object_table.h"
#include "core/os.h"

namespace glint::internal {

namespace {

using core::BlockRef;
using core::ClientSlot;
using core::kNoSlot;
using core::LoadAcquire;
using core::LoadRelaxed;
using core::LoadSeqCst;
using core::ObjectEntry;
using core::OpRecord;
using core::Region;
using core::StoreRelaxed;
using core::StoreRelease;

constexpr uint64_t kPage = core::kPageSize;

enum class Verdict { kFreed, kNotOurs, kDefer };

bool OwnsBlocks(core::ObjState st) {
  return st == core::kObjClaimed || st == core::kObjKilled ||
         st == core::kObjCreating || st == core::kObjSealed ||
         st == core::kObjDeleting || st == core::kObjFreeing;
}

// A byte range of the heap: [lo, hi).
struct Range {
  uint64_t lo, hi;
  bool Overlaps(const Range& o) const { return lo < o.hi && o.lo < hi; }
};

// The heap bytes a block of `size` requested bytes at `off` occupies.
Range BlockRange(uint64_t off, uint64_t size) {
  return {off, off + alloc::AllocSize(size)};
}

class Recovery {
 public:
  Recovery(core::Store* store, uint32_t dead)
      : s_(store), r_(store->region()), heap_(store->heap()), dead_(dead) {}

  bool Run();

 private:
  // ---- what references what
  // Calls f(record) for every record of every live client but the dead
  // one; true as soon as f does.
  template <typename F>
  bool AnyLiveRecord(F&& f) const {
    for (uint32_t c = 0; c < r_.header()->max_clients; ++c) {
      if (c == dead_ || LoadAcquire(r_.client(c)->state) != core::kClientActive) continue;
      for (uint32_t i = 0; i < core::kRecordsPerClient; ++i) {
        if (f(*r_.record(c, i))) return true;
      }
    }
    return false;
  }
  // Calls f(slot, entry) for every taken object slot; true as soon as f is.
  template <typename F>
  bool AnyTakenEntry(F&& f) const {
    for (uint64_t b = 0; b < r_.header()->obj_num_buckets; ++b) {
      uint64_t used = core::UsedSlots(LoadAcquire(r_.obj_bucket(b)->used));
      while (used != 0) {
        const uint32_t slot =
            r_.obj_slot(b, static_cast<uint32_t>(std::countr_zero(used)));
        used &= used - 1;
        if (f(slot, r_.entry(slot))) return true;
      }
    }
    return false;
  }
  bool LiveRecordsMention(const Range* block, uint32_t span1, uint32_t obj1,
                          uint32_t name1) const;
  bool EntryReferences(const Range& block, bool small, uint32_t exclude) const;
  bool SpanCovers(const Range& block) const;
  bool LiveEntryWork(uint32_t slot) const;
  bool EntryNames(uint32_t ns, uint32_t exclude) const;

  // ---- "free it if nobody owns it"
  Verdict FreeBlockIfUnowned(uint64_t off, uint64_t size, uint32_t exclude);
  Verdict FreeSmallIfUnowned(uint64_t off, uint64_t size, uint32_t exclude);
  Verdict FreePagesIfUnowned(uint64_t off, uint64_t bytes, uint32_t exclude);
  Verdict ReleaseObjSlotIfUnowned(uint32_t slot);
  Verdict ReleaseNameSlotIfUnowned(uint32_t ns, uint32_t exclude);
  bool RecountSpan(uint64_t span);

  // ---- the steps
  // Records a step's verdict; `what` names the step for GLINT_DEBUG_RECOVERY.
  void Note(Verdict v, const char* what) {
    if (v == Verdict::kDefer) {
      if (getenv("GLINT_DEBUG_RECOVERY")) fprintf(stderr, "defer at %s\n", what);
      deferred_ = true;
    }
  }
  void Ref(const BlockRef& b, uint32_t exclude) {
    const uint64_t off1 = LoadAcquire(b.off1);
    const uint64_t size = LoadRelaxed(b.size);
    if (off1 != 0 && size != 0) Note(FreeBlockIfUnowned(off1 - 1, size, exclude), "ref");
  }
  void FreeEntryBlocks(uint32_t slot);
  void FinishRecord(OpRecord* rec);
  void ScanEntries(OpRecord* rec0);
  void WakeEveryWaiter();
  void RecountWaiters(uint32_t bucket);

  core::Store* s_;
  Region r_;
  alloc::Heap& heap_;
  uint32_t dead_;
  bool deferred_ = false;
};

// ---------------------------------------------------------------- refs

bool Recovery::LiveRecordsMention(const Range* block, uint32_t span1,
                                  uint32_t obj1, uint32_t name1) const {
  auto overlaps = [&](const BlockRef& b) {
    const uint64_t off1 = LoadAcquire(b.off1);
    const uint64_t size = LoadRelaxed(b.size);
    return block != nullptr && off1 != 0 && size != 0 &&
           BlockRange(off1 - 1, size).Overlaps(*block);
  };
  return AnyLiveRecord([&](const OpRecord& rec) {
    return (span1 != 0 && LoadAcquire(rec.touch) == span1) ||
           (obj1 != 0 && LoadAcquire(rec.cand_obj) == obj1) ||
           (name1 != 0 && LoadAcquire(rec.cand_name) == name1) ||
           overlaps(rec.cand) || overlaps(rec.cand_pages) || overlaps(rec.owned[0]) ||
           overlaps(rec.owned[1]);
  });
}

// A live client is freeing, aborting or unclaiming entry `slot` (its record
// says so from before its CAS until the slot is given back).
bool Recovery::LiveEntryWork(uint32_t slot) const {
  return AnyLiveRecord([&](const OpRecord& rec) {
    const uint32_t op = LoadAcquire(rec.op);
    return (op == core::kOpFreeEntry || op == core::kOpAbort || op == core::kOpUnclaim) &&
           LoadRelaxed(rec.obj_slot) == slot;
  });
}

// An entry that owns its blocks (other than `exclude`) names name slot `ns`.
bool Recovery::EntryNames(uint32_t ns, uint32_t exclude) const {
  return AnyTakenEntry([&](uint32_t slot, const ObjectEntry* e) {
    return slot != exclude && OwnsBlocks(core::StateOf(LoadAcquire(e->state))) &&
           LoadRelaxed(e->name_slot) == ns;
  });
}

bool Recovery::EntryReferences(const Range& block, bool small,
                               uint32_t exclude) const {
  return AnyTakenEntry([&](uint32_t slot, const ObjectEntry* e) {
    if (slot == exclude || !OwnsBlocks(core::StateOf(LoadAcquire(e->state)))) return false;
    const uint64_t dsize = LoadRelaxed(e->data_size);
    const uint64_t isize = LoadRelaxed(e->info_size);
    for (auto [off, size] : {std::pair{LoadRelaxed(e->data_offset), dsize},
                             std::pair{LoadRelaxed(e->info_offset), isize}}) {
      if (size == 0) continue;
      const bool esmall = size <= alloc::kMaxSmallSize;
      if (small && esmall && off == block.lo) return true;
      if (!small && !esmall && BlockRange(off, size).Overlaps(block)) return true;
    }
    return false;
  });
}

bool Recovery::SpanCovers(const Range& block) const {
  const uint64_t first = block.lo / core::kSpanSize;
  const uint64_t last = (block.hi - 1) / core::kSpanSize;
  for (uint64_t i = first; i <= last && i < r_.header()->num_spans; ++i) {
    if (core::SpanKindOf(LoadAcquire(r_.span(i)->state)) != core::kSpanFree) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------- decisions

Verdict Recovery::FreeBlockIfUnowned(uint64_t off, uint64_t size, uint32_t exclude) {
  if (off >= r_.header()->heap_size || size > r_.header()->heap_size) {
    return Verdict::kNotOurs;  // never trust the region
  }
  return size <= alloc::kMaxSmallSize ? FreeSmallIfUnowned(off, size, exclude)
                                      : FreePagesIfUnowned(off, alloc::AllocSize(size),
                                                           exclude);
}

Verdict Recovery::FreeSmallIfUnowned(uint64_t off, uint64_t size, uint32_t exclude) {
  const uint32_t cls = alloc::SizeClassOf(size);
  const uint64_t span = off / core::kSpanSize;
  const uint64_t csize = alloc::ClassSize(cls);
  if (span >= r_.header()->num_spans || (off % core::kSpanSize) % csize != 0) {
    return Verdict::kNotOurs;
  }
  const uint64_t block = (off % core::kSpanSize) / csize;
  if (block >= alloc::BlocksPerSpan(cls)) return Verdict::kNotOurs;
  const Range rng = BlockRange(off, size);
  for (int attempt = 0; attempt < 8; ++attempt) {
    // (0) the span's state, then the bit.
    const uint64_t st0 = LoadSeqCst(r_.span(span)->state);
    if (core::SpanKindOf(st0) != core::kSpanActive || core::SpanClassOf(st0) != cls) {
      return Verdict::kNotOurs;  // not a taken block of this class
    }
    const uint64_t bits = LoadSeqCst(r_.span(span)->bits[block / 64]);
    if ((bits & (uint64_t{1} << (block % 64))) == 0) return Verdict::kNotOurs;
    // (1) live records, (2) entries, (3) live records again.
    const uint32_t span1 = static_cast<uint32_t>(span + 1);
    if (LiveRecordsMention(&rng, span1, 0, 0)) return Verdict::kDefer;
    if (EntryReferences(rng, true, exclude)) return Verdict::kNotOurs;
    if (LiveRecordsMention(&rng, span1, 0, 0)) return Verdict::kDefer;
    // (4) nothing taken or freed in the span since (0): it is ours.
    if (heap_.RecoverBlock(off, cls, st0)) {
      GLINT_CRASH_POINT();
      return Verdict::kFreed;
    }
  }
  return Verdict::kDefer;
}

Verdict Recovery::FreePagesIfUnowned(uint64_t off, uint64_t bytes, uint32_t exclude) {
  const auto* h = r_.header();
  // (off + bytes could wrap for a damaged record's offset near 2^64.)
  if (off % kPage != 0 || bytes == 0 || off >= h->heap_size ||
      bytes > h->heap_size - off) {
    return Verdict::kNotOurs;
  }
  const uint64_t p0 = off / kPage, np = bytes / kPage;
  const uint64_t w0 = p0 / 64, w1 = (p0 + np - 1) / 64;
  auto mask_of = [&](uint64_t w) {
    const uint64_t lo = std::max(p0, w * 64) - w * 64;
    const uint64_t hi = std::min(p0 + np, w * 64 + 64) - w * 64;
    return (hi - lo == 64 ? ~uint64_t{0} : ((uint64_t{1} << (hi - lo)) - 1)) << lo;
  };
  for (int attempt = 0; attempt < 8; ++attempt) {
    // (0) epochs, then bits.
    std::vector<uint64_t> epoch, taken;
    for (uint64_t w = w0; w <= w1; ++w) {
      epoch.push_back(LoadSeqCst(r_.page_epochs()[w]));
      taken.push_back(LoadSeqCst(r_.page_bitmap()[w]) & mask_of(w));
    }
    bool any = false;
    for (uint64_t t : taken) any |= t != 0;
    if (!any) return Verdict::kNotOurs;
    const Range rng{off, off + bytes};
    if (LiveRecordsMention(&rng, 0, 0, 0)) return Verdict::kDefer;
    // (2) per page: a span not FREE, or an entry's page run, owns it.
    for (uint64_t w = w0; w <= w1; ++w) {
      uint64_t& t = taken[w - w0];
      uint64_t m = t;
      while (m != 0) {
        const uint32_t bit = std::countr_zero(m);
        m &= m - 1;
        const Range page{(w * 64 + bit) * kPage, (w * 64 + bit + 1) * kPage};
        if (SpanCovers(page) || EntryReferences(page, false, exclude)) {
          t &= ~(uint64_t{1} << bit);
        }
      }
    }
    if (LiveRecordsMention(&rng, 0, 0, 0)) return Verdict::kDefer;
    // (4) still taken and no free in between (epoch read after the bits).
    bool stable = true;
    for (uint64_t w = w0; w <= w1 && stable; ++w) {
      const uint64_t now = LoadSeqCst(r_.page_bitmap()[w]);
      stable = (now & taken[w - w0]) == taken[w - w0] &&
               LoadSeqCst(r_.page_epochs()[w]) == epoch[w - w0];
    }
    if (!stable) continue;
    bool freed = false;
    for (uint64_t w = w0; w <= w1; ++w) {
      if (taken[w - w0] != 0) {
        heap_.RecoverPages(w, taken[w - w0]);
        GLINT_CRASH_POINT();
        freed = true;
      }
    }
    return freed ? Verdict::kFreed : Verdict::kNotOurs;
  }
  return Verdict::kDefer;
}

Verdict Recovery::ReleaseObjSlotIfUnowned(uint32_t slot) {
  if (slot >= r_.num_obj_slots()) return Verdict::kNotOurs;
  core::BucketHeader* bh = r_.obj_bucket(r_.obj_bucket_of(slot));
  const uint64_t bit = uint64_t{1} << r_.obj_index_of(slot);
  const uint64_t s0 = LoadSeqCst(r_.entry(slot)->state);
  const core::ObjState st = core::StateOf(s0);
  if (st != core::kObjEmpty && st != core::kObjAborted) return Verdict::kNotOurs;
  if ((LoadSeqCst(bh->used) & bit) == 0) return Verdict::kNotOurs;
  // A live claimer in the middle of its claim, or a live freer between
  // storing EMPTY/ABORTED and giving the slot back: theirs.
  if (LiveRecordsMention(nullptr, 0, slot + 1, 0) || LiveEntryWork(slot)) {
    return Verdict::kDefer;
  }
  // A claimer writes CLAIMED(gen + 1) right after its claim: an unchanged
  // state with the bit still set means nobody claimed it since (0).
  if (LoadSeqCst(r_.entry(slot)->state) != s0 || (LoadSeqCst(bh->used) & bit) == 0) {
    return Verdict::kDefer;
  }
  s_->table().ReleaseObjectSlot(slot);
  GLINT_CRASH_POINT();
  return Verdict::kFreed;
}

Verdict Recovery::ReleaseNameSlotIfUnowned(uint32_t ns, uint32_t exclude) {
  if (ns >= r_.header()->name_num_buckets * core::kSlotsPerBucket) {
    return Verdict::kNotOurs;
  }
  core::BucketHeader* bh = r_.name_bucket(ns / core::kSlotsPerBucket);
  const uint64_t bit = uint64_t{1} << (ns % core::kSlotsPerBucket);
  core::NameEntry* ne = r_.name_entry(ns);
  const uint32_t q0 = LoadSeqCst(ne->seq);
  if (LoadSeqCst(ne->obj_slot) != kNoSlot) return Verdict::kNotOurs;  // bound
  if ((LoadSeqCst(bh->used) & bit) == 0) return Verdict::kNotOurs;
  if (LiveRecordsMention(nullptr, 0, 0, ns + 1)) return Verdict::kDefer;
  // An entry still naming it is releasing it (ReleaseName unbinds, then
  // clears the bit, then forgets it): its owner gives it back.
  if (EntryNames(ns, exclude)) return Verdict::kNotOurs;
  if (LiveRecordsMention(nullptr, 0, 0, ns + 1)) return Verdict::kDefer;
  if (LoadSeqCst(ne->obj_slot) != kNoSlot || LoadSeqCst(ne->seq) != q0 ||
      (LoadSeqCst(bh->used) & bit) == 0) {
    return Verdict::kDefer;
  }
  s_->table().ReleaseNameSlot(ns);
  GLINT_CRASH_POINT();
  return Verdict::kFreed;
}

// The dead client may have reserved a block without taking one (count one
// too high) or freed one without giving the count back: with no live client
// touching the span, the count is its number of taken blocks.
bool Recovery::RecountSpan(uint64_t span) {
  if (span >= r_.header()->num_spans) return true;
  for (int attempt = 0; attempt < 8; ++attempt) {
    const uint64_t st0 = LoadSeqCst(r_.span(span)->state);
    const core::SpanKind kind = core::SpanKindOf(st0);
    if (kind != core::kSpanActive) return true;
    const uint32_t span1 = static_cast<uint32_t>(span + 1);
    if (LiveRecordsMention(nullptr, span1, 0, 0)) return false;
    const uint32_t taken = heap_.TakenBlocks(span);
    // Again after reading the bits: a freer that cleared a bit we counted
    // out had named the span first (touch before the bit), so it shows now.
    if (LiveRecordsMention(nullptr, span1, 0, 0)) return false;
    if (heap_.SetSpanCount(span, st0, taken)) return true;
  }
  return false;
}

// ---------------------------------------------------------------- steps

void Recovery::FreeEntryBlocks(uint32_t slot) {
  const ObjectEntry* e = r_.entry(slot);
  const uint64_t doff = LoadRelaxed(e->data_offset), dsize = LoadRelaxed(e->data_size);
  const uint64_t ioff = LoadRelaxed(e->info_offset), isize = LoadRelaxed(e->info_size);
  if (dsize != 0) Note(FreeBlockIfUnowned(doff, dsize, slot), "entry blocks");
  if (isize != 0) Note(FreeBlockIfUnowned(ioff, isize, slot), "entry blocks");
}

// One record of the dead client: finish or undo its operation.
void Recovery::FinishRecord(OpRecord* rec) {
  const uint32_t op = LoadAcquire(rec->op);
  const uint32_t slot = LoadRelaxed(rec->obj_slot);
  const uint64_t gen = LoadRelaxed(rec->gen);
  const bool slot_ok = slot < r_.num_obj_slots();
  ObjectEntry* e = slot_ok ? r_.entry(slot) : nullptr;
  const uint64_t st = slot_ok ? LoadSeqCst(e->state) : 0;

  if (op == core::kOpResize && slot_ok && st == core::MakeState(gen, core::kObjCreating)) {
    // SetPayload is two stores: make offset and size agree again.
    const uint64_t off = LoadRelaxed(e->data_offset);
    for (const BlockRef* b : {&rec->owned[0], &rec->owned[1]}) {
      const uint64_t off1 = LoadRelaxed(b->off1);
      if (off1 != 0 && off1 - 1 == off) {
        StoreRelaxed(e->data_size, LoadRelaxed(b->size));
        break;
      }
    }
  }
  if ((op == core::kOpAbort || op == core::kOpFreeEntry || op == core::kOpUnclaim) &&
      slot_ok && core::GenOf(st) == gen) {
    const core::ObjState now = core::StateOf(st);
    const bool freeing = now == core::kObjFreeing;
    const bool unclaiming = op == core::kOpUnclaim &&
                            (now == core::kObjClaimed || now == core::kObjKilled);
    if ((freeing || unclaiming) && LiveEntryWork(slot)) {
      // Our record was written before a CAS we may have lost: a live
      // client that won it is finishing the job itself.
      Note(Verdict::kDefer, "entry freed by a live client");
    } else if (freeing || unclaiming) {
      uint64_t name_hash = 0;
      const bool named = s_->NameHashOf(e, &name_hash);
      FreeEntryBlocks(slot);
      // A name slot the client unbound (obj_slot = none) but had not given
      // back yet: ReleaseName would skip it (it no longer points at us).
      const uint32_t ns = LoadRelaxed(e->name_slot);
      if (ns != kNoSlot && ns < r_.header()->name_num_buckets * core::kSlotsPerBucket &&
          LoadAcquire(r_.name_entry(ns)->obj_slot) == kNoSlot) {
        Note(ReleaseNameSlotIfUnowned(ns, slot), "entry name");
      }
      if (!deferred_) {
        // (An abort was noted in the wait buckets before its CAS to FREEING:
        // Store::Abort.)
        const uint64_t id_hash = core::IdHash(core::EntryId(e).w);
        if (op == core::kOpAbort) {
          s_->FinishAbort(slot, gen);
        } else {
          s_->FinishFree(slot, gen);
        }
        s_->Wake(id_hash);
        if (named) s_->Wake(name_hash);
      }
    } else if (now == core::kObjEmpty || now == core::kObjAborted) {
      Note(ReleaseObjSlotIfUnowned(slot), "obj slot");
    }
  }
  // A RETIRING span this client was retiring: finish clearing it (its
  // pages are freed below, through cand_pages, once nothing owns them).
  const uint32_t touch = LoadAcquire(rec->touch);
  if (touch != 0 && touch - 1 < r_.header()->num_spans) {
    const uint64_t sst = LoadAcquire(r_.span(touch - 1)->state);
    if (core::SpanKindOf(sst) == core::kSpanRetiring) {
      if (LiveRecordsMention(nullptr, touch, 0, 0)) {
        Note(Verdict::kDefer, "retiring span");
      } else {
        heap_.FinishRetire(touch - 1);
      }
    }
  }
  // Blocks and runs it was taking or held unattached.
  Ref(rec->cand, kNoSlot);
  Ref(rec->owned[0], kNoSlot);
  Ref(rec->owned[1], kNoSlot);
  {
    const uint64_t off1 = LoadAcquire(rec->cand_pages.off1);
    const uint64_t size = LoadRelaxed(rec->cand_pages.size);
    if (off1 != 0 && size != 0) Note(FreePagesIfUnowned(off1 - 1, size, kNoSlot), "cand pages");
  }
  if (touch != 0 && !RecountSpan(touch - 1)) {
    Note(Verdict::kDefer, "recount");
  }
  // Table and name slots it was claiming.
  const uint32_t co = LoadAcquire(rec->cand_obj);
  if (co != 0) Note(ReleaseObjSlotIfUnowned(co - 1), "cand obj");
  const uint32_t cn = LoadAcquire(rec->cand_name);
  if (cn != 0) Note(ReleaseNameSlotIfUnowned(cn - 1, kNoSlot), "cand name");
  // A getter that died asleep: take its count out of the bucket.
  const uint32_t wb = LoadAcquire(rec->wait_bucket);
  if (wb != 0 && wb - 1 < core::kNumWaitBuckets) {
    StoreRelease(rec->wait_bucket, 0u);  // first: never decrement twice
    r_.wait_bucket(wb - 1)->waiters.fetch_sub(1, std::memory_order_seq_cst);
  }
  if (deferred_) return;
  core::ClearRecord(*rec);  // done with it
}

// Every taken entry: the dead client's holder bits go (and a deleted object
// it was the last holder of is freed); what it was building is aborted (its
// waiters wake with kAborted); what it claimed but never committed is given
// back. Each change on its behalf is logged in its record 0 first, so a
// monitor killed here leaves the next one a record to finish.
void Recovery::ScanEntries(OpRecord* rec0) {
  const uint64_t bit = uint64_t{1} << (dead_ % 64);
  const uint32_t serial = static_cast<uint32_t>(LoadRelaxed(r_.client(dead_)->serial));
  AnyTakenEntry([&](uint32_t slot, ObjectEntry* e) {
    if (LoadSeqCst(e->holders[dead_ / 64]) & bit) s_->ClearHolder(slot, dead_);
    s_->MaybeFree(slot, rec0);
    const uint64_t st = LoadAcquire(e->state);
    if (LoadRelaxed(e->creator_slot) != dead_ || LoadRelaxed(e->creator_serial) != serial) {
      return false;
    }
    const core::ObjState now = core::StateOf(st);
    if (now == core::kObjCreating) {
      s_->Abort(slot, core::GenOf(st), core::IdHash(core::EntryId(e).w), rec0);
    } else if (now == core::kObjClaimed || now == core::kObjKilled) {
      StoreRelaxed(rec0->obj_slot, slot);
      StoreRelaxed(rec0->gen, core::GenOf(st));
      StoreRelease(rec0->op, static_cast<uint32_t>(core::kOpUnclaim));
      FinishRecord(rec0);
    }
    return false;
  });
}

// Wake-ups the dead client owed (it died between sealing or aborting and
// waking): every bucket with a sleeper gets one. Waiters re-check, so a
// spurious wake-up costs them a look, nothing more.
void Recovery::WakeEveryWaiter() {
  for (uint32_t i = 0; i < core::kNumWaitBuckets; ++i) {
    core::WaitBucket* wb = r_.wait_bucket(i);
    if (LoadSeqCst(wb->waiters) == 0) continue;
    RecountWaiters(i);
    wb->seq.fetch_add(1, std::memory_order_seq_cst);
    os::FutexWakeAll(&wb->seq);
  }
}

// A getter killed between counting itself in `waiters` and marking its
// record (or between unmarking and uncounting) leaves the count one too
// high: harmless (a seal then makes one FUTEX_WAKE too many) but lasting.
// The count must equal the live records marked for the bucket. It is set so
// only when no live record is between the two steps (op kOpWait for this
// bucket, unmarked: ambiguous), by a CAS from the value read first, so a
// getter arriving or leaving meanwhile makes it give up.
void Recovery::RecountWaiters(uint32_t b) {
  core::WaitBucket* wb = r_.wait_bucket(b);
  uint32_t v0 = LoadSeqCst(wb->waiters);
  // The live records marked for the bucket; false if one is between its
  // two steps.
  auto count = [&](uint32_t* n) {
    *n = 0;
    return !AnyLiveRecord([&](const OpRecord& rec) {
      const uint32_t marked = LoadAcquire(rec.wait_bucket);
      if (marked == b + 1) ++*n;
      return marked == 0 && LoadAcquire(rec.op) == core::kOpWait &&
             LoadRelaxed(rec.gen) == uint64_t{b} + 1;
    });
  };
  uint32_t n1, n2;
  if (!count(&n1) || !count(&n2) || n1 != n2 || n1 == v0) return;
  (void)wb->waiters.compare_exchange_strong(v0, n1, std::memory_order_seq_cst);
}

bool Recovery::Run() {
  ClientSlot* cs = r_.client(dead_);
  if (getenv("GLINT_DEBUG_RECOVERY")) fprintf(stderr, "recovering %u\n", dead_);
  if (LoadAcquire(cs->state) == core::kClientFree) return true;
  StoreRelease(cs->state, static_cast<uint32_t>(core::kClientRecovering));
  for (uint32_t i = 0; i < core::kRecordsPerClient; ++i) {
    OpRecord* rec = r_.record(dead_, i);
    if (!core::RecordIdle(*rec)) {
      const bool before = deferred_;
      deferred_ = false;
      FinishRecord(rec);
      deferred_ = deferred_ || before;
    }
  }
  if (!deferred_) ScanEntries(r_.record(dead_, 0));
  WakeEveryWaiter();
  heap_.RebuildHints();
  if (deferred_) return false;
  if (getenv("GLINT_DEBUG_RECOVERY")) fprintf(stderr, "recovered %u\n", dead_);
  StoreRelaxed(cs->pid, 0u);
  StoreRelease(cs->state, static_cast<uint32_t>(core::kClientFree));
  return true;
}

}  // namespace

bool RecoverClient(core::Store* store, uint32_t slot) {
  if (slot >= store->region().header()->max_clients) return true;
  // A deferral waits for a live client to finish a step of a few
  // instructions (or for the monitor to notice another death): retry for
  // about a millisecond, then hand the decision back to the caller. The
  // monitor retries from its ring 2 ms later, serving everyone else in
  // between; a longer wait here (it was up to 80 ms) would stall its loop
  // for as long, once per deferred client, while a client stays frozen.
  for (int attempt = 0; attempt < 10; ++attempt) {
    if (Recovery(store, slot).Run()) return true;
    usleep(100);
  }
  return false;
}

}  // namespace glint::internal
