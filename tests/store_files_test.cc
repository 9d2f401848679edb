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
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>

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

TEST(StoreFilesTest, ARegionTheUserMayNotOpenIsPermissionDeniedAndKept) {
  const StoreOptions o = SmallStoreOptions(1 << 20);
  // A region a killed store left (mode 0600), then a monitor started by
  // someone else on the same socket path.
  std::string region;
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t store = fork();
  if (store == 0) {
    std::unique_ptr<Monitor> m;
    if (!Monitor::Start(o, &m).ok()) _exit(3);
    const std::string r = m->region_path();
    (void)!write(ready[1], r.data(), r.size());
    for (;;) pause();
  }
  close(ready[1]);
  char buf[256];
  const ssize_t n = read(ready[0], buf, sizeof(buf));
  close(ready[0]);
  ASSERT_GT(n, 0);
  region.assign(buf, static_cast<size_t>(n));
  kill(store, SIGKILL);
  waitpid(store, nullptr, 0);
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

}  // namespace
}  // namespace glint::testing
