// Copyright (c) glint authors.
//
// The region checker (core/check.h) against corrupt regions. A store is
// populated through an embedded Monitor and a Client, its region copied into
// a private buffer, and each test damages one kind of field in a fresh copy:
// the checker must name the problem, and never crash or read outside the
// region (the buffer comes from the heap, so ASan's redzones surround it).
// A fuzz-style loop flips random bytes of the metadata sections.

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "alloc/heap.h"
#include "core/check.h"
#include "core/region.h"
#include "tests/test_util.h"

namespace glint::testing {
namespace {

using core::CheckRegion;
using core::CheckReport;

// A copy of a region in heap memory, 4 KiB aligned like a mapping.
class RegionCopy {
 public:
  explicit RegionCopy(uint64_t size)
      : size_(size), base_(static_cast<uint8_t*>(std::aligned_alloc(4096, size))) {}
  ~RegionCopy() { std::free(base_); }
  RegionCopy(const RegionCopy&) = delete;
  RegionCopy& operator=(const RegionCopy&) = delete;
  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  core::Region region() const { return core::Region(base_, size_); }

 private:
  uint64_t size_;
  uint8_t* base_;
};

class CheckTest : public ::testing::Test {
 protected:
  static constexpr int64_t kSmallSize = 100;    // a block of a size class
  static constexpr int64_t kLargeSize = 100000;  // a run of pages

  void SetUp() override {
    StoreOptions o = SmallStoreOptions(int64_t{4} << 20);
    o.max_objects = 512;
    o.max_clients = 8;
    GLINT_ASSERT_OK(Monitor::Start(o, &monitor_));
    GLINT_ASSERT_OK(Client::Connect(monitor_->socket_path(), &client_));
    // Sealed: two small of one class (one named, with metadata), one of
    // another class, two large (one named); one small being built; one
    // buffer held.
    ASSERT_NO_FATAL_FAILURE(Put(small_a_, kSmallSize, "small-a"));
    ASSERT_NO_FATAL_FAILURE(Put(small_b_, kSmallSize, ""));
    ASSERT_NO_FATAL_FAILURE(Put(mid_, 3000, ""));
    ASSERT_NO_FATAL_FAILURE(Put(large_a_, kLargeSize, "large-a"));
    ASSERT_NO_FATAL_FAILURE(Put(large_b_, kLargeSize, ""));
    GLINT_ASSERT_OK(client_->BuildObject(building_, 500, &building_buf_, "building"));
    GLINT_ASSERT_OK(client_->GetObject(small_a_, &held_, 0));

    size_ = static_cast<uint64_t>(client_->region_size());
    snapshot_.assign(client_->region_base(), client_->region_base() + size_);
    copy_ = std::make_unique<RegionCopy>(size_);
    Restore();
    const CheckReport q = CheckRegion(r(), /*quiescent=*/true);
    ASSERT_TRUE(q.ok()) << q.ToString();
    EXPECT_EQ(q.objects, 6u);
    const CheckReport live = CheckRegion(r(), /*quiescent=*/false);
    ASSERT_TRUE(live.ok()) << live.ToString();
  }

  void Put(const ObjectId& id, int64_t size, const std::string& name) {
    MutableBuffer mb;
    GLINT_ASSERT_OK(client_->BuildObject(id, size, &mb, name, {{"format", "raw"}}));
    FillPattern(mb.mutable_data(), size, SeedOf(id));
    GLINT_ASSERT_OK(mb.Seal());
  }

  // The copy back to the populated, sound state.
  void Restore() { std::memcpy(copy_->base(), snapshot_.data(), size_); }
  core::Region r() const { return copy_->region(); }
  core::RegionHeader* h() const { return r().header(); }

  // The entry of `id` in the copy.
  core::ObjectEntry* Entry(const ObjectId& id, uint32_t* slot_out = nullptr) const {
    uint64_t w[2];
    std::memcpy(w, id.data(), 16);
    for (uint32_t s = 0; s < r().num_obj_slots(); ++s) {
      core::ObjectEntry* e = r().entry(s);
      const auto st = core::StateOf(e->state.load());
      if ((st == core::kObjSealed || st == core::kObjCreating) && e->id[0].load() == w[0] &&
          e->id[1].load() == w[1]) {
        if (slot_out != nullptr) *slot_out = s;
        return e;
      }
    }
    ADD_FAILURE() << "no entry for " << id.hex();
    return r().entry(0);
  }
  // The `used` bit of an object slot, or of a name slot.
  void SetUsed(core::BucketHeader* (core::Region::*bucket)(uint64_t) const, uint32_t slot,
               bool taken) const {
    const bool obj = bucket == &core::Region::obj_bucket;
    core::BucketHeader* b =
        (r().*bucket)(obj ? r().obj_bucket_of(slot) : slot / core::kSlotsPerBucket);
    const uint64_t bit = uint64_t{1} << (obj ? r().obj_index_of(slot)
                                             : slot % core::kSlotsPerBucket);
    b->used.store(taken ? b->used.load() | bit : b->used.load() & ~bit);
  }

  // Runs the checker on the copy; expects a problem containing every one of
  // `words`. Returns the report's text for further checks.
  std::string ExpectProblem(bool quiescent, std::initializer_list<const char*> words) {
    const CheckReport rep = CheckRegion(r(), quiescent);
    const std::string text = rep.ToString();
    EXPECT_FALSE(rep.ok()) << "quiescent=" << quiescent << ": corruption not seen";
    bool found = false;
    for (const std::string& p : rep.problems) {
      bool all = true;
      for (const char* w : words) all = all && p.find(w) != std::string::npos;
      found = found || all;
    }
    std::string want;
    for (const char* w : words) want += std::string(" '") + w + "'";
    EXPECT_TRUE(found) << "quiescent=" << quiescent << ": no problem with" << want
                       << " in:\n" << text;
    return text;
  }
  // Both modes must see it.
  void ExpectAlways(std::initializer_list<const char*> words) {
    ExpectProblem(false, words);
    ExpectProblem(true, words);
  }

  const ObjectId small_a_ = MakeId(7, 1), small_b_ = MakeId(7, 2), mid_ = MakeId(7, 3),
                 large_a_ = MakeId(7, 4), large_b_ = MakeId(7, 5),
                 building_ = MakeId(7, 6);
  std::unique_ptr<Monitor> monitor_;
  std::unique_ptr<Client> client_;
  MutableBuffer building_buf_;
  Buffer held_;
  uint64_t size_ = 0;
  std::vector<uint8_t> snapshot_;
  std::unique_ptr<RegionCopy> copy_;
};

// ------------------------------------------------------------ header

TEST_F(CheckTest, HeaderMagic) {
  h()->magic ^= 0x100;
  ExpectAlways({"region", "magic"});
}

TEST_F(CheckTest, HeaderVersion) {
  h()->layout_version = 99;
  ExpectAlways({"region", "version 99"});
}

TEST_F(CheckTest, HeaderOffsets) {
  for (uint64_t core::RegionHeader::*field :
       {&core::RegionHeader::clients_offset, &core::RegionHeader::obj_entries_offset,
        &core::RegionHeader::name_entries_offset, &core::RegionHeader::page_bitmap_offset,
        &core::RegionHeader::span_table_offset, &core::RegionHeader::heap_offset,
        &core::RegionHeader::obj_num_buckets, &core::RegionHeader::num_spans}) {
    for (uint64_t v : {uint64_t{4096}, uint64_t{1} << 40, ~uint64_t{0}}) {
      Restore();
      h()->*field += v;
      ExpectAlways({"region", "inconsistent"});
    }
  }
}

TEST_F(CheckTest, HeaderGeometry) {
  h()->region_size += 4096;
  ExpectAlways({"region", "size"});
  Restore();
  h()->max_clients = 100000;
  ExpectAlways({"region", "max_clients"});
  Restore();
  h()->heap_size = ~uint64_t{0};
  ExpectAlways({"region"});
  Restore();
  h()->max_objects = ~uint64_t{0};
  ExpectAlways({"region"});
}

// ------------------------------------------------------------ entries

TEST_F(CheckTest, EntryStateByteInvalid) {
  uint32_t slot;
  core::ObjectEntry* e = Entry(mid_, &slot);
  e->state.store((e->state.load() & ~uint64_t{0xff}) | 0x09);
  ExpectAlways({("object slot " + std::to_string(slot)).c_str(), "invalid state 9"});
  // With the slot not even taken.
  SetUsed(&core::Region::obj_bucket, slot, false);
  ExpectAlways({"invalid state 9"});
}

TEST_F(CheckTest, EntryStateWithoutTakenSlot) {
  uint32_t slot;
  Entry(mid_, &slot);
  SetUsed(&core::Region::obj_bucket, slot, false);
  ExpectAlways({("object slot " + std::to_string(slot)).c_str(), "SEALED but not taken"});
}

TEST_F(CheckTest, EntryLeftHalfWay) {
  uint32_t slot;
  core::ObjectEntry* e = Entry(mid_, &slot);
  e->state.store(core::MakeState(core::GenOf(e->state.load()), core::kObjClaimed));
  ExpectProblem(true, {("object slot " + std::to_string(slot)).c_str(), "left CLAIMED"});
  EXPECT_TRUE(CheckRegion(r(), false).ok()) << "a live store passes CLAIMED";
}

TEST_F(CheckTest, TwoCommittedObjectsWithOneId) {
  // small_b_ takes small_a_'s id: a create race both sides won.
  core::ObjectEntry* a = Entry(small_a_);
  core::ObjectEntry* b = Entry(small_b_);
  b->id[0].store(a->id[0].load());
  b->id[1].store(a->id[1].load());
  ExpectProblem(true, {"hold the same id"});
}

TEST_F(CheckTest, TakenEmptySlotIsALeak) {
  // The last slot of bucket 3 is taken but EMPTY (no creator is running).
  const uint32_t slot = r().obj_slot(3, core::kSlotsPerBucket - 1);
  ASSERT_EQ(core::StateOf(r().entry(slot)->state.load()), core::kObjEmpty);
  SetUsed(&core::Region::obj_bucket, slot, true);
  ExpectProblem(true, {("object slot " + std::to_string(slot)).c_str(), "leaked"});
}

TEST_F(CheckTest, BucketBitsPast56) {
  // Object buckets keep their spill count there; a name bucket has none.
  r().obj_bucket(1)->used.fetch_or(uint64_t{1} << 60);
  EXPECT_TRUE(CheckRegion(r(), true).ok());
  Restore();
  r().name_bucket(2)->used.fetch_or(uint64_t{1} << 63);
  ExpectAlways({"name bucket 2", "past 56"});
}

TEST_F(CheckTest, EntryOffsetsOutOfRange) {
  for (const ObjectId& id : {small_a_, large_a_}) {
    for (uint64_t off : {h()->heap_size, h()->heap_size - 64, uint64_t{1} << 50,
                         ~uint64_t{0} - 1, ~uint64_t{0}}) {
      Restore();
      uint32_t slot;
      core::ObjectEntry* e = Entry(id, &slot);
      e->data_offset.store(off);
      ExpectAlways({("object slot " + std::to_string(slot) + " payload").c_str(),
                    "outside the heap"});
      Restore();
      e->info_offset.store(off);
      // The last 64 bytes of the heap hold a block of a small info block's
      // class, but not in an active span.
      const char* why = off == h()->heap_size - 64 ? "info" : "outside the heap";
      ExpectAlways({("object slot " + std::to_string(slot) + " info").c_str(), why});
    }
  }
}

TEST_F(CheckTest, EntrySizesHuge) {
  for (uint64_t size : {h()->heap_size + 1, uint64_t{1} << 44, uint64_t{1} << 63,
                        ~uint64_t{0}}) {
    Restore();
    uint32_t slot;
    core::ObjectEntry* e = Entry(large_a_, &slot);
    e->data_size.store(size);
    ExpectAlways({("object slot " + std::to_string(slot) + " payload").c_str(),
                  "outside the heap"});
  }
  // A page run inside the heap, over the whole of it: free pages, spans and
  // other objects' pages.
  Restore();
  uint32_t slot;
  core::ObjectEntry* e = Entry(large_a_, &slot);
  e->data_offset.store(0);
  e->data_size.store(h()->heap_size);
  ExpectAlways({("object slot " + std::to_string(slot) + " payload").c_str()});
  // The info block's size of another class.
  Restore();
  e = Entry(small_a_, &slot);
  e->info_size.store(0xffffffffu);
  ExpectAlways({("object slot " + std::to_string(slot) + " info").c_str()});
}

TEST_F(CheckTest, EntrySizeOfAnotherClass) {
  uint32_t slot;
  core::ObjectEntry* e = Entry(small_a_, &slot);
  e->data_size.store(5000);
  ExpectAlways({("object slot " + std::to_string(slot) + " payload").c_str(),
                "is not a block of class"});
  // Small block made large: its pages belong to an active span.
  Restore();
  e->data_offset.store(e->data_offset.load() / core::kPageSize * core::kPageSize);
  e->data_size.store(kLargeSize);
  ExpectAlways({("object slot " + std::to_string(slot) + " payload").c_str(),
                "active span"});
  // Misaligned large block.
  Restore();
  e = Entry(large_a_, &slot);
  const uint64_t off = e->data_offset.load();
  e->data_offset.store(off >= core::kPageSize ? off - 64 : off + 64);
  ExpectAlways({("object slot " + std::to_string(slot) + " payload").c_str(),
                "not page aligned"});
}

TEST_F(CheckTest, OverlappingSmallBlocks) {
  core::ObjectEntry* a = Entry(small_a_);
  core::ObjectEntry* b = Entry(small_b_);
  b->data_offset.store(a->data_offset.load());
  ExpectAlways({"shares block"});
  // b's own block is now taken and owned by nobody.
  ExpectProblem(true, {"no object owns it"});
}

TEST_F(CheckTest, OverlappingPageRuns) {
  core::ObjectEntry* a = Entry(large_a_);
  core::ObjectEntry* b = Entry(large_b_);
  // One page off a's run, inside the heap.
  const uint64_t off = a->data_offset.load();
  b->data_offset.store(off + core::kPageSize + alloc::AllocSize(kLargeSize) <= h()->heap_size
                           ? off + core::kPageSize
                           : off - core::kPageSize);
  ExpectAlways({"shares page"});
  ExpectProblem(true, {"no object or span owns it"});
}

TEST_F(CheckTest, PayloadOverlapsOwnInfo) {
  core::ObjectEntry* e = Entry(small_a_);
  e->info_offset.store(e->data_offset.load());
  e->info_size.store(static_cast<uint32_t>(kSmallSize));
  ExpectAlways({"shares block"});
}

TEST_F(CheckTest, HolderOfUnregisteredClient) {
  uint32_t slot;
  core::ObjectEntry* e = Entry(mid_, &slot);
  const uint32_t c = static_cast<uint32_t>(client_->client_slot()) + 3;
  ASSERT_EQ(r().client(c)->state.load(), core::kClientFree);
  e->holders[0].fetch_or(uint64_t{1} << c);
  ExpectAlways({("object slot " + std::to_string(slot)).c_str(),
                ("held by client " + std::to_string(c)).c_str(), "not registered"});
  // A holder bit past max_clients.
  Restore();
  e->holders[3].fetch_or(uint64_t{1} << 63);
  ExpectAlways({"held by client 255"});
}

TEST_F(CheckTest, BuilderNotRegistered) {
  uint32_t slot;
  core::ObjectEntry* e = Entry(building_, &slot);
  e->creator_slot.store(6);
  ExpectProblem(true, {("object slot " + std::to_string(slot)).c_str(),
                       "built by client 6"});
  Restore();
  e->creator_slot.store(60000);
  ExpectProblem(true, {"built by client 60000"});
}

// ------------------------------------------------------------ allocator

TEST_F(CheckTest, SpanKindInvalid) {
  const uint64_t span = Entry(small_a_)->data_offset.load() / core::kSpanSize;
  core::SpanMeta* sp = r().span(span);
  sp->state.store((sp->state.load() & ~uint64_t{0xff}) | 0x7f);
  ExpectAlways({("span " + std::to_string(span)).c_str(), "invalid kind"});
  ExpectAlways({"is not a block of class"});
}

TEST_F(CheckTest, SpanClassInvalid) {
  const uint64_t span = Entry(small_a_)->data_offset.load() / core::kSpanSize;
  core::SpanMeta* sp = r().span(span);
  const uint64_t st = sp->state.load();
  sp->state.store(core::MakeSpanState(core::SpanCountOf(st), 200, core::kSpanActive,
                                      core::SpanFreesOf(st)));
  ExpectAlways({("span " + std::to_string(span)).c_str(), "invalid class"});
  ExpectAlways({"is not a block of class"});
}

// A live store for the tests that damage an entry while clients use it:
// the store, a client, the region through that client's mapping.
struct LiveStore {
  LiveStore() {
    const StoreOptions o = SmallStoreOptions(int64_t{4} << 20);
    ok = Monitor::Start(o, &monitor).ok() && Client::Connect(o.socket_path, &client).ok();
  }
  core::Region region() const {
    return core::Region(const_cast<uint8_t*>(client->region_base()),
                        static_cast<uint64_t>(client->region_size()));
  }
  // The entry of the first sealed object in the table, or nullptr.
  core::ObjectEntry* FirstSealedEntry() const {
    const core::Region r = region();
    for (uint32_t s = 0; s < r.num_obj_slots(); ++s) {
      if (core::StateOf(r.entry(s)->state.load()) == core::kObjSealed) return r.entry(s);
    }
    return nullptr;
  }
  std::unique_ptr<Monitor> monitor;
  std::unique_ptr<Client> client;
  bool ok = false;
};

// A span class damaged while the store serves (a buggy client scribbling):
// Stats, ListObjects and a delete that frees into the span must not crash
// (class 231 once divided by zero, 232..255 shifted past 64 bits, and the
// hint table was indexed past its 32 classes). Found in review.
TEST(DamagedSpanClassTest, LiveStoreDoesNotCrash) {
  LiveStore live;
  ASSERT_TRUE(live.ok);
  Client* c = live.client.get();
  const ObjectId a = MakeId(8, 1), b = MakeId(8, 2);
  for (const ObjectId& id : {a, b}) {
    MutableBuffer mb;
    GLINT_ASSERT_OK(c->BuildObject(id, 100, &mb));
    GLINT_ASSERT_OK(mb.Seal());
  }
  const core::Region r = live.region();
  core::ObjectEntry* e = live.FirstSealedEntry();
  ASSERT_NE(e, nullptr);
  core::SpanMeta* sp = r.span(e->data_offset.load() / core::kSpanSize);
  const uint64_t good = sp->state.load();
  for (uint32_t cls : {231u, 232u, 255u, 32u}) {
    sp->state.store(core::MakeSpanState(core::SpanCountOf(good), cls, core::kSpanActive,
                                        core::SpanFreesOf(good)));
    StoreStats st;
    GLINT_EXPECT_OK(c->Stats(&st));
    std::vector<ObjectInfo> all;
    GLINT_EXPECT_OK(c->ListObjects(&all));
    EXPECT_FALSE(CheckRegion(r, false).ok()) << "class " << cls << " not reported";
  }
  // Freeing into the damaged span: defined behaviour, nothing written
  // outside the region's tables.
  GLINT_EXPECT_OK(c->Delete(a));
  GLINT_EXPECT_OK(c->Delete(b));
  StoreStats st;
  GLINT_EXPECT_OK(c->Stats(&st));
}

// An entry whose name/metadata block offset was damaged to near 2^64 (a
// buggy client scribbling): offset + size wrapped below the heap size and
// passed the bounds checks, so a look-up by name, GetObjectInfo and
// GetMetadata read up to 4 GiB before the heap (found in review).
TEST(DamagedInfoBlockTest, LiveStoreReadsNothingOutsideTheHeap) {
  LiveStore live;
  ASSERT_TRUE(live.ok);
  Client* c = live.client.get();
  const ObjectId a = MakeId(9, 1);
  MutableBuffer mb;
  GLINT_ASSERT_OK(c->BuildObject(a, 10, &mb, "named", {{"k", "v"}}));
  GLINT_ASSERT_OK(mb.Seal());
  const core::Region r = live.region();
  core::ObjectEntry* e = live.FirstSealedEntry();
  ASSERT_NE(e, nullptr);
  const uint64_t good_off = e->info_offset.load();
  const uint32_t good_size = e->info_size.load();
  e->info_size.store(uint32_t{1} << 31);
  e->info_offset.store(~uint64_t{0} - (uint64_t{1} << 31) + 1);  // heap - 2 GiB
  Buffer b;
  EXPECT_EQ(c->GetObjectByName("named", &b, 0).code(), StatusCode::kTimedOut);
  ObjectInfo info;
  GLINT_EXPECT_OK(c->GetObjectInfo(a, &info));
  EXPECT_EQ(info.name, "");
  std::vector<ObjectInfo> all;
  GLINT_EXPECT_OK(c->ListObjects(&all));
  EXPECT_EQ(c->GetMetadata(a, "k", &b).code(), StatusCode::kCorrupt);
  EXPECT_FALSE(CheckRegion(r, false).ok());
  e->info_offset.store(good_off);
  e->info_size.store(good_size);
  GLINT_EXPECT_OK(c->GetMetadata(a, "k", &b));
  b.Release();
  GLINT_EXPECT_OK(c->Delete(a));
  EXPECT_TRUE(CheckRegion(r, true).ok());
}

TEST_F(CheckTest, SpanCountWrong) {
  const uint64_t span = Entry(small_a_)->data_offset.load() / core::kSpanSize;
  core::SpanMeta* sp = r().span(span);
  sp->state.fetch_add(core::kSpanCountOne);
  ExpectProblem(true, {("span " + std::to_string(span)).c_str(), "reserved blocks"});
  Restore();
  sp->state.fetch_add(0xf000 * core::kSpanCountOne);
  ExpectAlways({("span " + std::to_string(span)).c_str(), "more blocks than it has"});
}

TEST_F(CheckTest, SpanFreeButOwned) {
  const uint64_t span = Entry(mid_)->data_offset.load() / core::kSpanSize;
  r().span(span)->state.store(core::MakeSpanState(0, 0, core::kSpanFree));
  ExpectAlways({"is not a block of class", ("span " + std::to_string(span)).c_str()});
  // Its pages are taken, by no object and no span.
  ExpectProblem(true, {("page " + std::to_string(span * core::kPagesPerSpan)).c_str(),
                       "no object or span owns it"});
}

TEST_F(CheckTest, SpanBlockBitClearedUnderObject) {
  uint32_t slot;
  const uint64_t off = Entry(small_b_, &slot)->data_offset.load();
  const uint64_t span = off / core::kSpanSize;
  const uint64_t blk = (off % core::kSpanSize) / alloc::ClassSize(alloc::SizeClassOf(kSmallSize));
  r().span(span)->bits[blk / 64].fetch_and(~(uint64_t{1} << (blk % 64)));
  ExpectAlways({("object slot " + std::to_string(slot) + " payload").c_str(),
                "is a free block"});
}

TEST_F(CheckTest, PageBitsClearedUnderObject) {
  uint32_t slot;
  const uint64_t page = Entry(large_a_, &slot)->data_offset.load() / core::kPageSize + 2;
  r().page_bitmap()[page / 64].fetch_and(~(uint64_t{1} << (page % 64)));
  ExpectAlways({("object slot " + std::to_string(slot) + " payload").c_str(),
                ("page " + std::to_string(page)).c_str(), "which is free"});
  // The pages of an active span.
  Restore();
  const uint64_t span = Entry(small_a_)->data_offset.load() / core::kSpanSize;
  const uint64_t p = span * core::kPagesPerSpan + 5;
  r().page_bitmap()[p / 64].fetch_and(~(uint64_t{1} << (p % 64)));
  ExpectAlways({("span " + std::to_string(span)).c_str(), "pages are free"});
}

TEST_F(CheckTest, LeakedPage) {
  uint64_t page = h()->num_pages;
  for (uint64_t p = 0; p < h()->num_pages; ++p) {
    if ((r().page_bitmap()[p / 64].load() >> (p % 64) & 1) == 0) {
      page = p;
      break;
    }
  }
  ASSERT_LT(page, h()->num_pages);
  r().page_bitmap()[page / 64].fetch_or(uint64_t{1} << (page % 64));
  ExpectProblem(true, {("page " + std::to_string(page)).c_str(), "no object or span"});
  EXPECT_TRUE(CheckRegion(r(), false).ok()) << "a live store may be allocating it";
}

TEST_F(CheckTest, LeakedBlock) {
  const uint64_t span = Entry(small_a_)->data_offset.load() / core::kSpanSize;
  core::SpanMeta* sp = r().span(span);
  const uint32_t cls = alloc::SizeClassOf(kSmallSize);
  uint32_t blk = alloc::BlocksPerSpan(cls);
  for (uint32_t b = 0; b < alloc::BlocksPerSpan(cls); ++b) {
    if ((sp->bits[b / 64].load() >> (b % 64) & 1) == 0) {
      blk = b;
      break;
    }
  }
  ASSERT_LT(blk, alloc::BlocksPerSpan(cls));
  sp->bits[blk / 64].fetch_or(uint64_t{1} << (blk % 64));
  sp->state.fetch_add(core::kSpanCountOne);  // counted too: only the leak is wrong
  const std::string off = std::to_string(span * core::kSpanSize + blk * alloc::ClassSize(cls));
  ExpectProblem(true, {("heap offset " + off).c_str(), "no object owns it"});
  EXPECT_TRUE(CheckRegion(r(), false).ok()) << "a live store may be allocating it";
}

// ------------------------------------------------------------ names

TEST_F(CheckTest, NameEntryPointsOutOfRange) {
  uint32_t slot;
  const uint32_t ns = Entry(small_a_, &slot)->name_slot.load();
  ASSERT_NE(ns, core::kNoSlot);
  for (uint32_t bad : {static_cast<uint32_t>(r().num_obj_slots()), 0x7fffffffu}) {
    Restore();
    r().name_entry(ns)->obj_slot.store(bad);
    ExpectAlways({("name slot " + std::to_string(ns)).c_str(), "out of range"});
  }
  // Pointing at another, valid slot.
  Restore();
  uint32_t other;
  Entry(mid_, &other);
  r().name_entry(ns)->obj_slot.store(other);
  ExpectAlways({("object slot " + std::to_string(slot)).c_str(), "points elsewhere"});
  ExpectProblem(true, {("name slot " + std::to_string(ns)).c_str(), "does not name it"});
}

TEST_F(CheckTest, EntryNamesSlotOutOfRange) {
  uint32_t slot;
  core::ObjectEntry* e = Entry(large_a_, &slot);
  e->name_slot.store(0x7ffffff0u);
  ExpectAlways({("object slot " + std::to_string(slot)).c_str(), "out of range"});
}

TEST_F(CheckTest, NamedEntryWithoutName) {
  uint32_t slot;
  core::ObjectEntry* e = Entry(large_a_, &slot);
  const uint32_t ns = e->name_slot.load();
  e->name_slot.store(core::kNoSlot);
  ExpectAlways({("object slot " + std::to_string(slot)).c_str(), "no name slot"});
  // Its name slot not taken.
  Restore();
  SetUsed(&core::Region::name_bucket, ns, false);
  ExpectAlways({("name slot " + std::to_string(ns)).c_str(), "is not taken"});
}

TEST_F(CheckTest, NameSlotTakenButUnbound) {
  const uint32_t ns = 5 * core::kSlotsPerBucket + 7;
  ASSERT_EQ(r().name_entry(ns)->obj_slot.load(), core::kNoSlot);
  SetUsed(&core::Region::name_bucket, ns, true);
  ExpectProblem(true, {("name slot " + std::to_string(ns)).c_str(), "unbound"});
}

// ------------------------------------------------------------ clients, waits

TEST_F(CheckTest, ClientStateInvalid) {
  r().client(5)->state.store(77);
  ExpectAlways({"client slot 5", "state 77"});
}

TEST_F(CheckTest, ClientLogRecordInUse) {
  const uint32_t c = static_cast<uint32_t>(client_->client_slot());
  r().record(c, 3)->op.store(core::kOpBuild);
  ExpectProblem(true, {("client slot " + std::to_string(c)).c_str(), "log record 3",
                       "in use"});
  // Any field of a record, of any client slot, registered or not.
  for (uint32_t field = 0; field < 6; ++field) {
    Restore();
    core::OpRecord* rec = r().record(7, core::kRecordsPerClient - 1);
    switch (field) {
      case 0: rec->touch.store(3); break;
      case 1: rec->cand.off1.store(65); break;
      case 2: rec->cand_pages.off1.store(1); break;
      case 3: rec->owned[1].off1.store(4097); break;
      case 4: rec->cand_name.store(2); break;
      default: rec->wait_bucket.store(9); break;
    }
    // Slot 7 is free: a record in use there is damage even on a live store.
    ExpectAlways({"client slot 7", "log record 29", "in use", "free client slot"});
  }
}

// Recovery acts on what a record names: every field must name something
// that exists, on a live store too.
TEST_F(CheckTest, ClientLogRecordNamesWhatDoesNotExist) {
  const uint32_t c = static_cast<uint32_t>(client_->client_slot());
  const uint64_t heap = h()->heap_size;
  for (int field = 0; field < 8; ++field) {
    Restore();
    core::OpRecord* rec = r().record(c, 4);
    const char* want = "";
    switch (field) {
      case 0: rec->op.store(99); want = "unknown operation 99"; break;
      case 1:
        rec->obj_slot.store(static_cast<uint32_t>(r().num_obj_slots()));
        want = "past the table";
        break;
      case 2:
        rec->cand_obj.store(static_cast<uint32_t>(r().num_obj_slots()) + 1);
        want = "claiming an object slot past the table";
        break;
      case 3: rec->cand_name.store(0xffffff); want = "past the name table"; break;
      case 4:
        rec->touch.store(static_cast<uint32_t>(h()->num_spans) + 1);
        want = "span past the span table";
        break;
      case 5: rec->wait_bucket.store(core::kNumWaitBuckets + 1); want = "bucket"; break;
      case 6: core::SetBlockRef(rec->cand, heap, 64); want = "outside the heap"; break;
      default:
        core::SetBlockRef(rec->owned[1], heap - 4096, 8192);
        want = "outside the heap";
        break;
    }
    ExpectAlways({("client slot " + std::to_string(c)).c_str(), "log record 4", want});
  }
}

// A committed object must be found by its id and by its name.
TEST_F(CheckTest, EntryIdOrNameBytesDamaged) {
  uint32_t slot;
  core::ObjectEntry* e = Entry(small_a_, &slot);
  e->id[1].store(e->id[1].load() ^ 0x5a5a);
  ExpectAlways({("object slot " + std::to_string(slot)).c_str(), "by its id"});
  Restore();
  e = Entry(small_a_, &slot);
  r().heap()[e->info_offset.load()] ^= 0x20;  // the first byte of its name
  ExpectAlways({("object slot " + std::to_string(slot)).c_str(), "by its name"});
}

TEST_F(CheckTest, WaitBucketSleepers) {
  r().wait_bucket(1000)->waiters.store(2);
  ExpectProblem(true, {"wait bucket 1000", "2 sleepers"});
  EXPECT_TRUE(CheckRegion(r(), false).ok()) << "a live store may have sleepers";
}

// ------------------------------------------------------------ whole sections

// Every metadata section overwritten with all-ones and with random bytes:
// problems reported, no crash.
TEST_F(CheckTest, WholeSectionsOverwritten) {
  struct Section {
    const char* name;
    uint64_t off, len;
  };
  const core::RegionHeader& hd = *h();
  const std::vector<Section> sections = {
      {"clients", hd.clients_offset, uint64_t{hd.max_clients} * core::kClientStride},
      {"object buckets", hd.obj_buckets_offset, hd.obj_num_buckets * 64},
      {"object entries", hd.obj_entries_offset,
       hd.obj_num_buckets * core::kSlotsPerBucket * sizeof(core::ObjectEntry)},
      {"name buckets", hd.name_buckets_offset, hd.name_num_buckets * 64},
      {"name entries", hd.name_entries_offset,
       hd.name_num_buckets * core::kSlotsPerBucket * sizeof(core::NameEntry)},
      {"page bitmap", hd.page_bitmap_offset, hd.page_bitmap_words * 8},
      {"span table", hd.span_table_offset, hd.num_spans * sizeof(core::SpanMeta)},
  };
  std::mt19937_64 rng(42);
  for (const Section& s : sections) {
    for (int fill = 0; fill < 2; ++fill) {
      Restore();
      for (uint64_t i = 0; i < s.len; ++i) {
        copy_->base()[s.off + i] = fill == 0 ? 0xff : static_cast<uint8_t>(rng());
      }
      // A live store may have every page taken: the quiescent check must
      // see each; the live one must only survive.
      const CheckReport live = CheckRegion(r(), false);
      EXPECT_LE(live.problems.size(), 100u);
      const CheckReport quiet = CheckRegion(r(), true);
      EXPECT_FALSE(quiet.ok()) << s.name << " fill " << fill;
      EXPECT_LE(quiet.problems.size(), 100u);
    }
  }
}

// 2,000 rounds of random byte changes over the metadata (never the heap),
// aimed at the bytes in use; the checker must survive each (ASan and UBSan
// catch an out-of-bounds read or an undefined shift) and see most.
TEST_F(CheckTest, RandomByteFlipsNeverCrash) {
  // Where the populated store's state is: the header, our client slot and
  // its log, the taken entries and their buckets, the names, the page
  // bitmap, the spans in use, a few wait buckets; and anywhere at all.
  struct Range {
    uint64_t off, len;
  };
  const core::RegionHeader& hd = *h();
  std::vector<Range> ranges = {
      {0, sizeof(core::RegionHeader)},
      {hd.clients_offset + uint64_t(client_->client_slot()) * core::kClientStride,
       core::kClientStride},
      {hd.obj_buckets_offset, hd.obj_num_buckets * 64},
      {hd.name_buckets_offset, hd.name_num_buckets * 64},
      {hd.page_bitmap_offset, hd.page_bitmap_words * 16},
      {hd.waits_offset, 64 * 16},
      {0, hd.heap_offset},
  };
  for (uint32_t s = 0; s < r().num_obj_slots(); ++s) {
    const auto st = core::StateOf(r().entry(s)->state.load());
    if (st == core::kObjEmpty) continue;
    ranges.push_back({hd.obj_entries_offset + s * sizeof(core::ObjectEntry),
                      sizeof(core::ObjectEntry)});
    const uint32_t ns = r().entry(s)->name_slot.load();
    if (ns != core::kNoSlot) {
      ranges.push_back({hd.name_entries_offset + ns * sizeof(core::NameEntry),
                        sizeof(core::NameEntry)});
    }
  }
  for (uint64_t i = 0; i < hd.num_spans; ++i) {
    if (core::SpanKindOf(r().span(i)->state.load()) != core::kSpanFree) {
      ranges.push_back({hd.span_table_offset + i * sizeof(core::SpanMeta),
                        sizeof(core::SpanMeta)});
    }
  }
  const uint64_t heap_offset = hd.heap_offset;  // hd itself gets flipped
  std::mt19937_64 rng(20240611);
  int seen = 0;
  const int kRounds = 2000;
  std::vector<std::pair<uint64_t, uint8_t>> undo;
  for (int round = 0; round < kRounds; ++round) {
    const int flips = 1 + static_cast<int>(rng() % 4);
    undo.clear();
    for (int f = 0; f < flips; ++f) {
      const Range& rg = ranges[rng() % ranges.size()];
      const uint64_t off = rg.off + rng() % rg.len;
      ASSERT_LT(off, heap_offset);
      uint8_t& byte = copy_->base()[off];
      undo.emplace_back(off, byte);
      switch (rng() % 3) {
        case 0: byte ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 1: byte = static_cast<uint8_t>(rng()); break;
        default: byte = (rng() & 1) ? 0xff : 0x00; break;
      }
    }
    const CheckReport live = CheckRegion(r(), false);
    const CheckReport quiet = CheckRegion(r(), true);
    EXPECT_LE(quiet.problems.size(), 100u);
    if (!quiet.ok()) ++seen;
    // Restore the flipped bytes, last first, so the copy is sound again.
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) copy_->base()[it->first] = it->second;
    (void)live;
  }
  ASSERT_EQ(std::memcmp(copy_->base(), snapshot_.data(), size_), 0);
  std::printf("%d of %d rounds of byte changes reported as problems\n", seen, kRounds);
  EXPECT_GT(seen, kRounds / 10);
}

}  // namespace
}  // namespace glint::testing
