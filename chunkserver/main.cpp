// keelfs-chunkserver: stores chunks on local data directories, serves them to clients and
// registers with the master. A thin shell over keelfs_chunkserver.
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "chunkserver/chunk_service.h"
#include "chunkserver/master_link.h"
#include "chunkserver/scrubber.h"
#include "chunkserver/store_set.h"
#include "common/asio.h"
#include "common/rpc.h"
#include "common/run_loop.h"
#include "common/auth.h"
#include "common/util.h"

namespace {

int fail(const std::string& message) {
  std::cerr << "keelfs-chunkserver: " << message << std::endl;
  return 1;
}

// "host:port" with port 0 allowed (pick a free port).
bool split_listen(const std::string& address, std::string* host, uint16_t* port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = address.substr(0, colon);
  try {
    size_t used = 0;
    unsigned long p = std::stoul(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1 || p > 65535) return false;
    *port = static_cast<uint16_t>(p);
  } catch (...) {
    return false;
  }
  return true;
}

// Writes `text` to path atomically: a temporary file renamed over it.
bool write_atomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << text;
    out.flush();
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace keelfs;
  CLI::App app{"keelfs-chunkserver: stores chunks and serves them to keelfs clients"};
  std::string master = "127.0.0.1:9521";
  std::string listen = "127.0.0.1:9522";
  std::string advertise;
  std::vector<std::string> data_dirs;
  std::string region = "default";
  std::string zone;
  std::string secret_file;
  std::string log_file;
  std::string log_level = "info";
  std::string ready_file;
  int heartbeat_ms = 1000;
  app.set_config("--config", "", "TOML/INI config file with the same keys as the flags");
  app.add_option("--master", master, "master's chunkserver port, HOST:PORT")->capture_default_str();
  app.add_option("--listen", listen, "data address to listen on, HOST:PORT (port 0 = any free)")
      ->capture_default_str();
  app.add_option("--advertise", advertise, "data address given to the master (default: listen host + bound port)");
  app.add_option("--data-dir", data_dirs, "data directory (repeat for several)")->required();
  app.add_option("--region", region, "region label")->capture_default_str();
  app.add_option("--zone", zone, "zone label (failure domain within the region)");
  app.add_option("--secret-file", secret_file, "file holding the cluster secret")->required();
  std::string scrub_rate = "8M";
  app.add_option("--scrub-rate", scrub_rate,
                 "bytes per second read in the background to check every chunk's CRCs (0 = off)")
      ->capture_default_str();
  int64_t scrub_every = 3600;
  app.add_option("--scrub-every", scrub_every, "seconds: a scrub pass over every chunk starts at most this often")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  std::string replication_rate = "200M";
  app.add_option("--replication-rate", replication_rate,
                 "bytes per second this chunkserver copies chunks in for healing, over all copies (0 = no limit)")
      ->capture_default_str();
  std::vector<std::string> disk_faults;
  app.add_option("--disk-fault", disk_faults,
                 "testing only: fail calls on chunk files as a failing disk would, OP:ERROR[:skip=N][:count=N] "
                 "(e.g. pwrite:ENOSPC:skip=20, fdatasync:EIO); repeatable");
  app.add_option("--log-file", log_file, "log to this file instead of stderr");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_option("--ready-file", ready_file, "write the bound data port here once listening");
  int poll_us = 0;
  add_poll_option(app, &poll_us);
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval to the master")
      ->capture_default_str()
      ->check(CLI::Range(50, 600000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;  // --help is success; every bad command line exits 1
  }

  std::string listen_host;
  uint16_t listen_port = 0;
  if (!split_listen(listen, &listen_host, &listen_port)) return fail(fmt::format("--listen '{}' is not HOST:PORT", listen));
  std::vector<DiskFault> faults;
  for (const std::string& rule : disk_faults) {
    auto f = parse_disk_fault(rule);
    if (!f.ok()) return fail(f.status().message());
    faults.push_back(*f);
  }
  // Lives as long as the process: every store holds on to it.
  static FaultyDisk faulty_disk(faults);
  Disk& chunk_disk = faults.empty() ? real_disk() : faulty_disk;
  if (!faults.empty()) spdlog::warn("testing only: {} disk fault rule(s) in force", faults.size());
  if (!parse_address(master).ok()) return fail(fmt::format("--master '{}' is not HOST:PORT", master));
  auto secret = read_secret_file(secret_file);
  if (!secret.ok()) return fail(secret.status().message());
  uint64_t scrub_bytes_per_sec = 0;
  if (!parse_bytes(scrub_rate, &scrub_bytes_per_sec))
    return fail(fmt::format("--scrub-rate '{}' is not a rate such as 8M", scrub_rate));
  uint64_t replication_bytes_per_sec = 0;
  if (!parse_bytes(replication_rate, &replication_bytes_per_sec))
    return fail(fmt::format("--replication-rate '{}' is not a rate such as 200M", replication_rate));

  try {
    setup_logging("chunkserver", log_file, log_level);
  } catch (const std::exception& e) {
    return fail(fmt::format("cannot set up logging: {}", e.what()));
  }

  // Open chunk files are cached (chunk_store.cpp, fd_cache_capacity), and clients connect.
  raise_open_files_limit();
  auto opened = StoreSet::open(data_dirs, chunk_disk);
  if (!opened.ok()) return fail(opened.status().message());
  std::unique_ptr<StoreSet> stores = std::move(opened).value();

  // Order matters for shutdown: the io_context outlives everything whose coroutines it
  // holds; the disk pool is joined before the stores close.
  asio::io_context io;
  asio::thread_pool disk(4);
  ChunkService service(io.get_executor(), *stores, disk, *secret, replication_bytes_per_sec);
  RpcServer server(io.get_executor(), service.data_handler());
  auto bound = server.listen(listen_host, listen_port);
  if (!bound.ok()) {
    disk.join();
    return fail(bound.status().message());
  }
  if (advertise.empty()) advertise = fmt::format("{}:{}", listen_host, *bound);
  service.set_address(advertise);
  spdlog::info("chunkserver {:016x} serving data on {}:{} (advertised {}), {} data director{}, region {}",
               stores->cs_id(), listen_host, *bound, advertise, stores->size(), stores->size() == 1 ? "y" : "ies",
               region);
  if (!ready_file.empty() && !write_atomically(ready_file, fmt::format("{}\n", *bound))) {
    server.stop();
    disk.join();
    return fail(fmt::format("cannot write ready file {}", ready_file));
  }

  MasterLinkOptions link_opts;
  link_opts.master_address = master;
  link_opts.address = advertise;
  link_opts.region = region;
  link_opts.zone = zone;
  link_opts.host = host_name();
  link_opts.cluster_secret = *secret;
  link_opts.heartbeat = std::chrono::milliseconds(heartbeat_ms);
  link_opts.on_heartbeat_answer = [&service](const pb::CsHeartbeatResp& ended) { service.set_ended_sessions(ended); };
  MasterLink link(io.get_executor(), *stores, disk, service.master_handler(), link_opts);
  link.start();
  auto report_damaged = [&link](uint64_t id, uint32_t version, const std::string& reason) {
    link.report_damaged(id, version, reason);
  };
  service.on_damaged(report_damaged);
  Scrubber scrubber(io.get_executor(), *stores, disk, scrub_bytes_per_sec, std::chrono::seconds(scrub_every),
                    report_damaged);
  scrubber.start();

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const error_code& ec, int signo) {
    if (ec) return;
    spdlog::info("signal {}: stopping", signo);
    server.stop();
    scrubber.stop();
    link.stop();
    service.shutdown();
    io.stop();
  });
  run_io(io, std::chrono::microseconds(poll_us));

  disk.join();
  Status st = stores->flush();
  if (!st.ok()) spdlog::error("flushing the index: {}", st.to_string());
  stores.reset();
  spdlog::info("chunkserver stopped");
  return st.ok() ? 0 : 1;
}
