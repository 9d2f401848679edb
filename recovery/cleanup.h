// Copyright (c) glint authors.
//
// What the monitor does when a client leaves: release what it held, abort
// what it was building, free its slot.

#ifndef GLINT_RECOVERY_CLEANUP_H_
#define GLINT_RECOVERY_CLEANUP_H_

#include <cstdint>

#include "core/store.h"

namespace glint::internal {

// REQUIRES: the client of `slot` runs no operation any more (its socket
// closed and it destroyed its Client or exited). Idempotent.
void ReleaseClientSlot(core::Store* store, uint32_t slot);

}  // namespace glint::internal

#endif  // GLINT_RECOVERY_CLEANUP_H_
