// Copyright (c) glint authors.

#include "glint/object_id.h"

#include <sys/random.h>

#include "core/object_table.h"

namespace glint {

ObjectId ObjectId::FromBinary(std::string_view binary) {
  ObjectId id;
  if (binary.size() == kSize) std::memcpy(id.bytes_, binary.data(), kSize);
  return id;
}

bool ObjectId::FromBinary(std::string_view bytes, ObjectId* out) {
  if (bytes.size() != kSize) return false;
  std::memcpy(out->bytes_, bytes.data(), kSize);
  return true;
}

bool ObjectId::FromHex(std::string_view hex, ObjectId* out) {
  if (hex.size() != 2 * kSize) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  uint8_t bytes[kSize];
  for (size_t i = 0; i < kSize; ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  std::memcpy(out->bytes_, bytes, kSize);
  return true;
}

ObjectId ObjectId::Random() {
  ObjectId id;
  size_t got = 0;
  while (got < kSize) {
    const ssize_t n = getrandom(id.bytes_ + got, kSize - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  return id;
}

std::string ObjectId::hex() const {
  static const char kDigits[] = "0123456789abcdef";
  std::string s(2 * kSize, '0');
  for (size_t i = 0; i < kSize; ++i) {
    s[2 * i] = kDigits[bytes_[i] >> 4];
    s[2 * i + 1] = kDigits[bytes_[i] & 15];
  }
  return s;
}

uint64_t ObjectId::Hash() const { return core::IdHash(bytes_); }

}  // namespace glint
