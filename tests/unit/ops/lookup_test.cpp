// master/ops/lookup.cpp: lookup, getattr, readdir, volume_of (on a real RocksDB store in a temporary directory).
#include <stdlib.h>

#include <filesystem>
#include <set>

#include <catch2/catch.hpp>

#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using namespace keelfs::master::test;

TEST_CASE("readdir pages are stable while entries come and go", "[namespace]") {
  Fixture f;
  for (int i = 0; i < 250; ++i) f.create(f.root, "f" + std::to_string(1000 + i));
  std::set<std::string> seen;
  std::string after;
  int pages = 0;
  for (;;) {
    pb::ReaddirReq req;
    req.set_inode(f.root);
    req.set_after(after);
    req.set_max_entries(100);
    auto page = f.ns->readdir(req);
    REQUIRE(page.ok());
    for (auto& e : page->entries()) REQUIRE(seen.insert(e.name()).second);  // never twice
    ++pages;
    if (!page->more()) break;
    after = page->entries().rbegin()->name();
    // Changes between pages: an already listed name goes, a new one comes after the cursor.
    if (pages == 1) {
      REQUIRE(f.unlink(f.root, "f1000", nullptr).ok());
      f.create(f.root, "zz-new");
    }
  }
  REQUIRE(pages == 3);
  REQUIRE(seen.size() == 251);
  REQUIRE(seen.count("zz-new") == 1);
}

TEST_CASE("a name too long to exist is ENAMETOOLONG on lookup, not ENOENT", "[namespace]") {
  Fixture f;
  REQUIRE(f.ns->lookup(f.root, std::string(kMaxNameLength + 1, 'x')).status().is(Code::kNameTooLong));
  REQUIRE(f.ns->lookup(f.root, std::string(kMaxNameLength, 'x')).status().is(Code::kNotFound));
}

TEST_CASE("namespace: volume_of names the volume of every inode, cached or not, and nothing for a missing inode") {
  Fixture f;
  auto other = f.ns->create_volume(keelfs::master::test::volume_create_req("other"));
  REQUIRE(other.ok());
  uint64_t a = f.create(f.root, "a");
  uint64_t b = f.mkdir(other->root_inode(), "b");
  for (int round = 0; round < 2; ++round) {  // the second round is answered from the cache
    REQUIRE(*f.ns->volume_of(a) == *f.ns->volume_of(f.root));
    REQUIRE(*f.ns->volume_of(b) == other->id());
    REQUIRE(*f.ns->volume_of(f.root) != other->id());
  }
  REQUIRE(f.ns->volume_of(b + 1000).status().is(Code::kNotFound));
}
