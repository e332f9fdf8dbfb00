// keelfs-bench throughput PATH: large sequential and parallel reads and writes against any
// mount, in 1 MiB requests (a model file being written and loaded).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "bench/posix_bench.h"
#include "bench/report.h"

namespace keelfs::bench {
namespace {

constexpr size_t kBlock = 1 << 20;

int write_file(const std::string& path, uint64_t bytes, const std::string& block) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return errno;
  int err = 0;
  for (uint64_t done = 0; done < bytes && err == 0;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(block.size(), bytes - done));
    ssize_t w = ::write(fd, block.data(), n);
    if (w <= 0) err = w < 0 ? errno : EIO;
    done += static_cast<uint64_t>(w > 0 ? w : 0);
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  return err;
}

int read_file(const std::string& path, uint64_t bytes) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return errno;
  std::string buf(kBlock, '\0');
  uint64_t got = 0;
  int err = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) err = errno;
    if (n <= 0) break;
    got += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return err != 0 ? err : (got == bytes ? 0 : EBADMSG);
}

// Drops the kernel's page cache (root only; otherwise reads may come from memory, and the
// table says so).
bool drop_caches() {
  ::sync();
  std::ofstream f("/proc/sys/vm/drop_caches");
  return static_cast<bool>(f << "3\n");
}

}  // namespace

int run_throughput(const ThroughputArgs& a) {
  const std::string top = fmt::format("{}/keelfs-bench.{}", a.path, getpid());
  if (::mkdir(top.c_str(), 0755) != 0) {
    std::fprintf(stderr, "keelfs-bench: cannot create %s: %s\n", top.c_str(), std::strerror(errno));
    return 1;
  }
  std::string block(kBlock, '\0');
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>((i * 2654435761u) >> 13);
  const uint64_t total = a.size_mib << 20;
  const int threads = std::max(1, a.threads);
  const uint64_t each = total / static_cast<uint64_t>(threads);
  std::vector<PhaseResult> results;
  int err = 0, at = -1;
  bool cold = true;
  auto phase = [&](const std::string& name, int n, const std::function<int(int)>& fn, uint64_t bytes) {
    PhaseResult r = run_phase(name, n, threads, fn, &err, &at);
    r.unit = "MB/s";
    r.ops = bytes;
    r.rate = static_cast<double>(bytes) / 1e6 / std::max(r.seconds, 1e-9);
    r.latency_us.clear();
    results.push_back(std::move(r));
    if (err) std::fprintf(stderr, "keelfs-bench: %s failed: %s\n", name.c_str(), std::strerror(err));
    return err == 0;
  };
  const std::string one = top + "/sequential";
  bool ok = phase("sequential write", 1, [&](int) { return write_file(one, total, block); }, total);
  cold = drop_caches() && cold;
  ok = ok && phase("sequential read", 1, [&](int) { return read_file(one, total); }, total);
  ::unlink(one.c_str());
  auto part = [&](int i) { return fmt::format("{}/parallel{}", top, i); };
  ok = ok && phase(fmt::format("parallel write x{}", threads), threads,
                   [&](int i) { return write_file(part(i), each, block); }, each * threads);
  cold = drop_caches() && cold;
  ok = ok && phase(fmt::format("parallel read x{}", threads), threads, [&](int i) { return read_file(part(i), each); },
                   each * threads);
  for (int i = 0; i < threads; ++i) ::unlink(part(i).c_str());
  ::rmdir(top.c_str());
  if (!ok) return 1;
  std::map<std::string, std::string> about = {{"benchmark", "throughput"},
                                              {"path", a.path},
                                              {"size_mib", std::to_string(a.size_mib)},
                                              {"threads", std::to_string(threads)},
                                              {"reads", cold ? "cold (page cache dropped)" : "page cache not dropped"}};
  if (a.json) {
    print_json(results, about);
  } else {
    std::printf("throughput on %s: %llu MiB, %d threads in parallel; reads %s\n", a.path.c_str(),
                static_cast<unsigned long long>(a.size_mib), threads, about["reads"].c_str());
    print_table(results);
  }
  return 0;
}

}  // namespace keelfs::bench
