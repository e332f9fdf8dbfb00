// Chunkserver liveness: a hung chunkserver (its socket still open) is declared dead when
// its heartbeats stop, and comes back with its chunks when it wakes up.
#include <signal.h>

#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {

// The chunkserver's state in `cs ls`: 1 alive, 0 dead, -1 not listed.
int alive(client::Client& c, const std::string& address) {
  auto list = c.cs_list();
  if (!list.ok()) return -1;
  for (auto& cs : *list)
    if (cs.address() == address) return cs.alive() ? 1 : 0;
  return -1;
}

}  // namespace

TEST_CASE("liveness: a stopped chunkserver is declared dead and rejoins after SIGCONT", "[liveness]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 3);
  std::string data = random_bytes(2 << 20, 21);
  uint64_t ino = put_file(c, root, "f", data);
  std::string victim = cluster.cs_address(0);

  cluster.signal_chunkserver(0, SIGSTOP);
  REQUIRE(wait_until([&] { return alive(c, victim) == 0; }, std::chrono::seconds(15)));
  auto located = c.locate(ino);
  REQUIRE(located.ok());
  for (auto& r : located->chunks(0).replicas()) REQUIRE(r.address() != victim);  // its copy no longer counts
  REQUIRE(get_file(c, ino) == data);

  cluster.signal_chunkserver(0, SIGCONT);
  REQUIRE(wait_until([&] { return alive(c, victim) == 1; }, std::chrono::seconds(15)));
  // It registered again with its chunk list: its copy counts again.
  REQUIRE(wait_until([&] {
    auto l = c.locate(ino);
    return l.ok() && l->chunks(0).replicas_size() == 3;
  }, std::chrono::seconds(10)));
  REQUIRE(get_file(c, ino) == data);
}

TEST_CASE("health: exit 0 at goal, 1 under goal, 2 when a chunk has no valid copy", "[liveness][health]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  uint64_t ino = put_file(c, root, "f", random_bytes(1 << 20, 31));
  std::string out;
  REQUIRE(cluster.cli({"health"}, &out) == 0);
  REQUIRE(out.find("chunks: 1  missing: 0  under goal: 0") != std::string::npos);

  auto located = c.locate(ino);
  REQUIRE(located.ok());
  std::vector<int> holders;
  for (auto& r : located->chunks(0).replicas())
    for (int i = 0; i < cluster.chunkservers(); ++i)
      if (cluster.cs_address(i) == r.address()) holders.push_back(i);
  REQUIRE(holders.size() == 2);

  cluster.kill_chunkserver(holders[0]);
  REQUIRE(wait_until([&] { return cluster.cli({"health"}) == 1; }, std::chrono::seconds(10)));
  cluster.kill_chunkserver(holders[1]);
  REQUIRE(wait_until([&] { return cluster.cli({"health"}) == 2; }, std::chrono::seconds(10)));
  REQUIRE(cluster.cli({"--json", "health"}, &out) == 2);
  REQUIRE(out.find("\"missing\": 1") != std::string::npos);
  REQUIRE(out.find(fmt::format("{:016x}", located->chunks(0).chunk_id())) != std::string::npos);
}
