// master/ops/rename.cpp: rename (on a real RocksDB store in a temporary directory).
#include <stdlib.h>

#include <filesystem>
#include <set>

#include <catch2/catch.hpp>

#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using namespace keelfs::master::test;

TEST_CASE("rename: replacing, across directories, never into its own subtree", "[namespace]") {
  Fixture f;
  uint64_t a = f.mkdir(f.root, "a");
  uint64_t b = f.mkdir(a, "b");
  uint64_t c = f.mkdir(f.root, "c");
  uint64_t x = f.create(a, "x");
  uint64_t y = f.create(c, "y");

  REQUIRE(f.rename(f.root, "a", b, "a2").is(Code::kLoop));
  REQUIRE(f.rename(f.root, "a", a, "self").is(Code::kLoop));

  // Replacing a file drops the old one.
  REQUIRE(f.rename(a, "x", c, "y").ok());
  REQUIRE(f.ns->lookup(c, "y")->inode() == x);
  REQUIRE(f.ns->getattr(y).status().is(Code::kNotFound));
  REQUIRE(f.ns->lookup(a, "x").status().is(Code::kNotFound));

  // Moving a directory moves its parent link and link counts.
  REQUIRE(f.rename(a, "b", c, "b") .ok());
  REQUIRE(f.ns->lookup(b, "..")->inode() == c);
  REQUIRE(f.ns->getattr(a)->nlink() == 2);
  REQUIRE(f.ns->getattr(c)->nlink() == 3);

  // A directory replaces only an empty directory, and never a file.
  uint64_t e = f.mkdir(f.root, "e");
  f.create(e, "inside");
  REQUIRE(f.rename(c, "b", f.root, "e").is(Code::kNotEmpty));
  REQUIRE(f.rename(c, "b", c, "y").is(Code::kNotDir));
  REQUIRE(f.rename(c, "y", f.root, "e").is(Code::kIsDir));

  REQUIRE(f.rename(c, "y", c, "b", pb::RF_NOREPLACE).is(Code::kExists));
  REQUIRE(f.rename(c, "y", c, "b", pb::RF_EXCHANGE).ok());
  REQUIRE(f.ns->lookup(c, "y")->inode() == b);
  REQUIRE(f.ns->lookup(c, "b")->inode() == x);
}
