// keelfs-bench smallfiles and throughput: the benchmarks users point at any mount.
#include <unistd.h>

#include <filesystem>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

TEST_CASE("keelfs-bench smallfiles measures a keelfs mount, with the bytes a file costs, and a local directory",
          "[bench]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  std::string out;
  const std::string bench = fmt::format("{}/keelfs-bench", KEELFS_BIN_DIR);
  int rc = shell(fmt::format("KEELFS_HOME={} {} --master {} smallfiles {} --files 300 --size 1K,100K --dirs 3 "
                             "--threads 2 --json",
                             cluster.dir(), bench, cluster.master_address(), m),
                 &out);
  INFO(out);
  REQUIRE(rc == 0);
  // Every phase of both sizes, the files checked on read, and what a file costs on disk.
  for (const char* phase : {"create 1024 B", "stat 1024 B", "read 1024 B", "rename 1024 B", "unlink 1024 B",
                            "create 102400 B", "unlink 102400 B"})
    REQUIRE(out.find(fmt::format("\"phase\": \"{}\"", phase)) != std::string::npos);
  REQUIRE(out.find("\"keelfs_volume\": \"v\"") != std::string::npos);
  // 1 KiB files with goal 2 are packed: 2,048 bytes of data each, no block rounding.
  const size_t at = out.find("\"physical_bytes_per_file\"");
  REQUIRE(at != std::string::npos);
  const double per_file = std::stod(out.substr(out.find(':', at) + 1));
  REQUIRE(per_file >= 2048);
  REQUIRE(per_file < 2100);
  // It leaves nothing behind.
  REQUIRE(std::filesystem::is_empty(m));

  // The same on a local directory, as a table.
  const std::string local = cluster.dir() + "/local";
  std::filesystem::create_directory(local);
  rc = shell(fmt::format("{} smallfiles {} --files 100 --size 4K", bench, local), &out);
  INFO(out);
  REQUIRE(rc == 0);
  REQUIRE(out.find("read 4096 B") != std::string::npos);
  rc = shell(fmt::format("{} throughput {} --size-mib 32 --threads 2", bench, m), &out);
  INFO(out);
  REQUIRE(rc == 0);
  REQUIRE(out.find("parallel read x2") != std::string::npos);
}
