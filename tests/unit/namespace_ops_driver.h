// Random sequences of namespace operations, chosen by a stream of bytes: names from a tiny
// alphabet (so that they collide), inodes that may be gone, hard links, renames over
// names and exchanges, truncates with cuts, chunks written, files packed, moved out of and
// compacted between packs, files open across their unlink. After every operation it checks
// that a refused one changed nothing in the store, and that every directory's figures are
// what a walk of the tree counts. Shared by a unit test (seeded bytes) and a fuzz target
// (the fuzzer's bytes); no test framework inside.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "master/namespace.h"
#include "tests/unit/dir_figures_check.h"

namespace keelfs::master::test {

class NamespaceOpsDriver {
 public:
  // `next_byte` is called for every choice; the driver stops when it returns -1.
  NamespaceOpsDriver(MetaStore& store, Namespace& ns, uint64_t root, std::function<int()> next_byte)
      : store_(store), ns_(ns), root_(root), next_(std::move(next_byte)) {
    dirs_.push_back(root);
  }

  // Runs operations until the bytes run out or `max_ops` ran; returns the first problem
  // found ("" when none), with the operations that led to it.
  std::string run(int max_ops) {
    volume_ = *ns_.volume_of(root_);
    if (!ns_.add_pack(pack_, volume_, 2, kSession).ok()) return "cannot add the first pack";
    for (int i = 0; i < max_ops && !done_; ++i) {
      const std::string before = snapshot();
      const Status st = step();
      if (done_) break;
      log_ += " -> " + (st.ok() ? std::string("ok") : st.to_string()) + "\n";
      if (!st.ok() && snapshot() != before) return "a refused operation changed the store:\n" + log_;
      const std::string problems = DirFiguresCheck(store_).run(root_);
      if (!problems.empty()) return problems + "after:\n" + log_;
    }
    return "";
  }

 private:
  static constexpr uint64_t kSession = 7;

  int byte() {
    const int b = next_();
    if (b < 0) done_ = true;
    return b < 0 ? 0 : b;
  }
  std::string name() { return std::string(1, static_cast<char>('a' + byte() % 4)); }
  uint64_t dir() { return dirs_[byte() % dirs_.size()]; }
  uint64_t file() { return files_.empty() ? root_ : files_[byte() % files_.size()]; }

  std::string snapshot() {
    std::string all;
    (void)store_.for_each_record([&](const std::string& cf, const std::string& k, const std::string& v) {
      if (cf == "counters") return;  // ids allocated by a refused change are skipped, by design
      all += cf + "\x01" + k + "\x02" + v + "\x03";
    });
    return all;
  }

  Status step() {
    switch (byte() % 16) {
      case 0: {
        pb::MkdirReq req;
        req.set_parent(dir());
        req.set_name(name());
        req.set_mode(0755);
        log_ += "mkdir " + std::to_string(req.parent()) + "/" + req.name();
        auto a = ns_.mkdir(req);
        if (a.ok()) dirs_.push_back(a->inode());
        return a.status();
      }
      case 1:
      case 2: {
        pb::CreateReq req;
        req.set_parent(dir());
        req.set_name(name());
        req.set_mode(0644);
        req.set_truncate(byte() % 2);
        log_ += "create " + std::to_string(req.parent()) + "/" + req.name() + (req.truncate() ? " O_TRUNC" : "");
        auto a = ns_.create(req, &freed_);
        if (a.ok()) files_.push_back(a->inode());
        return a.status();
      }
      case 3: {
        pb::LinkReq req;
        req.set_inode(file());
        req.set_new_parent(dir());
        req.set_new_name(name());
        log_ += "link " + std::to_string(req.inode()) + " as " + std::to_string(req.new_parent()) + "/" + req.new_name();
        return ns_.link(req).status();
      }
      case 4: {
        pb::UnlinkReq req;
        req.set_parent(dir());
        req.set_name(name());
        log_ += "unlink " + std::to_string(req.parent()) + "/" + req.name();
        return ns_.unlink(req, &freed_);
      }
      case 5: {
        pb::UnlinkReq req;
        req.set_parent(dir());
        req.set_name(name());
        log_ += "rmdir " + std::to_string(req.parent()) + "/" + req.name();
        return ns_.rmdir(req);
      }
      case 6:
      case 7: {
        pb::RenameReq req;
        req.set_parent(dir());
        req.set_name(name());
        req.set_new_parent(dir());
        req.set_new_name(name());
        const int how = byte() % 4;
        if (how == 1) req.set_flags(pb::RF_NOREPLACE);
        if (how == 2) req.set_flags(pb::RF_EXCHANGE);
        log_ += "rename " + std::to_string(req.parent()) + "/" + req.name() + " " + std::to_string(req.new_parent()) +
                "/" + req.new_name() + " flags " + std::to_string(req.flags());
        return ns_.rename(req, &freed_);
      }
      case 8: {
        const uint64_t ino = file();
        static const uint64_t kSizes[] = {0, 10, 700, 3000, kChunkSize + 100};
        const uint64_t size = kSizes[byte() % 5];
        log_ += "truncate " + std::to_string(ino) + " to " + std::to_string(size);
        // Growing over a pending cut needs the cut made first, as the service does.
        auto pending = ns_.cut_pending_before(ino, size);
        if (pending.ok() && *pending) RETURN_IF_ERROR(make_cut(ino, **pending));
        pb::SetattrReq req;
        req.set_inode(ino);
        req.set_mask(pb::SET_SIZE);
        req.set_size(size);
        return ns_.setattr(req, &freed_).status();
      }
      case 9: {
        const uint64_t ino = file();
        const uint64_t index = byte() % 2;
        const uint64_t length = 1 + byte() * 20;
        log_ += "write " + std::to_string(length) + " bytes at chunk " + std::to_string(index) + " of " +
                std::to_string(ino);
        auto packed = ns_.packed_extent(ino);
        if (packed.ok() && *packed) return unpack(ino, **packed);  // a write in place moves it out first
        auto pending = ns_.cut_pending_before(ino, index * kChunkSize + length);
        if (pending.ok() && *pending) RETURN_IF_ERROR(make_cut(ino, **pending));
        auto chunk = ns_.chunk_at(ino, index);
        RETURN_IF_ERROR(chunk.status());
        uint64_t id = *chunk ? (*chunk)->chunk_id : next_chunk_++;
        if (!*chunk) RETURN_IF_ERROR(ns_.add_chunk(ino, index, id).status());
        pb::WriteEndReq req;
        req.set_inode(ino);
        req.set_chunk_id(id);
        req.set_chunk_length(length);
        req.set_file_size(index * kChunkSize + length);
        return ns_.write_end(req).status();
      }
      case 10: {
        const uint64_t ino = file();
        const uint64_t length = 1 + byte() * 3;
        auto attr = ns_.getattr(ino);
        RETURN_IF_ERROR(attr.status());
        pb::PackCommitReq req;
        req.set_inode(ino);
        req.set_chunk_id(pack_);
        req.set_offset(pack_end_);
        req.set_length(length);
        req.set_file_size(length);
        req.set_base_size(attr->size());
        log_ += "pack " + std::to_string(ino) + ": " + std::to_string(length) + " bytes";
        uint64_t growth = 0;
        auto a = ns_.pack_commit(req, kSession, &freed_, &growth);
        if (a.ok()) pack_end_ += length;
        return a.status();
      }
      case 11: {
        const uint64_t ino = file();
        log_ += "open " + std::to_string(ino);
        return ns_.open(kSession + byte() % 2, ino).status();
      }
      case 12: {
        const uint64_t ino = file();
        log_ += "release " + std::to_string(ino);
        return ns_.release(kSession + byte() % 2, ino, &freed_);
      }
      case 13: {
        log_ += "session ends";
        return ns_.release_session(kSession + 1, &freed_);
      }
      case 14: {
        log_ += "compact pack " + std::to_string(pack_);
        return compact();
      }
      default: {
        const uint64_t ino = file();
        log_ += "cut pending cuts of " + std::to_string(ino);
        auto attr = ns_.getattr(ino);
        RETURN_IF_ERROR(attr.status());
        if (attr->size() % kChunkSize == 0) return Status::Ok();
        return make_cut(ino, attr->size() / kChunkSize);
      }
    }
  }

  // The service's part of a truncate: the chunk cut on its servers under a new version.
  Status make_cut(uint64_t ino, uint64_t index) {
    ASSIGN_OR_RETURN(auto chunk, ns_.chunk_at(ino, index));
    if (!chunk || !chunk->pending_cut) return Status::Ok();
    return ns_.set_chunk_version(chunk->chunk_id, chunk->version + 1, *chunk->pending_cut);
  }

  // CHUNK_FOR_WRITE of a packed file, then UNPACK_END once its bytes are copied.
  Status unpack(uint64_t ino, const pb::FileExtent& packed) {
    const uint64_t id = next_chunk_++;
    RETURN_IF_ERROR(ns_.begin_unpack(ino, id, 2, &freed_));
    pb::UnpackEndReq req;
    req.set_inode(ino);
    req.set_chunk_id(id);
    req.set_length(packed.length());
    req.set_packed_chunk(packed.chunk_id());
    req.set_packed_offset(packed.chunk_offset());
    return ns_.unpack_end(req, &freed_);
  }

  // The session's pack is sealed and its files copied into a new one, as compaction does.
  Status compact() {
    const uint64_t from = pack_, to = next_chunk_++;
    RETURN_IF_ERROR(ns_.seal_pack(from, &freed_));
    RETURN_IF_ERROR(ns_.add_pack(to, volume_, 2, kSession));
    pack_ = to;
    pack_end_ = 0;
    bool more = false;
    ASSIGN_OR_RETURN(auto files, ns_.pack_files(from, 0, 1000, &more));
    std::vector<PackMove> moves;
    for (const PackedFile& f : files) {
      moves.push_back({f.inode, f.offset, pack_end_, f.length});
      pack_end_ += f.length;
    }
    return ns_.move_packed(from, to, moves, &freed_);
  }

  MetaStore& store_;
  Namespace& ns_;
  uint64_t root_;
  std::function<int()> next_;
  bool done_ = false;
  uint64_t volume_ = 0;
  uint64_t pack_ = 1u << 30;
  uint64_t pack_end_ = 0;
  uint64_t next_chunk_ = (1u << 30) + 1;
  std::vector<uint64_t> dirs_;
  std::vector<uint64_t> files_;
  std::vector<FreedChunk> freed_;
  std::string log_;
};

}  // namespace keelfs::master::test
