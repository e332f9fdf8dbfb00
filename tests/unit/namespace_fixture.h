// A namespace on a real RocksDB store in a temporary directory, with one volume "vol":
// the fixture of the master's unit tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "master/namespace.h"
#include "master/store.h"

namespace keelfs::master::test {

struct Fixture {
  asio::io_context io;  // the store's executor; outlives the store
  Fixture() {
    char tmpl[] = "/tmp/keelfs-ns-XXXXXX";
    dir = mkdtemp(tmpl);
    reopen();
    pb::VolumeCreateReq req;
    req.set_name("vol");
    auto v = ns->create_volume(req);
    REQUIRE(v.ok());
    root = v->info.root_inode();
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
