// Copyright (c) glint authors.
//
// Small helpers shared by glintd and the glint tool.

#ifndef GLINT_TOOLS_CLI_UTIL_H_
#define GLINT_TOOLS_CLI_UTIL_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace glint::tools {

// Parses "4096", "512MiB", "1GiB", "64KiB", "2TiB" (also "k/K/KB/M/MB/G/GB",
// all powers of 1024) into bytes. Returns false on anything else, on
// overflow, and on a negative number.
bool ParseSize(std::string_view text, int64_t* bytes);

// "1.5 GiB", "512 KiB", "17 B".
std::string FormatSize(int64_t bytes);

// Parses an octal permission mode such as "0600" or "660" (at most 0777).
bool ParseMode(std::string_view text, uint32_t* mode);

}  // namespace glint::tools

#endif  // GLINT_TOOLS_CLI_UTIL_H_
