// master/ops/create.cpp: mkdir, create, symlink, link (on a real RocksDB store in a temporary directory).
#include <stdlib.h>

#include <filesystem>
#include <set>

#include <catch2/catch.hpp>

#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using namespace keelfs::master::test;

TEST_CASE("mkdir, create, lookup and the link counts of directories", "[namespace]") {
  Fixture f;
  uint64_t d = f.mkdir(f.root, "d");
  f.create(d, "file");
  REQUIRE(f.ns->getattr(f.root)->nlink() == 3);
  REQUIRE(f.ns->lookup(d, "file")->type() == pb::FT_REGULAR);
  REQUIRE(f.ns->lookup(d, "nope").status().is(Code::kNotFound));
  REQUIRE(f.ns->lookup(d, "..")->inode() == f.root);
  pb::CreateReq again;
  again.set_parent(d);
  again.set_name("file");
  again.set_exclusive(true);
  REQUIRE(f.ns->create(again, nullptr).status().is(Code::kExists));
  // Without O_EXCL the existing file is opened, and CREATE says it made nothing.
  again.set_exclusive(false);
  bool created = true;
  REQUIRE(f.ns->create(again, nullptr, &created).ok());
  REQUIRE(!created);
  again.set_name("new-file");
  REQUIRE(f.ns->create(again, nullptr, &created).ok());
  REQUIRE(created);
  pb::MkdirReq bad;
  bad.set_parent(d);
  bad.set_name(std::string(300, 'x'));
  REQUIRE(f.ns->mkdir(bad).status().is(Code::kNameTooLong));
  bad.set_name("a/b");
  REQUIRE(f.ns->mkdir(bad).status().is(Code::kInvalidArgument));
}
