// Real chunkservers on failing disks (keelfs-chunkserver --disk-fault, chunkserver/disk.h):
// a full disk fails the write it could not take, and every later fsync and close of that
// file says so; a copy whose disk failed under a write is given up and healed, and the
// writer's retry lands on good copies.
#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

TEST_CASE("a full disk fails the write it could not take, every later fsync and close says so, and the data before "
          "it stays",
          "[fault][disk]") {
  ClusterOptions options;
  options.chunkservers = 1;
  // The first chunk write goes through; then the disk is full.
  options.cs_args_of[0] = {"--disk-fault", "pwrite:ENOSPC:skip=1:count=0"};
  Cluster cluster(options);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 1, "", 0, 0);
  const std::string before = random_bytes(300 * 1024, 1);  // a chunk of its own, not packed
  uint64_t kept = put_file(c, root, "before", before);

  pb::CreateReq req;
  req.set_parent(root);
  req.set_name("after");
  req.set_mode(0644);
  auto attr = c.create(req);
  REQUIRE(attr.ok());
  const std::string data = random_bytes(300 * 1024, 2);
  REQUIRE(c.write(attr->inode(), 0, data.data(), data.size()).ok());  // into the write-back buffer
  Status first = c.fsync(attr->inode());
  INFO(first.to_string());
  REQUIRE(first.is(Code::kNoSpace));
  // Never a success for those bytes afterwards: not from a second fsync, nor from a close.
  Status second = c.fsync(attr->inode());
  INFO(second.to_string());
  REQUIRE(second.is(Code::kNoSpace));
  REQUIRE(c.flush(attr->inode()).is(Code::kNoSpace));

  REQUIRE(read_text_file(cluster.cs_log(0)).find("no space left on device") != std::string::npos);
  auto other = cluster.new_client("v");
  REQUIRE(other.ok());
  REQUIRE(get_file(**other, kept) == before);
  auto servers = c.cs_list();
  REQUIRE(servers.ok());
  REQUIRE(servers->size() == 1);
  REQUIRE(servers->at(0).alive());
}

TEST_CASE("a copy whose disk fails under a write is given up and healed; the writer's retry lands on good copies",
          "[fault][disk]") {
  ClusterOptions options;
  options.chunkservers = 3;
  // Chunkserver 0 takes its first chunk write, fails its second with EIO, then is fine.
  options.cs_args_of[0] = {"--disk-fault", "pwrite:EIO:skip=1:count=1"};
  Cluster cluster(options);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 3, "", 0, 0);  // every chain holds chunkserver 0
  const std::string data = random_bytes(300 * 1024, 3);
  uint64_t ino = put_file(c, root, "f", data);
  // An overwrite in the middle: chunkserver 0's pwrite fails into bytes its copy had.
  const std::string patch = random_bytes(4096, 4);
  REQUIRE(c.write(ino, 100000, patch.data(), patch.size()).ok());
  Status synced = c.fsync(ino);
  INFO(synced.to_string());
  REQUIRE(synced.ok());
  std::string expect = data;
  expect.replace(100000, patch.size(), patch);

  REQUIRE(read_text_file(cluster.cs_log(0)).find("the copy is no longer trusted") != std::string::npos);
  REQUIRE(wait_until([&] {
    return read_text_file(cluster.dir() + "/master.log").find("is damaged") != std::string::npos;
  }));
  // Back to three good copies, and every reader sees the new bytes.
  REQUIRE(wait_until([&] {
    auto l = c.locate(ino);
    return l.ok() && l->chunks(0).replicas_size() == 3;
  }, std::chrono::seconds(30)));
  for (int round = 0; round < 3; ++round) {
    auto reader = cluster.new_client("v");
    REQUIRE(reader.ok());
    REQUIRE(get_file(**reader, ino) == expect);
  }
}
