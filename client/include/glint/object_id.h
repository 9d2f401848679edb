// Copyright (c) glint authors.
//
// ObjectId: the 16-byte identifier a client gives an object. glint never
// makes one up for you except through Random().
//
// Thread safety: a value type.

#ifndef GLINT_OBJECT_ID_H_
#define GLINT_OBJECT_ID_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

namespace glint {

class ObjectId {
 public:
  static constexpr size_t kSize = 16;

  // The all-zero id.
  ObjectId() { std::memset(bytes_, 0, kSize); }

  // The id whose 16 bytes are `binary`, when binary.size() == 16. Any other
  // size gives the all-zero id, silently: that is a usable id like any
  // other (the same as 16 zero bytes), so a short or long input would name
  // whatever object has it. For input whose size is not known to be 16, use
  // the overload below.
  static ObjectId FromBinary(std::string_view binary);
  // Sets *out to the id whose bytes are `bytes` and returns true when
  // bytes.size() == 16; otherwise returns false, leaving *out unchanged.
  // REQUIRES: out != nullptr.
  static bool FromBinary(std::string_view bytes, ObjectId* out);
  // Parses 32 hex digits (either case). Returns false, leaving *out
  // unchanged, on any other input. REQUIRES: out != nullptr.
  static bool FromHex(std::string_view hex, ObjectId* out);
  // 16 bytes from the OS's random source (getrandom). Never blocks once the
  // machine's entropy pool is initialised.
  static ObjectId Random();

  std::string binary() const {
    return std::string(reinterpret_cast<const char*>(bytes_), kSize);
  }
  std::string hex() const;  // 32 lower-case hex digits
  const uint8_t* data() const { return bytes_; }
  uint8_t* mutable_data() { return bytes_; }

  // A hash over all 16 bytes (the same one the store uses for its table).
  uint64_t Hash() const;

  bool operator==(const ObjectId& o) const {
    return std::memcmp(bytes_, o.bytes_, kSize) == 0;
  }
  bool operator!=(const ObjectId& o) const { return !(*this == o); }
  bool operator<(const ObjectId& o) const {
    return std::memcmp(bytes_, o.bytes_, kSize) < 0;
  }

 private:
  alignas(8) uint8_t bytes_[kSize];
};

}  // namespace glint

template <>
struct std::hash<glint::ObjectId> {
  size_t operator()(const glint::ObjectId& id) const noexcept {
    return static_cast<size_t>(id.Hash());
  }
};

#endif  // GLINT_OBJECT_ID_H_
