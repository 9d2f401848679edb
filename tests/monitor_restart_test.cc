// Copyright (c) glint authors.
//
// The monitor killed and restarted, and death detection by pidfd: real
// glintd processes killed with SIGKILL, client processes made with fork
// (and one with a bare clone) and killed with SIGKILL. Every wait is a
// condition polled with a deadline or a message on a pipe.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/region.h"
#include "glint/glint.h"
#include "tests/test_util.h"

#ifndef GLINTD_PATH
#error "GLINTD_PATH must name the glintd binary"
#endif

namespace glint::testing {
namespace {

bool Exists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}

std::string ReadFile(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// One glintd process on `socket`, its stderr in a file of its own.
class Glintd {
 public:
  Glintd(const std::string& socket, std::vector<std::string> args)
      : socket_(socket) {
    static int counter = 0;
    log_ = socket + ".log" + std::to_string(counter++);
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 2);
      const int null = open("/dev/null", O_WRONLY);
      dup2(null, 1);  // not the test's stdout: a pipe of whoever runs it
      std::vector<std::string> all = {GLINTD_PATH, "--socket", socket};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (std::string& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(GLINTD_PATH, argv.data());
      _exit(127);
    }
  }
  // SIGTERM: a clean stop removes the socket and the region.
  ~Glintd() {
    if (pid_ > 0) Stop(SIGTERM);
    unlink(log_.c_str());
  }
  // Waits for `text` in the log; false if the process ended or 10 s passed.
  bool WaitLog(const std::string& text) {
    return WaitUntil([&] { return Log().find(text) != std::string::npos || Exited(); }) &&
           Log().find(text) != std::string::npos;
  }
  bool WaitServing() { return WaitLog("serving "); }
  int Stop(int sig) {
    kill(pid_, sig);
    return WaitExit();
  }
  // The exit status (128 + signal for a signal).
  int WaitExit() {
    if (pid_ > 0) {
      int st = 0;
      waitpid(pid_, &st, 0);
      pid_ = -1;
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return status_;
  }
  std::string Log() const { return ReadFile(log_); }
  // The region file named in the start line.
  std::string Region() const {
    const std::string log = Log();
    const auto pos = log.find(" region ");
    if (pos == std::string::npos) return "";
    const auto end = log.find(' ', pos + 8);
    return log.substr(pos + 8, end - pos - 8);
  }

 private:
  bool Exited() {
    if (pid_ <= 0) return true;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) != pid_) return false;
    pid_ = -1;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return true;
  }
  std::string socket_;
  std::string log_;
  pid_t pid_ = -1;
  int status_ = -1;
};

// ------------------------------------------------------------ child processes

// A forked child that talks to the test over two pipes, one line at a time.
struct Kid {
  pid_t pid = -1;
  int from = -1;  // the test reads the child's lines here
  int to = -1;    // and writes commands here

  void Send(char c) const { ASSERT_EQ(write(to, &c, 1), 1); }
  // One line from the child, "" when it closed the pipe or 20 s passed.
  std::string Line() const {
    std::string line;
    const int64_t deadline = os::MonotonicNanos() + int64_t{20} * 1000 * 1000 * 1000;
    for (;;) {
      const int64_t left_ms = (deadline - os::MonotonicNanos()) / 1000000;
      if (left_ms <= 0) return "";
      pollfd p{from, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left_ms)) <= 0) continue;
      char c;
      if (read(from, &c, 1) != 1) return "";
      if (c == '\n') return line;
      line += c;
    }
  }
  void Kill() {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
  ~Kid() {
    Kill();
    close(from);
    close(to);
  }
};

// In the child: the channel back to the test.
struct Channel {
  int in;
  int out;
  void Say(const std::string& line) const {
    const std::string l = line + "\n";
    if (write(out, l.data(), l.size()) != static_cast<ssize_t>(l.size())) _exit(3);
  }
  // Fails the child: the test reads the reason.
  [[noreturn]] void Fail(const std::string& why) const {
    Say("fail: " + why);
    _exit(1);
  }
  void Check(bool cond, const std::string& what) const {
    if (!cond) Fail(what);
  }
  void CheckOk(const Status& s, const std::string& what) const {
    if (!s.ok()) Fail(what + ": " + s.ToString());
  }
  // Waits for command `c` from the test (the test gone: exit).
  void Await(char c) const {
    char got = 0;
    if (read(in, &got, 1) != 1 || got != c) _exit(4);
  }
};

std::unique_ptr<Kid> Spawn(const std::function<void(const Channel&)>& body) {
  // A child that failed and exited must not kill the test on its next Send.
  signal(SIGPIPE, SIG_IGN);
  int up[2], down[2];
  if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0) return nullptr;
  const pid_t p = fork();
  if (p == 0) {
    close(up[0]);
    close(down[1]);
    body(Channel{down[0], up[1]});
    _exit(0);
  }
  close(up[1]);
  close(down[0]);
  auto k = std::make_unique<Kid>();
  k->pid = p;
  k->from = up[0];
  k->to = down[1];
  return k;
}

[[noreturn]] void SleepForever() {
  for (;;) pause();
}

// Builds, fills with the pattern of `id` and seals.
Status PutPattern(Client* c, const ObjectId& id, int64_t size,
                  std::string_view name = {}) {
  MutableBuffer mb;
  Status s = c->BuildObject(id, size, &mb, name);
  if (!s.ok()) return s;
  FillPattern(mb.mutable_data(), size, SeedOf(id));
  return mb.Seal();
}

// Whether object `id` is sealed, `size` bytes, and holds its pattern.
bool HasPattern(Client* c, const ObjectId& id, int64_t size) {
  Buffer b;
  if (!c->GetObject(id, &b, 0).ok()) return false;
  return b.size() == size && CheckPattern(b.data(), size, SeedOf(id)) < 0;
}

uint32_t SlotState(const Client* c, uint32_t slot) {
  const core::Region r(const_cast<uint8_t*>(c->region_base()),
                       static_cast<uint64_t>(c->region_size()));
  return r.client(slot)->state.load();
}

std::string SocketPath(const char* tag) {
  return "/tmp/glint-restart-" + std::to_string(getpid()) + "-" + tag;
}

const ObjectId kSealed = MakeId(0x5e, 1);
const ObjectId kBuilding = MakeId(0x5e, 2);
constexpr int64_t kSealedSize = 300000;
constexpr int64_t kBuildingSize = 200000;

// ------------------------------------------------------------ tests

// The whole story: glintd dies under a client that holds a sealed object
// and builds another; the client goes on without it; a restarted glintd
// re-attaches the region with every byte, and recovers the client when the
// client is killed in turn.
TEST(MonitorRestart, ClientOutlivesMonitorAndRestartedMonitorRecoversIt) {
  const std::string sock = SocketPath("story");
  auto d1 = std::make_unique<Glintd>(sock, std::vector<std::string>{"--capacity", "16MiB"});
  ASSERT_TRUE(d1->WaitServing()) << d1->Log();
  const std::string region = d1->Region();
  ASSERT_FALSE(region.empty()) << d1->Log();

  auto kid = Spawn([&](const Channel& ch) {
    std::unique_ptr<Client> c;
    ch.CheckOk(Client::Connect(sock, &c), "connect");
    ch.CheckOk(PutPattern(c.get(), kSealed, kSealedSize, "sealed"), "put");
    MutableBuffer building;
    ch.CheckOk(c->BuildObject(kBuilding, kBuildingSize, &building), "build");
    std::memset(building.mutable_data(), 0xab, kBuildingSize / 2);
    ch.Say(std::to_string(c->client_slot()));

    ch.Await('g');  // glintd is dead: the fast path must not need it
    ch.Check(HasPattern(c.get(), kSealed, kSealedSize), "sealed object while down");
    for (uint64_t i = 0; i < 20; ++i) {
      const ObjectId id = MakeId(0xd0, i);
      ch.CheckOk(PutPattern(c.get(), id, 1000 + 777 * static_cast<int64_t>(i)),
                 "put while down");
      ch.Check(HasPattern(c.get(), id, 1000 + 777 * static_cast<int64_t>(i)),
               "get while down");
      if (i % 2 == 1) ch.CheckOk(c->Delete(id), "delete while down");
    }
    std::unique_ptr<Client> second;
    const Status s = Client::Connect(sock, &second);
    ch.Check(s.code() == StatusCode::kNotConnected,
             "Connect while down should be NotConnected: " + s.ToString());
    ch.Check(s.message().find("no glint monitor serves " + sock) != std::string::npos,
             "unclear NotConnected message: " + s.ToString());
    ch.Say("ok");

    ch.Await('h');  // glintd is back
    ch.Check(HasPattern(c.get(), kSealed, kSealedSize), "sealed object after restart");
    ch.Check(HasPattern(c.get(), MakeId(0xd0, 0), 1000), "object made while down");
    ch.Say("ok");
    SleepForever();  // holds `building` until SIGKILL
  });
  ASSERT_NE(kid, nullptr);
  const std::string slot_line = kid->Line();
  ASSERT_FALSE(slot_line.empty() || slot_line.starts_with("fail")) << slot_line;
  const uint32_t slot = static_cast<uint32_t>(std::stoul(slot_line));

  // SIGKILL: no cleanup runs; socket and region stay.
  EXPECT_EQ(d1->Stop(SIGKILL), 128 + SIGKILL);
  EXPECT_TRUE(Exists(region));
  EXPECT_TRUE(Exists(sock));
  kid->Send('g');
  EXPECT_EQ(kid->Line(), "ok");
  {
    std::unique_ptr<Client> c;
    const Status s = Client::Connect(sock, &c);
    EXPECT_EQ(s.code(), StatusCode::kNotConnected) << s.ToString();
    EXPECT_NE(s.message().find("no glint monitor serves " + sock), std::string::npos)
        << s.ToString();
  }

  // Restarted with another capacity: the region keeps its own.
  auto d2 = std::make_unique<Glintd>(sock, std::vector<std::string>{"--capacity", "32MiB"});
  ASSERT_TRUE(d2->WaitServing()) << d2->Log();
  const std::string log = d2->Log();
  EXPECT_NE(log.find("re-attached the existing region " + region), std::string::npos) << log;
  EXPECT_NE(log.find("warning: capacity"), std::string::npos) << log;
  EXPECT_NE(log.find("is kept"), std::string::npos) << log;
  EXPECT_NE(log.find("capacity 16 MiB"), std::string::npos) << log;
  EXPECT_NE(log.find("client " + std::to_string(slot) + " (pid " +
                     std::to_string(kid->pid) + ") still runs; watching it"),
            std::string::npos)
      << log;
  EXPECT_EQ(d2->Region(), region);

  std::unique_ptr<Client> c;
  GLINT_ASSERT_OK(Client::Connect(sock, &c));
  EXPECT_TRUE(HasPattern(c.get(), kSealed, kSealedSize));
  {
    Buffer b;
    GLINT_EXPECT_OK(c->GetObjectByName("sealed", &b, 0));
    EXPECT_EQ(b.size(), kSealedSize);
  }
  for (uint64_t i = 0; i < 20; ++i) {
    EXPECT_EQ(c->Contains(MakeId(0xd0, i)), i % 2 == 0) << i;
  }
  EXPECT_EQ(GetStats(c.get()).objects_building, 1);
  EXPECT_EQ(SlotState(c.get(), slot), core::kClientActive);
  kid->Send('h');
  EXPECT_EQ(kid->Line(), "ok");

  // The client dies now: the restarted monitor, which never had a socket to
  // it, recovers it through its pidfd.
  const pid_t kid_pid = kid->pid;
  kid->Kill();
  EXPECT_TRUE(WaitUntil([&] {
    return SlotState(c.get(), slot) == core::kClientFree &&
           GetStats(c.get()).objects_building == 0;
  })) << d2->Log();
  EXPECT_TRUE(d2->WaitLog("client " + std::to_string(slot) + " left (pid " +
                          std::to_string(kid_pid)))
      << d2->Log();
  // Its object is gone and its id free; the sealed one stays.
  MutableBuffer again;
  GLINT_EXPECT_OK(c->BuildObject(kBuilding, 10, &again));
  GLINT_EXPECT_OK(again.Abort());
  EXPECT_TRUE(HasPattern(c.get(), kSealed, kSealedSize));

  c.reset();
  EXPECT_EQ(d2->Stop(SIGTERM), 0);
  EXPECT_FALSE(Exists(region));
  EXPECT_FALSE(Exists(sock));
}

// A client that dies while no monitor runs: the next one recovers it as it
// starts (its references are released, its build is gone).
TEST(MonitorRestart, ClientThatDiedWhileMonitorWasDownIsRecoveredAtStart) {
  const std::string sock = SocketPath("down");
  auto d1 = std::make_unique<Glintd>(sock, std::vector<std::string>{"--capacity", "16MiB"});
  ASSERT_TRUE(d1->WaitServing()) << d1->Log();
  auto kid = Spawn([&](const Channel& ch) {
    std::unique_ptr<Client> c;
    ch.CheckOk(Client::Connect(sock, &c), "connect");
    ch.CheckOk(PutPattern(c.get(), kSealed, kSealedSize), "put");
    Buffer held;
    ch.CheckOk(c->GetObject(kSealed, &held, 0), "get");
    MutableBuffer building;
    ch.CheckOk(c->BuildObject(kBuilding, kBuildingSize, &building), "build");
    ch.Say(std::to_string(c->client_slot()));
    SleepForever();
  });
  ASSERT_NE(kid, nullptr);
  const std::string slot_line = kid->Line();
  ASSERT_FALSE(slot_line.empty() || slot_line.starts_with("fail")) << slot_line;
  const uint32_t slot = static_cast<uint32_t>(std::stoul(slot_line));
  // A client of the test, connected before the monitor dies: it watches the
  // region throughout.
  std::unique_ptr<Client> watcher;
  GLINT_ASSERT_OK(Client::Connect(sock, &watcher));

  d1->Stop(SIGKILL);
  const pid_t kid_pid = kid->pid;
  kid->Kill();
  EXPECT_EQ(SlotState(watcher.get(), slot), core::kClientActive);  // nobody to recover it

  auto d2 = std::make_unique<Glintd>(sock, std::vector<std::string>{"--capacity", "16MiB"});
  ASSERT_TRUE(d2->WaitServing()) << d2->Log();
  // Recovered before serving.
  EXPECT_EQ(SlotState(watcher.get(), slot), core::kClientFree);
  const std::string log = d2->Log();
  EXPECT_NE(log.find("client " + std::to_string(slot) + " left (pid " +
                     std::to_string(kid_pid) + ", died while no monitor ran; recovered)"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("warning"), std::string::npos) << log;  // same capacity
  // The watcher still runs, so the new monitor watches it.
  EXPECT_NE(log.find("still runs; watching it"), std::string::npos) << log;

  EXPECT_EQ(GetStats(watcher.get()).objects_building, 0);
  EXPECT_TRUE(HasPattern(watcher.get(), kSealed, kSealedSize));
  // The dead client's reference is gone: a delete frees the object at once.
  GLINT_EXPECT_OK(watcher->Delete(kSealed));
  EXPECT_TRUE(StoreBecomesEmpty(watcher.get()));
  std::unique_ptr<Client> fresh;
  GLINT_EXPECT_OK(Client::Connect(sock, &fresh));
}

// A region file that is not a whole glint region of this version is never
// replaced: glintd refuses, names the file and the problem, and exits 1.
TEST(MonitorRestart, RegionThatDoesNotValidateIsRefusedNotWiped) {
  const std::string sock = SocketPath("corrupt");
  std::string region;
  {
    Glintd d(sock, {"--capacity", "4MiB"});
    ASSERT_TRUE(d.WaitServing()) << d.Log();
    region = d.Region();
    d.Stop(SIGKILL);
  }
  ASSERT_TRUE(Exists(region));
  auto refused = [&](const std::string& problem) -> ::testing::AssertionResult {
    Glintd d(sock, {"--capacity", "4MiB"});
    const int code = d.WaitExit();
    const std::string log = d.Log();
    if (code != 1) return ::testing::AssertionFailure() << "exit " << code << ": " << log;
    for (const std::string& want : {region, problem, std::string("refusing"),
                                    std::string("delete it")}) {
      if (log.find(want) == std::string::npos) {
        return ::testing::AssertionFailure() << "no '" << want << "' in: " << log;
      }
    }
    return ::testing::AssertionSuccess();
  };

  // Another layout version.
  int fd = open(region.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const uint32_t other_version = 99;
  ASSERT_EQ(pwrite(fd, &other_version, 4, 8), 4);
  close(fd);
  EXPECT_TRUE(refused("version 99"));
  uint32_t still = 0;
  fd = open(region.c_str(), O_RDONLY);
  ASSERT_EQ(pread(fd, &still, 4, 8), 4);
  close(fd);
  EXPECT_EQ(still, 99u);  // untouched

  // Another program's file.
  const std::string foreign(64 * 1024, 'x');
  {
    std::ofstream out(region, std::ios::binary | std::ios::trunc);
    out << foreign;
  }
  EXPECT_TRUE(refused("bad magic"));
  EXPECT_EQ(ReadFile(region), foreign);

  // Truncated.
  ASSERT_EQ(truncate(region.c_str(), 100), 0);
  EXPECT_TRUE(refused("too small"));
  EXPECT_TRUE(Exists(region));

  // Deleted by the user: a fresh store.
  ASSERT_EQ(unlink(region.c_str()), 0);
  Glintd d(sock, {"--capacity", "4MiB"});
  ASSERT_TRUE(d.WaitServing()) << d.Log();
  EXPECT_EQ(d.Log().find("re-attached"), std::string::npos) << d.Log();
  std::unique_ptr<Client> c;
  GLINT_EXPECT_OK(Client::Connect(sock, &c));
}

// Sockets open in /proc/PID/fd.
int SocketsOf(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) {
    char target[256];
    const ssize_t len = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
    if (len > 0 && std::string(target, len).starts_with("socket:")) ++n;
  }
  closedir(d);
  return n;
}

// A child that keeps its parent's registration socket open (made with a bare
// clone, which runs no fork handler, as a runtime other than glibc's fork
// would) must not hide the parent's death: the pidfd watched since
// registration reports it.
TEST(MonitorPidfd, ChildHoldingInheritedSocketDoesNotHideParentDeath) {
  // Orphans come to the test, so it can check on the clone and reap it.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  const std::string sock = SocketPath("clone");
  Glintd d(sock, {"--capacity", "4MiB"});
  ASSERT_TRUE(d.WaitServing()) << d.Log();
  auto parent = Spawn([&](const Channel& ch) {
    std::unique_ptr<Client> c;
    ch.CheckOk(Client::Connect(sock, &c), "connect");
    MutableBuffer building;
    ch.CheckOk(c->BuildObject(kBuilding, kBuildingSize, &building), "build");
    const long child = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (child == 0) SleepForever();
    ch.Check(child > 0, "clone");
    ch.Say(std::to_string(c->client_slot()) + " " + std::to_string(child));
    SleepForever();
  });
  ASSERT_NE(parent, nullptr);
  const std::string line = parent->Line();
  ASSERT_FALSE(line.empty() || line.starts_with("fail")) << line;
  const uint32_t slot = static_cast<uint32_t>(std::stoul(line));
  const pid_t child = static_cast<pid_t>(std::stol(line.substr(line.find(' ') + 1)));
  EXPECT_GE(SocketsOf(child), 1) << "the clone should hold the inherited socket";

  std::unique_ptr<Client> c;
  GLINT_ASSERT_OK(Client::Connect(sock, &c));
  EXPECT_EQ(SlotState(c.get(), slot), core::kClientActive);
  const pid_t parent_pid = parent->pid;
  parent->Kill();
  EXPECT_TRUE(WaitUntil([&] {
    return SlotState(c.get(), slot) == core::kClientFree &&
           GetStats(c.get()).objects_building == 0;
  })) << d.Log();
  EXPECT_TRUE(d.WaitLog("client " + std::to_string(slot) + " left (pid " +
                        std::to_string(parent_pid)))
      << d.Log();
  // ... while the clone, with the socket, still runs.
  EXPECT_EQ(waitpid(child, nullptr, WNOHANG), 0);
  EXPECT_GE(SocketsOf(child), 1);
  kill(child, SIGKILL);
  EXPECT_EQ(waitpid(child, nullptr, 0), child);
}

// The embedded Monitor restarts the same way: Start re-attaches the region
// a killed process's Monitor left, and reports it.
TEST(MonitorRestart, EmbeddedMonitorStartReattaches) {
  StoreOptions o = SmallStoreOptions(int64_t{8} << 20);
  auto owner = Spawn([&](const Channel& ch) {
    std::unique_ptr<Monitor> m;
    ch.CheckOk(Monitor::Start(o, &m), "start");
    std::unique_ptr<Client> c;
    ch.CheckOk(Client::Connect(o.socket_path, &c), "connect");
    ch.CheckOk(PutPattern(c.get(), kSealed, kSealedSize), "put");
    ch.Say(m->region_path());
    SleepForever();
  });
  ASSERT_NE(owner, nullptr);
  const std::string region = owner->Line();
  ASSERT_FALSE(region.empty() || region.starts_with("fail")) << region;
  owner->Kill();
  ASSERT_TRUE(Exists(region));

  o.capacity = int64_t{4} << 20;  // ignored: the region keeps 8 MiB
  std::unique_ptr<Monitor> m;
  GLINT_ASSERT_OK(Monitor::Start(o, &m));
  EXPECT_TRUE(m->reattached());
  EXPECT_EQ(m->region_path(), region);
  EXPECT_EQ(m->capacity(), int64_t{8} << 20);
  EXPECT_EQ(m->clients(), 0);  // its one client died with it: recovered
  std::unique_ptr<Client> c;
  GLINT_ASSERT_OK(Client::Connect(o.socket_path, &c));
  EXPECT_TRUE(HasPattern(c.get(), kSealed, kSealedSize));
  EXPECT_EQ(GetStats(c.get()).clients, 1);
  c.reset();
  m.reset();
  EXPECT_FALSE(Exists(region));
}

}  // namespace
}  // namespace glint::testing
