// Copyright (c) glint authors.
//
// The store's checker: walks a whole region and verifies its invariants.
// Safe on a live store (it only reads, with atomic loads, and never trusts
// an offset, length or index it reads: everything is bounds-checked, so a
// corrupt region gives a report, never a crash). On a live store, states a
// running operation passes through are not errors; with `quiescent` (no
// client runs an operation: tests, after recovery) the checks are exact.
// Live, each entry is read as a seqlock reader and a problem of an entry
// (or two entries sharing a block) is reported only if the entries are still
// as read once checked, so an operation finishing meanwhile is no alarm.
//
// What it verifies:
//  - every taken object slot has a valid state; every entry that owns
//    blocks (CLAIMED..FREEING) has them inside the heap, as a taken block of
//    its size class in an active span (small) or as taken pages outside any
//    span (large); no two entries share a byte;
//  - quiescent: every taken block and page is owned by exactly one entry
//    (nothing leaked), each span's reserved count equals its taken blocks,
//    no entry is half-way (CLAIMED, KILLED, FREEING), every building entry's
//    creator is a registered client, no client log record is in use, no
//    wait bucket counts a sleeper;
//  - names: every taken name slot is bound to an entry that points back at
//    it (quiescent; a slot pointing past the table: always), and every
//    named entry's name slot is taken and bound to it; no bucket marks
//    slots past 56;
//  - holder bits only for registered clients.

#ifndef GLINT_CORE_CHECK_H_
#define GLINT_CORE_CHECK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/region.h"

namespace glint::core {

struct CheckReport {
  std::vector<std::string> problems;  // empty: sound
  uint64_t objects = 0;               // entries owning blocks
  uint64_t bytes_owned = 0;           // heap bytes those entries own
  bool ok() const { return problems.empty(); }
  std::string ToString() const;
};

// REQUIRES: `r` maps r.size() bytes. The header's geometry is validated
// first (Region::Validate); a region that fails it is reported as such.
CheckReport CheckRegion(const Region& r, bool quiescent);

}  // namespace glint::core

#endif  // GLINT_CORE_CHECK_H_
