// Copyright (c) glint authors.
//
// The public API in one process: Status, ObjectId, the object life cycle,
// every bad input and its code, Stats, connection errors and the Monitor.

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <random>
#include <set>
#include <thread>
#include <unordered_set>
#include <vector>

#include "alloc/heap.h"
#include "core/check.h"
#include "core/object_table.h"
#include "core/protocol.h"
#include "core/region.h"
#include "core/store.h"
#include "glint/glint.h"
#include "tests/test_util.h"

namespace glint::testing {
namespace {

using std::chrono::milliseconds;

int64_t NowMicrosRealtime() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000;
}

int64_t Alloc(int64_t size) {
  return static_cast<int64_t>(alloc::AllocSize(static_cast<uint64_t>(size)));
}

// ================================================================ Status

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_TRUE(s.message().empty());
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_TRUE(Status::OK().ok());
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s = Status::NotFound("no such thing");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "no such thing");
  EXPECT_EQ(s.ToString(), "NotFound: no such thing");
  Status c = s;  // copy
  EXPECT_EQ(c.code(), StatusCode::kNotFound);
  EXPECT_EQ(c.message(), "no such thing");
  Status m = std::move(c);
  EXPECT_EQ(m.code(), StatusCode::kNotFound);
  Status a;
  a = s;
  EXPECT_EQ(a.ToString(), s.ToString());
  a = Status::OK();
  EXPECT_TRUE(a.ok());
}

TEST(StatusTest, EveryFactoryHasItsCodeAndName) {
  struct Case {
    Status s;
    StatusCode code;
    const char* name;
  };
  const Case cases[] = {
      {Status::InvalidArgument("m"), StatusCode::kInvalidArgument, "InvalidArgument"},
      {Status::NotFound("m"), StatusCode::kNotFound, "NotFound"},
      {Status::AlreadyExists("m"), StatusCode::kAlreadyExists, "AlreadyExists"},
      {Status::OutOfMemory("m"), StatusCode::kOutOfMemory, "OutOfMemory"},
      {Status::TimedOut("m"), StatusCode::kTimedOut, "TimedOut"},
      {Status::Aborted("m"), StatusCode::kAborted, "Aborted"},
      {Status::TooManyClients("m"), StatusCode::kTooManyClients, "TooManyClients"},
      {Status::NotConnected("m"), StatusCode::kNotConnected, "NotConnected"},
      {Status::Incompatible("m"), StatusCode::kIncompatible, "Incompatible"},
      {Status::Corrupt("m"), StatusCode::kCorrupt, "Corrupt"},
      {Status::PermissionDenied("m"), StatusCode::kPermissionDenied, "PermissionDenied"},
      {Status::IOError("m"), StatusCode::kIOError, "IOError"},
      {Status::FailedPrecondition("m"), StatusCode::kFailedPrecondition,
       "FailedPrecondition"},
  };
  std::set<std::string> names;
  for (const Case& c : cases) {
    EXPECT_FALSE(c.s.ok());
    EXPECT_EQ(c.s.code(), c.code);
    EXPECT_STREQ(StatusCodeName(c.code), c.name);
    EXPECT_EQ(c.s.ToString(), std::string(c.name) + ": m");
    names.insert(StatusCodeName(c.code));
  }
  EXPECT_EQ(names.size(), std::size(cases));
  EXPECT_STREQ(StatusCodeName(StatusCode::kOk), "OK");
}

// ================================================================ ObjectId

TEST(ObjectIdTest, DefaultIsAllZero) {
  ObjectId id;
  for (size_t i = 0; i < ObjectId::kSize; ++i) EXPECT_EQ(id.data()[i], 0);
  EXPECT_EQ(id.hex(), std::string(32, '0'));
}

TEST(ObjectIdTest, FromBinary) {
  const std::string bin = "0123456789abcdef";
  ObjectId id = ObjectId::FromBinary(bin);
  EXPECT_EQ(id.binary(), bin);
  EXPECT_EQ(std::memcmp(id.data(), bin.data(), 16), 0);
  EXPECT_EQ(id.hex(), "30313233343536373839616263646566");
  // Any other size gives the all-zero id.
  EXPECT_EQ(ObjectId::FromBinary("short"), ObjectId());
  EXPECT_EQ(ObjectId::FromBinary(std::string(17, 'x')), ObjectId());
  EXPECT_EQ(ObjectId::FromBinary(""), ObjectId());
}

TEST(ObjectIdTest, FromBinaryCheckedTakesExactlySixteenBytes) {
  const std::string bin = "0123456789abcdef";
  ObjectId id;
  ASSERT_TRUE(ObjectId::FromBinary(bin, &id));
  EXPECT_EQ(id.binary(), bin);
  EXPECT_EQ(id, ObjectId::FromBinary(bin));
  // Sixteen zero bytes are an id like any other.
  ObjectId zero = ObjectId::FromBinary("ABCDEFGHIJKLMNOP");
  ASSERT_TRUE(ObjectId::FromBinary(std::string(16, '\0'), &zero));
  EXPECT_EQ(zero, ObjectId());
  // Any other size: false, and *out keeps its value (not the zero id).
  const ObjectId orig = ObjectId::FromBinary("ABCDEFGHIJKLMNOP");
  for (const std::string& bad :
       {std::string(), std::string("short"), std::string(15, 'x'),
        std::string(17, 'x'), std::string(32, '0')}) {
    ObjectId out = orig;
    EXPECT_FALSE(ObjectId::FromBinary(bad, &out)) << bad.size();
    EXPECT_EQ(out, orig) << bad.size();
  }
}

TEST(ObjectIdTest, FromHexValid) {
  ObjectId id;
  ASSERT_TRUE(ObjectId::FromHex("000102030405060708090a0b0c0d0e0f", &id));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(id.data()[i], i);
  ObjectId upper;
  ASSERT_TRUE(ObjectId::FromHex("FFFEFDFCFBFAF9F8F7F6F5F4F3F2F1F0", &upper));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(upper.data()[i], 255 - i);
  ObjectId mixed;
  ASSERT_TRUE(ObjectId::FromHex("aBcDeF0123456789AbCdEf0123456789", &mixed));
  EXPECT_EQ(mixed.hex(), "abcdef0123456789abcdef0123456789");
}

TEST(ObjectIdTest, FromHexInvalidLeavesOutUnchanged) {
  const ObjectId orig = ObjectId::FromBinary("ABCDEFGHIJKLMNOP");
  const char* bad[] = {
      "",
      "00",
      "000102030405060708090a0b0c0d0e0",    // 31 digits
      "000102030405060708090a0b0c0d0e0f0",  // 33 digits
      "000102030405060708090a0b0c0d0e0g",   // not hex
      "000102030405060708090a0b0c0d0e 0",
      "0x0102030405060708090a0b0c0d0e0f",
      "-00102030405060708090a0b0c0d0e0f",
  };
  for (const char* h : bad) {
    ObjectId out = orig;
    EXPECT_FALSE(ObjectId::FromHex(h, &out)) << h;
    EXPECT_EQ(out, orig) << h;
  }
  // An embedded NUL is not a hex digit either.
  ObjectId out = orig;
  EXPECT_FALSE(ObjectId::FromHex(std::string_view("0001020304050607\0" "8090a0b0c0d0e0f", 32),
                                 &out));
  EXPECT_EQ(out, orig);
}

TEST(ObjectIdTest, HexRoundTrip) {
  for (int i = 0; i < 1000; ++i) {
    const ObjectId id = ObjectId::Random();
    const std::string h = id.hex();
    ASSERT_EQ(h.size(), 32u);
    for (char c : h) {
      EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << h;
    }
    ObjectId back;
    ASSERT_TRUE(ObjectId::FromHex(h, &back));
    EXPECT_EQ(back, id);
    EXPECT_EQ(ObjectId::FromBinary(id.binary()), id);
  }
}

TEST(ObjectIdTest, RandomDiffers) {
  std::set<ObjectId> seen;
  for (int i = 0; i < 10000; ++i) {
    EXPECT_TRUE(seen.insert(ObjectId::Random()).second);
  }
  EXPECT_NE(ObjectId::Random(), ObjectId());
}

TEST(ObjectIdTest, ComparisonOperators) {
  const ObjectId a = ObjectId::FromBinary(std::string(15, '\0') + "\x01");
  const ObjectId b = ObjectId::FromBinary(std::string(15, '\0') + "\x02");
  const ObjectId c = ObjectId::FromBinary("\x01" + std::string(15, '\0'));
  EXPECT_TRUE(a == a);
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(a != b);
  EXPECT_FALSE(a != a);
  EXPECT_TRUE(a < b);
  EXPECT_FALSE(b < a);
  EXPECT_FALSE(a < a);
  // Lexicographic over the bytes: the first byte counts most.
  EXPECT_TRUE(b < c);
  EXPECT_TRUE(a < c);
}

TEST(ObjectIdTest, HashUsesAllSixteenBytes) {
  std::hash<ObjectId> h;
  // Two ids that differ only in one byte hash differently, for every byte.
  for (int byte = 0; byte < 16; ++byte) {
    ObjectId x, y;
    y.mutable_data()[byte] = 1;
    EXPECT_NE(h(x), h(y)) << "byte " << byte;
  }
  // Every value of the last byte gives its own hash.
  std::unordered_set<size_t> hashes;
  for (int v = 0; v < 256; ++v) {
    ObjectId id = ObjectId::FromBinary("same-prefix-....");
    id.mutable_data()[15] = static_cast<uint8_t>(v);
    hashes.insert(h(id));
  }
  EXPECT_EQ(hashes.size(), 256u);
  // Stable, and the same hash the store uses for its table.
  const ObjectId r = ObjectId::Random();
  EXPECT_EQ(h(r), h(r));
  EXPECT_EQ(r.Hash(), core::IdHash(r.data()));
  // Usable as an unordered_set key.
  std::unordered_set<ObjectId> set;
  for (int i = 0; i < 1000; ++i) set.insert(MakeId(7, i));
  EXPECT_EQ(set.size(), 1000u);
  EXPECT_TRUE(set.count(MakeId(7, 999)));
}

// ================================================================ objects

using ClientApiTest = StoreTest;

TEST_F(ClientApiTest, BuildSealGetRoundTrip) {
  const ObjectId id = ObjectId::Random();
  MutableBuffer mb;
  EXPECT_FALSE(mb.building());
  GLINT_ASSERT_OK(client_->BuildObject(id, 1000, &mb));
  EXPECT_TRUE(mb.building());
  EXPECT_FALSE(mb.sealed());
  EXPECT_EQ(mb.size(), 1000);
  EXPECT_EQ(mb.id(), id);
  ASSERT_NE(mb.mutable_data(), nullptr);
  EXPECT_EQ(mb.data(), mb.mutable_data());
  EXPECT_EQ(mb.mutable_data(10), mb.mutable_data() + 10);
  for (int i = 0; i < 1000; ++i) mb.mutable_data()[i] = static_cast<uint8_t>(i * 7);
  GLINT_ASSERT_OK(mb.Seal());
  EXPECT_TRUE(mb.sealed());
  EXPECT_FALSE(mb.building());
  EXPECT_EQ(mb.size(), 1000);

  Buffer b;
  EXPECT_FALSE(b.valid());
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_EQ(b.size(), 0);
  GLINT_ASSERT_OK(client_->GetObject(id, &b));
  ASSERT_TRUE(b.valid());
  EXPECT_EQ(b.size(), 1000);
  EXPECT_EQ(b.id(), id);
  EXPECT_EQ(b.data(7), b.data() + 7);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(b.data()[i], static_cast<uint8_t>(i * 7)) << i;
  }
  // A second get of the same object sees the same bytes in place.
  Buffer b2;
  GLINT_ASSERT_OK(client_->GetObject(id, &b2, 0));
  EXPECT_EQ(b2.data(), b.data());

  // Moving a Buffer moves the reference.
  Buffer moved(std::move(b));
  EXPECT_FALSE(b.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(moved.valid());
  EXPECT_EQ(moved.data(), b2.data());
  Buffer assigned;
  assigned = std::move(moved);
  EXPECT_TRUE(assigned.valid());
  assigned.Release();
  EXPECT_FALSE(assigned.valid());
  EXPECT_EQ(assigned.data(), nullptr);
  assigned.Release();  // idempotent
  b2.Release();
  GLINT_EXPECT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, SizesAcrossClasses) {
  const int64_t sizes[] = {1,     63,    64,    65,    1000,       1024,
                           1025,  4096,  16383, 16384, 16385,      65536,
                           100000, 1 << 20, (1 << 20) + 1, 5 << 20};
  std::vector<ObjectId> ids;
  for (int64_t size : sizes) {
    const ObjectId id = ObjectId::Random();
    ASSERT_TRUE(Put(id, size)) << size;
    ids.push_back(id);
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    Buffer b;
    GLINT_ASSERT_OK(client_->GetObject(ids[i], &b, 0));
    ASSERT_EQ(b.size(), sizes[i]);
    EXPECT_EQ(CheckPattern(b.data(), b.size(), SeedOf(ids[i])), -1) << sizes[i];
  }
  for (const ObjectId& id : ids) GLINT_EXPECT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, EmptyObjects) {
  const ObjectId id = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, 0, &mb, "empty-one"));
  EXPECT_TRUE(mb.building());
  EXPECT_EQ(mb.size(), 0);
  GLINT_ASSERT_OK(mb.Seal());
  EXPECT_TRUE(client_->Contains(id));
  Buffer b;
  GLINT_ASSERT_OK(client_->GetObject(id, &b, 0));
  EXPECT_TRUE(b.valid());
  EXPECT_EQ(b.size(), 0);
  EXPECT_EQ(b.id(), id);
  Buffer byname;
  GLINT_ASSERT_OK(client_->GetObjectByName("empty-one", &byname, 0));
  EXPECT_EQ(byname.size(), 0);
  ObjectInfo info;
  GLINT_ASSERT_OK(client_->GetObjectInfo(id, &info));
  EXPECT_EQ(info.size, 0);
  EXPECT_TRUE(info.sealed);
  b.Release();
  byname.Release();
  GLINT_EXPECT_OK(client_->Delete(id));
  // Many empty objects without name take no heap at all.
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(Put(MakeId(1, i), 0));
  EXPECT_EQ(GetStats(client_.get()).bytes_in_use, 0);
  EXPECT_EQ(GetStats(client_.get()).objects_sealed, 100);
  for (int i = 0; i < 100; ++i) GLINT_EXPECT_OK(client_->Delete(MakeId(1, i)));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, PayloadAlignment) {
  std::vector<std::pair<ObjectId, int64_t>> objs;
  for (int64_t size = 1; size <= 64 * 1024; size = size * 3 / 2 + 1) {
    for (int rep = 0; rep < 3; ++rep) {
      const ObjectId id = ObjectId::Random();
      MutableBuffer mb;
      GLINT_ASSERT_OK(client_->BuildObject(id, size, &mb));
      const auto addr = reinterpret_cast<uintptr_t>(mb.data());
      EXPECT_EQ(addr % kPayloadAlignment, 0u) << "size " << size;
      if (size > 16 * 1024) {
        EXPECT_EQ(addr % kLargePayloadAlignment, 0u) << "size " << size;
      }
      GLINT_ASSERT_OK(mb.Seal());
      Buffer b;
      GLINT_ASSERT_OK(client_->GetObject(id, &b, 0));
      EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kPayloadAlignment, 0u);
      objs.emplace_back(id, size);
    }
  }
  for (auto& [id, size] : objs) GLINT_EXPECT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, GetByName) {
  const ObjectId id = ObjectId::Random();
  ASSERT_TRUE(Put(id, 300, "my-object"));
  Buffer b;
  GLINT_ASSERT_OK(client_->GetObjectByName("my-object", &b, 0));
  EXPECT_EQ(b.id(), id);
  EXPECT_EQ(b.size(), 300);
  EXPECT_EQ(CheckPattern(b.data(), 300, SeedOf(id)), -1);
  Buffer by_id;
  GLINT_ASSERT_OK(client_->GetObject(id, &by_id, 0));
  EXPECT_EQ(by_id.data(), b.data());
  // Unknown names time out; bad names are invalid.
  Buffer none;
  GLINT_EXPECT_CODE(client_->GetObjectByName("my-objec", &none, 0),
                    StatusCode::kTimedOut);
  GLINT_EXPECT_CODE(client_->GetObjectByName("my-object2", &none, 20),
                    StatusCode::kTimedOut);
  GLINT_EXPECT_CODE(client_->GetObjectByName("", &none, 0),
                    StatusCode::kInvalidArgument);
  GLINT_EXPECT_CODE(client_->GetObjectByName(std::string(256, 'n'), &none, 0),
                    StatusCode::kInvalidArgument);
  EXPECT_FALSE(none.valid());
  // A name of 255 bytes is fine.
  const std::string long_name(255, 'L');
  const ObjectId id2 = ObjectId::Random();
  ASSERT_TRUE(Put(id2, 10, long_name));
  Buffer b2;
  GLINT_ASSERT_OK(client_->GetObjectByName(long_name, &b2, 0));
  EXPECT_EQ(b2.id(), id2);
  ObjectInfo info;
  GLINT_ASSERT_OK(client_->GetObjectInfo(id2, &info));
  EXPECT_EQ(info.name, long_name);
  // After delete, the name is free again and no longer found.
  b.Release();
  by_id.Release();
  GLINT_ASSERT_OK(client_->Delete(id));
  GLINT_EXPECT_CODE(client_->GetObjectByName("my-object", &none, 0),
                    StatusCode::kTimedOut);
  const ObjectId id3 = ObjectId::Random();
  ASSERT_TRUE(Put(id3, 5, "my-object"));
  GLINT_ASSERT_OK(client_->GetObjectByName("my-object", &b, 0));
  EXPECT_EQ(b.id(), id3);
}

// (Metadata without a name once ran memcpy from a null name.data(): UBSan
// stopped the ASan+UBSan build here; fixed in b67e930.)
TEST_F(ClientApiTest, Metadata) {
  const ObjectId id = ObjectId::Random();
  const std::string binary_value("\0\1\2\xff", 4);
  const Metadata md = {{"dtype", "float32"}, {"shape", "3x4"}, {"bin", binary_value},
                       {"empty", ""}};
  ASSERT_TRUE(Put(id, 48, "with-md", md));
  for (const auto& [k, v] : md) {
    Buffer value;
    GLINT_ASSERT_OK(client_->GetMetadata(id, k, &value));
    ASSERT_TRUE(value.valid());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(value.data()), value.size()), v)
        << k;
  }
  Buffer value;
  GLINT_EXPECT_CODE(client_->GetMetadata(id, "nope", &value), StatusCode::kNotFound);
  EXPECT_FALSE(value.valid());
  GLINT_EXPECT_CODE(client_->GetMetadata(id, "dtyp", &value), StatusCode::kNotFound);
  GLINT_EXPECT_CODE(client_->GetMetadata(ObjectId::Random(), "dtype", &value),
                    StatusCode::kNotFound);
  ObjectInfo info;
  GLINT_ASSERT_OK(client_->GetObjectInfo(id, &info));
  int64_t md_bytes = 0;
  for (const auto& [k, v] : md) md_bytes += static_cast<int64_t>(k.size() + v.size());
  EXPECT_EQ(info.metadata_size, md_bytes);
  EXPECT_EQ(info.name, "with-md");

  // Metadata without a name, and an object with neither.
  const ObjectId id2 = ObjectId::Random();
  ASSERT_TRUE(Put(id2, 0, {}, {{"k", "v"}}));
  GLINT_ASSERT_OK(client_->GetMetadata(id2, "k", &value));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(value.data()), value.size()), "v");
  GLINT_ASSERT_OK(client_->GetObjectInfo(id2, &info));
  EXPECT_EQ(info.metadata_size, 2);
  EXPECT_TRUE(info.name.empty());
  const ObjectId id3 = ObjectId::Random();
  ASSERT_TRUE(Put(id3, 8));
  GLINT_EXPECT_CODE(client_->GetMetadata(id3, "k", &value), StatusCode::kNotFound);
  GLINT_ASSERT_OK(client_->GetObjectInfo(id3, &info));
  EXPECT_EQ(info.metadata_size, 0);

  // A metadata Buffer holds the object: it outlives a Delete.
  GLINT_ASSERT_OK(client_->GetMetadata(id, "shape", &value));
  GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(value.data()), value.size()), "3x4");
  EXPECT_GT(GetStats(client_.get()).bytes_in_use, 0);
  value.Release();
  GLINT_EXPECT_OK(client_->Delete(id2));
  GLINT_EXPECT_OK(client_->Delete(id3));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, MetadataOfAnUnsealedObjectIsNotFound) {
  const ObjectId id = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, 8, &mb, {}, {{"k", "v"}}));
  Buffer value;
  GLINT_EXPECT_CODE(client_->GetMetadata(id, "k", &value), StatusCode::kNotFound);
  GLINT_ASSERT_OK(mb.Seal());
  GLINT_EXPECT_OK(client_->GetMetadata(id, "k", &value));
}

TEST_F(ClientApiTest, ObjectInfoFields) {
  const ObjectId id = ObjectId::Random();
  const int64_t before = NowMicrosRealtime();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, 777, &mb, "info-obj", {{"a", "bc"}}));
  ObjectInfo info;
  GLINT_ASSERT_OK(client_->GetObjectInfo(id, &info));
  EXPECT_EQ(info.id, id);
  EXPECT_EQ(info.name, "info-obj");
  EXPECT_EQ(info.size, 777);
  EXPECT_FALSE(info.sealed);
  EXPECT_EQ(info.construct_duration, -1);
  EXPECT_EQ(info.creator_id, getpid());
  EXPECT_EQ(info.metadata_size, 3);
  EXPECT_EQ(info.holders, 0);
  // create_time: µs since the epoch, near now (a coarse clock: allow slack).
  EXPECT_GT(info.create_time, before - 5 * 1000000);
  EXPECT_LT(info.create_time, NowMicrosRealtime() + 5 * 1000000);
  EXPECT_NE(info.creator_address.find(std::to_string(getpid())), std::string::npos)
      << info.creator_address;
  const int64_t create_time = info.create_time;

  std::this_thread::sleep_for(milliseconds(2));
  GLINT_ASSERT_OK(mb.Seal());
  GLINT_ASSERT_OK(client_->GetObjectInfo(id, &info));
  EXPECT_TRUE(info.sealed);
  EXPECT_GE(info.construct_duration, 0);
  EXPECT_EQ(info.create_time, create_time);
  EXPECT_EQ(info.holders, 0);

  // Holders counts clients, not Buffers.
  Buffer b1, b2;
  GLINT_ASSERT_OK(client_->GetObject(id, &b1, 0));
  GLINT_ASSERT_OK(client_->GetObjectInfo(id, &info));
  EXPECT_EQ(info.holders, 1);
  GLINT_ASSERT_OK(client_->GetObject(id, &b2, 0));
  GLINT_ASSERT_OK(client_->GetObjectInfo(id, &info));
  EXPECT_EQ(info.holders, 1);
  std::unique_ptr<Client> other;
  ASSERT_TRUE(Connect(&other));
  Buffer b3;
  GLINT_ASSERT_OK(other->GetObject(id, &b3, 0));
  GLINT_ASSERT_OK(client_->GetObjectInfo(id, &info));
  EXPECT_EQ(info.holders, 2);
  // Another client sees the same info.
  ObjectInfo info2;
  GLINT_ASSERT_OK(other->GetObjectInfo(id, &info2));
  EXPECT_EQ(info2.id, info.id);
  EXPECT_EQ(info2.name, info.name);
  EXPECT_EQ(info2.creator_address, info.creator_address);
  EXPECT_EQ(info2.creator_id, getpid());
  b1.Release();
  GLINT_ASSERT_OK(client_->GetObjectInfo(id, &info));
  EXPECT_EQ(info.holders, 2);
  b2.Release();
  GLINT_ASSERT_OK(client_->GetObjectInfo(id, &info));
  EXPECT_EQ(info.holders, 1);
  b3.Release();
  GLINT_ASSERT_OK(client_->GetObjectInfo(id, &info));
  EXPECT_EQ(info.holders, 0);

  GLINT_EXPECT_CODE(client_->GetObjectInfo(ObjectId::Random(), &info),
                    StatusCode::kNotFound);
  GLINT_ASSERT_OK(client_->Delete(id));
  GLINT_EXPECT_CODE(client_->GetObjectInfo(id, &info), StatusCode::kNotFound);
}

TEST_F(ClientApiTest, CreatorAddressDiffersBetweenClients) {
  std::unique_ptr<Client> other;
  ASSERT_TRUE(Connect(&other));
  const ObjectId a = ObjectId::Random(), b = ObjectId::Random();
  ASSERT_TRUE(Put(client_.get(), a, 1));
  ASSERT_TRUE(Put(other.get(), b, 1));
  ObjectInfo ia, ib;
  GLINT_ASSERT_OK(client_->GetObjectInfo(a, &ia));
  GLINT_ASSERT_OK(client_->GetObjectInfo(b, &ib));
  EXPECT_FALSE(ia.creator_address.empty());
  EXPECT_NE(ia.creator_address, ib.creator_address);
  EXPECT_EQ(ia.creator_id, ib.creator_id);
}

TEST_F(ClientApiTest, ListObjectsShowsUnsealedAsBuilding) {
  std::vector<ObjectInfo> list;
  GLINT_ASSERT_OK(client_->ListObjects(&list));
  EXPECT_TRUE(list.empty());
  const ObjectId sealed_id = ObjectId::Random(), building_id = ObjectId::Random();
  ASSERT_TRUE(Put(sealed_id, 10, "sealed-one"));
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(building_id, 20, &mb, "building-one"));
  GLINT_ASSERT_OK(client_->ListObjects(&list));
  ASSERT_EQ(list.size(), 2u);
  std::sort(list.begin(), list.end(),
            [](const ObjectInfo& x, const ObjectInfo& y) { return x.size < y.size; });
  EXPECT_EQ(list[0].id, sealed_id);
  EXPECT_TRUE(list[0].sealed);
  EXPECT_EQ(list[0].name, "sealed-one");
  EXPECT_EQ(list[1].id, building_id);
  EXPECT_FALSE(list[1].sealed);
  EXPECT_EQ(list[1].name, "building-one");
  EXPECT_EQ(list[1].construct_duration, -1);
  // The list replaces what the vector held.
  GLINT_ASSERT_OK(mb.Abort());
  GLINT_ASSERT_OK(client_->Delete(sealed_id));
  GLINT_ASSERT_OK(client_->ListObjects(&list));
  EXPECT_TRUE(list.empty());
}

TEST_F(ClientApiTest, ListObjectsManyObjects) {
  std::set<ObjectId> ids;
  for (int i = 0; i < 500; ++i) {
    const ObjectId id = MakeId(2, i);
    ASSERT_TRUE(Put(id, i));
    ids.insert(id);
  }
  std::vector<ObjectInfo> list;
  GLINT_ASSERT_OK(client_->ListObjects(&list));
  std::set<ObjectId> listed;
  for (const ObjectInfo& info : list) {
    EXPECT_TRUE(info.sealed);
    listed.insert(info.id);
  }
  EXPECT_EQ(listed, ids);
}

TEST_F(ClientApiTest, ContainsOnlySealedLiveObjects) {
  const ObjectId id = ObjectId::Random();
  EXPECT_FALSE(client_->Contains(id));
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, 10, &mb));
  EXPECT_FALSE(client_->Contains(id));
  GLINT_ASSERT_OK(mb.Seal());
  EXPECT_TRUE(client_->Contains(id));
  GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_FALSE(client_->Contains(id));
}

// ------------------------------------------------------------ bad input

TEST_F(ClientApiTest, NegativeSizeIsInvalid) {
  MutableBuffer mb;
  GLINT_EXPECT_CODE(client_->BuildObject(ObjectId::Random(), -1, &mb),
                    StatusCode::kInvalidArgument);
  GLINT_EXPECT_CODE(client_->BuildObject(ObjectId::Random(), INT64_MIN, &mb),
                    StatusCode::kInvalidArgument);
  EXPECT_FALSE(mb.building());
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, SizeBeyondCapacityIsInvalid) {
  const StoreStats st = GetStats(client_.get());
  ASSERT_GE(st.capacity, options_.capacity);
  MutableBuffer mb;
  const Status s = client_->BuildObject(ObjectId::Random(), st.capacity + 1, &mb);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_FALSE(s.message().empty());
  GLINT_EXPECT_CODE(client_->BuildObject(ObjectId::Random(), INT64_MAX, &mb),
                    StatusCode::kInvalidArgument);
  EXPECT_FALSE(mb.building());
  // The whole capacity in one object is fine on an empty store.
  const ObjectId whole = ObjectId::Random();
  GLINT_ASSERT_OK(client_->BuildObject(whole, st.capacity, &mb));
  mb.mutable_data()[0] = 1;
  mb.mutable_data()[st.capacity - 1] = 2;
  GLINT_ASSERT_OK(mb.Seal());
  EXPECT_EQ(GetStats(client_.get()).bytes_in_use, st.capacity);
  EXPECT_EQ(GetStats(client_.get()).largest_free_block, 0);
  GLINT_ASSERT_OK(client_->Delete(whole));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, NameLengthLimit) {
  MutableBuffer mb;
  GLINT_EXPECT_CODE(client_->BuildObject(ObjectId::Random(), 1, &mb, std::string(256, 'x')),
                    StatusCode::kInvalidArgument);
  GLINT_EXPECT_CODE(client_->BuildObject(ObjectId::Random(), 1, &mb, std::string(4096, 'x')),
                    StatusCode::kInvalidArgument);
  EXPECT_FALSE(mb.building());
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
  GLINT_EXPECT_OK(client_->BuildObject(ObjectId::Random(), 1, &mb, std::string(255, 'x')));
  EXPECT_TRUE(mb.building());
}

TEST_F(ClientApiTest, MetadataSizeLimit) {
  MutableBuffer mb;
  // 64 KiB of keys and values is the limit.
  GLINT_EXPECT_CODE(
      client_->BuildObject(ObjectId::Random(), 1, &mb, {}, {{"k", std::string(65536, 'v')}}),
      StatusCode::kInvalidArgument);
  Metadata many;
  for (int i = 0; i < 1000; ++i) many["key" + std::to_string(i)] = std::string(64, 'v');
  GLINT_EXPECT_CODE(client_->BuildObject(ObjectId::Random(), 1, &mb, {}, many),
                    StatusCode::kInvalidArgument);
  EXPECT_FALSE(mb.building());
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
  const ObjectId ok_id = ObjectId::Random();
  GLINT_ASSERT_OK(
      client_->BuildObject(ok_id, 1, &mb, {}, {{"k", std::string(65535, 'v')}}));
  GLINT_ASSERT_OK(mb.Seal());
  Buffer v;
  GLINT_ASSERT_OK(client_->GetMetadata(ok_id, "k", &v));
  EXPECT_EQ(v.size(), 65535);
  EXPECT_EQ(v.data()[65534], 'v');
}

TEST_F(ClientApiTest, DuplicateIdWhileBuildingAndAfterSeal) {
  const ObjectId id = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, 100, &mb));
  FillPattern(mb.mutable_data(), 100, 1);
  MutableBuffer dup;
  GLINT_EXPECT_CODE(client_->BuildObject(id, 100, &dup), StatusCode::kAlreadyExists);
  EXPECT_FALSE(dup.building());
  std::unique_ptr<Client> other;
  ASSERT_TRUE(Connect(&other));
  GLINT_EXPECT_CODE(other->BuildObject(id, 5, &dup), StatusCode::kAlreadyExists);
  GLINT_ASSERT_OK(mb.Seal());
  GLINT_EXPECT_CODE(client_->BuildObject(id, 100, &dup), StatusCode::kAlreadyExists);
  GLINT_EXPECT_CODE(other->BuildObject(id, 0, &dup), StatusCode::kAlreadyExists);
  // The original is untouched.
  Buffer b;
  GLINT_ASSERT_OK(client_->GetObject(id, &b, 0));
  EXPECT_EQ(b.size(), 100);
  EXPECT_EQ(CheckPattern(b.data(), 100, 1), -1);
  b.Release();
  EXPECT_EQ(GetStats(client_.get()).objects_sealed, 1);
  EXPECT_EQ(GetStats(client_.get()).objects_building, 0);
  EXPECT_EQ(GetStats(client_.get()).bytes_in_use, Alloc(100));
}

TEST_F(ClientApiTest, DuplicateNameWhileBuildingAndAfterSeal) {
  MutableBuffer mb;
  const ObjectId first = ObjectId::Random();
  GLINT_ASSERT_OK(client_->BuildObject(first, 10, &mb, "the-name"));
  MutableBuffer dup;
  GLINT_EXPECT_CODE(client_->BuildObject(ObjectId::Random(), 10, &dup, "the-name"),
                    StatusCode::kAlreadyExists);
  GLINT_ASSERT_OK(mb.Seal());
  GLINT_EXPECT_CODE(client_->BuildObject(ObjectId::Random(), 10, &dup, "the-name"),
                    StatusCode::kAlreadyExists);
  EXPECT_FALSE(dup.building());
  // Names are compared exactly.
  GLINT_EXPECT_OK(client_->BuildObject(ObjectId::Random(), 10, &dup, "the-name2"));
  GLINT_EXPECT_OK(dup.Abort());
  GLINT_EXPECT_OK(client_->BuildObject(ObjectId::Random(), 10, &dup, "the-nam"));
  GLINT_EXPECT_OK(dup.Abort());
  Buffer b;
  GLINT_ASSERT_OK(client_->GetObjectByName("the-name", &b, 0));
  EXPECT_EQ(b.id(), first);
  b.Release();
  EXPECT_EQ(GetStats(client_.get()).objects_sealed, 1);
  EXPECT_EQ(GetStats(client_.get()).objects_building, 0);
}

TEST_F(ClientApiTest, SealTwiceResizeAbortAfterSeal) {
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(ObjectId::Random(), 10, &mb));
  GLINT_ASSERT_OK(mb.Seal());
  GLINT_EXPECT_CODE(mb.Seal(), StatusCode::kFailedPrecondition);
  GLINT_EXPECT_CODE(mb.Resize(20), StatusCode::kFailedPrecondition);
  GLINT_EXPECT_CODE(mb.Abort(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(mb.sealed());
  EXPECT_EQ(GetStats(client_.get()).objects_sealed, 1);
  // An empty buffer and an aborted one refuse too.
  MutableBuffer empty;
  GLINT_EXPECT_CODE(empty.Seal(), StatusCode::kFailedPrecondition);
  GLINT_EXPECT_CODE(empty.Resize(1), StatusCode::kFailedPrecondition);
  GLINT_EXPECT_CODE(empty.Abort(), StatusCode::kFailedPrecondition);
  MutableBuffer aborted;
  GLINT_ASSERT_OK(client_->BuildObject(ObjectId::Random(), 10, &aborted));
  GLINT_ASSERT_OK(aborted.Abort());
  GLINT_EXPECT_CODE(aborted.Seal(), StatusCode::kFailedPrecondition);
  GLINT_EXPECT_CODE(aborted.Abort(), StatusCode::kFailedPrecondition);
  GLINT_EXPECT_CODE(aborted.Resize(5), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(aborted.sealed());
}

TEST_F(ClientApiTest, DeleteUnknownIsNotFound) {
  GLINT_EXPECT_CODE(client_->Delete(ObjectId::Random()), StatusCode::kNotFound);
  const ObjectId id = ObjectId::Random();
  ASSERT_TRUE(Put(id, 10));
  GLINT_EXPECT_OK(client_->Delete(id));
  GLINT_EXPECT_CODE(client_->Delete(id), StatusCode::kNotFound);
}

TEST_F(ClientApiTest, DeleteOfObjectBeingBuiltIsNotFoundAndHarmless) {
  const ObjectId id = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, 4000, &mb, "in-progress"));
  FillPattern(mb.mutable_data(), 2000, 5);
  GLINT_EXPECT_CODE(client_->Delete(id), StatusCode::kNotFound);
  std::unique_ptr<Client> other;
  ASSERT_TRUE(Connect(&other));
  GLINT_EXPECT_CODE(other->Delete(id), StatusCode::kNotFound);
  // Still being built, unaffected: finish it and read it back.
  EXPECT_TRUE(mb.building());
  EXPECT_EQ(GetStats(client_.get()).objects_building, 1);
  FillPattern(mb.mutable_data(2000), 2000, 6);
  GLINT_ASSERT_OK(mb.Seal());
  Buffer b;
  GLINT_ASSERT_OK(other->GetObjectByName("in-progress", &b, 0));
  EXPECT_EQ(b.size(), 4000);
  EXPECT_EQ(CheckPattern(b.data(), 2000, 5), -1);
  EXPECT_EQ(CheckPattern(b.data(2000), 2000, 6), -1);
}

TEST_F(ClientApiTest, GetMissingTimesOut) {
  Buffer b;
  GLINT_EXPECT_CODE(client_->GetObject(ObjectId::Random(), &b, 0), StatusCode::kTimedOut);
  const auto start = std::chrono::steady_clock::now();
  GLINT_EXPECT_CODE(client_->GetObject(ObjectId::Random(), &b, 50), StatusCode::kTimedOut);
  // It waited (at least about) the timeout; no upper bound is asserted.
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(45));
  EXPECT_FALSE(b.valid());
  // A deleted object is missing too (never NotFound).
  const ObjectId id = ObjectId::Random();
  ASSERT_TRUE(Put(id, 1));
  GLINT_ASSERT_OK(client_->Delete(id));
  GLINT_EXPECT_CODE(client_->GetObject(id, &b, 0), StatusCode::kTimedOut);
  GLINT_EXPECT_CODE(client_->GetObject(id, &b, 10), StatusCode::kTimedOut);
  // An unsealed one times out as well.
  const ObjectId building = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(building, 1, &mb));
  GLINT_EXPECT_CODE(client_->GetObject(building, &b, 0), StatusCode::kTimedOut);
  GLINT_EXPECT_CODE(client_->GetObject(building, &b, 20), StatusCode::kTimedOut);
}


// A wait that times out has lasted its whole timeout, for every get call,
// short timeouts included. (GetObjects once rounded what was left of its
// deadline down to whole milliseconds for each missing id: with 1 ms it did
// not wait at all, with 3 ms about 2.) Lower bounds only: a loaded machine
// may wait longer.
TEST_F(ClientApiTest, TimedOutGetsWaitedTheWholeTimeout) {
  const ObjectId present = ObjectId::Random();
  ASSERT_TRUE(Put(present, 8));
  const std::vector<ObjectId> ids = {present, ObjectId::Random(), ObjectId::Random()};
  for (const int64_t timeout_ms : {1, 3, 20}) {
    SCOPED_TRACE(timeout_ms);
    const milliseconds timeout(timeout_ms);
    Buffer b;
    auto start = std::chrono::steady_clock::now();
    GLINT_EXPECT_CODE(client_->GetObject(ids[1], &b, timeout_ms), StatusCode::kTimedOut);
    EXPECT_GE(std::chrono::steady_clock::now() - start, timeout);

    start = std::chrono::steady_clock::now();
    GLINT_EXPECT_CODE(client_->GetObjectByName("nobody", &b, timeout_ms),
                      StatusCode::kTimedOut);
    EXPECT_GE(std::chrono::steady_clock::now() - start, timeout);

    std::vector<Buffer> bufs;
    start = std::chrono::steady_clock::now();
    GLINT_EXPECT_CODE(client_->GetObjects(ids, &bufs, timeout_ms), StatusCode::kTimedOut);
    EXPECT_GE(std::chrono::steady_clock::now() - start, timeout);
    ASSERT_EQ(bufs.size(), 3u);
    EXPECT_TRUE(bufs[0].valid());
    EXPECT_FALSE(bufs[1].valid());
    EXPECT_FALSE(bufs[2].valid());
  }
}
// Handles may be destroyed after their Client (a struct whose members are
// declared Buffer first, Client last destroys them in that order). The
// Client's destructor gives everything back; the handles then do nothing.
// (Under ASan, CI checks that none of this touches freed memory.)
TEST_F(ClientApiTest, HandlesMayOutliveTheirClient) {
  const ObjectId held = ObjectId::Random();
  const ObjectId built = ObjectId::Random();
  ASSERT_TRUE(Put(held, 64));
  struct Handles {
    Buffer buffer;
    MutableBuffer building;
    Buffer kept;
    MutableBuffer sealing;
    std::unique_ptr<Client> client;  // destroyed first
  };
  {
    Handles h;
    ASSERT_TRUE(Connect(&h.client));
    GLINT_ASSERT_OK(h.client->GetObject(held, &h.buffer, 0));
    GLINT_ASSERT_OK(h.client->GetObject(held, &h.kept, 0));
    GLINT_ASSERT_OK(h.client->BuildObject(built, 64, &h.building));
    GLINT_ASSERT_OK(h.client->BuildObject(ObjectId::Random(), 8, &h.sealing, "orphan"));
    h.client.reset();
    // The store has it all back already: no holder, the builds aborted.
    ObjectInfo info;
    GLINT_ASSERT_OK(client_->GetObjectInfo(held, &info));
    EXPECT_EQ(info.holders, 0);
    EXPECT_FALSE(client_->Contains(built));
    Buffer b;
    GLINT_EXPECT_CODE(client_->GetObjectByName("orphan", &b, 0), StatusCode::kTimedOut);
    // The handles answer, without touching the store.
    const Status s = h.sealing.Seal();
    EXPECT_EQ(s.code(), StatusCode::kNotConnected) << s.ToString();
    EXPECT_NE(s.message().find("destroyed"), std::string::npos) << s.ToString();
    GLINT_EXPECT_CODE(h.building.Resize(128), StatusCode::kNotConnected);
    h.kept.Release();
    EXPECT_FALSE(h.kept.valid());
  }  // the rest of the handles go here, after their Client
  GLINT_ASSERT_OK(client_->Delete(held));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
  // A Client without live handles at its end is freed as before (LSan
  // would report the one above otherwise; this one is plain).
  std::unique_ptr<Client> plain;
  ASSERT_TRUE(Connect(&plain));
  plain.reset();
}

TEST_F(ClientApiTest, GetMetadataOfUnknownIsNotFound) {
  Buffer v;
  GLINT_EXPECT_CODE(client_->GetMetadata(ObjectId::Random(), "k", &v),
                    StatusCode::kNotFound);
  EXPECT_FALSE(v.valid());
}

TEST_F(ClientApiTest, StoreFullThenSucceedsAfterDeletes) {
  const StoreStats st0 = GetStats(client_.get());
  const int64_t kObj = 1 << 20;
  std::vector<ObjectId> ids;
  Status s;
  for (int i = 0; i < 1000; ++i) {
    const ObjectId id = MakeId(3, i);
    MutableBuffer mb;
    s = client_->BuildObject(id, kObj, &mb);
    if (!s.ok()) break;
    GLINT_ASSERT_OK(mb.Seal());
    ids.push_back(id);
  }
  EXPECT_EQ(s.code(), StatusCode::kOutOfMemory) << s.ToString();
  EXPECT_FALSE(s.message().empty());
  EXPECT_EQ(static_cast<int64_t>(ids.size()), st0.capacity / kObj);
  StoreStats st = GetStats(client_.get());
  EXPECT_EQ(st.bytes_in_use, static_cast<int64_t>(ids.size()) * kObj);
  EXPECT_LT(st.largest_free_block, kObj);
  // Small objects do not fit either once every page is taken.
  MutableBuffer mb;
  EXPECT_EQ(st.bytes_free, 0);
  GLINT_EXPECT_CODE(client_->BuildObject(ObjectId::Random(), 64, &mb),
                    StatusCode::kOutOfMemory);
  GLINT_EXPECT_CODE(client_->BuildObject(ObjectId::Random(), 0, &mb, "named"),
                    StatusCode::kOutOfMemory);
  // Empty objects without name or metadata take no heap: they still fit.
  const ObjectId empty = ObjectId::Random();
  GLINT_EXPECT_OK(client_->BuildObject(empty, 0, &mb));
  GLINT_EXPECT_OK(mb.Seal());
  ids.push_back(empty);
  EXPECT_EQ(GetStats(client_.get()).objects_building, 0);
  // Free two; a new object fits again.
  GLINT_ASSERT_OK(client_->Delete(ids[3]));
  GLINT_ASSERT_OK(client_->Delete(ids[10]));
  ids.erase(ids.begin() + 10);
  ids.erase(ids.begin() + 3);
  const ObjectId again = ObjectId::Random();
  ASSERT_TRUE(Put(again, kObj));
  ids.push_back(again);
  const ObjectId small = ObjectId::Random();
  ASSERT_TRUE(Put(small, 100, "small-one"));
  ids.push_back(small);
  for (const ObjectId& id : ids) GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, StoreFullOfSmallObjects) {
  const int64_t kObj = 16 * 1024;
  std::vector<ObjectId> ids;
  Status s;
  for (int i = 0; i < 100000; ++i) {
    const ObjectId id = MakeId(4, i);
    MutableBuffer mb;
    s = client_->BuildObject(id, kObj, &mb);
    if (!s.ok()) break;
    GLINT_ASSERT_OK(mb.Seal());
    ids.push_back(id);
  }
  EXPECT_EQ(s.code(), StatusCode::kOutOfMemory) << s.ToString();
  const StoreStats st = GetStats(client_.get());
  EXPECT_EQ(static_cast<int64_t>(ids.size()), st.capacity / kObj);
  EXPECT_EQ(st.bytes_in_use, st.capacity);
  EXPECT_EQ(st.largest_free_block, 0);
  GLINT_ASSERT_OK(client_->Delete(ids.back()));
  ids.pop_back();
  ASSERT_TRUE(Put(ObjectId::Random(), kObj));
  for (const ObjectId& id : ids) GLINT_ASSERT_OK(client_->Delete(id));
}

// largest_free_block is "the largest allocation that would succeed now".
// A store full of 20 KiB objects (5-page runs, 12 per 64-page bitmap word)
// keeps 4 free pages per word that no request can use.
//
// Regression test: Stats once reported largest_free_block = 16384 here
// while BuildObject of 16384 bytes answered kOutOfMemory (Heap::LargestFree
// counted free runs of 1-4 pages, which neither a size-class span nor a page
// run can use); fixed in 752e889.
TEST_F(ClientApiTest, LargestFreeBlockCanBeAllocated) {
  const int64_t kObj = 20 * 1024;
  std::vector<ObjectId> ids;
  for (int i = 0;; ++i) {
    MutableBuffer mb;
    const Status s = client_->BuildObject(MakeId(0x20, i), kObj, &mb);
    if (!s.ok()) {
      ASSERT_EQ(s.code(), StatusCode::kOutOfMemory) << s.ToString();
      break;
    }
    GLINT_ASSERT_OK(mb.Seal());
    ids.push_back(MakeId(0x20, i));
  }
  const StoreStats st = GetStats(client_.get());
  if (st.largest_free_block > 0) {
    MutableBuffer mb;
    const Status s = client_->BuildObject(ObjectId::Random(), st.largest_free_block, &mb);
    EXPECT_TRUE(s.ok()) << "largest_free_block = " << st.largest_free_block
                        << " (bytes_free = " << st.bytes_free << ") but BuildObject of that "
                        << "size answers " << s.ToString();
  }
  for (const ObjectId& id : ids) GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, ResizeKeepsBytes) {
  const ObjectId id = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, 100, &mb));
  FillPattern(mb.mutable_data(), 100, 42);
  // Grow within the small classes, then to a page run, then far.
  const int64_t steps[] = {100, 1000, 16 * 1024, 100 * 1000, 3 << 20};
  int64_t written = 100;
  for (size_t i = 1; i < std::size(steps); ++i) {
    GLINT_ASSERT_OK(mb.Resize(steps[i]));
    EXPECT_EQ(mb.size(), steps[i]);
    ASSERT_NE(mb.mutable_data(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(mb.data()) % kPayloadAlignment, 0u);
    EXPECT_EQ(CheckPattern(mb.data(), written, 42), -1) << "after resize to " << steps[i];
    FillPattern(mb.mutable_data(), steps[i], 42);
    written = steps[i];
    EXPECT_EQ(GetStats(client_.get()).bytes_in_use, Alloc(steps[i]));
  }
  // Shrink: to a page run, to a small class, within the class.
  const int64_t shrink[] = {200 * 1000, 5000, 4999, 70, 1};
  for (int64_t n : shrink) {
    GLINT_ASSERT_OK(mb.Resize(n));
    EXPECT_EQ(mb.size(), n);
    EXPECT_EQ(CheckPattern(mb.data(), n, 42), -1) << "after shrink to " << n;
    EXPECT_EQ(GetStats(client_.get()).bytes_in_use, Alloc(n));
  }
  // To zero and back.
  GLINT_ASSERT_OK(mb.Resize(0));
  EXPECT_EQ(mb.size(), 0);
  EXPECT_EQ(GetStats(client_.get()).bytes_in_use, 0);
  GLINT_ASSERT_OK(mb.Resize(300));
  FillPattern(mb.mutable_data(), 300, 43);
  GLINT_ASSERT_OK(mb.Seal());
  Buffer b;
  GLINT_ASSERT_OK(client_->GetObject(id, &b, 0));
  EXPECT_EQ(b.size(), 300);
  EXPECT_EQ(CheckPattern(b.data(), 300, 43), -1);
  ObjectInfo info;
  GLINT_ASSERT_OK(client_->GetObjectInfo(id, &info));
  EXPECT_EQ(info.size, 300);
  b.Release();
  GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, ResizeBeyondCapacityIsInvalidAndKeepsObject) {
  const ObjectId id = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, 100, &mb));
  FillPattern(mb.mutable_data(), 100, 9);
  const StoreStats st = GetStats(client_.get());
  GLINT_EXPECT_CODE(mb.Resize(st.capacity + 1), StatusCode::kInvalidArgument);
  GLINT_EXPECT_CODE(mb.Resize(-1), StatusCode::kInvalidArgument);
  EXPECT_TRUE(mb.building());
  EXPECT_EQ(mb.size(), 100);
  EXPECT_EQ(CheckPattern(mb.data(), 100, 9), -1);
  // No room (the capacity is taken by the object itself): OutOfMemory, kept.
  GLINT_EXPECT_CODE(mb.Resize(st.capacity), StatusCode::kOutOfMemory);
  EXPECT_EQ(mb.size(), 100);
  EXPECT_EQ(CheckPattern(mb.data(), 100, 9), -1);
  GLINT_ASSERT_OK(mb.Seal());
  Buffer b;
  GLINT_ASSERT_OK(client_->GetObject(id, &b, 0));
  EXPECT_EQ(CheckPattern(b.data(), 100, 9), -1);
}

TEST_F(ClientApiTest, AbortFreesMemoryAndIdIsReusable) {
  const ObjectId id = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, 50000, &mb, "abort-me", {{"k", "v"}}));
  StoreStats st = GetStats(client_.get());
  EXPECT_GT(st.bytes_in_use, Alloc(50000));
  EXPECT_EQ(st.objects_building, 1);
  GLINT_ASSERT_OK(mb.Abort());
  EXPECT_FALSE(mb.building());
  EXPECT_FALSE(mb.sealed());
  EXPECT_EQ(mb.mutable_data(), nullptr);
  st = GetStats(client_.get());
  EXPECT_EQ(st.bytes_in_use, 0);
  EXPECT_EQ(st.objects_building, 0);
  EXPECT_EQ(st.largest_free_block, st.capacity);
  ObjectInfo info;
  GLINT_EXPECT_CODE(client_->GetObjectInfo(id, &info), StatusCode::kNotFound);
  // Id and name are free at once.
  GLINT_ASSERT_OK(client_->BuildObject(id, 10, &mb, "abort-me"));
  FillPattern(mb.mutable_data(), 10, 1);
  GLINT_ASSERT_OK(mb.Seal());
  Buffer b;
  GLINT_ASSERT_OK(client_->GetObjectByName("abort-me", &b, 0));
  EXPECT_EQ(b.size(), 10);
}

TEST_F(ClientApiTest, DestroyingUnsealedMutableBufferAborts) {
  const ObjectId id = ObjectId::Random();
  {
    MutableBuffer mb;
    GLINT_ASSERT_OK(client_->BuildObject(id, 5000, &mb, "dropped"));
    EXPECT_EQ(GetStats(client_.get()).objects_building, 1);
  }
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
  ObjectInfo info;
  GLINT_EXPECT_CODE(client_->GetObjectInfo(id, &info), StatusCode::kNotFound);
  ASSERT_TRUE(Put(id, 10, "dropped"));
  // A moved-from MutableBuffer owns nothing; the moved-to one aborts.
  const ObjectId id2 = ObjectId::Random();
  {
    MutableBuffer a;
    GLINT_ASSERT_OK(client_->BuildObject(id2, 100, &a));
    MutableBuffer b(std::move(a));
    EXPECT_FALSE(a.building());  // NOLINT(bugprone-use-after-move)
    EXPECT_TRUE(b.building());
    MutableBuffer c;
    c = std::move(b);
    EXPECT_TRUE(c.building());
    EXPECT_EQ(GetStats(client_.get()).objects_building, 1);
  }
  EXPECT_EQ(GetStats(client_.get()).objects_building, 0);
  EXPECT_EQ(GetStats(client_.get()).objects_sealed, 1);
  GLINT_EXPECT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, ReusingOutParameterReleasesOrAborts) {
  // A MutableBuffer passed again to BuildObject aborts what it was building.
  const ObjectId first = ObjectId::Random(), second = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(first, 1000, &mb, "first"));
  GLINT_ASSERT_OK(client_->BuildObject(second, 10, &mb));
  EXPECT_EQ(mb.id(), second);
  StoreStats st = GetStats(client_.get());
  EXPECT_EQ(st.objects_building, 1);
  EXPECT_EQ(st.bytes_in_use, Alloc(10));
  ObjectInfo info;
  GLINT_EXPECT_CODE(client_->GetObjectInfo(first, &info), StatusCode::kNotFound);
  // Even when the new build fails, the old one is aborted.
  GLINT_EXPECT_CODE(client_->BuildObject(ObjectId::Random(), -5, &mb),
                    StatusCode::kInvalidArgument);
  EXPECT_FALSE(mb.building());
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
  // A sealed MutableBuffer can be reused.
  GLINT_ASSERT_OK(client_->BuildObject(first, 8, &mb));
  GLINT_ASSERT_OK(mb.Seal());
  GLINT_ASSERT_OK(client_->BuildObject(second, 8, &mb));
  GLINT_ASSERT_OK(mb.Seal());
  EXPECT_TRUE(client_->Contains(first));
  EXPECT_TRUE(client_->Contains(second));

  // A Buffer passed again to GetObject releases what it held.
  Buffer b;
  GLINT_ASSERT_OK(client_->GetObject(first, &b, 0));
  GLINT_ASSERT_OK(client_->GetObjectInfo(first, &info));
  EXPECT_EQ(info.holders, 1);
  GLINT_ASSERT_OK(client_->GetObject(second, &b, 0));
  EXPECT_EQ(b.id(), second);
  GLINT_ASSERT_OK(client_->GetObjectInfo(first, &info));
  EXPECT_EQ(info.holders, 0);
  // ... also when the new get fails.
  GLINT_EXPECT_CODE(client_->GetObject(ObjectId::Random(), &b, 0), StatusCode::kTimedOut);
  EXPECT_FALSE(b.valid());
  GLINT_ASSERT_OK(client_->GetObjectInfo(second, &info));
  EXPECT_EQ(info.holders, 0);
  // GetMetadata and GetObjectByName release too.
  GLINT_ASSERT_OK(client_->GetObject(first, &b, 0));
  GLINT_EXPECT_CODE(client_->GetMetadata(second, "none", &b), StatusCode::kNotFound);
  EXPECT_FALSE(b.valid());
  GLINT_ASSERT_OK(client_->GetObject(first, &b, 0));
  GLINT_EXPECT_CODE(client_->GetObjectByName("nobody", &b, 0), StatusCode::kTimedOut);
  EXPECT_FALSE(b.valid());
  GLINT_ASSERT_OK(client_->GetObjectInfo(first, &info));
  EXPECT_EQ(info.holders, 0);
  // Move-assigning into a Buffer releases its old reference.
  Buffer x, y;
  GLINT_ASSERT_OK(client_->GetObject(first, &x, 0));
  GLINT_ASSERT_OK(client_->GetObject(second, &y, 0));
  x = std::move(y);
  GLINT_ASSERT_OK(client_->GetObjectInfo(first, &info));
  EXPECT_EQ(info.holders, 0);
  x.Release();
  GLINT_ASSERT_OK(client_->Delete(first));
  GLINT_ASSERT_OK(client_->Delete(second));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, DeleteWhileHeld) {
  const ObjectId id = ObjectId::Random();
  const int64_t kSize = 10000;
  ASSERT_TRUE(Put(id, kSize, "held"));
  const StoreStats base = GetStats(client_.get());
  std::unique_ptr<Client> reader;
  ASSERT_TRUE(Connect(&reader));
  Buffer held;
  GLINT_ASSERT_OK(reader->GetObject(id, &held, 0));
  const uint8_t* where = held.data();
  GLINT_ASSERT_OK(client_->Delete(id));
  // Gone for new readers at once.
  EXPECT_FALSE(client_->Contains(id));
  EXPECT_FALSE(reader->Contains(id));
  Buffer again;
  GLINT_EXPECT_CODE(reader->GetObject(id, &again, 0), StatusCode::kTimedOut);
  GLINT_EXPECT_CODE(client_->GetObjectByName("held", &again, 0), StatusCode::kTimedOut);
  GLINT_EXPECT_CODE(client_->Delete(id), StatusCode::kNotFound);
  // The holder keeps valid bytes.
  EXPECT_EQ(held.data(), where);
  EXPECT_EQ(CheckPattern(held.data(), kSize, SeedOf(id)), -1);
  // Memory is not freed while held.
  StoreStats st = GetStats(client_.get());
  EXPECT_EQ(st.bytes_in_use, base.bytes_in_use);
  EXPECT_EQ(st.objects_sealed, 0);
  // A new object with the same id (and name) can be built meanwhile.
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, kSize, &mb, "held"));
  EXPECT_NE(mb.data(), nullptr);
  FillPattern(mb.mutable_data(), kSize, 777);
  GLINT_ASSERT_OK(mb.Seal());
  EXPECT_TRUE(client_->Contains(id));
  Buffer fresh;
  GLINT_ASSERT_OK(reader->GetObject(id, &fresh, 0));
  EXPECT_EQ(CheckPattern(fresh.data(), kSize, 777), -1);
  // The old holder still sees the old bytes.
  EXPECT_EQ(CheckPattern(held.data(), kSize, SeedOf(id)), -1);
  EXPECT_EQ(GetStats(client_.get()).bytes_in_use, 2 * base.bytes_in_use);
  // Release: the old one's memory comes back.
  held.Release();
  EXPECT_EQ(GetStats(client_.get()).bytes_in_use, base.bytes_in_use);
  EXPECT_EQ(GetStats(client_.get()).objects_sealed, 1);
  fresh.Release();
  GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, DeleteWhileHeldBySameClientManyBuffers) {
  const ObjectId id = ObjectId::Random();
  ASSERT_TRUE(Put(id, 3000));
  std::vector<Buffer> bufs(10);
  for (Buffer& b : bufs) GLINT_ASSERT_OK(client_->GetObject(id, &b, 0));
  GLINT_ASSERT_OK(client_->Delete(id));
  for (size_t i = 0; i + 1 < bufs.size(); ++i) {
    bufs[i].Release();
    EXPECT_EQ(GetStats(client_.get()).bytes_in_use, Alloc(3000)) << i;
    EXPECT_EQ(CheckPattern(bufs.back().data(), 3000, SeedOf(id)), -1);
  }
  bufs.back().Release();
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, StatsExact) {
  StoreStats st = GetStats(client_.get());
  EXPECT_EQ(st.capacity, options_.capacity);  // 64 MiB is a multiple of 64 KiB
  EXPECT_EQ(st.bytes_in_use, 0);
  EXPECT_EQ(st.bytes_free, st.capacity);
  EXPECT_EQ(st.largest_free_block, st.capacity);
  EXPECT_EQ(st.objects_sealed, 0);
  EXPECT_EQ(st.objects_building, 0);
  EXPECT_EQ(st.clients, 1);

  std::mt19937_64 rng(1);
  int64_t expect_bytes = 0;
  std::vector<ObjectId> sealed;
  std::vector<MutableBuffer> building;
  for (int i = 0; i < 300; ++i) {
    int64_t size;
    switch (rng() % 4) {
      case 0: size = static_cast<int64_t>(rng() % 1025); break;
      case 1: size = static_cast<int64_t>(rng() % 16385); break;
      case 2: size = static_cast<int64_t>(rng() % 200000); break;
      default: size = static_cast<int64_t>(rng() % 64); break;
    }
    const ObjectId id = MakeId(5, i);
    MutableBuffer mb;
    GLINT_ASSERT_OK(client_->BuildObject(id, size, &mb));
    expect_bytes += Alloc(size);
    if (i % 5 == 0) {
      building.push_back(std::move(mb));
    } else {
      GLINT_ASSERT_OK(mb.Seal());
      sealed.push_back(id);
    }
  }
  st = GetStats(client_.get());
  EXPECT_EQ(st.bytes_in_use, expect_bytes);
  EXPECT_EQ(st.bytes_free, st.capacity - expect_bytes);
  EXPECT_EQ(st.objects_sealed, static_cast<int64_t>(sealed.size()));
  EXPECT_EQ(st.objects_building, static_cast<int64_t>(building.size()));
  EXPECT_LE(st.largest_free_block, st.bytes_free);
  EXPECT_GT(st.largest_free_block, 0);

  // Another client sees the same totals and counts as a client.
  std::unique_ptr<Client> other;
  ASSERT_TRUE(Connect(&other));
  StoreStats st2 = GetStats(other.get());
  EXPECT_EQ(st2.bytes_in_use, expect_bytes);
  EXPECT_EQ(st2.objects_sealed, static_cast<int64_t>(sealed.size()));
  EXPECT_EQ(st2.clients, 2);
  EXPECT_EQ(monitor_->clients(), 2);
  // Deletes by another client keep the totals exact.
  for (size_t i = 0; i < sealed.size(); i += 2) GLINT_ASSERT_OK(other->Delete(sealed[i]));
  for (size_t i = 1; i < sealed.size(); i += 2) GLINT_ASSERT_OK(client_->Delete(sealed[i]));
  building.clear();
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
  EXPECT_TRUE(StoreBecomesEmpty(other.get()));
  other.reset();
  EXPECT_TRUE(WaitUntil([&] { return GetStats(client_.get()).clients == 1; }));
  EXPECT_TRUE(WaitUntil([&] { return monitor_->clients() == 1; }));
}

TEST_F(ClientApiTest, NamedObjectsChargeTheirInfoBlock) {
  const ObjectId id = ObjectId::Random();
  ASSERT_TRUE(Put(id, 64, "a-name", {{"key", "value"}}));
  const StoreStats st = GetStats(client_.get());
  EXPECT_GT(st.bytes_in_use, Alloc(64));
  EXPECT_EQ(st.bytes_in_use % 64, 0);
  GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiTest, ClientDestructorReleasesAndAborts) {
  const ObjectId held = ObjectId::Random(), building = ObjectId::Random();
  ASSERT_TRUE(Put(held, 5000));
  // Buffers must go before their Client (documented); to see what the
  // destructor does with references it still has, the handles live in raw
  // storage and are never destroyed (nor used) after the Client is gone.
  alignas(Buffer) unsigned char buffer_storage[sizeof(Buffer)];
  alignas(MutableBuffer) unsigned char mb_storage[sizeof(MutableBuffer)];
  Buffer* b = new (buffer_storage) Buffer();
  MutableBuffer* mb = new (mb_storage) MutableBuffer();
  {
    std::unique_ptr<Client> other;
    ASSERT_TRUE(Connect(&other));
    GLINT_ASSERT_OK(other->BuildObject(building, 7000, mb, "never-sealed"));
    GLINT_ASSERT_OK(other->GetObject(held, b, 0));
    GLINT_ASSERT_OK(client_->Delete(held));
    StoreStats st = GetStats(client_.get());
    EXPECT_EQ(st.objects_building, 1);
    EXPECT_GE(st.bytes_in_use, Alloc(5000) + Alloc(7000));
  }
  // The destructor returned: the store is whole at once.
  StoreStats st = GetStats(client_.get());
  EXPECT_EQ(st.objects_building, 0);
  EXPECT_EQ(st.objects_sealed, 0);
  EXPECT_EQ(st.bytes_in_use, 0);
  ObjectInfo info;
  GLINT_EXPECT_CODE(client_->GetObjectInfo(building, &info), StatusCode::kNotFound);
  // The name is free again.
  ASSERT_TRUE(Put(building, 1, "never-sealed"));
  GLINT_ASSERT_OK(client_->Delete(building));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// ------------------------------------------------------------ connecting

TEST(ConnectTest, MissingPathIsNotConnectedAndNamesThePath) {
  const std::string path = UniqueSocketPath("missing");
  std::unique_ptr<Client> c;
  const Status s = Client::Connect(path, &c);
  EXPECT_TRUE(s.code() == StatusCode::kNotConnected || s.code() == StatusCode::kIOError)
      << s.ToString();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
  EXPECT_EQ(c, nullptr);
}

TEST(ConnectTest, RegularFileIsNotConnected) {
  const std::string path = UniqueSocketPath("file");
  { std::ofstream(path) << "not a socket"; }
  std::unique_ptr<Client> c;
  const Status s = Client::Connect(path, &c);
  EXPECT_TRUE(s.code() == StatusCode::kNotConnected || s.code() == StatusCode::kIOError)
      << s.ToString();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
  // Nor will a Monitor replace a file that is not a socket.
  StoreOptions o;
  o.socket_path = path;
  o.capacity = 1 << 20;
  std::unique_ptr<Monitor> m;
  EXPECT_FALSE(Monitor::Start(o, &m).ok());
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  unlink(path.c_str());
}

// A unix socket bound at `path`; listening if `listen_backlog` >= 0.
int BindUnixSocket(const std::string& path, int listen_backlog) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  if (listen_backlog >= 0 && listen(fd, listen_backlog) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

TEST(ConnectTest, SocketWithNobodyListeningIsNotConnected) {
  const std::string path = UniqueSocketPath("dead");
  const int fd = BindUnixSocket(path, -1);
  ASSERT_GE(fd, 0);
  close(fd);  // the socket file stays, nobody listens
  std::unique_ptr<Client> c;
  const Status s = Client::Connect(path, &c);
  EXPECT_TRUE(s.code() == StatusCode::kNotConnected || s.code() == StatusCode::kIOError)
      << s.ToString();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
  // A Monitor may take over a socket that nobody serves.
  StoreOptions o;
  o.socket_path = path;
  o.capacity = 1 << 20;
  std::unique_ptr<Monitor> m;
  GLINT_ASSERT_OK(Monitor::Start(o, &m));
  GLINT_EXPECT_OK(Client::Connect(path, &c));
  c.reset();
}

// A Connect that gives up on an unanswered Hello says Bye before it hangs
// up: had the monitor answered in the last instant (a slot given, the
// answer unread), the Bye is what frees that slot at once (see
// Glintd.AByeAfterAnUnreadAnswerFreesTheSlot), rather than when this
// process exits.
TEST(ConnectTest, SocketThatNeverAnswersIsNotConnected) {
  const std::string path = UniqueSocketPath("mute");
  const int fd = BindUnixSocket(path, 4);  // listens, never accepts
  ASSERT_GE(fd, 0);
  std::unique_ptr<Client> c;
  const Status s = Client::Connect(path, &c);
  EXPECT_TRUE(s.code() == StatusCode::kNotConnected || s.code() == StatusCode::kIOError)
      << s.ToString();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
  // What the client wrote before it closed: its Hello, then a Bye.
  const int conn = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  ASSERT_GE(conn, 0) << std::strerror(errno);
  uint8_t got[256];
  size_t n = 0;
  for (ssize_t r; (r = read(conn, got + n, sizeof(got) - n)) > 0;) n += static_cast<size_t>(r);
  close(conn);
  ASSERT_EQ(n, sizeof(core::Hello) + sizeof(uint32_t));
  core::Hello hello;
  std::memcpy(&hello, got, sizeof(hello));
  EXPECT_EQ(hello.magic, core::kHelloMagic);
  uint32_t bye = 0;
  std::memcpy(&bye, got + sizeof(core::Hello), sizeof(bye));
  EXPECT_EQ(bye, core::kByeMagic);
  close(fd);
  unlink(path.c_str());
}

// A listener at `path` that never accepts, with its queue of new
// connections full when `full_queue` (then connect() itself waits, as
// behind a stopped or swamped monitor; else the wait is for the answer).
// Returns the listening socket; `queued` gets the connections that fill it.
int MuteListener(const std::string& path, bool full_queue, std::vector<int>* queued) {
  const int fd = BindUnixSocket(path, full_queue ? 0 : 4);
  if (fd < 0 || !full_queue) return fd;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  for (int i = 0; i < 16; ++i) {  // nonblocking connects until one would wait
    const int q = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q < 0) break;
    if (connect(q, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      const int err = errno;
      close(q);
      if (err == EAGAIN && !queued->empty()) return fd;
      break;
    }
    queued->push_back(q);
  }
  close(fd);  // the queue never filled
  return -1;
}

struct Bounded {
  bool returned = false;  // within 30 s
  std::chrono::steady_clock::duration took{};
};

// Runs `call` on a thread of its own, interrupted by SIGUSR1 (a handler
// without SA_RESTART) every 100 us when `pester`. Waits up to 30 s; a call
// still waiting then on `listener` is freed by closing it (it then fails),
// so that a test of a call that never returns fails instead of hanging.
Bounded RunWithin30s(int listener, bool pester, const std::function<void()>& call) {
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  sa.sa_flags = 0;
  struct sigaction old {};
  sigaction(SIGUSR1, &sa, &old);
  Bounded r;
  std::atomic<bool> done{false};
  const auto start = std::chrono::steady_clock::now();
  std::thread t([&] {
    call();
    done.store(true);
  });
  while (!done.load() && std::chrono::steady_clock::now() - start < std::chrono::seconds(30)) {
    if (pester) pthread_kill(t.native_handle(), SIGUSR1);
    std::this_thread::sleep_for(std::chrono::microseconds(pester ? 100 : 10000));
  }
  r.returned = done.load();
  r.took = std::chrono::steady_clock::now() - start;
  close(listener);
  t.join();
  sigaction(SIGUSR1, &old, nullptr);
  return r;
}

// (ConnectThreadsTest: the tests that start a thread of their own (an
// answering end, or the caller), so that the threads label has them.)

// Behind a full queue connect() itself waits; Connect gives up after its
// 5 s (on the old code it never returned: the test then fails, not hangs).
// Signals do not stretch either of Connect's waits: each interrupted call
// is made again for the time left, not for another 5 s.
TEST(ConnectThreadsTest, StoppedMonitorIsNotConnectedAfterFiveSeconds) {
  for (const bool full_queue : {true, false}) {
    for (const bool pester : {false, true}) {
      if (!full_queue && !pester) continue;  // SocketThatNeverAnswersIsNotConnected
      SCOPED_TRACE(std::string(full_queue ? "full queue" : "never answers") +
                   (pester ? ", signals every 100 us" : ""));
      const std::string path = UniqueSocketPath("stopped");
      std::vector<int> queued;
      const int fd = MuteListener(path, full_queue, &queued);
      ASSERT_GE(fd, 0);
      Status s;
      const Bounded r = RunWithin30s(fd, pester, [&] {
        std::unique_ptr<Client> c;
        s = Client::Connect(path, &c);
      });
      for (int q : queued) close(q);
      unlink(path.c_str());
      ASSERT_TRUE(r.returned) << "Connect was still waiting after 30 s";
      EXPECT_EQ(s.code(), StatusCode::kNotConnected) << s.ToString();
      EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
      if (full_queue) {
        EXPECT_NE(s.message().find("accepted no connection"), std::string::npos)
            << s.ToString();
      }
      EXPECT_GE(r.took, std::chrono::milliseconds(4900));
      EXPECT_LT(r.took, std::chrono::seconds(15));
    }
  }
}

TEST(ConnectThreadsTest, SocketThatAnswersGarbageIsNotConnected) {
  const std::string path = UniqueSocketPath("garbage");
  const int fd = BindUnixSocket(path, 4);
  ASSERT_GE(fd, 0);
  std::thread server([fd] {
    const int conn = accept(fd, nullptr, nullptr);
    if (conn < 0) return;
    char buf[64];
    (void)!read(conn, buf, sizeof(buf));
    const std::string junk(300, 'j');
    (void)!write(conn, junk.data(), junk.size());
    close(conn);
  });
  std::unique_ptr<Client> c;
  const Status s = Client::Connect(path, &c);
  server.join();
  EXPECT_TRUE(s.code() == StatusCode::kNotConnected || s.code() == StatusCode::kIOError)
      << s.ToString();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
  close(fd);
  unlink(path.c_str());
}

// Signals (and io_uring task work, from a Monitor in the same process)
// interrupt a socket call that has a timeout with EINTR instead of
// restarting it; Connect must ask again rather than give up.
TEST(ConnectThreadsTest, SignalsWhileWaitingForTheAnswerDoNotFailIt) {
  StoreOptions o = SmallStoreOptions(1 << 20);
  std::unique_ptr<Monitor> m;
  GLINT_ASSERT_OK(Monitor::Start(o, &m));
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  sa.sa_flags = 0;  // no SA_RESTART
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  const pthread_t target = pthread_self();
  std::atomic<bool> stop{false};
  std::atomic<int64_t> sent{0};
  std::thread pester([&] {
    while (!stop.load()) {
      pthread_kill(target, SIGUSR1);
      sent.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  });
  int failures = 0;
  Status last;
  for (int i = 0; i < 300; ++i) {
    std::unique_ptr<Client> c;
    const Status s = Client::Connect(o.socket_path, &c);
    if (!s.ok()) {
      ++failures;
      last = s;
    }
  }
  stop = true;
  pester.join();
  sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(failures, 0) << last.ToString();
  EXPECT_GT(sent.load(), 300);
}

TEST(ConnectTest, TooManyClients) {
  StoreOptions o = SmallStoreOptions(1 << 20);
  o.max_clients = 2;
  std::unique_ptr<Monitor> m;
  GLINT_ASSERT_OK(Monitor::Start(o, &m));
  std::unique_ptr<Client> a, b, c;
  GLINT_ASSERT_OK(Client::Connect(o.socket_path, &a));
  GLINT_ASSERT_OK(Client::Connect(o.socket_path, &b));
  EXPECT_NE(a->client_slot(), b->client_slot());
  const Status s = Client::Connect(o.socket_path, &c);
  EXPECT_EQ(s.code(), StatusCode::kTooManyClients) << s.ToString();
  EXPECT_NE(s.message().find(o.socket_path), std::string::npos) << s.ToString();
  EXPECT_EQ(c, nullptr);
  EXPECT_EQ(m->clients(), 2);
  // A slot comes back once a client leaves.
  a.reset();
  Status again;
  EXPECT_TRUE(WaitUntil([&] {
    again = Client::Connect(o.socket_path, &c);
    return again.ok();
  })) << again.ToString();
  EXPECT_EQ(m->clients(), 2);
}

TEST(MonitorTest, StartOnServedPathIsAlreadyExists) {
  StoreOptions o = SmallStoreOptions(1 << 20);
  std::unique_ptr<Monitor> m1, m2;
  GLINT_ASSERT_OK(Monitor::Start(o, &m1));
  const Status s = Monitor::Start(o, &m2);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_EQ(m2, nullptr);
  // The first store still serves.
  std::unique_ptr<Client> c;
  GLINT_ASSERT_OK(Client::Connect(o.socket_path, &c));
  EXPECT_EQ(m1->socket_path(), o.socket_path);
}

// A stopped glintd whose queue of new connections is full still serves its
// path: a second Start refuses it at once (its probe used to wait forever).
TEST(MonitorThreadsTest, StartOnAPathWhoseListenerIsStoppedIsAlreadyExists) {
  StoreOptions o = SmallStoreOptions(1 << 20);
  std::vector<int> queued;
  const int fd = MuteListener(o.socket_path, /*full_queue=*/true, &queued);
  ASSERT_GE(fd, 0);
  Status s;
  const Bounded r = RunWithin30s(fd, /*pester=*/false, [&] {
    std::unique_ptr<Monitor> m;
    s = Monitor::Start(o, &m);
  });
  for (int q : queued) close(q);
  unlink(o.socket_path.c_str());
  ASSERT_TRUE(r.returned) << "Start was still probing the stopped listener after 30 s";
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_NE(s.message().find(o.socket_path), std::string::npos) << s.ToString();
}

TEST(MonitorTest, BadOptionsAreInvalid) {
  std::unique_ptr<Monitor> m;
  StoreOptions o = SmallStoreOptions(1 << 20);
  o.capacity = 0;
  GLINT_EXPECT_CODE(Monitor::Start(o, &m), StatusCode::kInvalidArgument);
  o = SmallStoreOptions(1 << 20);
  o.capacity = -5;
  GLINT_EXPECT_CODE(Monitor::Start(o, &m), StatusCode::kInvalidArgument);
  o = SmallStoreOptions(1 << 20);
  o.max_clients = 0;
  GLINT_EXPECT_CODE(Monitor::Start(o, &m), StatusCode::kInvalidArgument);
  o = SmallStoreOptions(1 << 20);
  o.max_clients = 257;
  GLINT_EXPECT_CODE(Monitor::Start(o, &m), StatusCode::kInvalidArgument);
  o = SmallStoreOptions(1 << 20);
  o.max_objects = -1;
  GLINT_EXPECT_CODE(Monitor::Start(o, &m), StatusCode::kInvalidArgument);
  o = SmallStoreOptions(1 << 20);
  o.socket_path = "";
  GLINT_EXPECT_CODE(Monitor::Start(o, &m), StatusCode::kInvalidArgument);
  o.socket_path = "/tmp/" + std::string(200, 'p');
  GLINT_EXPECT_CODE(Monitor::Start(o, &m), StatusCode::kInvalidArgument);
  EXPECT_EQ(m, nullptr);
}

// A directory that is not there is a bad option, named as such; never
// kNotConnected, which tells a client that no store serves a path.
TEST(MonitorTest, MissingDirectoriesAreInvalidArguments) {
  char tmpl[] = "/tmp/glint-test-dirs-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string missing = dir + "/missing";
  std::unique_ptr<Monitor> m;
  auto expect_invalid = [&](const StoreOptions& o, const char* option,
                            const std::string& names) {
    const Status s = Monitor::Start(o, &m);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find(option), std::string::npos) << s.ToString();
    EXPECT_NE(s.message().find(names), std::string::npos) << s.ToString();
    EXPECT_EQ(m, nullptr);
  };

  StoreOptions o = SmallStoreOptions(1 << 20);
  o.shm_dir = missing;
  expect_invalid(o, "shm_dir", missing);
  o.shm_dir = "";
  expect_invalid(o, "shm_dir", "empty");
  const std::string file = dir + "/file";
  { std::ofstream(file) << "not a directory"; }
  o.shm_dir = file;
  expect_invalid(o, "shm_dir", file);
  o.shm_dir = file + "/sub";  // ENOTDIR
  expect_invalid(o, "shm_dir", file);

  // A socket in a missing directory fails before the region is made: the
  // (existing) shm_dir stays empty.
  o = SmallStoreOptions(1 << 20);
  o.shm_dir = dir;
  o.socket_path = missing + "/sock";
  expect_invalid(o, "socket_path", missing);
  o.socket_path = file + "/sock";
  expect_invalid(o, "socket_path", file);
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    left.push_back(e.path().filename().string());
  }
  EXPECT_EQ(left, std::vector<std::string>{"file"});

  // A client asking for that socket still hears that nobody serves it.
  std::unique_ptr<Client> c;
  GLINT_EXPECT_CODE(Client::Connect(missing + "/sock", &c), StatusCode::kNotConnected);

  // Both directories present: it starts.
  o.socket_path = dir + "/sock";
  GLINT_ASSERT_OK(Monitor::Start(o, &m));
  EXPECT_EQ(m->region_path().rfind(dir + "/glint-", 0), 0u) << m->region_path();
  m.reset();
  unlink(file.c_str());
  EXPECT_EQ(rmdir(dir.c_str()), 0) << "left behind in " << dir;
}

TEST(MonitorTest, DestructorRemovesSocketAndRegion) {
  StoreOptions o = SmallStoreOptions(1 << 20);
  std::unique_ptr<Monitor> m;
  GLINT_ASSERT_OK(Monitor::Start(o, &m));
  const std::string region = m->region_path();
  ASSERT_FALSE(region.empty());
  struct stat st;
  ASSERT_EQ(stat(o.socket_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(region.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  {
    // A connected client does not keep the files alive.
    std::unique_ptr<Client> c;
    GLINT_ASSERT_OK(Client::Connect(o.socket_path, &c));
    EXPECT_EQ(c->region_size(), st.st_size);
  }
  m.reset();
  errno = 0;
  EXPECT_NE(stat(o.socket_path.c_str(), &st), 0);
  EXPECT_EQ(errno, ENOENT);
  errno = 0;
  EXPECT_NE(stat(region.c_str(), &st), 0);
  EXPECT_EQ(errno, ENOENT);
  // Nothing serves the path any more.
  std::unique_ptr<Client> c;
  EXPECT_EQ(Client::Connect(o.socket_path, &c).code(), StatusCode::kNotConnected);
  // And a new store may start there.
  GLINT_EXPECT_OK(Monitor::Start(o, &m));
}

TEST(MonitorTest, FileModeIsHonoured) {
  StoreOptions o = SmallStoreOptions(1 << 20);
  o.mode = 0640;
  std::unique_ptr<Monitor> m;
  GLINT_ASSERT_OK(Monitor::Start(o, &m));
  struct stat st;
  ASSERT_EQ(stat(m->region_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  ASSERT_EQ(stat(o.socket_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST(MonitorTest, StoresOnDifferentSocketsCoexist) {
  StoreOptions o1 = SmallStoreOptions(1 << 20), o2 = SmallStoreOptions(1 << 20);
  std::unique_ptr<Monitor> m1, m2;
  GLINT_ASSERT_OK(Monitor::Start(o1, &m1));
  GLINT_ASSERT_OK(Monitor::Start(o2, &m2));
  EXPECT_NE(m1->region_path(), m2->region_path());
  std::unique_ptr<Client> c1, c2;
  GLINT_ASSERT_OK(Client::Connect(o1.socket_path, &c1));
  GLINT_ASSERT_OK(Client::Connect(o2.socket_path, &c2));
  const ObjectId id = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(c1->BuildObject(id, 10, &mb));
  GLINT_ASSERT_OK(mb.Seal());
  EXPECT_TRUE(c1->Contains(id));
  EXPECT_FALSE(c2->Contains(id));
}

// ------------------------------------------------------------ batch get

TEST_F(ClientApiTest, GetObjectsBatch) {
  std::vector<ObjectId> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(MakeId(6, i));
    ASSERT_TRUE(Put(ids.back(), 100 + i));
  }
  std::vector<Buffer> bufs;
  GLINT_ASSERT_OK(client_->GetObjects(ids, &bufs, 0));
  ASSERT_EQ(bufs.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_TRUE(bufs[i].valid());
    EXPECT_EQ(bufs[i].id(), ids[i]);
    EXPECT_EQ(bufs[i].size(), static_cast<int64_t>(100 + i));
    EXPECT_EQ(CheckPattern(bufs[i].data(), bufs[i].size(), SeedOf(ids[i])), -1);
  }
  // One missing: TimedOut, the others filled in.
  std::vector<ObjectId> with_missing = ids;
  with_missing.insert(with_missing.begin() + 4, ObjectId::Random());
  const Status s = client_->GetObjects(with_missing, &bufs, 50);
  EXPECT_EQ(s.code(), StatusCode::kTimedOut) << s.ToString();
  ASSERT_EQ(bufs.size(), with_missing.size());
  for (size_t i = 0; i < with_missing.size(); ++i) {
    if (i == 4) {
      EXPECT_FALSE(bufs[i].valid());
      EXPECT_EQ(bufs[i].size(), 0);
    } else {
      ASSERT_TRUE(bufs[i].valid()) << i;
      EXPECT_EQ(bufs[i].id(), with_missing[i]);
      EXPECT_EQ(CheckPattern(bufs[i].data(), bufs[i].size(), SeedOf(with_missing[i])), -1);
    }
  }
  // With timeout 0 as well; an empty batch is OK.
  GLINT_EXPECT_CODE(client_->GetObjects(with_missing, &bufs, 0), StatusCode::kTimedOut);
  EXPECT_EQ(bufs.size(), with_missing.size());
  GLINT_EXPECT_OK(client_->GetObjects({}, &bufs, 0));
  EXPECT_TRUE(bufs.empty());
  // Duplicated ids are fine.
  GLINT_EXPECT_OK(client_->GetObjects({ids[0], ids[0]}, &bufs, 0));
  ASSERT_EQ(bufs.size(), 2u);
  EXPECT_EQ(bufs[0].data(), bufs[1].data());
  // Refilling the vector released what it held.
  bufs.clear();
  for (const ObjectId& id : ids) GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// ------------------------------------------------------------ waiters

class ClientApiThreadsTest : public StoreTest {
 protected:
  // A getter of `id` by id (this client) and one of `name` by name (another
  // client), on threads without a timeout, both asleep; then `act`, which
  // ends the build they wait for by aborting it. Both must answer kAborted,
  // woken at once (AllWoken reports a lost wake-up and rescues them).
  void ExpectIdAndNameWaitersAborted(const ObjectId& id, const std::string& name,
                                     const std::function<void()>& act);
};

// A getter in its own thread, waiting without a timeout for `id`: its
// answer goes to *st, then it counts itself in *done.
std::thread GetInThread(Client* c, const ObjectId& id, Status* st, std::atomic<int>* done) {
  return std::thread([=] {
    Buffer b;
    *st = c->GetObject(id, &b, -1);
    done->fetch_add(1);
  });
}

// Waiters here wait without a timeout: a getter that sleeps through its
// wake-up would otherwise still succeed, late, at its deadline. AllWoken
// reports such a lost wake-up (and rescues the sleeper).
void ClientApiThreadsTest::ExpectIdAndNameWaitersAborted(
    const ObjectId& id, const std::string& name, const std::function<void()>& act) {
  Status by_id, by_name;
  std::atomic<int> done{0};
  std::unique_ptr<Client> other;
  ASSERT_TRUE(Connect(&other));
  std::thread t1 = GetInThread(client_.get(), id, &by_id, &done);
  std::thread t2([&] {
    Buffer b;
    by_name = other->GetObjectByName(name, &b, -1);
    done.fetch_add(1);
  });
  const bool same_bucket =
      IdWaitHash(id) % core::kNumWaitBuckets == NameWaitHash(name) % core::kNumWaitBuckets;
  EXPECT_TRUE(WaitForSleepers(client_.get(), IdWaitHash(id), same_bucket ? 2 : 1));
  EXPECT_TRUE(WaitForSleepers(client_.get(), NameWaitHash(name), same_bucket ? 2 : 1));
  act();
  EXPECT_TRUE(AllWoken(done, 2, client_.get()));
  t1.join();
  t2.join();
  EXPECT_EQ(by_id.code(), StatusCode::kAborted) << by_id.ToString();
  EXPECT_EQ(by_name.code(), StatusCode::kAborted) << by_name.ToString();
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// Both getters saw the object being built, and sleep.
TEST_F(ClientApiThreadsTest, WaiterGetsAbortedWhenBuilderAborts) {
  const ObjectId id = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, 100, &mb, "to-abort"));
  ExpectIdAndNameWaitersAborted(id, "to-abort", [&] { GLINT_ASSERT_OK(mb.Abort()); });
}

TEST_F(ClientApiThreadsTest, WaiterGetsAbortedWhenBuildingBufferIsDropped) {
  const ObjectId id = ObjectId::Random();
  auto mb = std::make_unique<MutableBuffer>();
  GLINT_ASSERT_OK(client_->BuildObject(id, 100, mb.get()));
  Status st;
  std::atomic<int> done{0};
  std::thread t = GetInThread(client_.get(), id, &st, &done);
  EXPECT_TRUE(WaitForSleepers(client_.get(), IdWaitHash(id)));
  mb.reset();
  EXPECT_TRUE(AllWoken(done, 1, client_.get()));
  t.join();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
}

// Getters that began waiting before anyone built the object (the usual
// order for a consumer) learn of the abort too: they never saw the build,
// so the entry cannot tell them; the wait bucket's abort tags do.
TEST_F(ClientApiThreadsTest, WaiterFromBeforeTheBuildGetsAborted) {
  const ObjectId id = ObjectId::Random();
  // Built and aborted while they sleep: no wake-up on create, so neither
  // sees it being built.
  ExpectIdAndNameWaitersAborted(id, "aborted-later", [&] {
    MutableBuffer mb;
    GLINT_ASSERT_OK(client_->BuildObject(id, 100, &mb, "aborted-later"));
    GLINT_ASSERT_OK(mb.Abort());
  });
}

// The abort tags answer only the getters they concern: an abort from before
// the wait, or of another id whose wait bucket is the same, leaves the
// getter waiting (here: timing out). Six more aborts in the bucket after
// ours overwrite its tag (documented: the getter then keeps waiting).
TEST_F(ClientApiThreadsTest, AbortTagsConcernOnlyTheirIdAndLaterWaits) {
  const ObjectId id = ObjectId::Random();
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, 10, &mb));
  GLINT_ASSERT_OK(mb.Abort());
  Buffer b;
  // Aborted before this get began: it times out, not kAborted.
  GLINT_EXPECT_CODE(client_->GetObject(id, &b, 20), StatusCode::kTimedOut);

  // Another id in the same wait bucket, aborted while a getter of `id`
  // waits: not its abort.
  ObjectId twin;
  do {
    twin = ObjectId::Random();
  } while (IdWaitHash(twin) % core::kNumWaitBuckets !=
           IdWaitHash(id) % core::kNumWaitBuckets);
  Status st;
  std::thread t([&] { st = client_->GetObject(id, &b, 300); });
  ASSERT_TRUE(WaitForSleepers(client_.get(), IdWaitHash(id)));
  for (int i = 0; i < 3; ++i) {
    GLINT_ASSERT_OK(client_->BuildObject(twin, 10, &mb));
    GLINT_ASSERT_OK(mb.Abort());
  }
  t.join();
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// GetObjects counts aborts of every id it misses from its first pass: an id
// built and aborted while it waits for an earlier one answers kAborted (as
// GetObject of it would), not a timeout.
TEST_F(ClientApiThreadsTest, GetObjectsSeesAbortsOfLaterIdsWhileWaiting) {
  const ObjectId first = ObjectId::Random();
  const ObjectId later = ObjectId::Random();
  Status st;
  std::vector<Buffer> bufs;
  std::atomic<int> done{0};
  std::thread t([&] {
    st = client_->GetObjects({first, later}, &bufs, 20000);
    done.fetch_add(1);
  });
  ASSERT_TRUE(WaitForSleepers(client_.get(), IdWaitHash(first)));
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(later, 10, &mb));
  GLINT_ASSERT_OK(mb.Abort());
  ASSERT_TRUE(Put(first, 10));
  EXPECT_TRUE(AllWoken(done, 1, client_.get()));
  t.join();
  EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
  ASSERT_EQ(bufs.size(), 2u);
  EXPECT_TRUE(bufs[0].valid());
  EXPECT_FALSE(bufs[1].valid());
  bufs.clear();
  GLINT_ASSERT_OK(client_->Delete(first));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// A moved-from-and-to building buffer still wakes the getters of its id
// when it seals (the buffer carries the id's wait bucket).
TEST_F(ClientApiThreadsTest, MovedBuildingBufferWakesWaitersOnSeal) {
  const ObjectId id = ObjectId::Random();
  MutableBuffer first;
  GLINT_ASSERT_OK(client_->BuildObject(id, 100, &first));
  Status st;
  std::atomic<int> done{0};
  std::thread t = GetInThread(client_.get(), id, &st, &done);
  EXPECT_TRUE(WaitForSleepers(client_.get(), IdWaitHash(id)));
  MutableBuffer second(std::move(first));  // move construction
  MutableBuffer third;
  third = std::move(second);               // move assignment
  GLINT_ASSERT_OK(third.Seal());
  EXPECT_TRUE(AllWoken(done, 1, client_.get()));
  t.join();
  EXPECT_TRUE(st.ok()) << st.ToString();
}

// More getters asleep in one Client than it has log records: they must not
// starve the thread that builds what they wait for (sleepers leave records
// idle for other operations; the extra getters poll instead of sleeping).
TEST_F(ClientApiThreadsTest, ManySleepersDoNotStarveTheBuilder) {
  const ObjectId id = ObjectId::Random();
  constexpr int kGetters = 40;
  std::atomic<int> done{0}, ok{0};
  std::vector<std::thread> getters;
  for (int i = 0; i < kGetters; ++i) {
    getters.emplace_back([&] {
      Buffer b;
      if (client_->GetObject(id, &b, 60000).ok()) ok.fetch_add(1);
      done.fetch_add(1);
    });
  }
  EXPECT_TRUE(WaitForSleepers(client_.get(), IdWaitHash(id),
                              core::kRecordsPerClient - 8));
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(id, 64, &mb));
  GLINT_ASSERT_OK(mb.Seal());
  EXPECT_TRUE(AllWoken(done, kGetters, client_.get()));
  for (auto& t : getters) t.join();
  EXPECT_EQ(ok.load(), kGetters);
}

// A getter by id and one by name, each woken by the seal.
// Regression test: Seal and Abort once woke the bucket of (name hash | 1),
// so getters by a name of even hash slept through the seal (until their
// timeout, or forever); fixed in 7782f89.
TEST_F(ClientApiThreadsTest, WaiterWokenBySeal) {
  // Names whose hash is even and odd (the wait bucket is hash % 1024).
  std::string names[2];
  for (int i = 0; names[0].empty() || names[1].empty(); ++i) {
    const std::string n = "wait-name-" + std::to_string(i);
    names[NameWaitHash(n) & 1] = n;
  }
  for (const std::string& name : names) {
    const ObjectId id = ObjectId::Random();
    Status by_id, by_name;
    int64_t bad_id = 0, bad_name = 0;
    std::atomic<int> done{0};
    std::thread t1([&] {
      Buffer b;
      by_id = client_->GetObject(id, &b, -1);
      if (by_id.ok()) bad_id = CheckPattern(b.data(), b.size(), SeedOf(id));
      done.fetch_add(1);
    });
    std::thread t2([&] {
      Buffer b;
      by_name = client_->GetObjectByName(name, &b, -1);
      if (by_name.ok()) bad_name = CheckPattern(b.data(), b.size(), SeedOf(id));
      done.fetch_add(1);
    });
    const bool same_bucket =
        IdWaitHash(id) % core::kNumWaitBuckets == NameWaitHash(name) % core::kNumWaitBuckets;
    EXPECT_TRUE(WaitForSleepers(client_.get(), IdWaitHash(id), same_bucket ? 2 : 1));
    EXPECT_TRUE(WaitForSleepers(client_.get(), NameWaitHash(name), same_bucket ? 2 : 1));
    ASSERT_TRUE(Put(id, 1234, name));
    EXPECT_TRUE(AllWoken(done, 2, client_.get())) << "name " << name;
    t1.join();
    t2.join();
    GLINT_EXPECT_OK(by_id);
    GLINT_EXPECT_OK(by_name);
    EXPECT_EQ(bad_id, -1);
    EXPECT_EQ(bad_name, -1);
  }
}

// The same for an abort: waiters by name whose hash is even and odd.
TEST_F(ClientApiThreadsTest, NameWaiterGetsAbortedForEveryName) {
  for (int i = 0; i < 8; ++i) {
    const std::string name = "abort-name-" + std::to_string(i);
    MutableBuffer mb;
    GLINT_ASSERT_OK(client_->BuildObject(ObjectId::Random(), 10, &mb, name));
    Status st;
    std::atomic<int> done{0};
    std::thread t([&] {
      Buffer b;
      st = client_->GetObjectByName(name, &b, -1);
      done.fetch_add(1);
    });
    EXPECT_TRUE(WaitForSleepers(client_.get(), NameWaitHash(name)));
    GLINT_ASSERT_OK(mb.Abort());
    const ::testing::AssertionResult woken = AllWoken(done, 1, client_.get());
    t.join();
    ASSERT_TRUE(woken) << name;
    EXPECT_EQ(st.code(), StatusCode::kAborted) << name << ": " << st.ToString();
  }
}

// GetObjects makes keys a few ids ahead of the one it holds (to overlap the
// table's misses), then waits for what it did not find: every batch length
// around that distance, with one id missing at every position, fills
// exactly the right buffers and names the missing id. (A look-ahead that
// used the wrong key would only be slow: the wait pass finds those ids;
// BM_GetObjects shows the speed.)
TEST_F(ClientApiTest, GetObjectsEveryLengthAndMissingPosition) {
  std::vector<ObjectId> pool;
  for (int i = 0; i < 20; ++i) {
    pool.push_back(MakeId(9, i));
    ASSERT_TRUE(Put(pool.back(), 10 + i));
  }
  const ObjectId absent = MakeId(9, 1000);
  std::vector<Buffer> bufs;
  for (size_t n = 1; n <= pool.size(); ++n) {
    std::vector<ObjectId> ids(pool.begin(), pool.begin() + static_cast<ptrdiff_t>(n));
    const Status all = client_->GetObjects(ids, &bufs, 0);
    ASSERT_TRUE(all.ok()) << n << ": " << all.ToString();
    ASSERT_EQ(bufs.size(), n);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(bufs[i].valid()) << n << " " << i;
      EXPECT_EQ(bufs[i].id(), ids[i]);
      EXPECT_EQ(bufs[i].size(), static_cast<int64_t>(10 + i));
    }
    for (size_t miss = 0; miss < n; ++miss) {
      std::vector<ObjectId> with = ids;
      with[miss] = absent;
      const Status st = client_->GetObjects(with, &bufs, 0);
      EXPECT_EQ(st.code(), StatusCode::kTimedOut) << n << " " << miss;
      EXPECT_NE(st.message().find(absent.hex()), std::string::npos) << st.ToString();
      ASSERT_EQ(bufs.size(), n);
      for (size_t i = 0; i < n; ++i) {
        EXPECT_EQ(bufs[i].valid(), i != miss) << n << " " << miss << " " << i;
        if (i != miss) {
          EXPECT_EQ(bufs[i].id(), with[i]);
        }
      }
    }
  }
  bufs.clear();
  for (const ObjectId& id : pool) GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ClientApiThreadsTest, GetObjectsWaitsForAll) {
  std::vector<ObjectId> ids = {ObjectId::Random(), ObjectId::Random(), ObjectId::Random()};
  ASSERT_TRUE(Put(ids[0], 10));
  Status st;
  std::atomic<int> done{0};
  std::vector<Buffer> bufs;
  std::thread t([&] {
    st = client_->GetObjects(ids, &bufs, -1);
    done.fetch_add(1);
  });
  EXPECT_TRUE(WaitForSleepers(client_.get(), IdWaitHash(ids[1])));
  ASSERT_TRUE(Put(ids[2], 30));
  ASSERT_TRUE(Put(ids[1], 20));
  EXPECT_TRUE(AllWoken(done, 1, client_.get()));
  t.join();
  GLINT_ASSERT_OK(st);
  ASSERT_EQ(bufs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(bufs[i].size(), static_cast<int64_t>(10 * (i + 1)));
    EXPECT_EQ(CheckPattern(bufs[i].data(), bufs[i].size(), SeedOf(ids[i])), -1);
  }
}

// ------------------------------------------------------------ churn

class ChurnTest : public StoreTest {
 protected:
  void CustomizeOptions(StoreOptions* o) override {
    o->max_objects = 1000;
    o->capacity = 4 << 20;
  }
};

TEST_F(ChurnTest, MillionCyclesOverNewIdsReuseSlots) {
  const int kCycles = 1000000;
  for (int i = 0; i < kCycles; ++i) {
    const ObjectId id = MakeId(0xc0ffee, static_cast<uint64_t>(i));
    MutableBuffer mb;
    const Status s = client_->BuildObject(id, 64, &mb);
    ASSERT_TRUE(s.ok()) << "cycle " << i << ": " << s.ToString();
    mb.mutable_data()[0] = static_cast<uint8_t>(i);
    GLINT_ASSERT_OK(mb.Seal());
    if (i % 4096 == 0) {
      Buffer b;
      GLINT_ASSERT_OK(client_->GetObject(id, &b, 0));
      ASSERT_EQ(b.data()[0], static_cast<uint8_t>(i));
    }
    const Status d = client_->Delete(id);
    ASSERT_TRUE(d.ok()) << "cycle " << i << ": " << d.ToString();
  }
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(ChurnTest, TableHoldsMaxObjectsAndRecovers) {
  // max_objects live at once fit; after deleting them all, a new generation
  // of as many objects fits again.
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 1000; ++i) {
      const ObjectId id = MakeId(round + 10, i);
      MutableBuffer mb;
      const Status s = client_->BuildObject(id, 0, &mb);
      ASSERT_TRUE(s.ok()) << "round " << round << " object " << i << ": " << s.ToString();
      GLINT_ASSERT_OK(mb.Seal());
    }
    EXPECT_EQ(GetStats(client_.get()).objects_sealed, 1000);
    for (int i = 0; i < 1000; ++i) GLINT_ASSERT_OK(client_->Delete(MakeId(round + 10, i)));
    EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
  }
}

// More live objects than the table holds: kOutOfMemory naming the table,
// never a crash or a lost object; deleting makes room again.
TEST(TableFullTest, OutOfMemoryThenRoomAfterDeletes) {
  StoreOptions o = SmallStoreOptions(4 << 20);
  o.max_objects = 64;
  std::unique_ptr<Monitor> m;
  GLINT_ASSERT_OK(Monitor::Start(o, &m));
  std::unique_ptr<Client> c;
  GLINT_ASSERT_OK(Client::Connect(o.socket_path, &c));
  int made = 0;
  Status s;
  for (; made < 100000; ++made) {
    MutableBuffer mb;
    s = c->BuildObject(MakeId(77, made), 0, &mb);
    if (!s.ok()) break;
    GLINT_ASSERT_OK(mb.Seal());
  }
  EXPECT_EQ(s.code(), StatusCode::kOutOfMemory) << s.ToString();
  EXPECT_NE(s.message().find("table"), std::string::npos) << s.ToString();
  EXPECT_GE(made, 64) << "the table holds at least max_objects";
  EXPECT_EQ(GetStats(c.get()).objects_sealed, made);
  for (int i = 0; i < made; ++i) {
    Buffer b;
    GLINT_ASSERT_OK(c->GetObject(MakeId(77, i), &b, 0));
  }
  for (int i = 0; i < made; i += 2) GLINT_ASSERT_OK(c->Delete(MakeId(77, i)));
  MutableBuffer mb;
  GLINT_EXPECT_OK(c->BuildObject(MakeId(77, made), 0, &mb));
}

TEST_F(ChurnTest, SteadyStateChurnWithLiveWindow) {
  // 200,000 cycles keeping 500 objects alive (half of max_objects).
  const int kWindow = 500;
  for (int i = 0; i < 200000; ++i) {
    ASSERT_TRUE(Put(MakeId(99, i), i % 300)) << i;
    if (i >= kWindow) GLINT_ASSERT_OK(client_->Delete(MakeId(99, i - kWindow)));
  }
  for (int i = 200000 - kWindow; i < 200000; ++i) {
    Buffer b;
    GLINT_ASSERT_OK(client_->GetObject(MakeId(99, i), &b, 0));
    EXPECT_EQ(CheckPattern(b.data(), b.size(), SeedOf(MakeId(99, i))), -1);
    b.Release();
    GLINT_ASSERT_OK(client_->Delete(MakeId(99, i)));
  }
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// ================================================================ slots
//
// Tests that look at the table through the region (SlotTest). The spill
// count: an id lives in its first bucket while that has room; when it is full the
// id goes to its second bucket and the first counts it (the spill count),
// so look-ups and rival creators still find it. These tests fill a first
// bucket on purpose (the table of this store has few buckets).
class SlotTest : public StoreTest {
 protected:
  void CustomizeOptions(StoreOptions* o) override { o->max_objects = 256; }

  const core::Region Region() const {
    return core::Region(const_cast<uint8_t*>(client_->region_base()),
                        static_cast<uint64_t>(client_->region_size()));
  }
  core::Key KeyOf(const ObjectId& id) const {
    return core::MakeKey(core::IdHash(id.data()), Region().header()->obj_num_buckets);
  }
  uint32_t SpillOf(uint64_t bucket) const {
    return core::SpillOf(Region().obj_bucket(bucket)->used.load());
  }
  // `n` ids (tag `tag`) whose first bucket is `bucket`.
  std::vector<ObjectId> IdsInFirstBucket(uint64_t tag, uint64_t bucket, size_t n) const {
    std::vector<ObjectId> out;
    for (uint64_t i = 0; out.size() < n; ++i) {
      const ObjectId id = MakeId(tag, i);
      if (KeyOf(id).bucket[0] == bucket) out.push_back(id);
    }
    return out;
  }
  bool SealedIsFound(const ObjectId& id, int64_t size = 100) {
    Buffer b;
    const Status s = client_->GetObject(id, &b, 0);
    return s.ok() && b.size() == size && CheckPattern(b.data(), size, SeedOf(id)) == -1;
  }
};

TEST_F(SlotTest, ASpilledObjectIsFoundByEveryCallAndItsCountComesBack) {
  const ObjectId x = MakeId(77, 1);
  const core::Key kx = KeyOf(x);
  const std::vector<ObjectId> fill = IdsInFirstBucket(78, kx.bucket[0], core::kSlotsPerBucket);
  for (const ObjectId& id : fill) ASSERT_TRUE(Put(id, 100));
  ASSERT_EQ(SpillOf(kx.bucket[0]), 0u);
  ASSERT_TRUE(Put(x, 100, "spilled-x"));
  EXPECT_EQ(SpillOf(kx.bucket[0]), 1u);

  EXPECT_TRUE(SealedIsFound(x));
  EXPECT_TRUE(client_->Contains(x));
  Buffer b;
  GLINT_EXPECT_OK(client_->GetObjectByName("spilled-x", &b, 0));
  b.Release();
  ObjectInfo info;
  GLINT_EXPECT_OK(client_->GetObjectInfo(x, &info));
  EXPECT_EQ(info.name, "spilled-x");
  MutableBuffer mb;
  EXPECT_EQ(client_->BuildObject(x, 10, &mb).code(), StatusCode::kAlreadyExists);

  // The count is the first bucket's, not the slot's: emptying the first
  // bucket keeps it while x lives, and a new id of that bucket goes there.
  for (const ObjectId& id : fill) GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_EQ(SpillOf(kx.bucket[0]), 1u);
  EXPECT_TRUE(SealedIsFound(x));
  const ObjectId y = IdsInFirstBucket(79, kx.bucket[0], 1)[0];
  ASSERT_TRUE(Put(y, 100));
  EXPECT_EQ(SpillOf(kx.bucket[0]), 1u);

  GLINT_ASSERT_OK(client_->Delete(x));
  EXPECT_EQ(SpillOf(kx.bucket[0]), 0u);
  EXPECT_FALSE(client_->Contains(x));
  // x again: room in its first bucket now.
  ASSERT_TRUE(Put(x, 100));
  EXPECT_EQ(SpillOf(kx.bucket[0]), 0u);
  GLINT_ASSERT_OK(client_->Delete(x));
  GLINT_ASSERT_OK(client_->Delete(y));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

TEST_F(SlotTest, AbortedSpilledBuildTakesItsCountBack) {
  const ObjectId x = MakeId(80, 1);
  const core::Key kx = KeyOf(x);
  const std::vector<ObjectId> fill = IdsInFirstBucket(81, kx.bucket[0], core::kSlotsPerBucket);
  for (const ObjectId& id : fill) ASSERT_TRUE(Put(id, 100));
  MutableBuffer mb;
  GLINT_ASSERT_OK(client_->BuildObject(x, 100, &mb));
  EXPECT_EQ(SpillOf(kx.bucket[0]), 1u);
  GLINT_ASSERT_OK(mb.Abort());
  EXPECT_EQ(SpillOf(kx.bucket[0]), 0u);
  for (const ObjectId& id : fill) GLINT_ASSERT_OK(client_->Delete(id));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// A getter that saw generation g of a slot being built learns whether g was
// aborted from the entry's aborted_gens bits, even after the slot was reused:
// the last 31 generations of one slot, aborted or sealed at random, each
// answer for themselves (the slot's next claimer never clears them; whoever
// gives a slot back clears the next generation's bit).
TEST_F(SlotTest, AbortBitsOfEachGenerationSurviveReuseOfTheSlot) {
  const ObjectId x = MakeId(95, 1);
  const core::Region r = Region();
  core::Store store(r);
  const uint32_t slot = r.obj_slot(KeyOf(x).bucket[0], 0);
  std::mt19937 rng(7);
  std::vector<std::pair<uint64_t, bool>> history;  // generation, aborted
  for (int round = 0; round < 80; ++round) {
    MutableBuffer mb;
    GLINT_ASSERT_OK(client_->BuildObject(x, 16, &mb));
    const uint64_t st = r.entry(slot)->state.load();
    ASSERT_EQ(core::StateOf(st), core::kObjCreating) << "x is not in the slot expected";
    const uint64_t gen = core::GenOf(st);
    EXPECT_FALSE(store.WasAborted(slot, gen)) << "generation " << gen << " starts aborted";
    const bool abort = rng() % 2 == 0;
    if (abort) {
      GLINT_ASSERT_OK(mb.Abort());
    } else {
      GLINT_ASSERT_OK(mb.Seal());
      GLINT_ASSERT_OK(client_->Delete(x));
    }
    history.emplace_back(gen, abort);
    // Within 30 generations each answers for itself; further back the
    // answer is "aborted" for all (the getter that saw it being built did
    // not find it sealed); an aborted one is never reported otherwise.
    for (const auto& [g, aborted] : history) {
      if (gen - g <= 30) {
        EXPECT_EQ(store.WasAborted(slot, g), aborted) << "generation " << g << " at " << gen;
      } else {
        EXPECT_TRUE(store.WasAborted(slot, g)) << "generation " << g << " at " << gen;
      }
    }
  }
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// The same through GetObject: a getter (a child process) waits for x while
// it is being built and is stopped; x is aborted and `cycles` more
// generations pass through x's slot; the resumed getter must answer
// kAborted, not wait out its timeout. (Found in review: at 31 generations
// the abort bit was already cleared and the getter timed out.)
TEST_F(SlotTest, AWaitingGetterLearnsOfTheAbortHoweverOftenTheSlotWasReused) {
  const core::Region r = Region();
  for (int cycles : {1, 30, 31, 32, 40}) {
    const ObjectId x = MakeId(96, static_cast<uint64_t>(cycles));
    const core::Key kx = KeyOf(x);
    const uint32_t slot = r.obj_slot(kx.bucket[0], 0);
    MutableBuffer mb;
    GLINT_ASSERT_OK(client_->BuildObject(x, 16, &mb));
    const uint64_t g = core::GenOf(r.entry(slot)->state.load());
    ASSERT_EQ(r.entry(slot)->state.load(), core::MakeState(g, core::kObjCreating));
    core::WaitBucket* wb = r.wait_bucket(core::IdHash(x.data()));
    const uint32_t waiters0 = wb->waiters.load();
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
      std::unique_ptr<Client> c;
      if (!Client::Connect(options_.socket_path, &c).ok()) _exit(3);
      Buffer b;
      const Status s = c->GetObject(x, &b, 3000);
      _exit(s.code() == StatusCode::kAborted ? 0 : s.code() == StatusCode::kTimedOut ? 1 : 2);
    }
    ASSERT_TRUE(WaitUntil([&] { return wb->waiters.load() != waiters0; })) << "getter never slept";
    kill(pid, SIGSTOP);
    GLINT_ASSERT_OK(mb.Abort());
    const std::vector<ObjectId> ys =
        IdsInFirstBucket(97 + static_cast<uint64_t>(cycles), kx.bucket[0], cycles);
    for (int j = 0; j < cycles; ++j) {
      MutableBuffer m2;
      GLINT_ASSERT_OK(client_->BuildObject(ys[j], 16, &m2));
      ASSERT_EQ(core::GenOf(r.entry(slot)->state.load()), g + 1 + j) << "not x's slot";
      if (j % 2) {
        GLINT_ASSERT_OK(m2.Abort());
      } else {
        GLINT_ASSERT_OK(m2.Seal());
        GLINT_ASSERT_OK(client_->Delete(ys[j]));
      }
    }
    kill(pid, SIGCONT);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "after " << cycles << " generations the getter exited with " << status
        << " (1: timed out instead of kAborted)";
  }
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// The checker finds a spill count too low (an object its look-ups would
// miss), in a copy of the region.
TEST_F(SlotTest, CheckerReportsASpillCountTooLow) {
  const ObjectId x = MakeId(90, 1);
  const core::Key kx = KeyOf(x);
  std::vector<ObjectId> fill = IdsInFirstBucket(91, kx.bucket[0], core::kSlotsPerBucket + 1);
  const ObjectId x2 = fill.back();
  fill.pop_back();
  for (const ObjectId& id : fill) ASSERT_TRUE(Put(id, 100));
  ASSERT_TRUE(Put(x, 100));
  ASSERT_TRUE(Put(x2, 100));
  ASSERT_EQ(SpillOf(kx.bucket[0]), 2u);

  const uint64_t size = static_cast<uint64_t>(client_->region_size());
  std::unique_ptr<uint8_t, decltype(&std::free)> copy(
      static_cast<uint8_t*>(std::aligned_alloc(4096, size)), &std::free);
  std::memcpy(copy.get(), client_->region_base(), size);
  const core::Region r(copy.get(), size);
  EXPECT_TRUE(core::CheckRegion(r, true).ok());
  std::atomic<uint64_t>& used = r.obj_bucket(kx.bucket[0])->used;
  used.store(used.load() - core::kSpillOne);
  core::CheckReport rep = core::CheckRegion(r, true);
  EXPECT_FALSE(rep.ok());
  EXPECT_NE(rep.ToString().find("counts 1 spilled keys, but 2 live"), std::string::npos)
      << rep.ToString();
  used.store(core::UsedSlots(used.load()));
  for (bool quiescent : {true, false}) {
    rep = core::CheckRegion(r, quiescent);
    EXPECT_NE(rep.ToString().find("counts no spill"), std::string::npos) << rep.ToString();
  }
  // Too high is sound (a client died between raising it and claiming).
  used.store(core::UsedSlots(used.load()) | (uint64_t{9} << core::kSpillShift));
  EXPECT_TRUE(core::CheckRegion(r, true).ok());

  for (const ObjectId& id : fill) GLINT_ASSERT_OK(client_->Delete(id));
  GLINT_ASSERT_OK(client_->Delete(x));
  GLINT_ASSERT_OK(client_->Delete(x2));
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

// SlotTest's tests that run threads (the label "threads", run under TSan).
class SlotThreadsTest : public SlotTest {};

// Two threads build the same id from a common start while its first bucket
// has one free slot: one of them takes it, the other spills. Exactly one
// must win each round (the spill count is what makes the one in the first
// bucket look in the second).
TEST_F(SlotThreadsTest, RivalsOfOneIdAcrossTheTwoBucketsExactlyOneWins) {
  constexpr int kRounds = 300;
  std::unique_ptr<Client> other;
  ASSERT_TRUE(Connect(&other));
  int spilled_wins = 0;
  for (int round = 0; round < kRounds; ++round) {
    const ObjectId x = MakeId(82, static_cast<uint64_t>(round));
    const core::Key kx = KeyOf(x);
    // All but one slot of x's first bucket taken.
    const std::vector<ObjectId> fill =
        IdsInFirstBucket(83 + static_cast<uint64_t>(round), kx.bucket[0],
                         core::kSlotsPerBucket - 1);
    for (const ObjectId& id : fill) ASSERT_TRUE(Put(id, 8));
    std::atomic<int> ready{0};
    Status st[2];
    auto build = [&](int t) {
      Client* c = t == 0 ? client_.get() : other.get();
      ready.fetch_add(1);
      while (ready.load() < 2) {
      }
      MutableBuffer mb;
      st[t] = c->BuildObject(x, 8, &mb);
      if (!st[t].ok()) return;
      FillPattern(mb.mutable_data(), 8, SeedOf(x));
      st[t] = mb.Seal();
    };
    std::thread t0(build, 0), t1(build, 1);
    t0.join();
    t1.join();
    ASSERT_NE(st[0].ok(), st[1].ok()) << "round " << round << ": " << st[0].ToString()
                                      << " / " << st[1].ToString();
    for (const Status& s : st) {
      if (!s.ok()) {
        ASSERT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
      }
    }
    if (SpillOf(kx.bucket[0]) == 1) ++spilled_wins;
    ASSERT_TRUE(SealedIsFound(x, 8)) << "round " << round;
    GLINT_ASSERT_OK(client_->Delete(x));
    for (const ObjectId& id : fill) GLINT_ASSERT_OK(client_->Delete(id));
    ASSERT_EQ(SpillOf(kx.bucket[0]), 0u) << "round " << round;
  }
  // Either placement happens (which one wins is a race), and the count was
  // right in every round.
  RecordProperty("spilled_wins", spilled_wins);
  EXPECT_TRUE(StoreBecomesEmpty(client_.get()));
}

}  // namespace
}  // namespace glint::testing
