// Recounts every directory's figures (DirDelta, master/store.h) by walking the tree, straight
// from the store's records, and compares them with the stored ones. Shared by the
// accounting tests and the random operation sequences; no test framework inside, so that
// a fuzz target can use it too.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "master/store.h"

namespace keelfs::master::test {

struct Figures {
  uint64_t files = 0, dirs = 0, logical = 0, chunks = 0, chunk_bytes = 0, packed = 0;
  bool operator==(const Figures& o) const {
    return files == o.files && dirs == o.dirs && logical == o.logical && chunks == o.chunks &&
           chunk_bytes == o.chunk_bytes && packed == o.packed;
  }
  void add(const Figures& f) {
    files += f.files;
    dirs += f.dirs;
    logical += f.logical;
    chunks += f.chunks;
    chunk_bytes += f.chunk_bytes;
    packed += f.packed;
  }
};

inline std::ostream& operator<<(std::ostream& os, const Figures& f) {
  return os << "{files " << f.files << ", dirs " << f.dirs << ", logical " << f.logical << ", chunks " << f.chunks
            << ", chunk bytes " << f.chunk_bytes << ", packed " << f.packed << "}";
}

inline Figures stored_figures(MetaStore& store, uint64_t dir) {
  auto u = store.get_dir_usage(dir);
  if (!u.ok()) return {};
  auto n = [](int64_t x) { return static_cast<uint64_t>(x); };
  return {n(u->files), n(u->dirs), n(u->logical_bytes), n(u->chunks), n(u->chunk_bytes), n(u->packed_bytes)};
}

// A file's own figures, read straight from its records.
inline Figures own_figures(MetaStore& store, const pb::InodeRecord& rec) {
  Figures out;
  out.files = 1;
  if (rec.attr().type() != pb::FT_REGULAR) return out;
  out.logical = rec.attr().size();
  std::vector<pb::FileExtent> extents;
  (void)store.list_extents(rec.attr().inode(), 0, 0, [&](uint64_t, const pb::FileExtent& e) { extents.push_back(e); });
  std::vector<uint64_t> own;
  for (auto& e : extents) {
    if (e.length() > 0)
      out.packed += e.length();
    else
      own.push_back(e.chunk_id());
  }
  if (rec.unpack_chunk()) own.push_back(rec.unpack_chunk());
  for (uint64_t id : own) {
    auto chunk = store.get_chunk(id);
    if (!chunk.ok() || !*chunk) continue;
    out.chunks += 1;
    out.chunk_bytes += (*chunk)->length();
  }
  return out;
}

class DirFiguresCheck {
 public:
  explicit DirFiguresCheck(MetaStore& store) : store_(store) {}

  // "" when every directory's stored figures are what the tree below it holds, and every
  // file is counted in a directory holding one of its names; else what differs.
  std::string run(uint64_t root) {
    walk(root);
    for (const auto& [ino, dirs] : names_in_) {
      auto rec = store_.get_inode(ino);
      if (!rec.ok()) continue;
      if (!dirs.count(rec->parent()))
        problems_ << "inode " << ino << " is counted in directory " << rec->parent() << ", which holds none of its names\n";
    }
    return problems_.str();
  }

 private:
  Figures walk(uint64_t dir) {
    Figures total;
    std::vector<Dentry> entries;
    bool more = false;
    if (!store_.list_dentries(dir, "", 1000000, &entries, &more).ok()) {
      problems_ << "cannot list directory " << dir << "\n";
      return total;
    }
    for (const Dentry& d : entries) {
      if (d.type == pb::FT_DIRECTORY) {
        total.add(walk(d.inode));
        total.dirs += 1;
      } else {
        names_in_[d.inode].insert(dir);
      }
    }
    for (const Dentry& d : entries) {
      if (d.type == pb::FT_DIRECTORY || counted_.count(d.inode)) continue;
      auto rec = store_.get_inode(d.inode);
      if (!rec.ok()) {
        problems_ << "entry names inode " << d.inode << ", which does not exist\n";
        continue;
      }
      if (rec->parent() != dir) continue;  // counted in the directory of another of its names
      counted_.insert(d.inode);
      total.add(own_figures(store_, *rec));
    }
    const Figures stored = stored_figures(store_, dir);
    if (!(stored == total)) problems_ << "directory " << dir << ": stored " << stored << ", the tree holds " << total << "\n";
    return total;
  }

  MetaStore& store_;
  std::ostringstream problems_;
  std::map<uint64_t, std::set<uint64_t>> names_in_;
  std::set<uint64_t> counted_;
};

}  // namespace keelfs::master::test
