// Copyright (c) glint authors.

#include "recovery/cleanup.h"

#include "core/atomics.h"

namespace glint::internal {

void ReleaseClientSlot(core::Store* store, uint32_t slot) {
  const core::Region& r = store->region();
  core::ClientSlot* cs = r.client(slot);
  store->ReleaseClient(slot);
  // Fold the counters into the header before the slot is reused, so Stats
  // (a sum over slots plus the retired totals) stays exact. Each counter is
  // moved with an exchange, so a Stats reading in between sees it once.
  core::RegionHeader* h = r.header();
  h->retired_bytes_in_use.fetch_add(cs->bytes_in_use.exchange(0));
  h->retired_objects_sealed.fetch_add(cs->objects_sealed.exchange(0));
  h->retired_objects_building.fetch_add(cs->objects_building.exchange(0));
  core::StoreRelaxed(cs->pid, 0u);
  core::StoreRelease(cs->state, static_cast<uint32_t>(core::kClientFree));
}

}  // namespace glint::internal
