// Copyright (c) glint authors.
//
// The object table and the name index: two tables of buckets of 56 slots.
// An id (or a name) hashes to two buckets; it lives in one of them (an id
// in its first whenever that has room, a name in the emptier). A bucket
// header is one cache line: a `used` bitmap (slot taken, and for object
// buckets the spill count) and a fingerprint byte per slot (0: never used),
// so an id look-up reads one header line (two when its first bucket
// spilled) and only the entries whose fingerprint matches.
//
// Slots are claimed with one CAS on `used` and given back by clearing the
// bit, so deleted slots are reused at once and the table never degrades.
//
// This layer knows nothing of the heap; core/store.h drives the object life
// cycle on top of it.

#ifndef GLINT_CORE_OBJECT_TABLE_H_
#define GLINT_CORE_OBJECT_TABLE_H_

#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/region.h"

namespace glint::core {

// 64-bit hash of bytes (wyhash-style mixing, our own implementation).
uint64_t HashBytes(const void* data, size_t len, uint64_t seed);

inline constexpr uint64_t kNameSeed = 0x6e616d65ULL;

// The 128-bit multiply-fold of HashBytes. Inline, with IdHash, MakeKey and
// LoadIdWords below: every create, get and delete runs them, and as calls
// into the shared library they cost more than their bodies.
inline uint64_t HashMix(uint64_t a, uint64_t b) {
  const __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// The hash of a 16-byte id (a cheaper special case of the same mixing).
inline uint64_t IdHash(const void* id16) {
  uint64_t a, b;
  std::memcpy(&a, id16, 8);
  std::memcpy(&b, static_cast<const uint8_t*>(id16) + 8, 8);
  const uint64_t h = HashMix(a ^ 0xa0761d6478bd642fULL, b ^ 0xe7037ed1a0b428dbULL);
  return HashMix(h ^ 0x8ebc6af09c88c6e3ULL, h ^ 0x589965cc75374cc3ULL);
}
inline uint64_t NameHash(std::string_view name) {
  return HashBytes(name.data(), name.size(), kNameSeed);
}

// Where a key lives: its hash, fingerprint and two candidate buckets.
struct Key {
  uint64_t hash = 0;
  uint64_t bucket[2] = {0, 0};
  uint8_t fp = 0;
};
inline Key MakeKey(uint64_t hash, uint64_t num_buckets) {
  Key k;
  k.hash = hash;
  const uint64_t mask = num_buckets - 1;
  k.bucket[0] = hash & mask;
  k.bucket[1] = (hash >> 32) & mask;
  if (k.bucket[1] == k.bucket[0]) k.bucket[1] = k.bucket[0] ^ 1;
  k.fp = static_cast<uint8_t>(hash >> 24);
  if (k.fp == 0) k.fp = 1;
  return k;
}

struct IdWords {
  uint64_t w[2];
};
inline IdWords LoadIdWords(const uint8_t id[16]) {
  IdWords w;
  std::memcpy(w.w, id, 16);
  return w;
}
// The id an entry holds (relaxed: the caller owns the entry, or re-checks
// its state afterwards as a seqlock reader does).
inline IdWords EntryId(const ObjectEntry* e) {
  return IdWords{{e->id[0].load(std::memory_order_relaxed),
                  e->id[1].load(std::memory_order_relaxed)}};
}

// Bits of the slots (0..55) of bucket `bh` whose fingerprint equals `fp`,
// possibly with false positives (never false negatives). With seq_cst the
// loads are SeqCst (Create's verify step) and free slots are included;
// otherwise only taken slots are returned.
uint64_t MatchFingerprints(const BucketHeader* bh, uint8_t fp, bool seq_cst);

class ObjectTable {
 public:
  explicit ObjectTable(const Region& r) : r_(r) {}

  // A slot whose entry holds `id` in state `want` (read with acquire), or
  // kNoSlot. *state receives the state word read. Lock-free, never blocks.
  uint32_t Find(const Key& k, const IdWords& id, ObjState want,
                uint64_t* state) const;
  // Any entry of `id` that is claimed, being built or sealed.
  uint32_t FindLive(const Key& k, const IdWords& id, uint64_t* state) const;
  // The object slot whose entry has name `name` in state `want`, or kNoSlot.
  uint32_t FindByName(const Key& k, std::string_view name, ObjState want,
                      uint64_t* state) const;
  // True when object slot `slot` (in state `state`) carries name `name`.
  bool NameMatches(uint32_t slot, uint64_t state, std::string_view name) const;
  bool IdMatches(uint32_t slot, uint64_t state, const IdWords& id) const;

  // Claims a free object slot (one CAS on `used`): in k's first bucket when
  // it has room, else in the second, after raising the first bucket's spill
  // count. Returns false when both buckets are full.
  // `cand` (a log record's cand_obj / cand_name) gets slot + 1 before the
  // CAS that may take it.
  bool ClaimObjectSlot(const Key& k, uint32_t* slot,
                       std::atomic<uint32_t>* cand = nullptr);
  // Claims a free name slot in the emptier of k's buckets.
  bool ClaimNameSlot(const Key& k, uint32_t* slot,
                     std::atomic<uint32_t>* cand = nullptr);
  // True when object slot `slot` of key `k` lies in k's second bucket.
  bool Spilled(uint32_t slot, const Key& k) const;
  // Publishes a claimed slot's fingerprint (SeqCst: see store.cc, Create).
  void PublishObject(uint32_t slot, uint8_t fp);
  void PublishName(uint32_t slot, uint8_t fp);
  // Frees a slot: clears its used bit (release). The fingerprint stays.
  // Without the key, a spilled slot's count stays (recovery, which gives
  // back slots whose entry it cannot trust, leaves the count too high).
  void ReleaseObjectSlot(uint32_t slot);
  // The same for the slot of key `k` (the entry's id, read while it was
  // still ours); a spilled slot then takes its count back.
  void ReleaseObjectSlot(uint32_t slot, const Key& k);
  void ReleaseNameSlot(uint32_t slot);

  // Start loading what a create or a look-up of key `k` touches first: the
  // header line of k's first bucket and the entry of that bucket's slot 0
  // (both of its lines for a create, which writes them). Slots are taken lowest index first, so a
  // bucket holding few objects puts a new one, and has its first one, in
  // slot 0 (and index-major numbering keeps the slot-0 entries of all
  // buckets side by side). Hints only: no ordering, no fault, nothing
  // read. Issued before the header is read, the misses on a table that is
  // not in cache overlap each other (and, for a create, the allocation)
  // instead of following one another; a wrong guess costs the entry's
  // lines in cache. Plain (read) prefetches: the x86-64-v2 baseline has no
  // PREFETCHW, and a line no other core holds arrives exclusive anyway.
  // docs/BENCHMARKS.md has the measurement.
  void PrefetchForCreate(const Key& k) const {
    __builtin_prefetch(r_.obj_bucket(k.bucket[0]), 0, 3);
    const char* e = reinterpret_cast<const char*>(r_.entry(r_.obj_slot(k.bucket[0], 0)));
    __builtin_prefetch(e, 0, 3);
    __builtin_prefetch(e + kCacheLine, 0, 3);
  }
  void PrefetchForLookup(const Key& k) const {
    __builtin_prefetch(r_.obj_bucket(k.bucket[0]), 0, 3);
    __builtin_prefetch(r_.entry(r_.obj_slot(k.bucket[0], 0)), 0, 3);
  }

  uint64_t num_buckets() const { return r_.header()->obj_num_buckets; }
  uint64_t num_name_buckets() const { return r_.header()->name_num_buckets; }

 private:
  template <typename StatePred>
  uint32_t FindIf(const Key& k, const IdWords& id, StatePred pred,
                  uint64_t* state) const;
  Region r_;
};

}  // namespace glint::core

#endif  // GLINT_CORE_OBJECT_TABLE_H_
