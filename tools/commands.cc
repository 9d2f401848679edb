// Copyright (c) glint authors.

#include "tools/commands.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "core/check.h"
#include "core/region.h"
#include "tools/cli_util.h"

namespace glint::tools {
namespace {

// A name shown in a table: printable bytes as they are, others escaped.
std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// A create time in the future shows as 0s. The difference is taken in
// unsigned arithmetic: a damaged create time (any int64) must not overflow.
std::string Age(int64_t create_us) {
  const int64_t now_us = static_cast<int64_t>(time(nullptr)) * 1000000;
  const int64_t s =
      create_us >= now_us
          ? 0
          : static_cast<int64_t>((static_cast<uint64_t>(now_us) - static_cast<uint64_t>(create_us)) /
                                 1000000);
  char buf[32];
  if (s < 60) {
    snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    snprintf(buf, sizeof(buf), "%lldm", static_cast<long long>(s / 60));
  } else if (s < 86400) {
    snprintf(buf, sizeof(buf), "%lldh", static_cast<long long>(s / 3600));
  } else {
    snprintf(buf, sizeof(buf), "%lldd", static_cast<long long>(s / 86400));
  }
  return buf;
}

// printf into a std::string (the table layouts are printf formats).
template <typename... Args>
std::string Format(const char* fmt, Args... args) {
  const int n = snprintf(nullptr, 0, fmt, args...);
  std::string out(static_cast<size_t>(std::max(n, 0)), '\0');
  snprintf(out.data(), out.size() + 1, fmt, args...);
  return out;
}

}  // namespace

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

Status ListCommand(Client& client, bool json, std::ostream& out) {
  std::vector<ObjectInfo> objs;
  Status s = client.ListObjects(&objs);
  if (!s.ok()) return s;
  std::sort(objs.begin(), objs.end(), [](const auto& a, const auto& b) {
    return a.create_time < b.create_time;
  });
  if (json) {
    out << "[";
    for (size_t i = 0; i < objs.size(); ++i) {
      const auto& o = objs[i];
      out << (i ? ",\n " : "\n ") << "{\"id\":\"" << o.id.hex()
          << "\",\"name\":" << JsonString(o.name) << ",\"size\":" << o.size
          << ",\"state\":\"" << (o.sealed ? "sealed" : "building")
          << "\",\"holders\":" << o.holders << ",\"create_time_us\":" << o.create_time
          << ",\"construct_duration_us\":" << o.construct_duration
          << ",\"metadata_size\":" << o.metadata_size
          << ",\"creator_pid\":" << o.creator_id
          << ",\"creator_address\":" << JsonString(o.creator_address) << "}";
    }
    out << (objs.empty() ? "]\n" : "\n]\n");
    return Status::OK();
  }
  out << Format("%-32s  %-20s  %10s  %-8s  %7s  %5s  %s\n", "ID", "NAME", "SIZE", "STATE",
                "HOLDERS", "AGE", "CREATOR");
  for (const auto& o : objs) {
    out << Format("%-32s  %-20s  %10s  %-8s  %7d  %5s  %s\n", o.id.hex().c_str(),
                  Printable(o.name).c_str(), FormatSize(o.size).c_str(),
                  o.sealed ? "sealed" : "building", o.holders, Age(o.create_time).c_str(),
                  o.creator_address.c_str());
  }
  return Status::OK();
}

Status StatCommand(Client& client, bool json, std::ostream& out) {
  StoreStats st;
  Status s = client.Stats(&st);
  if (!s.ok()) return s;
  // The tool's own connection is one of the clients; do not count it.
  const int64_t clients = st.clients - 1;
  if (json) {
    out << "{\"capacity\":" << st.capacity << ",\"bytes_in_use\":" << st.bytes_in_use
        << ",\"bytes_free\":" << st.bytes_free
        << ",\"largest_free_block\":" << st.largest_free_block
        << ",\"objects_sealed\":" << st.objects_sealed
        << ",\"objects_building\":" << st.objects_building << ",\"clients\":" << clients
        << "}\n";
    return Status::OK();
  }
  out << "capacity            " << FormatSize(st.capacity) << "\n"
      << "in use              " << FormatSize(st.bytes_in_use) << "\n"
      << "free                " << FormatSize(st.bytes_free) << "\n"
      << "largest free block  " << FormatSize(st.largest_free_block) << "\n"
      << "objects             " << st.objects_sealed << " sealed, " << st.objects_building
      << " being built\n"
      << "clients             " << clients << " (besides this tool)\n";
  return Status::OK();
}

Status CheckCommand(Client& client, bool quiescent, bool json, std::ostream& out,
                    bool* sound) {
  const core::Region region(const_cast<uint8_t*>(client.region_base()),
                            static_cast<uint64_t>(client.region_size()));
  const core::CheckReport rep = core::CheckRegion(region, quiescent);
  if (json) {
    out << "{\"sound\":" << (rep.ok() ? "true" : "false") << ",\"objects\":" << rep.objects
        << ",\"bytes_owned\":" << rep.bytes_owned << ",\"problems\":[";
    for (size_t i = 0; i < rep.problems.size(); ++i) {
      out << (i ? "," : "") << JsonString(rep.problems[i]);
    }
    out << "]}\n";
  } else {
    out << rep.ToString() << "\n";
  }
  *sound = rep.ok();
  return Status::OK();
}

}  // namespace glint::tools
