// master/ops/remove.cpp: unlink and rmdir (on a real RocksDB store in a temporary directory).
#include <stdlib.h>

#include <filesystem>
#include <set>

#include <catch2/catch.hpp>

#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using namespace keelfs::master::test;

TEST_CASE("rmdir refuses a non-empty directory", "[namespace]") {
  Fixture f;
  uint64_t d = f.mkdir(f.root, "d");
  f.create(d, "x");
  REQUIRE(f.rmdir(f.root, "d").is(Code::kNotEmpty));
  REQUIRE(f.unlink(d, "x", nullptr).ok());
  REQUIRE(f.rmdir(f.root, "d").ok());
  REQUIRE(f.ns->getattr(f.root)->nlink() == 2);
  REQUIRE(f.ns->getattr(d).status().is(Code::kNotFound));
}

TEST_CASE("hard links count, and the data goes with the last one", "[namespace]") {
  Fixture f;
  uint64_t x = f.create(f.root, "x");
  REQUIRE(f.ns->add_chunk(x, 0, 77).ok());
  pb::LinkReq link;
  link.set_inode(x);
  link.set_new_parent(f.root);
  link.set_new_name("x2");
  REQUIRE(f.ns->link(link)->nlink() == 2);
  std::vector<FreedChunk> freed;
  REQUIRE(f.unlink(f.root, "x", &freed).ok());
  REQUIRE(freed.empty());
  REQUIRE(f.ns->getattr(x)->nlink() == 1);
  REQUIRE(f.unlink(f.root, "x2", &freed).ok());
  REQUIRE(freed.size() == 1);
  REQUIRE(freed[0].chunk_id == 77);
  REQUIRE(f.ns->getattr(x).status().is(Code::kNotFound));
  REQUIRE(!f.ns->chunk(77)->has_value());
}
