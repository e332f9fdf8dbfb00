// keelfs-master: the metadata server.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include "common/run_loop.h"
#include "common/auth.h"
#include "common/util.h"
#include "master/master.h"

using namespace keelfs;

namespace {

// Writes `content` to `path` atomically (temp file + rename), so a reader never sees half.
bool write_ready_file(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) return false;
    out << content;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keelfs-master: metadata server of a keelfs cluster"};
  master::MasterConfig config;
  std::string secret_file, log_file, log_level = "info", ready_file;
  app.add_option("--data-dir", config.data_dir, "directory of the metadata store (RocksDB)")->required();
  app.add_option("--listen", config.listen, "address for clients and admins")->capture_default_str();
  app.add_option("--cs-listen", config.cs_listen, "address for chunkservers")->capture_default_str();
  app.add_option("--cs-timeout-ms", config.cs_timeout_ms, "a chunkserver without heartbeat this long is dead")
      ->capture_default_str();
  app.add_option("--session-timeout-ms", config.session_timeout_ms,
                 "a client session not heard from this long expires (its locks and open files go)")
      ->capture_default_str();
  app.add_option("--heal-interval-ms", config.heal_interval_ms,
                 "how often the healer retries chunks that had to wait (busy servers, failed copies, writers)")
      ->capture_default_str();
  app.add_option("--sweep-chunks-per-s", config.sweep_chunks_per_s,
                 "the healer's slow sweep over every chunk record reads at most this many a second")
      ->capture_default_str();
  app.add_option("--sweep-every-ms", config.sweep_every_ms, "a new round of that sweep starts no sooner than this")
      ->capture_default_str();
  std::vector<std::string> region_networks;
  app.add_option("--region-network", region_networks,
                 "REGION=CIDR, repeatable: hosts with addresses in CIDR are in REGION, whatever they claim; when given, "
                 "a mount from an address in no such network is refused (docs/decisions.md)");
  app.add_option("--ticket-ttl-ms", config.ticket_ttl_ms, "how long a ticket for chunk reads and writes is valid")
      ->check(CLI::Range(int64_t{1000}, int64_t{24} * 3600 * 1000))
      ->capture_default_str();
  app.add_option("--compact-below", config.compact_below,
                 "a sealed pack of small files whose live bytes are below this fraction of its length is rewritten (0: never)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--compact-bytes-per-s", config.compact_bytes_per_s, "compaction copies at most this many bytes a second")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--cache-mb", config.cache_mb, "RocksDB block cache in MiB (memtables are charged to it)")
      ->capture_default_str();
  app.add_option("--replications-per-cs", config.replications_per_cs,
                 "healing copies in flight into and out of one chunkserver")
      ->capture_default_str();
  std::string reserve = "256M";
  app.add_option("--cs-reserve", reserve, "a chunkserver with less free space than this gets no new chunks")
      ->capture_default_str();
  app.add_option("--secret-file", secret_file, "file holding the cluster secret (signs data tickets)")->required();
  app.add_option("--log-file", log_file, "log to this file instead of stderr");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")->capture_default_str();
  app.add_option("--ready-file", ready_file, "once listening, write 'CLIENT_PORT CS_PORT' here");
  app.add_option("--crash-after-commit", config.crash_after_commit,
                 "testing only: exit right after committing a change of this message type, before answering")
      ->group("");
  app.add_option("--boot-id-file", config.boot_id_file,
                 "testing only: the file naming this boot of the machine (a new name plays a power loss)")
      ->group("");
  int poll_us = 0;
  add_poll_option(app, &poll_us);
  app.set_config("--config", "", "read options from this file (key = value lines)");
  CLI11_PARSE(app, argc, argv);

  if (!parse_bytes(reserve, &config.cs_reserve_bytes)) {
    std::fprintf(stderr, "keelfs-master: --cs-reserve '%s' is not a size such as 256M\n", reserve.c_str());
    return 1;
  }
  auto regions = master::RegionNetworks::parse(region_networks);
  if (!regions.ok()) {
    std::fprintf(stderr, "keelfs-master: %s\n", regions.status().message().c_str());
    return 1;
  }
  config.region_networks = std::move(*regions);
  setup_logging("master", log_file, log_level);
  raise_open_files_limit();  // a socket per client and chunkserver
  auto secret = read_secret_file(secret_file);
  if (!secret.ok()) {
    std::fprintf(stderr, "keelfs-master: %s\n", secret.status().message().c_str());
    return 1;
  }
  config.cluster_secret = *secret;

  asio::io_context io(1);
  master::Master m(io, config);
  auto ports = m.start();
  if (!ports.ok()) {
    std::fprintf(stderr, "keelfs-master: %s\n", ports.status().message().c_str());
    spdlog::error("start failed: {}", ports.status().message());
    return 1;
  }
  if (!ready_file.empty() &&
      !write_ready_file(ready_file, std::to_string(ports->first) + " " + std::to_string(ports->second) + "\n")) {
    std::fprintf(stderr, "keelfs-master: cannot write %s\n", ready_file.c_str());
    return 1;
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const error_code&, int sig) {
    spdlog::info("signal {}: stopping", sig);
    m.stop();
    io.stop();
  });
  run_io(io, std::chrono::microseconds(poll_us));
  spdlog::info("stopped");
  return 0;
}
