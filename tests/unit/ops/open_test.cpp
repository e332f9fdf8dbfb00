// master/ops/open.cpp: files held open, orphans, release (on a real RocksDB store in a temporary directory).
#include <stdlib.h>

#include <filesystem>
#include <set>

#include <catch2/catch.hpp>

#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using namespace keelfs::master::test;

TEST_CASE("a file unlinked while open lives until its last release", "[namespace]") {
  Fixture f;
  constexpr uint64_t kA = 1, kB = 2;  // two sessions
  uint64_t x = f.create(f.root, "x");
  REQUIRE(f.ns->add_chunk(x, 0, 77).ok());
  REQUIRE(f.ns->open(kA, x).ok());
  REQUIRE(f.ns->open(kB, x).ok());
  REQUIRE(f.ns->open(kB, x).ok());
  std::vector<FreedChunk> freed;
  REQUIRE(f.unlink(f.root, "x", &freed).ok());
  REQUIRE(freed.empty());
  REQUIRE(f.ns->lookup(f.root, "x").status().is(Code::kNotFound));
  REQUIRE(f.ns->getattr(x)->nlink() == 0);  // fstat of the open file
  REQUIRE(f.ns->chunk(77)->has_value());   // and its data are still there
  pb::LinkReq link;                         // a file without names gets none back
  link.set_inode(x);
  link.set_new_parent(f.root);
  link.set_new_name("again");
  REQUIRE(f.ns->link(link).status().is(Code::kNotFound));

  REQUIRE(f.ns->release(kA, x, &freed).ok());
  REQUIRE(f.ns->release(kA, x, &freed).ok());  // one release too many changes nothing
  REQUIRE(f.ns->release(kB, x, &freed).ok());
  REQUIRE(f.ns->getattr(x).ok());  // kB holds it once more
  REQUIRE(f.ns->release_session(kB, &freed).ok());
  REQUIRE(f.ns->getattr(x).status().is(Code::kNotFound));
  REQUIRE(freed.size() == 1);
  REQUIRE(!f.ns->chunk(77)->has_value());
  REQUIRE(f.ns->list_volumes()[0].files() == 0);

  // A file that was open and closed again is freed by unlink at once.
  uint64_t y = f.create(f.root, "y");
  REQUIRE(f.ns->open(kA, y).ok());
  REQUIRE(f.ns->release(kA, y, nullptr).ok());
  REQUIRE(f.unlink(f.root, "y", nullptr).ok());
  REQUIRE(f.ns->getattr(y).status().is(Code::kNotFound));
}

TEST_CASE("rename over an open file keeps it; a restart frees what no session holds", "[namespace]") {
  Fixture f;
  uint64_t a = f.create(f.root, "a");
  uint64_t b = f.create(f.root, "b");
  f.ns->hold_open(7, b);
  REQUIRE(f.rename(f.root, "a", f.root, "b").ok());
  REQUIRE(f.ns->lookup(f.root, "b")->inode() == a);
  REQUIRE(f.ns->getattr(b)->nlink() == 0);
  REQUIRE(f.ns->list_volumes()[0].files() == 2);

  f.reopen();  // a master restart: sessions are gone, the orphan is still recorded
  std::vector<FreedChunk> freed;
  REQUIRE(f.ns->drop_orphans(&freed).ok());
  REQUIRE(f.ns->getattr(b).status().is(Code::kNotFound));
  REQUIRE(f.ns->getattr(a).ok());
  REQUIRE(f.ns->list_volumes()[0].files() == 1);
  REQUIRE(f.ns->drop_orphans(&freed).ok());  // nothing left to do
}
