// The keelfs command-line tool against a real cluster: what a user and an admin type, what
// they read back (text and --json), and the one-line errors with a non-zero exit.
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;
using json = nlohmann::json;

namespace {

constexpr size_t MiB = 1024 * 1024;

json parse_json(const std::string& text) {
  INFO("output: " << text);
  json j;
  REQUIRE_NOTHROW(j = json::parse(text));
  return j;
}

void write_local(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
  REQUIRE(out.good());
}

// The CLI failed the way a user should see it: non-zero exit, nothing on stdout, and one
// line on stderr ("keelfs: ...") that contains `names`.
void require_one_line_error(int rc, const std::string& out, const std::string& err, const std::string& names) {
  INFO("exit " << rc << ", stdout: " << out << ", stderr: " << err);
  REQUIRE(rc != 0);
  REQUIRE(out.empty());
  REQUIRE(err.rfind("keelfs: ", 0) == 0);
  REQUIRE(err.back() == '\n');
  REQUIRE(err.find('\n') == err.size() - 1);
  REQUIRE(err.find(names) != std::string::npos);
}

// Runs the keelfs binary with exactly these arguments (no --master added).
int run_keelfs(const Cluster& cluster, const std::string& args, std::string* out, std::string* err) {
  std::string out_file = cluster.dir() + "/direct.out", err_file = cluster.dir() + "/direct.err";
  std::string cmd = std::string(KEELFS_BIN_DIR) + "/keelfs " + args + " >" + out_file + " 2>" + err_file;
  int status = std::system(cmd.c_str());
  *out = read_text_file(out_file);
  *err = read_text_file(err_file);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

TEST_CASE("cli volume create and volume ls in text and json", "[cli]") {
  Cluster cluster(3);
  std::string out, err;
  REQUIRE(cluster.cli({"volume", "create", "alpha"}, &out, &err) == 0);
  REQUIRE(out.find("volume 'alpha' created (goal 2") != std::string::npos);
  REQUIRE(out.find("secret: ") != std::string::npos);  // shown once, 64 hex digits
  REQUIRE(out.substr(out.find("secret: ") + 8, 64).find_first_not_of("0123456789abcdef") == std::string::npos);
  REQUIRE(cluster.cli({"volume", "create", "beta", "--goal", "3", "--save-secret", cluster.dir() + "/beta.secret"}, &out, &err) == 0);
  REQUIRE(out.find("volume 'beta' created (goal 3") != std::string::npos);

  REQUIRE(cluster.cli({"volume", "ls"}, &out, &err) == 0);
  REQUIRE(out.find("NAME") != std::string::npos);
  REQUIRE(out.find("alpha") != std::string::npos);
  REQUIRE(out.find("beta") != std::string::npos);

  // A file makes the usage columns move.
  std::string local = cluster.dir() + "/in";
  write_local(local, random_bytes(3 * MiB + 7, 1));
  REQUIRE(cluster.cli({"put", local, "beta:/f"}, &out, &err) == 0);

  REQUIRE(cluster.cli({"--json", "volume", "ls"}, &out, &err) == 0);
  json vols = parse_json(out);
  REQUIRE(vols.is_array());
  REQUIRE(vols.size() == 2);
  std::map<std::string, json> by_name;
  for (auto& v : vols) by_name[v["name"].get<std::string>()] = v;
  REQUIRE(by_name.count("alpha") == 1);
  REQUIRE(by_name.count("beta") == 1);
  REQUIRE(by_name["alpha"]["goal"] == 2);
  REQUIRE(by_name["beta"]["goal"] == 3);
  REQUIRE(by_name["alpha"]["region"] == "default");
  REQUIRE(by_name["alpha"]["id"] != by_name["beta"]["id"]);
  REQUIRE(by_name["alpha"]["files"] == 0);
  REQUIRE(by_name["alpha"]["logical_bytes"] == 0);
  REQUIRE(by_name["beta"]["files"] == 1);
  REQUIRE(by_name["beta"]["chunks"] == 1);
  REQUIRE(by_name["beta"]["logical_bytes"] == 3 * MiB + 7);
  REQUIRE(by_name["beta"]["physical_bytes"] == 3 * (3 * MiB + 7));
  REQUIRE(by_name["beta"]["created"].get<int64_t>() > 1600000000);

  // --json also works after the subcommand.
  REQUIRE(cluster.cli({"volume", "ls", "--json"}, &out, &err) == 0);
  REQUIRE(parse_json(out).size() == 2);

  // Creating it twice, or with an impossible goal, is refused.
  int rc = cluster.cli({"volume", "create", "alpha"}, &out, &err);
  require_one_line_error(rc, out, err, "volume 'alpha' already exists");
  rc = cluster.cli({"volume", "create", "gamma", "--goal", "10"}, &out, &err);
  require_one_line_error(rc, out, err, "goal 10");
  rc = cluster.cli({"volume", "create", "Bad/Name"}, &out, &err);
  require_one_line_error(rc, out, err, "Bad/Name");
}

TEST_CASE("cli cs ls shows every alive chunkserver with its figures", "[cli]") {
  Cluster cluster(3);
  std::set<std::string> addresses;
  for (int i = 0; i < cluster.chunkservers(); ++i) addresses.insert(cluster.cs_address(i));

  std::string out, err;
  REQUIRE(cluster.cli({"cs", "ls"}, &out, &err) == 0);
  for (const char* column : {"ADDRESS", "REGION", "CHUNKS", "USED", "TOTAL", "HEARTBEAT"})
    REQUIRE(out.find(column) != std::string::npos);
  for (const auto& a : addresses) {
    INFO(out);
    size_t at = out.find(a);
    REQUIRE(at != std::string::npos);
    std::string line = out.substr(at, out.find('\n', at) - at);
    REQUIRE(line.find("default") != std::string::npos);
    REQUIRE(line.find("alive") != std::string::npos);
    REQUIRE(line.find("s ") != std::string::npos);  // "0.1s" last heartbeat
  }

  // One file with goal 2: two servers report one chunk each (from their heartbeats).
  REQUIRE(cluster.cli({"volume", "create", "v", "--save-secret", cluster.dir() + "/v.secret"}, &out, &err) == 0);
  std::string local = cluster.dir() + "/in";
  write_local(local, random_bytes(MiB, 2));
  REQUIRE(cluster.cli({"put", local, "v:/f"}, &out, &err) == 0);

  json servers;
  bool counted = wait_until([&] {
    if (cluster.cli({"--json", "cs", "ls"}, &out, &err) != 0) return false;
    servers = json::parse(out, nullptr, false);
    if (!servers.is_array()) return false;
    uint64_t chunks = 0;
    for (auto& s : servers) chunks += s["chunks"].get<uint64_t>();
    return chunks == 2;
  });
  INFO(out);
  REQUIRE(counted);
  REQUIRE(servers.size() == 3);
  std::set<std::string> seen;
  std::set<std::string> ids;
  for (auto& s : servers) {
    seen.insert(s["address"].get<std::string>());
    ids.insert(s["id"].get<std::string>());
    REQUIRE(s["alive"] == true);
    REQUIRE(s["region"] == "default");
    REQUIRE(s["id"].get<std::string>().size() == 16);
    REQUIRE(s["total_bytes"].get<uint64_t>() > 0);
    REQUIRE(s["used_bytes"].get<uint64_t>() > 0);
    REQUIRE(s["used_bytes"].get<uint64_t>() <= s["total_bytes"].get<uint64_t>());
    // Heartbeats every 200 ms in the harness.
    REQUIRE(s["last_heartbeat_ms_ago"].get<int64_t>() >= 0);
    REQUIRE(s["last_heartbeat_ms_ago"].get<int64_t>() < 5000);
    REQUIRE(s["chunks"].get<uint64_t>() <= 1);
  }
  REQUIRE(seen == addresses);
  REQUIRE(ids.size() == 3);

  // A chunkserver that dies is shown dead.
  cluster.kill_chunkserver(2);
  REQUIRE(wait_until([&] {
    if (cluster.cli({"--json", "cs", "ls"}, &out, &err) != 0) return false;
    json list = json::parse(out, nullptr, false);
    if (!list.is_array()) return false;
    for (auto& s : list)
      if (s["address"] == cluster.cs_address(2)) return s["alive"] == false;
    return false;
  }));
  REQUIRE(cluster.cli({"cs", "ls"}, &out, &err) == 0);
  size_t at = out.find(cluster.cs_address(2));
  REQUIRE(at != std::string::npos);
  REQUIRE(out.substr(at, out.find('\n', at) - at).find("dead") != std::string::npos);
}

TEST_CASE("cli put get ls stat mkdir rm round trip", "[cli]") {
  Cluster cluster(3);
  std::string out, err;
  REQUIRE(cluster.cli({"volume", "create", "v", "--goal", "2", "--save-secret", cluster.dir() + "/v.secret"}, &out, &err) == 0);
  REQUIRE(cluster.cli({"mkdir", "v:/models"}, &out, &err) == 0);
  REQUIRE(cluster.cli({"mkdir", "-p", "v:/deep/er/est"}, &out, &err) == 0);
  REQUIRE(cluster.cli({"mkdir", "-p", "v:/deep/er"}, &out, &err) == 0);  // exists: fine with -p
  int rc = cluster.cli({"mkdir", "v:/models"}, &out, &err);
  require_one_line_error(rc, out, err, "'models' already exists");

  // Two chunks: a full one and a short tail.
  const size_t size = 64 * MiB + 1000;
  std::string data = random_bytes(size, 3);
  std::string local = cluster.dir() + "/model.in";
  write_local(local, data);
  REQUIRE(cluster.cli({"put", local, "v:/models/model.bin"}, &out, &err) == 0);
  REQUIRE(err.find("v:/models/model.bin: 67109864 bytes") != std::string::npos);
  std::string small_local = cluster.dir() + "/small.in";
  write_local(small_local, "hello keelfs\n");
  REQUIRE(cluster.cli({"put", small_local, "v:/models/readme"}, &out, &err) == 0);

  std::string back = cluster.dir() + "/model.out";
  REQUIRE(cluster.cli({"get", "v:/models/model.bin", back}, &out, &err) == 0);
  REQUIRE(read_text_file(back) == data);

  // ls: text and json.
  REQUIRE(cluster.cli({"ls", "v:/models"}, &out, &err) == 0);
  REQUIRE(out.find("model.bin") != std::string::npos);
  REQUIRE(out.find("readme") != std::string::npos);
  REQUIRE(out.find(std::to_string(size)) != std::string::npos);
  REQUIRE(cluster.cli({"--json", "ls", "v:/"}, &out, &err) == 0);
  json root = parse_json(out);
  std::map<std::string, json> entries;
  for (auto& e : root) entries[e["name"].get<std::string>()] = e;
  REQUIRE(entries.size() == 2);
  REQUIRE(entries["models"]["type"] == "directory");
  REQUIRE(entries["deep"]["type"] == "directory");
  REQUIRE(cluster.cli({"--json", "ls", "v:/models"}, &out, &err) == 0);
  entries.clear();
  for (auto& e : parse_json(out)) entries[e["name"].get<std::string>()] = e;
  REQUIRE(entries.size() == 2);
  REQUIRE(entries["model.bin"]["type"] == "file");
  REQUIRE(entries["model.bin"]["size"] == size);
  REQUIRE(entries["readme"]["size"] == 13);
  REQUIRE(cluster.cli({"--json", "ls", "v:/deep/er"}, &out, &err) == 0);
  REQUIRE(parse_json(out).size() == 1);

  // stat --json: every chunk with id, version, length and two distinct replicas.
  REQUIRE(cluster.cli({"--json", "volume", "ls"}, &out, &err) == 0);
  REQUIRE(parse_json(out)[0]["goal"] == 2);
  REQUIRE(cluster.cli({"--json", "stat", "v:/models/model.bin"}, &out, &err) == 0);
  json st = parse_json(out);
  REQUIRE(st["size"] == size);
  REQUIRE(st["type"] == "file");
  REQUIRE(st["chunks"].size() == 2);
  std::set<std::string> cs_addresses;
  for (int i = 0; i < cluster.chunkservers(); ++i) cs_addresses.insert(cluster.cs_address(i));
  std::set<std::string> chunk_ids;
  for (size_t i = 0; i < 2; ++i) {
    const json& c = st["chunks"][i];
    INFO("chunk " << i << ": " << c.dump());
    REQUIRE(c["index"] == i);
    REQUIRE(c["id"].get<std::string>().size() == 16);
    REQUIRE(c["id"] != "0000000000000000");
    chunk_ids.insert(c["id"].get<std::string>());
    REQUIRE(c["version"].get<uint32_t>() >= 1);
    REQUIRE(c["length"] == (i == 0 ? 64 * MiB : 1000));
    REQUIRE(c["replicas"].size() == 2);
    std::string r0 = c["replicas"][0], r1 = c["replicas"][1];
    REQUIRE(r0 != r1);
    REQUIRE(cs_addresses.count(r0) == 1);
    REQUIRE(cs_addresses.count(r1) == 1);
  }
  REQUIRE(chunk_ids.size() == 2);
  // The text form says the same.
  REQUIRE(cluster.cli({"stat", "v:/models/model.bin"}, &out, &err) == 0);
  REQUIRE(out.find("size " + std::to_string(size)) != std::string::npos);
  REQUIRE(out.find("id " + st["chunks"][1]["id"].get<std::string>()) != std::string::npos);
  REQUIRE(out.find("length 1000") != std::string::npos);
  REQUIRE(out.find(st["chunks"][0]["replicas"][0].get<std::string>()) != std::string::npos);

  // rm: files, then the emptied directory.
  REQUIRE(cluster.cli({"rm", "v:/models/model.bin"}, &out, &err) == 0);
  REQUIRE(cluster.cli({"rm", "v:/models/readme"}, &out, &err) == 0);
  REQUIRE(cluster.cli({"rm", "v:/models"}, &out, &err) == 0);
  REQUIRE(cluster.cli({"--json", "ls", "v:/"}, &out, &err) == 0);
  json after = parse_json(out);
  REQUIRE(after.size() == 1);
  REQUIRE(after[0]["name"] == "deep");
  rc = cluster.cli({"stat", "v:/models/model.bin"}, &out, &err);
  require_one_line_error(rc, out, err, "/models/model.bin");

  // stdin and stdout as "-".
  REQUIRE(cluster.cli({"put", local, "v:/again"}, &out, &err) == 0);
  REQUIRE(cluster.cli({"get", "v:/again", "-"}, &out, &err) == 0);
  REQUIRE(out == data);
}

TEST_CASE("cli errors are one line naming the thing with a non-zero exit", "[cli]") {
  Cluster cluster(3);
  std::string out, err;
  REQUIRE(cluster.cli({"volume", "create", "v", "--save-secret", cluster.dir() + "/v.secret"}, &out, &err) == 0);
  std::string local = cluster.dir() + "/in";
  write_local(local, "data");
  REQUIRE(cluster.cli({"mkdir", "v:/d"}, &out, &err) == 0);
  REQUIRE(cluster.cli({"put", local, "v:/d/f"}, &out, &err) == 0);

  {  // unknown volume
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {"ls", "nope:/"}, {"stat", "nope:/x"}, {"get", "nope:/x", local + ".out"}, {"put", local, "nope:/x"},
             {"mkdir", "nope:/x"}, {"rm", "nope:/x"}}) {
      INFO(args[0]);
      int rc = cluster.cli(args, &out, &err);
      require_one_line_error(rc, out, err, "volume 'nope' does not exist");
    }
  }
  {  // missing file
    int rc = cluster.cli({"get", "v:/d/missing", local + ".out"}, &out, &err);
    require_one_line_error(rc, out, err, "/d/missing");
    REQUIRE(err.find("does not exist") != std::string::npos);
    rc = cluster.cli({"stat", "v:/nothere/at/all"}, &out, &err);
    require_one_line_error(rc, out, err, "/nothere/at/all");
    rc = cluster.cli({"rm", "v:/d/missing"}, &out, &err);
    require_one_line_error(rc, out, err, "/d/missing");
    rc = cluster.cli({"ls", "v:/missing"}, &out, &err);
    require_one_line_error(rc, out, err, "/missing");
    rc = cluster.cli({"put", local, "v:/nodir/f"}, &out, &err);
    require_one_line_error(rc, out, err, "/nodir");
  }
  {  // missing local file
    int rc = cluster.cli({"put", cluster.dir() + "/no-such-local", "v:/f"}, &out, &err);
    require_one_line_error(rc, out, err, cluster.dir() + "/no-such-local");
  }
  {  // rm of a non-empty directory
    int rc = cluster.cli({"rm", "v:/d"}, &out, &err);
    require_one_line_error(rc, out, err, "'d' is not empty");
    // Nothing was removed.
    REQUIRE(cluster.cli({"get", "v:/d/f", local + ".out"}, &out, &err) == 0);
    REQUIRE(read_text_file(local + ".out") == "data");
  }
  {  // get of a directory
    int rc = cluster.cli({"get", "v:/d", local + ".out"}, &out, &err);
    require_one_line_error(rc, out, err, "v:/d is not a regular file");
  }
  {  // malformed VOL:/PATH
    for (const char* bad : {"nocolon", ":/x"}) {
      int rc = cluster.cli({"ls", bad}, &out, &err);
      require_one_line_error(rc, out, err, std::string("'") + bad + "' is not VOLUME:/PATH");
      rc = cluster.cli({"put", local, bad}, &out, &err);
      require_one_line_error(rc, out, err, std::string("'") + bad + "' is not VOLUME:/PATH");
    }
  }
  {  // unreachable master
    int rc = run_keelfs(cluster, "--master 127.0.0.1:1 volume ls", &out, &err);
    require_one_line_error(rc, out, err, "127.0.0.1:1");
    REQUIRE(err.find("master") != std::string::npos);
    rc = run_keelfs(cluster, "--master 127.0.0.1:1 ls v:/", &out, &err);
    require_one_line_error(rc, out, err, "127.0.0.1:1");
    // The same commands against the real master work, so the address is what failed.
    rc = run_keelfs(cluster, "--master " + cluster.master_address() + " volume ls", &out, &err);
    REQUIRE(rc == 0);
  }
  {  // a bad command line
    int rc = cluster.cli({"volume", "frobnicate"}, &out, &err);
    REQUIRE(rc != 0);
    rc = cluster.cli({"put", local}, &out, &err);
    REQUIRE(rc != 0);
  }
}
