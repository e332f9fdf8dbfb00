// Network volumes: lifecycle, regions, secrets, quotas, capacity and sessions, through
// the real CLI, real mounts and a real master and chunkservers.
#include <fcntl.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/util.h"
#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t MiB = 1 << 20;

const std::string kMountBin = std::string(KEELFS_BIN_DIR) + "/keelfs-mount";

std::string read_all(const std::string& path) { return read_text_file(path); }

json cli_json(Cluster& cluster, std::vector<std::string> args) {
  args.insert(args.begin(), "--json");
  std::string out, err;
  int rc = cluster.cli(args, &out, &err);
  INFO(out << err);
  REQUIRE(rc == 0);
  return json::parse(out);
}

}  // namespace

TEST_CASE("volumes: create, info, resize and rm, refused while a session is attached", "[volumes]") {
  Cluster cluster(3);
  std::string out, err;
  std::string secret = cluster.dir() + "/data.secret";
  REQUIRE(cluster.cli({"volume", "create", "data", "--size", "64M", "--inodes", "1000", "--goal", "2", "--save-secret",
                       secret},
                      &out, &err) == 0);
  REQUIRE(out.find("size 64.0 MiB, inodes 1000") != std::string::npos);
  REQUIRE(out.find("secret saved in " + secret) != std::string::npos);
  const fs::perms mode = fs::status(secret).permissions() & fs::perms::all;
  REQUIRE((mode == (fs::perms::owner_read | fs::perms::owner_write)));

  // Names are checked, duplicates refused, with one line saying why.
  REQUIRE(cluster.cli({"volume", "create", "data"}, &out, &err) == 1);
  REQUIRE(err.find("volume 'data' already exists") != std::string::npos);
  for (const std::string& bad : std::vector<std::string>{"UPPER", ".dot", "a/b", std::string(64, 'x')}) {
    INFO(bad);
    REQUIRE(cluster.cli({"volume", "create", bad}, &out, &err) == 1);
    REQUIRE(err.find(bad) != std::string::npos);
  }

  std::string m = cluster.mount("data");
  std::string data = random_bytes(3 * MiB, 1);
  REQUIRE(write_file_errno(m + "/f", data) == 0);

  json info = cli_json(cluster, {"volume", "info", "data"});
  REQUIRE(info["region"] == "default");
  REQUIRE(info["size_bytes"] == 64 * MiB);
  REQUIRE(info["max_inodes"] == 1000);
  REQUIRE(info["goal"] == 2);
  REQUIRE(info["logical_bytes"] == 3 * MiB);
  REQUIRE(info["physical_bytes"] == 2 * 3 * MiB);
  REQUIRE(info["files"] == 1);
  REQUIRE(info["created"].get<int64_t>() > 1600000000);
  REQUIRE(info["sessions"].size() == 1);
  REQUIRE(info["sessions"][0]["mount_point"] == m);
  REQUIRE(info["sessions"][0]["pid"].get<int>() > 0);

  // Resizing never goes below what the volume holds; df follows the size.
  REQUIRE(cluster.cli({"volume", "resize", "data", "1M"}, &out, &err) == 1);
  REQUIRE(err.find("cannot shrink") != std::string::npos);
  REQUIRE(cluster.cli({"volume", "resize", "data", "128M"}, &out, &err) == 0);
  struct statvfs sv;
  REQUIRE(statvfs(m.c_str(), &sv) == 0);
  REQUIRE(static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize == 128 * MiB);
  REQUIRE(static_cast<uint64_t>(sv.f_blocks - sv.f_bfree) * sv.f_frsize == 3 * MiB);

  // rm is refused while the mount is attached, and names it.
  REQUIRE(cluster.cli({"volume", "rm", "data"}, &out, &err) == 1);
  INFO(err);
  REQUIRE(err.find("session") != std::string::npos);
  REQUIRE(err.find(m) != std::string::npos);
  REQUIRE(read_all(m + "/f") == data);

  // Unmounted, it goes with every chunk of it.
  cluster.unmount(m);
  REQUIRE(chunk_files(cluster) == 2);
  REQUIRE(cluster.cli({"volume", "rm", "data"}, &out, &err) == 0);
  REQUIRE(wait_until([&] { return chunk_files(cluster) == 0; }));
  REQUIRE(cli_json(cluster, {"volume", "ls"}).empty());
  REQUIRE(cluster.cli({"volume", "info", "data"}, &out, &err) == 1);
  REQUIRE(err.find("volume 'data' does not exist") != std::string::npos);
}

TEST_CASE("volumes: a pod of another region is refused and chunks stay in the volume's region", "[volumes]") {
  ClusterOptions opts;
  opts.chunkservers = 3;
  opts.cs_regions = {"eu-1", "eu-1", "us-2"};
  Cluster cluster(opts);
  cluster.create_volume("eu", 2, "eu-1");
  std::string dir = cluster.dir() + "/m";
  fs::create_directories(dir);
  std::string out;
  std::string mount = kMountBin + " --master " + cluster.master_address() + " --volume eu ";
  REQUIRE(shell(mount + "--region us-2 " + dir, &out) == 1);
  REQUIRE(out.find("volume eu is in region eu-1; this host is in us-2") != std::string::npos);
  REQUIRE(!is_mounted(dir));
  // A host with no region configured is in "default".
  REQUIRE(shell("KEELFS_REGION= " + mount + dir, &out) == 1);
  REQUIRE(out.find("this host is in default") != std::string::npos);
  REQUIRE(!is_mounted(dir));
  REQUIRE(read_text_file(cluster.dir() + "/master.log").find("refused: host is in region us-2") != std::string::npos);

  // From its own region it mounts; every chunk lands on the region's two servers.
  std::string m = cluster.mount("eu", {"--region", "eu-1"});
  for (int i = 0; i < 6; ++i) REQUIRE(write_file_errno(m + "/f" + std::to_string(i), random_bytes(MiB, i)) == 0);
  std::set<std::string> eu{cluster.cs_address(0), cluster.cs_address(1)};
  for (int i = 0; i < 6; ++i) {
    json st = cli_json(cluster, {"--region", "eu-1", "stat", "eu:/f" + std::to_string(i)});
    REQUIRE(st["chunks"].size() == 1);
    std::set<std::string> where;
    for (auto& r : st["chunks"][0]["replicas"]) where.insert(r.get<std::string>());
    REQUIRE(where == eu);
  }

  // A region with one server still takes writes at goal 2, and health says under goal.
  uint64_t us_root = cluster.create_volume("us", 2, "us-2");
  uint64_t ino = put_file(cluster.client(), us_root, "f", random_bytes(MiB, 9));
  auto located = cluster.client().locate(ino);
  REQUIRE(located.ok());
  REQUIRE(located->chunks(0).replicas_size() == 1);
  REQUIRE(located->chunks(0).replicas(0).address() == cluster.cs_address(2));
  REQUIRE(get_file(cluster.client(), ino) == random_bytes(MiB, 9));
  auto health = cluster.client().health();
  REQUIRE(health.ok());
  REQUIRE(health->under_goal() == 1);
}

TEST_CASE("volumes: a wrong or missing secret is refused and logged, one volume's secret opens no other", "[volumes]") {
  Cluster cluster(2);
  cluster.create_volume("a", 2);
  uint64_t b_root = cluster.create_volume("b", 2);
  uint64_t b_file = put_file(cluster.client(), b_root, "secret-data", random_bytes(100000, 3));

  std::string dir = cluster.dir() + "/m";
  fs::create_directories(dir);
  std::string wrong = cluster.dir() + "/wrong.secret";
  std::ofstream(wrong) << cluster.secret("b") << "\n";  // a real secret, of the other volume
  std::string out;
  std::string mount = kMountBin + " --master " + cluster.master_address() + " --volume a ";
  REQUIRE(shell(mount + "--secret-file " + wrong + " " + dir, &out) == 1);
  REQUIRE(out.find("wrong secret for volume 'a'") != std::string::npos);
  REQUIRE(!is_mounted(dir));
  REQUIRE(shell("KEELFS_HOME=/nonexistent " + mount + dir, &out) == 1);
  REQUIRE(out.find("volume 'a' needs its secret") != std::string::npos);
  REQUIRE(!is_mounted(dir));
  std::string log = read_text_file(cluster.dir() + "/master.log");
  REQUIRE(log.find("mount of volume 'a'") != std::string::npos);
  REQUIRE(log.find("refused: wrong secret") != std::string::npos);
  REQUIRE(log.find("refused: no secret") != std::string::npos);
  // The secret from the environment works.
  REQUIRE(shell("KEELFS_HOME=/nonexistent KEELFS_SECRET=" + cluster.secret("a") + " " + mount + dir, &out) == 0);
  REQUIRE(is_mounted(dir));
  REQUIRE(shell("fusermount3 -u " + dir) == 0);

  // A client holding a's secret reaches nothing of b: no attributes, no chunk tickets.
  auto only_a = cluster.new_client("a");
  REQUIRE(only_a.ok());
  auto attr = (*only_a)->getattr(b_file);
  REQUIRE(attr.status().is(Code::kNoSession));
  REQUIRE((*only_a)->locate(b_file).status().is(Code::kNoSession));
  REQUIRE((*only_a)->lookup(b_root, "secret-data").status().is(Code::kNoSession));
  std::string buf(100, '\0');
  REQUIRE(!(*only_a)->read(b_file, 0, buf.size(), buf.data()).ok());
  bool refused = !(*only_a)->write(b_file, 0, "x", 1).ok() || !(*only_a)->flush(b_file).ok();
  REQUIRE(refused);
  REQUIRE(get_file(cluster.client(), b_file) == random_bytes(100000, 3));
}

TEST_CASE("volumes: writing past the size is EDQUOT, creating past the inode limit too, nothing is lost", "[volumes]") {
  Cluster cluster(2);
  uint64_t root = cluster.create_volume("q", 2, "", 8 * MiB, 20);
  std::string m = cluster.mount("q");
  std::string keep = random_bytes(5 * MiB, 1);
  REQUIRE(write_file_errno(m + "/keep", keep) == 0);

  struct statvfs sv;
  REQUIRE(statvfs(m.c_str(), &sv) == 0);
  REQUIRE(static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize == 8 * MiB);
  REQUIRE(static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize == 3 * MiB);

  // 10 MiB do not fit in the 3 MiB left: write() itself says EDQUOT once the bytes would
  // pass the size (not the close, after they went out); what it took stays, within the size.
  const std::string big_data = random_bytes(10 * MiB, 2);
  int fd = ::open((m + "/big").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  size_t taken = 0;
  int write_errno = 0;
  while (taken < big_data.size()) {
    ssize_t n = ::write(fd, big_data.data() + taken, big_data.size() - taken);
    if (n < 0) {
      write_errno = errno;
      break;
    }
    taken += static_cast<size_t>(n);
  }
  REQUIRE(write_errno == EDQUOT);
  REQUIRE(taken <= 3 * MiB);
  REQUIRE(::close(fd) == 0);
  REQUIRE(read_all(m + "/keep") == keep);
  auto big = cluster.client().resolve(root, "/big");
  REQUIRE(big.ok());
  REQUIRE(big->size() == taken);
  REQUIRE(read_all(m + "/big") == big_data.substr(0, taken));
  REQUIRE(::truncate((m + "/big").c_str(), 0) == 0);
  // What fits still goes in; truncating past the size is refused as well.
  REQUIRE(write_file_errno(m + "/small", random_bytes(MiB, 3)) == 0);
  REQUIRE(truncate((m + "/small").c_str(), 100 * MiB) == -1);
  REQUIRE(errno == EDQUOT);
  REQUIRE(read_all(m + "/small") == random_bytes(MiB, 3));

  // Inodes: 3 files so far; the 20th inode is the last one.
  int made = 3;
  int last_errno = 0;
  for (int i = 0; i < 30; ++i) {
    int fd = ::open((m + "/n" + std::to_string(i)).c_str(), O_WRONLY | O_CREAT, 0644);
    if (fd < 0) {
      last_errno = errno;
      break;
    }
    ::close(fd);
    ++made;
  }
  REQUIRE(made == 20);
  REQUIRE(last_errno == EDQUOT);
  REQUIRE(::mkdir((m + "/dir").c_str(), 0755) == -1);
  REQUIRE(errno == EDQUOT);
  // Freeing makes room again.
  REQUIRE(::unlink((m + "/n0").c_str()) == 0);
  REQUIRE(::mkdir((m + "/dir").c_str(), 0755) == 0);
  REQUIRE(read_all(m + "/keep") == keep);
}

TEST_CASE("sessions: session ls shows every mount, a dead pod's session expires, an unmount ends it at once",
          "[volumes][sessions]") {
  Cluster cluster(2);
  cluster.create_volume("v", 2);
  std::string a = cluster.mount("v");
  std::string b = cluster.mount("v");
  auto mount_points = [&] {
    std::map<std::string, json> by_point;
    for (auto& s : cli_json(cluster, {"session", "ls", "--volume", "v"}))
      by_point[s["mount_point"].get<std::string>()] = s;
    return by_point;
  };
  auto sessions = mount_points();
  REQUIRE(sessions.count(a) == 1);
  REQUIRE(sessions.count(b) == 1);
  for (auto& p : {a, b}) {
    json& s = sessions[p];
    REQUIRE(s["host"].get<std::string>() == host_name());
    REQUIRE(s["pid"].get<int>() > 0);
    REQUIRE(s["region"] == "default");
    REQUIRE(s["client_version"] == "0.1.0");
    REQUIRE(s["connected"] == true);
    REQUIRE(s["since"].get<int64_t>() > 1600000000);
    REQUIRE(s["last_heartbeat_ms_ago"].get<int64_t>() < 3000);
  }
  std::string text;
  REQUIRE(cluster.cli({"session", "ls"}, &text) == 0);
  for (const char* column : {"SESSION", "VOLUME", "HOST", "MOUNT POINT", "PID", "REGION", "VERSION", "SINCE", "HEARD"})
    REQUIRE(text.find(column) != std::string::npos);

  // A clean unmount ends its session before the mount process exits.
  cluster.unmount(b);
  REQUIRE(mount_points().count(b) == 0);

  // A hung pod (SIGSTOP) is not heard from: its session expires. When it wakes up, it
  // mounts again by itself and carries on.
  pid_t pid_a = sessions[a]["pid"].get<pid_t>();
  uint64_t old_id = std::stoull(sessions[a]["id"].get<std::string>(), nullptr, 16);
  REQUIRE(::kill(pid_a, SIGSTOP) == 0);
  bool expired = wait_until([&] { return mount_points().count(a) == 0; }, std::chrono::seconds(10));
  REQUIRE(::kill(pid_a, SIGCONT) == 0);
  REQUIRE(expired);
  REQUIRE(write_file_errno(a + "/after-stop", "still here") == 0);
  REQUIRE(read_all(a + "/after-stop") == "still here");
  sessions = mount_points();
  REQUIRE(sessions.count(a) == 1);
  REQUIRE(std::stoull(sessions[a]["id"].get<std::string>(), nullptr, 16) != old_id);

  // A pod that dies: its session waits, disconnected, then expires (3 s in the tests).
  cluster.kill_mount(a);
  REQUIRE(wait_until([&] {
    auto s = mount_points();
    return s.count(a) == 1 && s[a]["connected"] == false;
  }, std::chrono::seconds(5)));
  REQUIRE(wait_until([&] { return mount_points().count(a) == 0; }, std::chrono::seconds(10)));
  REQUIRE(read_text_file(cluster.dir() + "/master.log").find("expired") != std::string::npos);
}

TEST_CASE("chunkservers join only with the cluster secret", "[volumes]") {
  Cluster cluster(1);
  std::string other = cluster.dir() + "/other.secret";
  std::ofstream(other) << "not-this-cluster's-secret\n";
  fs::create_directories(cluster.dir() + "/intruder");
  Process cs;
  cs.name = "intruder";
  cs.log = cluster.dir() + "/intruder.log";
  cs.argv = {std::string(KEELFS_BIN_DIR) + "/keelfs-chunkserver", "--master", cluster.master_cs_address(), "--listen",
             "127.0.0.1:0", "--data-dir", cluster.dir() + "/intruder", "--secret-file", other, "--heartbeat-ms", "200"};
  cs.start();
  bool refused = wait_until([&] {
    return read_text_file(cluster.dir() + "/master.log").find("refused: chunkserver login is not signed with this cluster's secret") !=
           std::string::npos;
  });
  auto servers = cluster.client().cs_list();
  cs.kill_now(SIGKILL);
  REQUIRE(refused);
  REQUIRE(servers.ok());
  REQUIRE(servers->size() == 1);
}

TEST_CASE("administration, changes and listings alike, needs the cluster secret; the monitoring key only reads",
          "[volumes]") {
  Cluster cluster(2);
  cluster.create_volume("v", 2);
  std::string out, err;
  const std::string keelfs = std::string(KEELFS_BIN_DIR) + "/keelfs --master " + cluster.master_address();
  // No cluster secret at hand: changes are refused, and so are the listings and the
  // cluster-wide walks (health, fsck), which also cost the master work.
  for (const std::string& cmd :
       std::vector<std::string>{"volume create w", "volume resize v 1G", "volume rm v", "cs drain " + cluster.cs_address(0),
                                "volume ls", "session ls", "cs ls", "health", "fsck v"}) {
    INFO(cmd);
    REQUIRE(shell("KEELFS_HOME=/nonexistent " + keelfs + " " + cmd, &out) == 1);
    REQUIRE(out.find("needs the cluster secret") != std::string::npos);
  }
  // A wrong one is refused at login, and logged.
  std::string wrong = cluster.dir() + "/wrong-cluster.secret";
  std::ofstream(wrong) << "guess\n";
  REQUIRE(shell(keelfs + " --cluster-secret-file " + wrong + " volume rm v", &out) == 1);
  REQUIRE(out.find("admin login is not signed with this cluster's secret") != std::string::npos);
  REQUIRE(read_text_file(cluster.dir() + "/master.log").find("admin login from") != std::string::npos);
  REQUIRE(cli_json(cluster, {"volume", "ls"}).size() == 1);
  // With it (found in $KEELFS_HOME, as cluster.sh keeps it) the same commands work.
  REQUIRE(cluster.cli({"volume", "create", "w"}, &out, &err) == 0);
  REQUIRE(cluster.cli({"volume", "rm", "w"}, &out, &err) == 0);

  // The monitoring key, derived from the secret, reads and changes nothing.
  REQUIRE(cluster.cli({"monitor-key"}, &out, &err) == 0);
  REQUIRE(out.size() == 65);
  const std::string key_file = cluster.dir() + "/monitor.key";
  std::ofstream(key_file) << out;
  const std::string monitor = "KEELFS_HOME=/nonexistent " + keelfs + " --monitor-key-file " + key_file + " ";
  for (const std::string& cmd : std::vector<std::string>{"volume ls", "session ls", "cs ls", "health", "fsck v"}) {
    INFO(cmd);
    REQUIRE(shell(monitor + cmd, &out) == 0);
  }
  for (const std::string& cmd : std::vector<std::string>{"volume create w", "volume rm v", "cs drain " + cluster.cs_address(0)}) {
    INFO(cmd);
    REQUIRE(shell(monitor + cmd, &out) == 1);
    REQUIRE(out.find("the monitoring key may only read") != std::string::npos);
  }
  REQUIRE(cli_json(cluster, {"volume", "ls"}).size() == 1);
}
