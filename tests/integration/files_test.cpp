// Files stored through the client library against a real master and real chunkservers.
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {

constexpr size_t KiB = 1024, MiB = 1024 * 1024;

// Every chunk of the file has `goal` copies on distinct chunkservers.
void require_replicated(client::Client& c, uint64_t ino, int goal) {
  auto located = c.locate(ino);
  REQUIRE(located.ok());
  for (const auto& chunk : located->chunks()) {
    std::set<uint64_t> servers;
    for (const auto& r : chunk.replicas()) servers.insert(r.cs_id());
    INFO("chunk " << chunk.index());
    REQUIRE(static_cast<int>(servers.size()) == goal);
  }
}

}  // namespace

TEST_CASE("files of every boundary size round-trip byte-identical with goal 2", "[files]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  const std::vector<size_t> sizes = {0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 64 * MiB - 1, 64 * MiB, 64 * MiB + 1,
                                     200 * MiB};
  for (size_t size : sizes) {
    INFO("size " << size);
    std::string data = random_bytes(size, size + 7);
    uint64_t ino = put_file(c, root, "f" + std::to_string(size), data);
    auto attr = c.getattr(ino);
    REQUIRE(attr.ok());
    REQUIRE(attr->size() == size);
    REQUIRE(get_file(c, ino) == data);
    require_replicated(c, ino, 2);
    auto located = c.locate(ino);
    REQUIRE(located->chunks_size() == static_cast<int>((size + 64 * MiB - 1) / (64 * MiB)));
  }
}

TEST_CASE("a fresh client reads what another client wrote", "[files]") {
  Cluster cluster(3);
  uint64_t root = cluster.create_volume("v", 2);
  std::string data = random_bytes(3 * MiB + 5, 1);
  uint64_t ino = put_file(cluster.client(), root, "shared", data);
  auto other = cluster.new_client("v");
  REQUIRE(other.ok());
  REQUIRE(get_file(**other, ino) == data);
}

TEST_CASE("an overwrite in the middle of a file changes exactly those bytes", "[files]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::string data = random_bytes(70 * MiB, 2);
  uint64_t ino = put_file(c, root, "f", data);
  // Across the chunk boundary at 64 MiB and not aligned to 64 KiB blocks.
  std::string patch = random_bytes(3 * MiB + 333, 3);
  uint64_t at = 64 * MiB - MiB - 17;
  REQUIRE(c.write(ino, at, patch.data(), patch.size()).ok());
  REQUIRE(c.flush(ino).ok());
  data.replace(at, patch.size(), patch);
  REQUIRE(get_file(c, ino) == data);
  require_replicated(c, ino, 2);
}

TEST_CASE("truncate down then up reads zeros in the gap", "[files]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::string data = random_bytes(130 * MiB, 4);
  uint64_t ino = put_file(c, root, "f", data);

  pb::SetattrReq req;
  req.set_inode(ino);
  req.set_mask(pb::SET_SIZE);
  req.set_size(65 * MiB + 100);  // cuts the second chunk, drops the third
  REQUIRE(c.setattr(req).ok());
  REQUIRE(get_file(c, ino) == data.substr(0, 65 * MiB + 100));
  auto located = c.locate(ino);
  REQUIRE(located->chunks_size() == 2);

  req.set_size(140 * MiB);
  REQUIRE(c.setattr(req).ok());
  std::string expected = data.substr(0, 65 * MiB + 100) + std::string(140 * MiB - (65 * MiB + 100), '\0');
  REQUIRE(get_file(c, ino) == expected);

  // Writing past the end after a truncate leaves zeros in between too.
  req.set_size(10);
  REQUIRE(c.setattr(req).ok());
  REQUIRE(c.write(ino, 1000, "xyz", 3).ok());
  REQUIRE(c.flush(ino).ok());
  std::string small = data.substr(0, 10) + std::string(990, '\0') + "xyz";
  REQUIRE(get_file(c, ino) == small);
}

TEST_CASE("parallel writers of different files", "[files]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  constexpr int kWriters = 6;
  std::vector<std::string> data(kWriters);
  std::vector<uint64_t> inodes(kWriters);
  std::vector<std::thread> threads;
  std::vector<int> ok(kWriters, 0);
  for (int i = 0; i < kWriters; ++i) data[i] = random_bytes((i + 1) * 5 * MiB + i, 100 + i);
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      pb::CreateReq req;
      req.set_parent(root);
      req.set_name("w" + std::to_string(i));
      req.set_mode(0644);
      auto attr = c.create(req);
      if (!attr.ok()) return;
      inodes[i] = attr->inode();
      // Small writes in order, so the writers interleave at the chunkservers.
      for (size_t off = 0; off < data[i].size(); off += 700 * 1024)
        if (!c.write(inodes[i], off, data[i].data() + off, std::min<size_t>(700 * 1024, data[i].size() - off)).ok()) return;
      ok[i] = c.flush(inodes[i]).ok();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kWriters; ++i) {
    INFO("writer " << i);
    REQUIRE(ok[i]);
    REQUIRE(get_file(c, inodes[i]) == data[i]);
  }
}

TEST_CASE("master kill -9 and restart keeps every file whose put returned", "[files][restart]") {
  Cluster cluster(3);
  REQUIRE(cluster.cli({"volume", "create", "v", "--goal", "2", "--save-secret", cluster.dir() + "/v.secret"}) == 0);
  std::vector<std::string> data;
  for (int i = 0; i < 5; ++i) {
    data.push_back(random_bytes(i * 3 * MiB + 11, 50 + i));
    std::string local = cluster.dir() + "/in" + std::to_string(i);
    std::ofstream(local, std::ios::binary) << data.back();
    REQUIRE(cluster.cli({"put", local, "v:/f" + std::to_string(i)}) == 0);
  }
  REQUIRE(cluster.cli({"mkdir", "v:/dir"}) == 0);
  cluster.kill_master();
  cluster.restart_master();
  for (int i = 0; i < 5; ++i) {
    std::string local = cluster.dir() + "/out" + std::to_string(i);
    REQUIRE(cluster.cli({"get", "v:/f" + std::to_string(i), local}) == 0);
    REQUIRE(read_text_file(local) == data[i]);
  }
  std::string out;
  REQUIRE(cluster.cli({"ls", "v:/"}, &out) == 0);
  REQUIRE(out.find("dir") != std::string::npos);
  // Writing goes on after the restart too.
  REQUIRE(cluster.cli({"put", cluster.dir() + "/in1", "v:/after"}) == 0);
}

TEST_CASE("a replica corrupted on disk is caught by its CRC and the read is served from another", "[files]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::string data = random_bytes(5 * MiB, 9);
  uint64_t ino = put_file(c, root, "f", data);
  auto located = c.locate(ino);
  REQUIRE(located.ok());
  const auto& chunk = located->chunks(0);

  // Damage the first replica the client will try.
  int victim = -1;
  for (int i = 0; i < cluster.chunkservers(); ++i)
    if (cluster.cs_address(i) == chunk.replicas(0).address()) victim = i;
  REQUIRE(victim >= 0);
  std::string path = cluster.cs_chunk_path(victim, chunk.chunk_id(), chunk.version());
  REQUIRE(std::filesystem::exists(path));
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100 * 1024);
    f.write("garbage!", 8);
  }

  auto fresh = cluster.new_client("v");  // nothing cached
  REQUIRE(fresh.ok());
  REQUIRE(get_file(**fresh, ino) == data);
  REQUIRE(get_file(**fresh, ino) == data);
  // The damaged copy said so in its log.
  REQUIRE(wait_until([&] { return read_text_file(cluster.cs_log(victim)).find("CRC") != std::string::npos; }));
}

TEST_CASE("a client keeps no state for files it read and closed", "[files]") {
  Cluster cluster(2);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::vector<uint64_t> inodes;
  for (int i = 0; i < 50; ++i) inodes.push_back(put_file(c, root, "f" + std::to_string(i), random_bytes(3000, i)));
  auto reader = cluster.new_client("v");
  REQUIRE(reader.ok());
  for (size_t i = 0; i < inodes.size(); ++i) {
    REQUIRE((*reader)->open(inodes[i]).ok());
    REQUIRE(get_file(**reader, inodes[i]) == random_bytes(3000, static_cast<int>(i)));
    (*reader)->release(inodes[i]);
  }
  REQUIRE(wait_until([&] { return (*reader)->cache_stats().files_held == 0; }));
}
