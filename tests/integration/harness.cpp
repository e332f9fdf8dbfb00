#include "tests/integration/harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "common/auth.h"
#include "tests/integration/spawner.h"

namespace keelfs::test {
namespace fs = std::filesystem;

std::string bin(const std::string& name) {
  std::string path(KEELFS_BIN_DIR);
  path.append("/").append(name);
  return path;
}

namespace {

// Reads "PORT [PORT]" from a ready file the daemons write once they listen.
std::vector<int> read_ports(const std::string& path) {
  std::ifstream in(path);
  std::vector<int> ports;
  int p;
  while (in >> p) ports.push_back(p);
  return ports;
}

}  // namespace

std::string read_text_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Process::start() { pid = spawn(argv, log, log); }

void Process::kill_now(int sig) {
  if (pid <= 0) return;
  ::kill(pid, sig);
  wait_spawned(pid, nullptr, false);
  pid = -1;
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) {
  const int chunkservers = options_.chunkservers;
  char tmpl[] = "/tmp/keelfs-test-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  secret_file_ = dir_ + "/cluster.secret";
  // The CLI and mounts started by the tests find a volume's secret in $KEELFS_HOME.
  setenv("KEELFS_HOME", dir_.c_str(), 1);
  std::ofstream(secret_file_) << "test-secret-" << getpid() << "\n";
  if (options_.powercut_disks) mount_powercut_disk(dir_ + "/master");
  start_master();
  for (int i = 0; i < chunkservers; ++i) {
    Process cs;
    cs.name = "cs" + std::to_string(i);
    std::string data = cs_data_dir(i);
    fs::create_directories(data);
    if (options_.powercut_disks) mount_powercut_disk(data);
    if (i < static_cast<int>(options_.cs_disk_mib.size()) && options_.cs_disk_mib[i] > 0)
      REQUIRE(shell(fmt::format("mount -t tmpfs -o size={}m keelfs-test-cs {}", options_.cs_disk_mib[i], data)) == 0);
    std::string ready = dir_ + "/" + cs.name + ".ready";
    cs.log = cs_log(i);
    cs.argv = {bin("keelfs-chunkserver"), "--master", "127.0.0.1:" + std::to_string(cs_port_), "--listen",
               "127.0.0.1:0", "--data-dir", data, "--secret-file", secret_file_, "--ready-file", ready,
               "--zone", "z" + std::to_string(i), "--heartbeat-ms", "200"};
    cs.argv.insert(cs.argv.end(), options_.cs_args.begin(), options_.cs_args.end());
    if (auto own = options_.cs_args_of.find(i); own != options_.cs_args_of.end())
      cs.argv.insert(cs.argv.end(), own->second.begin(), own->second.end());
    if (i < static_cast<int>(options_.cs_regions.size())) {
      cs.argv.push_back("--region");
      cs.argv.push_back(options_.cs_regions[i]);
    }
    cs.start();
    REQUIRE(wait_until([&] { return read_ports(ready).size() == 1; }));
    cs_addresses_.push_back("127.0.0.1:" + std::to_string(read_ports(ready)[0]));
    cs_.push_back(std::move(cs));
  }
  wait_for_chunkservers(chunkservers);
}

Cluster::~Cluster() {
  for (auto& [path, proc] : mounts_) {
    shell("fusermount3 -u -z " + path + " 2>/dev/null");
    proc.kill_now(SIGKILL);
  }
  client_.reset();
  for (auto& cs : cs_) cs.kill_now(SIGKILL);
  master_.kill_now(SIGKILL);
  for (int i = 0; i < static_cast<int>(options_.cs_disk_mib.size()); ++i)
    if (options_.cs_disk_mib[i] > 0) shell("umount " + cs_data_dir(i));
  for (auto& [path, disk] : powercut_disks_) {
    shell("fusermount3 -u -z " + path + " 2>/dev/null");
    disk.fs.kill_now(SIGKILL);
  }
  std::error_code ec;
  if (getenv("KEELFS_KEEP_TEST_DIR") == nullptr) fs::remove_all(dir_, ec);
}

void Cluster::start_master() {
  std::string ready = dir_ + "/master.ready";
  fs::remove(ready);
  master_.name = "master";
  master_.log = dir_ + "/master.log";
  master_.argv = {bin("keelfs-master"),
                  "--data-dir", dir_ + "/master",
                  "--listen", options_.master_listen_host + ":" + std::to_string(client_port_),
                  "--cs-listen", "127.0.0.1:" + std::to_string(cs_port_),
                  "--secret-file", secret_file_,
                  "--ready-file", ready,
                  "--cs-timeout-ms", "3000",
                  "--session-timeout-ms", "3000"};
  // On a power-cut disk the machine's boot is the test's to name: a power cut is a new boot.
  if (options_.powercut_disks) {
    if (!fs::exists(boot_id_file())) std::ofstream(boot_id_file()) << "boot-0\n";
    master_.argv.insert(master_.argv.end(), {"--boot-id-file", boot_id_file()});
  }
  master_.argv.insert(master_.argv.end(), options_.master_args.begin(), options_.master_args.end());
  master_.start();
  REQUIRE(wait_until([&] { return read_ports(ready).size() == 2; }));
  auto ports = read_ports(ready);
  client_port_ = ports[0];
  cs_port_ = ports[1];
}

void Cluster::mount_powercut_disk(const std::string& path) {
  const std::string backing = path + ".disk";
  fs::create_directories(backing);
  fs::create_directories(path);
  PowercutDisk& disk = powercut_disks_[path];
  disk.fs.name = "powercut-fs";
  disk.fs.log = path + ".powercut.log";
  disk.fs.argv = {bin("keelfs-test-powercut-fs"), backing, path, path + ".cuts", "-f"};
  disk.fs.start();
  bool up = wait_until([&] { return is_mounted(path); });
  INFO(read_text_file(disk.fs.log));
  REQUIRE(up);
}

void Cluster::power_cut(const std::string& path) {
  auto it = powercut_disks_.find(path);
  REQUIRE(it != powercut_disks_.end());
  PowercutDisk& disk = it->second;
  ::kill(disk.fs.pid, SIGUSR1);
  const int expect = ++disk.cuts;
  REQUIRE(wait_until([&] { return read_text_file(path + ".cuts") == std::to_string(expect) + "\n"; }));
}

void Cluster::hold_master_syncs() {
  const std::string path = dir_ + "/master";
  auto it = powercut_disks_.find(path);
  REQUIRE(it != powercut_disks_.end());
  ::kill(it->second.fs.pid, SIGUSR2);
  REQUIRE(wait_until([&] { return read_text_file(path + ".cuts") == "held\n"; }));
}

void Cluster::power_cut_master() {
  kill_master();
  power_cut(dir_ + "/master");
  std::ofstream(boot_id_file()) << "boot-" << powercut_disks_[dir_ + "/master"].cuts << "\n";
}

void Cluster::power_cut_chunkserver(int i) {
  kill_chunkserver(i);
  power_cut(cs_data_dir(i));
}

void Cluster::wait_for_chunkservers(int n) {
  bool ok = wait_until([&] {
    auto list = client().cs_list();
    if (!list.ok()) return false;
    int alive = 0;
    for (auto& cs : *list) alive += cs.alive() ? 1 : 0;
    return alive >= n;
  });
  REQUIRE(ok);
}

client::Client& Cluster::client() {
  if (!client_) {
    client::ClientOptions opts;
    opts.master = master_address();
    opts.name = "integration-test";
    auto c = client::Client::connect(opts);
    REQUIRE(c.ok());
    client_ = std::move(*c);
    auto secret = read_secret_file(secret_file_);
    REQUIRE(secret.ok());
    REQUIRE(client_->admin_login(*secret).ok());  // the tests create volumes through it
    for (auto& [volume, secret] : secrets_) REQUIRE(mount_on(*client_, volume).ok());
  }
  return *client_;
}

Status Cluster::mount_on(client::Client& c, const std::string& volume) {
  client::MountRequest m;
  m.volume = volume;
  m.secret = secret(volume);
  m.region = regions_[volume];
  m.mount_point = "(integration test)";
  return c.mount(m).status();
}

Result<std::unique_ptr<client::Client>> Cluster::new_client(const std::string& volume) {
  client::ClientOptions opts;
  opts.master = master_address();
  opts.name = "integration-test";
  ASSIGN_OR_RETURN(auto c, client::Client::connect(opts));
  RETURN_IF_ERROR(mount_on(*c, volume));
  return c;
}

uint64_t Cluster::create_volume(const std::string& name, uint32_t goal, const std::string& region, uint64_t size_bytes,
                               uint64_t max_inodes) {
  pb::VolumeCreateReq req;
  req.set_name(name);
  req.set_goal(goal);
  req.set_region(region);
  req.set_size_bytes(size_bytes);
  req.set_max_inodes(max_inodes);
  auto v = client().volume_create(req);
  INFO(v.status().to_string());
  REQUIRE(v.ok());
  std::ofstream(dir_ + "/" + name + ".secret") << v->secret << "\n";
  secrets_[name] = v->secret;
  regions_[name] = v->info.region();
  // The harness's own client reaches the volume too (the tests use it to check and set up).
  Status mounted = mount_on(client(), name);
  INFO(mounted.to_string());
  REQUIRE(mounted.ok());
  return v->info.root_inode();
}

std::string Cluster::secret(const std::string& volume) const {
  auto it = secrets_.find(volume);
  return it == secrets_.end() ? "" : it->second;
}

void Cluster::kill_master() {
  client_.reset();
  master_.kill_now(SIGKILL);
}

void Cluster::restart_master() {
  start_master();
  wait_for_chunkservers(static_cast<int>(std::count_if(cs_.begin(), cs_.end(), [](auto& p) { return p.running(); })));
}

std::string Cluster::mount(const std::string& volume, const std::vector<std::string>& extra_args) {
  std::string path = dir_ + "/mnt" + std::to_string(mounts_.size());
  fs::create_directories(path);
  Process p;
  p.name = "mount";
  p.log = path + ".log";
  p.argv = {bin("keelfs-mount"), "--master", master_address(), "--volume", volume, path, "-f"};
  p.argv.insert(p.argv.end(), extra_args.begin(), extra_args.end());
  p.start();
  bool up = wait_until([&] { return is_mounted(path); });
  INFO(read_text_file(p.log));
  REQUIRE(up);
  mounts_.emplace_back(path, std::move(p));
  return path;
}

void Cluster::unmount(const std::string& mountpoint) {
  for (auto it = mounts_.begin(); it != mounts_.end(); ++it) {
    if (it->first != mountpoint) continue;
    REQUIRE(shell("fusermount3 -u " + mountpoint) == 0);
    // The mount process flushes and exits by itself once unmounted.
    pid_t pid = it->second.pid;
    int status = 0;
    REQUIRE(wait_until([&] { return wait_spawned(pid, &status, true) == pid; }));
    it->second.pid = -1;
    // A clean unmount flushed everything: the mount says so with exit status 0.
    INFO(read_text_file(it->second.log));
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    mounts_.erase(it);
    return;
  }
}

void Cluster::kill_mount(const std::string& mountpoint) {
  for (auto it = mounts_.begin(); it != mounts_.end(); ++it) {
    if (it->first != mountpoint) continue;
    it->second.kill_now(SIGKILL);
    shell("fusermount3 -u -z " + mountpoint);
    mounts_.erase(it);
    return;
  }
}

size_t chunk_files(const std::string& dir, bool with_data) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->path().filename().string().starts_with("chunk_") && it->is_regular_file(ec) &&
        (it->file_size(ec) > 0) == with_data)
      ++n;
  return n;
}

size_t chunk_files(Cluster& cluster, bool with_data) {
  size_t n = 0;
  for (int i = 0; i < cluster.chunkservers(); ++i) n += chunk_files(cluster.cs_data_dir(i), with_data);
  return n;
}

bool fsync_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return false;
  bool ok = ::fsync(fd) == 0;
  return ::close(fd) == 0 && ok;
}

int write_file_errno(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return errno;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return e;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    return e;
  }
  return ::close(fd) == 0 ? 0 : errno;
}

bool is_mounted(const std::string& path) {
  std::ifstream in("/proc/mounts");
  std::string dev, point, rest;
  while (in >> dev >> point && std::getline(in, rest))
    if (point == path) return true;
  return false;
}

int shell(const std::string& command, std::string* out) {
  std::string tmp = "/tmp/keelfs-shell-" + std::to_string(getpid()) + ".out";
  int rc = std::system(("(" + command + ") > " + tmp + " 2>&1").c_str());
  if (out) *out = read_text_file(tmp);
  fs::remove(tmp);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

void Cluster::kill_chunkserver(int i) { cs_[i].kill_now(SIGKILL); }

void Cluster::restart_chunkserver(int i) {
  std::string ready = dir_ + "/" + cs_[i].name + ".ready";
  fs::remove(ready);
  cs_[i].start();
  REQUIRE(wait_until([&] { return read_ports(ready).size() == 1; }));
  cs_addresses_[i] = "127.0.0.1:" + std::to_string(read_ports(ready)[0]);
  REQUIRE(wait_until([&] {
    auto list = client().cs_list();
    if (!list.ok()) return false;
    for (auto& cs : *list)
      if (cs.address() == cs_addresses_[i] && cs.alive()) return true;
    return false;
  }));
}
void Cluster::signal_chunkserver(int i, int sig) { ::kill(cs_[i].pid, sig); }

std::string Cluster::cs_data_dir(int i) const { return dir_ + "/cs" + std::to_string(i); }
std::string Cluster::cs_chunk_path(int i, uint64_t id, uint32_t version) const {
  return fmt::format("{}/chunks/{:02x}/chunk_{:016x}_{:08x}.dat", cs_data_dir(i), id & 0xff, id, version);
}
std::string Cluster::cs_log(int i) const { return dir_ + "/cs" + std::to_string(i) + ".log"; }

int Cluster::cli(const std::vector<std::string>& args, std::string* out, std::string* err) {
  Process p;
  p.name = "cli";
  p.argv = {bin("keelfs"), "--master", master_address()};
  p.argv.insert(p.argv.end(), args.begin(), args.end());
  std::string out_file = dir_ + "/cli.out", err_file = dir_ + "/cli.err";
  fs::remove(out_file);
  fs::remove(err_file);
  pid_t pid = spawn(p.argv, out_file, err_file);
  REQUIRE(pid > 0);
  int status = 0;
  wait_spawned(pid, &status, false);
  if (out) *out = read_text_file(out_file);
  if (err) *err = read_text_file(err_file);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    memcpy(&s[i], &x, 8);
  }
  for (; i < n; ++i) s[i] = static_cast<char>(x >> (8 * (i % 8)));
  return s;
}

uint64_t put_file(client::Client& c, uint64_t parent, const std::string& name, const std::string& data) {
  pb::CreateReq req;
  req.set_parent(parent);
  req.set_name(name);
  req.set_mode(0644);
  req.set_truncate(true);
  auto attr = c.create(req);
  REQUIRE(attr.ok());
  constexpr size_t kStep = 32u << 20;
  for (size_t off = 0; off < data.size(); off += kStep) {
    Status st = c.write(attr->inode(), off, data.data() + off, std::min(kStep, data.size() - off));
    INFO(st.to_string());
    REQUIRE(st.ok());
  }
  Status st = c.fsync(attr->inode());
  INFO(st.to_string());
  REQUIRE(st.ok());
  return attr->inode();
}

pb::VolumeInfo volume_info(client::Client& c, const std::string& volume) {
  auto vols = c.volume_list();
  REQUIRE(vols.ok());
  for (const auto& v : *vols)
    if (v.name() == volume) return v;
  FAIL("volume " << volume << " not listed");
  return {};
}

std::string get_file(client::Client& c, uint64_t ino) {
  auto attr = c.getattr(ino);
  REQUIRE(attr.ok());
  std::string out(attr->size(), '\0');
  size_t off = 0;
  while (off < out.size()) {
    auto n = c.read(ino, off, std::min<size_t>(32u << 20, out.size() - off), out.data() + off);
    INFO((n.ok() ? std::string() : n.status().to_string()));
    REQUIRE(n.ok());
    if (*n == 0) break;
    off += *n;
  }
  out.resize(off);
  return out;
}

}  // namespace keelfs::test
