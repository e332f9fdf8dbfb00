// OpMemory: how long the master remembers the changes clients named (OpId), so that a
// retry after a restart or failover is answered instead of applied twice.
//
// The records themselves live in the store (MetaStore "ops", written in the same batch as
// the change). Each request tells which of its client's changes were all answered
// (OpId.answered_below): those are forgotten, a few at a time, every prune(); all of a
// client not heard from for a while are forgotten too. So the store holds about the
// changes in flight, never a history, and memory holds one small entry per client.
//
// Threading: the master's thread.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "keelfs.pb.h"
#include "master/store.h"

namespace keelfs::master {

class OpMemory {
 public:
  // Learns the clients that have records from an earlier run, as if heard from `now_ms`.
  OpMemory(MetaStore& store, int64_t now_ms);
  // A request carrying `op` arrived.
  void heard(const pb::OpId& op, int64_t now_ms);
  // Forgets what clients no longer need, and every record of clients silent for `idle_ms`.
  void prune(int64_t now_ms, int64_t idle_ms);
  size_t clients() const { return clients_.size(); }

 private:
  struct ClientOps {
    uint64_t answered_below = 0;   // as the client last said
    uint64_t forgotten_below = 0;  // as far as prune() deleted
    int64_t last_heard_ms = 0;
  };
  MetaStore& store_;
  std::unordered_map<uint64_t, ClientOps> clients_;
};

}  // namespace keelfs::master
