// keelfs-mount: mounts one keelfs volume with FUSE.
//
//   keelfs-mount --master HOST:PORT --volume NAME MOUNTPOINT [-f] [-o opt,...]
//
// Without -f it runs in the background; the foreground process waits until the mount is
// up (or failed) and exits 0 or 1 with the reason, so scripts never see a half-mounted
// directory.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "client-fuse/fuse_ops.h"
#include "common/util.h"

using namespace keelfs;

namespace {

// Where the background child tells the waiting parent how mounting went.
int g_report_fd = -1;

void report(const std::string& message) {
  if (g_report_fd < 0) return;
  ssize_t ignored = write(g_report_fd, message.data(), message.size());
  (void)ignored;
  close(g_report_fd);
  g_report_fd = -1;
}

[[noreturn]] void fail(const std::string& message) {
  // A background child leaves the printing to the parent waiting on the report pipe.
  if (g_report_fd < 0) std::fprintf(stderr, "keelfs-mount: %s\n", message.c_str());
  spdlog::error("{}", message);
  report(message);
  _exit(1);
}

bool dir_is_empty(const std::string& path) {
  DIR* d = opendir(path.c_str());
  if (!d) return true;
  bool empty = true;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  closedir(d);
  return empty;
}

// FUSE mounts start with a 128 KiB read-ahead; sequential reads of large model files are
// several times faster with 1 MiB (the kernel caps max_readahead at the bdi's value).
// REQUIRES: `real` is the mount point's canonical path, taken before mounting: resolving
// it now would ask this very process, which is not serving requests yet.
void raise_readahead(const std::string& real) {
  std::ifstream info("/proc/self/mountinfo");
  std::string line;
  while (std::getline(info, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point != real) continue;
    std::ofstream out("/sys/class/bdi/" + dev + "/read_ahead_kb");
    if (out) out << 1024;
  }
}

// Splits "-o a,b=c" values; keelfs's own options are taken out, the rest go to FUSE.
std::string take_own_options(const std::vector<std::string>& opts, fuse::MountOptions* mount_opts) {
  std::string fuse_opts;
  for (const auto& group : opts) {
    std::stringstream ss(group);
    std::string opt;
    while (std::getline(ss, opt, ',')) {
      if (opt.empty()) continue;
      if (opt.rfind("attr_timeout=", 0) == 0) {
        mount_opts->attr_timeout = std::stod(opt.substr(13));
      } else if (opt.rfind("entry_timeout=", 0) == 0) {
        mount_opts->entry_timeout = std::stod(opt.substr(14));
      } else if (opt.rfind("poll_us=", 0) == 0) {
        mount_opts->poll_us = std::stoi(opt.substr(8));
      } else {
        fuse_opts += "," + opt;
      }
    }
  }
  return fuse_opts;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keelfs-mount: mount a keelfs volume"};
  std::string master = "127.0.0.1:9520", volume, mountpoint, log_file, log_level = "info";
  bool foreground = false;
  std::vector<std::string> opts;
  fuse::MountOptions mount_opts;
  app.add_option("--master", master, "master address HOST:PORT")->capture_default_str();
  app.add_option("--volume", volume, "volume to mount")->required();
  std::string secret_file, region;
  app.add_option("--secret-file", secret_file,
                 "file holding the volume's secret (else $KEELFS_SECRET, $KEELFS_SECRET_FILE or "
                 "$KEELFS_HOME/VOLUME.secret)");
  app.add_option("--region", region,
                 "this host's region (else $KEELFS_REGION, /etc/keelfs/region or 'default'); a volume of "
                 "another region is refused");
  app.add_option("MOUNTPOINT", mountpoint, "directory to mount on")->required();
  app.add_flag("-f,--foreground", foreground, "stay in the foreground, log to stderr");
  app.add_option("-o", opts, "mount options: attr_timeout=SEC, entry_timeout=SEC, and FUSE options");
  app.add_option("--attr-timeout", mount_opts.attr_timeout,
                 "seconds attributes and names are cached (changes by other mounts show after at most this)")
      ->capture_default_str();
  app.add_option("--log-file", log_file, "log file (default: stderr with -f, else syslog-style file in /tmp)");
  app.add_option("--log-level", log_level)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  mount_opts.entry_timeout = mount_opts.attr_timeout;
  std::string fuse_opts;
  try {
    fuse_opts = take_own_options(opts, &mount_opts);
  } catch (const std::exception&) {
    fail("bad mount option value in -o");
  }

  client::MountRequest mount_req;
  mount_req.volume = volume;
  mount_req.region = client::host_region(region);
  auto secret = client::find_volume_secret(volume, secret_file);
  if (!secret.ok()) fail(secret.status().message());
  mount_req.secret = *secret;

  struct stat st;
  if (stat(mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    fail(fmt::format("mount point {} is not a directory", mountpoint));
  char real[PATH_MAX];
  std::string real_mountpoint = realpath(mountpoint.c_str(), real) ? real : mountpoint;
  if (!dir_is_empty(mountpoint))
    std::fprintf(stderr, "keelfs-mount: warning: %s is not empty; the mount hides its files\n", mountpoint.c_str());

  if (!foreground) {
    int fds[2];
    if (pipe(fds) != 0) fail("pipe failed");
    pid_t pid = fork();
    if (pid < 0) fail("fork failed");
    if (pid > 0) {
      close(fds[1]);
      std::string message;
      char buf[512];
      ssize_t n;
      while ((n = read(fds[0], buf, sizeof buf)) > 0) message.append(buf, n);
      if (message == "OK") return 0;
      if (message.empty()) message = "the mount process died while starting";
      std::fprintf(stderr, "keelfs-mount: %s\n", message.c_str());
      return 1;
    }
    close(fds[0]);
    g_report_fd = fds[1];
    setsid();
    if (log_file.empty()) log_file = fmt::format("/tmp/keelfs-mount-{}.log", volume);
  }
  setup_logging("mount", log_file, log_level);

  client::ClientOptions copts;
  copts.master = master;
  copts.name = fmt::format("keelfs-mount@{}:{}", host_name(), mountpoint);
  auto client = client::Client::connect(copts);
  if (!client.ok()) fail(client.status().message());
  mount_req.mount_point = real_mountpoint;
  auto mounted = (*client)->mount(mount_req);
  if (!mounted.ok()) fail(mounted.status().message());
  fuse::Mount mount(**client, mounted->volume().root_inode(), mount_opts);

  std::string all_opts = "fsname=keelfs:" + volume + ",subtype=keelfs,default_permissions,max_read=1048576" +
                         (getuid() == 0 ? ",allow_other" : "") + fuse_opts;
  std::vector<std::string> fuse_argv_s = {"keelfs-mount", "-o", all_opts};
  std::vector<char*> fuse_argv;
  for (auto& s : fuse_argv_s) fuse_argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(fuse_argv.size()), fuse_argv.data());
  fuse_session* se = fuse_session_new(&args, &fuse::operations(), sizeof(fuse_lowlevel_ops), &mount);
  if (!se) fail("cannot create the FUSE session (bad -o option?)");
  // libfuse's handlers end the session on SIGINT/SIGTERM/SIGHUP until serve() takes the
  // signals over; they also ignore SIGPIPE.
  if (fuse_set_signal_handlers(se) != 0) fail("cannot install signal handlers");
  if (fuse_session_mount(se, mountpoint.c_str()) != 0) fail(fmt::format("cannot mount on {}", mountpoint));
  raise_readahead(real_mountpoint);
  spdlog::info("volume '{}' mounted on {} (master {})", volume, mountpoint, master);

  if (!foreground) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
    if (chdir("/") != 0) spdlog::warn("chdir / failed");
  }
  report("OK");

  // Requests are served on the client's own thread (client-fuse/fuse_ops.h); this
  // thread waits until the volume is unmounted or a signal ends the session.
  int rc = mount.serve(se);

  // Whatever is still buffered goes out before the process ends.
  Status flushed = (*client)->flush_all();
  if (!flushed.ok()) spdlog::error("flushing at unmount: {}", flushed.message());
  fuse_remove_signal_handlers(se);
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  spdlog::info("volume '{}' unmounted from {}", volume, mountpoint);
  return rc == 0 && flushed.ok() ? 0 : 1;
}
