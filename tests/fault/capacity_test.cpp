// Full disks: a chunkserver that is full gets no new chunks, a region that is full says
// ENOSPC, and freeing space makes the same mount usable again; nothing is corrupted.
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {
constexpr uint64_t MiB = 1 << 20;
}  // namespace

TEST_CASE("capacity: a full chunkserver gets no new chunks, a full region is ENOSPC, freeing space heals", "[fault][capacity]") {
  ClusterOptions opts;
  opts.chunkservers = 2;
  opts.cs_disk_mib = {64, 200};
  opts.master_args = {"--cs-reserve", "8M"};
  Cluster cluster(opts);
  cluster.create_volume("v", 1);
  std::string m = cluster.mount("v");
  int written = 0;
  int failure = 0;
  for (int i = 0; i < 400 && failure == 0; ++i) {
    failure = write_file_errno(m + "/f" + std::to_string(i), random_bytes(MiB, 100 + i));
    if (failure == 0) ++written;
  }
  INFO("written " << written << " MiB before errno " << failure);
  REQUIRE(failure == ENOSPC);
  // The small server stopped taking chunks when it was nearly full, so the writer went on
  // until the big one was full too (without that, it would fail near 100 MiB).
  REQUIRE(written >= 170);
  for (int i = 0; i < written; i += 7) REQUIRE(read_text_file(m + "/f" + std::to_string(i)) == random_bytes(MiB, 100 + i));

  // Free space: the mount takes writes again once the servers report it.
  for (int i = 0; i < 60; ++i) REQUIRE(::unlink((m + "/f" + std::to_string(i)).c_str()) == 0);
  REQUIRE(wait_until([&] { return write_file_errno(m + "/again", random_bytes(MiB, 7)) == 0; }, std::chrono::seconds(20)));
  REQUIRE(read_text_file(m + "/again") == random_bytes(MiB, 7));
  REQUIRE(read_text_file(m + "/f" + std::to_string(written - 1)) == random_bytes(MiB, 100 + written - 1));
}
