// Spare chunks (master/spares.cpp): new chunks made ahead of need, handed to new files,
// and gone after a master restart.
#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

TEST_CASE("spare chunks are made ahead, taken by new files, and dropped by a restarted master", "[spares]") {
  Cluster cluster(3);
  uint64_t root = cluster.create_volume("v", 2);
  // The first new chunk finds no stock: it is created on the spot, and a refill starts.
  // (Files big enough for chunks of their own: smaller ones share a pack.)
  std::string first = random_bytes(100 * 1000, 1);
  uint64_t a = put_file(cluster.client(), root, "a", first);
  // The stock fills up: 32 chunks of two copies each, holding nothing.
  REQUIRE(wait_until([&] { return chunk_files(cluster, false) == 64; }));
  REQUIRE(chunk_files(cluster) == 2);

  // The next new file takes one: two empty copies become its data, none is created.
  std::string second = random_bytes(300 * 1000, 2);
  uint64_t b = put_file(cluster.client(), root, "b", second);
  REQUIRE(chunk_files(cluster) == 4);
  REQUIRE(chunk_files(cluster, false) == 62);

  // Spares live only in the master's memory: after a restart the chunkservers report them
  // as chunks of no file, and they are deleted. The files are untouched.
  cluster.kill_master();
  cluster.restart_master();
  REQUIRE(wait_until([&] { return chunk_files(cluster, false) == 0; }));
  REQUIRE(chunk_files(cluster) == 4);
  auto c = cluster.new_client("v");
  REQUIRE(c.ok());
  REQUIRE(get_file(**c, a) == first);
  REQUIRE(get_file(**c, b) == second);
}
