// Healing: chunkservers die and come back; the master's planner keeps every chunk at its
// goal, and deletes what is stale or over the goal.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t MiB = 1 << 20;

bool health_clean(Cluster& cluster, uint64_t chunks) {
  auto h = cluster.client().health();
  return h.ok() && h->chunks() == chunks && h->under_goal() == 0 && h->over_goal() == 0 && h->missing() == 0;
}

}  // namespace

TEST_CASE("a dead chunkserver's chunks are copied until every chunk is at its goal, and its return leaves no extra copy",
          "[fault][healing]") {
  Cluster cluster(3);
  uint64_t root = cluster.create_volume("v", 2);
  std::vector<std::pair<uint64_t, std::string>> files;
  files.emplace_back(put_file(cluster.client(), root, "big", random_bytes(100 * MiB, 1)), random_bytes(100 * MiB, 1));
  for (int i = 0; i < 20; ++i)
    files.emplace_back(put_file(cluster.client(), root, "f" + std::to_string(i), random_bytes(MiB + i, 10 + i)),
                       random_bytes(MiB + i, 10 + i));
  const uint64_t chunks = 2 + 20;
  REQUIRE(wait_until([&] { return health_clean(cluster, chunks); }));
  const std::string dead = cluster.cs_address(0);
  const size_t on_dead = chunk_files(cluster.cs_data_dir(0));
  REQUIRE(on_dead > 0);

  auto start = std::chrono::steady_clock::now();
  cluster.kill_chunkserver(0);
  // Dead after 3 s without heartbeats, then copied: the bound is generous for a loaded CI.
  bool healed = wait_until([&] { return health_clean(cluster, chunks); }, std::chrono::seconds(90));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "healing: " << on_dead << " chunks of a dead chunkserver back at goal " << secs << " s after the kill\n";
  REQUIRE(healed);
  auto h = cluster.client().health();
  REQUIRE(h->servers_dead() == 1);
  for (auto& [ino, data] : files) {
    auto located = cluster.client().locate(ino);
    REQUIRE(located.ok());
    for (auto& c : located->chunks()) {
      REQUIRE(c.replicas_size() == 2);
      for (auto& r : c.replicas()) REQUIRE(r.address() != dead);
    }
  }
  auto fresh = cluster.new_client("v");
  REQUIRE(fresh.ok());
  for (auto& [ino, data] : files) REQUIRE(get_file(**fresh, ino) == data);

  // It comes back with copies whose version moved on while it was away: they are stale and
  // go; every chunk ends with exactly its goal of copies on disk.
  cluster.restart_chunkserver(0);
  REQUIRE(wait_until([&] {
    return chunk_files(cluster) == chunks * 2 && health_clean(cluster, chunks);
  }, std::chrono::seconds(30)));
  for (auto& [ino, data] : files) REQUIRE(get_file(**fresh, ino) == data);
}

TEST_CASE("healing runs on events: with the sweep and the retry tick switched off, a death, a return, a drain and a "
          "goal change each bring every chunk back to its goal within seconds",
          "[fault][healing]") {
  // A tick and a sweep of ten minutes: nothing but events can heal within this test.
  ClusterOptions options;
  options.master_args = {"--heal-interval-ms", "600000", "--sweep-every-ms", "600000", "--sweep-chunks-per-s", "1"};
  Cluster cluster(options);
  uint64_t root = cluster.create_volume("v", 2);
  std::vector<uint64_t> inodes;
  for (int i = 0; i < 30; ++i) inodes.push_back(put_file(cluster.client(), root, "f" + std::to_string(i), random_bytes(64 << 10, i)));
  const uint64_t chunks = inodes.size();
  REQUIRE(wait_until([&] { return health_clean(cluster, chunks); }));
  // The sweep's first round (at start-up) is over; the next would be ten minutes away.
  auto sweeps = [&] {
    auto h = cluster.client().health();
    REQUIRE(h.ok());
    return h->sweeps();
  };
  REQUIRE(wait_until([&] { return sweeps() == 1; }));
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };

  // Death: the link drops with kill -9, the master knows at once.
  auto start = std::chrono::steady_clock::now();
  cluster.kill_chunkserver(0);
  REQUIRE(wait_until([&] {
    auto h = cluster.client().health();
    return h.ok() && h->servers_dead() == 1 && health_clean(cluster, chunks);
  }, std::chrono::seconds(20)));
  std::cout << "events: " << chunks << " chunks of a killed chunkserver at goal " << seconds_since(start) << " s after the kill\n";

  // Return: its stale copies and the extra ones go.
  start = std::chrono::steady_clock::now();
  cluster.restart_chunkserver(0);
  REQUIRE(wait_until([&] {
    return chunk_files(cluster) == chunks * 2 && health_clean(cluster, chunks);
  }, std::chrono::seconds(20)));
  std::cout << "events: extra copies trimmed " << seconds_since(start) << " s after the restart\n";

  // Drain: every chunk off it, counted down to "safe to remove".
  std::string out, err;
  REQUIRE(cluster.cli({"cs", "drain", cluster.cs_address(1)}, &out, &err) == 0);
  auto safe = [&] {
    REQUIRE(cluster.cli({"--json", "cs", "ls"}, &out, &err) == 0);
    for (auto& cs : nlohmann::json::parse(out))
      if (cs["address"] == cluster.cs_address(1)) return cs["safe_to_remove"] == true;
    return false;
  };
  REQUIRE(wait_until(safe, std::chrono::seconds(20)));
  REQUIRE(cluster.cli({"cs", "undrain", cluster.cs_address(1)}, &out, &err) == 0);
  REQUIRE(wait_until([&] { return health_clean(cluster, chunks); }, std::chrono::seconds(20)));

  // Goal raised on one file: its chunk gets a third copy.
  REQUIRE(cluster.cli({"goal", "set", "v:/f0", "3"}, &out, &err) == 0);
  REQUIRE(wait_until([&] {
    auto located = cluster.client().locate(inodes[0]);
    return located.ok() && located->chunks(0).replicas_size() == 3;
  }, std::chrono::seconds(20)));
  REQUIRE(sweeps() == 1);  // the sweep did none of it
  for (uint64_t i = 0; i < inodes.size(); ++i) REQUIRE(get_file(cluster.client(), inodes[i]) == random_bytes(64 << 10, i));
}

TEST_CASE("goal set and get per file and directory, inherited by new files, met by the healer", "[fault][healing]") {
  Cluster cluster(3);
  uint64_t root = cluster.create_volume("v", 2);
  std::string out, err;
  REQUIRE(cluster.cli({"mkdir", "v:/three"}, &out, &err) == 0);
  REQUIRE(cluster.cli({"goal", "set", "v:/three", "3"}, &out, &err) == 0);
  REQUIRE(cluster.cli({"goal", "get", "v:/three"}, &out, &err) == 0);
  REQUIRE(out == "v:/three: 3\n");
  auto three = cluster.client().resolve(root, "/three");
  REQUIRE(three.ok());
  uint64_t a = put_file(cluster.client(), three->inode(), "a", random_bytes(2 * MiB, 1));  // inherits 3
  uint64_t b = put_file(cluster.client(), root, "b", random_bytes(2 * MiB, 2));
  REQUIRE(cluster.cli({"goal", "get", "v:/three/a"}, &out, &err) == 0);
  REQUIRE(out == "v:/three/a: 3\n");
  auto copies = [&](uint64_t ino) {
    auto located = cluster.client().locate(ino);
    REQUIRE(located.ok());
    return located->chunks(0).replicas_size();
  };
  REQUIRE(copies(a) == 3);
  REQUIRE(copies(b) == 2);

  // Lowered: the extra copies go. Raised (recursively): the healer adds them.
  REQUIRE(cluster.cli({"goal", "set", "v:/three/a", "1"}, &out, &err) == 0);
  REQUIRE(wait_until([&] { return copies(a) == 1; }, std::chrono::seconds(20)));
  REQUIRE(cluster.cli({"goal", "set", "-r", "v:/", "3"}, &out, &err) == 0);
  REQUIRE(out.find("goal 3 (4 inodes)") != std::string::npos);
  REQUIRE(wait_until([&] { return copies(a) == 3 && copies(b) == 3; }, std::chrono::seconds(30)));
  REQUIRE(wait_until([&] { return health_clean(cluster, 2); }));
  REQUIRE(get_file(cluster.client(), a) == random_bytes(2 * MiB, 1));
  REQUIRE(get_file(cluster.client(), b) == random_bytes(2 * MiB, 2));
  // Nonsense is refused.
  REQUIRE(cluster.cli({"goal", "set", "v:/three", "0"}, &out, &err) == 1);
  REQUIRE(err.find("goal 0 is not between 1 and 9") != std::string::npos);
}

TEST_CASE("a writer survives a chunkserver killed in its chain, and the goal comes back", "[fault][healing]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  const size_t size = 500 * MiB;
  const std::string data = random_bytes(size, 42);
  std::atomic<size_t> written{0};
  int result = -1;
  std::thread writer([&] {
    int fd = ::open((m + "/big").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
      result = errno;
      return;
    }
    for (size_t off = 0; off < size;) {
      ssize_t n = ::write(fd, data.data() + off, std::min<size_t>(MiB, size - off));
      if (n < 0) {
        result = errno;
        ::close(fd);
        return;
      }
      off += static_cast<size_t>(n);
      written = off;
    }
    result = ::fsync(fd) == 0 ? 0 : errno;
    if (::close(fd) != 0 && result == 0) result = errno;
  });
  bool midway = wait_until([&] { return written.load() >= 150 * MiB; }, std::chrono::seconds(60));
  auto killed = std::chrono::steady_clock::now();
  cluster.kill_chunkserver(1);
  writer.join();
  REQUIRE(midway);
  REQUIRE(result == 0);
  REQUIRE(read_text_file(m + "/big") == data);
  // Bound: 90 s from the kill (detection, then copies at the chunkservers' rate).
  REQUIRE(wait_until([&] { return health_clean(cluster, 8); }, std::chrono::seconds(90)));
  std::cout << "healing: 500 MiB file written through a kill, every chunk at goal "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count() << " s after the kill\n";
}

TEST_CASE("the healer leaves a chunk alone while a client writes it, and heals it once the write ends",
          "[fault][healing]") {
  Cluster cluster(3);
  uint64_t root = cluster.create_volume("v", 2);
  auto& c = cluster.client();
  pb::CreateReq create;
  create.set_parent(root);
  create.set_name("w");
  create.set_mode(0644);
  auto attr = c.create(create);
  REQUIRE(attr.ok());
  const uint64_t ino = attr->inode();
  const std::string data = random_bytes(32 * MiB, 9);
  REQUIRE(c.write(ino, 0, data.data(), 16 * MiB).ok());  // past the write-behind: the lease is taken
  pb::ChunkInfo chunk;
  REQUIRE(wait_until([&] {
    auto l = c.locate(ino);
    if (!l.ok() || l->chunks_size() == 0 || l->chunks(0).replicas_size() != 2) return false;
    chunk = l->chunks(0);
    return true;
  }));
  int victim = -1;
  for (int i = 0; i < cluster.chunkservers(); ++i)
    if (cluster.cs_address(i) == chunk.replicas(1).address()) victim = i;
  REQUIRE(victim >= 0);
  cluster.kill_chunkserver(victim);
  // Under goal now, but its writer still holds it: no copy, and so no new version that
  // would refuse the writer.
  REQUIRE(wait_until([&] {
    auto h = c.health();
    return h.ok() && h->under_goal() == 1 && h->waiting_for_writers() == 1;
  }));
  // (The writer itself may have moved the version on when its sends to the dead server
  // failed.) For three heal passes, nothing copies it or moves its version.
  auto during = c.locate(ino);
  REQUIRE(during.ok());
  const uint32_t version = during->chunks(0).version();
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < until) {
    auto h = c.health();
    auto l = c.locate(ino);
    REQUIRE(h.ok());
    REQUIRE(l.ok());
    REQUIRE(h->healing() == 0);
    REQUIRE(l->chunks(0).version() == version);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // The writer goes on (past the dead server) and ends; then the chunk is healed.
  REQUIRE(c.write(ino, 16 * MiB, data.data() + 16 * MiB, 16 * MiB).ok());
  Status st = c.fsync(ino);
  INFO(st.to_string());
  REQUIRE(st.ok());
  REQUIRE(wait_until([&] { return health_clean(cluster, 1); }, std::chrono::seconds(30)));
  REQUIRE(get_file(c, ino) == data);
}

TEST_CASE("a replica damaged on disk is found by the scrubber, deleted and made again from a good copy",
          "[fault][healing]") {
  ClusterOptions opts;
  opts.chunkservers = 3;
  opts.cs_args = {"--scrub-rate", "256M", "--scrub-every", "1"};
  Cluster cluster(opts);
  uint64_t root = cluster.create_volume("v", 2);
  const std::string data = random_bytes(6 * MiB, 5);
  uint64_t ino = put_file(cluster.client(), root, "f", data);
  auto located = cluster.client().locate(ino);
  REQUIRE(located.ok());
  const auto& chunk = located->chunks(0);
  int victim = -1, other = -1;
  for (int i = 0; i < cluster.chunkservers(); ++i) {
    if (cluster.cs_address(i) == chunk.replicas(0).address()) victim = i;
    if (cluster.cs_address(i) == chunk.replicas(1).address()) other = i;
  }
  REQUIRE(victim >= 0);
  REQUIRE(other >= 0);
  const std::string path = cluster.cs_chunk_path(victim, chunk.chunk_id(), chunk.version());
  {  // random blocks overwritten, size unchanged
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f.good());
    for (uint64_t off : {uint64_t{70000}, 2 * MiB + 12345, 5 * MiB + 999})
      f.seekp(static_cast<std::streamoff>(off)).write("scribbled over", 14);
  }
  // Nobody reads it: the scrubber finds it; the master drops that copy and heals.
  REQUIRE(wait_until([&] {
    return read_text_file(cluster.dir() + "/master.log").find("deleting the damaged copy") != std::string::npos;
  }, std::chrono::seconds(30)));
  REQUIRE(wait_until([&] {
    auto l = cluster.client().locate(ino);
    return l.ok() && l->chunks(0).replicas_size() == 2 && l->chunks(0).version() > chunk.version() &&
           health_clean(cluster, 1);
  }, std::chrono::seconds(30)));
  REQUIRE(!std::filesystem::exists(path));
  // The good original goes; the new copy alone serves the right bytes.
  cluster.kill_chunkserver(other);
  auto fresh = cluster.new_client("v");
  REQUIRE(fresh.ok());
  REQUIRE(get_file(**fresh, ino) == data);
}

TEST_CASE("cs drain moves every chunk off a chunkserver until it is safe to remove, undrain takes it back",
          "[fault][healing]") {
  Cluster cluster(3);
  uint64_t root = cluster.create_volume("v", 2);
  std::vector<uint64_t> inodes;
  for (int i = 0; i < 10; ++i) inodes.push_back(put_file(cluster.client(), root, "f" + std::to_string(i), random_bytes(MiB, i)));
  const std::string drained = cluster.cs_address(0);
  std::string out, err;
  REQUIRE(cluster.cli({"cs", "drain", drained}, &out, &err) == 0);
  auto state_of = [&] {
    REQUIRE(cluster.cli({"--json", "cs", "ls"}, &out, &err) == 0);
    for (auto& cs : nlohmann::json::parse(out))
      if (cs["address"] == drained) return cs;
    FAIL("drained server not listed");
    return nlohmann::json();
  };
  REQUIRE(state_of()["draining"] == true);
  REQUIRE(wait_until([&] { return state_of()["safe_to_remove"] == true; }, std::chrono::seconds(60)));
  REQUIRE(cluster.cli({"cs", "ls"}, &out, &err) == 0);
  REQUIRE(out.find("draining: safe to remove") != std::string::npos);
  auto copies_elsewhere = [&](uint64_t ino) {
    auto located = cluster.client().locate(ino);
    REQUIRE(located.ok());
    int n = 0;
    for (auto& r : located->chunks(0).replicas()) n += r.address() != drained ? 1 : 0;
    return n;
  };
  for (uint64_t ino : inodes) REQUIRE(copies_elsewhere(ino) == 2);
  // New chunks avoid it.
  uint64_t fresh = put_file(cluster.client(), root, "new", random_bytes(MiB, 99));
  auto located = cluster.client().locate(fresh);
  REQUIRE(located.ok());
  for (auto& r : located->chunks(0).replicas()) REQUIRE(r.address() != drained);

  // Taken back: its copies count again, the extra ones go, health is clean.
  REQUIRE(cluster.cli({"cs", "undrain", drained}, &out, &err) == 0);
  REQUIRE(state_of()["draining"] == false);
  REQUIRE(wait_until([&] { return health_clean(cluster, 11); }, std::chrono::seconds(30)));
  for (uint64_t i = 0; i < inodes.size(); ++i) REQUIRE(get_file(cluster.client(), inodes[i]) == random_bytes(MiB, i));
}

TEST_CASE("a hung chunkserver (SIGSTOP) is declared dead, and after SIGCONT rejoins without serving stale data",
          "[fault][healing]") {
  Cluster cluster(3);
  uint64_t root = cluster.create_volume("v", 2);
  uint64_t ino = put_file(cluster.client(), root, "f", random_bytes(2 * MiB, 1));
  auto located = cluster.client().locate(ino);
  REQUIRE(located.ok());
  int hung = -1;
  for (int i = 0; i < cluster.chunkservers(); ++i)
    if (cluster.cs_address(i) == located->chunks(0).replicas(0).address()) hung = i;
  REQUIRE(hung >= 0);
  const size_t files_before = chunk_files(cluster.cs_data_dir(hung));

  cluster.signal_chunkserver(hung, SIGSTOP);
  // Its heartbeats stop: dead after the timeout (3 s here), and its chunk is copied.
  bool dead = wait_until([&] {
    auto h = cluster.client().health();
    return h.ok() && h->servers_dead() == 1 && h->under_goal() == 0 && h->missing() == 0;
  }, std::chrono::seconds(30));
  // The file changes while it sleeps: its copy is now stale.
  const std::string fresh_data = random_bytes(2 * MiB, 2);
  std::string put_error;
  if (dead) {
    Status st = cluster.client().write(ino, 0, fresh_data.data(), fresh_data.size());
    if (st.ok()) st = cluster.client().fsync(ino);
    put_error = st.to_string();
  }
  cluster.signal_chunkserver(hung, SIGCONT);
  REQUIRE(dead);
  REQUIRE(put_error == "OK");

  // It registers again; its stale copy is deleted, never served.
  REQUIRE(wait_until([&] {
    auto h = cluster.client().health();
    return h.ok() && h->servers_dead() == 0 && health_clean(cluster, 1);
  }, std::chrono::seconds(30)));
  REQUIRE(wait_until([&] {
    size_t total = 0;
    for (int i = 0; i < 3; ++i) total += chunk_files(cluster.cs_data_dir(i));
    return total == 2;
  }, std::chrono::seconds(30)));
  REQUIRE(files_before == 1);
  for (int round = 0; round < 3; ++round) {
    auto c = cluster.new_client("v");
    REQUIRE(c.ok());
    REQUIRE(get_file(**c, ino) == fresh_data);
  }
}

TEST_CASE("a chunkserver whose fdatasync fails gives its copy up: fsync succeeds on the others, never on a "
          "copy that may have lost pages",
          "[fault][fsync]") {
  ClusterOptions options;
  options.chunkservers = 3;
  options.cs_args_of[0] = {"--disk-fault", "fdatasync:EIO"};
  Cluster cluster(options);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 3, "", 0, 0);  // every chain holds chunkserver 0
  const std::string data = random_bytes(300 * 1024, 1);     // a chunk of its own
  uint64_t ino = put_file(c, root, "f", data);               // fsyncs: chunkserver 0's sync fails once
  // The failing copy was reported and deleted; healing made a new one (a new version).
  REQUIRE(wait_until([&] {
    return read_text_file(cluster.dir() + "/master.log").find("is damaged") != std::string::npos;
  }));
  REQUIRE(read_text_file(cluster.cs_log(0)).find("no longer trusted") != std::string::npos);
  REQUIRE(wait_until([&] {
    auto l = c.locate(ino);
    return l.ok() && l->chunks(0).replicas_size() == 3;
  }, std::chrono::seconds(30)));
  auto other = cluster.new_client("v");
  REQUIRE(other.ok());
  REQUIRE(get_file(**other, ino) == data);
}

TEST_CASE("a failed fdatasync of the only copy makes fsync fail, and no retry turns it into a success",
          "[fault][fsync]") {
  ClusterOptions options;
  options.chunkservers = 1;
  options.cs_args_of[0] = {"--disk-fault", "fdatasync:EIO"};
  Cluster cluster(options);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 1, "", 0, 0);
  pb::CreateReq req;
  req.set_parent(root);
  req.set_name("f");
  req.set_mode(0644);
  auto attr = c.create(req);
  REQUIRE(attr.ok());
  const std::string data = random_bytes(300 * 1024, 2);
  REQUIRE(c.write(attr->inode(), 0, data.data(), data.size()).ok());
  // The disk said no once: the kernel may have dropped the pages it failed to write, and a
  // second fdatasync of the same file would say yes for them. fsync must not.
  Status st = c.fsync(attr->inode());
  INFO(st.to_string());
  REQUIRE(!st.ok());
  REQUIRE(st.message().find("no longer trusted") != std::string::npos);
}

TEST_CASE("the only copy left is damaged: it is kept and its good blocks read, health says DAMAGED, and the healer "
          "does not try to copy it again and again",
          "[fault][healing]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  const std::string data = random_bytes(1 * MiB, 6);
  uint64_t ino = put_file(c, root, "f", data);
  auto located = c.locate(ino);
  REQUIRE(located.ok());
  const auto& chunk = located->chunks(0);
  int damaged = -1, other = -1;
  for (int i = 0; i < cluster.chunkservers(); ++i) {
    if (cluster.cs_address(i) == chunk.replicas(0).address()) damaged = i;
    if (cluster.cs_address(i) == chunk.replicas(1).address()) other = i;
  }
  REQUIRE(damaged >= 0);
  REQUIRE(other >= 0);
  {  // block 1 scribbled over
    std::fstream f(cluster.cs_chunk_path(damaged, chunk.chunk_id(), chunk.version()),
                   std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f.good());
    f.seekp(70000).write("scribbled over", 14);
  }
  // The good copy's server dies: the healer's copy from the damaged one finds the bad block.
  cluster.kill_chunkserver(other);
  REQUIRE(wait_until([&] {
    auto h = c.health();
    return h.ok() && h->damaged_last_copies() == 1;
  }, std::chrono::seconds(30)));
  // Left alone: no copy is tried again, so the version stays where it is.
  auto version_now = [&] {
    auto l = c.locate(ino);
    REQUIRE(l.ok());
    return l->chunks(0).version();
  };
  const uint32_t version = version_now();
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < until) REQUIRE(version_now() == version);
  std::string out;
  CHECK(cluster.cli({"health"}, &out) == 2);
  CHECK(out.find("DAMAGED: 1 chunks") != std::string::npos);
  // Its good blocks still read.
  auto reader = cluster.new_client("v");
  REQUIRE(reader.ok());
  std::string block0(65536, '\0');
  auto got = (*reader)->read(ino, 0, block0.size(), block0.data());
  REQUIRE(got.ok());
  REQUIRE(block0 == data.substr(0, block0.size()));
  // The good copy comes back, but its version is behind (the healer's one try moved the
  // chunk on): it is not served, and not deleted either.
  const std::string stale = cluster.cs_chunk_path(other, chunk.chunk_id(), chunk.version());
  REQUIRE(std::filesystem::exists(stale));
  cluster.restart_chunkserver(other);
  REQUIRE(wait_until([&] {
    return read_text_file(cluster.dir() + "/master.log").find("the stale one is kept on disk") != std::string::npos;
  }, std::chrono::seconds(30)));
  CHECK(std::filesystem::exists(stale));
  auto h = c.health();
  REQUIRE(h.ok());
  CHECK(h->damaged_last_copies() == 1);
}

TEST_CASE("a copy a power loss cut back to its last sync is found short at registration, deleted and made again",
          "[fault][healing]") {
  ClusterOptions opts;
  opts.chunkservers = 2;
  opts.powercut_disks = true;
  Cluster cluster(opts);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  // Closed, not fsynced: on both servers, in neither's disk. 200 KiB: a chunk of its own.
  const std::string data = random_bytes(200 * 1024, 7);
  pb::CreateReq req;
  req.set_parent(root);
  req.set_name("unsynced");
  req.set_mode(0644);
  auto attr = c.create(req);
  REQUIRE(attr.ok());
  REQUIRE(c.write(attr->inode(), 0, data.data(), data.size()).ok());
  REQUIRE(c.flush(attr->inode()).ok());
  // An fsync of another file syncs each server's index, the first file's record with it.
  put_file(c, root, "synced", random_bytes(200 * 1024, 8));
  cluster.power_cut_chunkserver(0);
  cluster.restart_chunkserver(0);
  // Its copy came back empty: not counted, made again from the other one.
  REQUIRE(wait_until([&] {
    return read_text_file(cluster.dir() + "/master.log").find("it lost bytes") != std::string::npos;
  }, std::chrono::seconds(30)));
  REQUIRE(wait_until([&] { return health_clean(cluster, 2); }, std::chrono::seconds(30)));
  // The other server goes: the new copy alone has every byte.
  cluster.kill_chunkserver(1);
  auto reader = cluster.new_client("v");
  REQUIRE(reader.ok());
  REQUIRE(get_file(**reader, attr->inode()) == data);
}

TEST_CASE("a chunk made while too few servers were up is healed when a server comes back, without waiting for the "
          "sweep",
          "[fault][healing]") {
  ClusterOptions opts;
  opts.chunkservers = 2;
  opts.master_args = {"--sweep-every-ms", "600000"};  // the slow sweep would take ten minutes
  Cluster cluster(opts);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  cluster.kill_chunkserver(1);
  REQUIRE(wait_until([&] {
    auto h = c.health();
    return h.ok() && h->servers_dead() == 1;
  }));
  // One copy only: the healer finds no server to make the second on, and lets it be.
  const std::string data = random_bytes(300 * 1024, 9);
  uint64_t ino = put_file(c, root, "f", data);
  REQUIRE(wait_until([&] {
    auto h = c.health();
    return h.ok() && h->under_goal() == 1 && h->heal_queued() == 0 && h->waiting_for_writers() == 0;
  }));
  cluster.restart_chunkserver(1);
  REQUIRE(wait_until([&] { return health_clean(cluster, 1); }, std::chrono::seconds(15)));
  cluster.kill_chunkserver(0);
  auto reader = cluster.new_client("v");
  REQUIRE(reader.ok());
  REQUIRE(get_file(**reader, ino) == data);
}
