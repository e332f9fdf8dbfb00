// libFuzzer target: the master's namespace requests with every field from the fuzzer's
// bytes. Each input is a sequence of (u8 type, u8 length, protobuf body) records applied to
// a volume of its own; inode fields are taken relative to that volume's root (so that an
// input means the same in any run). After each request, every directory's figures must
// be what its tree holds, and a refused request must have changed nothing.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tests/fuzz/fuzz_store.h"
#include "tests/unit/dir_figures_check.h"

using namespace keelfs;
using namespace keelfs::master;

namespace {

std::string snapshot(MetaStore& store) {
  std::string all;
  (void)store.for_each_record([&](const std::string& cf, const std::string& k, const std::string& v) {
    if (cf != "counters") all += cf + "\x01" + k + "\x02" + v + "\x03";
  });
  return all;
}

struct Input {
  uint64_t root;
  uint64_t rel(uint64_t ino) const { return root + ino % 64; }
};

// Applies one request; returns its status.
Status apply(Namespace& ns, const Input& in, int type, const std::string& body, std::vector<FreedChunk>* freed) {
  switch (type % 12) {
    case 0: {
      pb::MkdirReq r;
      if (!r.ParseFromString(body)) return Status::Ok();
      r.set_parent(in.rel(r.parent()));
      r.clear_op();
      return ns.mkdir(r).status();
    }
    case 1: {
      pb::CreateReq r;
      if (!r.ParseFromString(body)) return Status::Ok();
      r.set_parent(in.rel(r.parent()));
      r.clear_op();
      return ns.create(r, freed).status();
    }
    case 2: {
      pb::SymlinkReq r;
      if (!r.ParseFromString(body)) return Status::Ok();
      r.set_parent(in.rel(r.parent()));
      r.clear_op();
      return ns.symlink(r).status();
    }
    case 3: {
      pb::LinkReq r;
      if (!r.ParseFromString(body)) return Status::Ok();
      r.set_inode(in.rel(r.inode()));
      r.set_new_parent(in.rel(r.new_parent()));
      r.clear_op();
      return ns.link(r).status();
    }
    case 4:
    case 5: {
      pb::UnlinkReq r;
      if (!r.ParseFromString(body)) return Status::Ok();
      r.set_parent(in.rel(r.parent()));
      r.clear_op();
      return type % 12 == 4 ? ns.unlink(r, freed) : ns.rmdir(r);
    }
    case 6: {
      pb::RenameReq r;
      if (!r.ParseFromString(body)) return Status::Ok();
      r.set_parent(in.rel(r.parent()));
      r.set_new_parent(in.rel(r.new_parent()));
      r.clear_op();
      return ns.rename(r, freed);
    }
    case 7: {
      pb::SetattrReq r;
      if (!r.ParseFromString(body)) return Status::Ok();
      r.set_inode(in.rel(r.inode()));
      r.set_size(r.size() % (3 * kChunkSize));
      // Growing over a pending cut is the service's to prevent (it makes the cut first).
      auto pending = ns.cut_pending_before(r.inode(), r.size());
      if ((r.mask() & pb::SET_SIZE) && (!pending.ok() || *pending)) return Status::Ok();
      return ns.setattr(r, freed).status();
    }
    case 8: {
      pb::WriteEndReq r;
      if (!r.ParseFromString(body)) return Status::Ok();
      r.set_inode(in.rel(r.inode()));
      r.set_file_size(r.file_size() % (3 * kChunkSize));
      r.set_chunk_length(r.chunk_length() % (kChunkSize + 1));
      return ns.write_end(r).status();
    }
    case 9: {
      pb::AppendReq r;
      if (!r.ParseFromString(body)) return Status::Ok();
      return ns.reserve_append(in.rel(r.inode()), r.length() % kChunkSize).status();
    }
    case 10: {
      pb::SetxattrReq r;
      if (!r.ParseFromString(body)) return Status::Ok();
      r.set_inode(in.rel(r.inode()));
      r.clear_op();
      return ns.setxattr(r);
    }
    default: {
      // A new chunk for a file, as CHUNK_FOR_WRITE records it.
      pb::ChunkForWriteReq r;
      if (!r.ParseFromString(body)) return Status::Ok();
      static uint64_t next_chunk = 1;
      return ns.add_chunk(in.rel(r.inode()), r.index() % 3, next_chunk++).status();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& fs = keelfs::fuzz::FuzzStore::get();
  const Input in{fs.new_volume()};
  std::vector<FreedChunk> freed;
  size_t at = 0;
  while (at + 2 <= size) {
    const int type = data[at];
    const size_t len = std::min<size_t>(data[at + 1], size - at - 2);
    const std::string body(reinterpret_cast<const char*>(data + at + 2), len);
    at += 2 + len;
    const std::string before = snapshot(*fs.store);
    const Status st = apply(*fs.ns, in, type, body, &freed);
    if (!st.ok() && snapshot(*fs.store) != before) {
      std::fprintf(stderr, "request type %d was refused (%s) but changed the store\n", type % 12, st.to_string().c_str());
      std::abort();
    }
    const std::string problems = test::DirFiguresCheck(*fs.store).run(in.root);
    if (!problems.empty()) {
      std::fprintf(stderr, "after request type %d (%s):\n%s\n", type % 12, st.to_string().c_str(), problems.c_str());
      std::abort();
    }
  }
  return 0;
}
