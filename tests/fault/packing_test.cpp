// Packed small files under failure (docs/small-files.md): a mount killed while it writes
// small files loses none it closed and leaks nothing; two mounts packing into one
// directory at once lose nothing; a chunkserver holding packs dies and the packs heal.
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {

std::string content(int i) { return random_bytes(500 + (i * 97) % 3000, 1000 + i); }

}  // namespace

TEST_CASE("a mount killed while it packs small files loses none it closed and leaks nothing", "[fault][packing]") {
  Cluster cluster(3);  // sessions expire after 3 s (the harness's --session-timeout-ms)
  auto& admin = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  constexpr int kClosed = 60;
  for (int i = 0; i < kClosed; ++i) REQUIRE(write_file_errno(m + "/c" + std::to_string(i), content(i)) == 0);
  // Still writing when it dies: files half written, a pack half used.
  std::atomic<bool> stop{false};
  std::thread writing([&] {
    for (int i = 0; !stop; ++i) (void)write_file_errno(m + "/w" + std::to_string(i), content(i));
  });
  REQUIRE(wait_until([&] { return std::filesystem::exists(m + "/w20"); }));
  cluster.kill_mount(m);
  stop = true;
  writing.join();
  // Its session expires, and with it its pack is sealed.
  REQUIRE(wait_until([&] { return volume_info(admin, "v").sessions_size() == 1; }, std::chrono::seconds(20)));

  auto reader = cluster.new_client("v");
  REQUIRE(reader.ok());
  for (int i = 0; i < kClosed; ++i) {
    auto attr = (*reader)->lookup(root, "c" + std::to_string(i));
    REQUIRE(attr.ok());
    REQUIRE(get_file(**reader, attr->inode()) == content(i));
  }
  std::string out;
  REQUIRE(cluster.cli({"fsck", "v"}, &out) == 0);

  // Nothing leaks: once every file is gone, so is every pack, on the master and on disk.
  auto names = (*reader)->readdir_all(root, false);
  REQUIRE(names.ok());
  for (const auto& e : *names)
    if (e.name() != "." && e.name() != "..") REQUIRE((*reader)->unlink(root, e.name()).ok());
  reader->reset();
  REQUIRE(admin.unmount().ok());
  REQUIRE(wait_until([&] { return volume_info(admin, "v").chunks() == 0; }));
  REQUIRE(volume_info(admin, "v").physical_bytes() == 0);
  REQUIRE(wait_until([&] { return chunk_files(cluster) == 0; }, std::chrono::seconds(30)));
}

TEST_CASE("two mounts packing small files into one directory at once lose nothing", "[fault][packing]") {
  Cluster cluster(3);
  auto& admin = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::string a = cluster.mount("v");
  std::string b = cluster.mount("v");
  REQUIRE(::mkdir((a + "/shared").c_str(), 0755) == 0);
  constexpr int kFiles = 150;
  std::atomic<int> failures{0};
  auto write_all = [&](const std::string& mnt, const std::string& prefix) {
    for (int i = 0; i < kFiles; ++i)
      if (write_file_errno(mnt + "/shared/" + prefix + std::to_string(i), content(i)) != 0) ++failures;
  };
  std::thread ta(write_all, a, "a");
  std::thread tb(write_all, b, "b");
  ta.join();
  tb.join();
  REQUIRE(failures == 0);
  // Each mount appended to a pack of its own: two chunks for 300 files.
  REQUIRE(volume_info(admin, "v").chunks() == 2);
  auto reader = cluster.new_client("v");
  REQUIRE(reader.ok());
  auto dir = (*reader)->lookup(root, "shared");
  REQUIRE(dir.ok());
  for (const char* prefix : {"a", "b"})
    for (int i = 0; i < kFiles; ++i) {
      auto attr = (*reader)->lookup(dir->inode(), prefix + std::to_string(i));
      REQUIRE(attr.ok());
      REQUIRE(get_file(**reader, attr->inode()) == content(i));
    }
  // And through the other mount's kernel, too.
  for (int i = 0; i < kFiles; i += 10) REQUIRE(read_text_file(b + "/shared/a" + std::to_string(i)) == content(i));
}

TEST_CASE("a chunkserver holding packs dies: the packs are healed and every packed file reads back",
          "[fault][packing]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::vector<uint64_t> inodes;
  for (int i = 0; i < 100; ++i) inodes.push_back(put_file(c, root, "f" + std::to_string(i), content(i)));
  auto located = c.locate(inodes[0]);
  REQUIRE(located.ok());
  REQUIRE(located->chunks(0).extent_length() > 0);
  const std::string victim = located->chunks(0).replicas(0).address();
  int victim_index = -1;
  for (int i = 0; i < cluster.chunkservers(); ++i)
    if (cluster.cs_address(i) == victim) victim_index = i;
  REQUIRE(victim_index >= 0);
  REQUIRE(c.unmount().ok());  // the pack is sealed: no writer holds it, the healer copies it at once
  cluster.kill_chunkserver(victim_index);
  auto reader = cluster.new_client("v");
  REQUIRE(reader.ok());
  REQUIRE(wait_until(
      [&] {
        auto l = (*reader)->locate(inodes[0]);
        return l.ok() && l->chunks(0).replicas_size() == 2;
      },
      std::chrono::seconds(30)));
  for (size_t i = 0; i < inodes.size(); ++i) REQUIRE(get_file(**reader, inodes[i]) == content(static_cast<int>(i)));
}

TEST_CASE("an open pack that loses a copy is sealed and healed at once although its writer still holds it",
          "[fault][packing]") {
  Cluster cluster(3);
  auto& admin = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  constexpr int kFiles = 30;
  for (int i = 0; i < kFiles; ++i) REQUIRE(write_file_errno(m + "/f" + std::to_string(i), content(i)) == 0);
  // The mount keeps its pack open; one of the pack's servers dies.
  auto reader = cluster.new_client("v");
  REQUIRE(reader.ok());
  auto last = (*reader)->lookup(root, "f" + std::to_string(kFiles - 1));
  REQUIRE(last.ok());
  auto located = (*reader)->locate(last->inode());
  REQUIRE(located.ok());
  const std::string victim = located->chunks(0).replicas(0).address();
  int victim_index = -1;
  for (int i = 0; i < cluster.chunkservers(); ++i)
    if (cluster.cs_address(i) == victim) victim_index = i;
  REQUIRE(victim_index >= 0);
  cluster.kill_chunkserver(victim_index);
  // Left to its writer, it would stay under goal for 30 s after the last commit
  // (kWriterHold); every small file in it meanwhile has one copy.
  REQUIRE(wait_until([&] {
    auto h = admin.health();
    return h.ok() && h->under_goal() == 0 && h->missing() == 0;
  }, std::chrono::seconds(20)));
  // The writer goes on in a new pack; everything reads back.
  REQUIRE(write_file_errno(m + "/after", content(kFiles)) == 0);
  for (int i = 0; i < kFiles; ++i) REQUIRE(read_text_file(m + "/f" + std::to_string(i)) == content(i));
  REQUIRE(read_text_file(m + "/after") == content(kFiles));
}
