// master/accounting.cpp: every directory's figures (files, directories, logical bytes,
// chunks, chunk bytes, packed bytes of everything below it) follow each operation, and
// match what a walk of the tree counts (on a real RocksDB store in a temporary directory).
#include <catch2/catch.hpp>

#include "tests/unit/dir_figures_check.h"
#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using namespace keelfs::master::test;

namespace {

constexpr uint64_t kSession = 5;

Figures stored(Fixture& f, uint64_t dir) { return stored_figures(*f.store, dir); }

void check_tree(Fixture& f) {
  const std::string problems = DirFiguresCheck(*f.store).run(f.root);
  INFO(problems);
  CHECK(problems.empty());
}

void write_end(Fixture& f, uint64_t ino, uint64_t chunk_id, uint64_t size) {
  pb::WriteEndReq req;
  req.set_inode(ino);
  req.set_chunk_id(chunk_id);
  req.set_chunk_length(size);
  req.set_file_size(size);
  REQUIRE(f.ns->write_end(req).ok());
}

Status link(Fixture& f, uint64_t ino, uint64_t dir, const std::string& name) {
  pb::LinkReq req;
  req.set_inode(ino);
  req.set_new_parent(dir);
  req.set_new_name(name);
  return f.ns->link(req).status();
}

Status truncate(Fixture& f, uint64_t ino, uint64_t size) {
  pb::SetattrReq req;
  req.set_inode(ino);
  req.set_mask(pb::SET_SIZE);
  req.set_size(size);
  std::vector<FreedChunk> freed;
  return f.ns->setattr(req, &freed).status();
}

}  // namespace

TEST_CASE("directory figures count everything below, at every depth, as files are made and written",
          "[namespace][accounting]") {
  Fixture f;
  uint64_t a = f.mkdir(f.root, "a");
  uint64_t b = f.mkdir(a, "b");
  uint64_t x = f.create(b, "x");
  REQUIRE(f.ns->add_chunk(x, 0, 100).ok());
  write_end(f, x, 100, 5000);
  uint64_t y = f.create(a, "y");
  REQUIRE(f.ns->add_chunk(y, 0, 101).ok());
  REQUIRE(f.ns->add_chunk(y, 1, 102).ok());
  write_end(f, y, 101, 300);
  pb::SymlinkReq sl;
  sl.set_parent(f.root);
  sl.set_name("s");
  sl.set_target("a/b/x");
  REQUIRE(f.ns->symlink(sl).ok());

  CHECK(stored(f, b) == Figures{1, 0, 5000, 1, 5000, 0});
  CHECK(stored(f, a) == Figures{2, 1, 5300, 3, 5300, 0});
  CHECK(stored(f, f.root) == Figures{3, 2, 5300, 3, 5300, 0});
  // The root's figures are the volume's.
  auto vol = f.ns->list_volumes()[0];
  CHECK(vol.files() == 3 + 2);
  CHECK(vol.logical_bytes() == stored(f, f.root).logical);

  auto du = f.ns->du(a);
  REQUIRE(du.ok());
  CHECK(du->files() == 2);
  CHECK(du->dirs() == 1);
  CHECK(du->physical_bytes() == 5300 * vol.goal());
  auto one = f.ns->du(x);
  REQUIRE(one.ok());
  CHECK(one->files() == 1);
  CHECK(one->logical_bytes() == 5000);
  check_tree(f);

  // A cut made on the chunkservers shrinks the chunk: the directories follow.
  REQUIRE(truncate(f, x, 1000).ok());
  CHECK(stored(f, b).logical == 1000);
  CHECK(stored(f, b).chunk_bytes == 5000);  // the cut is pending
  REQUIRE(f.ns->set_chunk_version(100, 2, 1000).ok());
  CHECK(stored(f, b).chunk_bytes == 1000);
  CHECK(stored(f, f.root).chunk_bytes == 1300);
  check_tree(f);
}

TEST_CASE("directory figures follow renames of files and of whole subtrees, exchanges and replacements",
          "[namespace][accounting]") {
  Fixture f;
  uint64_t a = f.mkdir(f.root, "a");
  uint64_t b = f.mkdir(f.root, "b");
  uint64_t sub = f.mkdir(a, "sub");
  uint64_t x = f.create(sub, "x");
  REQUIRE(f.ns->add_chunk(x, 0, 100).ok());
  write_end(f, x, 100, 700);
  uint64_t y = f.create(b, "y");
  REQUIRE(f.ns->add_chunk(y, 0, 101).ok());
  write_end(f, y, 101, 40);
  check_tree(f);

  REQUIRE(f.rename(a, "sub", b, "sub").ok());  // a subtree moves
  CHECK(stored(f, a) == Figures{});
  CHECK(stored(f, b) == Figures{2, 1, 740, 2, 740, 0});
  check_tree(f);

  REQUIRE(f.rename(b, "y", a, "y").ok());  // a file moves
  CHECK(stored(f, a) == Figures{1, 0, 40, 1, 40, 0});
  check_tree(f);

  REQUIRE(f.rename(a, "y", sub, "x").ok());  // over another file, which goes
  CHECK(stored(f, sub) == Figures{1, 0, 40, 1, 40, 0});
  CHECK(stored(f, a) == Figures{});
  check_tree(f);

  uint64_t z = f.create(a, "z");
  REQUIRE(f.ns->add_chunk(z, 0, 102).ok());
  write_end(f, z, 102, 9);
  REQUIRE(f.rename(a, "z", b, "sub", pb::RF_EXCHANGE).ok());  // a file and a directory trade places
  CHECK(stored(f, a) == Figures{1, 1, 40, 1, 40, 0});
  CHECK(stored(f, b) == Figures{1, 0, 9, 1, 9, 0});
  check_tree(f);

  f.mkdir(b, "empty");
  REQUIRE(f.rename(a, "z", b, "empty").ok());  // a directory over an empty one
  CHECK(stored(f, b) == Figures{2, 1, 49, 2, 49, 0});
  REQUIRE(f.rmdir(f.root, "a").ok());
  CHECK(stored(f, f.root) == Figures{2, 2, 49, 2, 49, 0});
  check_tree(f);
}

TEST_CASE("a file with several names counts once and follows a name that stays; orphans count nowhere",
          "[namespace][accounting]") {
  Fixture f;
  uint64_t a = f.mkdir(f.root, "a");
  uint64_t b = f.mkdir(f.root, "b");
  uint64_t c = f.mkdir(f.root, "c");
  uint64_t x = f.create(a, "x");
  REQUIRE(f.ns->add_chunk(x, 0, 100).ok());
  write_end(f, x, 100, 123);
  REQUIRE(link(f, x, b, "x1").ok());
  REQUIRE(link(f, x, b, "x2").ok());
  CHECK(stored(f, a).files == 1);
  CHECK(stored(f, b).files == 0);
  CHECK(stored(f, f.root).files == 1);
  check_tree(f);

  REQUIRE(f.unlink(a, "x").ok());  // the name it was counted under goes: b counts it now
  CHECK(stored(f, a) == Figures{});
  CHECK(stored(f, b) == Figures{1, 0, 123, 1, 123, 0});
  check_tree(f);

  REQUIRE(f.rename(b, "x1", c, "x1").ok());  // b keeps a name: it keeps the file
  CHECK(stored(f, b).files == 1);
  CHECK(stored(f, c).files == 0);
  REQUIRE(f.rename(b, "x2", c, "x2").ok());  // b's last name leaves: the file follows
  CHECK(stored(f, b) == Figures{});
  CHECK(stored(f, c) == Figures{1, 0, 123, 1, 123, 0});
  check_tree(f);

  REQUIRE(f.unlink(c, "x1").ok());
  CHECK(f.store->get_inode(x)->link_parents().empty());  // one name left
  f.ns->hold_open(kSession, x);
  REQUIRE(f.unlink(c, "x2").ok());  // open: an orphan, in no directory
  CHECK(stored(f, c) == Figures{});
  CHECK(stored(f, f.root) == Figures{0, 3, 0, 0, 0, 0});
  write_end(f, x, 100, 4000);  // an orphan written to moves no directory
  CHECK(stored(f, f.root) == Figures{0, 3, 0, 0, 0, 0});
  std::vector<FreedChunk> freed;
  REQUIRE(f.ns->release(kSession, x, &freed).ok());
  CHECK(freed.size() == 1);
  CHECK(stored(f, f.root) == Figures{0, 3, 0, 0, 0, 0});
  check_tree(f);
}

TEST_CASE("packed files count their packed bytes, through truncate, moving out of the pack and unlink",
          "[namespace][accounting][packing]") {
  Fixture f;
  constexpr uint64_t kPack = 900;
  uint64_t vol = f.ns->getattr(f.root)->volume_id();
  REQUIRE(f.ns->add_pack(kPack, vol, 2, kSession).ok());
  uint64_t d = f.mkdir(f.root, "d");
  uint64_t x = f.create(d, "x");
  pb::PackCommitReq req;
  req.set_inode(x);
  req.set_chunk_id(kPack);
  req.set_offset(0);
  req.set_length(1000);
  req.set_file_size(1000);
  std::vector<FreedChunk> freed;
  uint64_t growth = 0;
  REQUIRE(f.ns->pack_commit(req, kSession, &freed, &growth).ok());
  CHECK(stored(f, d) == Figures{1, 0, 1000, 0, 0, 1000});
  check_tree(f);

  REQUIRE(truncate(f, x, 600).ok());  // the extent shrinks; the pack is never cut
  CHECK(stored(f, d) == Figures{1, 0, 600, 0, 0, 600});
  check_tree(f);

  // Moving into a chunk of its own: the new chunk counts from the start, the packed bytes
  // until the move ends.
  REQUIRE(f.ns->begin_unpack(x, 500, 2, &freed).ok());
  CHECK(stored(f, d) == Figures{1, 0, 600, 1, 0, 600});
  check_tree(f);
  pb::UnpackEndReq end;
  end.set_inode(x);
  end.set_chunk_id(500);
  end.set_length(600);
  end.set_packed_chunk(kPack);
  end.set_packed_offset(0);
  REQUIRE(f.ns->unpack_end(end, &freed).ok());
  CHECK(stored(f, d) == Figures{1, 0, 600, 1, 600, 0});
  check_tree(f);

  REQUIRE(f.unlink(d, "x", &freed).ok());
  CHECK(stored(f, d) == Figures{});
  CHECK(stored(f, f.root) == Figures{0, 1, 0, 0, 0, 0});
}

TEST_CASE("a directory's figures go with it, and a refused change moves none", "[namespace][accounting]") {
  Fixture f;
  uint64_t a = f.mkdir(f.root, "a");
  uint64_t x = f.create(a, "x");
  REQUIRE(f.ns->add_chunk(x, 0, 100).ok());
  write_end(f, x, 100, 10);
  const Figures root_before = stored(f, f.root), a_before = stored(f, a);
  f.store->set_commit_fault([] { return error(Code::kIOError, "injected"); });
  CHECK(!f.unlink(a, "x").ok());
  CHECK(!f.rename(a, "x", f.root, "x").ok());
  f.store->set_commit_fault(nullptr);
  CHECK(stored(f, f.root) == root_before);
  CHECK(stored(f, a) == a_before);

  REQUIRE(f.unlink(a, "x").ok());
  REQUIRE(f.rmdir(f.root, "a").ok());
  CHECK(stored(f, f.root) == Figures{});
  int records = 0;  // the root's is left, a's went with it
  REQUIRE(f.store
              ->for_each_record([&](const std::string& cf, const std::string&, const std::string&) {
                if (cf == "dir_usage") ++records;
              })
              .ok());
  CHECK(records == 1);
}

TEST_CASE("a store written before directories had figures gets them counted once, at start-up",
          "[namespace][accounting]") {
  Fixture f;
  uint64_t a = f.mkdir(f.root, "a");
  uint64_t b = f.mkdir(a, "b");
  uint64_t x = f.create(b, "x");
  REQUIRE(f.ns->add_chunk(x, 0, 100).ok());
  write_end(f, x, 100, 4321);
  REQUIRE(link(f, x, f.root, "x-too").ok());
  uint64_t y = f.create(f.root, "y");
  REQUIRE(f.ns->add_chunk(y, 0, 101).ok());
  write_end(f, y, 101, 10);
  // What such a store looks like: files name no directory, and no directory has figures.
  {
    Batch batch = f.store->batch();
    for (uint64_t ino : {x, y}) {
      auto rec = f.store->get_inode(ino);
      REQUIRE(rec.ok());
      rec->set_parent(0);
      rec->clear_link_parents();
      batch.put_inode(*rec);
    }
    for (uint64_t dir : {f.root, a, b}) batch.delete_dir_usage(dir);
    batch.set_dir_figures_counted(false);
    REQUIRE(f.store->commit(batch).ok());
  }
  f.reopen();
  REQUIRE(!f.store->dir_figures_counted());
  REQUIRE(f.ns->count_dir_figures().ok());
  CHECK(stored(f, f.root) == Figures{2, 2, 4331, 2, 4331, 0});
  CHECK(stored(f, a).dirs == 1);
  check_tree(f);  // x, named in b and in the root, counts in one of them
  f.reopen();
  CHECK(f.store->dir_figures_counted());
  // From here on the figures move with every change, as in a new store.
  REQUIRE(f.unlink(b, "x").ok());
  CHECK(stored(f, b) == Figures{});
  CHECK(stored(f, f.root) == Figures{2, 2, 4331, 2, 4331, 0});
  check_tree(f);
}
