// master/: a namespace change named by an OpId is applied once. A retry of one that
// committed is answered from its record; one that failed left no record; records go when
// the client says it needs them no more (OpMemory).
#include <catch2/catch.hpp>

#include "master/op_memory.h"
#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using namespace keelfs::master::test;

namespace {

constexpr uint64_t kClient = 0x5eed;

pb::OpId op(uint64_t seq, bool retry) {
  pb::OpId id;
  id.set_client(kClient);
  id.set_seq(seq);
  id.set_retry(retry);
  return id;
}

}  // namespace

TEST_CASE("a retried change that committed is answered, not applied again", "[namespace][ops]") {
  Fixture f;
  pb::MkdirReq mkdir;
  mkdir.set_parent(f.root);
  mkdir.set_name("d");
  *mkdir.mutable_op() = op(1, false);
  auto made = f.ns->mkdir(mkdir);
  REQUIRE(made.ok());
  *mkdir.mutable_op() = op(1, true);
  auto again = f.ns->mkdir(mkdir);
  REQUIRE(again.ok());
  REQUIRE(again->inode() == made->inode());
  REQUIRE(f.ns->getattr(f.root)->nlink() == 3);  // one directory, not two
  // Without the retry mark the master does not look: the same request is a new change.
  *mkdir.mutable_op() = op(1, false);
  REQUIRE(f.ns->mkdir(mkdir).status().is(Code::kExists));

  pb::CreateReq create;
  create.set_parent(f.root);
  create.set_name("x");
  create.set_exclusive(true);
  *create.mutable_op() = op(2, false);
  auto file = f.ns->create(create, nullptr);
  REQUIRE(file.ok());
  *create.mutable_op() = op(2, true);
  bool created = false;
  auto file_again = f.ns->create(create, nullptr, &created);
  REQUIRE(file_again.ok());
  REQUIRE(file_again->inode() == file->inode());
  REQUIRE(created);

  pb::RenameReq rename;
  rename.set_parent(f.root);
  rename.set_name("x");
  rename.set_new_parent(made->inode());
  rename.set_new_name("y");
  *rename.mutable_op() = op(3, false);
  REQUIRE(f.ns->rename(rename, nullptr).ok());
  f.reopen();  // what the master remembers survives a restart
  *rename.mutable_op() = op(3, true);
  REQUIRE(f.ns->rename(rename, nullptr).ok());
  REQUIRE(f.ns->lookup(made->inode(), "y")->inode() == file->inode());

  pb::UnlinkReq unlink;
  unlink.set_parent(made->inode());
  unlink.set_name("y");
  *unlink.mutable_op() = op(4, false);
  REQUIRE(f.ns->unlink(unlink, nullptr).ok());
  *unlink.mutable_op() = op(4, true);
  REQUIRE(f.ns->unlink(unlink, nullptr).ok());
  *unlink.mutable_op() = op(5, true);  // a retry of a change never applied is applied now
  REQUIRE(f.ns->unlink(unlink, nullptr).is(Code::kNotFound));

  pb::UnlinkReq rmdir;
  rmdir.set_parent(f.root);
  rmdir.set_name("d");
  *rmdir.mutable_op() = op(6, false);
  REQUIRE(f.ns->rmdir(rmdir).ok());
  *rmdir.mutable_op() = op(6, true);
  REQUIRE(f.ns->rmdir(rmdir).ok());
}

TEST_CASE("a refused change leaves no record: its retry is decided afresh", "[namespace][ops]") {
  Fixture f;
  f.mkdir(f.root, "d");
  pb::MkdirReq mkdir;
  mkdir.set_parent(f.root);
  mkdir.set_name("d");
  *mkdir.mutable_op() = op(7, false);
  REQUIRE(f.ns->mkdir(mkdir).status().is(Code::kExists));
  pb::UnlinkReq rmdir;
  rmdir.set_parent(f.root);
  rmdir.set_name("d");
  REQUIRE(f.ns->rmdir(rmdir).ok());
  *mkdir.mutable_op() = op(7, true);
  REQUIRE(f.ns->mkdir(mkdir).ok());
}

TEST_CASE("OpMemory forgets what the client says was answered, and everything of a silent client", "[namespace][ops]") {
  Fixture f;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    pb::MkdirReq mkdir;
    mkdir.set_parent(f.root);
    mkdir.set_name("d" + std::to_string(seq));
    *mkdir.mutable_op() = op(seq, false);
    REQUIRE(f.ns->mkdir(mkdir).ok());
  }
  auto remembered = [&](uint64_t seq) { return f.store->get_op(op(seq, true))->has_value(); };
  OpMemory memory(*f.store, 0);
  REQUIRE(memory.clients() == 1);  // learnt from the store, as after a restart
  pb::OpId heard = op(6, false);
  heard.set_answered_below(4);
  memory.heard(heard, 1000);
  memory.prune(2000, 60000);
  REQUIRE(!remembered(1));
  REQUIRE(!remembered(3));
  REQUIRE(remembered(4));
  REQUIRE(remembered(5));
  memory.prune(1000 + 60001, 60000);  // silent for longer than the limit
  REQUIRE(!remembered(4));
  REQUIRE(!remembered(5));
  REQUIRE(memory.clients() == 0);
}
