// ChunkStore: one data directory's chunk files and their RocksDB index.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <random>
#include <string>

#include "chunkserver/chunk_store.h"
#include "tests/unit/temp_dir.h"

namespace {

using keelfs::ChunkStore;
using keelfs::Code;
using keelfs::kBlockSize;
using keelfs::kChunkSize;
using keelfs::test::pattern;
using keelfs::test::TempDir;

std::unique_ptr<ChunkStore> open_store(const std::string& dir) {
  auto s = ChunkStore::open(dir);
  REQUIRE(s.ok());
  return std::move(s).value();
}

std::string read_all(ChunkStore& store, uint64_t id, uint32_t version) {
  auto r = store.read(id, version, 0, kChunkSize);
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("a written chunk reads back, whole and in slices", "[chunk_store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  REQUIRE(store->create(7, 1).ok());
  std::string data = pattern(3 * kBlockSize + 123, 1);
  REQUIRE(store->write(7, 1, 0, data).ok());

  uint64_t length = 0;
  auto r = store->read(7, 1, 0, data.size(), &length);
  REQUIRE(r.ok());
  CHECK(*r == data);
  CHECK(length == data.size());

  auto slice = store->read(7, 1, kBlockSize - 10, 20);
  REQUIRE(slice.ok());
  CHECK(*slice == data.substr(kBlockSize - 10, 20));

  SECTION("reads are clipped at the chunk's end") {
    auto tail = store->read(7, 1, data.size() - 5, 100);
    REQUIRE(tail.ok());
    CHECK(*tail == data.substr(data.size() - 5));
    auto past = store->read(7, 1, data.size() + 10, 100);
    REQUIRE(past.ok());
    CHECK(past->empty());
  }
  SECTION("creating it again is Exists") { CHECK(store->create(7, 5).is(Code::kExists)); }
  SECTION("a missing chunk is NotFound") {
    CHECK(store->read(8, 1, 0, 1).status().is(Code::kNotFound));
    CHECK(store->write(8, 1, 0, "x").is(Code::kNotFound));
  }
  SECTION("the wrong version is StaleVersion") {
    CHECK(store->read(7, 2, 0, 1).status().is(Code::kStaleVersion));
    CHECK(store->write(7, 2, 0, "x").is(Code::kStaleVersion));
    CHECK(store->sync(7, 2).is(Code::kStaleVersion));
  }
  CHECK(store->sync(7, 1).ok());
}

TEST_CASE("writes at unaligned offsets across block boundaries", "[chunk_store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  REQUIRE(store->create(1, 1).ok());
  std::string model;  // what the chunk must hold

  auto apply = [&](uint64_t offset, const std::string& data) {
    REQUIRE(store->write(1, 1, offset, data).ok());
    if (model.size() < offset + data.size()) model.resize(offset + data.size(), '\0');
    model.replace(offset, data.size(), data);
  };
  apply(100, pattern(kBlockSize, 2));                   // crosses block 0 -> 1, leaves a zero head
  apply(kBlockSize - 1, pattern(2, 3));                 // two bytes straddling the boundary
  apply(3 * kBlockSize + 17, pattern(5000, 4));         // past the end: a gap of zeros
  apply(2 * kBlockSize - 7, pattern(kBlockSize + 9, 5));  // rewrites inside the gap and the old tail
  apply(5, pattern(1, 6));

  CHECK(read_all(*store, 1, 1) == model);
  // Every single-block-crossing slice agrees with the model.
  for (uint64_t off : {uint64_t{0}, uint64_t{99}, uint64_t{kBlockSize - 3}, uint64_t{3 * kBlockSize}}) {
    auto r = store->read(1, 1, off, kBlockSize + 11);
    REQUIRE(r.ok());
    CHECK(*r == model.substr(off, kBlockSize + 11));
  }
}

TEST_CASE("small appends one after the other (a pack) extend the block CRCs, and never bless damage",
          "[chunk_store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  REQUIRE(store->create(2, 1).ok());
  std::string model;
  for (int i = 0; model.size() < 3 * kBlockSize; ++i) {
    std::string piece = pattern(1 + (i * 977) % 5000, 10 + i);
    REQUIRE(store->write(2, 1, model.size(), piece).ok());
    model += piece;
  }
  CHECK(read_all(*store, 2, 1) == model);  // every block's CRC checked on the way

  // A byte of a partly filled block damaged on disk: appending to the block keeps the damage
  // visible (the CRC is extended from what the block should hold).
  const uint64_t at = model.size() - 10;
  int fd = ::open(store->chunk_path(2, 1).c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  char c = static_cast<char>(model[at] ^ 0x01);
  REQUIRE(::pwrite(fd, &c, 1, at) == 1);
  ::close(fd);
  REQUIRE(store->write(2, 1, model.size(), "more").ok());
  CHECK(store->read(2, 1, at - at % kBlockSize, 10).status().is(Code::kCorruption));
}

TEST_CASE("a byte flipped on disk is Corruption naming the block", "[chunk_store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  REQUIRE(store->create(0x1234, 3).ok());
  std::string data = pattern(4 * kBlockSize, 7);
  REQUIRE(store->write(0x1234, 3, 0, data).ok());
  REQUIRE(store->sync(0x1234, 3).ok());

  const uint64_t at = 2 * kBlockSize + 99;  // block 2
  int fd = ::open(store->chunk_path(0x1234, 3).c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  char c = static_cast<char>(data[at] ^ 0x01);
  REQUIRE(::pwrite(fd, &c, 1, at) == 1);
  ::close(fd);

  auto bad = store->read(0x1234, 3, 2 * kBlockSize, 10);
  REQUIRE(bad.status().is(Code::kCorruption));
  CHECK(bad.status().message().find("0000000000001234") != std::string::npos);
  CHECK(bad.status().message().find("block 2") != std::string::npos);
  // Blocks around it are still good.
  auto good = store->read(0x1234, 3, kBlockSize, kBlockSize);
  REQUIRE(good.ok());
  CHECK(*good == data.substr(kBlockSize, kBlockSize));
  // A partial write into the damaged block does not bless it with a fresh CRC.
  CHECK(store->write(0x1234, 3, 2 * kBlockSize, "zz").is(Code::kCorruption));
}

TEST_CASE("set_version renames the file and refuses a wrong old version", "[chunk_store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  REQUIRE(store->create(0xabcdef01, 1).ok());
  REQUIRE(store->write(0xabcdef01, 1, 0, "hello").ok());
  const std::string old_path = store->chunk_path(0xabcdef01, 1);
  CHECK(old_path == dir.path + "/chunks/01/chunk_00000000abcdef01_00000001.dat");
  CHECK(std::filesystem::exists(old_path));

  CHECK(store->set_version(0xabcdef01, 4, 5).is(Code::kStaleVersion));
  REQUIRE(store->set_version(0xabcdef01, 1, 2).ok());
  CHECK_FALSE(std::filesystem::exists(old_path));
  CHECK(std::filesystem::exists(store->chunk_path(0xabcdef01, 2)));
  CHECK(store->read(0xabcdef01, 1, 0, 5).status().is(Code::kStaleVersion));
  CHECK(read_all(*store, 0xabcdef01, 2) == "hello");
  // Repeating a bump that already happened is harmless.
  CHECK(store->set_version(0xabcdef01, 1, 2).ok());
  CHECK(store->set_version(0xabcdef01, 1, 3).is(Code::kStaleVersion));
  CHECK(store->set_version(0x99, 1, 2).is(Code::kNotFound));
}

TEST_CASE("truncate cuts and zero-extends with correct CRCs", "[chunk_store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  REQUIRE(store->create(9, 1).ok());
  std::string data = pattern(3 * kBlockSize + 500, 8);
  REQUIRE(store->write(9, 1, 0, data).ok());

  REQUIRE(store->set_version(9, 1, 2, kBlockSize + 10).ok());  // cut inside block 1
  CHECK(read_all(*store, 9, 2) == data.substr(0, kBlockSize + 10));
  CHECK(std::filesystem::file_size(store->chunk_path(9, 2)) == kBlockSize + 10);

  REQUIRE(store->set_version(9, 2, 3, 2 * kBlockSize + 1).ok());  // extend: zeros
  std::string expect = data.substr(0, kBlockSize + 10) + std::string(kBlockSize - 9, '\0');
  CHECK(read_all(*store, 9, 3) == expect);

  REQUIRE(store->set_version(9, 3, 3, 0).ok());  // same version, cut to nothing
  CHECK(read_all(*store, 9, 3).empty());
  CHECK(store->stat(9)->length == 0);
  CHECK(store->set_version(9, 3, 4, kChunkSize + 1).is(Code::kInvalidArgument));
}

TEST_CASE("a reopened store knows every chunk from its index", "[chunk_store]") {
  TempDir dir;
  std::string big = pattern(2 * kBlockSize + 3, 9);
  {
    auto store = open_store(dir.path);
    REQUIRE(store->create(1, 1).ok());
    REQUIRE(store->create(2, 7).ok());
    REQUIRE(store->create(0x100, 3).ok());
    REQUIRE(store->create(0xff00000000000001ull, 1).ok());
    REQUIRE(store->write(1, 1, 0, "abc").ok());
    REQUIRE(store->write(2, 7, 0, big).ok());
    REQUIRE(store->set_version(0x100, 3, 4).ok());
    REQUIRE(store->remove(0xff00000000000001ull, 0).ok());
    CHECK(store->remove(1, 9).is(Code::kStaleVersion));
  }
  auto store = open_store(dir.path);
  CHECK(store->chunk_count() == 3);
  auto list = store->list();
  std::sort(list.begin(), list.end(), [](auto& a, auto& b) { return a.id < b.id; });
  REQUIRE(list.size() == 3);
  CHECK((list[0].id == 1 && list[0].version == 1 && list[0].length == 3));
  CHECK((list[1].id == 2 && list[1].version == 7 && list[1].length == big.size()));
  CHECK((list[2].id == 0x100 && list[2].version == 4 && list[2].length == 0));
  CHECK(read_all(*store, 2, 7) == big);
  CHECK(read_all(*store, 1, 1) == "abc");
  CHECK(store->read(0xff00000000000001ull, 1, 0, 1).status().is(Code::kNotFound));
  CHECK_FALSE(std::filesystem::exists(store->chunk_path(0xff00000000000001ull, 1)));
}

TEST_CASE("a 1-byte chunk costs one filesystem block", "[chunk_store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  REQUIRE(store->create(42, 1).ok());
  REQUIRE(store->write(42, 1, 0, "x").ok());
  REQUIRE(store->sync(42, 1).ok());
  struct stat st {};
  REQUIRE(::stat(store->chunk_path(42, 1).c_str(), &st) == 0);
  CHECK(st.st_size == 1);
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 <= std::max<uint64_t>(4096, st.st_blksize));
}

TEST_CASE("writes past 64 MiB are refused", "[chunk_store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  REQUIRE(store->create(5, 1).ok());
  CHECK(store->write(5, 1, kChunkSize, "x").is(Code::kInvalidArgument));
  CHECK(store->write(5, 1, kChunkSize - 1, "xy").is(Code::kInvalidArgument));
  CHECK(store->write(5, 1, ~uint64_t{0} - 1, "xy").is(Code::kInvalidArgument));
  REQUIRE(store->write(5, 1, kChunkSize - 1, "z").ok());  // the last byte is fine
  CHECK(store->stat(5)->length == kChunkSize);
  auto r = store->read(5, 1, kChunkSize - 2, 10);
  REQUIRE(r.ok());
  CHECK(*r == std::string("\0z", 2));
}

TEST_CASE("index records encode and decode byte for byte", "[chunk_store]") {
  keelfs::ChunkRecord r;
  r.version = 0x01020304;
  r.length = kBlockSize + 1;
  r.crcs = {0xaabbccdd, 0x11223344};
  r.synced_length = 5;
  r.synced_tail_crc = 0x55667788;
  r.dirty_from = 3;
  std::string bytes = r.encode();
  REQUIRE(bytes.size() == 4 + 8 + 2 * 4 + 8 + 4 + 8);
  CHECK(bytes.substr(20, 8) == std::string("\x05\x00\x00\x00\x00\x00\x00\x00", 8));
  CHECK(bytes.substr(28, 4) == std::string("\x88\x77\x66\x55", 4));
  CHECK(bytes.substr(32, 8) == std::string("\x03\x00\x00\x00\x00\x00\x00\x00", 8));
  CHECK(bytes.substr(0, 4) == std::string("\x04\x03\x02\x01", 4));
  CHECK(bytes.substr(4, 8) == std::string("\x01\x00\x01\x00\x00\x00\x00\x00", 8));
  CHECK(bytes.substr(12, 4) == std::string("\xdd\xcc\xbb\xaa", 4));
  auto back = keelfs::ChunkRecord::decode(bytes);
  REQUIRE(back.ok());
  CHECK(back->version == r.version);
  CHECK(back->length == r.length);
  CHECK(back->crcs == r.crcs);
  CHECK(back->synced_length == 5);
  CHECK(back->synced_tail_crc == 0x55667788);
  CHECK(back->dirty_from == 3);
  CHECK(keelfs::ChunkRecord::decode(bytes.substr(0, 15)).status().is(Code::kCorruption));
}

TEST_CASE("a version change cut short by a crash (renamed, index not written) keeps the copy", "[chunk_store]") {
  TempDir dir;
  const std::string data = pattern(100000, 21);
  std::string v1_path, v2_path;
  {
    auto store = open_store(dir.path);
    REQUIRE(store->create(0x77, 1).ok());
    REQUIRE(store->write(0x77, 1, 0, data).ok());
    REQUIRE(store->sync(0x77, 1).ok());
    v1_path = store->chunk_path(0x77, 1);
    v2_path = store->chunk_path(0x77, 2);
  }
  // The crash: the file took its new name, the index still says version 1.
  std::filesystem::rename(v1_path, v2_path);
  auto store = open_store(dir.path);
  CHECK(read_all(*store, 0x77, 1) == data);  // before, the chunk was dropped as missing
  CHECK(std::filesystem::exists(v1_path));
  CHECK_FALSE(std::filesystem::exists(v2_path));
}

TEST_CASE("chunk files the index does not know (a removal cut short) are removed after opening", "[chunk_store]") {
  TempDir dir;
  std::string stray, kept;
  {
    auto store = open_store(dir.path);
    REQUIRE(store->create(0x88, 3).ok());
    REQUIRE(store->write(0x88, 3, 0, "keep me").ok());
    REQUIRE(store->sync(0x88, 3).ok());
    kept = store->chunk_path(0x88, 3);
    stray = store->chunk_path(0x99, 5);
  }
  { std::ofstream(stray) << "left behind by a removal that lost its unlink"; }
  auto store = open_store(dir.path);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::filesystem::exists(stray) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK_FALSE(std::filesystem::exists(stray));
  CHECK(std::filesystem::exists(kept));
  CHECK(read_all(*store, 0x88, 3) == "keep me");
}

TEST_CASE("after a power loss took appended bytes whose index record had reached the disk, the copy is cut back "
          "to its last sync and reads back whole",
          "[chunk_store]") {
  TempDir tmp;
  const std::string synced = pattern(1000, 1), appended = pattern(3000, 2);
  std::string path;
  {
    auto store = open_store(tmp.path);
    REQUIRE(store->create(1, 1).ok());
    REQUIRE(store->write(1, 1, 0, synced).ok());
    REQUIRE(store->sync(1, 1).ok());
    REQUIRE(store->write(1, 1, synced.size(), appended).ok());  // into the same block, never synced
    // Another chunk's sync makes the whole index durable, chunk 1's newest record with it.
    REQUIRE(store->create(2, 1).ok());
    REQUIRE(store->write(2, 1, 0, pattern(10, 3)).ok());
    REQUIRE(store->sync(2, 1).ok());
    path = store->chunk_path(1, 1);
  }
  // The power loss: chunk 1's appended bytes never reached the disk.
  REQUIRE(::truncate(path.c_str(), static_cast<off_t>(synced.size())) == 0);
  auto store = open_store(tmp.path);
  REQUIRE(store->list().size() == 2);
  REQUIRE(read_all(*store, 1, 1) == synced);
  // It takes appends again from there.
  REQUIRE(store->write(1, 1, synced.size(), appended).ok());
  REQUIRE(read_all(*store, 1, 1) == synced + appended);
}

TEST_CASE("bytes written and not synced survive a restart that lost nothing (kill -9): nothing is cut",
          "[chunk_store]") {
  TempDir tmp;
  const std::string synced = pattern(1000, 1), appended = pattern(3000, 2);
  {
    auto store = open_store(tmp.path);
    REQUIRE(store->create(1, 1).ok());
    REQUIRE(store->write(1, 1, 0, synced).ok());
    REQUIRE(store->sync(1, 1).ok());
    REQUIRE(store->write(1, 1, synced.size(), appended).ok());
  }
  auto store = open_store(tmp.path);
  REQUIRE(read_all(*store, 1, 1) == synced + appended);
}

TEST_CASE("an index record written before the synced fields existed reads as synced", "[chunk_store]") {
  keelfs::ChunkRecord r;
  r.version = 3;
  r.length = 70000;
  r.crcs = {11, 22};
  std::string old = r.encode().substr(0, 12 + 8);  // without the synced fields
  auto back = keelfs::ChunkRecord::decode(old);
  REQUIRE(back.ok());
  CHECK(back->synced_length == 70000);
  CHECK(back->synced_tail_crc == 22);
  CHECK(back->dirty_from == keelfs::ChunkRecord::kClean);
  auto now = keelfs::ChunkRecord::decode(r.encode());
  REQUIRE(now.ok());
  CHECK(now->dirty_from == keelfs::ChunkRecord::kClean);
}

TEST_CASE("a chunk written since its last sync whose file a crash took is dropped at start-up, and the others stay",
          "[chunk_store]") {
  TempDir tmp;
  std::string gone;
  {
    auto store = open_store(tmp.path);
    for (uint64_t id = 1; id <= 8; ++id) {
      REQUIRE(store->create(id, 1).ok());
      REQUIRE(store->write(id, 1, 0, pattern(100, static_cast<int>(id))).ok());  // none synced
    }
    REQUIRE(store->flush().ok());
    gone = store->chunk_path(3, 1);
  }
  REQUIRE(::unlink(gone.c_str()) == 0);
  auto store = open_store(tmp.path);
  CHECK(store->list().size() == 7);
  for (uint64_t id = 1; id <= 8; ++id)
    if (id != 3) CHECK(read_all(*store, id, 1) == pattern(100, static_cast<int>(id)));
}
