// Copyright (c) glint authors.
//
// Unit tests of core/: the hash and bucket choice of the object table and
// name index, the table's slot claiming, the region layout and Validate's
// verdicts on damaged headers. (The object life cycle is tested through the
// public API in client_api_test and multiprocess_test.)

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <thread>
#include <chrono>
#include <limits>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/object_table.h"
#include "core/os.h"
#include "core/region.h"
#include "core/store.h"
#include "tests/test_region.h"
#include "tests/test_util.h"

namespace glint::testing {
namespace {

using core::HashBytes;
using core::IdHash;
using core::Key;
using core::MakeKey;
using core::NameHash;


// ================================================================ hashing

TEST(HashTest, StableAcrossBuilds) {
  // The hash decides where ids and names live in the shared region, so two
  // builds of the library must agree on it. Changing these values requires
  // bumping core::kLayoutVersion.
  EXPECT_EQ(HashBytes("", 0, 0), 0x486792e91c4cb9f7ULL);
  EXPECT_EQ(HashBytes("glint", 5, 0), 0xe85409bc9538ccd2ULL);
  EXPECT_EQ(HashBytes("0123456789abcdef", 16, 0), 0x47e0cdc1df026d0aULL);
  EXPECT_EQ(NameHash("my-object"), 0x12fea4c853f73936ULL);
  const uint8_t zero[16] = {};
  EXPECT_EQ(IdHash(zero), 0x2d390941b18c9509ULL);
}

TEST(HashTest, DeterministicAndSeeded) {
  const std::string data = "some bytes to hash, longer than sixteen";
  for (size_t len = 0; len <= data.size(); ++len) {
    EXPECT_EQ(HashBytes(data.data(), len, 0), HashBytes(data.data(), len, 0));
    EXPECT_NE(HashBytes(data.data(), len, 0), HashBytes(data.data(), len, 1)) << len;
  }
  // Id and name hashes of the same bytes differ (different seeds).
  const ObjectId id = ObjectId::FromBinary("0123456789abcdef");
  EXPECT_NE(IdHash(id.data()), NameHash("0123456789abcdef"));
  EXPECT_EQ(id.Hash(), IdHash(id.data()));
}

TEST(HashTest, EveryLengthAndPrefixDiffers) {
  // Prefixes of one buffer (and zero-padded tails) must not collide.
  std::vector<uint8_t> buf(300, 0);
  std::set<uint64_t> seen;
  for (size_t len = 0; len <= buf.size(); ++len) {
    EXPECT_TRUE(seen.insert(HashBytes(buf.data(), len, 0)).second) << len;
  }
}

TEST(HashTest, EveryByteMatters) {
  for (size_t len : {1u, 7u, 8u, 15u, 16u, 17u, 31u, 32u, 33u, 255u}) {
    std::vector<uint8_t> a(len, 0x5a);
    const uint64_t h = HashBytes(a.data(), len, 0);
    for (size_t i = 0; i < len; ++i) {
      std::vector<uint8_t> b = a;
      b[i] ^= 1;
      EXPECT_NE(HashBytes(b.data(), len, 0), h) << "len " << len << " byte " << i;
    }
  }
  // Ids differing only in the last byte all hash differently.
  std::set<uint64_t> last;
  for (int v = 0; v < 256; ++v) {
    uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0};
    id[15] = static_cast<uint8_t>(v);
    last.insert(IdHash(id));
  }
  EXPECT_EQ(last.size(), 256u);
}

TEST(HashTest, Avalanche) {
  // Flipping one input bit flips about half of the output bits.
  std::mt19937_64 rng(3);
  double total = 0;
  int n = 0;
  for (int trial = 0; trial < 200; ++trial) {
    uint8_t id[16];
    for (auto& b : id) b = static_cast<uint8_t>(rng());
    const uint64_t h = IdHash(id);
    for (int bit = 0; bit < 128; ++bit) {
      uint8_t f[16];
      std::memcpy(f, id, 16);
      f[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      total += std::popcount(h ^ IdHash(f));
      ++n;
    }
  }
  const double mean = total / n;
  EXPECT_GT(mean, 28.0);
  EXPECT_LT(mean, 36.0);
}

TEST(HashTest, SequentialIdsSpreadOverBuckets) {
  // Ids that are counters (a common client habit) spread evenly.
  const uint64_t kBuckets = 1024;
  const int kIds = 200000;
  for (int layout = 0; layout < 2; ++layout) {
    std::vector<int> count(kBuckets, 0), count2(kBuckets, 0), fps(256, 0);
    for (int i = 0; i < kIds; ++i) {
      const ObjectId id = layout == 0 ? MakeId(0, i) : MakeId(i, 0);
      const Key k = MakeKey(IdHash(id.data()), kBuckets);
      ++count[k.bucket[0]];
      ++count2[k.bucket[1]];
      ++fps[k.fp];
    }
    const double mean = static_cast<double>(kIds) / kBuckets;  // ~195
    for (uint64_t b = 0; b < kBuckets; ++b) {
      EXPECT_GT(count[b], mean * 0.6) << "layout " << layout << " bucket " << b;
      EXPECT_LT(count[b], mean * 1.4) << "layout " << layout << " bucket " << b;
      EXPECT_GT(count2[b], mean * 0.6) << "layout " << layout << " bucket " << b;
      EXPECT_LT(count2[b], mean * 1.4) << "layout " << layout << " bucket " << b;
    }
    EXPECT_EQ(fps[0], 0);  // 0 means "no entry"; its share goes to 1
    for (int f = 1; f < 256; ++f) {
      EXPECT_GT(fps[f], kIds / 256 / 2) << f;
      EXPECT_LT(fps[f], kIds / 256 * (f == 1 ? 3 : 2)) << f;
    }
  }
}

TEST(MakeKeyTest, TwoDistinctBucketsInRange) {
  std::mt19937_64 rng(5);
  for (uint64_t n = 2; n <= (uint64_t{1} << 22); n <<= 1) {
    for (int i = 0; i < 2000; ++i) {
      const uint64_t h = rng();
      const Key k = MakeKey(h, n);
      EXPECT_EQ(k.hash, h);
      ASSERT_LT(k.bucket[0], n);
      ASSERT_LT(k.bucket[1], n);
      ASSERT_NE(k.bucket[0], k.bucket[1]) << "n " << n << " hash " << h;
      ASSERT_NE(k.fp, 0);
    }
  }
  // Hashes that would pick one bucket twice still get two.
  for (uint64_t h : {uint64_t{0}, ~uint64_t{0}, uint64_t{0x0000000500000005ULL}}) {
    const Key k = MakeKey(h, 64);
    EXPECT_NE(k.bucket[0], k.bucket[1]);
    EXPECT_NE(k.fp, 0);
  }
}

// ================================================================ layout

TEST(LayoutTest, RejectsBadParameters) {
  core::RegionHeader h;
  EXPECT_EQ(core::ComputeLayout({0, 0, 4}, &h).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(core::ComputeLayout({1 << 20, 0, 0}, &h).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(core::ComputeLayout({1 << 20, 0, core::kMaxClients + 1}, &h).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(core::ComputeLayout({uint64_t{1} << 50, 0, 4}, &h).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(core::ComputeLayout({1 << 20, uint64_t{1} << 40, 4}, &h).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(core::ComputeLayout({1, 0, 1}, &h).ok());
  EXPECT_TRUE(core::ComputeLayout({1 << 20, 0, core::kMaxClients}, &h).ok());
}

TEST(LayoutTest, SectionsOrderedAlignedAndLargeEnough) {
  for (uint64_t cap : {uint64_t{1}, uint64_t{65536}, uint64_t{1000000}, uint64_t{64} << 20,
                       uint64_t{1} << 34}) {
    for (uint64_t max_objects : {uint64_t{0}, uint64_t{1}, uint64_t{1000}, uint64_t{100000}}) {
      for (uint32_t clients : {1u, 64u, 256u}) {
        core::RegionHeader h;
        ASSERT_TRUE(core::ComputeLayout({cap, max_objects, clients}, &h).ok());
        EXPECT_EQ(h.magic, core::kRegionMagic);
        EXPECT_EQ(h.layout_version, core::kLayoutVersion);
        EXPECT_GE(h.heap_size, cap);
        EXPECT_EQ(h.heap_size % core::kSpanSize, 0u);
        EXPECT_LT(h.heap_size - cap, core::kSpanSize);
        EXPECT_EQ(h.num_pages, h.heap_size / core::kPageSize);
        EXPECT_EQ(h.num_spans, h.heap_size / core::kSpanSize);
        EXPECT_TRUE(std::has_single_bit(h.obj_num_buckets));
        EXPECT_TRUE(std::has_single_bit(h.name_num_buckets));
        EXPECT_GE(h.obj_num_buckets, 2u);
        const uint64_t want_objects =
            max_objects ? max_objects : std::max<uint64_t>(65536, h.heap_size / 16384);
        EXPECT_EQ(h.max_objects, want_objects);
        EXPECT_GE(h.obj_num_buckets * core::kSlotsPerBucket, 2 * h.max_objects);
        const uint64_t offsets[] = {
            core::kPageSize,        h.clients_offset,      h.waits_offset,
            h.obj_buckets_offset,   h.obj_entries_offset,  h.name_buckets_offset,
            h.name_entries_offset,  h.page_bitmap_offset,  h.span_table_offset,
            h.class_hints_offset,   h.heap_offset,         h.region_size};
        for (size_t i = 1; i < std::size(offsets); ++i) {
          EXPECT_GE(offsets[i], offsets[i - 1]) << i;
          EXPECT_EQ(offsets[i] % core::kPageSize, 0u) << i;
        }
        EXPECT_GE(h.waits_offset - h.clients_offset, uint64_t{clients} * core::kClientStride);
        EXPECT_GE(h.obj_entries_offset - h.obj_buckets_offset,
                  h.obj_num_buckets * sizeof(core::BucketHeader));
        EXPECT_GE(h.name_buckets_offset - h.obj_entries_offset,
                  h.obj_num_buckets * core::kSlotsPerBucket * sizeof(core::ObjectEntry));
        EXPECT_GE(h.span_table_offset - h.page_bitmap_offset, h.page_bitmap_words * 8);
        EXPECT_GE(h.page_bitmap_words * 64, h.num_pages);
        EXPECT_EQ(h.heap_offset % core::kSpanSize, 0u);
        EXPECT_EQ(h.region_size, h.heap_offset + h.heap_size);
      }
    }
  }
}

// ================================================================ Validate

class ValidateTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(r_.status().ok()); }
  Status Validate() const { return core::Region::Validate(r_.base(), r_.size()); }
  TestRegion r_{1 << 20, 1000, 8};
};

TEST_F(ValidateTest, FreshRegionIsValid) {
  EXPECT_TRUE(Validate().ok()) << Validate().ToString();
  EXPECT_EQ(r_.header()->next_client_serial.load(), 1u);
  for (uint32_t i = 0; i < 8; ++i) {
    EXPECT_EQ(r_.region().client(i)->state.load(), core::kClientFree);
  }
}

TEST_F(ValidateTest, BadMagicIsIncompatible) {
  r_.header()->magic ^= 1;
  EXPECT_EQ(Validate().code(), StatusCode::kIncompatible) << Validate().ToString();
  r_.header()->magic = 0;
  EXPECT_EQ(Validate().code(), StatusCode::kIncompatible);
}

TEST_F(ValidateTest, OtherLayoutVersionIsIncompatible) {
  r_.header()->layout_version = core::kLayoutVersion + 1;
  const Status s = Validate();
  EXPECT_EQ(s.code(), StatusCode::kIncompatible) << s.ToString();
  EXPECT_NE(s.message().find(std::to_string(core::kLayoutVersion + 1)), std::string::npos)
      << s.ToString();
  r_.header()->layout_version = 0;
  EXPECT_EQ(Validate().code(), StatusCode::kIncompatible);
}

// Clients divide by the TSC rate (ObjectInfo::construct_duration): a rate
// no clock has is damage (fuzz_region found a denormal one).
TEST_F(ValidateTest, TscRateThatIsNotAClocksIsCorrupt) {
  core::RegionHeader* h = r_.header();
  const double saved = h->tsc_per_us;
  for (double bad : {1e-300, -1.0, 0.5, 1e9, std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity()}) {
    h->tsc_per_us = bad;
    const Status s = Validate();
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << bad << ": " << s.ToString();
  }
  h->tsc_per_us = 0;  // not calibrated
  EXPECT_TRUE(Validate().ok());
  h->tsc_per_us = saved;
  EXPECT_TRUE(Validate().ok());
}

// The flags tell a mapper how to map (huge pages, populate or not); a bit
// this layout version does not define is damage, reported with the bits.
TEST_F(ValidateTest, UnknownFlagBitsAreCorrupt) {
  core::RegionHeader* h = r_.header();
  const uint32_t saved = h->flags;
  for (uint32_t bad : {4u, 0x80000000u, core::kRegionKnownFlags | 8u}) {
    h->flags = bad;
    const Status s = Validate();
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << bad << ": " << s.ToString();
    EXPECT_NE(s.message().find("unknown flag bits"), std::string::npos) << s.ToString();
  }
  for (uint32_t good : {0u, uint32_t{core::kRegionHugepages}, uint32_t{core::kRegionLazyPages},
                        core::kRegionKnownFlags}) {
    h->flags = good;
    EXPECT_TRUE(Validate().ok()) << good;
  }
  h->flags = saved;
}

TEST_F(ValidateTest, InconsistentOffsetsAreCorrupt) {
  core::RegionHeader* h = r_.header();
  auto expect_corrupt = [&](uint64_t* field, uint64_t value, const char* what) {
    const uint64_t saved = *field;
    *field = value;
    const Status s = Validate();
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << what << ": " << s.ToString();
    *field = saved;
    EXPECT_TRUE(Validate().ok()) << what;
  };
  expect_corrupt(&h->waits_offset, h->waits_offset + 4096, "waits_offset");
  expect_corrupt(&h->clients_offset, 0, "clients_offset");
  expect_corrupt(&h->obj_entries_offset, h->obj_entries_offset - 4096, "obj_entries_offset");
  expect_corrupt(&h->obj_num_buckets, h->obj_num_buckets * 2, "obj_num_buckets");
  expect_corrupt(&h->name_entries_offset, ~uint64_t{0}, "name_entries_offset");
  expect_corrupt(&h->page_bitmap_words, h->page_bitmap_words + 1, "page_bitmap_words");
  expect_corrupt(&h->span_table_offset, h->span_table_offset + 64, "span_table_offset");
  expect_corrupt(&h->heap_offset, h->heap_offset + core::kSpanSize, "heap_offset");
  expect_corrupt(&h->heap_size, h->heap_size * 2, "heap_size");
  expect_corrupt(&h->heap_size, uint64_t{1} << 60, "heap_size huge");
  expect_corrupt(&h->heap_size, 0, "heap_size zero");
  expect_corrupt(&h->num_pages, h->num_pages + 1, "num_pages");
  expect_corrupt(&h->region_size, h->region_size + 4096, "region_size");
  expect_corrupt(&h->max_objects, uint64_t{1} << 40, "max_objects");
  const uint32_t clients = h->max_clients;
  h->max_clients = 0;
  EXPECT_EQ(Validate().code(), StatusCode::kCorrupt);
  h->max_clients = 100000;
  EXPECT_EQ(Validate().code(), StatusCode::kCorrupt);
  h->max_clients = clients;
  const uint32_t hs = h->header_size;
  h->header_size = hs + 8;
  EXPECT_EQ(Validate().code(), StatusCode::kCorrupt);
  h->header_size = hs;
  const uint32_t stride = h->client_stride;
  h->client_stride = 64;
  EXPECT_EQ(Validate().code(), StatusCode::kCorrupt);
  h->client_stride = stride;
  EXPECT_TRUE(Validate().ok());
}

TEST_F(ValidateTest, TooSmallIsCorrupt) {
  EXPECT_EQ(core::Region::Validate(r_.base(), 0).code(), StatusCode::kCorrupt);
  EXPECT_EQ(core::Region::Validate(r_.base(), 100).code(), StatusCode::kCorrupt);
  EXPECT_EQ(core::Region::Validate(r_.base(), core::kPageSize - 1).code(), StatusCode::kCorrupt);
  // A file shorter (or longer) than the header says.
  EXPECT_EQ(core::Region::Validate(r_.base(), r_.size() - core::kPageSize).code(),
            StatusCode::kCorrupt);
  EXPECT_EQ(core::Region::Validate(r_.base(), core::kPageSize).code(), StatusCode::kCorrupt);
  // A page of zeros is not a region at all.
  std::vector<uint8_t> zeros(core::kPageSize, 0);
  EXPECT_EQ(core::Region::Validate(zeros.data(), zeros.size()).code(),
            StatusCode::kIncompatible);
}

// ================================================================ table

class TableTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(r_.status().ok()); }
  TestRegion r_{1 << 20, 1000, 4};
  core::ObjectTable table_{r_.region()};
};

TEST_F(TableTest, BothBucketsFullThenReuse) {
  const Key k = MakeKey(IdHash(MakeId(1, 1).data()), table_.num_buckets());
  std::vector<uint32_t> slots;
  uint32_t slot;
  while (table_.ClaimObjectSlot(k, &slot)) {
    slots.push_back(slot);
    ASSERT_LE(slots.size(), 2u * core::kSlotsPerBucket);
  }
  EXPECT_EQ(slots.size(), 2u * core::kSlotsPerBucket);
  std::set<uint32_t> distinct(slots.begin(), slots.end());
  EXPECT_EQ(distinct.size(), slots.size());
  for (uint32_t s : slots) {
    const uint64_t b = r_.region().obj_bucket_of(s);
    EXPECT_TRUE(b == k.bucket[0] || b == k.bucket[1]) << s;
  }
  // A released slot is claimed again at once.
  table_.ReleaseObjectSlot(slots[17], k);
  ASSERT_TRUE(table_.ClaimObjectSlot(k, &slot));
  EXPECT_EQ(slot, slots[17]);
  EXPECT_FALSE(table_.ClaimObjectSlot(k, &slot));
  for (uint32_t s : slots) table_.ReleaseObjectSlot(s, k);
  for (uint64_t b = 0; b < table_.num_buckets(); ++b) {
    EXPECT_EQ(r_.region().obj_bucket(b)->used.load(), 0u) << b;
  }
}

TEST_F(TableTest, ObjectsFillTheFirstBucketThenSpillWithACount) {
  const Key k = MakeKey(IdHash(MakeId(2, 2).data()), table_.num_buckets());
  const core::BucketHeader* b0 = r_.region().obj_bucket(k.bucket[0]);
  std::vector<uint32_t> slots;
  uint32_t slot;
  for (uint32_t i = 0; i < core::kSlotsPerBucket; ++i) {
    ASSERT_TRUE(table_.ClaimObjectSlot(k, &slot));
    EXPECT_EQ(r_.region().obj_bucket_of(slot), k.bucket[0]) << i;
    EXPECT_EQ(r_.region().obj_index_of(slot), i);
    EXPECT_FALSE(table_.Spilled(slot, k));
    slots.push_back(slot);
  }
  EXPECT_EQ(core::SpillOf(b0->used.load()), 0u);
  // The first bucket is full: the next two go to the second, each counted.
  for (uint32_t i = 1; i <= 2; ++i) {
    ASSERT_TRUE(table_.ClaimObjectSlot(k, &slot));
    EXPECT_EQ(r_.region().obj_bucket_of(slot), k.bucket[1]);
    EXPECT_TRUE(table_.Spilled(slot, k));
    EXPECT_EQ(core::SpillOf(b0->used.load()), i);
    EXPECT_EQ(core::UsedSlots(b0->used.load()), core::kUsedSlotsMask);
    slots.push_back(slot);
  }
  // Giving a spilled slot back with its key takes its count back; without
  // the key (recovery) the count stays, too high but never too low.
  table_.ReleaseObjectSlot(slots.back(), k);
  slots.pop_back();
  EXPECT_EQ(core::SpillOf(b0->used.load()), 1u);
  table_.ReleaseObjectSlot(slots.back());
  slots.pop_back();
  EXPECT_EQ(core::SpillOf(b0->used.load()), 1u);
  for (uint32_t s : slots) table_.ReleaseObjectSlot(s, k);
  EXPECT_EQ(b0->used.load(), core::kSpillOne);
}

// The wait bucket's abort tags (Store::NoteAbort / AbortNotedSince): what a
// getter that counted `since` finds. Hashes of one bucket: the same low 10
// bits, different high halves.
TEST(StoreAbortTagsTest, LastSixAbortsSinceAreFound) {
  TestRegion tr(1 << 20, 1000, 4);
  ASSERT_TRUE(tr.status().ok());
  const core::Region r = tr.region();
  core::Store store(r);
  auto hash = [](uint64_t k) { return (k << 32) | 7; };  // all in bucket 7
  core::WaitBucket* wb = r.wait_bucket(hash(1));
  ASSERT_EQ(wb, r.wait_bucket(hash(2)));
  // Counts from 2^32 - 3 so the numbers cross 2^32 (a 32-bit counter did,
  // and n % 6 then jumped: the ring was four deep there).
  for (const uint64_t start : {uint64_t{0}, (uint64_t{1} << 32) - 3}) {
    SCOPED_TRACE(start);
    wb->aborts.store(start);
    for (auto& a : wb->aborted) a.store(0);
    const uint64_t since = wb->aborts.load();
    EXPECT_FALSE(store.AbortNotedSince(hash(1), since));
    store.NoteAbort(hash(1));
    EXPECT_TRUE(store.AbortNotedSince(hash(1), since));
    EXPECT_FALSE(store.AbortNotedSince(hash(2), since));  // another id
    // Not for a wait that began after it.
    EXPECT_FALSE(store.AbortNotedSince(hash(1), wb->aborts.load()));
    // Five more aborts of others: still found; a sixth overwrites it.
    for (int i = 0; i < 5; ++i) store.NoteAbort(hash(100 + i));
    EXPECT_TRUE(store.AbortNotedSince(hash(1), since));
    store.NoteAbort(hash(200));
    EXPECT_FALSE(store.AbortNotedSince(hash(1), since));
  }
}

// A writer delayed between taking its number and storing its tag, while six
// later aborts took numbers, finds a newer tag at its place and leaves it:
// a getter waiting for that newer abort still finds it.
TEST(StoreAbortTagsTest, ADelayedTagDoesNotOverwriteANewerOne) {
  TestRegion tr(1 << 20, 1000, 4);
  ASSERT_TRUE(tr.status().ok());
  const core::Region r = tr.region();
  core::Store store(r);
  auto hash = [](uint64_t k) { return (k << 32) | 9; };
  core::WaitBucket* wb = r.wait_bucket(hash(1));
  const uint64_t stalled = wb->aborts.fetch_add(1);  // number taken, no tag yet
  for (int i = 0; i < 5; ++i) store.NoteAbort(hash(10 + i));
  const uint64_t since = wb->aborts.load();  // a getter of hash(1) starts
  store.NoteAbort(hash(1));                  // its abort: the stalled one's place
  core::Store::PutAbortTag(wb, stalled, hash(50));  // the stalled writer resumes
  EXPECT_TRUE(store.AbortNotedSince(hash(1), since));
  EXPECT_FALSE(store.AbortNotedSince(hash(50), since));
  // The same order without the newer tag: the delayed tag is stored.
  core::WaitBucket* wb2 = r.wait_bucket(hash(1) + 1);
  const uint64_t n = wb2->aborts.fetch_add(1);
  core::Store::PutAbortTag(wb2, n, hash(1) + 1);
  EXPECT_TRUE(store.AbortNotedSince(hash(1) + 1, n));
}

// An entry's name is hashed (to find the wait bucket to wake) by seals,
// aborts and by recovery, which reads entries a dead or buggy client may
// have scribbled on. A name length past the 255-byte limit or a name block
// at or past the heap's end is hashed as far as it is in range: the hash
// once copied `name_len` bytes (up to 65535) into a 255-byte stack buffer.
TEST(StoreNameHashTest, DamagedEntryIsHashedWithinBounds) {
  TestRegion tr(1 << 20, 1000, 4);
  ASSERT_TRUE(tr.status().ok());
  const core::Region r = tr.region();
  core::Store store(r);
  core::ObjectEntry* e = r.entry(0);
  uint64_t h = 0;
  e->name_len.store(0);
  EXPECT_FALSE(store.NameHashOf(e, &h));

  const uint64_t heap = tr.heap_size();
  std::memset(tr.heap_base(), 'x', 300);
  e->info_offset.store(0);
  e->name_len.store(60000);
  ASSERT_TRUE(store.NameHashOf(e, &h));
  EXPECT_EQ(h, NameHash(std::string(255, 'x')));

  std::memcpy(tr.heap_base() + heap - 3, "abc", 3);
  e->info_offset.store(heap - 3);
  ASSERT_TRUE(store.NameHashOf(e, &h));
  EXPECT_EQ(h, NameHash("abc"));

  e->info_offset.store(~uint64_t{0} - 7);
  ASSERT_TRUE(store.NameHashOf(e, &h));
  EXPECT_EQ(h, NameHash(""));
}

// Object slots are numbered index-major: the first slots of all buckets
// are adjacent entries, so a sparse table (every id in the first slot of
// its bucket) keeps its entries in a few pages.
TEST_F(TableTest, FirstSlotsOfAllBucketsAreAdjacentEntries) {
  const core::Region& r = r_.region();
  const uint64_t nb = table_.num_buckets();
  ASSERT_GE(nb, 4u);
  for (uint64_t b = 0; b < nb; ++b) {
    for (uint32_t i : {0u, 1u, core::kSlotsPerBucket - 1}) {
      const uint32_t slot = r.obj_slot(b, i);
      ASSERT_LT(slot, r.num_obj_slots());
      EXPECT_EQ(r.obj_bucket_of(slot), b);
      EXPECT_EQ(r.obj_index_of(slot), i);
    }
    EXPECT_EQ(r.entry(r.obj_slot(b, 0)) - r.entry(r.obj_slot(0, 0)), static_cast<ptrdiff_t>(b));
  }
  // A fresh claim takes the first slot of the key's first bucket.
  const Key k = MakeKey(IdHash(MakeId(5, 5).data()), nb);
  uint32_t slot;
  ASSERT_TRUE(table_.ClaimObjectSlot(k, &slot));
  EXPECT_EQ(slot, r.obj_slot(k.bucket[0], 0));
  table_.ReleaseObjectSlot(slot, k);
}

TEST_F(TableTest, SpillCountSticksAt255) {
  const Key k = MakeKey(IdHash(MakeId(3, 3).data()), table_.num_buckets());
  core::BucketHeader* b0 = r_.region().obj_bucket(k.bucket[0]);
  b0->used.store(core::kUsedSlotsMask | (uint64_t{254} << core::kSpillShift));
  uint32_t a, b;
  ASSERT_TRUE(table_.ClaimObjectSlot(k, &a));
  EXPECT_EQ(core::SpillOf(b0->used.load()), 255u);
  ASSERT_TRUE(table_.ClaimObjectSlot(k, &b));  // no carry out of bit 63
  EXPECT_EQ(core::SpillOf(b0->used.load()), 255u);
  EXPECT_EQ(core::UsedSlots(b0->used.load()), core::kUsedSlotsMask);
  table_.ReleaseObjectSlot(a, k);
  table_.ReleaseObjectSlot(b, k);
  EXPECT_EQ(core::SpillOf(b0->used.load()), 255u);  // sticky: never lower
}

TEST_F(TableTest, BothBucketsFullTakesNoCount) {
  const Key k = MakeKey(IdHash(MakeId(4, 4).data()), table_.num_buckets());
  core::BucketHeader* b0 = r_.region().obj_bucket(k.bucket[0]);
  core::BucketHeader* b1 = r_.region().obj_bucket(k.bucket[1]);
  b0->used.store(core::kUsedSlotsMask);
  b1->used.store(core::kUsedSlotsMask);
  uint32_t slot;
  EXPECT_FALSE(table_.ClaimObjectSlot(k, &slot));
  EXPECT_EQ(b0->used.load(), core::kUsedSlotsMask);
  b0->used.store(0);
  b1->used.store(0);
}

TEST_F(TableTest, NamesPreferTheEmptierBucket) {
  const Key k = MakeKey(NameHash("a-name"), table_.num_name_buckets());
  int in_bucket[2] = {0, 0};
  uint32_t slot;
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(table_.ClaimNameSlot(k, &slot));
    ++in_bucket[slot / core::kSlotsPerBucket == k.bucket[0] ? 0 : 1];
  }
  EXPECT_EQ(in_bucket[0], 20);
  EXPECT_EQ(in_bucket[1], 20);
}

// ================================================================ TscClock

// Found in review: a TSC still below one second of ticks (a VM just
// booted) read as seconds after 1970, and a stale reading that re-anchored
// the clock stamped every later create that much too late.
TEST(TscClockTest, TimesAreRealtimeForEarlyAndStaleReadings) {
  const double rate = os::CalibrateTsc();
  ASSERT_GT(rate, 0);
  constexpr int64_t k2020 = int64_t{1577836800} * 1000000;  // 2020-01-01, in us
  {
    os::TscClock clock(rate);
    EXPECT_GT(clock.MicrosAt(1000), k2020) << "an early TSC reading read as 1970";
  }
  const uint64_t stale = os::ReadTsc();
  os::TscClock clock(rate);  // anchored after `stale` was read
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const int64_t at_stale = clock.MicrosAt(stale);
  const int64_t real_now = os::NowMicros();
  EXPECT_LT(at_stale, real_now - 40000) << "a stale reading was taken for now";
  const int64_t now = clock.MicrosAt(os::ReadTsc());
  EXPECT_LT(std::abs(now - os::NowMicros()), 10000) << "later readings are off by "
                                                    << now - os::NowMicros() << " us";
}

}  // namespace
}  // namespace glint::testing
