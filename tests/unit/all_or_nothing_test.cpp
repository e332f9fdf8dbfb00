// master/: every namespace operation either commits whole, with its side effects (usage,
// chunks freed), or changes nothing at all: the store's records, the volumes' usage and the
// chunks to delete are compared before and after a commit that fails.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using namespace keelfs::master::test;

namespace {

constexpr uint64_t kMiB = 1 << 20;

// Everything the store holds, and the volume's usage as the master counts it in memory.
struct State {
  std::map<std::pair<std::string, std::string>, std::string> records;
  std::string usage;
  bool operator==(const State&) const = default;
};

State state_of(Fixture& f, uint64_t volume_id) {
  State s;
  REQUIRE(f.store->for_each_record([&](const std::string& cf, const std::string& key, const std::string& value) {
    s.records[{cf, key}] = value;
  }).ok());
  s.usage = f.store->usage_of(volume_id).SerializeAsString();
  return s;
}

// A volume with: directories d (empty) and e (empty), file x of 70 MiB in chunks 101 and
// 102, file y in chunk 103, an empty file z, and an xattr on z.
struct Tree {
  uint64_t d, e, x, y, z, volume_id;
  explicit Tree(Fixture& f) {
    d = f.mkdir(f.root, "d");
    e = f.mkdir(f.root, "e");
    x = f.create(f.root, "x");
    y = f.create(f.root, "y");
    z = f.create(f.root, "z");
    REQUIRE(f.ns->add_chunk(x, 0, 101).ok());
    REQUIRE(f.ns->add_chunk(x, 1, 102).ok());
    REQUIRE(f.ns->add_chunk(y, 0, 103).ok());
    write_end(f, x, 101, 64 * kMiB, 64 * kMiB);
    write_end(f, x, 102, 6 * kMiB, 70 * kMiB);
    write_end(f, y, 103, 5000, 5000);
    pb::SetxattrReq xa;
    xa.set_inode(z);
    xa.set_name("user.a");
    xa.set_value("1");
    REQUIRE(f.ns->setxattr(xa).ok());
    volume_id = *f.ns->volume_of(f.root);
  }
  static void write_end(Fixture& f, uint64_t ino, uint64_t chunk, uint64_t chunk_length, uint64_t file_size) {
    pb::WriteEndReq req;
    req.set_inode(ino);
    req.set_chunk_id(chunk);
    req.set_chunk_length(chunk_length);
    req.set_file_size(file_size);
    REQUIRE(f.ns->write_end(req).ok());
  }
};

using Op = std::function<Status(Fixture&, const Tree&, std::vector<FreedChunk>*)>;

pb::RenameReq rename_req(uint64_t parent, std::string name, uint64_t new_parent, std::string new_name) {
  pb::RenameReq req;
  req.set_parent(parent);
  req.set_name(std::move(name));
  req.set_new_parent(new_parent);
  req.set_new_name(std::move(new_name));
  return req;
}

pb::SetattrReq truncate_req(uint64_t ino, uint64_t size) {
  pb::SetattrReq req;
  req.set_inode(ino);
  req.set_mask(pb::SET_SIZE);
  req.set_size(size);
  return req;
}

pb::UnlinkReq unlink_req(uint64_t parent, std::string name) {
  pb::UnlinkReq req;
  req.set_parent(parent);
  req.set_name(std::move(name));
  return req;
}

const std::vector<std::pair<std::string, Op>>& operations() {
  static const std::vector<std::pair<std::string, Op>> ops = {
      {"mkdir", [](Fixture& f, const Tree&, auto*) {
         pb::MkdirReq req;
         req.set_parent(f.root);
         req.set_name("new");
         return f.ns->mkdir(req).status();
       }},
      {"create", [](Fixture& f, const Tree&, auto* freed) {
         pb::CreateReq req;
         req.set_parent(f.root);
         req.set_name("new");
         return f.ns->create(req, freed).status();
       }},
      {"create with O_TRUNC over a file with data", [](Fixture& f, const Tree&, auto* freed) {
         pb::CreateReq req;
         req.set_parent(f.root);
         req.set_name("x");
         req.set_truncate(true);
         return f.ns->create(req, freed).status();
       }},
      {"symlink", [](Fixture& f, const Tree&, auto*) {
         pb::SymlinkReq req;
         req.set_parent(f.root);
         req.set_name("s");
         req.set_target("x");
         return f.ns->symlink(req).status();
       }},
      {"link", [](Fixture& f, const Tree& t, auto*) {
         pb::LinkReq req;
         req.set_inode(t.y);
         req.set_new_parent(t.d);
         req.set_new_name("y2");
         return f.ns->link(req).status();
       }},
      {"unlink of a file's last name", [](Fixture& f, const Tree&, auto* freed) {
         return f.ns->unlink(unlink_req(f.root, "x"), freed);
       }},
      {"rmdir", [](Fixture& f, const Tree&, auto*) { return f.ns->rmdir(unlink_req(f.root, "d")); }},
      {"rename over a file with data", [](Fixture& f, const Tree&, auto* freed) {
         return f.ns->rename(rename_req(f.root, "y", f.root, "x"), freed);
       }},
      {"rename over an empty directory", [](Fixture& f, const Tree&, auto* freed) {
         return f.ns->rename(rename_req(f.root, "d", f.root, "e"), freed);
       }},
      {"rename into another directory", [](Fixture& f, const Tree& t, auto* freed) {
         return f.ns->rename(rename_req(f.root, "x", t.d, "x"), freed);
       }},
      {"truncate inside a chunk", [](Fixture& f, const Tree& t, auto* freed) {
         return f.ns->setattr(truncate_req(t.x, 10 * kMiB), freed).status();
       }},
      {"chmod and goal", [](Fixture& f, const Tree& t, auto* freed) {
         pb::SetattrReq req;
         req.set_inode(t.x);
         req.set_mask(pb::SET_MODE | pb::SET_GOAL);
         req.set_mode(0600);
         req.set_goal(3);
         return f.ns->setattr(req, freed).status();
       }},
      {"write_end", [](Fixture& f, const Tree& t, auto*) {
         pb::WriteEndReq req;
         req.set_inode(t.y);
         req.set_chunk_id(103);
         req.set_chunk_length(9000);
         req.set_file_size(9000);
         return f.ns->write_end(req).status();
       }},
      {"add_chunk", [](Fixture& f, const Tree& t, auto*) { return f.ns->add_chunk(t.z, 0, 104).status(); }},
      {"set_chunk_version with a cut", [](Fixture& f, const Tree&, auto*) {
         return f.ns->set_chunk_version(101, 2, 1000);
       }},
      {"reserve_append", [](Fixture& f, const Tree& t, auto*) { return f.ns->reserve_append(t.y, 100).status(); }},
      {"setxattr", [](Fixture& f, const Tree& t, auto*) {
         pb::SetxattrReq req;
         req.set_inode(t.z);
         req.set_name("user.b");
         req.set_value("2");
         return f.ns->setxattr(req);
       }},
      {"removexattr", [](Fixture& f, const Tree& t, auto*) { return f.ns->removexattr(t.z, "user.a"); }},
      {"volume resize", [](Fixture& f, const Tree&, auto*) {
         pb::VolumeResizeReq req;
         req.set_name("vol");
         req.set_size_bytes(1ull << 40);
         return f.ns->resize_volume(req).status();
       }},
      {"volume remove", [](Fixture& f, const Tree&, auto*) { return f.ns->remove_volume("vol").status(); }},
  };
  return ops;
}

}  // namespace

TEST_CASE("a namespace operation whose commit fails changes nothing and frees no chunk", "[namespace][atomic]") {
  for (auto& [name, op] : operations()) {
    DYNAMIC_SECTION(name) {
      Fixture f;
      Tree t(f);
      const State before = state_of(f, t.volume_id);
      f.store->set_commit_fault([] { return error(Code::kIOError, "injected: the write failed"); });
      std::vector<FreedChunk> freed;
      Status st = op(f, t, &freed);
      REQUIRE(st.is(Code::kIOError));
      REQUIRE(freed.empty());
      REQUIRE(state_of(f, t.volume_id) == before);
      // The same operation without the fault does change something: the test above
      // compared a real change, not a no-op.
      f.store->set_commit_fault(nullptr);
      REQUIRE(op(f, t, &freed).ok());
      REQUIRE(!(state_of(f, t.volume_id) == before));
    }
  }
}

TEST_CASE("a refused truncate frees nothing: shrinking with an invalid goal leaves the chunks", "[namespace][atomic]") {
  Fixture f;
  Tree t(f);
  const State before = state_of(f, t.volume_id);
  pb::SetattrReq req = truncate_req(t.x, 1);
  req.set_mask(pb::SET_SIZE | pb::SET_GOAL);
  req.set_goal(99);
  std::vector<FreedChunk> freed;
  REQUIRE(f.ns->setattr(req, &freed).status().is(Code::kInvalidArgument));
  REQUIRE(freed.empty());
  REQUIRE(state_of(f, t.volume_id) == before);
}

TEST_CASE("a truncate frees the chunks past the end and marks the cut of the one it splits", "[namespace][atomic]") {
  Fixture f;
  Tree t(f);
  pb::SetattrReq req = truncate_req(t.x, 10 * kMiB);
  std::vector<FreedChunk> freed;
  REQUIRE(f.ns->setattr(req, &freed).ok());
  REQUIRE(freed.size() == 1);
  REQUIRE(freed[0].chunk_id == 102);
  auto cut = f.ns->chunk(101);
  REQUIRE(cut.ok());
  REQUIRE((*cut)->pending_cut == std::optional<uint64_t>(10 * kMiB));
  REQUIRE(f.store->chunks_with_pending_cut() == std::vector<uint64_t>{101});
  REQUIRE(*f.ns->cut_pending_before(t.x, UINT64_MAX) == std::optional<uint64_t>(0));
  REQUIRE(!*f.ns->cut_pending_before(t.x, 5 * kMiB));  // a shrink does not grow past the cut
  f.reopen();  // the mark is in the store, not only in memory
  REQUIRE(f.store->chunks_with_pending_cut() == std::vector<uint64_t>{101});
  // The chunkservers cut it: the mark goes, the length follows.
  REQUIRE(f.ns->set_chunk_version(101, 2, 10 * kMiB).ok());
  REQUIRE(!(*f.ns->chunk(101))->pending_cut);
  REQUIRE((*f.ns->chunk(101))->length == 10 * kMiB);
  REQUIRE(f.store->chunks_with_pending_cut().empty());
  REQUIRE(!*f.ns->cut_pending_before(t.x, UINT64_MAX));
}

TEST_CASE("rename over an empty directory takes it out of the volume's inode count, as rmdir does",
          "[namespace][atomic]") {
  Fixture f;
  Tree t(f);
  const uint64_t files = f.store->usage_of(t.volume_id).files();
  REQUIRE(f.ns->rename(rename_req(f.root, "d", f.root, "e"), nullptr).ok());
  REQUIRE(f.store->usage_of(t.volume_id).files() == files - 1);
  REQUIRE(f.ns->getattr(t.e).status().is(Code::kNotFound));
}

TEST_CASE("a truncate with a new goal drops the chunks past the end and keeps them dropped", "[namespace][atomic]") {
  Fixture f;
  Tree t(f);
  pb::SetattrReq req = truncate_req(t.x, 10 * kMiB);
  req.set_mask(pb::SET_SIZE | pb::SET_GOAL);
  req.set_goal(3);
  std::vector<FreedChunk> freed;
  REQUIRE(f.ns->setattr(req, &freed).ok());
  REQUIRE(freed.size() == 1);
  REQUIRE(freed[0].chunk_id == 102);
  REQUIRE(!*f.ns->chunk(102));  // not written back by the goal change
  REQUIRE((*f.ns->chunk(101))->goal == 3);
  REQUIRE((*f.ns->chunk(101))->pending_cut == std::optional<uint64_t>(10 * kMiB));
}

TEST_CASE("a smaller cut marked while a larger one is made stays pending", "[namespace][atomic]") {
  Fixture f;
  Tree t(f);
  pb::SetattrReq req = truncate_req(t.x, 10 * kMiB);
  REQUIRE(f.ns->setattr(req, nullptr).ok());
  req.set_size(5 * kMiB);  // while the 10 MiB cut is on its way to the chunkservers
  REQUIRE(f.ns->setattr(req, nullptr).ok());
  REQUIRE(f.ns->set_chunk_version(101, 2, 10 * kMiB).ok());  // the 10 MiB cut lands
  REQUIRE((*f.ns->chunk(101))->pending_cut == std::optional<uint64_t>(5 * kMiB));
  REQUIRE(f.ns->set_chunk_version(101, 3, 5 * kMiB).ok());
  REQUIRE(!(*f.ns->chunk(101))->pending_cut);
}
