// Copyright (c) glint authors.

#include "core/check.h"

#include <algorithm>
#include <bit>
#include <atomic>
#include <map>
#include <unordered_map>

#include "alloc/heap.h"
#include "core/atomics.h"
#include "core/object_table.h"

namespace glint::core {

std::string CheckReport::ToString() const {
  if (problems.empty()) {
    return "sound: " + std::to_string(objects) + " objects own " +
           std::to_string(bytes_owned) + " heap bytes";
  }
  std::string s = std::to_string(problems.size()) + " problem(s):";
  for (const auto& p : problems) s += "\n  " + p;
  return s;
}

namespace {

const char* StateName(ObjState s) {
  switch (s) {
    case kObjEmpty: return "EMPTY";
    case kObjClaimed: return "CLAIMED";
    case kObjKilled: return "KILLED";
    case kObjCreating: return "CREATING";
    case kObjSealed: return "SEALED";
    case kObjDeleting: return "DELETING";
    case kObjFreeing: return "FREEING";
    case kObjAborted: return "ABORTED";
  }
  return "?";
}

class Checker {
 public:
  Checker(const Region& r, bool quiescent, CheckReport* out)
      : r_(r), h_(r.header()), q_(quiescent), out_(out) {}

  void Run() {
    const Status v = Region::Validate(r_.base(), r_.size());
    if (!v.ok()) {
      Problem("region: " + v.ToString());
      return;
    }
    nslots_ = r_.num_obj_slots();
    nnames_ = h_->name_num_buckets * kSlotsPerBucket;
    span_expect_.assign(h_->num_spans * kSpanBitmapWords, 0);
    page_expect_.assign(h_->page_bitmap_words, 0);
    Clients();
    Entries();
    Names();
    Heap();
    Waits();
  }

 private:
  void Problem(std::string p) {
    if (out_->problems.size() < 100) out_->problems.push_back(std::move(p));
  }
  static std::string Slot(uint32_t s) { return "object slot " + std::to_string(s); }

  void Clients() {
    active_.assign(h_->max_clients, false);
    present_.assign(h_->max_clients, false);
    for (uint32_t c = 0; c < h_->max_clients; ++c) {
      const uint32_t st = LoadAcquire(r_.client(c)->state);
      if (st > kClientRecovering) {
        Problem("client slot " + std::to_string(c) + " has state " + std::to_string(st));
      }
      active_[c] = st == kClientActive;
      // A live store's recovering client still holds what it held until
      // the monitor has released it.
      present_[c] = st == kClientActive || st == kClientRecovering;
      if (q_ && st == kClientRecovering) {
        Problem("client slot " + std::to_string(c) + " is still being recovered");
      }
      for (uint32_t i = 0; i < kRecordsPerClient; ++i) {
        const OpRecord* rec = r_.record(c, i);
        const std::string who =
            "client slot " + std::to_string(c) + " log record " + std::to_string(i);
        // A free slot's records were cleared before it was freed, and a new
        // client gets the slot only once it is free: in use is damage.
        if ((q_ || st == kClientFree) && !RecordIdle(*rec)) {
          Problem(who + " is in use (op " + std::to_string(LoadAcquire(rec->op)) + ")" +
                  (st == kClientFree ? " in a free client slot" : ""));
        }
        Record(*rec, who);
      }
    }
  }

  // A log record's fields each name something that exists: recovery acts
  // on them. Every field is written whole by one store, so a live record
  // is checked field by field; a block reference's size is paired with its
  // offset only if the offset reads the same after it.
  void Record(const OpRecord& rec, const std::string& who) {
    const uint32_t op = LoadAcquire(rec.op);
    if (op > kOpFree) Problem(who + " has an unknown operation " + std::to_string(op));
    const uint32_t slot = LoadAcquire(rec.obj_slot);
    if (slot != kNoSlot && slot >= r_.num_obj_slots()) {
      Problem(who + " names object slot " + std::to_string(slot) + " past the table");
    }
    if (LoadAcquire(rec.cand_obj) > r_.num_obj_slots()) {
      Problem(who + " is claiming an object slot past the table");
    }
    if (LoadAcquire(rec.cand_name) > h_->name_num_buckets * kSlotsPerBucket) {
      Problem(who + " is claiming a name slot past the name table");
    }
    if (LoadAcquire(rec.touch) > h_->num_spans) {
      Problem(who + " touches a span past the span table");
    }
    if (LoadAcquire(rec.wait_bucket) > kNumWaitBuckets) {
      Problem(who + " waits in a bucket that does not exist");
    }
    const BlockRef* refs[] = {&rec.cand, &rec.cand_pages, &rec.owned[0], &rec.owned[1]};
    for (const BlockRef* b : refs) {
      const uint64_t off1 = LoadAcquire(b->off1);
      const uint64_t size = LoadAcquire(b->size);
      if (off1 == 0 || LoadAcquire(b->off1) != off1) continue;
      const uint64_t off = off1 - 1;
      if (off >= h_->heap_size || size > h_->heap_size ||
          off + alloc::AllocSize(size) > h_->heap_size) {
        Problem(who + " names block [" + std::to_string(off) + ", +" +
                std::to_string(size) + ") outside the heap");
      }
    }
  }

  // An entry's fields, read as a seqlock reader: state, fields, state again.
  struct Snap {
    uint64_t state = 0;
    uint64_t data_offset = 0, data_size = 0, info_offset = 0;
    uint32_t info_size = 0, name_slot = kNoSlot, creator = 0;
    uint16_t name_len = 0;
    uint64_t holders[kHolderWords] = {};
    uint64_t id[2] = {};
  };
  Snap Read(uint32_t slot) const {
    const ObjectEntry* e = r_.entry(slot);
    Snap n;
    for (int attempt = 0; attempt < 8; ++attempt) {
      n.state = LoadAcquire(e->state);
      n.data_offset = LoadRelaxed(e->data_offset);
      n.data_size = LoadRelaxed(e->data_size);
      n.info_offset = LoadRelaxed(e->info_offset);
      n.info_size = LoadRelaxed(e->info_size);
      n.name_slot = LoadRelaxed(e->name_slot);
      n.name_len = LoadRelaxed(e->name_len);
      n.creator = LoadRelaxed(e->creator_slot);
      n.id[0] = LoadRelaxed(e->id[0]);
      n.id[1] = LoadRelaxed(e->id[1]);
      for (uint32_t w = 0; w < kHolderWords; ++w) n.holders[w] = LoadRelaxed(e->holders[w]);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (q_ || LoadRelaxed(e->state) == n.state) break;
    }
    return n;
  }
  // On a live store, an entry's problem stands only if the entry is still
  // what was checked (same state and generation, same payload: a resize
  // moves the payload of a CREATING entry without changing its state).
  bool Unchanged(uint32_t slot, const Snap& n) const {
    if (q_) return true;
    const ObjectEntry* e = r_.entry(slot);
    std::atomic_thread_fence(std::memory_order_acquire);
    return LoadAcquire(e->state) == n.state &&
           LoadRelaxed(e->data_offset) == n.data_offset &&
           LoadRelaxed(e->data_size) == n.data_size;
  }
  void EntryProblem(uint32_t slot, const Snap& n, std::string p) {
    if (Unchanged(slot, n)) Problem(std::move(p));
  }

  // A committed entry must be found by its id, and by its name: its slot
  // lies in one of the two buckets its id hashes to and carries the id's
  // fingerprint; likewise its name slot for the name bytes in its info
  // block. Damage to the id or the name bytes breaks this.
  void Reachable(uint32_t slot, const Snap& n) {
    // (b, i): the slot's bucket and index in it.
    auto placed = [](BucketHeader* (Region::*bucket)(uint64_t) const, const Region& r,
                     const Key& k, uint64_t b, uint32_t i) {
      if (b != k.bucket[0] && b != k.bucket[1]) return false;
      const uint64_t word = LoadAcquire((r.*bucket)(b)->fp[i / 8]);
      return static_cast<uint8_t>(word >> (8 * (i % 8))) == k.fp;
    };
    const Key id_key = MakeKey(IdHash(n.id), h_->obj_num_buckets);
    const uint64_t bucket = r_.obj_bucket_of(slot);
    if (!placed(&Region::obj_bucket, r_, id_key, bucket, r_.obj_index_of(slot))) {
      EntryProblem(slot, n, Slot(slot) + " cannot be found by its id (its id or "
                                         "fingerprint is damaged)");
    } else if (bucket != id_key.bucket[0]) {
      // In its second bucket: look-ups go there only while the first
      // bucket's spill count is above zero.
      const uint64_t b0 = id_key.bucket[0];
      if (SpillOf(LoadAcquire(r_.obj_bucket(b0)->used)) == 0) {
        EntryProblem(slot, n, Slot(slot) + " cannot be found by its id (it lies in its "
                                           "second bucket and bucket " +
                                           std::to_string(b0) + " counts no spill)");
      }
      if (q_) ++spills_[b0];
    }
    if (n.name_slot == kNoSlot || n.name_slot >= nnames_) return;
    if (n.name_len > n.info_size || n.info_offset >= h_->heap_size ||
        n.name_len > h_->heap_size - n.info_offset) {
      EntryProblem(slot, n, Slot(slot) + "'s name does not fit its info block");
      return;
    }
    std::string name(n.name_len, '\0');
    const auto* src = reinterpret_cast<const std::atomic<uint8_t>*>(r_.heap() + n.info_offset);
    for (uint16_t i = 0; i < n.name_len; ++i) name[i] = static_cast<char>(LoadRelaxed(src[i]));
    const Key name_key = MakeKey(NameHash(name), h_->name_num_buckets);
    if (!placed(&Region::name_bucket, r_, name_key, n.name_slot / kSlotsPerBucket,
                n.name_slot % kSlotsPerBucket)) {
      EntryProblem(slot, n, Slot(slot) + " cannot be found by its name (its name "
                                         "bytes or fingerprint are damaged)");
    }
  }

  // Records that entry `slot` (read as `n`) owns the block (off, size), and
  // reports it if the block is not a valid allocation.
  void OwnBlock(uint32_t slot, const Snap& n, uint64_t off, uint64_t size,
                const char* what) {
    if (size == 0) return;
    const std::string who = Slot(slot) + " " + what;
    if (size > h_->heap_size || off >= h_->heap_size ||
        off + alloc::AllocSize(size) > h_->heap_size) {
      EntryProblem(slot, n, who + " [" + std::to_string(off) + ", +" + std::to_string(size) +
                                ") lies outside the heap");
      return;
    }
    out_->bytes_owned += alloc::AllocSize(size);
    if (size <= alloc::kMaxSmallSize) {
      const uint32_t cls = alloc::SizeClassOf(size);
      const uint64_t span = off / kSpanSize;
      const uint64_t csize = alloc::ClassSize(cls);
      const uint64_t st = LoadAcquire(r_.span(span)->state);
      if (SpanKindOf(st) != kSpanActive || SpanClassOf(st) != cls ||
          (off % kSpanSize) % csize != 0 ||
          (off % kSpanSize) / csize >= alloc::BlocksPerSpan(cls)) {
        EntryProblem(slot, n, who + " at " + std::to_string(off) +
                                  " is not a block of class " + std::to_string(cls) +
                                  " (span " + std::to_string(span) + " state " +
                                  std::to_string(st) + ")");
        return;
      }
      const uint64_t b = (off % kSpanSize) / csize;
      uint64_t& w = span_expect_[span * kSpanBitmapWords + b / 64];
      const uint64_t bit = uint64_t{1} << (b % 64);
      if (w & bit) Share(slot, n, off, who + " shares block " + std::to_string(off) +
                                           " with another");
      w |= bit;
      if (!q_) block_owner_[off] = slot;
      if ((LoadAcquire(r_.span(span)->bits[b / 64]) & bit) == 0) {
        EntryProblem(slot, n, who + " at " + std::to_string(off) + " is a free block");
      }
      return;
    }
    const uint64_t p0 = off / kPageSize;
    const uint64_t np = alloc::AllocSize(size) / kPageSize;
    if (off % kPageSize != 0) {
      EntryProblem(slot, n, who + " at " + std::to_string(off) + " is not page aligned");
      return;
    }
    for (uint64_t p = p0; p < p0 + np; ++p) {
      const uint64_t bit = uint64_t{1} << (p % 64);
      if (page_expect_[p / 64] & bit) {
        Share(slot, n, p * kPageSize,
              who + " shares page " + std::to_string(p) + " with another");
        return;
      }
      page_expect_[p / 64] |= bit;
      if (!q_) block_owner_[p * kPageSize] = slot;
      if ((LoadAcquire(r_.page_bitmap()[p / 64]) & bit) == 0) {
        EntryProblem(slot, n, who + " owns page " + std::to_string(p) + " which is free");
        return;
      }
      if (SpanKindOf(LoadAcquire(r_.span(p / kPagesPerSpan)->state)) != kSpanFree) {
        EntryProblem(slot, n, who + " owns page " + std::to_string(p) + " of an active span");
        return;
      }
    }
  }

  // Two entries claim the byte at heap offset `off`. On a live store the
  // first may have been freed (and its block taken again) since it was
  // read: decided at the end, when both entries are read again.
  void Share(uint32_t slot, const Snap& n, uint64_t off, std::string p) {
    if (q_) {
      Problem(std::move(p));
      return;
    }
    auto it = block_owner_.find(off);
    shares_.push_back({slot, it == block_owner_.end() ? slot : it->second, std::move(p)});
    (void)n;
  }
  void DecideShares() {
    for (auto& [a, b, p] : shares_) {
      auto sa = snaps_.find(a), sb = snaps_.find(b);
      if (sa != snaps_.end() && sb != snaps_.end() && Unchanged(a, sa->second) &&
          Unchanged(b, sb->second)) {
        Problem(std::move(p));
      }
    }
  }

  void Entries() {
    for (uint64_t b = 0; b < h_->obj_num_buckets; ++b) {
      const uint64_t used = UsedSlots(LoadAcquire(r_.obj_bucket(b)->used));
      for (uint32_t i = 0; i < kSlotsPerBucket; ++i) {
        const uint32_t slot = r_.obj_slot(b, i);
        const Snap n = Read(slot);
        const ObjState st = StateOf(n.state);
        const bool taken = (used >> i) & 1;
        if (st > kObjAborted) {
          EntryProblem(slot, n, Slot(slot) + " has an invalid state " +
                                    std::to_string(n.state & 0xff));
          continue;
        }
        if (!taken) {
          if (st != kObjEmpty && st != kObjAborted &&
              (q_ || (LoadAcquire(r_.obj_bucket(b)->used) >> i & 1) == 0)) {
            EntryProblem(slot, n, Slot(slot) + " is " + StateName(st) + " but not taken");
          }
          continue;
        }
        if (st == kObjEmpty || st == kObjAborted) {
          if (q_) Problem(Slot(slot) + " is taken but " + StateName(st) + " (leaked)");
          continue;
        }
        if (q_ && (st == kObjClaimed || st == kObjKilled || st == kObjFreeing)) {
          Problem(Slot(slot) + " is left " + StateName(st));
        }
        if (!q_) snaps_[slot] = n;
        if (q_ && st == kObjCreating &&
            (n.creator >= h_->max_clients || !active_[n.creator])) {
          Problem(Slot(slot) + " is being built by client " + std::to_string(n.creator) +
                  ", which is not registered");
        }
        for (uint32_t w = 0; w < kHolderWords; ++w) {
          uint64_t bits = n.holders[w];
          while (bits != 0) {
            const uint32_t c = w * 64 + std::countr_zero(bits);
            bits &= bits - 1;
            if (c >= h_->max_clients || !(q_ ? active_[c] : present_[c])) {
              EntryProblem(slot, n, Slot(slot) + " is held by client " + std::to_string(c) +
                                        ", which is not registered");
            }
          }
        }
        ++out_->objects;
        // Two committed (being built or sealed) objects with one id: a
        // create race that both sides won.
        if (q_ && (st == kObjCreating || st == kObjSealed)) {
          const auto [it, fresh] = ids_.emplace(std::make_pair(n.id[0], n.id[1]), slot);
          if (!fresh) {
            Problem(Slot(slot) + " and " + Slot(it->second) + " hold the same id");
          }
        }
        // A live FREEING entry is giving its blocks back right now.
        if (q_ || st != kObjFreeing) {
          OwnBlock(slot, n, n.data_offset, n.data_size, "payload");
          OwnBlock(slot, n, n.info_offset, n.info_size, "info");
        }
        // Name links are exact once committed; a live CLAIMED, KILLED or
        // FREEING entry is linking or unlinking its name.
        const bool settled = q_ || st == kObjCreating || st == kObjSealed ||
                             st == kObjDeleting;
        const uint32_t ns = n.name_slot;
        if (ns != kNoSlot) {
          if (ns >= nnames_) {
            EntryProblem(slot, n, Slot(slot) + " names name slot " + std::to_string(ns) +
                                      ", out of range");
          } else {
            if (settled) named_[ns] = slot;
            if (settled && LoadAcquire(r_.name_entry(ns)->obj_slot) != slot) {
              EntryProblem(slot, n, Slot(slot) + " names name slot " + std::to_string(ns) +
                                        ", which points elsewhere");
            }
          }
        } else if (n.name_len != 0 && st != kObjClaimed && st != kObjKilled &&
                   st != kObjFreeing) {
          EntryProblem(slot, n, Slot(slot) + " has a name but no name slot");
        }
        if (st == kObjCreating || st == kObjSealed || st == kObjDeleting) {
          Reachable(slot, n);
        }
      }
    }
    // Exact once quiescent: a spill count may be too high (a client died
    // between raising it and claiming), never too low.
    for (const auto& [b0, n] : spills_) {
      const uint32_t count = SpillOf(LoadAcquire(r_.obj_bucket(b0)->used));
      if (count != kSpillSticky && count < n) {
        Problem("object bucket " + std::to_string(b0) + " counts " + std::to_string(count) +
                " spilled keys, but " + std::to_string(n) + " live in their second bucket");
      }
    }
    DecideShares();
  }

  void Names() {
    for (uint64_t b = 0; b < h_->name_num_buckets; ++b) {
      const uint64_t used = LoadAcquire(r_.name_bucket(b)->used);
      if (used >> kSlotsPerBucket) Problem("name bucket " + std::to_string(b) +
                                           " marks slots past 56 taken");
      uint64_t u = used & ((uint64_t{1} << kSlotsPerBucket) - 1);
      while (u != 0) {
        const uint32_t ns = static_cast<uint32_t>(b * kSlotsPerBucket + std::countr_zero(u));
        u &= u - 1;
        const uint32_t obj = LoadAcquire(r_.name_entry(ns)->obj_slot);
        if (obj != kNoSlot && obj >= nslots_) {
          Problem("name slot " + std::to_string(ns) + " points at object slot " +
                  std::to_string(obj) + ", out of range");
          continue;
        }
        if (obj == kNoSlot) {
          if (q_) Problem("name slot " + std::to_string(ns) + " is taken but unbound");
          continue;
        }
        auto it = named_.find(ns);
        if (it == named_.end() || it->second != obj) {
          if (q_) Problem("name slot " + std::to_string(ns) + " points at " + Slot(obj) +
                          ", which does not name it");
        }
      }
    }
    for (const auto& [ns, slot] : named_) {
      const uint64_t used = LoadAcquire(r_.name_bucket(ns / kSlotsPerBucket)->used);
      if (((used >> (ns % kSlotsPerBucket)) & 1) == 0) {
        auto it = snaps_.find(slot);
        if (q_ || (it != snaps_.end() && Unchanged(slot, it->second))) {
          Problem(Slot(slot) + "'s name slot " + std::to_string(ns) + " is not taken");
        }
      }
    }
  }

  void Heap() {
    // Spans: quiescent, exactly the blocks entries own are taken and the
    // count agrees; always, a span's pages are taken.
    for (uint64_t i = 0; i < h_->num_spans; ++i) {
      const uint64_t st = LoadAcquire(r_.span(i)->state);
      const SpanKind kind = SpanKindOf(st);
      const uint64_t group = (LoadAcquire(r_.page_bitmap()[i / 4]) >> (16 * (i % 4))) & 0xffff;
      if (kind > kSpanRetiring) {
        Problem("span " + std::to_string(i) + " has an invalid kind");
        continue;
      }
      if (kind == kSpanFree) {
        for (uint32_t k = 0; k < kSpanBitmapWords; ++k) {
          if (span_expect_[i * kSpanBitmapWords + k] != 0) {
            Problem("span " + std::to_string(i) + " is free but entries own blocks in it");
            break;
          }
        }
        continue;
      }
      if (group != 0xffff) Problem("span " + std::to_string(i) + " is in use but its pages are free");
      if (kind == kSpanRetiring) {
        if (q_) Problem("span " + std::to_string(i) + " is left RETIRING");
        continue;
      }
      const uint32_t cls = SpanClassOf(st);
      if (cls >= kNumSizeClasses) {
        Problem("span " + std::to_string(i) + " has an invalid class");
        continue;
      }
      const uint32_t cap = alloc::BlocksPerSpan(cls);
      uint32_t taken = 0;
      for (uint32_t k = 0; k < kSpanBitmapWords; ++k) {
        uint64_t v = LoadAcquire(r_.span(i)->bits[k]);
        if (uint64_t{k} * 64 >= cap) continue;
        if (uint64_t{k} * 64 + 64 > cap) v &= (uint64_t{1} << (cap - k * 64)) - 1;
        taken += static_cast<uint32_t>(std::popcount(v));
        const uint64_t expect = span_expect_[i * kSpanBitmapWords + k];
        if (q_ && v != expect) {
          const uint64_t leaked = v & ~expect;
          if (leaked != 0) {
            const uint64_t blk = k * 64 + std::countr_zero(leaked);
            Problem("span " + std::to_string(i) + " block at heap offset " +
                    std::to_string(i * kSpanSize + blk * alloc::ClassSize(cls)) +
                    " is taken but no object owns it (" +
                    std::to_string(std::popcount(leaked)) + " in this word)");
          }
        }
      }
      if (q_ && SpanCountOf(st) != taken) {
        Problem("span " + std::to_string(i) + " counts " + std::to_string(SpanCountOf(st)) +
                " reserved blocks but " + std::to_string(taken) + " are taken");
      }
      if (SpanCountOf(st) > cap) {
        Problem("span " + std::to_string(i) + " counts more blocks than it has");
      }
    }
    // Pages outside spans: quiescent, exactly those entries own.
    if (!q_) return;
    for (uint64_t w = 0; w < h_->page_bitmap_words; ++w) {
      uint64_t v = LoadAcquire(r_.page_bitmap()[w]);
      if (w == h_->page_bitmap_words - 1 && h_->num_pages % 64 != 0) {
        v &= (uint64_t{1} << (h_->num_pages % 64)) - 1;  // padding bits
      }
      for (uint32_t g = 0; g < 4; ++g) {
        const uint64_t span = w * 4 + g;
        if (span < h_->num_spans &&
            SpanKindOf(LoadAcquire(r_.span(span)->state)) != kSpanFree) {
          v &= ~(uint64_t{0xffff} << (16 * g));
        }
      }
      const uint64_t leaked = v & ~page_expect_[w];
      if (leaked != 0) {
        Problem("page " + std::to_string(w * 64 + std::countr_zero(leaked)) +
                " is taken but no object or span owns it (" +
                std::to_string(std::popcount(leaked)) + " in this word)");
      }
    }
  }

  void Waits() {
    if (!q_) return;
    for (uint32_t i = 0; i < kNumWaitBuckets; ++i) {
      const uint32_t n = LoadAcquire(r_.wait_bucket(i)->waiters);
      if (n != 0) {
        Problem("wait bucket " + std::to_string(i) + " counts " + std::to_string(n) +
                " sleepers but no client waits");
      }
    }
  }

  const Region& r_;
  const RegionHeader* h_;
  bool q_;
  CheckReport* out_;
  uint64_t nslots_ = 0, nnames_ = 0;
  std::vector<bool> active_, present_;
  std::map<uint64_t, uint32_t> spills_;  // first bucket -> spilled keys
  // Live stores only: the entries as read, and who claimed each block.
  std::map<uint32_t, Snap> snaps_;
  std::unordered_map<uint64_t, uint32_t> block_owner_;
  struct SharedBlock {
    uint32_t a, b;
    std::string problem;
  };
  std::vector<SharedBlock> shares_;
  std::vector<uint64_t> span_expect_, page_expect_;
  std::map<uint32_t, uint32_t> named_;  // name slot -> object slot
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> ids_;  // committed id -> slot
};

}  // namespace

CheckReport CheckRegion(const Region& r, bool quiescent) {
  CheckReport out;
  Checker(r, quiescent, &out).Run();
  return out;
}

}  // namespace glint::core
