// master/: namespace operations on a real RocksDB store in a temporary directory.
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

TEST_CASE("everything committed survives reopening the store", "[namespace]") {
  Fixture f;
  uint64_t d = f.mkdir(f.root, "d");
  uint64_t x = f.create(d, "x");
  pb::WriteEndReq we;
  we.set_inode(x);
  we.set_file_size(12345);
  REQUIRE(f.ns->write_end(we).ok());
  f.reopen();
  REQUIRE(f.ns->lookup(d, "x")->size() == 12345);
  REQUIRE(f.ns->find_volume("vol")->root_inode() == f.root);
  REQUIRE(f.ns->list_volumes()[0].files() == 2);  // d and x
  REQUIRE(f.ns->list_volumes()[0].logical_bytes() == 12345);
  // New inodes after a reopen never reuse old numbers.
  REQUIRE(f.create(d, "y") > x);
}

TEST_CASE("a name too long to exist is ENAMETOOLONG on lookup, not ENOENT", "[namespace]") {
  Fixture f;
  REQUIRE(f.ns->lookup(f.root, std::string(kMaxNameLength + 1, 'x')).status().is(Code::kNameTooLong));
  REQUIRE(f.ns->lookup(f.root, std::string(kMaxNameLength, 'x')).status().is(Code::kNotFound));
}

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

TEST_CASE("namespace: volume_of names the volume of every inode, cached or not, and nothing for a missing inode") {
  Fixture f;
  pb::VolumeCreateReq req;
  req.set_name("other");
  auto other = f.ns->create_volume(req);
  REQUIRE(other.ok());
  uint64_t a = f.create(f.root, "a");
  uint64_t b = f.mkdir(other->info.root_inode(), "b");
  for (int round = 0; round < 2; ++round) {  // the second round is answered from the cache
    REQUIRE(*f.ns->volume_of(a) == *f.ns->volume_of(f.root));
    REQUIRE(*f.ns->volume_of(b) == other->info.id());
    REQUIRE(*f.ns->volume_of(f.root) != other->info.id());
  }
  REQUIRE(f.ns->volume_of(b + 1000).status().is(Code::kNotFound));
}

TEST_CASE("store: chunk records follow every commit, survive a reopen, and are scanned in slices") {
  Fixture f;
  auto put = [&](uint64_t id, uint32_t version) {
    Batch b = f.store->batch();
    pb::ChunkRecord rec;
    rec.set_version(version);
    b.put_chunk(id, rec);
    REQUIRE(f.store->commit(b).ok());
  };
  for (uint64_t id = 10; id < 20; ++id) put(id, 1);
  put(12, 7);
  {
    Batch b = f.store->batch();
    b.delete_chunk(13);
    REQUIRE(f.store->commit(b).ok());
  }
  REQUIRE((*f.store->get_chunk(12))->version() == 7);
  REQUIRE(!*f.store->get_chunk(13));
  f.reopen();  // loaded from RocksDB again
  REQUIRE((*f.store->get_chunk(12))->version() == 7);
  REQUIRE(!*f.store->get_chunk(13));
  // A sliced scan resumes from the id it returned and visits every record once, in order.
  std::vector<uint64_t> seen;
  uint64_t next = f.store->for_each_chunk_from(0, 3, [&](uint64_t id, const pb::ChunkRecord&) { seen.push_back(id); });
  REQUIRE(next == 14);
  {
    Batch b = f.store->batch();
    b.delete_chunk(15);
    b.delete_chunk(16);
    REQUIRE(f.store->commit(b).ok());
  }
  while (next != 0)
    next = f.store->for_each_chunk_from(next, 3, [&](uint64_t id, const pb::ChunkRecord&) { seen.push_back(id); });
  REQUIRE(seen == std::vector<uint64_t>{10, 11, 12, 14, 17, 18, 19});
  REQUIRE(!*f.store->get_chunk(16));
}
