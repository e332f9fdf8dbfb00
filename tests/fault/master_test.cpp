// The master killed (-9) in the middle of a workload through a mount: every operation the
// application saw succeed is there after the restart, fsck is clean, and the mount
// carries on by itself.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {

bool write_whole(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return false;
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return ::close(fd) == 0 && ok;
}

}  // namespace

TEST_CASE("master kill -9 during creates, renames and writes from a mount loses no acknowledged operation",
          "[fault][master]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  REQUIRE(::mkdir((m + "/w").c_str(), 0755) == 0);

  std::mutex mu;
  std::map<std::string, std::string> files;  // acknowledged: path -> content
  // A rename that failed because the master died under it may or may not have happened.
  std::map<std::string, std::pair<std::string, std::string>> either;  // old path -> (new path, content)
  std::vector<std::string> dirs;
  std::atomic<int> done{0}, failed{0};
  std::atomic<bool> stop{false};
  std::thread workload([&] {
    for (int i = 0; !stop; ++i) {
      std::string a = m + "/w/f" + std::to_string(i), b = m + "/w/g" + std::to_string(i);
      std::string d = m + "/w/d" + std::to_string(i);
      std::string data = random_bytes(1000 + i % 5000, i);
      if (!write_whole(a, data)) {
        ++failed;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      {
        std::lock_guard lock(mu);
        files[a] = data;
      }
      if (::rename(a.c_str(), b.c_str()) == 0) {
        std::lock_guard lock(mu);
        files.erase(a);
        files[b] = data;
      } else {
        std::lock_guard lock(mu);
        files.erase(a);
        either[a] = {b, data};
        ++failed;
      }
      if (::mkdir(d.c_str(), 0755) == 0) {
        std::lock_guard lock(mu);
        dirs.push_back(d);
      } else {
        ++failed;
      }
      ++done;
    }
  });
  bool started = wait_until([&] { return done >= 100; }, std::chrono::seconds(60));
  cluster.kill_master();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the master stays dead a while
  cluster.restart_master();
  const int at_restart = done;
  // The mount dials again and mounts again by itself: the workload carries on.
  bool carried_on = wait_until([&] { return done >= at_restart + 100; }, std::chrono::seconds(60));
  stop = true;
  workload.join();
  REQUIRE(started);
  REQUIRE(carried_on);
  INFO("operations done " << done << ", failed while the master was away " << failed);

  std::lock_guard lock(mu);
  for (auto& [path, data] : files) {
    INFO(path);
    REQUIRE(read_text_file(path) == data);
  }
  for (auto& [a, moved] : either) {
    INFO(a << " or " << moved.first);
    std::string content = ::access(a.c_str(), F_OK) == 0 ? read_text_file(a) : read_text_file(moved.first);
    REQUIRE(content == moved.second);
  }
  for (auto& d : dirs) {
    struct stat st;
    INFO(d);
    REQUIRE(::stat(d.c_str(), &st) == 0);
    REQUIRE(S_ISDIR(st.st_mode));
  }
  std::string out, err;
  int rc = cluster.cli({"fsck", "v"}, &out, &err);
  INFO(out << err);
  REQUIRE(rc == 0);
  REQUIRE(out.find("clean") != std::string::npos);
}

TEST_CASE("a change whose answer the master's crash swallowed is applied once when the client sends it again",
          "[fault][master][ops]") {
  for (pb::MsgType type : {pb::RENAME, pb::MKDIR, pb::UNLINK, pb::SETXATTR, pb::REMOVEXATTR, pb::APPEND}) {
    DYNAMIC_SECTION("message type " << type) {
      ClusterOptions options;
      options.chunkservers = 2;
      options.master_args = {"--crash-after-commit", std::to_string(type)};
      Cluster cluster(options);
      uint64_t root = cluster.create_volume("v", 2);
      auto c = cluster.new_client("v");
      REQUIRE(c.ok());
      const std::string data = random_bytes(5000, 1);
      uint64_t a = put_file(**c, root, "a", data);
      if (type == pb::REMOVEXATTR) REQUIRE((*c)->setxattr(a, "user.k", "v", 0).ok());
      const std::string more = random_bytes(300, 2);
      Result<uint64_t> appended = uint64_t{0};

      // The master commits the change, then dies before it answers; the client dials the
      // restarted master and sends the same change again, marked as a retry. (The master
      // is restarted from this thread: a child dies with the thread that started it.)
      Status st;
      std::thread change([&] {
        if (type == pb::RENAME) st = (*c)->rename(root, "a", root, "b");
        if (type == pb::MKDIR) st = (*c)->mkdir(root, "d", 0755).status();
        if (type == pb::UNLINK) st = (*c)->unlink(root, "a");
        if (type == pb::SETXATTR) st = (*c)->setxattr(a, "user.k", "v", 1);  // XATTR_CREATE
        if (type == pb::REMOVEXATTR) st = (*c)->removexattr(a, "user.k");
        if (type == pb::APPEND) {
          appended = (*c)->append(a, more.data(), more.size());
          st = appended.status();
        }
      });
      bool crashed = wait_until(
          [&] { return read_text_file(cluster.dir() + "/master.log").find("exiting before the answer") != std::string::npos; },
          std::chrono::seconds(20));
      cluster.kill_master();  // reaps it
      cluster.restart_master();
      change.join();
      REQUIRE(crashed);
      INFO(st.to_string());
      // Without the master remembering the change, the retry fails: ENOENT for the rename
      // and the unlink (the name is gone), EEXIST for the mkdir and the xattr made with
      // XATTR_CREATE, ENODATA for the xattr removed; an append reserves twice (a hole).
      REQUIRE(st.ok());
      auto fresh = cluster.new_client("v");
      REQUIRE(fresh.ok());
      if (type == pb::RENAME) {
        REQUIRE((*fresh)->lookup(root, "a").status().is(Code::kNotFound));
        REQUIRE(get_file(**fresh, (*fresh)->lookup(root, "b")->inode()) == data);
      }
      if (type == pb::MKDIR) REQUIRE((*fresh)->lookup(root, "d")->type() == pb::FT_DIRECTORY);
      if (type == pb::UNLINK) REQUIRE((*fresh)->lookup(root, "a").status().is(Code::kNotFound));
      if (type == pb::SETXATTR) REQUIRE(*(*fresh)->getxattr(a, "user.k") == "v");
      if (type == pb::REMOVEXATTR) REQUIRE((*fresh)->getxattr(a, "user.k").status().is(Code::kNoData));
      if (type == pb::APPEND) {
        REQUIRE(*appended == data.size());
        REQUIRE(get_file(**fresh, a) == data + more);
      }
    }
  }
}

TEST_CASE("fsync after a master power cut fails for changes the old master answered and lost, instead of "
          "vouching for them; after a kill -9 alone it succeeds",
          "[fault][master]") {
  ClusterOptions options;
  options.chunkservers = 2;
  options.powercut_disks = true;
  Cluster cluster(options);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  REQUIRE(::mkdir((m + "/kept").c_str(), 0755) == 0);
  REQUIRE(fsync_dir(m));

  // Answered by the master, which then loses its power before the WAL sync behind the
  // answer reaches the disk.
  cluster.hold_master_syncs();
  REQUIRE(::mkdir((m + "/lost").c_str(), 0755) == 0);
  cluster.power_cut_master();
  cluster.restart_master();

  // The restarted master answers the SYNC; it must not be taken for a sync of the mkdir.
  int fd = ::open(m.c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(fd >= 0);
  errno = 0;
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  CHECK(rc == -1);
  CHECK(err == EIO);
  // Seen by a mount with nothing cached: the mkdir was indeed lost, the synced one kept.
  const std::string fresh = cluster.mount("v");
  CHECK(::access((fresh + "/lost").c_str(), F_OK) != 0);
  CHECK(::access((fresh + "/kept").c_str(), F_OK) == 0);
  // Reported once: the next fsync covers only what the new master answered.
  REQUIRE(::mkdir((m + "/after").c_str(), 0755) == 0);
  CHECK(fsync_dir(m));

  // A kill -9 without a power loss loses nothing the master answered (its WAL tail is in
  // the page cache): the same boot, the same durability epoch, no error.
  cluster.hold_master_syncs();
  REQUIRE(::mkdir((m + "/survives").c_str(), 0755) == 0);
  cluster.kill_master();
  cluster.restart_master();
  CHECK(fsync_dir(m));
  CHECK(::access((cluster.mount("v") + "/survives").c_str(), F_OK) == 0);
}

TEST_CASE("a rename the master's power cut lost is forgotten at once by the mount that made it, however long it "
          "caches names",
          "[fault][master]") {
  ClusterOptions options;
  options.chunkservers = 2;
  options.powercut_disks = true;
  Cluster cluster(options);
  cluster.create_volume("v", 2);
  const std::string m = cluster.mount("v", {"--attr-timeout", "60"});
  REQUIRE(::mkdir((m + "/a").c_str(), 0755) == 0);
  REQUIRE(fsync_dir(m));
  cluster.hold_master_syncs();
  REQUIRE(::rename((m + "/a").c_str(), (m + "/b").c_str()) == 0);
  struct stat st;
  REQUIRE(::stat((m + "/b").c_str(), &st) == 0);  // the kernel caches the new name for 60 s
  cluster.power_cut_master();
  cluster.restart_master();
  CHECK_FALSE(fsync_dir(m));  // EIO: the rename may be lost, and it is
  // The kernel is told to drop the name: the master's truth shows at once.
  CHECK(wait_until([&] { return ::stat((m + "/b").c_str(), &st) != 0 && ::stat((m + "/a").c_str(), &st) == 0; },
                   std::chrono::seconds(5)));
}
