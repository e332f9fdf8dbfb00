// A truncate when no copy of the chunk it splits is reachable: the namespace change
// commits and the cut waits (ChunkRecord.pending_cut). The file never shows the bytes
// past the cut: growing it again waits for the cut, and the cut is made by itself once
// the chunk's servers are back.
#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {
constexpr uint64_t MiB = 1 << 20;

bool all_dead(Cluster& cluster) {
  auto list = cluster.client().cs_list();
  if (!list.ok()) return false;
  for (auto& cs : *list)
    if (cs.alive()) return false;
  return true;
}
}  // namespace

TEST_CASE("a truncate with every copy unreachable commits, and its cut is made when they come back",
          "[fault][truncate]") {
  Cluster cluster(2);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  const std::string data = random_bytes(3 * MiB, 7);
  uint64_t ino = put_file(c, root, "f", data);
  const uint32_t version = c.locate(ino)->chunks(0).version();

  cluster.kill_chunkserver(0);
  cluster.kill_chunkserver(1);
  REQUIRE(wait_until([&] { return all_dead(cluster); }));

  pb::SetattrReq req;
  req.set_inode(ino);
  req.set_mask(pb::SET_SIZE);
  req.set_size(1 * MiB);
  auto cut = c.setattr(req);
  INFO(cut.status().to_string());
  REQUIRE(cut.ok());  // committed: the cut waits for the chunk's servers
  REQUIRE(c.getattr(ino)->size() == 1 * MiB);
  // Growing the file now would expose the old bytes past the cut: refused until it is made.
  req.set_size(3 * MiB);
  REQUIRE(!c.setattr(req).ok());
  REQUIRE(c.getattr(ino)->size() == 1 * MiB);

  cluster.restart_chunkserver(0);
  cluster.restart_chunkserver(1);
  // The master makes the cut by itself: a new version, the new length.
  bool made = wait_until([&] {
    auto l = c.locate(ino);
    return l.ok() && l->chunks_size() == 1 && l->chunks(0).version() > version && l->chunks(0).length() == 1 * MiB;
  });
  REQUIRE(made);
  REQUIRE(c.setattr(req).ok());
  REQUIRE(get_file(c, ino) == data.substr(0, 1 * MiB) + std::string(2 * MiB, '\0'));
}
