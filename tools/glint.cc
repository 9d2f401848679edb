// Copyright (c) glint authors.
//
// glint: inspect and use a store from the shell.
//   glint ls SOCKET [--json]          glint stat SOCKET [--json]
//   glint put SOCKET ID FILE [--name N] [--meta k=v]...
//   glint get SOCKET (ID | --name N) [-o FILE]
//   glint rm SOCKET ID
//   glint check SOCKET [--quiescent] [--json]
//   glint demo
// Exit status: 0 on success, 1 when the store answers an error (check: when
// the store is not sound), 2 on a usage error.

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/check.h"
#include "core/region.h"
#include "glint/glint.h"
#include "tools/cli_util.h"
#include "tools/demo.h"

namespace {

using glint::tools::FormatSize;

int Fail(const std::string& what, const glint::Status& s) {
  fprintf(stderr, "glint: %s: %s\n", what.c_str(), s.ToString().c_str());
  return 1;
}

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

std::string Age(int64_t create_us) {
  const int64_t now_us = static_cast<int64_t>(time(nullptr)) * 1000000;
  int64_t s = std::max<int64_t>(0, (now_us - create_us) / 1000000);
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

int Connect(const std::string& socket, std::unique_ptr<glint::Client>* c) {
  glint::Status s = glint::Client::Connect(socket, c);
  if (!s.ok()) return Fail("connect to " + socket, s);
  return 0;
}

int CmdLs(const std::string& socket, bool json) {
  std::unique_ptr<glint::Client> c;
  if (int r = Connect(socket, &c)) return r;
  std::vector<glint::ObjectInfo> objs;
  glint::Status s = c->ListObjects(&objs);
  if (!s.ok()) return Fail("ls", s);
  std::sort(objs.begin(), objs.end(), [](const auto& a, const auto& b) {
    return a.create_time < b.create_time;
  });
  if (json) {
    std::cout << "[";
    for (size_t i = 0; i < objs.size(); ++i) {
      const auto& o = objs[i];
      std::cout << (i ? ",\n " : "\n ") << "{\"id\":\"" << o.id.hex()
                << "\",\"name\":" << JsonString(o.name) << ",\"size\":" << o.size
                << ",\"state\":\"" << (o.sealed ? "sealed" : "building")
                << "\",\"holders\":" << o.holders
                << ",\"create_time_us\":" << o.create_time
                << ",\"construct_duration_us\":" << o.construct_duration
                << ",\"metadata_size\":" << o.metadata_size
                << ",\"creator_pid\":" << o.creator_id
                << ",\"creator_address\":" << JsonString(o.creator_address) << "}";
    }
    std::cout << (objs.empty() ? "]\n" : "\n]\n");
    return 0;
  }
  printf("%-32s  %-20s  %10s  %-8s  %7s  %5s  %s\n", "ID", "NAME", "SIZE", "STATE",
         "HOLDERS", "AGE", "CREATOR");
  for (const auto& o : objs) {
    printf("%-32s  %-20s  %10s  %-8s  %7d  %5s  %s\n", o.id.hex().c_str(),
           Printable(o.name).c_str(), FormatSize(o.size).c_str(),
           o.sealed ? "sealed" : "building", o.holders, Age(o.create_time).c_str(),
           o.creator_address.c_str());
  }
  return 0;
}

int CmdStat(const std::string& socket, bool json) {
  std::unique_ptr<glint::Client> c;
  if (int r = Connect(socket, &c)) return r;
  glint::StoreStats st;
  glint::Status s = c->Stats(&st);
  if (!s.ok()) return Fail("stat", s);
  // The tool's own connection is one of the clients; do not count it.
  const int64_t clients = st.clients - 1;
  if (json) {
    printf("{\"capacity\":%lld,\"bytes_in_use\":%lld,\"bytes_free\":%lld,"
           "\"largest_free_block\":%lld,\"objects_sealed\":%lld,"
           "\"objects_building\":%lld,\"clients\":%lld}\n",
           static_cast<long long>(st.capacity), static_cast<long long>(st.bytes_in_use),
           static_cast<long long>(st.bytes_free),
           static_cast<long long>(st.largest_free_block),
           static_cast<long long>(st.objects_sealed),
           static_cast<long long>(st.objects_building), static_cast<long long>(clients));
    return 0;
  }
  printf("capacity            %s\n", FormatSize(st.capacity).c_str());
  printf("in use              %s\n", FormatSize(st.bytes_in_use).c_str());
  printf("free                %s\n", FormatSize(st.bytes_free).c_str());
  printf("largest free block  %s\n", FormatSize(st.largest_free_block).c_str());
  printf("objects             %lld sealed, %lld being built\n",
         static_cast<long long>(st.objects_sealed),
         static_cast<long long>(st.objects_building));
  printf("clients             %lld (besides this tool)\n", static_cast<long long>(clients));
  return 0;
}

bool ParseId(const std::string& text, glint::ObjectId* id) {
  if (glint::ObjectId::FromHex(text, id)) return true;
  fprintf(stderr, "glint: '%s' is not an object id (32 hex digits)\n", text.c_str());
  return false;
}

int CmdPut(const std::string& socket, const std::string& id_text,
           const std::string& file, const std::string& name,
           const std::vector<std::string>& meta) {
  glint::ObjectId id;
  if (!ParseId(id_text, &id)) return 2;
  glint::Metadata md;
  for (const std::string& kv : meta) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      fprintf(stderr, "glint: --meta '%s' is not key=value\n", kv.c_str());
      return 2;
    }
    md[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    fprintf(stderr, "glint: cannot read %s: %s\n", file.c_str(), strerror(errno));
    return 1;
  }
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::unique_ptr<glint::Client> c;
  if (int r = Connect(socket, &c)) return r;
  glint::MutableBuffer mb;
  glint::Status s = c->BuildObject(id, static_cast<int64_t>(data.size()), &mb, name, md);
  if (!s.ok()) return Fail("put " + id.hex(), s);
  if (!data.empty()) memcpy(mb.mutable_data(), data.data(), data.size());
  s = mb.Seal();
  if (!s.ok()) return Fail("seal " + id.hex(), s);
  printf("%s\n", id.hex().c_str());
  return 0;
}

int CmdGet(const std::string& socket, const std::string& id_text,
           const std::string& name, const std::string& out, int64_t timeout_ms) {
  if (id_text.empty() == name.empty()) {
    fprintf(stderr, "glint: get takes an ID or --name, not both\n");
    return 2;
  }
  glint::ObjectId id;
  if (!id_text.empty() && !ParseId(id_text, &id)) return 2;
  std::unique_ptr<glint::Client> c;
  if (int r = Connect(socket, &c)) return r;
  glint::Buffer b;
  glint::Status s = name.empty() ? c->GetObject(id, &b, timeout_ms)
                                 : c->GetObjectByName(name, &b, timeout_ms);
  if (!s.ok()) return Fail("get", s);
  FILE* f = out.empty() || out == "-" ? stdout : fopen(out.c_str(), "wb");
  if (f == nullptr) {
    fprintf(stderr, "glint: cannot write %s: %s\n", out.c_str(), strerror(errno));
    return 1;
  }
  const size_t n = b.size() > 0 ? fwrite(b.data(), 1, static_cast<size_t>(b.size()), f) : 0;
  const bool ok = n == static_cast<size_t>(b.size()) && fflush(f) == 0;
  if (f != stdout) fclose(f);
  if (!ok) {
    fprintf(stderr, "glint: short write to %s\n", out.empty() ? "stdout" : out.c_str());
    return 1;
  }
  return 0;
}

int CmdRm(const std::string& socket, const std::string& id_text) {
  glint::ObjectId id;
  if (!ParseId(id_text, &id)) return 2;
  std::unique_ptr<glint::Client> c;
  if (int r = Connect(socket, &c)) return r;
  glint::Status s = c->Delete(id);
  if (!s.ok()) return Fail("rm " + id.hex(), s);
  return 0;
}

// Walks the store's whole region with the checker (core/check.h). Only
// reads, so it is safe on a live store; there, states an operation passes
// through are not problems. --quiescent: the caller knows no client runs an
// operation, so leaks and half-done entries are checked exactly.
int CmdCheck(const std::string& socket, bool quiescent, bool json) {
  std::unique_ptr<glint::Client> c;
  if (int r = Connect(socket, &c)) return r;
  const glint::core::Region region(const_cast<uint8_t*>(c->region_base()),
                                   static_cast<uint64_t>(c->region_size()));
  const glint::core::CheckReport rep = glint::core::CheckRegion(region, quiescent);
  if (json) {
    std::cout << "{\"sound\":" << (rep.ok() ? "true" : "false")
              << ",\"objects\":" << rep.objects << ",\"bytes_owned\":" << rep.bytes_owned
              << ",\"problems\":[";
    for (size_t i = 0; i < rep.problems.size(); ++i) {
      std::cout << (i ? "," : "") << JsonString(rep.problems[i]);
    }
    std::cout << "]}\n";
  } else {
    std::cout << socket << ": " << rep.ToString() << "\n";
  }
  return rep.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"glint: inspect and use a glint store"};
  app.require_subcommand(1);
  std::string socket, id, file, name, out;
  std::vector<std::string> meta;
  bool json = false, quiescent = false;
  int64_t timeout_ms = 0;

  auto* ls = app.add_subcommand("ls", "list the objects of a store");
  ls->add_option("SOCKET", socket, "the store's socket")->required();
  ls->add_flag("--json", json, "one JSON array, for scripts");

  auto* stat = app.add_subcommand("stat", "capacity, memory and object counts");
  stat->add_option("SOCKET", socket, "the store's socket")->required();
  stat->add_flag("--json", json, "one JSON object, for scripts");

  auto* put = app.add_subcommand("put", "store a file's bytes as a sealed object");
  put->add_option("SOCKET", socket, "the store's socket")->required();
  put->add_option("ID", id, "object id, 32 hex digits")->required();
  put->add_option("FILE", file, "the payload")->required();
  put->add_option("--name", name, "a unique name for the object");
  put->add_option("--meta", meta, "metadata key=value (repeatable)");

  auto* get = app.add_subcommand("get", "write an object's bytes to stdout or a file");
  get->add_option("SOCKET", socket, "the store's socket")->required();
  get->add_option("ID", id, "object id, 32 hex digits");
  get->add_option("--name", name, "get by name instead of id");
  get->add_option("-o,--output", out, "write here instead of stdout");
  get->add_option("--timeout-ms", timeout_ms,
                  "wait this long for the object to be sealed (-1: forever)")
      ->capture_default_str();

  auto* demo = app.add_subcommand(
      "demo", "move objects between two processes through a temporary store");

  auto* rm = app.add_subcommand("rm", "delete a sealed object");
  rm->add_option("SOCKET", socket, "the store's socket")->required();
  rm->add_option("ID", id, "object id, 32 hex digits")->required();

  auto* check = app.add_subcommand(
      "check", "verify the store's invariants (exit 0 only when it is sound)");
  check->add_option("SOCKET", socket, "the store's socket")->required();
  check->add_flag("--quiescent", quiescent,
                  "the store is idle: also check leaks and half-done operations");
  check->add_flag("--json", json, "one JSON object, for scripts");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (ls->parsed()) return CmdLs(socket, json);
  if (stat->parsed()) return CmdStat(socket, json);
  if (put->parsed()) return CmdPut(socket, id, file, name, meta);
  if (get->parsed()) return CmdGet(socket, id, name, out, timeout_ms);
  if (rm->parsed()) return CmdRm(socket, id);
  if (check->parsed()) return CmdCheck(socket, quiescent, json);
  if (demo->parsed()) return glint::tools::RunDemo();
  return 2;
}
