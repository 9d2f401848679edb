// Copyright (c) glint authors.
//
// glintd and the glint tool, end to end, as a user runs them: real
// processes, real signals, real files.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "alloc/heap.h"
#include "core/protocol.h"
#include "core/region.h"
#include "glint/glint.h"
#include "gtest/gtest.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

#ifndef GLINTD_PATH
#error "GLINTD_PATH must name the glintd binary"
#endif
#ifndef GLINT_TOOL_PATH
#error "GLINT_TOOL_PATH must name the glint binary"
#endif

namespace {

using glint::tools::ParseMode;
using glint::tools::ParseSize;

std::string TempPath(const std::string& tag) {
  static int counter = 0;
  return "/tmp/glint-tools-test-" + std::to_string(getpid()) + "-" + tag + "-" +
         std::to_string(counter++);
}

bool Exists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}

// Reaps child `pid` if it ends within `limit` (its status in *status).
bool ReapWithin(pid_t pid, std::chrono::milliseconds limit, int* status) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (waitpid(pid, status, WNOHANG) == pid) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Client::Connect, retried every 10 ms for up to `limit` while a monitor
// starts or frees a slot; the last Status.
glint::Status ConnectWithin(const std::string& socket, std::chrono::milliseconds limit,
                            std::unique_ptr<glint::Client>* c) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const glint::Status s = glint::Client::Connect(socket, c);
    if (s.ok() || std::chrono::steady_clock::now() >= end) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Runs a command through the shell; returns its exit status and output.
int Shell(const std::string& cmd, std::string* out = nullptr) {
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  const int st = pclose(f);
  if (out != nullptr) *out = text;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// The region file named in glintd's start line.
std::string RegionFromLog(const std::string& log) {
  const auto pos = log.find(" region ");
  if (pos == std::string::npos) return "";
  const auto end = log.find(' ', pos + 8);
  return log.substr(pos + 8, end - pos - 8);
}

// A glintd child process with its stderr in a file.
class Glintd {
 public:
  explicit Glintd(const std::string& args) : log_(TempPath("log")) {
    socket_ = TempPath("sock");
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 2);
      const std::string cmd = std::string(GLINTD_PATH) + " --socket " + socket_ +
                              " " + args;
      execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), nullptr);
      _exit(127);
    }
  }
  ~Glintd() {
    // SIGTERM, so that glintd removes its region; the region is also
    // unlinked here in case a test killed glintd with SIGKILL.
    const std::string region = RegionFromLog(Log());
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      for (int i = 0; i < 200 && waitpid(pid_, nullptr, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (!region.empty()) unlink(region.c_str());
    unlink(log_.c_str());
    unlink(socket_.c_str());
  }
  // Waits until glintd logged its start line (its socket is bound and
  // listening, and the region is named in the log) or the process ended.
  // The socket file alone is not enough: it appears at bind(), before
  // listen() and before the start line is written.
  bool WaitServing() {
    for (int i = 0; i < 1000; ++i) {
      if (Log().find("serving ") != std::string::npos) return true;
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        exit_status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  // Waits up to 5 s for `text` to appear in the log.
  bool WaitLog(const std::string& text) {
    for (int i = 0; i < 500; ++i) {
      if (Log().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  int Stop(int sig) {
    kill(pid_, sig);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  int WaitExit() {
    int st = 0;
    if (pid_ > 0) waitpid(pid_, &st, 0);
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  std::string Log() const {
    std::ifstream in(log_);
    return std::string((std::istreambuf_iterator<char>(in)),
                       std::istreambuf_iterator<char>());
  }
  const std::string& socket() const { return socket_; }
  pid_t pid() const { return pid_; }
  int exit_status() const { return exit_status_; }

 private:
  std::string socket_;
  std::string log_;
  pid_t pid_ = -1;
  int exit_status_ = -1;
};

TEST(CliUtil, ParseSizeTakesUnits) {
  int64_t v = 0;
  EXPECT_TRUE(ParseSize("4096", &v));
  EXPECT_EQ(v, 4096);
  EXPECT_TRUE(ParseSize("512MiB", &v));
  EXPECT_EQ(v, int64_t{512} << 20);
  EXPECT_TRUE(ParseSize("1GiB", &v));
  EXPECT_EQ(v, int64_t{1} << 30);
  EXPECT_TRUE(ParseSize("64k", &v));
  EXPECT_EQ(v, 64 << 10);
  EXPECT_TRUE(ParseSize("2 TiB", &v));
  EXPECT_EQ(v, int64_t{2} << 40);
  EXPECT_TRUE(ParseSize("3MB", &v));
  EXPECT_EQ(v, 3 << 20);
  for (const char* bad : {"", "abc", "-5", "12XB", "1.5GiB", "GiB",
                          "99999999999999999999", "9000000TiB"}) {
    EXPECT_FALSE(ParseSize(bad, &v)) << bad;
  }
}

TEST(CliUtil, ParseModeIsOctal) {
  uint32_t m = 0;
  EXPECT_TRUE(ParseMode("0600", &m));
  EXPECT_EQ(m, 0600u);
  EXPECT_TRUE(ParseMode("666", &m));
  EXPECT_EQ(m, 0666u);
  EXPECT_FALSE(ParseMode("0800", &m));
  EXPECT_FALSE(ParseMode("7777", &m));
  EXPECT_FALSE(ParseMode("rw", &m));
  EXPECT_FALSE(ParseMode("", &m));
}

TEST(Glintd, HelpDocumentsEveryFlag) {
  std::string out;
  ASSERT_EQ(Shell(std::string(GLINTD_PATH) + " --help", &out), 0);
  for (const char* flag : {"--socket", "--capacity", "--max-objects", "--max-clients",
                           "--mode", "--hugepages", "--no-prefault"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << flag;
  }
}

TEST(Glintd, RejectsBadFlags) {
  std::string out;
  EXPECT_NE(Shell(std::string(GLINTD_PATH) + " --capacity 12XB --socket " +
                    TempPath("x"), &out), 0);
  EXPECT_NE(out.find("--capacity"), std::string::npos) << out;
  EXPECT_NE(Shell(std::string(GLINTD_PATH) + " --capacity 1MiB --mode 999 --socket " +
                    TempPath("x"), &out), 0);
  EXPECT_NE(out.find("--mode"), std::string::npos) << out;
  EXPECT_NE(Shell(std::string(GLINTD_PATH) + " --capacity 1MiB --max-clients 0 --socket " +
                    TempPath("x"), &out), 0);
  EXPECT_NE(out.find("max_clients"), std::string::npos) << out;
  EXPECT_NE(Shell(std::string(GLINTD_PATH) + " --no-such-flag", &out), 0);
}

TEST(Glintd, ServesLogsAndCleansUpOnSigterm) {
  Glintd d("--capacity 16MiB --mode 0640");
  ASSERT_TRUE(d.WaitServing()) << d.Log();
  const std::string region = RegionFromLog(d.Log());
  ASSERT_FALSE(region.empty()) << d.Log();
  struct stat st;
  ASSERT_EQ(stat(region.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  ASSERT_EQ(stat(d.socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  {
    std::unique_ptr<glint::Client> c;
    ASSERT_TRUE(glint::Client::Connect(d.socket(), &c).ok());
  }
  // The monitor logs the departure when it handles the Bye, asynchronously.
  EXPECT_TRUE(d.WaitLog(" left ")) << d.Log();
  EXPECT_EQ(d.Stop(SIGTERM), 0);
  EXPECT_FALSE(Exists(d.socket()));
  EXPECT_FALSE(Exists(region));
  const std::string log = d.Log();
  EXPECT_NE(log.find("serving"), std::string::npos) << log;
  EXPECT_NE(log.find("connected"), std::string::npos) << log;
  EXPECT_NE(log.find("left"), std::string::npos) << log;
}

TEST(Glintd, SigintAlsoCleansUp) {
  Glintd d("--capacity 4MiB");
  ASSERT_TRUE(d.WaitServing()) << d.Log();
  const std::string region = RegionFromLog(d.Log());
  EXPECT_EQ(d.Stop(SIGINT), 0);
  EXPECT_FALSE(Exists(d.socket()));
  EXPECT_FALSE(Exists(region));
}

TEST(Glintd, SecondInstanceOnALiveSocketIsRefused) {
  Glintd first("--capacity 4MiB");
  ASSERT_TRUE(first.WaitServing()) << first.Log();
  std::string out;
  EXPECT_EQ(Shell(std::string(GLINTD_PATH) + " --capacity 4MiB --socket " +
                    first.socket(), &out), 1);
  EXPECT_NE(out.find("already serves"), std::string::npos) << out;
  // The first store still works.
  std::unique_ptr<glint::Client> c;
  EXPECT_TRUE(glint::Client::Connect(first.socket(), &c).ok());
}

TEST(Glintd, TakesOverASocketLeftByADeadStore) {
  Glintd dead("--capacity 4MiB");
  ASSERT_TRUE(dead.WaitServing()) << dead.Log();
  const std::string path = dead.socket();
  dead.Stop(SIGKILL);  // leaves the socket file behind
  ASSERT_TRUE(Exists(path));
  pid_t p = fork();
  if (p == 0) {
    execl(GLINTD_PATH, GLINTD_PATH, "--socket", path.c_str(), "--capacity", "4MiB",
          nullptr);
    _exit(127);
  }
  std::unique_ptr<glint::Client> c;
  const glint::Status connected = ConnectWithin(path, std::chrono::seconds(5), &c);
  c.reset();
  EXPECT_TRUE(connected.ok()) << connected.ToString();
  kill(p, SIGTERM);
  int st;
  waitpid(p, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(Glintd, RefusesACapacityTheShmDirCannotHold) {
  std::string out;
  EXPECT_EQ(Shell(std::string(GLINTD_PATH) + " --capacity 15TiB --socket " +
                    TempPath("big"), &out), 1);
  EXPECT_NE(out.find("OutOfMemory"), std::string::npos) << out;
}

TEST(Glintd, MaxClientsTwo) {
  Glintd d("--capacity 4MiB --max-clients 2");
  ASSERT_TRUE(d.WaitServing()) << d.Log();
  std::unique_ptr<glint::Client> a, b, c;
  ASSERT_TRUE(glint::Client::Connect(d.socket(), &a).ok());
  ASSERT_TRUE(glint::Client::Connect(d.socket(), &b).ok());
  glint::Status s = glint::Client::Connect(d.socket(), &c);
  EXPECT_EQ(s.code(), glint::StatusCode::kTooManyClients) << s.ToString();
  EXPECT_NE(s.message().find(d.socket()), std::string::npos) << s.ToString();
  a.reset();  // a slot frees once the monitor sees the socket close
  s = ConnectWithin(d.socket(), std::chrono::seconds(5), &c);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(Glintd, NeverDiesOfAClientThatVanishesMidHandshake) {
  Glintd d("--capacity 4MiB");
  ASSERT_TRUE(d.WaitServing()) << d.Log();
  // Connect, send half a hello, vanish; connect and vanish at once.
  for (int i = 0; i < 50; ++i) {
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, d.socket().c_str());
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    if (i % 2 == 0) (void)!write(fd, "GLN", 3);
    close(fd);
  }
  std::unique_ptr<glint::Client> c;
  glint::Status s = glint::Client::Connect(d.socket(), &c);
  EXPECT_TRUE(s.ok()) << s.ToString() << "\n" << d.Log();
}

// A connection to `socket` that has sent a glint Hello, as Connect does,
// and read nothing; -1 (errno set) on failure.
int SendHello(const std::string& socket) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, socket.c_str());
  const glint::core::Hello hello{glint::core::kHelloMagic, glint::core::kProtocolVersion,
                                 glint::core::kLayoutVersion, 0};
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      write(fd, &hello, sizeof(hello)) != static_cast<ssize_t>(sizeof(hello))) {
    const int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// A client whose Connect gave up while glintd was stopped (SIGSTOP) left
// its Hello in the socket and hung up. When glintd resumes, it must not
// give that connection a slot: the slot would stay taken until the client
// process exits, and with one slot every later Connect failed.
TEST(Glintd, AClientThatHungUpBeforeTheAnswerGetsNoSlot) {
  Glintd d("--capacity 4MiB --max-clients 1");
  ASSERT_TRUE(d.WaitServing()) << d.Log();
  ASSERT_EQ(kill(d.pid(), SIGSTOP), 0);
  const int fd = SendHello(d.socket());
  ASSERT_GE(fd, 0) << std::strerror(errno);
  close(fd);  // as a Connect that timed out does
  ASSERT_EQ(kill(d.pid(), SIGCONT), 0);
  EXPECT_TRUE(d.WaitLog("hung up before the monitor answered")) << d.Log();
  std::unique_ptr<glint::Client> c;
  const glint::Status s = ConnectWithin(d.socket(), std::chrono::seconds(2), &c);
  EXPECT_TRUE(s.ok()) << s.ToString() << "\n" << d.Log();
}

// The other side of ConnectTest.SocketThatNeverAnswersIsNotConnected: a
// Connect that gave up just as glintd answered leaves a slot given and the
// answer unread. Its Bye (sent before it hangs up) must free the slot now;
// without one, a closed socket only tells glintd to watch the process,
// which lives on, and with one slot every later Connect failed.
TEST(Glintd, AByeAfterAnUnreadAnswerFreesTheSlot) {
  Glintd d("--capacity 4MiB --max-clients 1");
  ASSERT_TRUE(d.WaitServing()) << d.Log();
  const int fd = SendHello(d.socket());
  ASSERT_GE(fd, 0) << std::strerror(errno);
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 10000), 1) << "no answer within 10 s\n" << d.Log();
  ASSERT_TRUE(d.WaitLog("client 0 connected")) << d.Log();
  const uint32_t bye = glint::core::kByeMagic;
  ASSERT_EQ(write(fd, &bye, sizeof(bye)), static_cast<ssize_t>(sizeof(bye)));
  close(fd);  // the answer, and the region's descriptor in it, unread
  std::unique_ptr<glint::Client> c;
  const glint::Status s = ConnectWithin(d.socket(), std::chrono::seconds(2), &c);
  EXPECT_TRUE(s.ok()) << s.ToString() << "\n" << d.Log();
}

// glintd's stderr is a pipe nobody reads (`glintd 2>&1 | less` left
// alone). Once the pipe is full, logging must not stop the monitor: every
// client still connects (each connect and leave logs a line), and SIGTERM
// still stops glintd, which removes its socket.
TEST(Glintd, AStderrNobodyReadsStopsNothing) {
  const std::string socket = TempPath("sock");
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 2);
    close(p[0]);
    close(p[1]);
    execl(GLINTD_PATH, GLINTD_PATH, "--socket", socket.c_str(), "--capacity", "4MiB",
          "--max-objects", "1024", nullptr);
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  close(p[1]);
  std::unique_ptr<glint::Client> c;
  glint::Status s = ConnectWithin(socket, std::chrono::seconds(5), &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  c.reset();
  // ~90 bytes a line, two lines a client: 1,000 clients write ~180 KB,
  // far more than the pipe's 64 KiB.
  int connected = 1;
  for (; connected < 1000; ++connected) {
    s = glint::Client::Connect(socket, &c);
    if (!s.ok()) break;
    c.reset();
  }
  EXPECT_EQ(connected, 1000) << s.ToString();
  const auto t0 = std::chrono::steady_clock::now();
  kill(pid, SIGTERM);
  int st = 0;
  const bool stopped = ReapWithin(pid, std::chrono::seconds(15), &st);
  if (!stopped) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
  close(p[0]);
  EXPECT_TRUE(stopped) << "glintd did not stop on SIGTERM within 15 s";
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  // glintd gives its stuck log writer 2 s; TSan adds a second at exit.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_FALSE(Exists(socket));
  if (!stopped) unlink(socket.c_str());
}

TEST(Glintd, RegionOfAnotherLayoutVersionIsIncompatible) {
  Glintd d("--capacity 4MiB");
  ASSERT_TRUE(d.WaitServing()) << d.Log();
  const std::string region = RegionFromLog(d.Log());
  const int fd = open(region.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const uint32_t other_version = 99;
  ASSERT_EQ(pwrite(fd, &other_version, 4, 8), 4);  // layout_version
  close(fd);
  std::unique_ptr<glint::Client> c;
  glint::Status s = glint::Client::Connect(d.socket(), &c);
  EXPECT_EQ(s.code(), glint::StatusCode::kIncompatible) << s.ToString();
  EXPECT_NE(s.message().find("99"), std::string::npos) << s.ToString();
}

TEST(GlintTool, PutLsStatGetRmEndToEnd) {
  Glintd d("--capacity 16MiB");
  ASSERT_TRUE(d.WaitServing()) << d.Log();
  const std::string tool = GLINT_TOOL_PATH;
  const std::string in = TempPath("in"), out = TempPath("out");
  {
    std::ofstream f(in, std::ios::binary);
    for (int i = 0; i < 100000; ++i) f.put(static_cast<char>(i * 31 + 7));
  }
  const std::string id = "00112233445566778899aabbccddeeff";
  std::string text;
  ASSERT_EQ(Shell(tool + " put " + d.socket() + " " + id + " " + in +
                    " --name my-data --meta format=raw --meta k=v", &text), 0) << text;
  ASSERT_EQ(Shell(tool + " ls " + d.socket(), &text), 0) << text;
  EXPECT_NE(text.find(id), std::string::npos) << text;
  EXPECT_NE(text.find("my-data"), std::string::npos) << text;
  EXPECT_NE(text.find("sealed"), std::string::npos) << text;
  ASSERT_EQ(Shell(tool + " ls " + d.socket() + " --json", &text), 0) << text;
  EXPECT_NE(text.find("\"size\":100000"), std::string::npos) << text;
  EXPECT_NE(text.find("\"metadata_size\":11"), std::string::npos) << text;
  ASSERT_EQ(Shell(tool + " stat " + d.socket() + " --json", &text), 0) << text;
  EXPECT_NE(text.find("\"objects_sealed\":1"), std::string::npos) << text;
  EXPECT_NE(text.find("\"capacity\":16777216"), std::string::npos) << text;
  ASSERT_EQ(Shell(tool + " stat " + d.socket(), &text), 0) << text;
  EXPECT_NE(text.find("16 MiB"), std::string::npos) << text;
  ASSERT_EQ(Shell(tool + " get " + d.socket() + " --name my-data -o " + out, &text), 0)
      << text;
  EXPECT_EQ(Shell("cmp " + in + " " + out), 0);
  ASSERT_EQ(Shell(tool + " get " + d.socket() + " " + id + " > " + out), 0);
  EXPECT_EQ(Shell("cmp " + in + " " + out), 0);
  ASSERT_EQ(Shell(tool + " rm " + d.socket() + " " + id, &text), 0) << text;
  EXPECT_EQ(Shell(tool + " rm " + d.socket() + " " + id, &text), 1);
  EXPECT_NE(text.find("NotFound"), std::string::npos) << text;
  EXPECT_EQ(Shell(tool + " get " + d.socket() + " " + id, &text), 1);
  EXPECT_NE(text.find("TimedOut"), std::string::npos) << text;
  ASSERT_EQ(Shell(tool + " stat " + d.socket() + " --json", &text), 0) << text;
  EXPECT_NE(text.find("\"bytes_in_use\":0"), std::string::npos) << text;
  EXPECT_EQ(Shell(tool + " get " + d.socket() + " not-an-id", &text), 2);
  EXPECT_EQ(Shell(tool + " ls /nonexistent/glint.sock", &text), 1);
  EXPECT_NE(text.find("/nonexistent/glint.sock"), std::string::npos) << text;
  unlink(in.c_str());
  unlink(out.c_str());
}

// put reads a pipe, a device or a /proc file as well as a file; a
// directory, a missing file and input beyond what the store can take are
// refused with a message (a directory and /dev/zero once made it abort),
// and nothing is left in the store.
TEST(GlintTool, PutReadsPipesAndRefusesWhatItCannotStore) {
  Glintd d("--capacity 4MiB");
  ASSERT_TRUE(d.WaitServing()) << d.Log();
  const std::string tool = GLINT_TOOL_PATH;
  const std::string put = tool + " put " + d.socket() + " ";
  const std::string id = "0123456789abcdef0123456789abcdef";
  std::string text;
  EXPECT_EQ(Shell(put + id + " /tmp", &text), 1);
  EXPECT_NE(text.find("/tmp is a directory"), std::string::npos) << text;
  EXPECT_EQ(Shell(put + id + " /nonexistent/payload", &text), 1);
  EXPECT_NE(text.find("cannot read /nonexistent/payload"), std::string::npos) << text;
  EXPECT_EQ(Shell(put + id + " /dev/zero", &text), 1);
  EXPECT_NE(text.find("/dev/zero holds more than the store can take"), std::string::npos)
      << text;
  ASSERT_EQ(Shell(tool + " stat " + d.socket() + " --json", &text), 0) << text;
  EXPECT_NE(text.find("\"bytes_in_use\":0"), std::string::npos) << text;
  EXPECT_NE(text.find("\"objects_sealed\":0"), std::string::npos) << text;
  EXPECT_NE(text.find("\"objects_building\":0"), std::string::npos) << text;

  ASSERT_EQ(Shell("printf 'from a pipe' | " + put + id + " /dev/stdin", &text), 0) << text;
  ASSERT_EQ(Shell(tool + " get " + d.socket() + " " + id, &text), 0) << text;
  EXPECT_EQ(text, "from a pipe");
  ASSERT_EQ(Shell(tool + " rm " + d.socket() + " " + id, &text), 0) << text;
  ASSERT_EQ(Shell(put + id + " /dev/null", &text), 0) << text;  // empty
  ASSERT_EQ(Shell(tool + " ls " + d.socket() + " --json", &text), 0) << text;
  EXPECT_NE(text.find("\"size\":0"), std::string::npos) << text;
  ASSERT_EQ(Shell(tool + " rm " + d.socket() + " " + id, &text), 0) << text;

  // A pipe longer than the first 64 KiB (the object grows, byte for byte),
  // and a /proc file, which says its size is 0.
  const std::string in = TempPath("pipe-in"), out = TempPath("pipe-out");
  ASSERT_EQ(Shell("head -c 300001 /dev/urandom > " + in), 0);
  ASSERT_EQ(Shell("cat " + in + " | " + put + id + " /dev/stdin", &text), 0) << text;
  ASSERT_EQ(Shell(tool + " get " + d.socket() + " " + id + " -o " + out, &text), 0) << text;
  EXPECT_EQ(Shell("cmp " + in + " " + out), 0);
  ASSERT_EQ(Shell(tool + " rm " + d.socket() + " " + id, &text), 0) << text;
  ASSERT_EQ(Shell(put + id + " /proc/self/status", &text), 0) << text;
  ASSERT_EQ(Shell(tool + " get " + d.socket() + " " + id, &text), 0) << text;
  EXPECT_NE(text.find("VmRSS"), std::string::npos) << text;
  unlink(in.c_str());
  unlink(out.c_str());
}

// The region file of a running store, mapped read-only to find fields;
// changed only with pwrite, as a stray writer would.
class RegionFile {
 public:
  explicit RegionFile(const std::string& path) {
    fd_ = open(path.c_str(), O_RDWR);
    struct stat st;
    if (fd_ < 0 || fstat(fd_, &st) != 0) return;
    size_ = static_cast<uint64_t>(st.st_size);
    void* m = mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (m != MAP_FAILED) base_ = static_cast<uint8_t*>(m);
  }
  ~RegionFile() {
    if (base_ != nullptr) munmap(base_, size_);
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return base_ != nullptr; }
  glint::core::Region region() const { return glint::core::Region(base_, size_); }
  // The entry of sealed object `id`, or kNoSlot.
  uint32_t Slot(const glint::ObjectId& id) const {
    uint64_t w[2];
    std::memcpy(w, id.data(), 16);
    const glint::core::Region r = region();
    for (uint32_t s = 0; s < r.num_obj_slots(); ++s) {
      const auto* e = r.entry(s);
      if (glint::core::StateOf(e->state.load()) == glint::core::kObjSealed &&
          e->id[0].load() == w[0] && e->id[1].load() == w[1]) {
        return s;
      }
    }
    return glint::core::kNoSlot;
  }
  // Writes the 8-byte word at `field` (a pointer into the mapping).
  template <typename T>
  bool Write64(const T* field, uint64_t v) {
    const off_t off = reinterpret_cast<const uint8_t*>(field) - base_;
    return pwrite(fd_, &v, 8, off) == 8;
  }

 private:
  int fd_ = -1;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
};

TEST(GlintTool, CheckSaysSoundAndNamesCorruption) {
  Glintd d("--capacity 16MiB --max-objects 1024");
  ASSERT_TRUE(d.WaitServing()) << d.Log();
  const std::string tool = GLINT_TOOL_PATH;
  const std::string small_in = TempPath("small"), large_in = TempPath("large");
  {
    std::ofstream f(small_in, std::ios::binary);
    f << "a small payload";
    std::ofstream g(large_in, std::ios::binary);
    for (int i = 0; i < 200000; ++i) g.put(static_cast<char>(i));
  }
  const std::string small_id = "00000000000000000000000000000001";
  const std::string large_id = "00000000000000000000000000000002";
  const std::string named_id = "00000000000000000000000000000003";
  std::string text;
  ASSERT_EQ(Shell(tool + " put " + d.socket() + " " + small_id + " " + small_in, &text), 0)
      << text;
  ASSERT_EQ(Shell(tool + " put " + d.socket() + " " + large_id + " " + large_in, &text), 0)
      << text;
  ASSERT_EQ(Shell(tool + " put " + d.socket() + " " + named_id + " " + small_in +
                    " --name a-name --meta k=v", &text), 0) << text;

  // Healthy: live and quiescent, text and JSON.
  const std::string check = tool + " check " + d.socket();
  ASSERT_EQ(Shell(check, &text), 0) << text;
  EXPECT_NE(text.find("sound"), std::string::npos) << text;
  EXPECT_NE(text.find("3 objects"), std::string::npos) << text;
  EXPECT_EQ(Shell(check + " --quiescent", &text), 0) << text;
  ASSERT_EQ(Shell(check + " --json", &text), 0) << text;
  EXPECT_NE(text.find("{\"sound\":true,\"objects\":3,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"problems\":[]}"), std::string::npos) << text;

  RegionFile rf(RegionFromLog(d.Log()));
  ASSERT_TRUE(rf.ok()) << d.Log();
  const glint::core::Region r = rf.region();
  glint::ObjectId small, large;
  ASSERT_TRUE(glint::ObjectId::FromHex(small_id, &small));
  ASSERT_TRUE(glint::ObjectId::FromHex(large_id, &large));
  const uint32_t small_slot = rf.Slot(small), large_slot = rf.Slot(large);
  ASSERT_NE(small_slot, glint::core::kNoSlot);
  ASSERT_NE(large_slot, glint::core::kNoSlot);

  // 1. A taken object's payload offset beyond the heap.
  const auto* le = r.entry(large_slot);
  const uint64_t large_off = le->data_offset.load();
  ASSERT_TRUE(rf.Write64(&le->data_offset, r.header()->heap_size + 4096));
  EXPECT_EQ(Shell(check, &text), 1) << text;
  EXPECT_NE(text.find("object slot " + std::to_string(large_slot) + " payload"),
            std::string::npos) << text;
  EXPECT_NE(text.find("outside the heap"), std::string::npos) << text;
  ASSERT_EQ(Shell(check + " --json", &text), 1) << text;
  EXPECT_NE(text.find("{\"sound\":false,"), std::string::npos) << text;
  EXPECT_NE(text.find("outside the heap\"]}"), std::string::npos) << text;
  ASSERT_TRUE(rf.Write64(&le->data_offset, large_off));
  ASSERT_EQ(Shell(check, &text), 0) << text;

  // 2. The span bit of an owned block cleared.
  const uint64_t off = r.entry(small_slot)->data_offset.load();
  const auto* span = r.span(off / glint::core::kSpanSize);
  const uint64_t cls_size = glint::alloc::ClassSize(glint::alloc::SizeClassOf(15));
  const uint64_t blk = (off % glint::core::kSpanSize) / cls_size;
  const auto* word = &span->bits[blk / 64];
  const uint64_t bits = word->load();
  ASSERT_NE(bits & (uint64_t{1} << (blk % 64)), 0u);
  ASSERT_TRUE(rf.Write64(word, bits & ~(uint64_t{1} << (blk % 64))));
  EXPECT_EQ(Shell(check, &text), 1) << text;
  EXPECT_NE(text.find("object slot " + std::to_string(small_slot) + " payload"),
            std::string::npos) << text;
  EXPECT_NE(text.find("is a free block"), std::string::npos) << text;
  ASSERT_TRUE(rf.Write64(word, bits));
  ASSERT_EQ(Shell(check, &text), 0) << text;

  // 3. A name slot taken but bound to no object: on a live store a creator
  // may be between the two steps, so only --quiescent calls it a problem.
  const auto* nb = r.name_bucket(1);
  const uint64_t used = nb->used.load();
  const uint32_t ns = glint::core::kSlotsPerBucket + 55;
  ASSERT_EQ(used & (uint64_t{1} << 55), 0u);
  ASSERT_TRUE(rf.Write64(&nb->used, used | (uint64_t{1} << 55)));
  EXPECT_EQ(Shell(check, &text), 0) << text;
  EXPECT_EQ(Shell(check + " --quiescent", &text), 1) << text;
  EXPECT_NE(text.find("name slot " + std::to_string(ns) + " is taken but unbound"),
            std::string::npos) << text;
  ASSERT_TRUE(rf.Write64(&nb->used, used));
  EXPECT_EQ(Shell(check + " --quiescent", &text), 0) << text;

  // Usage errors and a store that is not there.
  EXPECT_EQ(Shell(tool + " check", &text), 2) << text;
  EXPECT_EQ(Shell(check + " --no-such-flag", &text), 2) << text;
  EXPECT_EQ(Shell(tool + " check /nonexistent/glint.sock", &text), 1) << text;
  EXPECT_NE(text.find("/nonexistent/glint.sock"), std::string::npos) << text;
  unlink(small_in.c_str());
  unlink(large_in.c_str());
}

// `glint ls` of an entry whose create time was damaged to any value (here
// near INT64_MIN and INT64_MAX): the age column must not overflow (UBSan
// found "now - create_time" overflowing in fuzz_region).
TEST(GlintTool, LsOfADamagedCreateTimeShowsAnAge) {
  glint::StoreOptions o;
  o.socket_path = "/tmp/glint-tools-age-" + std::to_string(getpid()) + ".sock";
  o.capacity = int64_t{4} << 20;
  std::unique_ptr<glint::Monitor> m;
  ASSERT_TRUE(glint::Monitor::Start(o, &m).ok());
  std::unique_ptr<glint::Client> c;
  ASSERT_TRUE(glint::Client::Connect(o.socket_path, &c).ok());
  glint::MutableBuffer mb;
  ASSERT_TRUE(c->BuildObject(glint::ObjectId::Random(), 8, &mb).ok());
  ASSERT_TRUE(mb.Seal().ok());
  glint::core::Region r(const_cast<uint8_t*>(c->region_base()),
                        static_cast<uint64_t>(c->region_size()));
  glint::core::ObjectEntry* e = nullptr;
  for (uint32_t s = 0; s < r.num_obj_slots() && e == nullptr; ++s) {
    if (glint::core::StateOf(r.entry(s)->state.load()) == glint::core::kObjSealed) {
      e = r.entry(s);
    }
  }
  ASSERT_NE(e, nullptr);
  for (int64_t t : {std::numeric_limits<int64_t>::min() + 5, int64_t{-1},
                    std::numeric_limits<int64_t>::max()}) {
    e->create_time_us.store(t);
    std::ostringstream out;
    ASSERT_TRUE(glint::tools::ListCommand(*c, false, out).ok());
    EXPECT_NE(out.str().find("sealed"), std::string::npos) << out.str();
    EXPECT_NE(out.str().find(t > 0 ? "0s" : "d "), std::string::npos) << out.str();
  }
}

TEST(GlintTool, HelpListsEverySubcommand) {
  std::string out;
  ASSERT_EQ(Shell(std::string(GLINT_TOOL_PATH) + " --help", &out), 0);
  for (const char* sub : {"ls", "stat", "put", "get", "rm", "check", "demo"}) {
    EXPECT_NE(out.find(std::string("\n  ") + sub + " "), std::string::npos) << sub;
  }
  ASSERT_EQ(Shell(std::string(GLINT_TOOL_PATH) + " check --help", &out), 0);
  EXPECT_NE(out.find("--quiescent"), std::string::npos) << out;
  EXPECT_NE(out.find("--json"), std::string::npos) << out;
}

TEST(GlintTool, DemoMovesEveryByteAndExitsZero) {
  std::string text;
  ASSERT_EQ(Shell(std::string(GLINT_TOOL_PATH) + " demo", &text), 0) << text;
  EXPECT_NE(text.find("hand-off"), std::string::npos) << text;
  EXPECT_NE(text.find("arrived intact"), std::string::npos) << text;
}

// The children of process `pid`, oldest first (/proc/PID/task/PID/children).
std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) +
                   "/children");
  std::vector<pid_t> kids;
  for (pid_t k; in >> k;) kids.push_back(k);
  return kids;
}

// A consumer that dies mid-demo (SIGKILL) must not leave the producer
// waiting for it forever: the demo stops the producer, says which process
// died and exits 1.
TEST(GlintTool, DemoFailsWhenAChildDies) {
  const std::string self = std::to_string(getpid());
  if (access(("/proc/" + self + "/task/" + self + "/children").c_str(), R_OK) != 0) {
    GTEST_SKIP() << "this kernel has no /proc/PID/task/TID/children";
  }
  const std::string out = TempPath("demo-out");
  const pid_t demo = fork();
  if (demo == 0) {
    const int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1);
    dup2(fd, 2);
    execl(GLINT_TOOL_PATH, GLINT_TOOL_PATH, "demo", nullptr);
    _exit(127);
  }
  ASSERT_GT(demo, 0);
  // The consumer is forked first (the children file lists children in the
  // order they were made); kill it as soon as both exist.
  std::vector<pid_t> kids;
  for (int i = 0; i < 1000 && kids.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    kids = ChildrenOf(demo);
  }
  ASSERT_EQ(kids.size(), 2u) << "the demo did not start its two children";
  ASSERT_EQ(kill(kids[0], SIGKILL), 0);
  int st = 0;
  const bool ended = ReapWithin(demo, std::chrono::seconds(30), &st);
  if (!ended) {
    for (pid_t k : ChildrenOf(demo)) kill(k, SIGKILL);
    kill(demo, SIGKILL);
    waitpid(demo, &st, 0);
  }
  std::ifstream in(out);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  unlink(out.c_str());
  ASSERT_TRUE(ended) << "the demo still ran 30 s after its consumer died:\n" << text;
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << st << "\n" << text;
  EXPECT_NE(text.find("FAILED: the consumer was killed by signal 9"), std::string::npos) << text;
}

}  // namespace
