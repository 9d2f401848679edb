// Copyright (c) glint authors.
//
// Two builds of libglint compared in one process, batch by batch.
//
// On a shared VM the speed of the machine wanders by 30% within minutes,
// so two builds timed one after the other (even interleaved runs of
// glint_bench, bench/ab.py) differ by more than most changes do. Here each
// build sits behind a copy of bench/ab_shim.cc loaded with dlmopen into a
// namespace of its own, with its own store; the driver alternates batches
// (A B B A ...), so both see the same machine within milliseconds, and
// reports the median of the per-round ratios B/A.
//
// Usage (bench/ab_inproc.sh builds the shims and runs this):
//   ab_inproc SHIM_A.so SHIM_B.so MODE [ROUNDS] [BATCH] [WARM]
// MODE: c (create+write+seal), d (delete), g (get+release), f (full cycle).
// Each round runs WARM (default 2) untimed batches of each build first: the
// two stores evict each other's tables from the caches, and glint_bench
// times a store that has its caches to itself. Both builds get the same ids.

#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace {

struct Shim {
  void* (*open)(int64_t, const char*);
  double (*run)(void*, char, int, const uint8_t*);
  void (*close)(void*);
  void* ctx;
};

bool Load(const char* path, const char* tag, Shim* s) {
  void* h = dlmopen(LM_ID_NEWLM, path, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    std::fprintf(stderr, "dlmopen %s: %s\n", path, dlerror());
    return false;
  }
  s->open = reinterpret_cast<void* (*)(int64_t, const char*)>(dlsym(h, "shim_open"));
  s->run = reinterpret_cast<double (*)(void*, char, int, const uint8_t*)>(dlsym(h, "shim_run"));
  s->close = reinterpret_cast<void (*)(void*)>(dlsym(h, "shim_close"));
  if (s->open == nullptr || s->run == nullptr || s->close == nullptr) {
    std::fprintf(stderr, "%s: not a shim\n", path);
    return false;
  }
  s->ctx = s->open(int64_t{1} << 30, tag);
  return s->ctx != nullptr;
}

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "usage: %s SHIM_A.so SHIM_B.so c|d|g|f [ROUNDS>=1] [BATCH>=1] [WARM>=0]\n";
  if (argc < 4 || argc > 7 || std::strlen(argv[3]) != 1 ||
      std::strchr("cdgf", argv[3][0]) == nullptr) {
    std::fprintf(stderr, usage, argv[0]);
    return 2;
  }
  const char mode = argv[3][0];
  const int rounds = argc > 4 ? std::atoi(argv[4]) : 200;
  const int batch = argc > 5 ? std::atoi(argv[5]) : 4096;
  const int warm = argc > 6 ? std::atoi(argv[6]) : 2;
  if (rounds < 1 || batch < 1 || batch > (1 << 20) || warm < 0) {
    std::fprintf(stderr, usage, argv[0]);
    return 2;
  }
  Shim s[2] = {};
  // Every exit closes what was opened: a store left open is 1 GiB of tmpfs.
  auto finish = [&](int rc) {
    for (Shim& x : s) {
      if (x.ctx != nullptr) x.close(x.ctx);
    }
    return rc;
  };
  if (!Load(argv[1], "a", &s[0]) || !Load(argv[2], "b", &s[1])) return finish(1);
  std::mt19937_64 rng(12345);
  std::vector<uint8_t> ids(static_cast<size_t>(batch) * 16);
  std::vector<double> t[2], ratio;
  for (int r = 0; r < rounds; ++r) {
    double x[2];
    // Each turn: `warm` untimed batches, then the timed one. Both builds
    // get the same ids (their stores are separate).
    for (int w = 0; w <= warm; ++w) {
      for (size_t i = 0; i < ids.size(); i += 8) {
        const uint64_t word = rng();
        std::memcpy(&ids[i], &word, 8);
      }
      for (int k = 0; k < 2; ++k) {
        const int v = (r % 2 == 0) ? k : 1 - k;  // A B, then B A
        x[v] = s[v].run(s[v].ctx, mode, batch, ids.data());
        if (x[v] < 0) {
          std::fprintf(stderr, "build %c failed in mode %c\n", "AB"[v], mode);
          return finish(1);
        }
      }
    }
    if (r < rounds / 10) continue;  // warm-up rounds
    t[0].push_back(x[0]);
    t[1].push_back(x[1]);
    ratio.push_back(x[1] / x[0]);
  }
  std::printf("mode %c, %zu rounds of %d: A median %.1f ns/op, B median %.1f ns/op, "
              "B/A median %.3f (quartiles %.3f-%.3f)\n",
              mode, ratio.size(), batch, Quantile(t[0], 0.5), Quantile(t[1], 0.5),
              Quantile(ratio, 0.5), Quantile(ratio, 0.25), Quantile(ratio, 0.75));
  return finish(0);
}
