// master/ops/pack.cpp: packs, files committed into them, truncates of packed files, a
// packed file moving into a chunk of its own, and packs freed when sealed and empty (on a
// real RocksDB store in a temporary directory).
#include <catch2/catch.hpp>

#include "tests/unit/namespace_fixture.h"

using namespace keelfs;
using namespace keelfs::master;
using keelfs::master::test::Fixture;

namespace {

constexpr uint64_t kSession = 77;
constexpr uint64_t kPack = 900;

uint64_t volume_id(Fixture& f) { return f.ns->getattr(f.root)->volume_id(); }

pb::PackCommitReq commit_req(uint64_t ino, uint64_t offset, uint64_t length, uint64_t base_size = 0) {
  pb::PackCommitReq req;
  req.set_inode(ino);
  req.set_chunk_id(kPack);
  req.set_offset(offset);
  req.set_length(length);
  req.set_file_size(length);
  req.set_base_size(base_size);
  return req;
}

Result<pb::Attr> commit(Fixture& f, const pb::PackCommitReq& req, std::vector<FreedChunk>* freed = nullptr) {
  std::vector<FreedChunk> ignored;
  uint64_t growth = 0;
  return f.ns->pack_commit(req, kSession, freed ? freed : &ignored, &growth);
}

pb::ChunkRecord pack_record(Fixture& f) {
  auto rec = f.store->get_chunk(kPack);
  REQUIRE(rec.ok());
  REQUIRE(rec->has_value());
  return **rec;
}

}  // namespace

TEST_CASE("pack commit: files become extents of the pack, counted in it; refused commits change nothing",
          "[namespace][packing]") {
  Fixture f;
  REQUIRE(f.ns->add_pack(kPack, volume_id(f), 2, kSession).ok());
  REQUIRE(f.store->list_open_packs() == std::vector<uint64_t>{kPack});
  uint64_t a = f.create(f.root, "a");
  uint64_t b = f.create(f.root, "b");
  auto attr = commit(f, commit_req(a, 0, 1000));
  REQUIRE(attr.ok());
  REQUIRE(attr->size() == 1000);
  REQUIRE(commit(f, commit_req(b, 1000, 24)).ok());
  pb::ChunkRecord pack = pack_record(f);
  REQUIRE(pack.live_extents() == 2);
  REQUIRE(pack.live_bytes() == 1024);
  REQUIRE(pack.length() == 1024);
  REQUIRE(f.store->usage_of(volume_id(f)).packed_bytes() == 1024);
  REQUIRE(f.store->usage_of(volume_id(f)).pack_bytes() == 1024);
  REQUIRE(f.store->usage_of(volume_id(f)).chunk_bytes() == 1024);
  auto located = f.ns->locate(b, 0, 0);
  REQUIRE(located.ok());
  REQUIRE(located->chunks_size() == 1);
  REQUIRE(located->chunks(0).extent_offset() == 1000);
  REQUIRE(located->chunks(0).extent_length() == 24);

  // Refused: another session's pack, a stale base size, a length at the threshold.
  const auto before = f.store->usage_of(volume_id(f)).SerializeAsString();
  uint64_t growth = 0;
  std::vector<FreedChunk> freed;
  REQUIRE(f.ns->pack_commit(commit_req(a, 2000, 10, 1000), kSession + 1, &freed, &growth).status().is(Code::kStaleVersion));
  REQUIRE(commit(f, commit_req(a, 2000, 10, 999)).status().is(Code::kBusy));
  REQUIRE(commit(f, commit_req(a, 2000, kDefaultPackBelow, 1000)).status().is(Code::kInvalidArgument));
  REQUIRE(pack_record(f).live_extents() == 2);
  REQUIRE(f.ns->getattr(a)->size() == 1000);
  REQUIRE(f.store->usage_of(volume_id(f)).SerializeAsString() == before);

  // Rewritten: the old extent is let go, the new one counted.
  REQUIRE(commit(f, commit_req(a, 1024, 500, 1000)).ok());
  pack = pack_record(f);
  REQUIRE(pack.live_extents() == 2);
  REQUIRE(pack.live_bytes() == 524);
  REQUIRE(pack.length() == 1524);
  REQUIRE(f.store->usage_of(volume_id(f)).packed_bytes() == 524);  // 1,000 dead bytes
  REQUIRE(f.store->usage_of(volume_id(f)).pack_bytes() == 1524);

  // Truncated: the extent shrinks, the pack is not cut.
  pb::SetattrReq sa;
  sa.set_inode(a);
  sa.set_mask(pb::SET_SIZE);
  sa.set_size(100);
  REQUIRE(f.ns->setattr(sa, &freed).ok());
  REQUIRE(freed.empty());
  pack = pack_record(f);
  REQUIRE(!pack.has_pending_cut());
  REQUIRE(pack.live_bytes() == 124);
  REQUIRE(f.ns->locate(a, 0, 0)->chunks(0).extent_length() == 100);

  // Unlinked while the pack is open: counted out, the pack stays.
  REQUIRE(f.unlink(f.root, "a", &freed).ok());
  REQUIRE(f.unlink(f.root, "b", &freed).ok());
  REQUIRE(freed.empty());
  REQUIRE(pack_record(f).live_extents() == 0);
  // Sealed and empty: freed, and no longer listed as open.
  REQUIRE(f.ns->seal_pack(kPack, &freed).ok());
  REQUIRE(freed.size() == 1);
  REQUIRE(freed[0].chunk_id == kPack);
  REQUIRE(!f.store->get_chunk(kPack)->has_value());
  REQUIRE(f.store->list_open_packs().empty());
  REQUIRE(f.store->usage_of(volume_id(f)).chunks() == 0);
  REQUIRE(f.store->usage_of(volume_id(f)).chunk_bytes() == 0);
  REQUIRE(f.store->usage_of(volume_id(f)).pack_bytes() == 0);
  REQUIRE(f.store->usage_of(volume_id(f)).packed_bytes() == 0);
}

TEST_CASE("a sealed pack is freed by the unlink of its last file", "[namespace][packing]") {
  Fixture f;
  REQUIRE(f.ns->add_pack(kPack, volume_id(f), 2, kSession).ok());
  uint64_t a = f.create(f.root, "a");
  REQUIRE(commit(f, commit_req(a, 0, 10)).ok());
  std::vector<FreedChunk> freed;
  REQUIRE(f.ns->seal_pack(kPack, &freed).ok());
  REQUIRE(freed.empty());
  // A sealed pack takes no more files.
  uint64_t b = f.create(f.root, "b");
  REQUIRE(commit(f, commit_req(b, 10, 10)).status().is(Code::kStaleVersion));
  REQUIRE(f.unlink(f.root, "a", &freed).ok());
  REQUIRE(freed.size() == 1);
  REQUIRE(!f.store->get_chunk(kPack)->has_value());
}

TEST_CASE("unpack: the file moves into its own chunk only when UNPACK_END names the bytes it still has",
          "[namespace][packing]") {
  Fixture f;
  REQUIRE(f.ns->add_pack(kPack, volume_id(f), 2, kSession).ok());
  uint64_t a = f.create(f.root, "a");
  REQUIRE(commit(f, commit_req(a, 40, 300)).ok());
  std::vector<FreedChunk> freed;
  constexpr uint64_t kOwn = 901, kOwn2 = 902;
  REQUIRE(f.ns->begin_unpack(a, kOwn, 2, &freed).ok());
  // Until the end, the file still reads from its pack.
  REQUIRE(f.ns->locate(a, 0, 0)->chunks(0).chunk_id() == kPack);
  // A move begun again (a client that died half-way) frees the first chunk.
  REQUIRE(f.ns->begin_unpack(a, kOwn2, 2, &freed).ok());
  REQUIRE(freed.size() == 1);
  REQUIRE(freed[0].chunk_id == kOwn);

  pb::UnpackEndReq end;
  end.set_inode(a);
  end.set_chunk_id(kOwn2);
  end.set_length(300);
  end.set_packed_chunk(kPack);
  end.set_packed_offset(41);  // not where the bytes are
  REQUIRE(f.ns->unpack_end(end, &freed).is(Code::kStaleVersion));
  end.set_packed_offset(40);
  REQUIRE(f.ns->unpack_end(end, &freed).ok());
  auto located = f.ns->locate(a, 0, 0);
  REQUIRE(located->chunks(0).chunk_id() == kOwn2);
  REQUIRE(located->chunks(0).extent_length() == 0);
  REQUIRE(located->chunks(0).length() == 300);
  REQUIRE(pack_record(f).live_extents() == 0);
  REQUIRE(f.ns->unpack_end(end, &freed).ok());  // a retry is answered

  // Unlinked: its own chunk goes with it.
  freed.clear();
  REQUIRE(f.unlink(f.root, "a", &freed).ok());
  REQUIRE(freed.size() == 1);
  REQUIRE(freed[0].chunk_id == kOwn2);
}

TEST_CASE("compaction moves only the files still where they were copied from, and frees the old pack",
          "[namespace][packing]") {
  Fixture f;
  REQUIRE(f.ns->add_pack(kPack, volume_id(f), 2, kSession).ok());
  uint64_t a = f.create(f.root, "a");
  uint64_t b = f.create(f.root, "b");
  uint64_t c = f.create(f.root, "c");
  REQUIRE(commit(f, commit_req(a, 0, 100)).ok());
  REQUIRE(commit(f, commit_req(b, 100, 50)).ok());
  REQUIRE(commit(f, commit_req(c, 150, 10)).ok());
  std::vector<FreedChunk> freed;
  REQUIRE(f.ns->seal_pack(kPack, &freed).ok());
  bool more = true;
  auto files = f.ns->pack_files(kPack, 0, 10, &more);
  REQUIRE(files.ok());
  REQUIRE(!more);
  REQUIRE(files->size() == 3);

  constexpr uint64_t kNew = 950;
  REQUIRE(f.ns->add_pack(kNew, volume_id(f), 2, kCompactorSession).ok());
  // Meanwhile: b is truncated (its extent shrinks in place), c is unlinked.
  pb::SetattrReq sa;
  sa.set_inode(b);
  sa.set_mask(pb::SET_SIZE);
  sa.set_size(20);
  REQUIRE(f.ns->setattr(sa, &freed).ok());
  REQUIRE(f.unlink(f.root, "c", &freed).ok());
  std::vector<PackMove> moves = {{a, 0, 0, 100}, {b, 100, 100, 50}, {c, 150, 150, 10}};
  REQUIRE(f.ns->move_packed(kPack, kNew, moves, &freed).ok());
  // The old pack had nothing left: freed.
  REQUIRE(freed.size() == 1);
  REQUIRE(freed[0].chunk_id == kPack);
  auto la = f.ns->locate(a, 0, 0);
  REQUIRE(la->chunks(0).chunk_id() == kNew);
  REQUIRE(la->chunks(0).extent_offset() == 0);
  auto lb = f.ns->locate(b, 0, 0);
  REQUIRE(lb->chunks(0).chunk_id() == kNew);
  REQUIRE(lb->chunks(0).extent_offset() == 100);
  REQUIRE(lb->chunks(0).extent_length() == 20);
  auto rec = f.store->get_chunk(kNew);
  REQUIRE((*rec)->live_extents() == 2);
  REQUIRE((*rec)->live_bytes() == 120);
  REQUIRE((*rec)->length() == 160);  // every byte copied: c's are dead at once
  files = f.ns->pack_files(kNew, 0, 10, &more);
  REQUIRE(files->size() == 2);
  REQUIRE(f.ns->pack_files(kPack, 0, 10, &more)->empty());
}
