// Removing a volume: gone at once in one small commit, its tree deleted a slice at a time
// afterwards, going on after a restart, leaving no record behind.
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using keelfs::master::test::Fixture;

namespace {

// Every record but the id counters (which only move on).
std::map<std::string, std::string> records(Fixture& f) {
  std::map<std::string, std::string> out;
  REQUIRE(f.store->for_each_record([&](const std::string& cf, const std::string& key, const std::string& value) {
    if (cf != "counters" || key.rfind("removing/", 0) == 0) out[cf + "/" + key] = value;
  }).ok());
  return out;
}

// A volume "gone" of nested directories, files with chunks, a file with two names and an xattr.
void fill(Fixture& f, uint64_t root, uint64_t* next_chunk) {
  uint64_t dir = root;
  for (int depth = 0; depth < 4; ++depth) {
    dir = f.mkdir(dir, "d" + std::to_string(depth));
    for (int i = 0; i < 30; ++i) {
      uint64_t ino = f.create(dir, "f" + std::to_string(i));
      if (i % 3 == 0) REQUIRE(f.ns->add_chunk(ino, 0, (*next_chunk)++).ok());
    }
    f.mkdir(dir, "empty");
  }
  uint64_t linked = f.create(root, "linked");
  REQUIRE(f.ns->add_chunk(linked, 0, (*next_chunk)++).ok());
  pb::LinkReq link;
  link.set_inode(linked);
  link.set_new_parent(dir);
  link.set_new_name("second-name");
  REQUIRE(f.ns->link(link).ok());
  pb::SetxattrReq x;
  x.set_inode(linked);
  x.set_name("user.k");
  x.set_value("v");
  REQUIRE(f.ns->setxattr(x).ok());
}

}  // namespace

TEST_CASE("volume remove: the volume goes at once, its tree in slices, with every record and chunk of it") {
  Fixture f;
  const auto before = records(f);
  pb::VolumeCreateReq create;
  create.set_name("gone");
  auto made = f.ns->create_volume(create);
  REQUIRE(made.ok());
  uint64_t next_chunk = 500;
  fill(f, made->info.root_inode(), &next_chunk);
  const size_t chunks = next_chunk - 500;

  auto removal = f.ns->remove_volume("gone");
  REQUIRE(removal.ok());
  REQUIRE(f.ns->find_volume("gone").status().is(Code::kNotFound));  // gone for everyone at once
  REQUIRE(f.store->list_removing().size() == 1);

  // Cut short by a restart after three slices: the marker makes it go on from the root.
  std::vector<FreedChunk> freed;
  for (int i = 0; i < 3; ++i) REQUIRE(!*f.ns->remove_tree_slice(*removal, 10, &freed));
  f.reopen();
  auto left = f.store->list_removing();
  REQUIRE(left.size() == 1);
  TreeRemoval resumed(*f.store, left[0].first, left[0].second);
  int slices = 0;
  for (bool done = false; !done; ++slices) {
    auto r = f.ns->remove_tree_slice(resumed, 10, &freed);
    REQUIRE(r.ok());
    done = *r;
  }
  REQUIRE(slices > 5);  // many small commits, not one
  REQUIRE(freed.size() == chunks);
  REQUIRE(f.store->list_removing().empty());
  REQUIRE(records(f) == before);
}
