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

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "glint/glint.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "tools/demo.h"

namespace {


int Fail(const std::string& what, const glint::Status& s) {
  fprintf(stderr, "glint: %s: %s\n", what.c_str(), s.ToString().c_str());
  return 1;
}

int Connect(const std::string& socket, std::unique_ptr<glint::Client>* c) {
  glint::Status s = glint::Client::Connect(socket, c);
  if (!s.ok()) return Fail("connect to " + socket, s);
  return 0;
}

// ls, stat and check: connect, then run the command (tools/commands.h).
int CmdLs(const std::string& socket, bool json) {
  std::unique_ptr<glint::Client> c;
  if (int r = Connect(socket, &c)) return r;
  const glint::Status s = glint::tools::ListCommand(*c, json, std::cout);
  return s.ok() ? 0 : Fail("ls", s);
}

int CmdStat(const std::string& socket, bool json) {
  std::unique_ptr<glint::Client> c;
  if (int r = Connect(socket, &c)) return r;
  const glint::Status s = glint::tools::StatCommand(*c, json, std::cout);
  return s.ok() ? 0 : Fail("stat", s);
}

int CmdCheck(const std::string& socket, bool quiescent, bool json) {
  std::unique_ptr<glint::Client> c;
  if (int r = Connect(socket, &c)) return r;
  if (!json) std::cout << socket << ": ";
  bool sound = false;
  const glint::Status s = glint::tools::CheckCommand(*c, quiescent, json, std::cout, &sound);
  if (!s.ok()) return Fail("check", s);
  return sound ? 0 : 1;
}

bool ParseId(const std::string& text, glint::ObjectId* id) {
  if (glint::ObjectId::FromHex(text, id)) return true;
  fprintf(stderr, "glint: '%s' is not an object id (32 hex digits)\n", text.c_str());
  return false;
}

struct FdCloser {
  int fd;
  ~FdCloser() { close(fd); }
};

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
  // A directory is refused; anything else readable is stored.
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    fprintf(stderr, "glint: cannot read %s: %s\n", file.c_str(), strerror(errno));
    if (fd >= 0) close(fd);
    return 1;
  }
  FdCloser closer{fd};
  if (S_ISDIR(st.st_mode)) {
    fprintf(stderr, "glint: %s is a directory, not a file\n", file.c_str());
    return 1;
  }
  std::unique_ptr<glint::Client> c;
  if (int r = Connect(socket, &c)) return r;
  // Read straight into the object, sized as the file says it is. Anything
  // that turns out longer (a pipe, a device, /proc files, which say 0, a
  // file that grew) grows the object by Resize, doubling; at the end it is
  // cut to what was read (sysfs files say 4096 and hold less). A failure
  // aborts the object (MutableBuffer's destructor): nothing half-read is
  // sealed.
  const bool sized = S_ISREG(st.st_mode) && st.st_size > 0;
  glint::MutableBuffer mb;
  glint::Status s = c->BuildObject(id, sized ? st.st_size : int64_t{1} << 16, &mb, name, md);
  if (!s.ok()) return Fail("put " + id.hex(), s);
  auto read_some = [fd](uint8_t* dst, int64_t n) {
    ssize_t r;
    do {
      r = read(fd, dst, static_cast<size_t>(std::min<int64_t>(n, 1 << 30)));
    } while (r < 0 && errno == EINTR);
    return r;
  };
  int64_t done = 0;
  for (;;) {
    // When the object is full, one byte more tells the end from the need
    // to grow (an exactly sized file then never grows).
    const bool full = done == mb.size();
    uint8_t extra;
    const ssize_t r = full ? read_some(&extra, 1)
                           : read_some(mb.mutable_data() + done, mb.size() - done);
    if (r < 0) {
      fprintf(stderr, "glint: cannot read %s: %s\n", file.c_str(), strerror(errno));
      return 1;
    }
    if (r == 0) break;
    if (full) {
      s = mb.Resize(std::max<int64_t>(2 * mb.size(), 1 << 16));
      if (!s.ok()) return Fail("put " + id.hex() + ": " + file + " holds more than the store can take", s);
      mb.mutable_data()[done] = extra;
    }
    done += r;
  }
  if (done != mb.size()) {
    s = mb.Resize(done);
    if (!s.ok()) return Fail("put " + id.hex(), s);
  }
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
  put->add_option("FILE", file, "the payload: a file, or anything readable (/dev/stdin, a pipe)")->required();
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
