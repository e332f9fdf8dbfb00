// A namespace on a real RocksDB store in a temporary directory, with one volume "vol":
// the fixture of the master's unit tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "common/auth.h"
#include "master/namespace.h"
#include "master/store.h"

namespace keelfs::master::test {

// A VOLUME_CREATE request as the CLI sends it: with the keys of a secret (common/auth.h).
inline pb::VolumeCreateReq volume_create_req(const std::string& name, const std::string& secret = "test-secret") {
  pb::VolumeCreateReq req;
  req.set_name(name);
  VolumeKeys keys = volume_keys(secret, "test-salt-16byte");
  req.set_salt(keys.salt);
  req.set_stored_key(keys.stored_key);
  req.set_server_key(keys.server_key);
  return req;
}

struct Fixture {
  asio::io_context io;  // the store's executor; outlives the store
  Fixture() {
    char tmpl[] = "/tmp/keelfs-ns-XXXXXX";
    dir = mkdtemp(tmpl);
    reopen();
    auto v = ns->create_volume(volume_create_req("vol"));
    REQUIRE(v.ok());
    root = v->root_inode();
  }
  ~Fixture() {
    ns.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
  void reopen() {
    ns.reset();
    store.reset();
    auto s = MetaStore::open(dir + "/meta", io.get_executor());
    REQUIRE(s.ok());
    store = std::move(*s);
    ns = std::make_unique<Namespace>(*store);
  }
  uint64_t mkdir(uint64_t parent, const std::string& name) {
    pb::MkdirReq req;
    req.set_parent(parent);
    req.set_name(name);
    req.set_mode(0755);
    auto a = ns->mkdir(req);
    REQUIRE(a.ok());
    return a->inode();
  }
  uint64_t create(uint64_t parent, const std::string& name) {
    pb::CreateReq req;
    req.set_parent(parent);
    req.set_name(name);
    req.set_mode(0644);
    req.set_exclusive(true);
    auto a = ns->create(req, nullptr);
    REQUIRE(a.ok());
    return a->inode();
  }
  Status unlink(uint64_t parent, const std::string& name, std::vector<FreedChunk>* freed = nullptr) {
    pb::UnlinkReq req;
    req.set_parent(parent);
    req.set_name(name);
    return ns->unlink(req, freed);
  }
  Status rmdir(uint64_t parent, const std::string& name) {
    pb::UnlinkReq req;
    req.set_parent(parent);
    req.set_name(name);
    return ns->rmdir(req);
  }
  Status rename(uint64_t p, const std::string& n, uint64_t np, const std::string& nn, uint32_t flags = 0) {
    pb::RenameReq req;
    req.set_parent(p);
    req.set_name(n);
    req.set_new_parent(np);
    req.set_new_name(nn);
    req.set_flags(flags);
    return ns->rename(req, nullptr);
  }

  std::string dir;
  std::unique_ptr<MetaStore> store;
  std::unique_ptr<Namespace> ns;
  uint64_t root = 0;
};


}  // namespace keelfs::master::test
