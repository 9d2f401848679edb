// Copyright (c) glint authors.
//
// fuzz_crash: a client dies at any step of any sequence of operations. The
// input is a crash point and a sequence of operations (build with a size, a
// name and metadata, write, resize, seal, abort, get, release, delete, on a
// few ids). A forked child connects, arms the crash countdown (this target
// links glint_crash, whose GLINT_CRASH_POINT()s are live) and runs the
// sequence: it is killed with SIGKILL right after its k-th shared-memory
// step, with no cleanup at all, exactly as a crash (or, if the sequence
// passes fewer than k steps, it kills itself at the end, holding whatever it
// holds). The child reports through a shared page which operations
// completed and whether each succeeded.
//
// The monitor (embedded in this process) recovers the child. Then the store
// must equal the reference model, replayed over the operations that
// completed: every object the model has sealed is there, whole (size, bytes,
// name, metadata); nothing else is (what the child was building is gone).
// Only the operation the child died in may have happened or not: its object
// may be in either state, never in a third. The quiescent checker must find
// the store sound; then everything is deleted, and the store must be empty
// with every name free to build again.

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/crash_point.h"
#include "core/object_table.h"
#include "fuzz/fuzz_util.h"

namespace {

using glint::Status;
using glint::StatusCode;
using glint::fuzz::Input;

[[noreturn]] void Die(const char* what, const Status& s = Status()) {
  glint::fuzz::Die("fuzz_crash", what, s);
}

constexpr int kIds = 6;
constexpr int kMutables = 3;
constexpr int kHeld = 4;
constexpr int kMaxOps = 48;

glint::ObjectId Id(int i) { return glint::fuzz::PoolId("crash", i); }

const char* const kNames[] = {"", "alpha", "beta", ""};

uint8_t Pattern(uint32_t seed, int64_t off) {
  return static_cast<uint8_t>(seed * 167 + static_cast<uint32_t>(off) * 13 + (off >> 10));
}

// One operation, decoded from the input.
struct Op {
  enum Kind : uint8_t { kBuild, kSeal, kAbort, kResize, kGet, kRelease, kDelete } kind;
  uint8_t id;    // kBuild, kGet, kDelete
  uint8_t slot;  // mutable (build/seal/abort/resize) or held buffer (get/release)
  int64_t size;  // kBuild, kResize
  uint8_t name;  // kBuild: index into kNames
  bool metadata;
};

int64_t SizeFor(uint8_t code) {
  static const int64_t kSizes[] = {0, 1, 64, 100, 4096, 20000, 70000, 300000};
  return kSizes[code % 8];
}

std::vector<Op> Decode(Input& in) {
  std::vector<Op> ops;
  while (!in.empty() && ops.size() < kMaxOps) {
    const uint8_t a = in.Byte();
    const uint8_t b = in.Byte();
    Op op{};
    op.kind = static_cast<Op::Kind>(a % 7);
    op.id = static_cast<uint8_t>((a >> 3) % kIds);
    op.slot = b;
    op.size = SizeFor(b >> 2);
    op.name = static_cast<uint8_t>(b >> 5) % 4;
    op.metadata = (a & 0x80) != 0;
    ops.push_back(op);
  }
  return ops;
}

// What the child tells the parent: how many operations completed, and
// whether each one succeeded. Shared memory, written before each death.
struct Progress {
  std::atomic<int32_t> done;
  std::atomic<uint8_t> ok[kMaxOps];
};

// The reference model: what each id is, and which mutable builds it.
struct Model {
  enum State : uint8_t { kAbsent, kBuilding, kSealed };
  struct Obj {
    State state = kAbsent;
    int64_t size = 0;
    uint32_t seed = 0;
    uint8_t name = 0;
    bool metadata = false;
  };
  Obj obj[kIds];
  int building[kMutables] = {-1, -1, -1};  // id built by each mutable, or -1
  uint32_t next_seed = 1;

  bool NameTaken(uint8_t name) const {
    if (kNames[name][0] == '\0') return false;
    for (const Obj& o : obj) {
      if (o.state != kAbsent && strcmp(kNames[o.name], kNames[name]) == 0) return true;
    }
    return false;
  }
  // Whether the operation can succeed (the child runs only those; a build
  // may still fail for want of memory, which the child reports).
  bool Valid(const Op& op) const {
    switch (op.kind) {
      case Op::kBuild:
        return building[op.slot % kMutables] < 0 && obj[op.id].state == kAbsent &&
               !NameTaken(op.name);
      case Op::kSeal:
      case Op::kAbort:
      case Op::kResize:
        return building[op.slot % kMutables] >= 0;
      case Op::kDelete:
        return obj[op.id].state == kSealed;
      default:
        return true;  // get and release are always tried
    }
  }
  // Applies a successful operation.
  void Apply(const Op& op) {
    const int m = op.slot % kMutables;
    switch (op.kind) {
      case Op::kBuild:
        obj[op.id] = Obj{kBuilding, op.size, next_seed++, op.name, op.metadata};
        building[m] = op.id;
        break;
      case Op::kSeal:
        obj[building[m]].state = kSealed;
        building[m] = -1;
        break;
      case Op::kAbort:
        obj[building[m]].state = kAbsent;
        building[m] = -1;
        break;
      case Op::kResize:
        obj[building[m]].size = op.size;
        break;
      case Op::kDelete:
        obj[op.id].state = kAbsent;
        break;
      default:
        break;
    }
  }
};

glint::Metadata MetadataOf(const Model::Obj& o) {
  glint::Metadata md;
  if (o.metadata) md["seed"] = std::to_string(o.seed);
  return md;
}

// In the child: runs the operations the model says can succeed, reporting
// each; dies by the crash countdown, or kills itself at the end.
[[noreturn]] void RunChild(const std::string& socket, int64_t crash_at,
                           const std::vector<Op>& ops, Progress* p) {
  std::unique_ptr<glint::Client> c;
  if (!glint::Client::Connect(socket, &c).ok()) _exit(3);
  glint::MutableBuffer mb[kMutables];
  glint::Buffer held[kHeld];
  Model model;
  glint::core::g_crash_countdown.store(crash_at);
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    bool ok = false;
    if (model.Valid(op)) {
      const int m = op.slot % kMutables;
      Status s;
      switch (op.kind) {
        case Op::kBuild: {
          const Model::Obj o{Model::kBuilding, op.size, model.next_seed, op.name, op.metadata};
          s = c->BuildObject(Id(op.id), op.size, &mb[m], kNames[op.name], MetadataOf(o));
          if (s.ok()) {
            for (int64_t k = 0; k < op.size; ++k) mb[m].mutable_data()[k] = Pattern(o.seed, k);
          } else if (s.code() != StatusCode::kOutOfMemory) {
            _exit(10);  // a build the model says is valid
          }
          break;
        }
        case Op::kSeal: s = mb[m].Seal(); break;
        case Op::kAbort: s = mb[m].Abort(); break;
        case Op::kResize: {
          const Model::Obj& o = model.obj[model.building[m]];
          s = mb[m].Resize(op.size);
          if (s.ok()) {
            for (int64_t k = o.size; k < op.size; ++k) mb[m].mutable_data()[k] = Pattern(o.seed, k);
          } else if (s.code() != StatusCode::kOutOfMemory) {
            _exit(11);
          }
          break;
        }
        case Op::kGet: s = c->GetObject(Id(op.id), &held[op.slot % kHeld], 0); break;
        case Op::kRelease: held[op.slot % kHeld].Release(); break;
        case Op::kDelete: s = c->Delete(Id(op.id)); break;
      }
      ok = s.ok();
      if (ok) model.Apply(op);
      if (!ok && (op.kind == Op::kSeal || op.kind == Op::kAbort || op.kind == Op::kDelete)) {
        _exit(12);  // the model says these cannot fail here
      }
    }
    p->ok[i].store(ok ? 1 : 0, std::memory_order_relaxed);
    p->done.store(static_cast<int32_t>(i + 1), std::memory_order_release);
  }
  raise(SIGKILL);  // died after the last operation, holding what it holds
  _exit(13);
}

// The first buckets of pool ids 0 and 1 are kept full of sealed objects of
// size 0 (made once, at start): those two ids then always live in their
// second bucket, counted in the first's spill count (see
// ObjectTable::ClaimObjectSlot), so every input also tries a crash at each
// step of a spilled create, seal, abort and delete, and its recovery.
constexpr int kSpilledIds = 2;

struct Harness {
  std::unique_ptr<glint::Monitor> monitor;
  std::unique_ptr<glint::Client> client;
  Progress* progress = nullptr;
  int64_t fillers = 0;  // the objects that keep those buckets full

  Harness() {
    glint::StoreOptions o;
    o.socket_path = glint::fuzz::UniqueSocketPath("crash");
    o.capacity = 2 << 20;
    o.max_objects = 256;
    o.max_clients = 4;
    Status s = glint::Monitor::Start(o, &monitor);
    if (s.ok()) s = glint::Client::Connect(o.socket_path, &client);
    if (!s.ok()) Die("cannot start the store", s);
    FillBuckets();
    void* page = mmap(nullptr, sizeof(Progress), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) Die("mmap");
    progress = new (page) Progress();
  }
  void FillBuckets();
};

void Harness::FillBuckets() {
  const glint::core::Region r = glint::fuzz::RegionOf(*client);
  const uint64_t nb = r.header()->obj_num_buckets;
  auto first_bucket = [nb](const glint::ObjectId& id) {
    return glint::core::MakeKey(glint::core::IdHash(id.data()), nb).bucket[0];
  };
  std::vector<uint64_t> full;
  for (int i = 0; i < kSpilledIds; ++i) {
    const uint64_t b = first_bucket(Id(i));
    if (std::find(full.begin(), full.end(), b) != full.end()) continue;
    full.push_back(b);
    int placed = 0;
    for (uint64_t n = 0; placed < static_cast<int>(glint::core::kSlotsPerBucket); ++n) {
      char bytes[16] = "filler";
      std::memcpy(bytes + 8, &n, 8);
      const glint::ObjectId id = glint::ObjectId::FromBinary(std::string_view(bytes, 16));
      if (first_bucket(id) != b) continue;
      glint::MutableBuffer mb;
      Status s = client->BuildObject(id, 0, &mb);
      if (s.ok()) s = mb.Seal();
      if (!s.ok()) Die("cannot fill a bucket", s);
      ++placed;
      ++fillers;
    }
  }
  for (int i = 0; i < kSpilledIds; ++i) {
    const uint64_t b = first_bucket(Id(i));
    if (glint::core::UsedSlots(r.obj_bucket(b)->used.load()) != glint::core::kUsedSlotsMask) {
      Die("a filled bucket is not full");
    }
    // And the setup does what it is for: the id is built in its second
    // bucket, with the first bucket's spill count raised.
    const glint::core::Key k = glint::core::MakeKey(glint::core::IdHash(Id(i).data()), nb);
    glint::MutableBuffer mb;
    const Status s = client->BuildObject(Id(i), 1, &mb);
    if (!s.ok()) Die("cannot build a spilled id", s);
    uint64_t st;
    const uint32_t slot = glint::core::ObjectTable(r).FindLive(
        k, glint::core::LoadIdWords(Id(i).data()), &st);
    if (slot == glint::core::kNoSlot || r.obj_bucket_of(slot) != k.bucket[1] ||
        glint::core::SpillOf(r.obj_bucket(k.bucket[0])->used.load()) == 0) {
      Die("an id of a filled bucket did not spill");
    }
    if (!mb.Abort().ok()) Die("Abort failed");
  }
}

Harness& H() {
  static Harness* h = [] {
    auto* made = new Harness();
    atexit([] { H().client.reset(), H().monitor.reset(); });
    return made;
  }();
  return *h;
}

// The store holds exactly what `model` has sealed, with `in_flight` (an id
// or -1) also allowed to be as in `after`.
void Compare(glint::Client& c, const Model& model, const Model& after, int in_flight) {
  for (int i = 0; i < kIds; ++i) {
    glint::Buffer buf;
    const Status s = c.GetObject(Id(i), &buf, 0);
    const bool sealed = model.obj[i].state == Model::kSealed;
    const bool either = i == in_flight && (after.obj[i].state == Model::kSealed) != sealed;
    if (!s.ok() && s.code() != StatusCode::kTimedOut) Die("GetObject failed", s);
    if (s.ok() != sealed && !either) {
      fprintf(stderr, "id %d: store %s, model %s\n", i, s.ok() ? "sealed" : "absent",
                      sealed ? "sealed" : "absent");
      Die("the store after recovery differs from the model");
    }
    if (!s.ok()) continue;
    const Model::Obj& o = sealed ? model.obj[i] : after.obj[i];
    if (buf.size() != o.size) Die("a recovered object has another size");
    for (int64_t k = 0; k < o.size; ++k) {
      if (buf.data()[k] != Pattern(o.seed, k)) Die("a recovered object's bytes differ");
    }
    glint::ObjectInfo info;
    if (!c.GetObjectInfo(Id(i), &info).ok() || info.name != kNames[o.name]) {
      Die("a recovered object lost its name");
    }
    if (!info.name.empty()) {
      glint::Buffer by_name;
      if (!c.GetObjectByName(info.name, &by_name, 0).ok() || by_name.id() != Id(i)) {
        Die("a recovered object cannot be found by its name");
      }
    }
    glint::Buffer md;
    const Status ms = c.GetMetadata(Id(i), "seed", &md);
    if (o.metadata != ms.ok() ||
        (ms.ok() && std::string(reinterpret_cast<const char*>(md.data()),
                                static_cast<size_t>(md.size())) != std::to_string(o.seed))) {
      Die("a recovered object's metadata differs", ms);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness& h = H();
  Input in(data, size);
  const int64_t crash_at = 1 + static_cast<int64_t>(in.Bytes(2) % 512);
  const std::vector<Op> ops = Decode(in);
  h.progress->done.store(0);
  const pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) RunChild(h.monitor->socket_path(), crash_at, ops, h.progress);
  int status = 0;
  pid_t w;
  do {
    w = waitpid(pid, &status, 0);
  } while (w < 0 && errno == EINTR);  // libFuzzer's timer signals
  if (w != pid) Die("waitpid");
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
    fprintf(stderr, "child status %d\n", status);
    Die("the child failed before its crash point (see its exit code in RunChild)");
  }
  glint::Client& c = *h.client;
  const glint::core::Region r = glint::fuzz::RegionOf(c);
  if (!glint::fuzz::OthersRecovered(r, c.client_slot())) Die("the child was not recovered");

  // The model over what completed; and with the operation in flight applied.
  Model model;
  const int done = h.progress->done.load(std::memory_order_acquire);
  for (int i = 0; i < done; ++i) {
    if (h.progress->ok[i].load(std::memory_order_relaxed)) model.Apply(ops[i]);
  }
  Model after = model;
  int in_flight = -1;
  if (done < static_cast<int>(ops.size()) && model.Valid(ops[done])) {
    const Op& op = ops[done];
    after.Apply(op);
    in_flight = op.kind == Op::kDelete ? op.id
                : op.kind == Op::kSeal ? model.building[op.slot % kMutables]
                                       : -1;
  }
  if (getenv("GLINT_FUZZ_VERBOSE") != nullptr) {
    int sealed = 0;
    for (const auto& o : model.obj) sealed += o.state == Model::kSealed;
    fprintf(stderr, "fuzz_crash: crash point %lld, %d of %zu operations done, %d sealed\n",
            static_cast<long long>(crash_at), done, ops.size(), sealed);
  }
  Compare(c, model, after, in_flight);

  const glint::core::CheckReport rep = glint::core::CheckRegion(r, /*quiescent=*/true);
  if (!rep.ok()) {
    fprintf(stderr, "%s\n", rep.ToString().c_str());
    Die("the store is not sound after recovery");
  }
  // Back to empty for the next input, and every name free again.
  for (int i = 0; i < kIds; ++i) {
    const Status s = c.Delete(Id(i));
    if (!s.ok() && s.code() != StatusCode::kNotFound) Die("Delete failed", s);
  }
  for (const char* name : kNames) {
    if (name[0] == '\0') continue;
    glint::MutableBuffer mb;
    const Status s = c.BuildObject(Id(kIds), 1, &mb, name);
    if (!s.ok()) Die("a name is still taken after recovery and deletes", s);
    if (!mb.Abort().ok()) Die("Abort failed");
  }
  glint::StoreStats st;
  if (!c.Stats(&st).ok()) Die("Stats failed");
  if (st.bytes_in_use != 0 || st.objects_sealed != h.fillers || st.objects_building != 0 ||
      st.largest_free_block != st.capacity) {
    Die("the store is not empty (but for the fillers) once every object is deleted");
  }
  return 0;
}
