// Copyright (c) glint authors.

#include "alloc/heap.h"

#include <algorithm>
#include <bit>
#include <vector>

#include "core/atomics.h"
#include "core/crash_point.h"

namespace glint::alloc {

using core::CasAcqRel;
using core::kPagesPerSpan;
using core::kPageSize;
using core::kSpanSize;
using core::LoadAcquire;
using core::LoadRelaxed;
using core::MakeSpanState;
using core::SpanClassOf;
using core::SpanCountOf;
using core::SpanKindOf;
using core::SpanMeta;
using core::OpRecord;
using core::StoreRelease;
using core::kSpanCountOne;
using core::kSpanFreeOne;

namespace {

constexpr uint64_t kAllOnes = ~uint64_t{0};

// Bits [0, n) set. n may be 64.
constexpr uint64_t LowMask(uint32_t n) {
  return n >= 64 ? kAllOnes : ((uint64_t{1} << n) - 1);
}

// Bit i of the result is set iff bits i..i+k-1 of x are all set (1 <= k <= 64).
uint64_t RunStarts(uint64_t x, uint32_t k) {
  uint32_t have = 1;
  while (have < k && x != 0) {
    uint32_t step = std::min(have, k - have);
    x &= x >> step;
    have += step;
  }
  return x;
}

}  // namespace

// The reciprocal gives floor(offset / size) for every offset below 64 KiB
// (its error, offset * (recip - 2^32 / size), stays below 2^16, less than
// the gap 2^32 / size to the next multiple); checked here for each block.
static_assert([] {
  for (uint32_t c = 0; c < core::kNumSizeClasses; ++c) {
    const uint64_t s = internal::kClassTables.size[c];
    for (uint64_t b = 0; b * s < kSpanSize; ++b) {
      if (((b * s * internal::kClassTables.recip[c]) >> 32) != b) return false;
    }
  }
  return true;
}());

uint64_t AllocSize(uint64_t size) {
  if (size == 0) return 0;
  if (size <= kMaxSmallSize) return ClassSize(SizeClassOf(size));
  return (size + kPageSize - 1) / kPageSize * kPageSize;
}

// The fast path (a small block from the span this client used last) is a
// single call from here; everything else is out of line, so this frame
// stays small.
bool Heap::Allocate(uint64_t size, AllocHints* hints, uint64_t* offset,
                    OpRecord* rec) {
  if (size <= kMaxSmallSize) {
    const uint32_t cls = SizeClassOf(size);
    const uint32_t cur = LoadRelaxed(hints->cur_span[cls]);
    if (cur != UINT32_MAX && AllocInSpan(cur, cls, hints, offset, rec)) return true;
    return AllocSmallSlow(cls, hints, offset, rec);
  }
  return AllocLarge(size, hints, offset, rec);
}

bool Heap::AllocSmallSlow(uint32_t cls, AllocHints* hints, uint64_t* offset,
                          OpRecord* rec) {
  if (AllocSmall(cls, hints, offset, rec)) return true;
  // Empty spans of other classes may hold the pages we need.
  return ReclaimEmptySpans(rec) > 0 && AllocSmall(cls, hints, offset, rec);
}

bool Heap::AllocLarge(uint64_t size, AllocHints* hints, uint64_t* offset,
                      OpRecord* rec) {
  const uint64_t npages = (size + kPageSize - 1) / kPageSize;
  uint64_t first_page;
  if (!AllocPages(npages, hints, &first_page, rec) &&
      !(ReclaimEmptySpans(rec) > 0 && AllocPages(npages, hints, &first_page, rec))) {
    return false;
  }
  *offset = first_page * kPageSize;
  return true;
}

uint64_t Heap::ReclaimEmptySpans(OpRecord* rec) {
  uint64_t n = 0;
  for (uint64_t i = 0; i < r_.header()->num_spans; ++i) {
    const uint64_t s = LoadAcquire(r_.span(i)->state);
    if (SpanKindOf(s) == core::kSpanActive && SpanCountOf(s) == 0 &&
        RetireSpan(i, s, rec)) {
      ++n;
    }
  }
  return n;
}

void Heap::Free(uint64_t offset, uint64_t size, OpRecord* rec) {
  if (size == 0) return;
  if (size <= kMaxSmallSize) {
    FreeSmall(offset, SizeClassOf(size), rec);
  } else {
    FreePages(offset / kPageSize, (size + kPageSize - 1) / kPageSize);
  }
}

// ------------------------------------------------------------ small blocks

// Step 1: reserve a block by CAS on the span's state word, count + 1, only
// while the span is active for `cls` and not full. The reservation
// guarantees a zero bit exists: a freer clears its bit before it gives the
// count back, so popcount(bits) <= count at all times.
// Step 2: take a zero bit by CAS on a bitmap word. The acquire on the state
// CAS orders our bitmap reads after the span's initialisation (the
// initialiser publishes the state with a release CAS).
//
// Logging (rec): `touch` names the span from before the reservation until
// the bit is taken, and `cand` the block before each bit CAS. A client that
// dies in between leaves a count out of step with the bitmap (recovery
// recounts the span once no live client touches it) and perhaps a taken
// block nobody references (recovery frees it).
bool Heap::AllocInSpan(uint64_t span_idx, uint32_t cls, AllocHints* hints,
                       uint64_t* offset, OpRecord* rec) {
  SpanMeta* sp = r_.span(span_idx);
  const uint32_t cap = BlocksPerSpan(cls);
  uint64_t s = LoadAcquire(sp->state);
  if (rec != nullptr) StoreRelease(rec->touch, static_cast<uint32_t>(span_idx + 1));
  for (;;) {
    if (SpanKindOf(s) != core::kSpanActive || SpanClassOf(s) != cls ||
        SpanCountOf(s) >= cap) {
      if (rec != nullptr) StoreRelease(rec->touch, 0u);
      return false;
    }
    if (CasAcqRel(sp->state, s, s + kSpanCountOne)) break;
  }
  GLINT_CRASH_POINT();
  const uint32_t words = (cap + 63) / 64;
  const uint64_t csize = ClassSize(cls);
  // The scan starts at the word where this client last found a block (a
  // process-local hint: spans fill from the bottom, so word 0 is usually
  // full) and wraps around.
  uint32_t first = LoadRelaxed(hints->cur_word[cls]);
  if (first >= words) first = 0;
  for (uint32_t scan = 0;; ++scan) {
    if (scan == 256) {
      // No free bit after many scans: the count overstates the taken blocks
      // (a client died between its reservation and its bit, and recovery has
      // not recounted the span yet; it waits for our touch to go). Give our
      // reservation back and look elsewhere rather than spin on it.
      sp->state.fetch_sub(kSpanCountOne, std::memory_order_acq_rel);
      if (rec != nullptr) StoreRelease(rec->touch, 0u);
      return false;
    }
    for (uint32_t i = 0; i <= words; ++i) {
      // First the word of the last success, then all from word 0.
      const uint32_t w = i == 0 ? first : i - 1;
      uint64_t v = LoadRelaxed(sp->bits[w]);
      while (v != kAllOnes) {
        const uint32_t b = std::countr_zero(~v);
        const uint64_t off = span_idx * kSpanSize + (uint64_t{w} * 64 + b) * csize;
        if (rec != nullptr) core::SetBlockRef(rec->cand, off, csize);
        if (CasAcqRel(sp->bits[w], v, v | (uint64_t{1} << b))) {
          GLINT_CRASH_POINT();
          if (rec != nullptr) StoreRelease(rec->touch, 0u);
          if (i != 0) hints->cur_word[cls].store(w, std::memory_order_relaxed);
          *offset = off;
          return true;
        }
      }
    }
    core::CpuRelax();  // a freer's bit is on its way; rescan
  }
}

// Where a block of class `cls` comes from, in order: the span this client
// used last (Allocate tries it before calling here); a partly used span
// this client started; a new span of its own; any partly used span. Clients
// thus keep to spans of their own (two clients sharing one span fight over
// its state and bitmap lines: 3.5 M cycles/s from two processes instead of
// 9.7 M), yet take others' room before failing.
bool Heap::AllocSmall(uint32_t cls, AllocHints* hints, uint64_t* offset,
                      OpRecord* rec) {
  return AllocFromHinted(cls, hints, /*own_only=*/true, offset, rec) ||
         NewSpan(cls, hints, offset, rec) ||
         AllocFromHinted(cls, hints, /*own_only=*/false, offset, rec);
}

// Spans of this class that may have room, from the class's hint bitmap.
bool Heap::AllocFromHinted(uint32_t cls, AllocHints* hints, bool own_only,
                           uint64_t* offset, OpRecord* rec) {
  const auto* h = r_.header();
  std::atomic<uint64_t>* hint = r_.class_hints(cls);
  for (uint64_t w = 0; w < h->class_hint_words; ++w) {
    uint64_t v = LoadRelaxed(hint[w]);
    while (v != 0) {
      const uint32_t b = std::countr_zero(v);
      v &= v - 1;
      const uint64_t span_idx = w * 64 + b;
      if (own_only && LoadRelaxed(r_.span(span_idx)->owner) != hints->owner) continue;
      if (AllocInSpan(span_idx, cls, hints, offset, rec)) {
        hints->cur_span[cls].store(static_cast<uint32_t>(span_idx),
                                   std::memory_order_relaxed);
        return true;
      }
      // Full or no longer of this class: drop the hint, then re-check, since
      // a free may have set it again between our attempt and the clear.
      hint[w].fetch_and(~(uint64_t{1} << b), std::memory_order_acq_rel);
      const uint64_t s = LoadAcquire(r_.span(span_idx)->state);
      if (SpanKindOf(s) == core::kSpanActive && SpanClassOf(s) == cls &&
          SpanCountOf(s) < BlocksPerSpan(cls)) {
        hint[w].fetch_or(uint64_t{1} << b, std::memory_order_acq_rel);
      }
    }
  }
  return false;
}

// Takes 16 aligned free pages by one CAS on their 16-bit group of the page
// bitmap, initialises the span's bitmap (only we can see it: its state is
// kSpanFree, so AllocInSpan refuses it), takes block 0 for the caller, and
// publishes the state ACTIVE(count 1) with a release CAS.
//
// Logging (rec): cand_pages names the span's pages before the group CAS
// (until the span is published, nothing else references them), cand the
// block 0 and touch the span before the state is published.
bool Heap::NewSpan(uint32_t cls, AllocHints* hints, uint64_t* offset,
                   OpRecord* rec) {
  const auto* h = r_.header();
  auto* pb = r_.page_bitmap();
  const uint64_t nwords = h->page_bitmap_words;
  const uint64_t start = LoadRelaxed(hints->span_cursor) % nwords;
  for (uint64_t i = 0; i < nwords; ++i) {
    const uint64_t w = (start + i) % nwords;
    uint64_t v = LoadRelaxed(pb[w]);
    for (uint32_t g = 0; g < 4; ++g) {
      const uint64_t mask = uint64_t{0xffff} << (16 * g);
      while ((v & mask) == 0) {
        const uint64_t span_idx = w * 4 + g;
        if (rec != nullptr) core::SetBlockRef(rec->cand_pages, span_idx * kSpanSize, kSpanSize);
        if (!CasAcqRel(pb[w], v, v | mask)) continue;
        GLINT_CRASH_POINT();
        SpanMeta* sp = r_.span(span_idx);
        const uint32_t cap = BlocksPerSpan(cls);
        for (uint32_t k = 0; k < core::kSpanBitmapWords; ++k) {
          uint64_t init = 0;
          if (uint64_t{k} * 64 >= cap) {
            init = kAllOnes;
          } else if (uint64_t{k} * 64 + 64 > cap) {
            init = ~LowMask(cap - k * 64);
          }
          if (k == 0) init |= 1;  // block 0 is the caller's
          sp->bits[k].store(init, std::memory_order_relaxed);
        }
        // Only we own a span whose pages we just took; its state is FREE.
        // The free counter carries on from the span's last life.
        sp->owner.store(hints->owner, std::memory_order_relaxed);
        if (rec != nullptr) {
          core::SetBlockRef(rec->cand, span_idx * kSpanSize, ClassSize(cls));
          StoreRelease(rec->touch, static_cast<uint32_t>(span_idx + 1));
        }
        const uint64_t frees = core::SpanFreesOf(LoadRelaxed(sp->state));
        sp->state.store(MakeSpanState(1, cls, core::kSpanActive, frees),
                        std::memory_order_release);
        GLINT_CRASH_POINT();
        if (rec != nullptr) {
          StoreRelease(rec->touch, 0u);
          core::ClearBlockRef(rec->cand_pages);
        }
        HintWord(cls, span_idx).fetch_or(
            uint64_t{1} << (span_idx % 64), std::memory_order_acq_rel);
        hints->cur_span[cls].store(static_cast<uint32_t>(span_idx),
                                   std::memory_order_relaxed);
        hints->cur_word[cls].store(0, std::memory_order_relaxed);
        hints->span_cursor.store(w, std::memory_order_relaxed);
        *offset = span_idx * kSpanSize;
        return true;
      }
    }
  }
  return false;
}

// Step 1: clear the block's bit (release: our reads of the block happen
// before anyone can reuse it). Step 2: give the count back. The thread that
// takes the count from cap to cap-1 re-advertises the span in the class
// hints. An empty span stays with its class (a store that creates and
// deletes one object in a loop would otherwise retire and rebuild a span
// every time); ReclaimEmptySpans gives empty spans back to the page bitmap
// when an allocation finds no room, and LargestFree counts them as free.
// Logging (rec): touch names the span between the two steps (a crash there
// leaves the count one too high: recovery recounts the span). Step 2 also
// counts the free in the state's high half (kSpanFreeOne), in the same RMW.
void Heap::FreeSmall(uint64_t offset, uint32_t cls, OpRecord* rec) {
  const uint64_t span_idx = offset / kSpanSize;
  SpanMeta* sp = r_.span(span_idx);
  const uint64_t block = BlockIndex(offset % kSpanSize, cls);
  if (rec != nullptr) StoreRelease(rec->touch, static_cast<uint32_t>(span_idx + 1));
  sp->bits[block / 64].fetch_and(~(uint64_t{1} << (block % 64)),
                                 std::memory_order_release);
  GLINT_CRASH_POINT();
  const uint64_t prev = sp->state.fetch_add(kSpanFreeOne - kSpanCountOne,
                                            std::memory_order_acq_rel);
  if (rec != nullptr) StoreRelease(rec->touch, 0u);
  const uint32_t prev_count = SpanCountOf(prev);
  if (prev_count == BlocksPerSpan(cls)) {
    HintWord(cls, span_idx).fetch_or(
        uint64_t{1} << (span_idx % 64), std::memory_order_acq_rel);
  }
}

// An empty span goes back to the page bitmap so large runs can use it. The
// CAS ACTIVE(cls, 0) -> RETIRING fails if an allocator reserved a block in
// the meantime (then the span stays). Once RETIRING nobody reserves in it.
// The state must read FREE before the pages are released: the next owner of
// the pages writes the state, and our late store would clobber it.
//
// Logging (rec): touch names the span and cand_pages its pages from before
// the CAS to the end: a client that dies with the span RETIRING leaves it
// to recovery, which finishes the job (ClearSpan, then frees the pages once
// nothing references them).
bool Heap::RetireSpan(uint64_t span_idx, uint64_t state, OpRecord* rec) {
  SpanMeta* sp = r_.span(span_idx);
  const uint32_t cls = SpanClassOf(state);
  if (rec != nullptr) {
    core::SetBlockRef(rec->cand_pages, span_idx * kSpanSize, kSpanSize);
    StoreRelease(rec->touch, static_cast<uint32_t>(span_idx + 1));
  }
  uint64_t expect = state;
  const bool won = CasAcqRel(
      sp->state, expect,
      MakeSpanState(0, cls, core::kSpanRetiring, core::SpanFreesOf(state)));
  if (won) {
    GLINT_CRASH_POINT();
    ClearSpan(span_idx, cls);
    GLINT_CRASH_POINT();
    FreePages(span_idx * kPagesPerSpan, kPagesPerSpan);
  }
  if (rec != nullptr) {
    StoreRelease(rec->touch, 0u);
    core::ClearBlockRef(rec->cand_pages);
  }
  return won;
}

// A RETIRING span becomes FREE: bitmap cleared, hint dropped, state FREE
// (keeping the free counter), release: the next owner of the pages writes
// the state, so ours must land first.
void Heap::ClearSpan(uint64_t span_idx, uint32_t cls) {
  SpanMeta* sp = r_.span(span_idx);
  for (auto& b : sp->bits) b.store(0, std::memory_order_relaxed);
  HintWord(cls, span_idx).fetch_and(~(uint64_t{1} << (span_idx % 64)),
                                                std::memory_order_acq_rel);
  const uint64_t frees = core::SpanFreesOf(LoadRelaxed(sp->state));
  sp->state.store(MakeSpanState(0, 0, core::kSpanFree, frees),
                  std::memory_order_release);
}

// ------------------------------------------------------------ page runs

// Claims words [word, word + full_words) whole (CAS 0 -> ~0) and the low
// tail_bits of the next word, in address order; on any conflict, gives back
// what it took and fails.
bool Heap::ClaimMultiWord(uint64_t word, uint64_t full_words, uint32_t tail_bits) {
  auto* pb = r_.page_bitmap();
  uint64_t taken = 0;
  for (; taken < full_words; ++taken) {
    uint64_t zero = 0;
    if (!CasAcqRel(pb[word + taken], zero, kAllOnes)) break;
    GLINT_CRASH_POINT();
  }
  bool ok = taken == full_words;
  if (ok && tail_bits > 0) {
    const uint64_t m = LowMask(tail_bits);
    uint64_t v = LoadRelaxed(pb[word + full_words]);
    ok = false;
    while ((v & m) == 0) {
      if (CasAcqRel(pb[word + full_words], v, v | m)) {
        ok = true;
        break;
      }
    }
  }
  if (!ok) {
    for (uint64_t i = 0; i < taken; ++i) {
      r_.page_epochs()[word + i].fetch_add(1, std::memory_order_acq_rel);
      pb[word + i].store(0, std::memory_order_release);
    }
  }
  return ok;
}

// Runs of up to 64 pages live inside one bitmap word (one CAS). Longer runs
// start on a word boundary. Scans downwards from the client's cursor so that
// large runs gather at the top of the heap and spans at the bottom.
//
// Logging (rec): cand names the run before each CAS that could take it.
bool Heap::AllocPages(uint64_t npages, AllocHints* hints, uint64_t* first_page,
                      OpRecord* rec) {
  const auto* h = r_.header();
  auto* pb = r_.page_bitmap();
  const uint64_t nwords = h->page_bitmap_words;
  if (npages > h->num_pages) return false;
  uint64_t start = LoadRelaxed(hints->large_cursor);
  if (start >= nwords) start = nwords - 1;
  if (npages <= 64) {
    const uint32_t k = static_cast<uint32_t>(npages);
    for (uint64_t i = 0; i < nwords; ++i) {
      const uint64_t w = (start + nwords - i) % nwords;
      uint64_t v = LoadRelaxed(pb[w]);
      for (;;) {
        const uint64_t starts = RunStarts(~v, k);
        if (starts == 0) break;
        const uint32_t b = 63 - std::countl_zero(starts);  // highest fit
        const uint64_t m = LowMask(k) << b;
        if (rec != nullptr) {
          core::SetBlockRef(rec->cand, (w * 64 + b) * kPageSize, npages * kPageSize);
        }
        if (CasAcqRel(pb[w], v, v | m)) {
          GLINT_CRASH_POINT();
          hints->large_cursor.store(w, std::memory_order_relaxed);
          *first_page = w * 64 + b;
          return true;
        }
      }
    }
    return false;
  }
  const uint64_t full = npages / 64;
  const uint32_t tail = static_cast<uint32_t>(npages % 64);
  const uint64_t span_words = full + (tail ? 1 : 0);
  if (span_words > nwords) return false;
  const uint64_t last_start = nwords - span_words;
  if (start > last_start) start = last_start;
  for (uint64_t i = 0; i <= last_start; ++i) {
    const uint64_t w = (start + (last_start + 1) - i) % (last_start + 1);
    // Cheap pre-check before any CAS.
    bool fits = true;
    for (uint64_t j = 0; j < full && fits; ++j) fits = LoadRelaxed(pb[w + j]) == 0;
    if (fits && tail) fits = (LoadRelaxed(pb[w + full]) & LowMask(tail)) == 0;
    if (!fits) continue;
    if (rec != nullptr) {
      core::SetBlockRef(rec->cand, w * 64 * kPageSize, npages * kPageSize);
    }
    if (ClaimMultiWord(w, full, tail)) {
      hints->large_cursor.store(w, std::memory_order_relaxed);
      *first_page = w * 64;
      return true;
    }
  }
  return false;
}

void Heap::FreePages(uint64_t first_page, uint64_t npages) {
  auto* pb = r_.page_bitmap();
  uint64_t p = first_page;
  uint64_t left = npages;
  while (left > 0) {
    const uint32_t bit = p % 64;
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(left, 64 - bit));
    // The epoch first: whoever sees the bits clear (and re-takes them) also
    // sees the epoch moved, so recovery's "unchanged since I looked" check
    // cannot be fooled by a free and a re-take in between.
    r_.page_epochs()[p / 64].fetch_add(1, std::memory_order_acq_rel);
    pb[p / 64].fetch_and(~(LowMask(n) << bit), std::memory_order_release);
    GLINT_CRASH_POINT();
    p += n;
    left -= n;
  }
}

// ------------------------------------------------------------ recovery
//
// The monitor calls these for a dead client, after deciding (core/recover.cc)
// that the memory is the dead client's and referenced by nobody.

bool Heap::RecoverBlock(uint64_t offset, uint32_t cls, uint64_t expect) {
  const uint64_t span_idx = offset / kSpanSize;
  SpanMeta* sp = r_.span(span_idx);
  // Count the free first: a CAS from the state the caller decided on, so a
  // free or reservation by anyone since makes us decide again.
  if (!core::CasSeqCst(sp->state, expect, expect + kSpanFreeOne - kSpanCountOne)) {
    return false;
  }
  const uint64_t block = (offset % kSpanSize) / ClassSize(cls);
  sp->bits[block / 64].fetch_and(~(uint64_t{1} << (block % 64)),
                                 std::memory_order_release);
  HintWord(cls, span_idx).fetch_or(uint64_t{1} << (span_idx % 64),
                                               std::memory_order_acq_rel);
  return true;
}

uint32_t Heap::TakenBlocks(uint64_t span_idx) const {
  const SpanMeta* sp = r_.span(span_idx);
  const uint32_t cls = SpanClassOf(LoadAcquire(sp->state));
  const uint32_t cap = BlocksPerSpan(cls);
  uint32_t n = 0;
  for (uint32_t k = 0; k < core::kSpanBitmapWords; ++k) {
    uint64_t v = LoadAcquire(sp->bits[k]);
    if (uint64_t{k} * 64 >= cap) break;
    if (uint64_t{k} * 64 + 64 > cap) v &= LowMask(cap - k * 64);  // padding
    n += static_cast<uint32_t>(std::popcount(v));
  }
  return n;
}

bool Heap::SetSpanCount(uint64_t span_idx, uint64_t expect, uint32_t count) {
  const uint64_t fixed = MakeSpanState(count, SpanClassOf(expect), SpanKindOf(expect),
                                       core::SpanFreesOf(expect));
  if (fixed == expect) return true;
  return core::CasSeqCst(r_.span(span_idx)->state, expect, fixed);
}

void Heap::FinishRetire(uint64_t span_idx) {
  const uint64_t s = LoadAcquire(r_.span(span_idx)->state);
  if (SpanKindOf(s) != core::kSpanRetiring) return;
  ClearSpan(span_idx, SpanClassOf(s));
  // The pages stay taken: the caller frees them once it has decided that
  // no one references them (a dead retirer may have freed them already).
}

void Heap::RecoverPages(uint64_t w, uint64_t mask) {
  r_.page_epochs()[w].fetch_add(1, std::memory_order_acq_rel);
  r_.page_bitmap()[w].fetch_and(~mask, std::memory_order_release);
}

void Heap::RebuildHints() {
  for (uint64_t i = 0; i < r_.header()->num_spans; ++i) {
    const uint64_t s = LoadAcquire(r_.span(i)->state);
    if (SpanKindOf(s) != core::kSpanActive) continue;
    const uint32_t cls = SpanClassOf(s);
    if (SpanCountOf(s) < BlocksPerSpan(cls)) {
      HintWord(cls, i).fetch_or(uint64_t{1} << (i % 64),
                                           std::memory_order_acq_rel);
    }
  }
}

// ------------------------------------------------------------ inspection

uint64_t Heap::LargestFree() const {
  const auto* h = r_.header();
  // A snapshot of the page bitmap in which empty spans count as free, since
  // an allocation that needs their pages reclaims them.
  std::vector<uint64_t> pb(h->page_bitmap_words);
  for (uint64_t w = 0; w < h->page_bitmap_words; ++w) {
    pb[w] = LoadRelaxed(r_.page_bitmap()[w]);
  }
  for (uint64_t i = 0; i < h->num_spans; ++i) {
    const uint64_t s = LoadAcquire(r_.span(i)->state);
    if (SpanKindOf(s) == core::kSpanActive && SpanCountOf(s) == 0) {
      pb[i / 4] &= ~(uint64_t{0xffff} << (16 * (i % 4)));
    }
  }
  uint64_t best_pages = 0;
  uint64_t zero_words = 0;  // run of whole free words ending at w - 1
  for (uint64_t w = 0; w < h->page_bitmap_words; ++w) {
    const uint64_t v = pb[w];
    // Runs inside one word.
    uint64_t free_bits = ~v;
    uint32_t in_word = 0;
    while (free_bits != 0) {
      const uint32_t lo = std::countr_zero(free_bits);
      const uint64_t shifted = free_bits >> lo;
      const uint32_t len = shifted == kAllOnes ? 64 - lo
                                                : std::countr_zero(~shifted);
      in_word = std::max(in_word, len);
      if (lo + len >= 64) break;
      free_bits &= ~(LowMask(len) << lo);
    }
    best_pages = std::max<uint64_t>(best_pages, in_word);
    // Runs starting at a word boundary: whole free words plus the low free
    // bits of the word that ends them.
    if (v == 0) {
      ++zero_words;
      best_pages = std::max(best_pages, zero_words * 64);
    } else {
      const uint32_t low_free = std::countr_zero(v);
      if (zero_words > 0) {
        best_pages = std::max(best_pages, zero_words * 64 + low_free);
      }
      zero_words = 0;
    }
  }
  // What Allocate can actually do with that: a page run serves only
  // requests over 16 KiB (at least 5 pages); requests up to 16 KiB take a
  // block of a size class, from a partly used span of that class or from a
  // new span, which needs 16 free pages aligned to 16.
  const uint64_t min_run_pages = kMaxSmallSize / kPageSize + 1;
  uint64_t best = best_pages >= min_run_pages ? best_pages * kPageSize : 0;
  for (uint64_t w = 0; w < h->page_bitmap_words && best < kMaxSmallSize; ++w) {
    for (uint32_t g = 0; g < 4; ++g) {
      if (((pb[w] >> (16 * g)) & 0xffff) == 0) best = std::max(best, kMaxSmallSize);
    }
  }
  for (uint64_t i = 0; i < h->num_spans; ++i) {
    const uint64_t s = LoadAcquire(r_.span(i)->state);
    if (SpanKindOf(s) != core::kSpanActive) continue;
    const uint32_t cls = SpanClassOf(s);
    if (SpanCountOf(s) < BlocksPerSpan(cls)) best = std::max(best, ClassSize(cls));
  }
  return best;
}

uint64_t Heap::BytesInUseByScan() const {
  const auto* h = r_.header();
  // The page bitmap first, then the spans: a span counts as span pages only
  // if all 16 of its pages were taken in our snapshot of the bitmap, so a
  // span retired between the two reads cannot make the sum negative.
  std::vector<uint64_t> pb(h->page_bitmap_words);
  uint64_t pages = 0;
  for (uint64_t w = 0; w < h->page_bitmap_words; ++w) {
    pb[w] = LoadAcquire(r_.page_bitmap()[w]);
    pages += std::popcount(pb[w]);
  }
  pages -= (h->page_bitmap_words * 64 - h->num_pages);  // padding bits
  uint64_t bytes = 0;
  uint64_t span_pages = 0;
  for (uint64_t i = 0; i < h->num_spans; ++i) {
    const uint64_t s = LoadAcquire(r_.span(i)->state);
    if (SpanKindOf(s) == core::kSpanFree) continue;
    if (((pb[i / 4] >> (16 * (i % 4))) & 0xffff) != 0xffff) continue;
    span_pages += kPagesPerSpan;
    bytes += uint64_t{SpanCountOf(s)} * ClassSize(SpanClassOf(s));
  }
  if (span_pages > pages) span_pages = pages;
  return std::min<uint64_t>(bytes + (pages - span_pages) * kPageSize, h->heap_size);
}

}  // namespace glint::alloc
