// Copyright (c) glint authors.

#include "tools/cli_util.h"

#include <cctype>
#include <cstdio>

namespace glint::tools {

bool ParseSize(std::string_view text, int64_t* bytes) {
  size_t i = 0;
  while (i < text.size() && text[i] == ' ') ++i;
  if (i == text.size() || !std::isdigit(static_cast<unsigned char>(text[i]))) {
    return false;
  }
  uint64_t v = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    const uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  while (i < text.size() && text[i] == ' ') ++i;
  std::string unit(text.substr(i));
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  int shift = 0;
  if (unit.empty() || unit == "b") {
    shift = 0;
  } else if (unit == "k" || unit == "kb" || unit == "kib") {
    shift = 10;
  } else if (unit == "m" || unit == "mb" || unit == "mib") {
    shift = 20;
  } else if (unit == "g" || unit == "gb" || unit == "gib") {
    shift = 30;
  } else if (unit == "t" || unit == "tb" || unit == "tib") {
    shift = 40;
  } else {
    return false;
  }
  if (shift > 0 && v > (uint64_t{INT64_MAX} >> shift)) return false;
  v <<= shift;
  if (v > static_cast<uint64_t>(INT64_MAX)) return false;
  *bytes = static_cast<int64_t>(v);
  return true;
}

std::string FormatSize(int64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while ((v >= 1024 || v <= -1024) && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[64];
  if (u == 0) {
    snprintf(buf, sizeof(buf), "%lld B", static_cast<long long>(bytes));
  } else {
    snprintf(buf, sizeof(buf), v == static_cast<int64_t>(v) ? "%.0f %s" : "%.1f %s",
             v, kUnits[u]);
  }
  return buf;
}

bool ParseMode(std::string_view text, uint32_t* mode) {
  if (text.empty() || text.size() > 4) return false;
  uint32_t m = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return false;
    m = m * 8 + static_cast<uint32_t>(c - '0');
  }
  if (m > 0777) return false;
  *mode = m;
  return true;
}

}  // namespace glint::tools
