// Copyright (c) glint authors.
//
// StoreOptions::hugepages. Whether shared memory gets huge pages is the
// file system's decision (a tmpfs mount's huge= option), so each test
// mounts a small tmpfs of its own with the option it needs: as root, which
// the CI is; elsewhere the tests say why they cannot run.

#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <mutex>

#include "core/os.h"
#include "tests/test_util.h"

namespace glint::testing {
namespace {

// A tmpfs mounted with `huge=<mode>` in a fresh directory for one test.
class HugepagesTest : public ::testing::Test {
 protected:
  void Mount(const char* mode) {
    char tmpl[] = "/tmp/glint-test-huge-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    const std::string opts = std::string("size=256m,huge=") + mode;
    if (mount("tmpfs", dir_.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      const int err = errno;
      rmdir(dir_.c_str());
      dir_.clear();
      GTEST_SKIP() << "cannot mount a tmpfs with " << opts << " (needs root): "
                   << std::strerror(err);
    }
    mounted_ = true;
  }
  void TearDown() override {
    monitor_.reset();
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  // Starts a store in the mounted directory, keeping its log lines.
  Status Start(bool hugepages, bool prefault = true) {
    options_ = SmallStoreOptions(int64_t{16} << 20);
    options_.shm_dir = dir_;
    options_.hugepages = hugepages;
    options_.prefault = prefault;
    return StartWithOptions();
  }
  // Starts a store with options_ as they are, keeping its log lines.
  Status StartWithOptions() {
    options_.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> l(log_mu_);
      log_ += line + "\n";
    };
    return Monitor::Start(options_, &monitor_);
  }
  std::string Log() {
    std::lock_guard<std::mutex> l(log_mu_);
    return log_;
  }
  // Builds and seals a 1 MiB object through a new client, and answers how
  // many KiB of that client's mapping of the region huge pages map.
  static int64_t HugeKibOfANewClient(const std::string& socket, const ObjectId& id) {
    std::unique_ptr<Client> c;
    if (!Client::Connect(socket, &c).ok()) return -2;
    MutableBuffer mb;
    if (!c->BuildObject(id, 1 << 20, &mb).ok()) return -3;
    std::memset(mb.mutable_data(), 0x5a, 1 << 20);
    const int64_t kib = os::HugeMappedKib(mb.data());
    if (!mb.Seal().ok()) return -4;
    return kib;
  }

  std::string dir_;
  bool mounted_ = false;
  StoreOptions options_;
  std::unique_ptr<Monitor> monitor_;
  std::mutex log_mu_;
  std::string log_;
};

TEST_F(HugepagesTest, StoreAndEveryClientMapTheRegionWithHugePages) {
  Mount("advise");
  if (IsSkipped()) return;
  GLINT_ASSERT_OK(Start(/*hugepages=*/true));
  EXPECT_NE(Log().find("the region is on huge pages"), std::string::npos) << Log();
  EXPECT_EQ(Log().find("warning"), std::string::npos) << Log();

  // A client in this process, and one in a child (its own mapping).
  const ObjectId here = ObjectId::Random(), there = ObjectId::Random();
  EXPECT_GE(HugeKibOfANewClient(options_.socket_path, here), 2048);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    _exit(HugeKibOfANewClient(options_.socket_path, there) >= 2048 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the child's client did not map the region with huge pages";

  // Both objects are whole and readable.
  std::unique_ptr<Client> c;
  GLINT_ASSERT_OK(Client::Connect(options_.socket_path, &c));
  for (const ObjectId& id : {here, there}) {
    Buffer b;
    GLINT_ASSERT_OK(c->GetObject(id, &b, 0));
    ASSERT_EQ(b.size(), 1 << 20);
    EXPECT_EQ(b.data()[0], 0x5a);
    EXPECT_EQ(b.data()[(1 << 20) - 1], 0x5a);
  }
}

TEST_F(HugepagesTest, WithoutPrefaultAClientsFirstTouchTakesAHugePage) {
  Mount("advise");
  if (IsSkipped()) return;
  GLINT_ASSERT_OK(Start(/*hugepages=*/true, /*prefault=*/false));
  EXPECT_EQ(Log().find("warning"), std::string::npos) << Log();
  EXPECT_GE(HugeKibOfANewClient(options_.socket_path, ObjectId::Random()), 2048);
}

TEST_F(HugepagesTest, AStoreThatDidNotAskKeepsNormalPages) {
  Mount("advise");
  if (IsSkipped()) return;
  GLINT_ASSERT_OK(Start(/*hugepages=*/false, /*prefault=*/false));
  EXPECT_EQ(HugeKibOfANewClient(options_.socket_path, ObjectId::Random()), 0);
}

TEST_F(HugepagesTest, AFileSystemWithoutHugePagesGetsAWarningAndAWorkingStore) {
  Mount("never");
  if (IsSkipped()) return;
  GLINT_ASSERT_OK(Start(/*hugepages=*/true));
  const std::string log = Log();
  EXPECT_NE(log.find("warning: huge pages were asked"), std::string::npos) << log;
  EXPECT_NE(log.find("huge=advise"), std::string::npos) << log;  // says what to do
  EXPECT_NE(log.find(dir_), std::string::npos) << log;
  const ObjectId id = ObjectId::Random();
  EXPECT_EQ(HugeKibOfANewClient(options_.socket_path, id), 0);
  std::unique_ptr<Client> c;
  GLINT_ASSERT_OK(Client::Connect(options_.socket_path, &c));
  Buffer b;
  GLINT_ASSERT_OK(c->GetObject(id, &b, 0));
  EXPECT_EQ(b.data()[12345], 0x5a);
}

// A monitor of a huge-page store killed with SIGKILL: the next one
// re-attaches the region (its flags still say huge pages), logs that it is
// on huge pages, keeps the object, and a new client maps it with them.
TEST_F(HugepagesTest, ARestartedMonitorReattachesAHugePageStore) {
  Mount("advise");
  if (IsSkipped()) return;
  options_ = SmallStoreOptions(int64_t{16} << 20);
  options_.shm_dir = dir_;
  options_.hugepages = true;
  const ObjectId kept = ObjectId::Random();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t owner = fork();
  ASSERT_GE(owner, 0);
  if (owner == 0) {
    close(ready[0]);
    std::unique_ptr<Monitor> m;
    if (!Monitor::Start(options_, &m).ok()) _exit(1);
    if (HugeKibOfANewClient(options_.socket_path, kept) < 2048) _exit(2);
    const char ok = 'k';
    if (write(ready[1], &ok, 1) != 1) _exit(3);
    for (;;) pause();  // until SIGKILL: no cleanup runs
  }
  close(ready[1]);
  char got = 0;
  const bool started = read(ready[0], &got, 1) == 1 && got == 'k';
  close(ready[0]);
  kill(owner, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(owner, &status, 0), owner);
  ASSERT_TRUE(started) << "the first monitor did not start a huge-page store (exit "
                       << (WIFEXITED(status) ? WEXITSTATUS(status) : -1) << ")";

  GLINT_ASSERT_OK(StartWithOptions());  // the same socket and directory
  EXPECT_TRUE(monitor_->reattached());
  EXPECT_NE(Log().find("the region is on huge pages"), std::string::npos) << Log();
  EXPECT_EQ(Log().find("warning"), std::string::npos) << Log();
  EXPECT_GE(HugeKibOfANewClient(options_.socket_path, ObjectId::Random()), 2048);
  std::unique_ptr<Client> c;
  GLINT_ASSERT_OK(Client::Connect(options_.socket_path, &c));
  Buffer b;
  GLINT_ASSERT_OK(c->GetObject(kept, &b, 0));
  ASSERT_EQ(b.size(), 1 << 20);
  EXPECT_EQ(b.data()[0], 0x5a);
  EXPECT_EQ(b.data()[(1 << 20) - 1], 0x5a);
}

}  // namespace
}  // namespace glint::testing
