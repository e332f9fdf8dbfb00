// One metadata store for a whole fuzzing run (opening RocksDB per input would make runs
// a hundred times slower): every input gets a volume of its own in it.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "common/auth.h"
#include "master/namespace.h"
#include "master/store.h"

namespace keelfs::fuzz {

struct FuzzStore {
  asio::io_context io;
  std::string dir;
  std::unique_ptr<master::MetaStore> store;
  std::unique_ptr<master::Namespace> ns;
  uint64_t volumes = 0;

  FuzzStore() {
    char tmpl[] = "/tmp/keelfs-fuzz-store-XXXXXX";
    dir = mkdtemp(tmpl);
    auto s = master::MetaStore::open(dir + "/meta", io.get_executor(), 64);
    if (!s.ok()) abort();
    store = std::move(*s);
    ns = std::make_unique<master::Namespace>(*store);
  }
  ~FuzzStore() {
    ns.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
  // A new, empty volume: its root inode.
  uint64_t new_volume() {
    pb::VolumeCreateReq req;
    req.set_name(fmt::format("v{}", ++volumes));
    VolumeKeys keys = volume_keys("fuzz-secret", "fuzz-salt");
    req.set_salt(keys.salt);
    req.set_stored_key(keys.stored_key);
    req.set_server_key(keys.server_key);
    auto v = ns->create_volume(req);
    if (!v.ok()) abort();
    return v->root_inode();
  }
  // The store for the next input: a fresh one every 8 inputs, so that the checks that
  // read the whole store stay fast.
  // The last one is never destroyed: at exit RocksDB's own statics may be gone before it
  // (tests/fuzz/run.sh removes its directory).
  static FuzzStore& get() {
    static FuzzStore* s = nullptr;
    if (!s || s->volumes >= 8) {
      delete s;
      s = new FuzzStore();
    }
    return *s;
  }
};

}  // namespace keelfs::fuzz
