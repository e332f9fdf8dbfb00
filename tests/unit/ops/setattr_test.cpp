// master/ops/setattr.cpp and master/ops/xattr.cpp: attributes and xattrs (on a real RocksDB store in a temporary directory).
#include <stdlib.h>

#include <filesystem>
#include <set>

#include <catch2/catch.hpp>

#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using namespace keelfs::master::test;

TEST_CASE("symlinks, xattrs and setattr", "[namespace]") {
  Fixture f;
  pb::SymlinkReq sl;
  sl.set_parent(f.root);
  sl.set_name("link");
  sl.set_target("../somewhere/else");
  auto s = f.ns->symlink(sl);
  REQUIRE(s.ok());
  REQUIRE(*f.ns->readlink(s->inode()) == "../somewhere/else");

  uint64_t x = f.create(f.root, "x");
  pb::SetxattrReq xa;
  xa.set_inode(x);
  xa.set_name("user.k");
  xa.set_value("v1");
  REQUIRE(f.ns->setxattr(xa).ok());
  xa.set_flags(1);  // XATTR_CREATE
  REQUIRE(f.ns->setxattr(xa).is(Code::kExists));
  REQUIRE(*f.ns->getxattr(x, "user.k") == "v1");
  REQUIRE(f.ns->listxattr(x)->size() == 1);
  REQUIRE(f.ns->removexattr(x, "user.k").ok());
  REQUIRE(f.ns->getxattr(x, "user.k").status().is(Code::kNoData));

  pb::SetattrReq sa;
  sa.set_inode(x);
  sa.set_mask(pb::SET_MODE | pb::SET_UID | pb::SET_MTIME);
  sa.set_mode(0600);
  sa.set_uid(1234);
  sa.set_mtime_sec(-5);
  sa.set_mtime_nsec(999999999);
  auto a = f.ns->setattr(sa, nullptr);
  REQUIRE(a.ok());
  REQUIRE(a->mode() == 0600);
  REQUIRE(a->uid() == 1234);
  REQUIRE(a->mtime_sec() == -5);
  REQUIRE(a->mtime_nsec() == 999999999);
}
