// DirWatches: which client connections keep a snapshot of a directory's names and want to
// hear (DIR_CHANGED) before another client's change to those names is answered. A watch
// is one-shot: the change that is told ends it, and the client asks again with its next
// READDIR. Only the master's thread uses it.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/rpc.h"

namespace keelfs::master {

class DirWatches {
 public:
  // Starts watching `dir` for `conn`; false when the table is full (the client then keeps
  // no watched snapshot, which is only slower).
  bool watch(uint64_t dir, const ConnectionPtr& conn);
  // Ends and returns the watches on `dir` of every open connection but `changer`'s: a
  // client applies its own changes to its snapshots.
  std::vector<ConnectionPtr> take(uint64_t dir, const Connection* changer);
  // The connection closed: its watches go.
  void forget(const Connection* conn);
  size_t size() const { return count_; }

 private:
  static constexpr size_t kMaxWatches = 1 << 20;
  std::unordered_map<uint64_t, std::vector<std::weak_ptr<Connection>>> by_dir_;
  size_t count_ = 0;
};

}  // namespace keelfs::master
