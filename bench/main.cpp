// keelfs-bench: measures a cluster through the client library (no FUSE in between).
//   keelfs-bench meta --volume V [--files N] [--threads T]   create then stat N empty files
//   keelfs-bench io   --volume V [--size-mib M]               write then read one file
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "client/client.h"

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
  int files = 10000, threads = 1;
  uint64_t size_mib = 1024;
  app.add_option("--master", master)->capture_default_str();
  app.add_option("--volume", volume)->capture_default_str();
  app.fallthrough();
  auto* meta = app.add_subcommand("meta", "create, stat and look up empty files");
  meta->add_option("--files", files)->capture_default_str();
  meta->add_option("--threads", threads)->capture_default_str();
  auto* io = app.add_subcommand("io", "write then read one file");
  io->add_option("--size-mib", size_mib)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::err);

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
  Status st = *meta ? bench_meta(**c, root, files, threads) : bench_io(**c, root, size_mib);
  if (!st.ok()) {
    std::fprintf(stderr, "keelfs-bench: %s\n", st.to_string().c_str());
    return 1;
  }
  return 0;
}
