// Copyright (c) glint authors.
//
// glintd: runs a glint store in the foreground until SIGTERM or SIGINT.
// Restarted after a SIGKILL, it re-attaches the region it left (Monitor::Start).

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "glint/glint.h"
#include "tools/cli_util.h"

namespace {

std::mutex g_log_mu;

void LogLine(const std::string& line) {
  std::lock_guard<std::mutex> l(g_log_mu);
  char when[32];
  const time_t now = time(nullptr);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
  fprintf(stderr, "%s glintd[%d]: %s\n", when, static_cast<int>(getpid()),
          line.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  glint::StoreOptions opt;
  std::string capacity = "256MiB";
  std::string mode = "0600";
  bool no_prefault = false;
  CLI::App app{"glintd: serve a glint shared-memory object store.\n"
               "Runs in the foreground; SIGTERM or SIGINT stops it cleanly\n"
               "(removes its socket and unlinks its region). Killed otherwise\n"
               "(SIGKILL, a crash), it leaves the region in place: started\n"
               "again on the same socket, it re-attaches that region with its\n"
               "objects and geometry, and recovers the clients that died."};
  app.add_option("--socket", opt.socket_path,
                 "unix socket clients connect to; the region's name derives from it")
      ->capture_default_str();
  app.add_option("--capacity", capacity,
                 "bytes of the data heap, e.g. 4096, 512MiB, 1GiB")
      ->capture_default_str();
  app.add_option("--max-objects", opt.max_objects,
                 "objects the table holds at once (0: max(65536, capacity / 16KiB))")
      ->capture_default_str();
  app.add_option("--max-clients", opt.max_clients,
                 "clients connected at once, 1..256")
      ->capture_default_str();
  app.add_option("--mode", mode, "octal permissions of the socket and the region")
      ->capture_default_str();
  app.add_option("--shm-dir", opt.shm_dir, "directory of the region file")
      ->capture_default_str();
  app.add_flag("--hugepages", opt.hugepages,
               "back the region with huge pages where --shm-dir allows them (a tmpfs "
               "mounted huge=advise); the log says whether it got them");
  app.add_flag("--no-prefault", no_prefault,
               "do not allocate the region's pages at start (for stores larger "
               "than the machine should commit at once)");
  CLI11_PARSE(app, argc, argv);

  if (!glint::tools::ParseSize(capacity, &opt.capacity) || opt.capacity <= 0) {
    fprintf(stderr, "glintd: --capacity '%s' is not a size (try 512MiB or 1GiB)\n",
            capacity.c_str());
    return 2;
  }
  if (!glint::tools::ParseMode(mode, &opt.mode)) {
    fprintf(stderr, "glintd: --mode '%s' is not an octal mode such as 0600\n",
            mode.c_str());
    return 2;
  }
  opt.prefault = !no_prefault;
  opt.log = LogLine;

  // A client that vanishes mid-reply costs an EPIPE, never the process.
  signal(SIGPIPE, SIG_IGN);
  // SIGTERM/SIGINT are taken synchronously below; block them first so every
  // thread (the monitor's included) inherits the mask.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  std::unique_ptr<glint::Monitor> monitor;
  glint::Status s = glint::Monitor::Start(opt, &monitor);
  if (!s.ok()) {
    fprintf(stderr, "glintd: cannot start a store on %s: %s\n",
            opt.socket_path.c_str(), s.ToString().c_str());
    return 1;
  }
  LogLine("serving " + monitor->socket_path() + " region " +
          monitor->region_path() + " capacity " +
          glint::tools::FormatSize(monitor->capacity()) + " max-clients " +
          std::to_string(monitor->max_clients()) +
          (monitor->reattached() ? " (re-attached)" : ""));
  int sig = 0;
  sigwait(&stop, &sig);
  LogLine(std::string("stopping on ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
  monitor.reset();
  LogLine("stopped; socket removed and region unlinked");
  return 0;
}
