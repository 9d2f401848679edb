// Copyright (c) glint authors.
//
// Unit tests of the data-heap allocator (alloc/heap.h) on a region formatted
// in an anonymous mapping: size-class math, no overlap (each block carries a
// pattern keyed by its offset, checked when it is freed, as in mimalloc's
// stress test), a full heap, nothing stranded after freeing everything,
// alignment, and a multi-threaded stress (label "threads").

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "alloc/heap.h"
#include "core/region.h"
#include "tests/test_region.h"
#include "tests/test_util.h"

namespace glint::testing {
namespace {

using alloc::AllocSize;
using alloc::BlocksPerSpan;
using alloc::ClassSize;
using alloc::Heap;
using alloc::kMaxSmallSize;
using alloc::SizeClassOf;


// Writes a pattern keyed by `off` into a block: every byte of small blocks,
// and a sparse sample (plus the last bytes) of large ones.
void Stamp(uint8_t* heap, uint64_t off, uint64_t size, uint64_t tag) {
  const uint64_t seed = Mix64(off ^ (tag << 48));
  if (size <= 16384) {
    FillPattern(heap + off, static_cast<int64_t>(size), seed);
    return;
  }
  for (uint64_t at = 0; at + 8 <= size; at += 512) std::memcpy(heap + off + at, &seed, 8);
  std::memcpy(heap + off + size - 8, &seed, 8);
}

bool StampIntact(const uint8_t* heap, uint64_t off, uint64_t size, uint64_t tag) {
  const uint64_t seed = Mix64(off ^ (tag << 48));
  if (size <= 16384) return CheckPattern(heap + off, static_cast<int64_t>(size), seed) == -1;
  for (uint64_t at = 0; at + 8 <= size; at += 512) {
    if (std::memcmp(heap + off + at, &seed, 8) != 0) return false;
  }
  return std::memcmp(heap + off + size - 8, &seed, 8) == 0;
}

uint64_t RandomSize(std::mt19937_64& rng, uint64_t max_large) {
  const uint64_t r = rng() % 100;
  if (r < 60) return 1 + rng() % 1024;
  if (r < 90) return 1 + rng() % kMaxSmallSize;
  return kMaxSmallSize + 1 + rng() % max_large;
}

// ================================================================ classes

TEST(SizeClassTest, ClassMath) {
  uint32_t prev_cls = 0;
  uint64_t prev_alloc = 0;
  for (uint64_t s = 1; s <= kMaxSmallSize; ++s) {
    const uint32_t cls = SizeClassOf(s);
    ASSERT_LT(cls, core::kNumSizeClasses) << s;
    ASSERT_GE(ClassSize(cls), s) << s;
    ASSERT_EQ(ClassSize(cls) % 64, 0u) << s;
    // The class is the smallest that fits.
    if (cls > 0) {
      ASSERT_LT(ClassSize(cls - 1), s) << s;
    }
    // Monotonic.
    ASSERT_GE(cls, prev_cls) << s;
    ASSERT_LE(cls, prev_cls + 1) << s;
    ASSERT_EQ(AllocSize(s), ClassSize(cls)) << s;
    ASSERT_GE(AllocSize(s), prev_alloc) << s;
    prev_cls = cls;
    prev_alloc = AllocSize(s);
  }
  EXPECT_EQ(SizeClassOf(1), 0u);
  EXPECT_EQ(ClassSize(0), 64u);
  EXPECT_EQ(SizeClassOf(kMaxSmallSize), core::kNumSizeClasses - 1);
  EXPECT_EQ(ClassSize(core::kNumSizeClasses - 1), kMaxSmallSize);
  // 64-byte steps up to 1 KiB.
  for (uint64_t s = 64; s <= 1024; s += 64) {
    EXPECT_EQ(AllocSize(s), s);
    EXPECT_EQ(AllocSize(s - 63), s);
  }
  // Rounding waste of a size class stays below a quarter (plus 64 bytes).
  for (uint64_t s = 1; s <= kMaxSmallSize; ++s) {
    ASSERT_LE(AllocSize(s) - s, std::max<uint64_t>(63, s / 4)) << s;
  }
  for (uint32_t cls = 0; cls < core::kNumSizeClasses; ++cls) {
    EXPECT_GE(BlocksPerSpan(cls), 4u) << cls;
    EXPECT_LE(uint64_t{BlocksPerSpan(cls)} * ClassSize(cls), core::kSpanSize) << cls;
    EXPECT_LE(BlocksPerSpan(cls), 64u * core::kSpanBitmapWords) << cls;
    if (cls > 0) {
      EXPECT_GT(ClassSize(cls), ClassSize(cls - 1)) << cls;
    }
  }
}

TEST(SizeClassTest, LargeSizesArePageRuns) {
  EXPECT_EQ(AllocSize(0), 0u);
  uint64_t prev = 0;
  for (uint64_t s = kMaxSmallSize + 1; s < (uint64_t{4} << 20); s += 1 + s / 7) {
    const uint64_t a = AllocSize(s);
    EXPECT_GE(a, s);
    EXPECT_EQ(a % core::kPageSize, 0u) << s;
    EXPECT_LT(a - s, core::kPageSize) << s;
    EXPECT_GE(a, prev);
    prev = a;
  }
  EXPECT_EQ(AllocSize(kMaxSmallSize + 1), 5 * core::kPageSize);
}

// ================================================================ heap

class HeapTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(region_.status().ok()) << region_.status().ToString(); }

  TestRegion region_{16 << 20};
  Heap heap_{region_.region()};
  alloc::AllocHints hints_;
};

TEST_F(HeapTest, EmptyHeap) {
  EXPECT_EQ(region_.heap_size(), uint64_t{16} << 20);
  EXPECT_EQ(heap_.LargestFree(), region_.heap_size());
  EXPECT_EQ(heap_.BytesInUseByScan(), 0u);
  // The heap starts on a 64 KiB boundary of the region, which is a
  // page-aligned mapping: offsets that are
  // multiples of 64 (4096) give 64-byte (page) aligned addresses.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(region_.heap_base()) % core::kPageSize, 0u);
  EXPECT_EQ((region_.heap_base() - region_.region().base()) % core::kSpanSize, 0);
}

TEST_F(HeapTest, AlignmentAndBounds) {
  std::vector<std::pair<uint64_t, uint64_t>> blocks;
  for (uint64_t s : {1ul, 63ul, 64ul, 65ul, 100ul, 1000ul, 1025ul, 4096ul, 10000ul, 16384ul,
                     16385ul, 20000ul, 65536ul, 300000ul, 1ul << 20}) {
    for (int rep = 0; rep < 5; ++rep) {
      uint64_t off = 0;
      ASSERT_TRUE(heap_.Allocate(s, &hints_, &off)) << s;
      EXPECT_EQ(off % 64, 0u) << s;
      if (s > kMaxSmallSize) {
        EXPECT_EQ(off % core::kPageSize, 0u) << s;
      }
      EXPECT_LE(off + AllocSize(s), region_.heap_size()) << s;
      blocks.emplace_back(off, s);
    }
  }
  uint64_t sum = 0;
  for (auto& [off, s] : blocks) sum += AllocSize(s);
  EXPECT_EQ(heap_.BytesInUseByScan(), sum);
  for (auto& [off, s] : blocks) heap_.Free(off, s);
  EXPECT_EQ(heap_.BytesInUseByScan(), 0u);
  EXPECT_EQ(heap_.LargestFree(), region_.heap_size());
}

TEST_F(HeapTest, WholeHeapInOneRun) {
  uint64_t off = 1;
  ASSERT_TRUE(heap_.Allocate(region_.heap_size(), &hints_, &off));
  EXPECT_EQ(off, 0u);
  EXPECT_EQ(heap_.LargestFree(), 0u);
  uint64_t other;
  EXPECT_FALSE(heap_.Allocate(1, &hints_, &other));
  EXPECT_FALSE(heap_.Allocate(kMaxSmallSize + 1, &hints_, &other));
  heap_.Free(off, region_.heap_size());
  EXPECT_EQ(heap_.LargestFree(), region_.heap_size());
  // Anything bigger than the heap never fits.
  alloc::AllocHints fresh;
  EXPECT_FALSE(heap_.Allocate(region_.heap_size() + 1, &fresh, &other));
  EXPECT_EQ(heap_.BytesInUseByScan(), 0u);
}

// Random allocations and frees: no two live blocks overlap, no block is
// written by anyone else while live, and the scan agrees with the sum.
TEST_F(HeapTest, RandomMixNeverOverlaps) {
  std::mt19937_64 rng(42);
  std::map<uint64_t, uint64_t> live;  // offset -> requested size
  uint64_t in_use = 0;
  const int kOps = 200000 / kScale;
  for (int op = 0; op < kOps; ++op) {
    const bool do_alloc = live.empty() || (rng() % 100) < (live.size() < 2000 ? 60 : 40);
    if (do_alloc) {
      const uint64_t s = RandomSize(rng, 256 * 1024);
      uint64_t off;
      if (!heap_.Allocate(s, &hints_, &off)) {
        // Only a heap that is really busy may refuse.
        ASSERT_GT(in_use + AllocSize(s), region_.heap_size() / 2) << "op " << op;
        continue;
      }
      const uint64_t end = off + AllocSize(s);
      ASSERT_LE(end, region_.heap_size());
      auto next = live.lower_bound(off);
      if (next != live.end()) {
        ASSERT_LE(end, next->first) << "overlaps the next block";
      }
      if (next != live.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + AllocSize(prev->second), off) << "overlaps the previous block";
      }
      Stamp(region_.heap_base(), off, AllocSize(s), 1);
      live.emplace(off, s);
      in_use += AllocSize(s);
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % std::min<size_t>(live.size(), 64)));
      if (rng() % 2) it = std::prev(live.end());
      ASSERT_TRUE(StampIntact(region_.heap_base(), it->first, AllocSize(it->second), 1))
          << "block at " << it->first << " was overwritten";
      heap_.Free(it->first, it->second);
      in_use -= AllocSize(it->second);
      live.erase(it);
    }
    if (op % 997 == 0) {
      ASSERT_EQ(heap_.BytesInUseByScan(), in_use) << "op " << op;
      // The largest free block really can be allocated.
      const uint64_t largest = heap_.LargestFree();
      if (largest > 0) {
        uint64_t off;
        ASSERT_TRUE(heap_.Allocate(largest, &hints_, &off))
            << "LargestFree() = " << largest << " but Allocate fails (op " << op << ")";
        heap_.Free(off, largest);
      }
    }
  }
  for (auto& [off, s] : live) {
    ASSERT_TRUE(StampIntact(region_.heap_base(), off, AllocSize(s), 1));
    heap_.Free(off, s);
  }
  EXPECT_EQ(heap_.BytesInUseByScan(), 0u);
  EXPECT_EQ(heap_.LargestFree(), region_.heap_size());
}

TEST_F(HeapTest, FullOfSmallBlocks) {
  std::vector<uint64_t> offs;
  uint64_t off;
  while (heap_.Allocate(64, &hints_, &off)) offs.push_back(off);
  EXPECT_EQ(offs.size(), region_.heap_size() / 64);
  EXPECT_EQ(heap_.BytesInUseByScan(), region_.heap_size());
  EXPECT_EQ(heap_.LargestFree(), 0u);
  EXPECT_FALSE(heap_.Allocate(1, &hints_, &off));
  EXPECT_FALSE(heap_.Allocate(1000, &hints_, &off));
  EXPECT_FALSE(heap_.Allocate(100000, &hints_, &off));
  // One block back: that block's class fits again, the others do not.
  heap_.Free(offs[12345], 64);
  EXPECT_EQ(heap_.LargestFree(), 64u);
  EXPECT_FALSE(heap_.Allocate(128, &hints_, &off));
  ASSERT_TRUE(heap_.Allocate(64, &hints_, &off));
  EXPECT_EQ(off, offs[12345]);
  for (uint64_t o : offs) heap_.Free(o, 64);
  EXPECT_EQ(heap_.BytesInUseByScan(), 0u);
  EXPECT_EQ(heap_.LargestFree(), region_.heap_size());
  // Empty spans went back: the whole heap is one run again.
  ASSERT_TRUE(heap_.Allocate(region_.heap_size(), &hints_, &off));
  heap_.Free(off, region_.heap_size());
}

TEST_F(HeapTest, FullOfLargeRuns) {
  std::vector<uint64_t> offs;
  uint64_t off;
  const uint64_t kRun = 1 << 20;
  while (heap_.Allocate(kRun, &hints_, &off)) {
    EXPECT_EQ(off % core::kPageSize, 0u);
    offs.push_back(off);
  }
  EXPECT_EQ(offs.size(), region_.heap_size() / kRun);
  EXPECT_EQ(heap_.LargestFree(), 0u);
  EXPECT_FALSE(heap_.Allocate(64, &hints_, &off));
  heap_.Free(offs[5], kRun);
  EXPECT_EQ(heap_.LargestFree(), kRun);
  // The freed run serves small blocks too.
  ASSERT_TRUE(heap_.Allocate(64, &hints_, &off));
  EXPECT_GE(off, offs[5]);
  EXPECT_LT(off, offs[5] + kRun);
  heap_.Free(off, 64);
  for (size_t i = 0; i < offs.size(); ++i) {
    if (i != 5) heap_.Free(offs[i], kRun);
  }
  EXPECT_EQ(heap_.BytesInUseByScan(), 0u);
  EXPECT_EQ(heap_.LargestFree(), region_.heap_size());
}

// Every size class filled and emptied in turn: each leaves nothing behind.
TEST_F(HeapTest, EveryClassReturnsItsSpans) {
  for (uint32_t cls = 0; cls < core::kNumSizeClasses; ++cls) {
    const uint64_t s = ClassSize(cls);
    std::vector<uint64_t> offs;
    uint64_t off;
    for (uint32_t i = 0; i < 3 * BlocksPerSpan(cls) + 1; ++i) {
      ASSERT_TRUE(heap_.Allocate(s, &hints_, &off)) << cls;
      offs.push_back(off);
    }
    EXPECT_EQ(heap_.BytesInUseByScan(), offs.size() * s);
    for (uint64_t o : offs) heap_.Free(o, s);
    EXPECT_EQ(heap_.BytesInUseByScan(), 0u) << cls;
    EXPECT_EQ(heap_.LargestFree(), region_.heap_size()) << cls;
  }
}

// LargestFree is "the largest request that would succeed now". Fill the
// heap with 5-page runs (the smallest page run): each 64-page bitmap word
// then keeps 4 free pages that no request can use (small requests need a
// whole free 16-page span, large ones at least 5 pages).
//
// Regression test: Heap::LargestFree once counted free page runs of 1-4
// pages as allocatable (16 KiB here) while Allocate of that size failed;
// fixed in 752e889.
TEST_F(HeapTest, LargestFreeIsAllocatableWhenOnlyShortRunsAreFree) {
  const uint64_t kRun = kMaxSmallSize + 1;  // 5 pages
  std::vector<uint64_t> offs;
  uint64_t off;
  while (heap_.Allocate(kRun, &hints_, &off)) offs.push_back(off);
  EXPECT_GT(offs.size(), 0u);
  const uint64_t largest = heap_.LargestFree();
  if (largest > 0) {
    EXPECT_TRUE(heap_.Allocate(largest, &hints_, &off))
        << "LargestFree() = " << largest << " but Allocate(" << largest << ") fails";
  }
  for (uint64_t o : offs) heap_.Free(o, kRun);
}

// ================================================================ threads

// Several threads (each with its own hints, as each client has) allocate and
// free at once; a fraction of the blocks is freed by another thread. A
// granule map (one byte per 64 bytes, claimed by CAS) proves no two live
// blocks overlap; stamps prove nobody wrote into another's block.
TEST(HeapThreadsTest, ConcurrentAllocFreeStress) {
  TestRegion region(32 << 20);
  ASSERT_TRUE(region.status().ok());
  Heap heap(region.region());
  const uint64_t granules = region.heap_size() / 64;
  std::vector<std::atomic<uint8_t>> owner(granules);
  std::atomic<int> errors{0};
  std::mutex handoff_mu;
  std::vector<std::pair<uint64_t, uint64_t>> handoff;  // blocks to free by anyone
  const int kThreads = 4;
  const int kOps = 100000 / kScale;

  auto claim = [&](uint64_t off, uint64_t bytes) {
    for (uint64_t g = off / 64; g < (off + bytes) / 64; ++g) {
      uint8_t zero = 0;
      if (!owner[g].compare_exchange_strong(zero, 1)) return false;
    }
    return true;
  };
  auto unclaim = [&](uint64_t off, uint64_t bytes) {
    for (uint64_t g = off / 64; g < (off + bytes) / 64; ++g) owner[g].store(0);
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      alloc::AllocHints hints;
      std::mt19937_64 rng(t * 7 + 1);
      std::vector<std::pair<uint64_t, uint64_t>> mine;
      auto release = [&](uint64_t off, uint64_t s) {
        if (!StampIntact(region.heap_base(), off, AllocSize(s), 2)) errors.fetch_add(1);
        unclaim(off, AllocSize(s));
        heap.Free(off, s);
      };
      for (int op = 0; op < kOps && errors.load() == 0; ++op) {
        const uint64_t r = rng() % 100;
        if (r < 55 || mine.empty()) {
          const uint64_t s = RandomSize(rng, 128 * 1024);
          uint64_t off;
          if (!heap.Allocate(s, &hints, &off)) continue;  // busy heap: fine
          if (!claim(off, AllocSize(s))) {
            errors.fetch_add(1);
            return;
          }
          Stamp(region.heap_base(), off, AllocSize(s), 2);
          mine.emplace_back(off, s);
          if (mine.size() > 300) {
            // Too many: free the oldest half.
            for (size_t i = 0; i < 150; ++i) release(mine[i].first, mine[i].second);
            mine.erase(mine.begin(), mine.begin() + 150);
          }
        } else if (r < 65) {
          // Hand a block to whichever thread frees it.
          std::lock_guard<std::mutex> l(handoff_mu);
          handoff.push_back(mine.back());
          mine.pop_back();
        } else if (r < 75) {
          std::pair<uint64_t, uint64_t> b{0, 0};
          {
            std::lock_guard<std::mutex> l(handoff_mu);
            if (!handoff.empty()) {
              b = handoff.back();
              handoff.pop_back();
            }
          }
          if (b.second != 0) release(b.first, b.second);
        } else {
          const size_t i = rng() % mine.size();
          release(mine[i].first, mine[i].second);
          mine[i] = mine.back();
          mine.pop_back();
        }
      }
      for (auto& [off, s] : mine) release(off, s);
    });
  }
  for (auto& th : threads) th.join();
  for (auto& [off, s] : handoff) {
    EXPECT_TRUE(StampIntact(region.heap_base(), off, AllocSize(s), 2));
    heap.Free(off, s);
  }
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(heap.BytesInUseByScan(), 0u);
  EXPECT_EQ(heap.LargestFree(), region.heap_size());
}

// Threads hammer one size class so spans fill, empty and retire while
// others allocate in them.
TEST(HeapThreadsTest, SpanRetirementRaces) {
  TestRegion region(4 << 20);
  ASSERT_TRUE(region.status().ok());
  Heap heap(region.region());
  std::atomic<int> errors{0};
  const int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      alloc::AllocHints hints;
      std::vector<uint64_t> mine;
      const uint64_t s = t % 2 ? 4096 : 1024;  // 16 or 64 blocks per span
      for (int round = 0; round < 2000 / kScale; ++round) {
        for (int i = 0; i < 40; ++i) {
          uint64_t off;
          if (!heap.Allocate(s, &hints, &off)) continue;
          Stamp(region.heap_base(), off, s, 3 + t);
          mine.push_back(off);
        }
        for (uint64_t off : mine) {
          if (!StampIntact(region.heap_base(), off, s, 3 + t)) errors.fetch_add(1);
          heap.Free(off, s);
        }
        mine.clear();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(heap.BytesInUseByScan(), 0u);
  EXPECT_EQ(heap.LargestFree(), region.heap_size());
}

}  // namespace
}  // namespace glint::testing
