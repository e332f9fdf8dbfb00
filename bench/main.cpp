// keelfs-bench: benchmarks of any mount, and of a keelfs cluster through its client library.
//   keelfs-bench smallfiles PATH [--files N] [--size S[,S2...]] [--dirs D] [--threads T] [--json]
//   keelfs-bench throughput PATH [--size-mib M] [--threads T] [--json]
// Through the client library (no FUSE in between):
//   keelfs-bench meta  --volume V [--files N] [--threads T]          create then stat N empty files
//   keelfs-bench small --volume V [--files N] [--size B] [--threads T]  create, write and close N small files
//   keelfs-bench statloop --volume V [--seconds S]                    stat in a loop; latency per second
//   keelfs-bench io    --volume V [--size-mib M]                      write then read one file
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "bench/posix_bench.h"
#include "client/client.h"
#include "common/util.h"

using namespace keelfs;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Runs fn(i) for i in [0, n) on `threads` threads; returns the first error.
Status parallel_for(int n, int threads, const std::function<Status(int)>& fn) {
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  Status first;
  std::mutex mu;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int i; !failed && (i = next++) < n;) {
        Status st = fn(i);
        if (!st.ok()) {
          std::lock_guard lock(mu);
          if (!failed.exchange(true)) first = st;
        }
      }
    });
  for (auto& t : pool) t.join();
  return first;
}

Status bench_meta(client::Client& c, uint64_t root, int files, int threads) {
  std::string dir_name = fmt::format("bench-meta-{}-{}", getpid(), Clock::now().time_since_epoch().count());
  ASSIGN_OR_RETURN(pb::Attr dir, c.mkdir(root, dir_name, 0755));
  std::vector<uint64_t> inodes(files);
  auto t0 = Clock::now();
  RETURN_IF_ERROR(parallel_for(files, threads, [&](int i) -> Status {
    pb::CreateReq req;
    req.set_parent(dir.inode());
    req.set_name(fmt::format("f{:07}", i));
    req.set_mode(0644);
    req.set_exclusive(true);
    ASSIGN_OR_RETURN(pb::Attr a, c.create(req));
    inodes[i] = a.inode();
    return Status::Ok();
  }));
  double create_s = seconds_since(t0);
  t0 = Clock::now();
  RETURN_IF_ERROR(parallel_for(files, threads, [&](int i) { return c.getattr(inodes[i]).status(); }));
  double stat_s = seconds_since(t0);
  t0 = Clock::now();
  RETURN_IF_ERROR(parallel_for(files, threads, [&](int i) { return c.lookup(dir.inode(), fmt::format("f{:07}", i)).status(); }));
  double lookup_s = seconds_since(t0);
  std::printf("create %d files: %.2f s (%.0f/s)\n", files, create_s, files / create_s);
  std::printf("stat   %d files: %.2f s (%.0f/s)\n", files, stat_s, files / stat_s);
  std::printf("lookup %d files: %.2f s (%.0f/s)\n", files, lookup_s, files / lookup_s);
  std::printf("threads %d\n", threads);
  return Status::Ok();
}

// Many small files of `size` bytes each, written and closed (flushed) one by one, spread
// over directories of 10,000: a dataset of images or shards, and one chunk per file.
Status bench_small(client::Client& c, uint64_t root, int files, uint64_t size, int threads) {
  constexpr int kPerDir = 10000;
  std::string top_name = fmt::format("bench-small-{}-{}", getpid(), Clock::now().time_since_epoch().count());
  ASSIGN_OR_RETURN(pb::Attr top, c.mkdir(root, top_name, 0755));
  std::vector<uint64_t> dirs;
  for (int d = 0; d * kPerDir < files; ++d) {
    ASSIGN_OR_RETURN(pb::Attr dir, c.mkdir(top.inode(), fmt::format("d{:05}", d), 0755));
    dirs.push_back(dir.inode());
  }
  std::string data(size, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 2654435761u >> 13);
  std::atomic<int> done{0};
  auto t0 = Clock::now();
  RETURN_IF_ERROR(parallel_for(files, threads, [&](int i) -> Status {
    pb::CreateReq req;
    req.set_parent(dirs[i / kPerDir]);
    req.set_name(fmt::format("f{:07}", i));
    req.set_mode(0644);
    req.set_exclusive(true);
    ASSIGN_OR_RETURN(pb::Attr a, c.create(req));
    if (size > 0) {
      RETURN_IF_ERROR(c.write(a.inode(), 0, data.data(), data.size()));
      RETURN_IF_ERROR(c.flush(a.inode()));
    }
    if (int n = ++done; n % 100000 == 0) {
      std::printf("  %d files, %.0f s\n", n, seconds_since(t0));
      std::fflush(stdout);
    }
    return Status::Ok();
  }));
  double secs = seconds_since(t0);
  std::printf("small: %d files of %llu bytes in %.1f s (%.0f/s), %d threads, under /%s\n", files,
              (unsigned long long)size, secs, files / secs, threads, top_name.c_str());
  return Status::Ok();
}

// Stats the volume's root (a round trip to the master each) for `seconds`, and prints the
// latency percentiles of each second: what a client feels while the master works.
Status bench_statloop(client::Client& c, uint64_t root, int seconds) {
  auto start = Clock::now();
  double worst_p99 = 0, worst_max = 0;
  for (int s = 0; s < seconds; ++s) {
    std::vector<double> us;
    auto window_end = start + std::chrono::seconds(s + 1);
    while (Clock::now() < window_end) {
      auto t = Clock::now();
      RETURN_IF_ERROR(c.getattr(root).status());
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    std::sort(us.begin(), us.end());
    auto pct = [&](double p) { return us.empty() ? 0.0 : us[std::min(us.size() - 1, static_cast<size_t>(p * us.size()))]; };
    worst_p99 = std::max(worst_p99, pct(0.99));
    worst_max = std::max(worst_max, us.empty() ? 0.0 : us.back());
    char wall[16];
    const std::time_t now = std::time(nullptr);
    std::strftime(wall, sizeof wall, "%H:%M:%S", std::localtime(&now));
    std::printf("statloop %3d s: %7zu stats  p50 %6.0f us  p99 %6.0f us  max %7.0f us  [%s]\n", s + 1, us.size(),
                pct(0.5), pct(0.99), us.empty() ? 0.0 : us.back(), wall);
    std::fflush(stdout);
  }
  std::printf("statloop: worst p99 of a second %.0f us, worst single stat %.0f us\n", worst_p99, worst_max);
  return Status::Ok();
}

Status bench_io(client::Client& c, uint64_t root, uint64_t size_mib) {
  std::string name = fmt::format("bench-io-{}", getpid());
  pb::CreateReq req;
  req.set_parent(root);
  req.set_name(name);
  req.set_mode(0644);
  ASSIGN_OR_RETURN(pb::Attr file, c.create(req));
  std::vector<char> buf(64u << 20);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<char>(i * 2654435761u >> 13);
  uint64_t size = size_mib << 20;
  auto t0 = Clock::now();
  for (uint64_t off = 0; off < size; off += buf.size())
    RETURN_IF_ERROR(c.write(file.inode(), off, buf.data(), std::min<uint64_t>(buf.size(), size - off)));
  RETURN_IF_ERROR(c.fsync(file.inode()));
  double write_s = seconds_since(t0);
  t0 = Clock::now();
  for (uint64_t off = 0; off < size;) {
    ASSIGN_OR_RETURN(size_t n, c.read(file.inode(), off, buf.size(), buf.data()));
    if (n == 0) break;
    off += n;
  }
  double read_s = seconds_since(t0);
  std::printf("write %llu MiB: %.2f s (%.0f MB/s)\n", (unsigned long long)size_mib, write_s, size / write_s / 1e6);
  std::printf("read  %llu MiB: %.2f s (%.0f MB/s)\n", (unsigned long long)size_mib, read_s, size / read_s / 1e6);
  return c.unlink(root, name);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keelfs-bench: throughput and metadata rates through the client library"};
  app.require_subcommand(1);
  std::string master = "127.0.0.1:9520", volume = "default";
  int files = 10000, threads = 1, seconds = 60;
  uint64_t size_mib = 1024, size = 4096;
  app.add_option("--master", master)->capture_default_str();
  app.add_option("--volume", volume)->capture_default_str();
  app.fallthrough();
  auto* meta = app.add_subcommand("meta", "create, stat and look up empty files");
  meta->add_option("--files", files)->capture_default_str();
  meta->add_option("--threads", threads)->capture_default_str();
  auto* small = app.add_subcommand("small", "create, write and close many small files");
  small->add_option("--files", files)->capture_default_str();
  small->add_option("--size", size, "bytes per file")->capture_default_str();
  small->add_option("--threads", threads)->capture_default_str();
  auto* statloop = app.add_subcommand("statloop", "stat in a loop and print the latency of each second");
  statloop->add_option("--seconds", seconds)->capture_default_str();
  auto* io = app.add_subcommand("io", "write then read one file");
  io->add_option("--size-mib", size_mib)->capture_default_str();

  bench::SmallfilesArgs sf;
  std::string sf_sizes = "4096";
  auto* smallfiles = app.add_subcommand(
      "smallfiles", "create, stat, read (checked), rename and unlink small files under PATH, on any mount");
  smallfiles->add_option("path", sf.path, "a directory on the file system to measure")->required();
  smallfiles->add_option("--files", sf.files, "files per size")->capture_default_str();
  smallfiles->add_option("--size", sf_sizes, "bytes per file; several sizes separated by commas (1K, 64K...)")
      ->capture_default_str();
  smallfiles->add_option("--dirs", sf.dirs, "directories the files are spread over")->capture_default_str();
  smallfiles->add_option("--threads", sf.threads)->capture_default_str();
  smallfiles->add_option("--secret-file", sf.secret_file,
                         "on keelfs: the cluster secret or monitoring key, to read the volume's physical bytes "
                         "(default: $KEELFS_HOME/cluster.secret)");
  smallfiles->add_flag("--json", sf.json, "one JSON document instead of a table");
  bench::ThroughputArgs tp;
  auto* throughput = app.add_subcommand("throughput", "large sequential and parallel writes and reads under PATH");
  throughput->add_option("path", tp.path, "a directory on the file system to measure")->required();
  throughput->add_option("--size-mib", tp.size_mib, "bytes written and read in each test")->capture_default_str();
  throughput->add_option("--threads", tp.threads, "files written and read in parallel")->capture_default_str();
  throughput->add_flag("--json", tp.json, "one JSON document instead of a table");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::err);

  // The benchmarks of any mount need no cluster.
  if (*smallfiles) {
    sf.master = master;
    sf.sizes.clear();
    for (size_t pos = 0; pos <= sf_sizes.size();) {
      size_t comma = sf_sizes.find(',', pos);
      if (comma == std::string::npos) comma = sf_sizes.size();
      uint64_t bytes = 0;
      if (!parse_bytes(sf_sizes.substr(pos, comma - pos), &bytes)) {
        std::fprintf(stderr, "keelfs-bench: --size '%s' is not a list of sizes such as 1K,64K\n", sf_sizes.c_str());
        return 2;
      }
      sf.sizes.push_back(bytes);
      pos = comma + 1;
    }
    return bench::run_smallfiles(sf);
  }
  if (*throughput) return bench::run_throughput(tp);

  client::ClientOptions opts;
  opts.master = master;
  opts.name = "keelfs-bench";
  auto c = client::Client::connect(opts);
  if (!c.ok()) {
    std::fprintf(stderr, "keelfs-bench: %s\n", c.status().message().c_str());
    return 1;
  }
  client::MountRequest mreq;
  mreq.volume = volume;
  auto secret = client::find_volume_secret(volume, "");
  if (!secret.ok()) {
    std::fprintf(stderr, "keelfs-bench: %s\n", secret.status().message().c_str());
    return 1;
  }
  mreq.secret = *secret;
  mreq.region = client::host_region("");
  mreq.mount_point = "(keelfs-bench)";
  auto m = (*c)->mount(mreq);
  if (!m.ok()) {
    std::fprintf(stderr, "keelfs-bench: %s\n", m.status().message().c_str());
    return 1;
  }
  uint64_t root = m->volume().root_inode();
  Status st = *meta       ? bench_meta(**c, root, files, threads)
              : *small    ? bench_small(**c, root, files, size, threads)
              : *statloop ? bench_statloop(**c, root, seconds)
                          : bench_io(**c, root, size_mib);
  if (!st.ok()) {
    std::fprintf(stderr, "keelfs-bench: %s\n", st.to_string().c_str());
    return 1;
  }
  return 0;
}
