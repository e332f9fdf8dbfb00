// The integration harness: a real keelfs-master and N keelfs-chunkservers on 127.0.0.1,
// on ports the kernel picks, with data and logs in a temporary directory that goes away
// with the Cluster. Every process it starts dies with it (and with the test process, by
// PR_SET_PDEATHSIG), even when a test fails.
//
//   Cluster cluster(3);
//   auto& c = cluster.client();
//   uint64_t root = cluster.create_volume("v", 2);
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client/client.h"

namespace keelfs::test {

// A child process with its output in a log file.
struct Process {
  std::string name;
  std::vector<std::string> argv;
  std::string log;
  pid_t pid = -1;

  void start();
  void kill_now(int sig = 9);  // sends sig and reaps the process
  bool running() const { return pid > 0; }
};

// Polls `cond` until it holds or `timeout` passes; false on timeout.
bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout = std::chrono::seconds(20));

struct ClusterOptions {
  int chunkservers = 3;
  std::vector<std::string> cs_regions;   // chunkserver i's region ("default" when not given)
  std::vector<int> cs_disk_mib;          // > 0: chunkserver i's data dir is a tmpfs of this size
  std::vector<std::string> master_args;  // extra flags for keelfs-master
  // The master's client port listens here (0.0.0.0: also on the links to network
  // namespaces a test makes); the tests' own clients reach it on 127.0.0.1.
  std::string master_listen_host = "127.0.0.1";
  std::vector<std::string> cs_args;      // extra flags for every keelfs-chunkserver
  std::map<int, std::vector<std::string>> cs_args_of;  // ... and for chunkserver i only
  // The master's and every chunkserver's data directory on keelfs-test-powercut-fs
  // (tests/tools/powercut_fs.cpp): power_cut_master() / power_cut_chunkserver() then drop
  // whatever the process had not fsynced.
  bool powercut_disks = false;
};

class Cluster {
 public:
  explicit Cluster(int chunkservers = 3) : Cluster(ClusterOptions{chunkservers}) {}
  explicit Cluster(ClusterOptions options);
  ~Cluster();

  std::string master_address() const { return "127.0.0.1:" + std::to_string(client_port_); }
  std::string master_cs_address() const { return "127.0.0.1:" + std::to_string(cs_port_); }
  const std::string& dir() const { return dir_; }
  client::Client& client();
  // Creates a volume, keeps its secret in dir()/NAME.secret (where the CLI and mounts find
  // it through $KEELFS_HOME), mounts it on client() and returns its root inode.
  uint64_t create_volume(const std::string& name, uint32_t goal, const std::string& region = "",
                         uint64_t size_bytes = 0, uint64_t max_inodes = 0);
  std::string secret(const std::string& volume) const;
  // A new client (nothing cached) with `volume` mounted.
  Result<std::unique_ptr<client::Client>> new_client(const std::string& volume);

  pid_t master_pid() const { return master_.pid; }
  pid_t cs_pid(int i) const { return cs_[i].pid; }
  void kill_master();     // SIGKILL
  void restart_master();  // same ports and data; waits until every chunkserver re-registered
  void kill_chunkserver(int i);
  // kill -9, then a power cut of its data directory. REQUIRES: powercut_disks.
  void power_cut_master();
  void power_cut_chunkserver(int i);
  // From now until its power cut, the master's fsyncs make nothing durable: the cut comes
  // before any sync could finish. REQUIRES: powercut_disks.
  void hold_master_syncs();
  // Starts chunkserver i again on its data directory (a new data port); waits until it
  // registered.
  void restart_chunkserver(int i);
  void signal_chunkserver(int i, int sig);  // e.g. SIGSTOP / SIGCONT: a hung machine
  std::string cs_data_dir(int i) const;
  // The file of chunk (id, version) in chunkserver i's data directory (formats.md).
  std::string cs_chunk_path(int i, uint64_t id, uint32_t version) const;
  std::string cs_log(int i) const;
  std::string cs_address(int i) const { return cs_addresses_[i]; }
  int chunkservers() const { return static_cast<int>(cs_.size()); }

  // Runs the keelfs CLI against this cluster; returns its exit code, stdout in *out.
  int cli(const std::vector<std::string>& args, std::string* out = nullptr, std::string* err = nullptr);

  // Waits until `n` chunkservers are registered and alive.
  void wait_for_chunkservers(int n);

  // Mounts `volume` with keelfs-mount in the foreground (as a child process) on a new
  // directory and waits until the mount is live; returns the mount point. Unmounted and
  // stopped with the Cluster.
  std::string mount(const std::string& volume, const std::vector<std::string>& extra_args = {});
  void unmount(const std::string& mountpoint);
  // SIGKILLs the mount's process (a pod that died) and detaches the dead mount.
  void kill_mount(const std::string& mountpoint);

 private:
  void start_master();
  ClusterOptions options_;
  std::string dir_;
  std::string secret_file_;
  std::map<std::string, std::string> secrets_;  // volume -> secret
  std::map<std::string, std::string> regions_;  // volume -> region
  Status mount_on(client::Client& c, const std::string& volume);
  int client_port_ = 0;
  int cs_port_ = 0;
  Process master_;
  std::vector<Process> cs_;
  std::vector<std::string> cs_addresses_;
  std::vector<std::pair<std::string, Process>> mounts_;
  std::unique_ptr<client::Client> client_;
  // Data directories on keelfs-test-powercut-fs: path -> its process and the cuts so far.
  struct PowercutDisk {
    Process fs;
    int cuts = 0;
  };
  std::map<std::string, PowercutDisk> powercut_disks_;
  void mount_powercut_disk(const std::string& path);
  std::string boot_id_file() const { return dir_ + "/boot_id"; }
  void power_cut(const std::string& path);
};

// Deterministic pseudo-random bytes (fast enough for hundreds of MiB).
std::string random_bytes(size_t n, uint64_t seed);

// Writes `data` to a new file `name` in directory `parent` and flushes; returns the inode.
uint64_t put_file(client::Client& c, uint64_t parent, const std::string& name, const std::string& data);
// The volume as VOLUME_LIST shows it. REQUIRES: `c` may list volumes (cluster.client()).
pb::VolumeInfo volume_info(client::Client& c, const std::string& volume);

// Reads the whole file.
std::string get_file(client::Client& c, uint64_t ino);

std::string read_text_file(const std::string& path);

// fsync() of a directory through the kernel: whether open, fsync and close all succeeded.
bool fsync_dir(const std::string& path);

// Writes a whole file through the kernel (write, fsync, close): 0, or the errno of the
// first call that failed.
int write_file_errno(const std::string& path, const std::string& data);

// Chunk files under a chunkserver's data directory that hold data, or (with_data false)
// the empty ones: the master keeps spare chunks, created ahead of need, on the servers
// (master/spares.cpp), so tests that count copies count those holding data.
size_t chunk_files(const std::string& dir, bool with_data = true);
// The same over every chunkserver of the cluster.
size_t chunk_files(Cluster& cluster, bool with_data = true);

// True when `path` is a mount point in /proc/mounts.
bool is_mounted(const std::string& path);

// Runs a shell command line; returns its exit code, output (stdout and stderr) in *out.
int shell(const std::string& command, std::string* out = nullptr);
// The path of one of keelfs's binaries in the build.
std::string bin(const std::string& name);

}  // namespace keelfs::test
