#include "master/watches.h"

#include <algorithm>

namespace keelfs::master {

bool DirWatches::watch(uint64_t dir, const ConnectionPtr& conn) {
  auto& watchers = by_dir_[dir];
  for (const auto& w : watchers)
    if (w.lock() == conn) return true;
  if (count_ >= kMaxWatches) {
    if (watchers.empty()) by_dir_.erase(dir);
    return false;
  }
  watchers.push_back(conn);
  ++count_;
  return true;
}

std::vector<ConnectionPtr> DirWatches::take(uint64_t dir, const Connection* changer) {
  std::vector<ConnectionPtr> taken;
  auto it = by_dir_.find(dir);
  if (it == by_dir_.end()) return taken;
  std::vector<std::weak_ptr<Connection>> kept;
  for (auto& w : it->second) {
    ConnectionPtr conn = w.lock();
    if (conn && conn.get() == changer)
      kept.push_back(std::move(w));
    else if (conn && conn->is_open())
      taken.push_back(std::move(conn));
  }
  count_ -= it->second.size() - kept.size();
  if (kept.empty())
    by_dir_.erase(it);
  else
    it->second = std::move(kept);
  return taken;
}

void DirWatches::forget(const Connection* conn) {
  for (auto it = by_dir_.begin(); it != by_dir_.end();) {
    auto& watchers = it->second;
    size_t before = watchers.size();
    std::erase_if(watchers, [&](const std::weak_ptr<Connection>& w) {
      ConnectionPtr c = w.lock();
      return !c || c.get() == conn;
    });
    count_ -= before - watchers.size();
    it = watchers.empty() ? by_dir_.erase(it) : std::next(it);
  }
}

}  // namespace keelfs::master
