// Copyright (c) glint authors.
//
// fuzz_ops: the input decodes to a sequence of API calls on an embedded
// store; every result is compared with a small reference model, every byte
// read is checked, and at the end everything is released and the store must
// be empty again (no leaked byte, no leaked slot).

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/check.h"
#include "fuzz/fuzz_util.h"
#include "glint/glint.h"

namespace {

constexpr int64_t kCapacity = 8 << 20;
constexpr int kIds = 8;
constexpr int kMutables = 6;
constexpr int kBuffers = 12;

using glint::fuzz::Input;

[[noreturn]] void Die(const char* what, const glint::Status& s = glint::Status()) {
  glint::fuzz::Die("fuzz_ops: model mismatch", what, s);
}

#define EXPECT_CODE(status, want)                                         \
  do {                                                                    \
    const glint::Status& _st = (status);                                  \
    if (_st.code() != (want)) Die("unexpected status for " #status, _st); \
  } while (0)

glint::ObjectId Id(int i) { return glint::fuzz::PoolId("fuzz", i); }

std::string NameFor(uint8_t code) {
  switch (code % 8) {
    case 0: case 1: case 2: return "";
    case 3: return "alpha";
    case 4: return "beta";
    case 5: return std::string("nul\0byte", 8);
    case 6: return std::string(255, 'n');   // the longest allowed
    default: return std::string(256, 'x');  // one too long
  }
}

int64_t SizeFor(uint8_t code) {
  static const int64_t kSizes[] = {0, 1, 63, 64, 65, 1000, 4096, 16384, 16385,
                                   100000, 1 << 20, -1, kCapacity + 1,
                                   INT64_MAX, 3 << 20, 12345};
  return kSizes[code % 16];
}

uint8_t Pattern(uint32_t seed, int64_t off) {
  return static_cast<uint8_t>(seed * 131 + static_cast<uint32_t>(off) * 7 + (off >> 9));
}

struct Model {
  enum State { kAbsent, kBuilding, kSealed };
  State state = kAbsent;
  std::string name;
  int64_t size = 0;
  uint32_t seed = 0;
  glint::Metadata md;
};

struct Held {
  glint::Buffer buf;
  uint32_t seed = 0;
  bool metadata = false;
  std::string expect_meta;
};

struct Harness {
  std::unique_ptr<glint::Monitor> monitor;
  std::unique_ptr<glint::Client> client;

  Harness() {
    glint::StoreOptions o;
    o.socket_path = glint::fuzz::UniqueSocketPath("ops");
    o.capacity = kCapacity;
    o.max_objects = 1024;
    glint::Status s = glint::Monitor::Start(o, &monitor);
    if (s.ok()) s = glint::Client::Connect(o.socket_path, &client);
    if (!s.ok()) Die("cannot start the store", s);
  }
};

Harness* g_harness = nullptr;

Harness& H() {
  if (g_harness == nullptr) {
    g_harness = new Harness();
    // Stop the store at exit, so its socket and region file go with us.
    atexit([] {
      delete g_harness;
      g_harness = nullptr;
    });
  }
  return *g_harness;
}

void RunOne(Input& in) {
  glint::Client& c = *H().client;
  Model model[kIds];
  glint::MutableBuffer mb[kMutables];
  int mb_id[kMutables];
  std::fill(mb_id, mb_id + kMutables, -1);
  std::vector<Held> held(kBuffers);
  uint32_t next_seed = 1;

  auto name_taken = [&](const std::string& n) {
    if (n.empty()) return false;
    for (const Model& m : model) {
      if (m.state != Model::kAbsent && m.name == n) return true;
    }
    return false;
  };
  auto count = [&](Model::State st) {
    int64_t n = 0;
    for (const Model& m : model) n += m.state == st;
    return n;
  };

  for (int steps = 0; !in.empty() && steps < 400; ++steps) {
    const uint8_t op = in.Byte() % 13;
    const int id = in.Byte() % kIds;
    const int slot = in.Byte();
    switch (op) {
      case 0: {  // BuildObject
        const int m = slot % kMutables;
        const int64_t size = SizeFor(in.Byte());
        const std::string name = NameFor(in.Byte());
        glint::Metadata md;
        const uint8_t mdc = in.Byte();
        if (mdc & 1) md["format"] = "raw";
        if (mdc & 2) md[std::string("k\0ey", 4)] = std::string(mdc, 'v');
        if (mdc & 4) md["big"] = std::string(70000, 'b');  // over 64 KiB
        if (mdc & 8) {  // many keys (2,000 bytes in all)
          for (int k = 0; k < 200; ++k) md["key" + std::to_string(k)] = std::to_string(k * mdc);
        }
        // The out-parameter is reused: what it built before is aborted.
        if (mb_id[m] >= 0 && mb[m].building()) model[mb_id[m]].state = Model::kAbsent;
        mb_id[m] = -1;
        glint::Status s = c.BuildObject(Id(id), size, &mb[m], name, md);
        if (s.ok() != mb[m].building()) Die("BuildObject's status and buffer disagree");
        glint::StatusCode want = glint::StatusCode::kOk;
        if (size < 0 || size > kCapacity || name.size() > 255 || (mdc & 4)) {
          want = glint::StatusCode::kInvalidArgument;
        } else if (model[id].state != Model::kAbsent || name_taken(name)) {
          want = glint::StatusCode::kAlreadyExists;
        }
        if (want == glint::StatusCode::kOk && s.code() == glint::StatusCode::kOutOfMemory) {
          break;  // the heap may be full: allowed
        }
        EXPECT_CODE(s, want);
        if (!s.ok()) break;
        if (mb[m].size() != size) Die("BuildObject gave a buffer of another size");
        model[id] = Model{Model::kBuilding, name, size, next_seed++, md};
        mb_id[m] = id;
        uint8_t* p = mb[m].mutable_data();
        if (p == nullptr || reinterpret_cast<uintptr_t>(p) % 64 != 0) {
          Die("payload not 64-byte aligned");
        }
        for (int64_t i = 0; i < size; ++i) p[i] = Pattern(model[id].seed, i);
        break;
      }
      case 1: {  // Seal
        const int m = slot % kMutables;
        const bool building = mb_id[m] >= 0 && model[mb_id[m]].state == Model::kBuilding;
        glint::Status s = mb[m].Seal();
        EXPECT_CODE(s, building ? glint::StatusCode::kOk
                                : glint::StatusCode::kFailedPrecondition);
        if (building) model[mb_id[m]].state = Model::kSealed;
        if (building) mb_id[m] = -1;
        break;
      }
      case 2: {  // Abort
        const int m = slot % kMutables;
        const bool building = mb_id[m] >= 0 && model[mb_id[m]].state == Model::kBuilding;
        glint::Status s = mb[m].Abort();
        EXPECT_CODE(s, building ? glint::StatusCode::kOk
                                : glint::StatusCode::kFailedPrecondition);
        if (building) model[mb_id[m]].state = Model::kAbsent;
        mb_id[m] = -1;
        break;
      }
      case 3: {  // Resize
        const int m = slot % kMutables;
        const int64_t size = SizeFor(in.Byte());
        const bool building = mb_id[m] >= 0 && model[mb_id[m]].state == Model::kBuilding;
        glint::Status s = mb[m].Resize(size);
        if (!building) {
          EXPECT_CODE(s, glint::StatusCode::kFailedPrecondition);
          break;
        }
        if (size < 0 || size > kCapacity) {
          EXPECT_CODE(s, glint::StatusCode::kInvalidArgument);
          break;
        }
        if (s.code() == glint::StatusCode::kOutOfMemory) break;
        EXPECT_CODE(s, glint::StatusCode::kOk);
        Model& md = model[mb_id[m]];
        const uint8_t* p = mb[m].data();
        const int64_t keep = std::min(md.size, size);
        for (int64_t i = 0; i < keep; ++i) {
          if (p[i] != Pattern(md.seed, i)) Die("Resize lost bytes");
        }
        uint8_t* w = mb[m].mutable_data();
        for (int64_t i = keep; i < size; ++i) w[i] = Pattern(md.seed, i);
        md.size = size;
        break;
      }
      case 4:    // GetObject
      case 8: {  // GetObjectByName
        Held& h = held[slot % kBuffers];
        glint::Status s;
        int target = id;
        if (op == 4) {
          s = c.GetObject(Id(id), &h.buf, 0);
        } else {
          const std::string name = NameFor(static_cast<uint8_t>(slot));
          target = -1;
          for (int i = 0; i < kIds; ++i) {
            if (model[i].state == Model::kSealed && !name.empty() && model[i].name == name) {
              target = i;
            }
          }
          s = c.GetObjectByName(name, &h.buf, 0);
          if (name.empty() || name.size() > 255) {
            EXPECT_CODE(s, glint::StatusCode::kInvalidArgument);
            break;
          }
        }
        const bool sealed = target >= 0 && model[target].state == Model::kSealed;
        EXPECT_CODE(s, sealed ? glint::StatusCode::kOk : glint::StatusCode::kTimedOut);
        if (!sealed) break;
        if (h.buf.size() != model[target].size || h.buf.id() != Id(target)) {
          Die("GetObject returned another object");
        }
        h.seed = model[target].seed;
        h.metadata = false;
        for (int64_t i = 0; i < h.buf.size(); ++i) {
          if (h.buf.data()[i] != Pattern(h.seed, i)) Die("GetObject bytes differ");
        }
        break;
      }
      case 5: {  // Release (checks the bytes one last time)
        Held& h = held[slot % kBuffers];
        if (h.buf.valid() && !h.metadata) {
          for (int64_t i = 0; i < h.buf.size(); ++i) {
            if (h.buf.data()[i] != Pattern(h.seed, i)) Die("held bytes changed");
          }
        }
        h.buf.Release();
        if (h.buf.valid()) Die("Release left the buffer valid");
        break;
      }
      case 6: {  // Delete
        glint::Status s = c.Delete(Id(id));
        const bool sealed = model[id].state == Model::kSealed;
        EXPECT_CODE(s, sealed ? glint::StatusCode::kOk : glint::StatusCode::kNotFound);
        if (sealed) model[id].state = Model::kAbsent;
        break;
      }
      case 7:  // Contains
        if (c.Contains(Id(id)) != (model[id].state == Model::kSealed)) {
          Die("Contains disagrees with the model");
        }
        break;
      case 9: {  // GetMetadata
        Held& h = held[slot % kBuffers];
        const std::string key = (slot & 3) == 1   ? "format"
                                : (slot & 3) == 2 ? "key" + std::to_string(slot % 211)
                                                  : std::string("k\0ey", 4);
        glint::Status s = c.GetMetadata(Id(id), key, &h.buf);
        const bool sealed = model[id].state == Model::kSealed;
        const auto it = sealed ? model[id].md.find(key) : model[id].md.end();
        const bool found = sealed && it != model[id].md.end();
        EXPECT_CODE(s, found ? glint::StatusCode::kOk : glint::StatusCode::kNotFound);
        if (found) {
          if (std::string(reinterpret_cast<const char*>(h.buf.data()),
                          static_cast<size_t>(h.buf.size())) != it->second) {
            Die("metadata value differs");
          }
          h.metadata = true;
        }
        break;
      }
      case 10: {  // Stats
        glint::StoreStats st;
        EXPECT_CODE(c.Stats(&st), glint::StatusCode::kOk);
        if (st.objects_sealed != count(Model::kSealed) ||
            st.objects_building != count(Model::kBuilding)) {
          Die("Stats object counts disagree with the model");
        }
        if (st.bytes_in_use < 0 || st.bytes_in_use > st.capacity ||
            st.largest_free_block > st.bytes_free) {
          Die("Stats byte counts are inconsistent");
        }
        break;
      }
      case 11: {  // ListObjects
        std::vector<glint::ObjectInfo> all;
        EXPECT_CODE(c.ListObjects(&all), glint::StatusCode::kOk);
        if (static_cast<int64_t>(all.size()) !=
            count(Model::kSealed) + count(Model::kBuilding)) {
          Die("ListObjects size disagrees with the model");
        }
        for (const auto& info : all) {
          int i = info.id.data()[15];
          if (i >= kIds || model[i].state == Model::kAbsent ||
              info.sealed != (model[i].state == Model::kSealed) ||
              info.name != model[i].name) {
            Die("ListObjects entry disagrees with the model");
          }
        }
        break;
      }
      case 12: {  // GetObjectInfo
        glint::ObjectInfo info;
        glint::Status s = c.GetObjectInfo(Id(id), &info);
        EXPECT_CODE(s, model[id].state == Model::kAbsent ? glint::StatusCode::kNotFound
                                                          : glint::StatusCode::kOk);
        if (s.ok() && (info.size != model[id].size || info.name != model[id].name)) {
          Die("GetObjectInfo disagrees with the model");
        }
        break;
      }
    }
  }

  // Leave nothing behind: release, abort, delete, and the store is empty.
  for (Held& h : held) h.buf.Release();
  for (auto& m : mb) {
    if (m.building()) EXPECT_CODE(m.Abort(), glint::StatusCode::kOk);
  }
  for (int i = 0; i < kIds; ++i) {
    if (model[i].state == Model::kSealed) EXPECT_CODE(c.Delete(Id(i)), glint::StatusCode::kOk);
  }
  glint::StoreStats st;
  EXPECT_CODE(c.Stats(&st), glint::StatusCode::kOk);
  if (st.bytes_in_use != 0 || st.objects_sealed != 0 || st.objects_building != 0 ||
      st.largest_free_block != st.capacity) {
    fprintf(stderr, "in use %lld sealed %lld building %lld largest %lld\n",
            static_cast<long long>(st.bytes_in_use),
            static_cast<long long>(st.objects_sealed),
            static_cast<long long>(st.objects_building),
            static_cast<long long>(st.largest_free_block));
    Die("the store is not empty after every object was released");
  }
  const glint::core::CheckReport rep = glint::core::CheckRegion(
      glint::fuzz::RegionOf(c), /*quiescent=*/true);
  if (!rep.ok()) {
    fprintf(stderr, "%s\n", rep.ToString().c_str());
    Die("the checker finds the emptied store unsound");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  RunOne(in);
  return 0;
}
