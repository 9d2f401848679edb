// Copyright (c) glint authors.
//
// glint_compare_alloc: glint's allocator (alloc::Heap over a region in
// private memory, one process) against mimalloc's mi_malloc / mi_free on the
// same sequence of requests. Built only when mimalloc is found, and the only
// program here that links it: Debian's libmimalloc replaces malloc for the
// whole process.
//
// Two patterns, each a list of operations generated in advance from a fixed
// seed and replayed on both allocators (neither ever touches the memory it
// gets, so only the allocators' own work is timed):
//   mix   fill the 256 MiB heap to 90% with sizes log-uniform in
//         64 B .. 64 KiB, then churn: free a random block when above 90%,
//         allocate a random size when below;
//   frag  fill to 90% alternating small (64 B .. 1 KiB) and large
//         (32 .. 256 KiB) blocks, free every large one, refill to 90% with
//         medium blocks (4 .. 64 KiB), free a random half of everything,
//         refill to 90% with large blocks (32 KiB .. 1 MiB).
// "Full" is counted in glint's rounded sizes (alloc::AllocSize).
//
// Output lines (see compare_util.h):
//   R alloc_<pattern> <glint|mimalloc> 0 <ops/s median of reps> <ops/s min>
//   R alloc_largest_<pattern> glint <percent used> <largest request that
//     succeeds at the end> <free bytes then>
//   R alloc_failed_<pattern> glint 0 <failed allocations> <allocations>

#include <mimalloc.h>
#include <sys/mman.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "alloc/heap.h"
#include "bench/compare_util.h"
#include "core/region.h"

namespace glint::bench {
namespace {

constexpr uint64_t kHeap = uint64_t{256} << 20;
constexpr double kFull = 0.90;

struct Op {
  uint32_t slot;
  uint32_t alloc;  // 1: allocate `size` into slot; 0: free slot
  uint64_t size;
};

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  uint64_t LogUniform(uint64_t lo, uint64_t hi) {
    std::uniform_real_distribution<double> d(std::log(double(lo)),
                                             std::log(double(hi)));
    return static_cast<uint64_t>(std::exp(d(rng_)));
  }
  uint64_t Below(uint64_t n) {
    return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_);
  }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

// Builds an op list while tracking what is alive (slot -> size).
class Script {
 public:
  bool Full() const { return double(used_) >= kFull * double(kHeap); }
  void Alloc(uint64_t size) {
    uint32_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = static_cast<uint32_t>(sizes_.size());
      sizes_.push_back(0);
    }
    sizes_[slot] = size;
    live_.push_back(slot);
    used_ += alloc::AllocSize(size);
    ops_.push_back({slot, 1, size});
  }
  // Frees the i-th live block.
  void FreeLive(size_t i) {
    const uint32_t slot = live_[i];
    live_[i] = live_.back();
    live_.pop_back();
    used_ -= alloc::AllocSize(sizes_[slot]);
    free_slots_.push_back(slot);
    ops_.push_back({slot, 0, 0});
  }
  void FreeAll() {
    while (!live_.empty()) FreeLive(live_.size() - 1);
  }
  size_t live() const { return live_.size(); }
  uint64_t size_of_live(size_t i) const { return sizes_[live_[i]]; }
  size_t slots() const { return sizes_.size(); }
  std::vector<Op>& ops() { return ops_; }

 private:
  std::vector<uint64_t> sizes_;
  std::vector<uint32_t> live_;
  std::vector<uint32_t> free_slots_;
  std::vector<Op> ops_;
  uint64_t used_ = 0;
};

// The ops, and where the measured end state (90% full) is: ops_[0, end).
struct Pattern {
  std::vector<Op> ops;
  size_t end;  // after this many ops the heap is at its fullest
  size_t slots;
};

Pattern MakeMix(uint64_t churn) {
  Gen g(1);
  Script s;
  while (!s.Full()) s.Alloc(g.LogUniform(64, 64 << 10));
  for (uint64_t i = 0; i < churn; ++i) {
    if (s.Full()) {
      s.FreeLive(g.Below(s.live()));
    } else {
      s.Alloc(g.LogUniform(64, 64 << 10));
    }
  }
  while (!s.Full()) s.Alloc(g.LogUniform(64, 64 << 10));
  const size_t end = s.ops().size();
  s.FreeAll();
  return {std::move(s.ops()), end, s.slots()};
}

Pattern MakeFrag() {
  Gen g(2);
  Script s;
  for (bool small = true; !s.Full(); small = !small) {
    s.Alloc(small ? g.LogUniform(64, 1024) : g.LogUniform(32 << 10, 256 << 10));
  }
  for (size_t i = s.live(); i-- > 0;) {
    if (s.size_of_live(i) > 1024) s.FreeLive(i);
  }
  while (!s.Full()) s.Alloc(g.LogUniform(4 << 10, 64 << 10));
  for (size_t n = s.live() / 2; n > 0; --n) s.FreeLive(g.Below(s.live()));
  while (!s.Full()) s.Alloc(g.LogUniform(32 << 10, 1 << 20));
  const size_t end = s.ops().size();
  s.FreeAll();
  return {std::move(s.ops()), end, s.slots()};
}

class GlintHeap {
 public:
  GlintHeap() {
    core::RegionHeader layout{};
    if (!core::ComputeLayout({kHeap, 1024, 4}, &layout).ok()) std::abort();
    size_ = layout.region_size;
    void* m = mmap(nullptr, size_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) std::abort();
    base_ = static_cast<uint8_t*>(m);
    core::Region::Format(base_, layout);
    region_ = core::Region(base_, size_);
  }
  ~GlintHeap() { munmap(base_, size_); }
  alloc::Heap heap() const { return alloc::Heap(region_); }

 private:
  uint8_t* base_;
  uint64_t size_;
  core::Region region_;
};

struct GlintRun {
  double seconds;
  uint64_t largest, free_bytes, failed, allocs;
  double used_fraction;
};

GlintRun ReplayGlint(const Pattern& p) {
  GlintHeap gh;
  alloc::Heap heap = gh.heap();
  alloc::AllocHints hints;
  std::vector<uint64_t> off(p.slots, UINT64_MAX), sz(p.slots, 0);
  GlintRun r{};
  const int64_t t0 = NowNs();
  int64_t paused = 0;
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const Op& op = p.ops[i];
    if (op.alloc) {
      ++r.allocs;
      if (heap.Allocate(op.size, &hints, &off[op.slot])) {
        sz[op.slot] = op.size;
      } else {
        off[op.slot] = UINT64_MAX;
        ++r.failed;
      }
    } else if (off[op.slot] != UINT64_MAX) {
      heap.Free(off[op.slot], sz[op.slot]);
      off[op.slot] = UINT64_MAX;
    }
    if (i + 1 == p.end) {  // the fullest point: not timed
      const int64_t s = NowNs();
      r.largest = heap.LargestFree();
      uint64_t o;
      if (r.largest > 0 && heap.Allocate(r.largest, &hints, &o)) {
        heap.Free(o, r.largest);
      } else {
        r.largest = 0;
      }
      const uint64_t used = heap.BytesInUseByScan();
      r.free_bytes = kHeap - used;
      r.used_fraction = double(used) / double(kHeap);
      paused += NowNs() - s;
    }
  }
  r.seconds = double(NowNs() - t0 - paused) / 1e9;
  return r;
}

double ReplayMimalloc(const Pattern& p) {
  std::vector<void*> ptr(p.slots, nullptr);
  const int64_t t0 = NowNs();
  for (const Op& op : p.ops) {
    if (op.alloc) {
      ptr[op.slot] = mi_malloc(op.size);
    } else {
      mi_free(ptr[op.slot]);
      ptr[op.slot] = nullptr;
    }
  }
  return double(NowNs() - t0) / 1e9;
}

void Run(const char* name, const Pattern& p, int reps) {
  std::vector<double> g, m;
  GlintRun last{};
  // A warm-up replay of each, untimed: mimalloc's first pass pays for
  // getting its memory from the kernel (page faults on its in-band free
  // lists); glint's region is mapped fresh for every replay anyway.
  ReplayMimalloc(p);
  for (int r = 0; r < reps; ++r) {  // interleaved, so noise hits both
    last = ReplayGlint(p);
    g.push_back(double(p.ops.size()) / last.seconds);
    m.push_back(double(p.ops.size()) / ReplayMimalloc(p));
  }
  auto report = [&](const char* sys, std::vector<double> v) {
    const double med = Quantile(&v, 0.5);
    Report(name, sys, 0, med, v.front());
  };
  report("glint", g);
  report("mimalloc", m);
  const std::string n(name);
  Report(("alloc_largest_" + n.substr(6)).c_str(), "glint",
         uint64_t(std::lround(last.used_fraction * 100)), double(last.largest),
         double(last.free_bytes));
  Report(("alloc_failed_" + n.substr(6)).c_str(), "glint", 0,
         double(last.failed), double(last.allocs));
}

int Main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  PinToCpu(0);
  const int reps = quick ? 1 : 5;
  Run("alloc_mix", MakeMix(quick ? 100000 : 1000000), reps);
  Run("alloc_frag", MakeFrag(), reps);
  return 0;
}

}  // namespace
}  // namespace glint::bench

int main(int argc, char** argv) { return glint::bench::Main(argc, argv); }
