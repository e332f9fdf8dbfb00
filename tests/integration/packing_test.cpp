// Packed small files (docs/small-files.md) through the client library, against a real
// master and real chunkservers.
#include <atomic>
#include <cmath>
#include <set>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {

constexpr size_t KiB = 1024;

// The file's data as the master has it: (pack chunk id, extent length), or chunk id 0
// when it is not packed.
std::pair<uint64_t, uint64_t> packed_in(client::Client& c, uint64_t ino) {
  auto located = c.locate(ino);
  INFO(located.status().to_string());
  REQUIRE(located.ok());
  for (const auto& chunk : located->chunks())
    if (chunk.extent_length() > 0) return {chunk.chunk_id(), chunk.extent_length()};
  return {0, 0};
}

uint64_t volume_chunks(client::Client& c, const std::string& volume) { return volume_info(c, volume).chunks(); }

// As a reader on another mount sees it after open(): nothing it cached before (close-to-open).
std::string read_fresh(client::Client& c, uint64_t ino) {
  c.invalidate(ino);
  return get_file(c, ino);
}

Status write_at(client::Client& c, uint64_t ino, uint64_t offset, const std::string& data) {
  Status st = c.write(ino, offset, data.data(), data.size());
  if (!st.ok()) return st;
  return c.flush(ino);
}

}  // namespace

TEST_CASE("small files share one pack chunk, replicated to goal, and read back from another client",
          "[packing]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::vector<std::pair<uint64_t, std::string>> files;
  std::set<uint64_t> packs;
  for (int i = 0; i < 200; ++i) {
    std::string data = random_bytes(1 + (i * 331) % (8 * KiB), i);
    uint64_t ino = put_file(c, root, "f" + std::to_string(i), data);
    auto [pack, length] = packed_in(c, ino);
    INFO("file " << i);
    REQUIRE(pack != 0);
    REQUIRE(length == data.size());
    packs.insert(pack);
    files.emplace_back(ino, std::move(data));
  }
  // One pack for all of them: no chunk per file.
  REQUIRE(packs.size() == 1);
  REQUIRE(volume_chunks(c, "v") == 1);
  // The pack has goal-many copies, each one chunk file on disk.
  auto located = c.locate(files[0].first);
  REQUIRE(located.ok());
  REQUIRE(located->chunks(0).replicas_size() == 2);
  REQUIRE(chunk_files(cluster) == 2);

  auto other = cluster.new_client("v");
  REQUIRE(other.ok());
  for (auto& [ino, data] : files) REQUIRE(read_fresh(**other, ino) == data);
  // Reads past a packed file's end, and in its middle.
  std::string buf(100, 'x');
  auto n = (*other)->read(files[5].first, 3, 10, buf.data());
  REQUIRE(n.ok());
  REQUIRE(*n == std::min<size_t>(10, files[5].second.size() - 3));
  REQUIRE(buf.substr(0, *n) == files[5].second.substr(3, *n));

  std::string out;
  REQUIRE(cluster.cli({"fsck", "v"}, &out) == 0);
}

TEST_CASE("a packed file overwritten, grown past the threshold, truncated, linked, renamed and unlinked "
          "behaves as any other file",
          "[packing]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::string data = random_bytes(3000, 1);
  uint64_t ino = put_file(c, root, "f", data);
  REQUIRE(packed_in(c, ino).first != 0);

  // Overwritten in the middle: it moves into a chunk of its own, with every byte kept.
  std::string patch = random_bytes(100, 2);
  REQUIRE(write_at(c, ino, 1000, patch).ok());
  data.replace(1000, 100, patch);
  auto other = cluster.new_client("v");
  REQUIRE(other.ok());
  REQUIRE(read_fresh(**other, ino) == data);

  // Rewritten whole (O_TRUNC): packed again; the old chunk goes.
  pb::SetattrReq trunc;
  trunc.set_inode(ino);
  trunc.set_mask(pb::SET_SIZE);
  trunc.set_size(0);
  REQUIRE(c.setattr(trunc).ok());
  data = random_bytes(2000, 3);
  REQUIRE(write_at(c, ino, 0, data).ok());
  REQUIRE(packed_in(c, ino).first != 0);
  REQUIRE(read_fresh(**other, ino) == data);

  // Truncated shorter and longer: the pack is never cut, the bytes past the end read as zeros.
  trunc.set_size(500);
  REQUIRE(c.setattr(trunc).ok());
  trunc.set_size(4000);
  REQUIRE(c.setattr(trunc).ok());
  std::string expect = data.substr(0, 500) + std::string(3500, '\0');
  REQUIRE(read_fresh(**other, ino) == expect);

  // Appended to past the threshold: unpacked, all bytes kept.
  std::string tail = random_bytes(200 * KiB, 4);
  REQUIRE(write_at(c, ino, 4000, tail).ok());
  expect += tail;
  REQUIRE(packed_in(c, ino).first == 0);
  REQUIRE(read_fresh(**other, ino) == expect);

  // A second packed file, hard-linked, renamed and unlinked by one name.
  std::string small = random_bytes(777, 5);
  uint64_t g = put_file(c, root, "g", small);
  REQUIRE(c.link(g, root, "g2").ok());
  REQUIRE(c.rename(root, "g", root, "g3").ok());
  REQUIRE(c.unlink(root, "g3").ok());
  REQUIRE(read_fresh(**other, g) == small);
  REQUIRE(c.unlink(root, "g2").ok());
  REQUIRE(c.unlink(root, "f").ok());

  // Nothing left once the sessions let go of their packs: no chunk, no chunk file.
  other->reset();
  REQUIRE(c.unmount().ok());
  std::string out;
  REQUIRE(cluster.cli({"fsck", "v"}, &out) == 0);
  REQUIRE(wait_until([&] { return volume_chunks(c, "v") == 0; }));
  REQUIRE(wait_until([&] { return chunk_files(cluster) == 0; }, std::chrono::seconds(30)));
}

TEST_CASE("a master restart seals the open packs: packed files stay, an empty pack goes", "[packing]") {
  Cluster cluster(3);
  uint64_t root = cluster.create_volume("v", 2);
  auto writer = cluster.new_client("v");  // outlives the master's restart, with its open pack
  REQUIRE(writer.ok());
  auto& w = **writer;
  std::string kept = random_bytes(5000, 1);
  uint64_t ino = put_file(w, root, "kept", kept);
  put_file(w, root, "gone", random_bytes(100, 2));
  REQUIRE(w.unlink(root, "gone").ok());
  const uint64_t first_pack = packed_in(w, ino).first;
  cluster.kill_master();
  cluster.restart_master();
  // The restart sealed the writer's pack: its next file goes to a new pack, and the old
  // one stays for the file in it.
  uint64_t next = put_file(w, root, "next", random_bytes(300, 3));
  REQUIRE(packed_in(w, next).first != first_pack);
  REQUIRE(packed_in(w, ino).first == first_pack);
  auto other = cluster.new_client("v");
  REQUIRE(other.ok());
  REQUIRE(get_file(**other, ino) == kept);
  REQUIRE(volume_chunks(cluster.client(), "v") == 2);
  // A sealed pack whose every file went is freed.
  REQUIRE(w.unlink(root, "kept").ok());
  REQUIRE(wait_until([&] { return volume_chunks(cluster.client(), "v") == 1; }));
}

TEST_CASE("a volume created with --pack-below 0 packs nothing", "[packing]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  std::string out, err;
  REQUIRE(cluster.cli({"volume", "create", "plain", "--pack-below", "0", "--save-secret",
                       cluster.dir() + "/plain.secret"},
                      &out, &err) == 0);
  REQUIRE(cluster.cli({"volume", "info", "plain"}, &out) == 0);
  REQUIRE(out.find("packing   off") != std::string::npos);
  cluster.create_volume("packed", 2);
  REQUIRE(cluster.cli({"volume", "info", "packed"}, &out) == 0);
  REQUIRE(out.find("packing   files below 64.0 KiB") != std::string::npos);

  // Through the kernel: three small files, three chunks.
  std::string mnt = cluster.mount("plain");
  for (int i = 0; i < 3; ++i) REQUIRE(write_file_errno(mnt + "/f" + std::to_string(i), random_bytes(1000, i)) == 0);
  REQUIRE(volume_chunks(c, "plain") == 3);
  // ...and on a packing volume, one.
  std::string mnt2 = cluster.mount("packed");
  for (int i = 0; i < 3; ++i) REQUIRE(write_file_errno(mnt2 + "/f" + std::to_string(i), random_bytes(1000, i)) == 0);
  REQUIRE(volume_chunks(c, "packed") == 1);
  REQUIRE(read_text_file(mnt2 + "/f1") == random_bytes(1000, 1));
  // keelfs stat says where a packed file's bytes are.
  REQUIRE(cluster.cli({"stat", "packed:/f1"}, &out) == 0);
  REQUIRE(out.find("packed in") != std::string::npos);
  REQUIRE(cluster.cli({"--json", "stat", "packed:/f1"}, &out) == 0);
  REQUIRE(out.find("\"packed\"") != std::string::npos);
  REQUIRE(out.find("\"length\": 1000") != std::string::npos);
}

TEST_CASE("compaction moves a pack's live files into a new pack while readers keep reading, and frees the old one",
          "[packing]") {
  ClusterOptions options;
  options.master_args = {"--sweep-every-ms", "200", "--compact-below", "0.5"};
  Cluster cluster(options);
  auto& admin = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::vector<std::pair<uint64_t, std::string>> kept;
  {
    auto writer = cluster.new_client("v");
    REQUIRE(writer.ok());
    for (int i = 0; i < 100; ++i) {
      std::string data = random_bytes(10 * KiB + i, i);
      uint64_t ino = put_file(**writer, root, "f" + std::to_string(i), data);
      if (i % 10 < 3) kept.emplace_back(ino, std::move(data));
    }
    REQUIRE((*writer)->unmount().ok());  // its pack is sealed
  }
  const uint64_t old_pack = packed_in(admin, kept[0].first).first;
  REQUIRE(old_pack != 0);
  const uint64_t full = volume_info(admin, "v").physical_bytes();

  // A reader that keeps reading the files that stay, from locations it cached before.
  auto reader = cluster.new_client("v");
  REQUIRE(reader.ok());
  for (auto& [ino, data] : kept) REQUIRE(get_file(**reader, ino) == data);
  std::atomic<bool> stop{false};
  std::atomic<int> rounds{0}, wrong{0};
  std::thread reading([&] {
    while (!stop) {
      for (auto& [ino, data] : kept) {
        std::string got(data.size(), '\0');
        auto n = (*reader)->read(ino, 0, got.size(), got.data());
        if (!n.ok() || *n != data.size() || got != data) ++wrong;
      }
      ++rounds;
    }
  });

  // 70 of the 100 files go: the pack's live fraction falls to about 30 %.
  for (int i = 0; i < 100; ++i)
    if (i % 10 >= 3) REQUIRE(admin.unlink(root, "f" + std::to_string(i)).ok());
  REQUIRE(wait_until([&] { return packed_in(admin, kept[0].first).first != old_pack; }, std::chrono::seconds(30)));
  for (auto& [ino, data] : kept) REQUIRE(packed_in(admin, ino).first == packed_in(admin, kept[0].first).first);
  // The old pack is freed: one chunk left, holding only the live bytes.
  REQUIRE(wait_until([&] { return volume_info(admin, "v").chunks() == 1; }));
  const uint64_t after = volume_info(admin, "v").physical_bytes();
  INFO("physical bytes before " << full << ", after " << after);
  REQUIRE(after < full / 2);
  REQUIRE(wait_until([&] { return chunk_files(cluster) == 2; }, std::chrono::seconds(30)));
  const int seen = rounds;
  REQUIRE(wait_until([&] { return rounds >= seen + 3; }));
  stop = true;
  reading.join();
  REQUIRE(wrong == 0);

  auto fresh = cluster.new_client("v");
  REQUIRE(fresh.ok());
  for (auto& [ino, data] : kept) REQUIRE(get_file(**fresh, ino) == data);
  std::string out;
  REQUIRE(cluster.cli({"fsck", "v"}, &out) == 0);
  cluster.cli({"health"}, &out);
  REQUIRE(out.find("compaction: 1 packs rewritten") != std::string::npos);
}

TEST_CASE("accounting: the physical bytes the master counts are the bytes the chunkservers hold; packed and dead "
          "bytes follow deletes",
          "[packing]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  uint64_t small_bytes = 0;
  std::vector<uint64_t> smalls;
  for (int i = 0; i < 300; ++i) {
    std::string data = random_bytes(1 + (i * 7919) % (8 * KiB), i);
    small_bytes += data.size();
    smalls.push_back(put_file(c, root, "s" + std::to_string(i), data));
  }
  put_file(c, root, "big", random_bytes(5 * 1024 * KiB + 3, 1));
  pb::VolumeInfo v = volume_info(c, "v");
  REQUIRE(v.packed_bytes() == small_bytes);
  REQUIRE(v.dead_bytes() == 0);
  REQUIRE(v.logical_bytes() == small_bytes + 5 * 1024 * KiB + 3);
  // What the chunkservers' chunk files hold (every copy; the 256 sub-folders of a data
  // directory are a fixed cost, not counted) against what the master counts: within 2 %.
  auto on_disk = [&] {
    uint64_t bytes = 0;
    for (int i = 0; i < cluster.chunkservers(); ++i) {
      std::string out;
      REQUIRE(shell("find " + cluster.cs_data_dir(i) + "/chunks -type f -print0 | du -c -B1 --files0-from=- | tail -1 | cut -f1",
                    &out) == 0);
      bytes += std::stoull(out);
    }
    return static_cast<double>(bytes);
  };
  const double disk = on_disk();
  INFO("master counts " << v.physical_bytes() << " physical bytes, the disks hold " << disk);
  REQUIRE(std::abs(disk - static_cast<double>(v.physical_bytes())) <= 0.02 * disk);

  // Half of the small files go: their bytes are dead until compaction (off here: the sweep
  // runs once a minute).
  uint64_t gone = 0;
  for (int i = 0; i < 300; i += 2) {
    gone += c.getattr(smalls[i])->size();
    REQUIRE(c.unlink(root, "s" + std::to_string(i)).ok());
  }
  v = volume_info(c, "v");
  REQUIRE(v.packed_bytes() == small_bytes - gone);
  REQUIRE(v.dead_bytes() == gone);
  std::string out;
  REQUIRE(cluster.cli({"volume", "info", "v"}, &out) == 0);
  REQUIRE(out.find("dead awaiting compaction") != std::string::npos);
}

TEST_CASE("keelfs du: every directory's figures, kept as files are written, moved, linked and removed; fsck agrees",
          "[packing][accounting]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  auto du = [&](const std::string& path) {
    std::string out, err;
    INFO(err);
    REQUIRE(cluster.cli({"--json", "du", "v:" + path}, &out, &err) == 0);
    return nlohmann::json::parse(out);
  };
  uint64_t data = c.mkdir(root, "data", 0755)->inode();
  uint64_t shard = c.mkdir(data, "shard", 0755)->inode();
  uint64_t small_bytes = 0;
  for (int i = 0; i < 50; ++i) {
    std::string bytes = random_bytes(100 + i * 37, i);
    small_bytes += bytes.size();
    put_file(c, shard, "s" + std::to_string(i), bytes);
  }
  const uint64_t big = 3 * 1024 * KiB + 5;
  uint64_t model = put_file(c, data, "model", random_bytes(big, 9));
  put_file(c, root, "top", "hello");

  auto d = du("/data/shard");
  CHECK(d["files"] == 50);
  CHECK(d["directories"] == 0);
  CHECK(d["logical_bytes"] == small_bytes);
  CHECK(d["packed_bytes"] == small_bytes);
  CHECK(d["chunks"] == 0);
  CHECK(d["physical_bytes"] == 2 * small_bytes);
  d = du("/data");
  CHECK(d["files"] == 51);
  CHECK(d["directories"] == 1);
  CHECK(d["logical_bytes"] == small_bytes + big);
  CHECK(d["chunks"] == 1);
  CHECK(d["chunk_bytes"] == big);
  CHECK(d["overhead"].get<double>() == Approx(1.0));
  // The root's figures are the volume's: what a walk of the whole tree would add up.
  pb::VolumeInfo v = volume_info(c, "v");
  d = du("/");
  CHECK(d["files"].get<uint64_t>() + d["directories"].get<uint64_t>() == v.files());
  CHECK(d["logical_bytes"] == v.logical_bytes());
  CHECK(d["physical_bytes"] == v.physical_bytes());  // no dead bytes yet
  d = du("/data/model");
  CHECK(d["type"] == "file");
  CHECK(d["logical_bytes"] == big);

  // The shard moves up, a second name of the model goes into it, the model's first name
  // goes: the figures follow.
  REQUIRE(c.rename(data, "shard", root, "shard").ok());
  REQUIRE(c.link(model, shard, "model-link").ok());
  REQUIRE(c.unlink(data, "model").ok());
  d = du("/data");
  CHECK(d["files"] == 0);
  CHECK(d["logical_bytes"] == 0);
  d = du("/shard");
  CHECK(d["files"] == 51);
  CHECK(d["logical_bytes"] == small_bytes + big);
  REQUIRE(c.unlink(shard, "s0").ok());
  CHECK(du("/shard")["packed_bytes"] == small_bytes - 100);

  std::string out, err;
  REQUIRE(cluster.cli({"du", "v:/shard"}, &out, &err) == 0);
  CHECK(out.find("v:/shard: 50 files, 0 directories") != std::string::npos);
  CHECK(out.find("overhead  1.000") != std::string::npos);
  REQUIRE(cluster.cli({"fsck", "v"}, &out, &err) == 0);
  CHECK(out.find("clean") != std::string::npos);
}

TEST_CASE("a pack whose write ticket runs out gets a new ticket and stays the session's pack", "[packing]") {
  ClusterOptions options;
  options.master_args = {"--ticket-ttl-ms", "2000"};
  Cluster cluster(options);
  uint64_t root = cluster.create_volume("v", 2);
  auto writer = cluster.new_client("v");
  REQUIRE(writer.ok());
  auto& w = **writer;
  uint64_t first = put_file(w, root, "a", random_bytes(1000, 1));
  const uint64_t pack = packed_in(w, first).first;
  // The ticket ages past half its life (time itself is what is waited for here).
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  uint64_t second = put_file(w, root, "b", random_bytes(1000, 2));
  REQUIRE(packed_in(w, second).first == pack);
  // And past its end: still the same pack, and still readable by another client.
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  uint64_t third = put_file(w, root, "c", random_bytes(1000, 3));
  REQUIRE(packed_in(w, third).first == pack);
  REQUIRE(volume_chunks(cluster.client(), "v") == 1);
  auto other = cluster.new_client("v");
  REQUIRE(other.ok());
  REQUIRE(get_file(**other, third) == random_bytes(1000, 3));
}
