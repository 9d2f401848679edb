// Copyright (c) glint authors.

#include "core/region.h"

#include "core/os.h"

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>

namespace glint::core {
namespace {

uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

uint64_t NextPow2(uint64_t v) {
  uint64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

constexpr uint64_t kMaxCapacity = uint64_t{1} << 44;  // 16 TiB
constexpr uint64_t kMaxObjects = uint64_t{1} << 28;

}  // namespace

Status ComputeLayout(const LayoutParams& p, RegionHeader* h) {
  if (p.capacity == 0 || p.capacity > kMaxCapacity) {
    return Status::InvalidArgument("capacity must be between 1 byte and 16 TiB");
  }
  if (p.max_clients < 1 || p.max_clients > kMaxClients) {
    return Status::InvalidArgument("max_clients must be between 1 and " +
                                   std::to_string(kMaxClients));
  }
  if (p.max_objects > kMaxObjects) {
    return Status::InvalidArgument("max_objects must be at most 2^28");
  }
  std::memset(static_cast<void*>(h), 0, sizeof(*h));
  h->magic = kRegionMagic;
  h->layout_version = kLayoutVersion;
  h->header_size = sizeof(RegionHeader);

  const uint64_t heap_size = RoundUp(p.capacity, kSpanSize);
  uint64_t max_objects = p.max_objects;
  if (max_objects == 0) {
    max_objects = std::max<uint64_t>(65536, heap_size / (16 * 1024));
    max_objects = std::min(max_objects, kMaxObjects);
  }
  h->max_objects = max_objects;
  // Two slots per object: with two bucket choices per id, a bucket of 56
  // slots then practically never overflows even when max_objects are live.
  h->obj_num_buckets =
      NextPow2(std::max<uint64_t>(2, (2 * max_objects + kSlotsPerBucket - 1) /
                                         kSlotsPerBucket));
  h->name_num_buckets = h->obj_num_buckets;
  h->max_clients = p.max_clients;
  h->client_stride = kClientStride;
  h->num_wait_buckets = kNumWaitBuckets;

  uint64_t off = kPageSize;  // header page
  h->clients_offset = off;
  off = RoundUp(off + uint64_t{p.max_clients} * kClientStride, kPageSize);
  h->waits_offset = off;
  off = RoundUp(off + kNumWaitBuckets * sizeof(WaitBucket), kPageSize);
  h->obj_buckets_offset = off;
  off = RoundUp(off + h->obj_num_buckets * sizeof(BucketHeader), kPageSize);
  h->obj_entries_offset = off;
  off = RoundUp(off + h->obj_num_buckets * kSlotsPerBucket * sizeof(ObjectEntry),
                kPageSize);
  h->name_buckets_offset = off;
  off = RoundUp(off + h->name_num_buckets * sizeof(BucketHeader), kPageSize);
  h->name_entries_offset = off;
  off = RoundUp(off + h->name_num_buckets * kSlotsPerBucket * sizeof(NameEntry),
                kPageSize);

  h->num_pages = heap_size / kPageSize;
  h->num_spans = heap_size / kSpanSize;
  h->page_bitmap_words = (h->num_pages + 63) / 64;
  h->page_bitmap_offset = off;
  off = RoundUp(off + h->page_bitmap_words * 16, kPageSize);  // bits + epochs
  h->span_table_offset = off;
  off = RoundUp(off + h->num_spans * sizeof(SpanMeta), kPageSize);
  h->class_hint_words = (h->num_spans + 63) / 64;
  h->class_hints_offset = off;
  off = RoundUp(off + kNumSizeClasses * h->class_hint_words * 8, kPageSize);
  h->heap_offset = RoundUp(off, kSpanSize);
  h->heap_size = heap_size;
  h->region_size = h->heap_offset + heap_size;
  return Status::OK();
}

void Region::Format(uint8_t* base, const RegionHeader& layout) {
  // The mapping is fresh (zero-filled), so only non-zero initial values are
  // written. The magic goes last: a region with a magic is complete.
  RegionHeader* h = reinterpret_cast<RegionHeader*>(base);
  std::memcpy(static_cast<void*>(h), &layout, sizeof(RegionHeader));
  h->magic = 0;
  Region r(base, layout.region_size);
  for (uint32_t i = 0; i < layout.max_clients; ++i) {
    r.client(i)->state.store(kClientFree, std::memory_order_relaxed);
  }
  // Page bitmap: bits past the last page are permanently "taken".
  auto* pb = r.page_bitmap();
  const uint64_t tail = layout.num_pages % 64;
  if (tail != 0) {
    pb[layout.page_bitmap_words - 1].store(~uint64_t{0} << tail,
                                           std::memory_order_relaxed);
  }
  // Name entries start unbound.
  for (uint64_t i = 0; i < layout.name_num_buckets * kSlotsPerBucket; ++i) {
    r.name_entry(static_cast<uint32_t>(i))->obj_slot.store(kNoSlot,
                                                           std::memory_order_relaxed);
  }
  // Object and name slots: a bucket's bits past 56 never exist.
  h->next_client_serial.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  h->magic = kRegionMagic;
}

uint32_t Region::FlagsOfFile(int fd) {
  uint32_t flags = 0;
  if (!os::ReadAt(fd, &flags, sizeof(flags), offsetof(RegionHeader, flags))) return 0;
  return flags;
}

Status Region::Validate(const uint8_t* base, uint64_t size) {
  if (size < kPageSize) {
    return Status::Corrupt("region is smaller than its header page");
  }
  const RegionHeader* h = reinterpret_cast<const RegionHeader*>(base);
  if (h->magic != kRegionMagic) {
    return Status::Incompatible("not a glint region (bad magic)");
  }
  if (h->layout_version != kLayoutVersion) {
    return Status::Incompatible(
        "region layout version " + std::to_string(h->layout_version) +
        ", this library reads version " + std::to_string(kLayoutVersion));
  }
  if (h->header_size != sizeof(RegionHeader) || h->region_size != size) {
    return Status::Corrupt("region header size fields do not match the file");
  }
  // Recompute the layout from the parameters and compare every offset: a
  // header that does not describe itself is corrupt.
  LayoutParams p{h->heap_size, h->max_objects, h->max_clients};
  RegionHeader expect;
  Status s = ComputeLayout(p, &expect);
  if (!s.ok()) return Status::Corrupt("region header: " + s.message());
  const bool same =
      expect.region_size == h->region_size &&
      expect.clients_offset == h->clients_offset &&
      expect.waits_offset == h->waits_offset &&
      expect.obj_buckets_offset == h->obj_buckets_offset &&
      expect.obj_entries_offset == h->obj_entries_offset &&
      expect.obj_num_buckets == h->obj_num_buckets &&
      expect.name_buckets_offset == h->name_buckets_offset &&
      expect.name_entries_offset == h->name_entries_offset &&
      expect.name_num_buckets == h->name_num_buckets &&
      expect.page_bitmap_offset == h->page_bitmap_offset &&
      expect.page_bitmap_words == h->page_bitmap_words &&
      expect.span_table_offset == h->span_table_offset &&
      expect.num_spans == h->num_spans &&
      expect.class_hints_offset == h->class_hints_offset &&
      expect.class_hint_words == h->class_hint_words &&
      expect.heap_offset == h->heap_offset &&
      expect.heap_size == h->heap_size && expect.num_pages == h->num_pages &&
      h->client_stride == kClientStride &&
      h->num_wait_buckets == kNumWaitBuckets;
  if (!same) return Status::Corrupt("region header offsets are inconsistent");
  // A mapper decides how to map from these bits (huge pages, populate).
  if ((h->flags & ~kRegionKnownFlags) != 0) {
    char bits[16];
    std::snprintf(bits, sizeof(bits), "0x%x", h->flags & ~kRegionKnownFlags);
    return Status::Corrupt(std::string("region header: unknown flag bits ") + bits);
  }
  // 0: not calibrated. Otherwise ticks per microsecond of a real clock.
  if (!(h->tsc_per_us == 0.0 || (h->tsc_per_us >= 1.0 && h->tsc_per_us < 1.0e5))) {
    return Status::Corrupt("region header: the TSC rate " + std::to_string(h->tsc_per_us) +
                           " ticks/us is not a clock's");
  }
  return Status::OK();
}

}  // namespace glint::core

namespace glint::core {
// docs/REGION_FORMAT.md quotes these offsets; a change here must change the
// document and kLayoutVersion.
static_assert(offsetof(RegionHeader, tsc_per_us) == 200);
static_assert(offsetof(RegionHeader, hostname) == 208);
static_assert(offsetof(RegionHeader, next_client_serial) == 384);
static_assert(offsetof(ObjectEntry, data_offset) == 24);
static_assert(offsetof(ObjectEntry, name_slot) == 56);
static_assert(offsetof(ObjectEntry, holders) == 64);
static_assert(offsetof(ObjectEntry, creator_pid) == 120);
static_assert(offsetof(SpanMeta, bits) == 64);
}  // namespace glint::core
