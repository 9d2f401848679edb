// Copyright (c) glint authors.
//
// glintd: runs a glint store in the foreground until SIGTERM or SIGINT.
// Restarted after a SIGKILL, it re-attaches the region it left (Monitor::Start).

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "glint/glint.h"
#include "tools/cli_util.h"

namespace {

// The log: lines go to stderr from a thread of their own, so that a stderr
// nobody drains (`glintd 2>&1 | less` left alone, a stalled collector)
// never stops the monitor's thread, which logs as it serves. Log() never
// waits for the write: past kMaxQueued lines waiting it drops the line and
// counts it, and the writer reports the count when it can.
class Logger {
 public:
  static constexpr size_t kMaxQueued = 4096;

  Logger() : thread_([this] { Run(); }) {}

  void Log(const std::string& line) {
    char when[32];
    const time_t now = time(nullptr);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    std::string text = std::string(when) + " glintd[" + std::to_string(getpid()) +
                       "]: " + line + "\n";
    {
      std::lock_guard<std::mutex> l(mu_);
      if (queue_.size() >= kMaxQueued) {
        ++dropped_;
        return;
      }
      queue_.push_back(std::move(text));
    }
    cv_.notify_one();
  }

  // Writes every queued line and ends the writer, waiting at most `limit`:
  // a stuck stderr does not keep glintd from exiting (the writer is then
  // left to the process's exit). Call once, last.
  void Flush(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> l(mu_);
    stop_ = true;
    cv_.notify_one();
    const bool ended = idle_cv_.wait_for(l, limit, [this] { return exited_; });
    l.unlock();
    if (ended) {
      thread_.join();
    } else {
      thread_.detach();
    }
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      // (dropped_ grows only while the queue is full, so an empty queue
      // has nothing dropped to report.)
      cv_.wait(l, [this] { return !queue_.empty() || stop_; });
      if (queue_.empty()) {  // stop_, and all written
        exited_ = true;
        idle_cv_.notify_all();
        return;
      }
      std::deque<std::string> batch;
      batch.swap(queue_);
      const uint64_t dropped = dropped_;
      dropped_ = 0;
      l.unlock();
      if (dropped != 0) {
        WriteAll("glintd: (" + std::to_string(dropped) +
                 " log lines dropped: stderr was not being read)\n");
      }
      for (const std::string& t : batch) WriteAll(t);
      l.lock();
    }
  }

  // write(2), not stdio: a writer stuck here holds no lock that exit()
  // needs.
  static void WriteAll(const std::string& t) {
    size_t done = 0;
    while (done < t.size()) {
      const ssize_t w = write(STDERR_FILENO, t.data() + done, t.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return;  // stderr closed or failing: nothing to do
      done += static_cast<size_t>(w);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<std::string> queue_;
  uint64_t dropped_ = 0;
  bool stop_ = false;
  bool exited_ = false;
  std::thread thread_;
};

Logger* g_logger = nullptr;

void LogLine(const std::string& line) { g_logger->Log(line); }

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
               "than the machine should commit at once; a process that then "
               "touches a page when --shm-dir is full gets SIGBUS)");
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
  // Never destroyed: its thread may still be stuck writing at exit.
  g_logger = new Logger();

  std::unique_ptr<glint::Monitor> monitor;
  glint::Status s = glint::Monitor::Start(opt, &monitor);
  if (!s.ok()) {
    LogLine("cannot start a store on " + opt.socket_path + ": " + s.ToString());
    g_logger->Flush(std::chrono::seconds(2));
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
  g_logger->Flush(std::chrono::seconds(2));
  return 0;
}
