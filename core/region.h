// Copyright (c) glint authors.
//
// The region: one shared-memory file holding the whole store. Every process
// maps it at its own address, so the region holds offsets, never pointers.
// docs/REGION_FORMAT.md documents every field below; keep the two in step and
// bump kLayoutVersion on any change of layout or meaning.
//
//   [header page][client table][wait buckets][object buckets][object entries]
//   [name buckets][name entries][page bitmap][span table][class hints][heap]
//
// Every section starts on a 4 KiB boundary; the heap starts on a 64 KiB one.

#ifndef GLINT_CORE_REGION_H_
#define GLINT_CORE_REGION_H_

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>

#include "glint/status.h"

namespace glint::core {

inline constexpr uint64_t kRegionMagic = 0x0031544e494c4700ULL;  // "\0GLINT1\0"
inline constexpr uint32_t kLayoutVersion = 4;
inline constexpr uint64_t kCacheLine = 64;
inline constexpr uint64_t kPageSize = 4096;
inline constexpr uint64_t kSpanSize = 64 * 1024;   // pages of one size class
inline constexpr uint32_t kPagesPerSpan = kSpanSize / kPageSize;
inline constexpr uint32_t kSlotsPerBucket = 56;    // one bucket header line
inline constexpr uint32_t kMaxClients = 256;       // holder bits per entry
inline constexpr uint32_t kHolderWords = kMaxClients / 64;
inline constexpr uint32_t kClientStride = 4096;    // client slot + undo log
inline constexpr uint32_t kNumWaitBuckets = 1024;
inline constexpr uint32_t kNumSizeClasses = 32;

// ---------------------------------------------------------------- header ---
// Written once by the monitor before any client maps the region, then
// read-only except for the fields marked atomic.
struct RegionHeader {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t header_size;  // sizeof(RegionHeader)
  uint64_t region_size;  // bytes of the whole file
  uint64_t create_time_us;

  uint64_t clients_offset;
  uint32_t max_clients;
  uint32_t client_stride;
  uint64_t waits_offset;
  uint32_t num_wait_buckets;
  uint32_t reserved0;

  uint64_t obj_buckets_offset;  // BucketHeader[obj_num_buckets]
  uint64_t obj_entries_offset;  // ObjectEntry[obj_num_buckets * 56]
  uint64_t obj_num_buckets;     // power of two
  uint64_t max_objects;         // what the monitor was asked for
  uint64_t name_buckets_offset;  // BucketHeader[name_num_buckets]
  uint64_t name_entries_offset;  // NameEntry[name_num_buckets * 56]
  uint64_t name_num_buckets;     // power of two

  uint64_t page_bitmap_offset;  // atomic<u64>[page_bitmap_words] bits, then
                                // as many free epochs (Region::page_epochs)
  uint64_t page_bitmap_words;
  uint64_t span_table_offset;   // SpanMeta[num_spans]
  uint64_t num_spans;           // heap_size / 64 KiB
  uint64_t class_hints_offset;  // atomic<u64>[32 * class_hint_words]
  uint64_t class_hint_words;    // words per size class
  uint64_t heap_offset;         // 64 KiB aligned
  uint64_t heap_size;           // capacity, a multiple of 64 KiB
  uint64_t num_pages;           // heap_size / 4 KiB

  uint32_t monitor_pid;
  uint32_t flags;  // RegionFlag bits, fixed at creation
  // Time-stamp counter ticks per microsecond, measured by the monitor at
  // creation; 0 when the machine has no usable invariant TSC.
  double tsc_per_us;
  char hostname[64];
  char socket_path[112];

  // Mutable, atomic.
  std::atomic<uint64_t> next_client_serial;  // monitor only
};
static_assert(sizeof(RegionHeader) <= kPageSize);

enum RegionFlag : uint32_t {
  // The store asked for huge pages: whoever maps the region advises the
  // kernel to map it with them (MADV_HUGEPAGE) before populating it.
  kRegionHugepages = 1,
  // The store was not prefaulted: pages are allocated on first touch, so
  // mappers do not populate their mapping (which would allocate them all).
  kRegionLazyPages = 2,
};
// Every flag this layout version defines. A new flag comes with a new
// layout version, so any other bit is damage.
inline constexpr uint32_t kRegionKnownFlags = kRegionHugepages | kRegionLazyPages;

// ---------------------------------------------------------------- clients ---
enum ClientState : uint32_t {
  kClientFree = 0,
  kClientActive = 1,
  // The process is gone; the monitor is rolling back what it left (a
  // restarted monitor finishes the job). Its log records are not live.
  kClientRecovering = 2,
};

// ------------------------------------------------------------ undo log ---
// Each running operation of a client (one per thread at a time) owns one
// record of its client's log. A record says what the operation is doing to
// shared state that recovery could not decide by inspection alone: which
// entry it frees or aborts, which table slot and which heap block it is
// about to take (written before the CAS that takes it), which blocks it owns
// that no entry references yet, which span it is allocating in or freeing
// to. Only its operation writes a record (plain release stores, no RMW);
// the monitor reads it after the process died, and writes it while it
// recovers on the dead client's behalf. docs/ARCHITECTURE.md gives, for each
// step of each operation, what recovery does if the client dies after it.
enum OpKind : uint32_t {
  kOpNone = 0,
  kOpBuild = 1,      // BuildObject: blocks in owned[], claims in cand_*
  kOpResize = 2,     // Resize of obj_slot(gen): owned[0] new, owned[1] old
  kOpAbort = 3,      // aborting obj_slot(gen) (creator, or monitor for it)
  kOpFreeEntry = 4,  // freeing obj_slot(gen), won DELETING -> FREEING
  kOpUnclaim = 5,    // monitor: undoing the dead client's claim of obj_slot
  kOpWait = 6,       // a getter counted in wait bucket `wait_bucket`
  kOpFree = 7,       // freeing owned[] blocks (an error path, or a resize)
};

// A block reference: offset from the heap start + 1 (0: none), and the size
// that was asked of the allocator (it decides small block or page run).
struct BlockRef {
  std::atomic<uint64_t> off1;
  std::atomic<uint64_t> size;
};

inline void SetBlockRef(BlockRef& r, uint64_t off, uint64_t size) {
  r.size.store(size, std::memory_order_relaxed);
  r.off1.store(off + 1, std::memory_order_release);
}
inline void ClearBlockRef(BlockRef& r) {
  r.off1.store(0, std::memory_order_release);
}

struct alignas(64) OpRecord {
  std::atomic<uint32_t> op;        // OpKind
  std::atomic<uint32_t> obj_slot;  // the entry worked on, or kNoSlot
  std::atomic<uint64_t> gen;       // its generation (kOpWait: bucket + 1)
  std::atomic<uint32_t> cand_obj;   // object slot about to be claimed + 1
  std::atomic<uint32_t> cand_name;  // name slot about to be claimed + 1
  // Span being allocated in or freed to, + 1 (0: none): while set, the
  // span's reserved count may be out of step with its bitmap.
  std::atomic<uint32_t> touch;
  std::atomic<uint32_t> wait_bucket;  // kOpWait: bucket + 1 once counted in
  BlockRef cand;         // block or page run about to be taken (allocator)
  BlockRef cand_pages;   // pages about to be taken for, or freed from, a span
  BlockRef owned[2];     // blocks this operation holds unattached
};
static_assert(sizeof(OpRecord) == 128);

// True when no field of the record is set (it names nothing).
inline bool RecordIdle(const OpRecord& r) {
  constexpr auto acq = std::memory_order_acquire;
  return r.op.load(acq) == kOpNone && r.touch.load(acq) == 0 &&
         r.cand_obj.load(acq) == 0 && r.cand_name.load(acq) == 0 &&
         r.wait_bucket.load(acq) == 0 && r.cand.off1.load(acq) == 0 &&
         r.cand_pages.off1.load(acq) == 0 && r.owned[0].off1.load(acq) == 0 &&
         r.owned[1].off1.load(acq) == 0;
}
// Clears every field RecordIdle reads, op first; obj_slot, gen and the
// block references' sizes keep their values (they mean nothing once op and
// the offsets are 0). A crash part-way leaves fields that name what is now
// referenced elsewhere or free: recovery decides them as any other
// (RecordIdle is false until the last store).
inline void ClearRecord(OpRecord& r) {
  r.op.store(kOpNone, std::memory_order_release);
  r.cand_obj.store(0, std::memory_order_relaxed);
  r.cand_name.store(0, std::memory_order_relaxed);
  r.touch.store(0, std::memory_order_relaxed);
  r.wait_bucket.store(0, std::memory_order_relaxed);
  ClearBlockRef(r.cand);
  ClearBlockRef(r.cand_pages);
  ClearBlockRef(r.owned[0]);
  ClearBlockRef(r.owned[1]);
}

inline constexpr uint32_t kClientHeaderBytes = 256;
inline constexpr uint32_t kRecordsPerClient =
    (kClientStride - kClientHeaderBytes) / sizeof(OpRecord);  // 30

// One per client slot, kClientStride bytes apart; the client's log records
// follow the first kClientHeaderBytes.
struct alignas(64) ClientSlot {
  std::atomic<uint32_t> state;    // ClientState; written by the monitor
  std::atomic<uint32_t> pid;
  std::atomic<uint64_t> serial;   // unique per registration
  std::atomic<uint64_t> pid_start_time;  // /proc start time, for pid reuse
};
static_assert(sizeof(ClientSlot) <= kClientHeaderBytes);

// ---------------------------------------------------------- wait buckets ---
// Futex words for getters waiting on objects, hashed by object id (or name).
// The bucket also keeps the last kAbortRing aborts of builds whose id (or
// name) hashes to it, so that a getter that started waiting before the
// build began still learns it was aborted (Store::NoteAbort, and
// ClientCore::WaitSlow for the reader).
inline constexpr uint32_t kAbortRing = 6;
struct alignas(64) WaitBucket {
  std::atomic<uint32_t> seq;      // bumped on every seal/abort in the bucket
  std::atomic<uint32_t> waiters;  // getters announced as about to sleep
  std::atomic<uint64_t> aborts;   // aborts noted in the bucket
  // Abort n is AbortTag(n, hash) at [n % kAbortRing].
  std::atomic<uint64_t> aborted[kAbortRing];
};
// The number of an abort (its low 32 bits) and the high half of its id's (or
// name's) hash; the low bits chose the bucket. Tagged with n, an entry not
// yet written for abort n (or overwritten since) never matches.
inline constexpr uint64_t AbortTag(uint64_t n, uint64_t hash) {
  return (n << 32) | (hash >> 32);
}

// ---------------------------------------------------------------- buckets ---
// One cache line: a bitmap of the bucket's 56 slots that are taken, and a
// one-byte fingerprint per slot (0: none) that filters lookups. The
// fingerprints are packed 8 to a word (byte i % 8 of word i / 8 is slot i)
// so that a lookup matches all 56 with 7 loads and a little SWAR arithmetic,
// and so that every access is a whole-word atomic.
//
// Object buckets only: bits 56..63 of `used` count the keys whose first
// bucket this is but which live in their second one (the "spill" count; see
// ObjectTable::ClaimObjectSlot). While it is 0, no key of this first bucket
// is anywhere else, and a look-up or a creator's verify step reads this one
// header line only. At 255 it sticks (never counts up or down again).
struct alignas(64) BucketHeader {
  std::atomic<uint64_t> used;
  std::atomic<uint64_t> fp[kSlotsPerBucket / 8];
};
static_assert(sizeof(BucketHeader) == 64);

inline constexpr uint64_t kUsedSlotsMask = (uint64_t{1} << kSlotsPerBucket) - 1;
inline constexpr uint32_t kSpillShift = kSlotsPerBucket;  // 56
inline constexpr uint64_t kSpillOne = uint64_t{1} << kSpillShift;
inline constexpr uint32_t kSpillSticky = 255;
// The taken-slot bits of a `used` word, and its spill count.
inline constexpr uint64_t UsedSlots(uint64_t used) { return used & kUsedSlotsMask; }
inline constexpr uint32_t SpillOf(uint64_t used) {
  return static_cast<uint32_t>(used >> kSpillShift);
}

// Object states (low 8 bits of ObjectEntry::state; the generation is above).
enum ObjState : uint8_t {
  kObjEmpty = 0,     // free, or reserved by a creator not yet published
  kObjClaimed = 1,   // published by a creator, not yet committed
  kObjKilled = 2,    // a competing creator of the same id/name killed it
  kObjCreating = 3,  // committed: being written by its creator
  kObjSealed = 4,    // immutable, visible
  kObjDeleting = 5,  // deleted: invisible; freed when no holder is left
  kObjFreeing = 6,   // one client won the right to free it
  kObjAborted = 7,   // free again; its builder aborted it (waiters answer
                     // kAborted when they saw this generation being built)
};

inline constexpr uint64_t MakeState(uint64_t gen, ObjState s) {
  return (gen << 8) | s;
}
inline constexpr ObjState StateOf(uint64_t word) {
  return static_cast<ObjState>(word & 0xff);
}
inline constexpr uint64_t GenOf(uint64_t word) { return word >> 8; }

inline constexpr uint32_t kNoSlot = 0xffffffffu;

// 128 bytes: line 0 is what a get reads, line 1 holds the holder bitmap (the
// only word a get writes) and fields written once.
struct alignas(64) ObjectEntry {
  std::atomic<uint64_t> state;       // gen << 8 | ObjState
  std::atomic<uint64_t> id[2];       // written before the slot is published
  std::atomic<uint64_t> data_offset;  // payload, from the heap start
  std::atomic<uint64_t> data_size;    // payload bytes
  std::atomic<uint64_t> info_offset;  // name + metadata block, from heap start
  std::atomic<uint32_t> info_size;    // bytes of that block (0: none)
  std::atomic<uint16_t> name_len;
  std::atomic<uint16_t> creator_slot;
  std::atomic<uint32_t> name_slot;    // this object's name entry, or kNoSlot
  std::atomic<uint32_t> creator_serial;  // registration serial of the creator
  // Line 1.
  std::atomic<uint64_t> holders[kHolderWords];  // bit per client slot
  std::atomic<int64_t> create_time_us;  // realtime at create (from create_tsc)
  std::atomic<uint64_t> create_tsc;     // time-stamp counter at create
  std::atomic<uint64_t> seal_tsc;       // ... and at seal (0: unsealed)
  std::atomic<uint32_t> creator_pid;
  // Bit (gen % 32) is set when generation gen of this slot was aborted;
  // whoever gives generation gen's slot back clears the bit of gen + 1
  // first, so a claimer never reads it. Lets a getter that saw gen being
  // built learn of the abort even after the slot was reused.
  std::atomic<uint32_t> aborted_gens;
};
static_assert(sizeof(ObjectEntry) == 128);

// The name index maps a name to the object slot holding it. `seq` counts
// releases of the slot, so recovery can tell a slot that stayed unbound
// from one that was bound and released again meanwhile.
struct NameEntry {
  std::atomic<uint32_t> obj_slot;
  std::atomic<uint32_t> seq;
};

// ------------------------------------------------------------ allocator ---
enum SpanKind : uint8_t {
  kSpanFree = 0,      // its pages are free or part of large runs
  kSpanActive = 1,    // a span of one size class
  kSpanRetiring = 2,  // emptied; its owner is returning the pages
};
// state word: frees << 32 | count << 16 | class << 8 | kind. count = blocks
// reserved; frees counts frees into the span (mod 2^32), so that recovery
// can tell an unchanged span from one that freed and re-took a block.
inline constexpr uint64_t kSpanCountOne = uint64_t{1} << 16;
inline constexpr uint64_t kSpanFreeOne = uint64_t{1} << 32;
inline constexpr uint64_t MakeSpanState(uint32_t count, uint32_t cls,
                                        SpanKind k, uint64_t frees = 0) {
  return (frees << 32) | (uint64_t{count} << 16) | (uint64_t{cls} << 8) | k;
}
inline constexpr uint64_t SpanFreesOf(uint64_t s) { return s >> 32; }
inline constexpr SpanKind SpanKindOf(uint64_t s) {
  return static_cast<SpanKind>(s & 0xff);
}
inline constexpr uint32_t SpanClassOf(uint64_t s) { return (s >> 8) & 0xff; }
inline constexpr uint32_t SpanCountOf(uint64_t s) {
  return static_cast<uint32_t>((s >> 16) & 0xffff);
}

inline constexpr uint32_t kSpanBitmapWords = kSpanSize / 64 / 64;  // 16
struct alignas(64) SpanMeta {
  std::atomic<uint64_t> state;
  // The client slot that started the span: a hint that keeps clients on
  // spans of their own (no shared cache lines on the allocation path).
  std::atomic<uint32_t> owner;
  uint32_t pad0;
  uint64_t pad[6];
  std::atomic<uint64_t> bits[kSpanBitmapWords];  // 1: block taken
};
static_assert(sizeof(SpanMeta) == 192);

// ------------------------------------------------- docs/REGION_FORMAT.md ---
// Every offset and width the format document gives, pinned: a change of a
// struct above that the document does not follow (or the reverse) fails to
// compile. Change both, and kLayoutVersion, together.
#define GLINT_FIELD_AT(T, field, offset, width)                      \
  static_assert(offsetof(T, field) == (offset) &&                    \
                    sizeof(T::field) == (width),                     \
                #T "::" #field " is not where docs/REGION_FORMAT.md " \
                   "says it is")
static_assert(sizeof(RegionHeader) == 392);
GLINT_FIELD_AT(RegionHeader, magic, 0, 8);
GLINT_FIELD_AT(RegionHeader, layout_version, 8, 4);
GLINT_FIELD_AT(RegionHeader, header_size, 12, 4);
GLINT_FIELD_AT(RegionHeader, region_size, 16, 8);
GLINT_FIELD_AT(RegionHeader, create_time_us, 24, 8);
GLINT_FIELD_AT(RegionHeader, clients_offset, 32, 8);
GLINT_FIELD_AT(RegionHeader, max_clients, 40, 4);
GLINT_FIELD_AT(RegionHeader, client_stride, 44, 4);
GLINT_FIELD_AT(RegionHeader, waits_offset, 48, 8);
GLINT_FIELD_AT(RegionHeader, num_wait_buckets, 56, 4);
GLINT_FIELD_AT(RegionHeader, reserved0, 60, 4);
GLINT_FIELD_AT(RegionHeader, obj_buckets_offset, 64, 8);
GLINT_FIELD_AT(RegionHeader, obj_entries_offset, 72, 8);
GLINT_FIELD_AT(RegionHeader, obj_num_buckets, 80, 8);
GLINT_FIELD_AT(RegionHeader, max_objects, 88, 8);
GLINT_FIELD_AT(RegionHeader, name_buckets_offset, 96, 8);
GLINT_FIELD_AT(RegionHeader, name_entries_offset, 104, 8);
GLINT_FIELD_AT(RegionHeader, name_num_buckets, 112, 8);
GLINT_FIELD_AT(RegionHeader, page_bitmap_offset, 120, 8);
GLINT_FIELD_AT(RegionHeader, page_bitmap_words, 128, 8);
GLINT_FIELD_AT(RegionHeader, span_table_offset, 136, 8);
GLINT_FIELD_AT(RegionHeader, num_spans, 144, 8);
GLINT_FIELD_AT(RegionHeader, class_hints_offset, 152, 8);
GLINT_FIELD_AT(RegionHeader, class_hint_words, 160, 8);
GLINT_FIELD_AT(RegionHeader, heap_offset, 168, 8);
GLINT_FIELD_AT(RegionHeader, heap_size, 176, 8);
GLINT_FIELD_AT(RegionHeader, num_pages, 184, 8);
GLINT_FIELD_AT(RegionHeader, monitor_pid, 192, 4);
GLINT_FIELD_AT(RegionHeader, flags, 196, 4);
GLINT_FIELD_AT(RegionHeader, tsc_per_us, 200, 8);
GLINT_FIELD_AT(RegionHeader, hostname, 208, 64);
GLINT_FIELD_AT(RegionHeader, socket_path, 272, 112);
GLINT_FIELD_AT(RegionHeader, next_client_serial, 384, 8);

static_assert(kClientStride == 4096 && kClientHeaderBytes == 256 &&
              kRecordsPerClient == 30);
GLINT_FIELD_AT(ClientSlot, state, 0, 4);
GLINT_FIELD_AT(ClientSlot, pid, 4, 4);
GLINT_FIELD_AT(ClientSlot, serial, 8, 8);
GLINT_FIELD_AT(ClientSlot, pid_start_time, 16, 8);

GLINT_FIELD_AT(OpRecord, op, 0, 4);
GLINT_FIELD_AT(OpRecord, obj_slot, 4, 4);
GLINT_FIELD_AT(OpRecord, gen, 8, 8);
GLINT_FIELD_AT(OpRecord, cand_obj, 16, 4);
GLINT_FIELD_AT(OpRecord, cand_name, 20, 4);
GLINT_FIELD_AT(OpRecord, touch, 24, 4);
GLINT_FIELD_AT(OpRecord, wait_bucket, 28, 4);
GLINT_FIELD_AT(OpRecord, cand, 32, 16);
GLINT_FIELD_AT(OpRecord, cand_pages, 48, 16);
GLINT_FIELD_AT(OpRecord, owned, 64, 32);
GLINT_FIELD_AT(BlockRef, off1, 0, 8);
GLINT_FIELD_AT(BlockRef, size, 8, 8);

static_assert(sizeof(WaitBucket) == 64 && kNumWaitBuckets == 1024);
GLINT_FIELD_AT(WaitBucket, seq, 0, 4);
GLINT_FIELD_AT(WaitBucket, waiters, 4, 4);
GLINT_FIELD_AT(WaitBucket, aborts, 8, 8);
GLINT_FIELD_AT(WaitBucket, aborted, 16, 48);

GLINT_FIELD_AT(BucketHeader, used, 0, 8);
GLINT_FIELD_AT(BucketHeader, fp, 8, 56);

GLINT_FIELD_AT(ObjectEntry, state, 0, 8);
GLINT_FIELD_AT(ObjectEntry, id, 8, 16);
GLINT_FIELD_AT(ObjectEntry, data_offset, 24, 8);
GLINT_FIELD_AT(ObjectEntry, data_size, 32, 8);
GLINT_FIELD_AT(ObjectEntry, info_offset, 40, 8);
GLINT_FIELD_AT(ObjectEntry, info_size, 48, 4);
GLINT_FIELD_AT(ObjectEntry, name_len, 52, 2);
GLINT_FIELD_AT(ObjectEntry, creator_slot, 54, 2);
GLINT_FIELD_AT(ObjectEntry, name_slot, 56, 4);
GLINT_FIELD_AT(ObjectEntry, creator_serial, 60, 4);
GLINT_FIELD_AT(ObjectEntry, holders, 64, 32);
GLINT_FIELD_AT(ObjectEntry, create_time_us, 96, 8);
GLINT_FIELD_AT(ObjectEntry, create_tsc, 104, 8);
GLINT_FIELD_AT(ObjectEntry, seal_tsc, 112, 8);
GLINT_FIELD_AT(ObjectEntry, creator_pid, 120, 4);
GLINT_FIELD_AT(ObjectEntry, aborted_gens, 124, 4);

static_assert(sizeof(NameEntry) == 8);
GLINT_FIELD_AT(NameEntry, obj_slot, 0, 4);
GLINT_FIELD_AT(NameEntry, seq, 4, 4);

GLINT_FIELD_AT(SpanMeta, state, 0, 8);
GLINT_FIELD_AT(SpanMeta, owner, 8, 4);
GLINT_FIELD_AT(SpanMeta, bits, 64, 128);
#undef GLINT_FIELD_AT

// --------------------------------------------------------------- layout ---
struct LayoutParams {
  uint64_t capacity;     // requested heap bytes
  uint64_t max_objects;  // 0: default
  uint32_t max_clients;
};

// Computes every offset of a region for `params`. Fails with
// kInvalidArgument when a parameter is out of range.
Status ComputeLayout(const LayoutParams& params, RegionHeader* out);

// A mapped region: typed access to its sections. Holds no ownership.
class Region {
 public:
  Region() = default;
  // Reads the header's geometry (section offsets, obj_num_buckets) once, so
  // the accessors below cost one load, not a reload of the header after
  // every atomic operation. Construct a Region over a formatted region (its
  // header written); the accessors mean something only once the header
  // passed Validate. (Addresses are kept as integers: a damaged header's
  // offsets never become out-of-range pointer arithmetic.)
  Region(uint8_t* base, uint64_t size) : base_(base), size_(size) {
    if (size < sizeof(RegionHeader)) return;
    const RegionHeader* h = header();
    const uintptr_t b = reinterpret_cast<uintptr_t>(base);
    const uint64_t nb = h->obj_num_buckets;
    obj_mask_ = nb - 1;
    obj_bits_ = static_cast<uint32_t>(std::countr_zero(nb)) & 63;
    clients_ = b + h->clients_offset;
    waits_ = b + h->waits_offset;
    obj_buckets_ = b + h->obj_buckets_offset;
    entries_ = b + h->obj_entries_offset;
    name_buckets_ = b + h->name_buckets_offset;
    name_entries_ = b + h->name_entries_offset;
    spans_ = b + h->span_table_offset;
    heap_ = b + h->heap_offset;
  }

  // Writes a fresh header and zeroes/initialises every section.
  // REQUIRES: base is a zero-filled mapping of layout.region_size bytes.
  static void Format(uint8_t* base, const RegionHeader& layout);

  // Checks magic, version and that every section lies inside `size`.
  // Errors: kIncompatible (magic or version), kCorrupt (bad offsets).
  static Status Validate(const uint8_t* base, uint64_t size);
  // The header's flags read from the region file, before it is mapped: how
  // to map it depends on them (huge pages, populate or not). 0 when the
  // read fails, which maps it as a region without flags; Validate checks
  // the mapped header afterwards.
  static uint32_t FlagsOfFile(int fd);

  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  RegionHeader* header() const {
    return reinterpret_cast<RegionHeader*>(base_);
  }
  ClientSlot* client(uint32_t i) const {
    return reinterpret_cast<ClientSlot*>(clients_ + uint64_t{i} * kClientStride);
  }
  OpRecord* record(uint32_t client, uint32_t i) const {
    return reinterpret_cast<OpRecord*>(clients_ + uint64_t{client} * kClientStride +
                                       kClientHeaderBytes) + i;
  }
  WaitBucket* wait_bucket(uint64_t hash) const {
    return reinterpret_cast<WaitBucket*>(waits_) + (hash % kNumWaitBuckets);
  }
  BucketHeader* obj_bucket(uint64_t b) const {
    return reinterpret_cast<BucketHeader*>(obj_buckets_) + b;
  }
  ObjectEntry* entry(uint32_t slot) const {
    return reinterpret_cast<ObjectEntry*>(entries_) + slot;
  }
  BucketHeader* name_bucket(uint64_t b) const {
    return reinterpret_cast<BucketHeader*>(name_buckets_) + b;
  }
  NameEntry* name_entry(uint32_t slot) const {
    return reinterpret_cast<NameEntry*>(name_entries_) + slot;
  }
  std::atomic<uint64_t>* page_bitmap() const {
    return reinterpret_cast<std::atomic<uint64_t>*>(
        base_ + header()->page_bitmap_offset);
  }
  // One counter per page-bitmap word, bumped before a free clears bits of
  // that word; right after the page bitmap, in the same section.
  std::atomic<uint64_t>* page_epochs() const {
    return page_bitmap() + header()->page_bitmap_words;
  }
  SpanMeta* span(uint64_t i) const { return reinterpret_cast<SpanMeta*>(spans_) + i; }
  std::atomic<uint64_t>* class_hints(uint32_t cls) const {
    return reinterpret_cast<std::atomic<uint64_t>*>(
               base_ + header()->class_hints_offset) +
           uint64_t{cls} * header()->class_hint_words;
  }
  uint8_t* heap() const { return reinterpret_cast<uint8_t*>(heap_); }
  uint64_t num_obj_slots() const {
    return header()->obj_num_buckets * kSlotsPerBucket;
  }
  // Object slots are numbered index-major: slot i of bucket b is
  // i * obj_num_buckets + b (a power of two), so the first slots of all
  // buckets lie side by side. A table holding fewer objects than buckets
  // then keeps its entries in a few pages, not one page per bucket. (Name
  // slots are numbered bucket-major: b * 56 + i.)
  // (The geometry comes from the header as it was at construction; a
  // header that fails Region::Validate gives meaningless slot numbers.)
  uint32_t obj_slot(uint64_t b, uint32_t i) const {
    return static_cast<uint32_t>((uint64_t{i} << obj_bits_) | b);
  }
  uint64_t obj_bucket_of(uint32_t slot) const { return slot & obj_mask_; }
  uint32_t obj_index_of(uint32_t slot) const {
    return static_cast<uint32_t>(uint64_t{slot} >> obj_bits_);
  }

 private:
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint64_t obj_mask_ = 0;  // obj_num_buckets - 1
  uint32_t obj_bits_ = 0;  // log2(obj_num_buckets)
  // base + the header's offset of each section (see the constructor).
  uintptr_t clients_ = 0, waits_ = 0, obj_buckets_ = 0, entries_ = 0,
            name_buckets_ = 0, name_entries_ = 0, spans_ = 0, heap_ = 0;
};

}  // namespace glint::core

#endif  // GLINT_CORE_REGION_H_
