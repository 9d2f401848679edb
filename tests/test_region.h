// Copyright (c) glint authors.
//
// A region in an anonymous private mapping, formatted as the monitor would:
// for unit tests of core/ and alloc/ that need no monitor, socket or file.

#ifndef GLINT_TESTS_TEST_REGION_H_
#define GLINT_TESTS_TEST_REGION_H_

#include <sys/mman.h>

#include <cstdint>

#include "core/region.h"
#include "glint/status.h"

namespace glint::testing {

class TestRegion {
 public:
  explicit TestRegion(uint64_t capacity, uint64_t max_objects = 1024,
                      uint32_t max_clients = 4) {
    core::LayoutParams p{capacity, max_objects, max_clients};
    status_ = core::ComputeLayout(p, &layout_);
    if (!status_.ok()) return;
    size_ = layout_.region_size;
    void* m = mmap(nullptr, size_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
      status_ = Status::IOError("mmap");
      return;
    }
    base_ = static_cast<uint8_t*>(m);
    core::Region::Format(base_, layout_);
  }
  ~TestRegion() {
    if (base_ != nullptr) munmap(base_, size_);
  }
  TestRegion(const TestRegion&) = delete;
  TestRegion& operator=(const TestRegion&) = delete;

  const Status& status() const { return status_; }
  core::Region region() const { return core::Region(base_, size_); }
  core::RegionHeader* header() const { return region().header(); }
  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  uint8_t* heap_base() const { return region().heap(); }
  uint64_t heap_size() const { return layout_.heap_size; }

 private:
  Status status_;
  core::RegionHeader layout_{};
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace glint::testing

#endif  // GLINT_TESTS_TEST_REGION_H_
