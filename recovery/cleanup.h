// Copyright (c) glint authors.
//
// Crash recovery: what the monitor does for a client whose process is gone.
// It reads the dead client's undo-log records (core/region.h) and finishes
// or undoes what each was doing, releases every reference the client held,
// aborts what it was building (waking its waiters), frees what it had
// allocated and never attached, and frees its slot. docs/ARCHITECTURE.md
// ("Crash recovery") gives the argument step by step.
//
// Every step decides by inspecting the region, so recovery is idempotent:
// a monitor killed in the middle is restarted and runs it again from the
// top. A decision that depends on a live client in the middle of an
// allocation in the same span (a window of a few instructions) is deferred:
// RecoverClient then returns false and is called again later.

#ifndef GLINT_RECOVERY_CLEANUP_H_
#define GLINT_RECOVERY_CLEANUP_H_

#include <cstdint>

#include "core/store.h"

namespace glint::internal {

// Recovers client `slot`, whose process has exited. Marks the slot
// kClientRecovering first (a restarted monitor finishes it), and kClientFree
// when done. Returns false when some step had to be deferred (call again in
// a few milliseconds; everything else is done). Never blocks. Lock-free
// with respect to live clients, which keep working throughout.
// Also frees the slot of a client that left cleanly (it said Bye after
// releasing everything itself): its records are idle, nothing else to do.
// REQUIRES: the process of `slot` is gone, or it said Bye; one recovery at
// a time.
bool RecoverClient(core::Store* store, uint32_t slot);

}  // namespace glint::internal

#endif  // GLINT_RECOVERY_CLEANUP_H_
