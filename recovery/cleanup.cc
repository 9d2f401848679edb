// Copyright (c) glint authors.

#include "recovery/cleanup.h"

#include "core/atomics.h"

namespace glint::internal {

void ReleaseClientSlot(core::Store* store, uint32_t slot) {
  const core::Region& r = store->region();
  core::ClientSlot* cs = r.client(slot);
  store->ReleaseClient(slot);
  core::StoreRelaxed(cs->pid, 0u);
  core::StoreRelease(cs->state, static_cast<uint32_t>(core::kClientFree));
}

}  // namespace glint::internal
