// master/locks: flock and fcntl semantics of the master's lock table.
#include <catch2/catch.hpp>

#include "master/locks.h"

using namespace keelfs;
using namespace keelfs::master;

namespace {

pb::LockReq req(pb::LockKind kind, pb::LockType type, uint64_t owner, uint64_t start = 0, uint64_t end = ~0ull) {
  pb::LockReq r;
  r.set_inode(7);
  r.set_kind(kind);
  r.set_type(type);
  r.set_owner(owner);
  r.set_start(start);
  r.set_end(end);
  return r;
}

}  // namespace

TEST_CASE("flock: shared locks share, exclusive ones exclude, sessions own them", "[locks]") {
  LockTable t;
  REQUIRE(t.set(1, req(pb::LK_FLOCK, pb::LT_READ, 10)).ok());
  REQUIRE(t.set(2, req(pb::LK_FLOCK, pb::LT_READ, 10)).ok());
  REQUIRE(t.set(2, req(pb::LK_FLOCK, pb::LT_WRITE, 10)).is(Code::kWouldBlock));
  REQUIRE(t.set(1, req(pb::LK_FLOCK, pb::LT_UNLOCK, 10)).ok());
  REQUIRE(t.set(2, req(pb::LK_FLOCK, pb::LT_WRITE, 10)).ok());  // upgrade once alone
  REQUIRE(t.set(1, req(pb::LK_FLOCK, pb::LT_READ, 11)).is(Code::kWouldBlock));
  t.release_session(2);  // the pod died
  REQUIRE(t.set(1, req(pb::LK_FLOCK, pb::LT_WRITE, 11)).ok());
  REQUIRE(t.count() == 1);
}

TEST_CASE("fcntl: byte ranges conflict only where they overlap, and unlock splits", "[locks]") {
  LockTable t;
  REQUIRE(t.set(1, req(pb::LK_POSIX, pb::LT_WRITE, 1, 0, 99)).ok());
  REQUIRE(t.set(2, req(pb::LK_POSIX, pb::LT_WRITE, 1, 100, 199)).ok());
  REQUIRE(t.set(2, req(pb::LK_POSIX, pb::LT_READ, 1, 50, 50)).is(Code::kWouldBlock));
  pb::LockResp held = t.test(2, req(pb::LK_POSIX, pb::LT_READ, 1, 60, 70));
  REQUIRE(held.type() == pb::LT_WRITE);
  REQUIRE(held.start() == 0);
  REQUIRE(held.end() == 99);
  // Unlocking the middle leaves two pieces.
  REQUIRE(t.set(1, req(pb::LK_POSIX, pb::LT_UNLOCK, 1, 40, 59)).ok());
  REQUIRE(t.set(2, req(pb::LK_POSIX, pb::LT_WRITE, 1, 45, 55)).ok());
  REQUIRE(t.set(2, req(pb::LK_POSIX, pb::LT_WRITE, 1, 30, 35)).is(Code::kWouldBlock));
  REQUIRE(t.set(2, req(pb::LK_POSIX, pb::LT_WRITE, 1, 65, 70)).is(Code::kWouldBlock));
  REQUIRE(t.count() == 4);
  // fcntl and flock locks do not see each other.
  REQUIRE(t.set(3, req(pb::LK_FLOCK, pb::LT_WRITE, 1)).ok());
  REQUIRE(t.test(3, req(pb::LK_POSIX, pb::LT_WRITE, 1, 1000, 2000)).type() == pb::LT_UNLOCK);
}
