// deploy/cluster.sh as a user runs it: a volume written from two mounts survives the
// whole cluster going down and coming up again.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;
namespace fs = std::filesystem;

namespace {

bool port_free(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// Five free consecutive ports: master (clients, chunkservers) and three data ports.
int free_port_range() {
  for (int attempt = 0; attempt < 200; ++attempt) {
    int base = 20000 + static_cast<int>((static_cast<unsigned>(getpid()) * 7919u + attempt * 104729u) % 30000u);
    bool all = true;
    for (int p = base; p < base + 5 && all; ++p) all = port_free(p);
    if (all) return base;
  }
  FAIL("no free port range");
  return 0;
}

struct Snapshot {
  std::string bytes;
  mode_t mode;
  off_t size;
  int64_t mtime_ns;
};

Snapshot snap(const std::string& path) {
  struct stat st;
  REQUIRE(lstat(path.c_str(), &st) == 0);
  Snapshot s{S_ISREG(st.st_mode) ? read_text_file(path) : "", st.st_mode, st.st_size,
             st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
  return s;
}

}  // namespace

TEST_CASE("deploy: a volume written from two mounts survives cluster.sh down and up", "[deploy][volumes]") {
  char tmpl[] = "/tmp/keelfs-deploy-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  const int base = free_port_range();
  const std::string env = fmt::format(
      "KEELFS_HOME={0}/home KEELFS_MOUNT={0}/mnt KEELFS_BIN={1} KEELFS_MASTER_PORT={2} KEELFS_CS_PORT={3} "
      "KEELFS_DATA_PORT_BASE={4} ",
      dir, KEELFS_BIN_DIR, base, base + 1, base + 2);
  const std::string script = env + std::string(KEELFS_SOURCE_DIR) + "/deploy/cluster.sh";
  const std::string a = dir + "/mnt", b = dir + "/mnt2";
  struct Cleanup {
    std::string script, b, dir;
    ~Cleanup() {
      shell("fusermount3 -u -z " + b + " 2>/dev/null");
      shell(script + " down");
      fs::remove_all(dir);
    }
  } cleanup{script, b, dir};

  std::string out;
  INFO(out);
  REQUIRE(shell(script + " up", &out) == 0);
  REQUIRE(is_mounted(a));
  const std::string secret = dir + "/home/default.secret";
  REQUIRE((fs::status(secret).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));

  // A second pod mounts the same volume with the secret.
  fs::create_directories(b);
  REQUIRE(shell(fmt::format("{}/keelfs-mount --master 127.0.0.1:{} --volume default --secret-file {} {}",
                            KEELFS_BIN_DIR, base, secret, b),
                &out) == 0);
  REQUIRE(is_mounted(b));

  REQUIRE(shell(fmt::format("head -c 3000000 /dev/urandom > {0}/from-a && mkdir -p {0}/dir/sub && "
                            "echo hello > {0}/dir/sub/small && chmod 640 {0}/from-a && ln -s dir/sub/small {0}/link",
                            a)) == 0);
  REQUIRE(shell(fmt::format("head -c 70000000 /dev/urandom > {0}/from-b && chmod 600 {0}/from-b && "
                            "touch -d '2001-02-03 04:05:06.789' {0}/from-b && mkdir {0}/dir-b && "
                            "ln {0}/from-b {0}/dir-b/hardlink",
                            b)) == 0);
  std::map<std::string, Snapshot> before;
  for (const char* name : {"from-a", "dir/sub/small", "link", "from-b", "dir-b/hardlink", "dir", "dir-b"})
    before[name] = snap(a + "/" + name);
  REQUIRE(before["from-a"].size == 3000000);
  REQUIRE(before["from-b"].size == 70000000);

  REQUIRE(shell("fusermount3 -u " + b) == 0);
  REQUIRE(shell(script + " down", &out) == 0);
  REQUIRE(!is_mounted(a));
  REQUIRE(shell("pgrep -f '[k]eelfs-.*" + dir + "'", &out) == 1);  // nothing of this cluster runs

  REQUIRE(shell(script + " up", &out) == 0);
  REQUIRE(is_mounted(a));
  for (auto& [name, was] : before) {
    INFO(name);
    Snapshot now = snap(a + "/" + name);
    REQUIRE(now.mode == was.mode);
    REQUIRE(now.size == was.size);
    REQUIRE(now.mtime_ns == was.mtime_ns);
    REQUIRE(now.bytes == was.bytes);
  }
  char target[256] = {};
  REQUIRE(readlink((a + "/link").c_str(), target, sizeof target - 1) > 0);
  REQUIRE(std::string(target) == "dir/sub/small");
  struct stat st;
  REQUIRE(stat((a + "/from-b").c_str(), &st) == 0);
  REQUIRE(st.st_nlink == 2);
}
