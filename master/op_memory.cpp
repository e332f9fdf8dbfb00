#include "master/op_memory.h"

#include <spdlog/spdlog.h>

namespace keelfs::master {

OpMemory::OpMemory(MetaStore& store, int64_t now_ms) : store_(store) {
  for (uint64_t client : store_.op_clients()) clients_[client].last_heard_ms = now_ms;
}

void OpMemory::heard(const pb::OpId& op, int64_t now_ms) {
  if (op.client() == 0) return;
  ClientOps& c = clients_[op.client()];
  c.answered_below = std::max(c.answered_below, op.answered_below());
  c.last_heard_ms = now_ms;
}

void OpMemory::prune(int64_t now_ms, int64_t idle_ms) {
  for (auto it = clients_.begin(); it != clients_.end();) {
    ClientOps& c = it->second;
    const bool gone = now_ms - c.last_heard_ms > idle_ms;
    const uint64_t below = gone ? UINT64_MAX : c.answered_below;
    if (below > c.forgotten_below) {
      Status st = store_.forget_ops(it->first, below);
      if (!st.ok()) {
        spdlog::warn("forgetting the answered changes of client {:016x}: {}", it->first, st.message());
        ++it;
        continue;
      }
      c.forgotten_below = below;
    }
    it = gone ? clients_.erase(it) : std::next(it);
  }
}

}  // namespace keelfs::master
