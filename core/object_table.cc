// Copyright (c) glint authors.

#include "core/object_table.h"

#include <bit>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/atomics.h"
#include "core/crash_point.h"

namespace glint::core {
namespace {

inline uint64_t Read8(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

}  // namespace

uint64_t HashBytes(const void* data, size_t len, uint64_t seed) {
  constexpr uint64_t k0 = 0xa0761d6478bd642fULL;
  constexpr uint64_t k1 = 0xe7037ed1a0b428dbULL;
  constexpr uint64_t k2 = 0x8ebc6af09c88c6e3ULL;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t h = seed ^ HashMix(seed ^ k0, len ^ k1);
  size_t i = 0;
  for (; i + 16 <= len; i += 16) {
    h = HashMix(Read8(p + i) ^ k1 ^ h, Read8(p + i + 8) ^ k2);
  }
  uint64_t a = 0, b = 0;
  const size_t rest = len - i;
  if (rest > 0) {
    uint8_t tail[16] = {0};
    std::memcpy(tail, p + i, rest);
    a = Read8(tail);
    b = Read8(tail + 8);
  }
  h = HashMix(a ^ k1 ^ h, b ^ k2 ^ rest);
  return HashMix(h ^ k0, h ^ k2);
}

namespace {

template <bool kSeqCst>
inline uint64_t LoadFp(const BucketHeader* bh, int i) {
  return kSeqCst ? LoadSeqCst(bh->fp[i]) : LoadRelaxed(bh->fp[i]);
}

// Bits 0..55: slots whose fingerprint byte equals fp. Each word is loaded
// atomically; the comparison runs on the copies.
template <bool kSeqCst>
inline uint64_t MatchBytes(const BucketHeader* bh, uint8_t fp) {
  const uint64_t w0 = LoadFp<kSeqCst>(bh, 0), w1 = LoadFp<kSeqCst>(bh, 1),
                 w2 = LoadFp<kSeqCst>(bh, 2), w3 = LoadFp<kSeqCst>(bh, 3),
                 w4 = LoadFp<kSeqCst>(bh, 4), w5 = LoadFp<kSeqCst>(bh, 5),
                 w6 = LoadFp<kSeqCst>(bh, 6);
#if defined(__SSE2__)
  const __m128i pat = _mm_set1_epi8(static_cast<char>(fp));
  auto mask = [&](uint64_t lo, uint64_t hi) {
    const __m128i v = _mm_set_epi64x(static_cast<long long>(hi),
                                     static_cast<long long>(lo));
    return static_cast<uint64_t>(
        static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, pat))));
  };
  return (mask(w0, w1) | mask(w2, w3) << 16 | mask(w4, w5) << 32 |
          mask(w6, 0) << 48) &
         ((uint64_t{1} << kSlotsPerBucket) - 1);
#else
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  const uint64_t words[7] = {w0, w1, w2, w3, w4, w5, w6};
  uint64_t bits = 0;
  for (uint32_t i = 0; i < 7; ++i) {
    const uint64_t x = words[i] ^ (kOnes * fp);  // matching bytes become 0
    uint64_t zero = (x - kOnes) & ~x & kHighs;   // may over-report above a
    while (zero != 0) {                          // true zero byte: harmless
      bits |= uint64_t{1} << (i * 8 + std::countr_zero(zero) / 8);
      zero &= zero - 1;
    }
  }
  return bits;
#endif
}

}  // namespace

uint64_t MatchFingerprints(const BucketHeader* bh, uint8_t fp, bool seq_cst) {
  // A free slot keeps the fingerprint of its last key (clearing it would
  // cost every free a locked instruction); a lookup ignores slots that are
  // not taken. Create's verify step (seq_cst) judges every match by its
  // entry's state instead, which is what its handshake argument needs.
  if (seq_cst) return MatchBytes<true>(bh, fp);
  return MatchBytes<false>(bh, fp) & UsedSlots(LoadRelaxed(bh->used));
}

bool ObjectTable::IdMatches(uint32_t slot, uint64_t state,
                            const IdWords& id) const {
  const ObjectEntry* e = r_.entry(slot);
  if (LoadRelaxed(e->id[0]) != id.w[0] || LoadRelaxed(e->id[1]) != id.w[1]) {
    return false;
  }
  // Seqlock-style re-check: the id we read belongs to the state we acted on
  // (an entry is only rewritten after its state changed).
  std::atomic_thread_fence(std::memory_order_acquire);
  return LoadRelaxed(e->state) == state;
}

bool ObjectTable::NameMatches(uint32_t slot, uint64_t state,
                              std::string_view name) const {
  const ObjectEntry* e = r_.entry(slot);
  const uint16_t len = LoadRelaxed(e->name_len);
  if (len != name.size() || len == 0) return false;
  const uint64_t off = LoadRelaxed(e->info_offset);
  const uint32_t size = LoadRelaxed(e->info_size);
  // (Written so that a damaged offset near 2^64 cannot wrap the sum.)
  const uint64_t heap_size = r_.header()->heap_size;
  if (size < len || size > heap_size || off > heap_size - size) return false;
  // The block is immutable while the entry keeps `state`; if the entry
  // moved on, the re-check below throws away what we compared. The bytes are
  // read through relaxed atomic byte loads so that racing with a reuse of
  // the block is not a data race.
  const auto* bytes =
      reinterpret_cast<const std::atomic<uint8_t>*>(r_.heap() + off);
  for (uint16_t i = 0; i < len; ++i) {
    if (LoadRelaxed(bytes[i]) != static_cast<uint8_t>(name[i])) return false;
  }
  std::atomic_thread_fence(std::memory_order_acquire);
  return LoadRelaxed(e->state) == state;
}

// The first bucket, then the second only while the first's spill count says
// some key of it may live there (see ClaimObjectSlot). An object that was
// sealed before the look-up began is found: its creator raised the count
// (SeqCst) before publishing it, so a getter that synchronised with the seal,
// or fenced after it (WaitFor), reads that count or a later one, and the
// count stays above zero while the object lives.
template <typename StatePred>
uint32_t ObjectTable::FindIf(const Key& k, const IdWords& id, StatePred pred,
                             uint64_t* state) const {
  PrefetchForLookup(k);
  auto find_in = [&](uint64_t b, uint64_t m) -> uint32_t {
    while (m != 0) {
      const uint32_t i = std::countr_zero(m);
      m &= m - 1;
      const uint32_t slot = r_.obj_slot(b, i);
      const uint64_t s = LoadAcquire(r_.entry(slot)->state);
      if (pred(StateOf(s)) && IdMatches(slot, s, id)) {
        *state = s;
        return slot;
      }
    }
    return kNoSlot;
  };
  const BucketHeader* b0 = r_.obj_bucket(k.bucket[0]);
  const uint64_t used0 = LoadRelaxed(b0->used);
  const uint32_t slot =
      find_in(k.bucket[0], MatchBytes<false>(b0, k.fp) & UsedSlots(used0));
  if (slot != kNoSlot || SpillOf(used0) == 0) return slot;
  const uint64_t b1 = k.bucket[1];
  return find_in(b1, MatchFingerprints(r_.obj_bucket(b1), k.fp, false));
}

uint32_t ObjectTable::Find(const Key& k, const IdWords& id, ObjState want,
                           uint64_t* state) const {
  return FindIf(k, id, [want](ObjState st) { return st == want; }, state);
}

uint32_t ObjectTable::FindLive(const Key& k, const IdWords& id,
                               uint64_t* state) const {
  return FindIf(
      k, id,
      [](ObjState st) {
        return st == kObjClaimed || st == kObjCreating || st == kObjSealed;
      },
      state);
}

uint32_t ObjectTable::FindByName(const Key& k, std::string_view name,
                                 ObjState want, uint64_t* state) const {
  for (uint64_t b : k.bucket) {
    uint64_t m = MatchFingerprints(r_.name_bucket(b), k.fp, false);
    while (m != 0) {
      const uint32_t i = std::countr_zero(m);
      m &= m - 1;
      const uint32_t ns = static_cast<uint32_t>(b * kSlotsPerBucket + i);
      const uint32_t slot = LoadAcquire(r_.name_entry(ns)->obj_slot);
      if (slot >= r_.num_obj_slots()) continue;
      const uint64_t s = LoadAcquire(r_.entry(slot)->state);
      if (StateOf(s) == want && NameMatches(slot, s, name)) {
        *state = s;
        return slot;
      }
    }
  }
  return kNoSlot;
}

// Takes a free slot of bucket `bh` (one CAS on `used`), starting from the
// value `u` already read; false when the bucket is full. slot_of(i) numbers
// index i of this bucket (object and name slots are numbered differently).
template <typename SlotOf>
static bool TakeFreeSlot(BucketHeader* bh, SlotOf slot_of, uint64_t u,
                         uint32_t* slot, std::atomic<uint32_t>* cand) {
  while (UsedSlots(u) != kUsedSlotsMask) {
    const uint32_t i = std::countr_zero(~u);
    const uint32_t s = slot_of(i);
    // The undo log names the slot before the CAS that may take it (the
    // release orders the two; see OpRecord): a claimer that dies right
    // after the CAS leaves a slot recovery can find and give back.
    if (cand != nullptr) cand->store(s + 1, std::memory_order_release);
    // SeqCst (free on x86-64): we see the previous occupant's release of
    // the entry before we write it, and a getter that announced itself as
    // a waiter and then fenced sees this bit (see ClientCore::WaitFor).
    if (CasSeqCst(bh->used, u, u | (uint64_t{1} << i))) {
      GLINT_CRASH_POINT();
      *slot = s;
      return true;
    }
  }
  return false;
}

// Spill count of an object bucket, +1 or -1 by CAS (SeqCst), sticky at 255.
// The first load is SeqCst too: at 255 it is the only operation, and the
// publish/verify argument needs the raise (here: reading the 255) in the
// single total order before our publish (found in review).
static void AddSpill(BucketHeader* bh, bool up) {
  uint64_t u = LoadSeqCst(bh->used);
  for (;;) {
    const uint32_t n = SpillOf(u);
    if (n == kSpillSticky || (!up && n == 0)) return;
    if (CasSeqCst(bh->used, u, up ? u + kSpillOne : u - kSpillOne)) return;
  }
}

// An id lives in its first bucket whenever that has room, so look-ups and
// creators read one header line. Only when the first is full does it go to
// the second, and then the first bucket's spill count goes up before the
// claim there (SeqCst, before the creator publishes anything): whoever looks
// for the id in the first bucket after that sees the count and also looks
// in the second. The count comes down (ReleaseObjectSlot with the key) after
// the spilled slot is given back. A client that dies in between leaves it
// too high, which costs look-ups of that bucket one more header line and
// never loses an object; too low would, and never happens.
bool ObjectTable::ClaimObjectSlot(const Key& k, uint32_t* slot,
                                  std::atomic<uint32_t>* cand) {
  auto in = [this](uint64_t b) { return [this, b](uint32_t i) { return r_.obj_slot(b, i); }; };
  BucketHeader* b0 = r_.obj_bucket(k.bucket[0]);
  if (TakeFreeSlot(b0, in(k.bucket[0]), LoadRelaxed(b0->used), slot, cand)) return true;
  BucketHeader* b1 = r_.obj_bucket(k.bucket[1]);
  const uint64_t u1 = LoadRelaxed(b1->used);
  if (UsedSlots(u1) == kUsedSlotsMask) return false;
  AddSpill(b0, true);
  GLINT_CRASH_POINT();
  if (TakeFreeSlot(b1, in(k.bucket[1]), u1, slot, cand)) return true;
  AddSpill(b0, false);
  return false;
}

// Names keep to the emptier of their two buckets (two choices keep buckets
// balanced); a name look-up and a named create's verify read both.
bool ObjectTable::ClaimNameSlot(const Key& k, uint32_t* slot,
                                std::atomic<uint32_t>* cand) {
  BucketHeader* b0 = r_.name_bucket(k.bucket[0]);
  BucketHeader* b1 = r_.name_bucket(k.bucket[1]);
  const uint64_t u0 = LoadRelaxed(b0->used);
  const uint64_t u1 = LoadRelaxed(b1->used);
  auto in = [](uint64_t b) {
    return [b](uint32_t i) { return static_cast<uint32_t>(b * kSlotsPerBucket + i); };
  };
  if (std::popcount(u0) <= std::popcount(u1)) {
    return TakeFreeSlot(b0, in(k.bucket[0]), u0, slot, cand) ||
           TakeFreeSlot(b1, in(k.bucket[1]), LoadRelaxed(b1->used), slot, cand);
  }
  return TakeFreeSlot(b1, in(k.bucket[1]), u1, slot, cand) ||
         TakeFreeSlot(b0, in(k.bucket[0]), LoadRelaxed(b0->used), slot, cand);
}

bool ObjectTable::Spilled(uint32_t slot, const Key& k) const {
  return r_.obj_bucket_of(slot) != k.bucket[0];
}

// Replaces the slot's fingerprint byte (a free slot keeps its last key's).
// SeqCst RMW: the store half of Create's publish/verify handshake. Only the
// slot's owner writes its byte (the other bytes of the word belong to other
// slots' owners), so the byte read here is still there at the RMW and one
// fetch_xor turns it into `fp` without touching the others.
static void PublishFp(BucketHeader* bh, uint32_t i, uint8_t fp) {
  const uint32_t shift = 8 * (i % 8);
  std::atomic<uint64_t>& word = bh->fp[i / 8];
  const uint64_t old = (LoadRelaxed(word) >> shift) & 0xff;
  word.fetch_xor((old ^ fp) << shift, std::memory_order_seq_cst);
}

void ObjectTable::PublishObject(uint32_t slot, uint8_t fp) {
  PublishFp(r_.obj_bucket(r_.obj_bucket_of(slot)), r_.obj_index_of(slot), fp);
}

void ObjectTable::PublishName(uint32_t slot, uint8_t fp) {
  PublishFp(r_.name_bucket(slot / kSlotsPerBucket), slot % kSlotsPerBucket, fp);
}

void ObjectTable::ReleaseObjectSlot(uint32_t slot) {
  BucketHeader* bh = r_.obj_bucket(r_.obj_bucket_of(slot));
  FetchAndRelease(bh->used, ~(uint64_t{1} << r_.obj_index_of(slot)));
}

void ObjectTable::ReleaseObjectSlot(uint32_t slot, const Key& k) {
  ReleaseObjectSlot(slot);
  if (!Spilled(slot, k)) return;
  GLINT_CRASH_POINT();
  AddSpill(r_.obj_bucket(k.bucket[0]), false);
}

void ObjectTable::ReleaseNameSlot(uint32_t slot) {
  BucketHeader* bh = r_.name_bucket(slot / kSlotsPerBucket);
  const uint32_t i = slot % kSlotsPerBucket;
  NameEntry* ne = r_.name_entry(slot);
  StoreRelaxed(ne->obj_slot, kNoSlot);
  // seq after obj_slot (release): recovery reads seq, then obj_slot, then
  // seq again, and so sees a release that happened in between.
  ne->seq.fetch_add(1, std::memory_order_release);
  GLINT_CRASH_POINT();
  FetchAndRelease(bh->used, ~(uint64_t{1} << i));
}

}  // namespace glint::core
