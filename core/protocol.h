// Copyright (c) glint authors.
//
// The registration protocol on the monitor's unix socket. A client connects,
// sends a Hello, and receives a Welcome; when the Welcome says OK it carries
// the region's file descriptor (SCM_RIGHTS). The client keeps the socket
// open: its hang-up tells the monitor the client left.

#ifndef GLINT_CORE_PROTOCOL_H_
#define GLINT_CORE_PROTOCOL_H_

#include <cstdint>

namespace glint::core {

inline constexpr uint32_t kHelloMagic = 0x544e4c47;  // "GLNT"
inline constexpr uint32_t kProtocolVersion = 1;

// A client that leaves on purpose (its Client is destroyed) sends this
// 4-byte word before closing, after it released everything itself. A socket
// that closes without it may belong to a process that still runs (it closed
// its descriptors); the monitor then waits for the process to exit.
inline constexpr uint32_t kByeMagic = 0x45594221;  // "!BYE"

struct Hello {
  uint32_t magic;
  uint32_t protocol_version;
  uint32_t layout_version;
  uint32_t reserved;
};

struct Welcome {
  uint32_t magic;
  uint32_t protocol_version;
  uint32_t status_code;  // a glint::StatusCode
  uint32_t client_slot;
  uint64_t client_serial;
  uint64_t region_size;
  char message[224];
};
static_assert(sizeof(Welcome) == 256);

}  // namespace glint::core

#endif  // GLINT_CORE_PROTOCOL_H_
