// Copyright (c) glint authors.
//
// The allocator of the data heap. All of its state lives in the region:
//  - a page bitmap (1 bit per 4 KiB page of the heap: 1 = taken);
//  - a span table: a span is 64 KiB (16 aligned pages) given to one of 32 size
//    classes (64 B .. 16 KiB); its state word counts reserved blocks and its
//    bitmap marks taken blocks;
//  - per size class, a hint bitmap of spans that may have a free block.
// Requests up to 16 KiB take a block of a size class (64-byte aligned);
// larger ones take a run of pages (4 KiB aligned). Nothing is cached per
// client except hints (which span to try first), so no memory is stranded.
//
// Every step is a single CAS or fetch-op on one word; the ordering argument
// is written next to each step in heap.cc. Thread- and process-safe; never
// blocks; lock-free (a stopped allocator delays nobody).

#ifndef GLINT_ALLOC_HEAP_H_
#define GLINT_ALLOC_HEAP_H_

#include <atomic>
#include <cstdint>

#include "core/region.h"

namespace glint::alloc {

inline constexpr uint64_t kMaxSmallSize = 16 * 1024;

// The size classes: 64 B steps up to 1 KiB (classes 0..15), then four
// classes per power of two up to 16 KiB (16..31), read from tables (no
// division by a variable). A class out of range, which only a damaged span
// state holds, reads as one block of a whole span: defined values, no
// division by zero, no table read out of bounds (the checker reports it).
constexpr uint64_t ClassSizeFormula(uint32_t cls) {
  if (cls < 16) return uint64_t{64} * (cls + 1);
  const uint32_t e = 10 + (cls - 16) / 4;
  const uint64_t base = uint64_t{1} << e;
  return base + (base / 4) * ((cls - 16) % 4 + 1);
}

namespace internal {
struct ClassTables {
  uint64_t size[core::kNumSizeClasses];
  uint32_t blocks[core::kNumSizeClasses];
  // ceil(2^32 / size): (offset in span * recip) >> 32 = offset / size for
  // every offset below 64 KiB (see heap.cc).
  uint64_t recip[core::kNumSizeClasses];
};
constexpr ClassTables MakeClassTables() {
  ClassTables t{};
  for (uint32_t c = 0; c < core::kNumSizeClasses; ++c) {
    t.size[c] = ClassSizeFormula(c);
    t.blocks[c] = static_cast<uint32_t>(core::kSpanSize / t.size[c]);
    t.recip[c] = ((uint64_t{1} << 32) + t.size[c] - 1) / t.size[c];
  }
  return t;
}
inline constexpr ClassTables kClassTables = MakeClassTables();
}  // namespace internal

// The size class of a request of `size` bytes (1..16 KiB), 0..31.
inline uint32_t SizeClassOf(uint64_t size) {
  if (size <= 1024) return size == 0 ? 0 : static_cast<uint32_t>((size - 1) >> 6);
  const uint32_t e = 63 - static_cast<uint32_t>(__builtin_clzll(size - 1));  // >= 10
  const uint64_t base = uint64_t{1} << e;
  return 16 + (e - 10) * 4 + static_cast<uint32_t>((size - 1 - base) >> (e - 2));
}
// Bytes of a block of class `cls`.
inline uint64_t ClassSize(uint32_t cls) {
  return cls < core::kNumSizeClasses ? internal::kClassTables.size[cls] : core::kSpanSize;
}
// Blocks of class `cls` in one span.
inline uint32_t BlocksPerSpan(uint32_t cls) {
  return cls < core::kNumSizeClasses ? internal::kClassTables.blocks[cls] : 1;
}
// The block of class `cls` (< kNumSizeClasses) holding `offset_in_span`
// (< kSpanSize), without a division.
inline uint64_t BlockIndex(uint64_t offset_in_span, uint32_t cls) {
  return (offset_in_span * internal::kClassTables.recip[cls]) >> 32;
}
// Bytes the heap hands out for a request of `size` (0 for 0).
uint64_t AllocSize(uint64_t size);

// Process-local hints of one client (or one thread). They only say where to
// look first; losing them loses nothing.
struct AllocHints {
  uint32_t owner = 0;  // the client slot these hints belong to
  std::atomic<uint32_t> cur_span[core::kNumSizeClasses];
  // Per class, the bitmap word of the span last allocated in where the
  // last block was found: the next scan starts there instead of at word 0.
  std::atomic<uint32_t> cur_word[core::kNumSizeClasses];
  std::atomic<uint64_t> span_cursor{0};   // page-bitmap word to scan from
  std::atomic<uint64_t> large_cursor{~uint64_t{0}};  // scans downwards
  AllocHints() {
    for (auto& s : cur_span) s.store(UINT32_MAX, std::memory_order_relaxed);
    for (auto& w : cur_word) w.store(0, std::memory_order_relaxed);
  }
};

class Heap {
 public:
  explicit Heap(const core::Region& region) : r_(region) {}

  // Takes AllocSize(size) bytes. REQUIRES: 0 < size <= heap size.
  // Returns false when no block or run is free (the caller answers
  // OutOfMemory). *offset is from the heap start.
  // With a log record `rec` (the calling operation's, see core/region.h):
  // before each CAS that could take memory, the block, run or span pages
  // it would take are written to rec->cand / rec->cand_pages, and the span
  // being allocated in to rec->touch; on success rec->cand holds the block
  // taken (the caller moves it to rec->owned[] and clears cand). Recovery
  // needs these to decide, after a crash, what the client had taken.
  bool Allocate(uint64_t size, AllocHints* hints, uint64_t* offset,
                core::OpRecord* rec = nullptr);
  // Gives back what Allocate(size) returned at `offset`. With `rec`, the
  // span freed into is in rec->touch while its count is out of step.
  void Free(uint64_t offset, uint64_t size, core::OpRecord* rec = nullptr);

  // Gives every empty span back to the page bitmap; returns how many.
  // Allocate calls it when it finds no room.
  [[gnu::noinline]] uint64_t ReclaimEmptySpans(core::OpRecord* rec = nullptr);

  // Recovery's primitives (the monitor, on a dead client's behalf).
  // Clears the bit of block `offset` (class `cls`) and counts a free, unless
  // the span's state is no longer `expect` (then false: decide again).
  bool RecoverBlock(uint64_t offset, uint32_t cls, uint64_t expect);
  // Sets span `i`'s reserved count to `count` if its state is still
  // `expect` (recovery read `count` from the bitmap in between).
  bool SetSpanCount(uint64_t i, uint64_t expect, uint32_t count);
  // Finishes the retirement of span `i` left RETIRING by a dead client.
  void FinishRetire(uint64_t i);
  // Clears the pages of `mask` in page-bitmap word `w` (a leaked run).
  void RecoverPages(uint64_t w, uint64_t mask);
  // Taken (non-padding) blocks of span `i` by its bitmap.
  uint32_t TakenBlocks(uint64_t i) const;
  // Sets the class hint of every active span with room (hints lost by a
  // client that died between dropping and restoring one).
  void RebuildHints();

  // The largest request that would succeed now (a scan; not for fast paths).
  uint64_t LargestFree() const;
  // Bytes taken, counted by scanning the bitmaps (tests and the checker).
  uint64_t BytesInUseByScan() const;

 private:
  // The class-hint word of span `span` for class `cls`. A class out of range
  // (a damaged span state) gets a process-local word of no one's, so that
  // nothing outside the hint table is ever written.
  std::atomic<uint64_t>& HintWord(uint32_t cls, uint64_t span) const {
    static std::atomic<uint64_t> sink{0};
    return cls < core::kNumSizeClasses ? r_.class_hints(cls)[span / 64] : sink;
  }
  // A block of class `cls` from any span but the client's current one.
  bool AllocSmall(uint32_t cls, AllocHints* hints, uint64_t* offset,
                  core::OpRecord* rec);
  [[gnu::noinline]] bool AllocSmallSlow(uint32_t cls, AllocHints* hints,
                                        uint64_t* offset, core::OpRecord* rec);
  [[gnu::noinline]] bool AllocLarge(uint64_t size, AllocHints* hints,
                                    uint64_t* offset, core::OpRecord* rec);
  bool AllocFromHinted(uint32_t cls, AllocHints* hints, bool own_only,
                       uint64_t* offset, core::OpRecord* rec);
  bool AllocInSpan(uint64_t span, uint32_t cls, AllocHints* hints,
                   uint64_t* offset, core::OpRecord* rec);
  bool NewSpan(uint32_t cls, AllocHints* hints, uint64_t* offset,
               core::OpRecord* rec);
  void FreeSmall(uint64_t offset, uint32_t cls, core::OpRecord* rec);
  [[gnu::noinline]] bool RetireSpan(uint64_t span, uint64_t state, core::OpRecord* rec);
  void ClearSpan(uint64_t span, uint32_t cls);
  bool AllocPages(uint64_t npages, AllocHints* hints, uint64_t* first_page,
                  core::OpRecord* rec);
  bool ClaimMultiWord(uint64_t word, uint64_t full_words, uint32_t tail_bits);
  [[gnu::noinline]] void FreePages(uint64_t first_page, uint64_t npages);

  core::Region r_;
};

}  // namespace glint::alloc

#endif  // GLINT_ALLOC_HEAP_H_
