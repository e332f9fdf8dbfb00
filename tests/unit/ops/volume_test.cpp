// Creating a volume (the keys of its secret); removing one: gone at once in one small
// commit, its tree deleted a slice at a time afterwards, going on after a restart, leaving
// no record behind.
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/auth.h"
#include "common/crypto.h"
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
  auto made = f.ns->create_volume(keelfs::master::test::volume_create_req("gone"));
  REQUIRE(made.ok());
  uint64_t next_chunk = 500;
  fill(f, made->root_inode(), &next_chunk);
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

TEST_CASE("volume create keeps the keys of the secret, and a store from before keeps working after conversion") {
  Fixture f;
  const keelfs::LoginNonces nonces{"client-nonce-16b", "server-nonce-16b"};
  auto made = f.ns->create_volume(keelfs::master::test::volume_create_req("keyed", "the-secret"));
  REQUIRE(made.ok());
  auto rec = f.ns->find_volume("keyed");
  REQUIRE(rec.ok());
  REQUIRE(rec->secret_hash().empty());
  VolumeKeys keys{rec->secret_salt(), rec->stored_key(), rec->server_key()};
  REQUIRE(check_mount_proof(keys, nonces, "keyed", mount_proof("the-secret", keys.salt, nonces, "keyed")).ok());
  REQUIRE(check_mount_proof(keys, nonces, "keyed", mount_proof("other", keys.salt, nonces, "keyed"))
              .is(Code::kPermissionDenied));
  // Without keys a volume is refused: nobody could ever mount it.
  pb::VolumeCreateReq bare;
  bare.set_name("bare");
  REQUIRE(f.ns->create_volume(bare).status().is(Code::kInvalidArgument));

  // A record as stores kept it before: SHA-256(salt || secret), no keys.
  pb::VolumeRecord old = *rec;
  old.set_name("old");
  old.set_id(rec->id() + 100);
  old.set_secret_salt("old-salt-16bytes");
  old.set_secret_hash(sha256(old.secret_salt() + "old-secret"));
  old.clear_stored_key();
  old.clear_server_key();
  Batch batch = f.store->batch();
  batch.put_volume(old);
  REQUIRE(f.store->commit(batch).ok());
  f.reopen();
  REQUIRE(f.ns->convert_volume_secrets().ok());
  f.reopen();  // the conversion is on disk
  auto converted = f.ns->find_volume("old");
  REQUIRE(converted.ok());
  REQUIRE(converted->secret_hash().empty());
  VolumeKeys old_keys{converted->secret_salt(), converted->stored_key(), converted->server_key()};
  REQUIRE(check_mount_proof(old_keys, nonces, "old", mount_proof("old-secret", old_keys.salt, nonces, "old")).ok());
  REQUIRE(check_master_mount_proof("old-secret", old_keys.salt, nonces, "old",
                                   master_mount_proof(old_keys, nonces, "old"), "m")
              .ok());
}
