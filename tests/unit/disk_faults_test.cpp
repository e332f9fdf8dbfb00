// The chunk store on a failing disk (chunkserver/disk.h): every call that can fail does, and
// the store either keeps the copy as it was or gives it up for good; it never reports a
// success for bytes the disk did not take.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "chunkserver/chunk_store.h"
#include "chunkserver/disk.h"
#include "tests/unit/temp_dir.h"

using namespace keelfs;
using keelfs::test::pattern;
using keelfs::test::TempDir;

namespace {

DiskFault rule(const std::string& spec) {
  auto f = parse_disk_fault(spec);
  INFO(f.status().to_string());
  REQUIRE(f.ok());
  return *f;
}

// A store whose chunk files are on a disk that fails as `faults` say (their `skip` counts
// calls from the store's open on).
struct FailingStore {
  TempDir dir;
  FaultyDisk disk;
  std::unique_ptr<ChunkStore> store;
  explicit FailingStore(std::vector<DiskFault> faults) : disk(std::move(faults)) {
    auto s = ChunkStore::open(dir.path, disk);
    REQUIRE(s.ok());
    store = std::move(*s);
  }
  std::string read(uint64_t id = 1, uint32_t version = 1) {
    auto r = store->read(id, version, 0, kChunkSize);
    INFO(r.status().to_string());
    REQUIRE(r.ok());
    return *r;
  }
};

void untrusted(const Status& st) {
  INFO(st.to_string());
  REQUIRE(st.is(Code::kIOError));
  REQUIRE(st.message().find("no longer trusted") != std::string::npos);
}

}  // namespace

TEST_CASE("disk faults: rules parse, and a bad rule is a clear error", "[disk]") {
  DiskFault f = rule("pwrite:ENOSPC:skip=20:count=0");
  REQUIRE(f.op == DiskOp::kPwrite);
  REQUIRE(f.err == ENOSPC);
  REQUIRE(f.skip == 20);
  REQUIRE(f.count == 0);
  REQUIRE(rule("fdatasync:EIO").count == 1);
  REQUIRE(rule("pread:short").err == 0);
  for (const char* bad : {"pwrite", "write:EIO", "pwrite:EWHAT", "fsync:short", "pwrite:EIO:skip=x", "pwrite:EIO:often"}) {
    auto r = parse_disk_fault(bad);
    INFO(bad);
    REQUIRE(r.status().is(Code::kInvalidArgument));
    REQUIRE(r.status().message().find("OP:ERROR") != std::string::npos);
  }
}

TEST_CASE("disk faults: short reads and writes are carried on to the last byte", "[disk]") {
  FailingStore s({rule("pwrite:short:count=0"), rule("pread:short:count=0")});
  const std::string data = pattern(3 * kBlockSize + 12345, 1);
  REQUIRE(s.store->create(1, 1).ok());
  REQUIRE(s.store->write(1, 1, 0, data).ok());
  REQUIRE(s.store->write(1, 1, 1000, data.substr(0, 70000)).ok());  // partly covered blocks are read back
  std::string expect = data;
  expect.replace(1000, 70000, data.substr(0, 70000));
  REQUIRE(s.store->sync(1, 1).ok());
  REQUIRE(s.read() == expect);
  REQUIRE(s.disk.injected() > 10);
}

TEST_CASE("disk faults: a disk that fills up fails the write and keeps the copy as it was", "[disk]") {
  // The first write goes through; the disk is full for the next two, then has room again.
  FailingStore s({rule("pwrite:ENOSPC:skip=1:count=2")});
  const std::string first = pattern(100000, 2), more = pattern(50000, 3);
  REQUIRE(s.store->create(1, 1).ok());
  REQUIRE(s.store->write(1, 1, 0, first).ok());
  Status full = s.store->write(1, 1, first.size(), more);  // an append
  INFO(full.to_string());
  REQUIRE(full.is(Code::kNoSpace));
  REQUIRE(s.store->stat(1)->length == first.size());
  REQUIRE(s.read() == first);
  REQUIRE(s.store->write(1, 1, first.size() + 4096, more).is(Code::kNoSpace));  // past the end, leaving a gap
  REQUIRE(s.read() == first);
  REQUIRE(s.store->sync(1, 1).ok());
  // Room again: the same append lands, and nothing of the failed ones shows.
  REQUIRE(s.store->write(1, 1, first.size(), more).ok());
  REQUIRE(s.read() == first + more);
}

TEST_CASE("disk faults: a write that fails into bytes the copy had gives the copy up", "[disk]") {
  FailingStore s({rule("pwrite:EIO:skip=1")});
  const std::string data = pattern(200000, 4);
  REQUIRE(s.store->create(1, 1).ok());
  REQUIRE(s.store->write(1, 1, 0, data).ok());
  untrusted(s.store->write(1, 1, 5000, pattern(100, 5)));
  // Every later call on it fails: its bytes and CRCs may disagree.
  untrusted(s.store->read(1, 1, 0, 10).status());
  untrusted(s.store->sync(1, 1));
  untrusted(s.store->write(1, 1, 0, "x"));
  untrusted(s.store->set_version(1, 1, 2));
  // It can still be deleted, and other chunks are not affected.
  REQUIRE(s.store->create(2, 1).ok());
  REQUIRE(s.store->write(2, 1, 0, "fine").ok());
  REQUIRE(s.read(2) == "fine");
  REQUIRE(s.store->remove(1, 0).ok());
  REQUIRE(!s.store->contains(1));
}

TEST_CASE("disk faults: a failed fdatasync is never followed by a successful one for the same copy", "[disk]") {
  FailingStore s({rule("fdatasync:EIO")});
  REQUIRE(s.store->create(1, 1).ok());
  REQUIRE(s.store->write(1, 1, 0, "bytes the kernel may have dropped").ok());
  untrusted(s.store->sync(1, 1));
  untrusted(s.store->sync(1, 1));  // the kernel's second fdatasync would say yes: we do not ask it
}

TEST_CASE("disk faults: a failed fsync of the chunk's folder gives a new copy up", "[disk]") {
  FailingStore s({rule("fsync:EIO")});
  REQUIRE(s.store->create(1, 1).ok());
  REQUIRE(s.store->write(1, 1, 0, "a new file whose name may not be on disk").ok());
  untrusted(s.store->sync(1, 1));
  untrusted(s.store->sync(1, 1));
}

TEST_CASE("disk faults: a version change that cannot cut the file gives the copy up; one that cannot rename keeps it",
          "[disk]") {
  const std::string data = pattern(300000, 6);
  SECTION("ftruncate fails") {
    FailingStore s({rule("ftruncate:EIO")});
    REQUIRE(s.store->create(1, 1).ok());
    REQUIRE(s.store->write(1, 1, 0, data).ok());
    untrusted(s.store->set_version(1, 1, 2, 1000));
    untrusted(s.store->read(1, 1, 0, 10).status());
  }
  SECTION("fdatasync fails after the cut") {
    FailingStore s({rule("fdatasync:EIO")});
    REQUIRE(s.store->create(1, 1).ok());
    REQUIRE(s.store->write(1, 1, 0, data).ok());
    untrusted(s.store->set_version(1, 1, 2, 1000));
  }
  SECTION("rename fails") {
    FailingStore s({rule("rename:EIO")});
    REQUIRE(s.store->create(1, 1).ok());
    REQUIRE(s.store->write(1, 1, 0, data).ok());
    REQUIRE(s.store->sync(1, 1).ok());
    Status st = s.store->set_version(1, 1, 2);
    INFO(st.to_string());
    REQUIRE(st.is(Code::kIOError));
    REQUIRE(s.store->stat(1)->version == 1);  // nothing changed: the master may ask again
    REQUIRE(s.read(1, 1) == data);
    REQUIRE(s.store->set_version(1, 1, 2).ok());
    REQUIRE(s.read(1, 2) == data);
  }
}

TEST_CASE("disk faults: a chunk file that cannot be made is no chunk; one that cannot be unlinked is swept later",
          "[disk]") {
  TempDir dir;
  std::string leftover;
  {
    FaultyDisk disk({rule("open:ENOSPC"), rule("unlink:EIO")});
    auto opened = ChunkStore::open(dir.path, disk);
    REQUIRE(opened.ok());
    auto& store = **opened;
    REQUIRE(store.create(1, 1).is(Code::kNoSpace));
    REQUIRE(!store.contains(1));
    REQUIRE(store.create(1, 1).ok());  // the disk has room again
    REQUIRE(store.write(1, 1, 0, "x").ok());
    leftover = store.chunk_path(1, 1);
    REQUIRE(store.remove(1, 0).ok());  // the index forgets it; the unlink failed
    REQUIRE(!store.contains(1));
    REQUIRE(disk.injected() == 2);
  }
  // The file the index does not know is swept (by the sweep after this open, if the one
  // after the first open did not find it first).
  auto store = ChunkStore::open(dir.path);
  REQUIRE(store.ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::filesystem::exists(leftover) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(!std::filesystem::exists(leftover));
}
