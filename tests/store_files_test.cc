// Copyright (c) glint authors.
//
// The store's files on disk, when they are not what they should be: the
// socket path taken by something else, the region path taken by a
// directory or a symbolic link, and files the user may not open. Each gets
// its own Status, names the path, and leaves the file as it was. (Truncated,
// foreign and other-version region files: monitor_restart_test; damaged
// contents: crash_test's CorruptRegionTest and fuzz_region.)

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <functional>
#include <thread>

#include "core/region.h"
#include "tests/test_util.h"

namespace glint::testing {
namespace {

// The region path a store on `o.socket_path` uses (a store is started and
// stopped to learn it; stopping removes the region).
std::string RegionPathFor(const StoreOptions& o) {
  std::unique_ptr<Monitor> m;
  if (!Monitor::Start(o, &m).ok()) return "";
  return m->region_path();
}

// Starts a store with one connected client in a forked child and kills it
// (SIGKILL): returns the region file it leaves ("" on failure).
std::string KilledStoreRegion(const StoreOptions& o) {
  std::unique_ptr<Monitor> m;  // the child's
  std::unique_ptr<Client> c;
  std::string region;
  const pid_t store = ForkAndPause(
      [&]() -> std::string {
        if (!Monitor::Start(o, &m).ok() || !Client::Connect(o.socket_path, &c).ok()) {
          return "";
        }
        return m->region_path();
      },
      &region);
  if (store > 0) {
    kill(store, SIGKILL);
    waitpid(store, nullptr, 0);
  }
  return region;
}

TEST(StoreFilesTest, SocketPathThatIsARegularFileIsNeverReplaced) {
  const StoreOptions o = SmallStoreOptions(1 << 20);
  {
    std::ofstream f(o.socket_path);
    f << "precious";
  }
  std::unique_ptr<Monitor> m;
  const Status s = Monitor::Start(o, &m);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_NE(s.message().find(o.socket_path), std::string::npos) << s.ToString();
  std::ifstream in(o.socket_path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
  unlink(o.socket_path.c_str());
}

TEST(StoreFilesTest, RegionPathThatIsADirectoryIsRefused) {
  const StoreOptions o = SmallStoreOptions(1 << 20);
  const std::string region = RegionPathFor(o);
  ASSERT_FALSE(region.empty());
  ASSERT_EQ(mkdir(region.c_str(), 0700), 0);
  std::unique_ptr<Monitor> m;
  const Status s = Monitor::Start(o, &m);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_NE(s.message().find(region), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("not a regular file"), std::string::npos) << s.ToString();
  struct stat st;
  ASSERT_EQ(lstat(region.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  rmdir(region.c_str());
  unlink(o.socket_path.c_str());
}

TEST(StoreFilesTest, RegionPathThatIsASymlinkIsRefusedAndItsTargetUntouched) {
  const StoreOptions o = SmallStoreOptions(1 << 20);
  const std::string region = RegionPathFor(o);
  ASSERT_FALSE(region.empty());
  const std::string target = region + ".target";
  {
    std::ofstream f(target);
    f << "not yours";
  }
  ASSERT_EQ(symlink(target.c_str(), region.c_str()), 0);
  std::unique_ptr<Monitor> m;
  const Status s = Monitor::Start(o, &m);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_NE(s.message().find("symbolic link"), std::string::npos) << s.ToString();
  std::ifstream in(target);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "not yours");
  unlink(region.c_str());
  unlink(target.c_str());
  unlink(o.socket_path.c_str());
}

// Runs `body` in a forked child as a user the store's files (mode 0600) do
// not admit: as root, the child becomes nobody; otherwise the files'
// modes are cleared first (`files`). Returns the child's exit status.
int AsOutsider(const std::vector<std::string>& files, const std::function<int()>& body) {
  if (geteuid() != 0) {
    for (const std::string& f : files) chmod(f.c_str(), 0);
  }
  const pid_t pid = fork();
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(90);
    _exit(body());
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

TEST(StoreFilesTest, ASocketTheUserMayNotOpenIsPermissionDenied) {
  const StoreOptions o = SmallStoreOptions(1 << 20);  // mode 0600
  std::unique_ptr<Monitor> m;
  GLINT_ASSERT_OK(Monitor::Start(o, &m));
  const int code = AsOutsider({o.socket_path}, [&] {
    std::unique_ptr<Client> c;
    const Status s = Client::Connect(o.socket_path, &c);
    if (s.code() != StatusCode::kPermissionDenied) return 1;
    return s.message().find(o.socket_path) == std::string::npos ? 2 : 0;
  });
  EXPECT_EQ(code, 0) << "1: not kPermissionDenied; 2: the path is not named";
  // The store still serves its own user.
  chmod(o.socket_path.c_str(), 0600);
  std::unique_ptr<Client> c;
  GLINT_EXPECT_OK(Client::Connect(o.socket_path, &c));
}

// The same when the socket sits in a directory the user may not search:
// stat() fails with EACCES, which is no "there is no store here".
TEST(StoreFilesTest, ASocketInADirectoryTheUserMayNotSearchIsPermissionDenied) {
  const std::string dir = UniqueSocketPath("dir");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  StoreOptions o = SmallStoreOptions(1 << 20);
  o.socket_path = dir + "/store";
  std::unique_ptr<Monitor> m;
  GLINT_ASSERT_OK(Monitor::Start(o, &m));
  const int code = AsOutsider({dir}, [&] {
    std::unique_ptr<Client> c;
    const Status s = Client::Connect(o.socket_path, &c);
    if (s.code() != StatusCode::kPermissionDenied) {
      fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    return s.message().find(o.socket_path) == std::string::npos ? 2 : 0;
  });
  EXPECT_EQ(code, 0) << "1: not kPermissionDenied; 2: the path is not named";
  chmod(dir.c_str(), 0700);
  m.reset();
  rmdir(dir.c_str());
}

TEST(StoreFilesTest, ARegionTheUserMayNotOpenIsPermissionDeniedAndKept) {
  const StoreOptions o = SmallStoreOptions(1 << 20);
  // A region a killed store left (mode 0600), then a monitor started by
  // someone else on the same socket path.
  const std::string region = KilledStoreRegion(o);
  ASSERT_FALSE(region.empty());
  struct stat before;
  ASSERT_EQ(stat(region.c_str(), &before), 0);
  // The outsider needs a socket path of its own directory's choosing: the
  // dead store's socket file is root's, so it starts on the same path only
  // once that file is gone (as glintd does for a dead store's socket).
  unlink(o.socket_path.c_str());
  const int code = AsOutsider({region}, [&] {
    std::unique_ptr<Monitor> m;
    const Status s = Monitor::Start(o, &m);
    if (s.code() != StatusCode::kPermissionDenied) {
      fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    return s.message().find(region) == std::string::npos ? 2 : 0;
  });
  EXPECT_EQ(code, 0) << "1: not kPermissionDenied; 2: the path is not named";
  struct stat after;
  ASSERT_EQ(stat(region.c_str(), &after), 0);
  EXPECT_EQ(after.st_size, before.st_size);
  EXPECT_EQ(after.st_mtime, before.st_mtime);
  // Its owner re-attaches it.
  chmod(region.c_str(), 0600);
  std::unique_ptr<Monitor> m;
  GLINT_EXPECT_OK(Monitor::Start(o, &m));
  EXPECT_TRUE(m->reattached());
}

// A dead client's slot whose pid now names a thread of another process
// (pidfd_open answers ENOENT, not ESRCH, since Linux 6.9): the client is
// gone and is recovered at the restart, not watched forever. Found by
// fuzz_region.
TEST(StoreFilesThreadsTest, DeadClientWhosePidNowNamesAThreadIsRecovered) {
  const StoreOptions o = SmallStoreOptions(1 << 20);
  const std::string region = KilledStoreRegion(o);
  ASSERT_FALSE(region.empty());
  std::atomic<pid_t> tid{0};
  std::atomic<bool> done{false};
  std::thread t([&] {
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (tid == 0) std::this_thread::yield();
  {
    const int fd = open(region.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    core::RegionHeader h;
    ASSERT_EQ(pread(fd, &h, sizeof(h), 0), static_cast<ssize_t>(sizeof(h)));
    const uint32_t pid = static_cast<uint32_t>(tid.load());
    // Slot 0 (the killed store's client): its pid, and no start time.
    const uint64_t slot0 = h.clients_offset;
    ASSERT_EQ(pwrite(fd, &pid, 4, static_cast<off_t>(slot0 + offsetof(core::ClientSlot, pid))),
              4);
    const uint64_t zero = 0;
    ASSERT_EQ(pwrite(fd, &zero, 8,
                     static_cast<off_t>(slot0 + offsetof(core::ClientSlot, pid_start_time))),
              8);
    close(fd);
  }
  std::unique_ptr<Monitor> m;
  const Status s = Monitor::Start(o, &m);
  done = true;
  t.join();
  GLINT_ASSERT_OK(s);
  EXPECT_TRUE(m->reattached());
  std::unique_ptr<Client> c;
  GLINT_ASSERT_OK(Client::Connect(o.socket_path, &c));
  const core::Region r(const_cast<uint8_t*>(c->region_base()),
                       static_cast<uint64_t>(c->region_size()));
  EXPECT_TRUE(OtherClientsFree(r, c->client_slot())) << "the dead client was not recovered";
}

// A store started without prefault allocates its pages as they are
// touched, by anyone: a client connecting used to map the region with
// MAP_POPULATE, which allocated every page of it at once.
TEST(StoreFilesTest, WithoutPrefaultClientsDoNotAllocateTheWholeRegion) {
  StoreOptions o = SmallStoreOptions(int64_t{256} << 20);
  o.prefault = false;
  std::unique_ptr<Monitor> m;
  GLINT_ASSERT_OK(Monitor::Start(o, &m));
  std::unique_ptr<Client> c;
  GLINT_ASSERT_OK(Client::Connect(o.socket_path, &c));
  MutableBuffer mb;
  GLINT_ASSERT_OK(c->BuildObject(MakeId(10, 1), 4096, &mb));
  std::memset(mb.mutable_data(), 1, 4096);
  GLINT_ASSERT_OK(mb.Seal());
  struct stat st;
  ASSERT_EQ(stat(m->region_path().c_str(), &st), 0);
  const int64_t allocated = int64_t{st.st_blocks} * 512;
  EXPECT_LT(allocated, o.capacity / 8)
      << allocated << " of the region's " << st.st_size << " bytes are allocated";
}

}  // namespace
}  // namespace glint::testing
