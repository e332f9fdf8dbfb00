// The chunk layer's parts: owners of a chunk (many files in one chunk) and byte-range locks.
#include <vector>

#include <catch2/catch.hpp>

#include "master/chunks/owners.h"
#include "master/chunks/range_locks.h"
#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using keelfs::master::test::Fixture;

TEST_CASE("chunk owners: a chunk held by two files outlives the first unlink and is freed by the last") {
  Fixture f;
  const uint64_t a = f.create(f.root, "a"), b = f.create(f.root, "b");
  // A packed chunk: a's bytes at [0, 4096) of chunk 900, b's at [4096, 5096).
  {
    Batch batch = f.store->batch();
    pb::ChunkRecord rec;
    rec.set_version(3);
    rec.set_goal(2);
    rec.set_length(5096);
    rec.set_volume_id(*f.ns->volume_of(a));
    add_owner(&rec, chunk_owner(a, 0, 0, 4096));
    add_owner(&rec, chunk_owner(b, 0, 4096, 1000));
    batch.put_chunk(900, rec);
    pb::FileExtent ea, eb;
    ea.set_chunk_id(900);
    eb.set_chunk_id(900);
    eb.set_chunk_offset(4096);
    batch.put_extent(a, 0, ea);
    batch.put_extent(b, 0, eb);
    REQUIRE(f.store->commit(batch).ok());
  }
  std::vector<FreedChunk> freed;
  REQUIRE(f.unlink(f.root, "a", &freed).ok());
  REQUIRE(freed.empty());
  auto rec = f.store->get_chunk(900);
  REQUIRE(rec.ok());
  REQUIRE(*rec);
  REQUIRE(owners_of(**rec).size() == 1);
  REQUIRE(owned_by(**rec, b, 0));
  REQUIRE(!owned_by(**rec, a));
  REQUIRE(f.unlink(f.root, "b", &freed).ok());
  REQUIRE(freed.size() == 1);
  REQUIRE(freed[0].chunk_id == 900);
  REQUIRE(freed[0].version == 3);
  REQUIRE(!*f.store->get_chunk(900));
}

TEST_CASE("chunk owners: a record written before owners existed names its one owner, and moves it on change") {
  pb::ChunkRecord old;
  old.set_inode(42);
  old.set_index(3);
  REQUIRE(owners_of(old).size() == 1);
  REQUIRE(owned_by(old, 42, 3));
  add_owner(&old, chunk_owner(43, 0, 100, 10));
  REQUIRE(old.inode() == 0);
  REQUIRE(old.owners_size() == 2);
  REQUIRE(!drop_owner(&old, 42, 3));
  REQUIRE(drop_owner(&old, 43, 0));
}

TEST_CASE("range locks: disjoint ranges of a chunk are held at once, overlapping ones take turns in order") {
  asio::io_context io(1);
  RangeLocks locks;
  std::vector<std::string> order;
  auto hold = [&](uint64_t chunk, uint64_t begin, uint64_t end, std::string name, Event* release) -> awaitable<void> {
    auto guard = co_await locks.lock(chunk, begin, end);
    order.push_back(name + "+");
    co_await release->wait();
    order.push_back(name + "-");
  };
  Event ra(io.get_executor()), rb(io.get_executor()), rc(io.get_executor()), rd(io.get_executor());
  asio::co_spawn(io, hold(1, 0, 100, "a", &ra), asio::detached);
  asio::co_spawn(io, hold(1, 100, 200, "b", &rb), asio::detached);  // disjoint from a
  asio::co_spawn(io, hold(1, 50, 150, "c", &rc), asio::detached);   // overlaps both
  asio::co_spawn(io, hold(2, 0, 100, "d", &rd), asio::detached);    // another chunk
  io.run_for(std::chrono::milliseconds(20));
  REQUIRE(order == std::vector<std::string>{"a+", "b+", "d+"});
  REQUIRE(locks.held() == 3);
  ra.notify();
  io.run_for(std::chrono::milliseconds(20));
  REQUIRE(order == std::vector<std::string>{"a+", "b+", "d+", "a-"});  // c still waits for b
  rb.notify();
  io.run_for(std::chrono::milliseconds(20));
  REQUIRE(order == std::vector<std::string>{"a+", "b+", "d+", "a-", "b-", "c+"});
  rc.notify();
  rd.notify();
  io.run_for(std::chrono::milliseconds(20));
  REQUIRE(locks.held() == 0);
}
