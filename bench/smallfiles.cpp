// keelfs-bench smallfiles PATH: the small-file workload of a dataset (images, shards,
// source trees) against any mount, with the bytes it costs on disk when PATH is on keelfs.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "bench/posix_bench.h"
#include "bench/report.h"
#include "client/client.h"

namespace keelfs::bench {
namespace {

// File i's bytes: different for every file and size, cheap to make and to check.
std::string file_bytes(int i, uint64_t size) {
  std::string out(size, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i + 1) + size;
  for (uint64_t k = 0; k < size; ++k) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[k] = static_cast<char>(x);
  }
  return out;
}

int write_whole(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return errno;
  ssize_t n = data.empty() ? 0 : ::write(fd, data.data(), data.size());
  int err = n == static_cast<ssize_t>(data.size()) ? 0 : (n < 0 ? errno : EIO);
  if (::close(fd) != 0 && err == 0) err = errno;
  return err;
}

int read_and_check(const std::string& path, const std::string& expect) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return errno;
  std::string got(expect.size() + 1, '\0');
  size_t have = 0;
  for (;;) {
    ssize_t n = ::read(fd, got.data() + have, got.size() - have);
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return err;
    }
    if (n == 0 || (have += static_cast<size_t>(n)) == got.size()) break;
  }
  ::close(fd);
  return have == expect.size() && got.compare(0, have, expect) == 0 ? 0 : EBADMSG;
}

// The keelfs volume PATH is on ("keelfs:VOLUME" in /proc/mounts), if it is.
std::optional<std::string> keelfs_volume(const std::string& path) {
  char real[PATH_MAX];
  if (!::realpath(path.c_str(), real)) return std::nullopt;
  std::ifstream mounts("/proc/mounts");
  std::string source, point, type, rest, best_volume;
  size_t best = 0;
  while (mounts >> source >> point >> type && std::getline(mounts, rest)) {
    if (type != "fuse.keelfs" || source.rfind("keelfs:", 0) != 0) continue;
    const std::string r(real);
    if (r.rfind(point, 0) == 0 && (r.size() == point.size() || r[point.size()] == '/' || point == "/") &&
        point.size() >= best) {
      best = point.size();
      best_volume = source.substr(7);
    }
  }
  if (best == 0) return std::nullopt;
  return best_volume;
}

// Asks the master for the volume's figures, with the cluster secret or the monitoring key.
class VolumeFigures {
 public:
  static std::unique_ptr<VolumeFigures> open(const SmallfilesArgs& a, const std::string& volume) {
    std::string file = a.secret_file;
    if (file.empty())
      if (const char* home = std::getenv("KEELFS_HOME"); home && *home) file = std::string(home) + "/cluster.secret";
    std::ifstream in(file);
    std::string secret;
    if (file.empty() || !(in >> secret)) return nullptr;
    client::ClientOptions opts;
    opts.master = a.master;
    opts.name = "keelfs-bench";
    auto c = client::Client::connect(opts);
    if (!c.ok() || !(*c)->admin_login(secret).ok()) return nullptr;
    auto f = std::make_unique<VolumeFigures>();
    f->client_ = std::move(*c);
    f->volume_ = volume;
    return f;
  }
  std::optional<pb::VolumeInfo> now() {
    auto vols = client_->volume_list();
    if (!vols.ok()) return std::nullopt;
    for (const auto& v : *vols)
      if (v.name() == volume_) return v;
    return std::nullopt;
  }

 private:
  std::unique_ptr<client::Client> client_;
  std::string volume_;
};

}  // namespace

int run_smallfiles(const SmallfilesArgs& a) {
  const std::string top = fmt::format("{}/keelfs-bench.{}", a.path, getpid());
  if (::mkdir(top.c_str(), 0755) != 0) {
    std::fprintf(stderr, "keelfs-bench: cannot create %s: %s\n", top.c_str(), std::strerror(errno));
    return 1;
  }
  std::unique_ptr<VolumeFigures> figures;
  std::optional<std::string> volume = keelfs_volume(a.path);
  if (volume) figures = VolumeFigures::open(a, *volume);
  if (volume && !figures)
    std::fprintf(stderr, "keelfs-bench: %s is on keelfs volume '%s', but its master does not answer with the cluster "
                 "secret or monitoring key (--master, --secret-file): no physical bytes\n", a.path.c_str(),
                 volume->c_str());

  std::vector<PhaseResult> results;
  int err = 0, at = -1;
  auto failed = [&](const std::string& phase) {
    std::fprintf(stderr, "keelfs-bench: %s failed at file %d: %s\n", phase.c_str(), at, std::strerror(err));
    return 1;
  };
  for (uint64_t size : a.sizes) {
    const std::string base = fmt::format("{}/s{}", top, size);
    ::mkdir(base.c_str(), 0755);
    for (int d = 0; d < a.dirs; ++d) ::mkdir(fmt::format("{}/d{}", base, d).c_str(), 0755);
    auto name = [&](int i, const char* prefix) { return fmt::format("{}/d{}/{}{:07}", base, i % a.dirs, prefix, i); };
    const std::string label = fmt::format("{} B", size);

    std::optional<pb::VolumeInfo> before = figures ? figures->now() : std::nullopt;
    results.push_back(run_phase("create " + label, a.files, a.threads,
                                [&](int i) { return write_whole(name(i, "f"), file_bytes(i, size)); }, &err, &at));
    if (err) return failed("create");
    results.back().unit = "files/s";
    std::optional<pb::VolumeInfo> after = figures ? figures->now() : std::nullopt;
    if (before && after && a.files > 0) {
      const double files = a.files;
      const double physical = static_cast<double>(after->physical_bytes()) - static_cast<double>(before->physical_bytes());
      results.back().extra["physical_bytes_per_file"] = physical / files;
      if (size > 0)
        results.back().extra["overhead_ratio"] = physical / (files * static_cast<double>(size) * std::max(1u, after->goal()));
    }
    results.push_back(run_phase("stat " + label, a.files, a.threads, [&](int i) {
      struct stat st;
      return ::stat(name(i, "f").c_str(), &st) == 0 ? (static_cast<uint64_t>(st.st_size) == size ? 0 : EBADMSG) : errno;
    }, &err, &at));
    if (err) return failed("stat");
    results.push_back(run_phase("read " + label, a.files, a.threads,
                                [&](int i) { return read_and_check(name(i, "f"), file_bytes(i, size)); }, &err, &at));
    if (err) return failed("read (a file's content differs: EBADMSG)");
    results.back().unit = "files/s";
    results.push_back(run_phase("rename " + label, a.files, a.threads, [&](int i) {
      return ::rename(name(i, "f").c_str(), name(i, "r").c_str()) == 0 ? 0 : errno;
    }, &err, &at));
    if (err) return failed("rename");
    results.push_back(run_phase("unlink " + label, a.files, a.threads,
                                [&](int i) { return ::unlink(name(i, "r").c_str()) == 0 ? 0 : errno; }, &err, &at));
    if (err) return failed("unlink");
    for (int d = 0; d < a.dirs; ++d) ::rmdir(fmt::format("{}/d{}", base, d).c_str());
    ::rmdir(base.c_str());
  }
  ::rmdir(top.c_str());

  std::string sizes;
  for (uint64_t s : a.sizes) sizes += (sizes.empty() ? "" : ",") + std::to_string(s);
  std::map<std::string, std::string> about = {{"benchmark", "smallfiles"},
                                              {"path", a.path},
                                              {"files", std::to_string(a.files)},
                                              {"sizes", sizes},
                                              {"dirs", std::to_string(a.dirs)},
                                              {"threads", std::to_string(a.threads)}};
  if (volume) about["keelfs_volume"] = *volume;
  if (a.json) {
    print_json(results, about);
  } else {
    std::printf("smallfiles on %s: %d files per size in %d directories, %d threads%s\n", a.path.c_str(), a.files,
                a.dirs, a.threads, volume ? (" (keelfs volume " + *volume + ")").c_str() : "");
    print_table(results);
  }
  return 0;
}

}  // namespace keelfs::bench
