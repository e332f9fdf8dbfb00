// master/store.cpp: what is committed, after a reopen (on a real RocksDB store in a temporary directory).
#include <stdlib.h>

#include <filesystem>
#include <set>

#include <catch2/catch.hpp>

#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using namespace keelfs::master::test;

TEST_CASE("everything committed survives reopening the store", "[namespace]") {
  Fixture f;
  uint64_t d = f.mkdir(f.root, "d");
  uint64_t x = f.create(d, "x");
  pb::WriteEndReq we;
  we.set_inode(x);
  we.set_file_size(12345);
  REQUIRE(f.ns->write_end(we).ok());
  f.reopen();
  REQUIRE(f.ns->lookup(d, "x")->size() == 12345);
  REQUIRE(f.ns->find_volume("vol")->root_inode() == f.root);
  REQUIRE(f.ns->list_volumes()[0].files() == 2);  // d and x
  REQUIRE(f.ns->list_volumes()[0].logical_bytes() == 12345);
  // New inodes after a reopen never reuse old numbers.
  REQUIRE(f.create(d, "y") > x);
}

TEST_CASE("store: chunk records follow every commit, survive a reopen, and are scanned in slices") {
  Fixture f;
  auto put = [&](uint64_t id, uint32_t version) {
    Batch b = f.store->batch();
    pb::ChunkRecord rec;
    rec.set_version(version);
    b.put_chunk(id, rec);
    REQUIRE(f.store->commit(b).ok());
  };
  for (uint64_t id = 10; id < 20; ++id) put(id, 1);
  put(12, 7);
  {
    Batch b = f.store->batch();
    b.delete_chunk(13);
    REQUIRE(f.store->commit(b).ok());
  }
  REQUIRE((*f.store->get_chunk(12))->version() == 7);
  REQUIRE(!*f.store->get_chunk(13));
  f.reopen();  // loaded from RocksDB again
  REQUIRE((*f.store->get_chunk(12))->version() == 7);
  REQUIRE(!*f.store->get_chunk(13));
  // A sliced scan resumes from the id it returned and visits every record once, in order.
  std::vector<uint64_t> seen;
  uint64_t next = f.store->for_each_chunk_from(0, 3, [&](uint64_t id, const pb::ChunkRecord&) { seen.push_back(id); });
  REQUIRE(next == 14);
  {
    Batch b = f.store->batch();
    b.delete_chunk(15);
    b.delete_chunk(16);
    REQUIRE(f.store->commit(b).ok());
  }
  while (next != 0)
    next = f.store->for_each_chunk_from(next, 3, [&](uint64_t id, const pb::ChunkRecord&) { seen.push_back(id); });
  REQUIRE(seen == std::vector<uint64_t>{10, 11, 12, 14, 17, 18, 19});
  REQUIRE(!*f.store->get_chunk(16));
}

namespace {
awaitable<void> wait_durable(MetaStore* store, Status* out) { *out = co_await store->durable(); }
}  // namespace

TEST_CASE("store: after a failed WAL sync nothing is reported durable and no change is accepted", "[namespace]") {
  Fixture f;
  uint64_t a = f.create(f.root, "a");
  f.store->fail_next_syncs(1);
  uint64_t b = f.create(f.root, "b");  // in the WAL, not yet synced
  Status st;
  asio::co_spawn(f.io, wait_durable(f.store.get(), &st), asio::detached);
  f.io.run();
  f.io.restart();
  INFO(st.to_string());
  REQUIRE(st.is(Code::kIOError));
  // The next change is refused, saying why; reads go on.
  pb::MkdirReq mk;
  mk.set_parent(f.root);
  mk.set_name("c");
  mk.set_mode(0755);
  auto refused = f.ns->mkdir(mk);
  REQUIRE(refused.status().is(Code::kIOError));
  REQUIRE(refused.status().message().find("restart") != std::string::npos);
  REQUIRE(f.ns->lookup(f.root, "a")->inode() == a);
  REQUIRE(f.ns->lookup(f.root, "b")->inode() == b);
  // A restart recovers from the disk.
  f.reopen();
  REQUIRE(f.ns->mkdir(mk).ok());
}
