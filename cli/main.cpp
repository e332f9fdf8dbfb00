// keelfs: the command-line tool for users and admins.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "client/client.h"
#include "common/auth.h"
#include "common/util.h"

using namespace keelfs;
using json = nlohmann::json;

namespace {

constexpr size_t kCopyBuffer = 64u << 20;

struct Target {
  std::string volume;
  std::string path;  // always starts with '/'
};

Result<Target> parse_target(const std::string& arg) {
  auto colon = arg.find(':');
  if (colon == std::string::npos || colon == 0)
    return error(Code::kInvalidArgument, fmt::format("'{}' is not VOLUME:/PATH", arg));
  Target t{arg.substr(0, colon), arg.substr(colon + 1)};
  if (t.path.empty() || t.path[0] != '/') t.path = "/" + t.path;
  return t;
}

std::pair<std::string, std::string> split_parent(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto slash = p.rfind('/');
  return {p.substr(0, slash == 0 ? 1 : slash), p.substr(slash + 1)};
}

const char* type_char(pb::FileType t) {
  switch (t) {
    case pb::FT_DIRECTORY: return "d";
    case pb::FT_SYMLINK: return "l";
    case pb::FT_FIFO: return "p";
    case pb::FT_CHARDEV: return "c";
    case pb::FT_BLOCKDEV: return "b";
    case pb::FT_SOCKET: return "s";
    default: return "-";
  }
}

const char* type_name(pb::FileType t) {
  switch (t) {
    case pb::FT_DIRECTORY: return "directory";
    case pb::FT_SYMLINK: return "symlink";
    case pb::FT_REGULAR: return "file";
    default: return "special";
  }
}

std::string mode_string(const pb::Attr& a) {
  std::string s = type_char(a.type());
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (a.mode() & (1u << (8 - i))) ? rwx[i] : '-';
  return s;
}

std::string time_string(int64_t sec) {
  char buf[32];
  time_t t = static_cast<time_t>(sec);
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

json attr_json(const pb::Attr& a) {
  return json{{"inode", a.inode()}, {"type", type_name(a.type())}, {"mode", fmt::format("{:04o}", a.mode())},
              {"uid", a.uid()},     {"gid", a.gid()},                {"size", a.size()},
              {"nlink", a.nlink()}, {"mtime", a.mtime_sec()},        {"ctime", a.ctime_sec()}};
}

// Everything a command needs: a connected client and the volume's root.
class Session {
 public:
  Status open(const std::string& master, std::string secret_file, std::string region,
              const std::string& cluster_secret_file, const std::string& monitor_key_file) {
    secret_file_ = std::move(secret_file);
    region_ = std::move(region);
    client::ClientOptions opts;
    opts.master = master;
    opts.name = "keelfs-cli@" + host_name();
    ASSIGN_OR_RETURN(client_, client::Client::connect(opts));
    // With the monitoring key, the master answers what only reads (health, fsck, listings).
    if (!monitor_key_file.empty()) {
      ASSIGN_OR_RETURN(std::string key, read_secret_file(monitor_key_file));
      return client_->admin_login(key);
    }
    // With the cluster secret at hand, admin commands (volume create/resize/rm, cs drain)
    // are allowed; without it the master refuses those, and only those.
    std::string path = cluster_secret_file;
    const char* home = std::getenv("KEELFS_HOME");
    if (path.empty() && home && *home && access((std::string(home) + "/cluster.secret").c_str(), R_OK) == 0)
      path = std::string(home) + "/cluster.secret";
    if (!path.empty()) {
      ASSIGN_OR_RETURN(std::string secret, read_secret_file(path));
      RETURN_IF_ERROR(client_->admin_login(secret));
    }
    return Status::Ok();
  }
  client::Client& c() { return *client_; }
  Result<uint64_t> root(const std::string& volume) {
    client::MountRequest req;
    req.volume = volume;
    ASSIGN_OR_RETURN(req.secret, client::find_volume_secret(volume, secret_file_));
    req.region = client::host_region(region_);
    req.mount_point = "(keelfs cli)";
    ASSIGN_OR_RETURN(pb::MountResp m, client_->mount(req));
    return m.volume().root_inode();
  }

 private:
  std::unique_ptr<client::Client> client_;
  std::string secret_file_;
  std::string region_;
};

std::string limit_string(uint64_t bytes) { return bytes == 0 ? "unlimited" : human_bytes(bytes); }

json session_json(const pb::SessionInfo& s) {
  return json{{"id", fmt::format("{:x}", s.id())},
              {"volume", s.volume()},
              {"host", s.host()},
              {"mount_point", s.mount_point()},
              {"pid", s.pid()},
              {"region", s.region()},
              {"client_version", s.client_version()},
              {"since", s.since_unix_ms() / 1000},
              {"last_heartbeat_ms_ago", s.last_heartbeat_ms_ago()},
              {"connected", s.connected()},
              {"peer", s.peer()}};
}

json volume_json(const pb::VolumeInfo& v) {
  json sessions = json::array();
  for (auto& s : v.sessions()) sessions.push_back(session_json(s));
  return json{{"name", v.name()},
              {"id", v.id()},
              {"region", v.region()},
              {"goal", v.goal()},
              {"size_bytes", v.size_bytes()},
              {"max_inodes", v.max_inodes()},
              {"created", v.created_unix()},
              {"logical_bytes", v.logical_bytes()},
              {"physical_bytes", v.physical_bytes()},
              {"files", v.files()},
              {"chunks", v.chunks()},
              {"pack_below", v.pack_below()},
              {"packed_bytes", v.packed_bytes()},
              {"dead_bytes", v.dead_bytes()},
              {"sessions", sessions}};
}

struct VolumeCreateArgs {
  std::string name;
  std::string region;
  std::string size = "0";
  uint64_t inodes = 0;
  uint32_t goal = 2;
  std::string pack_below;  // empty: the master's default
  std::string save_secret;  // write the secret to this file instead of printing it
};

// Writes the secret to `path` with mode 0600 (created exclusively: never over a file).
Status save_secret(const std::string& path, const std::string& secret) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return error(Code::kIOError, fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  std::string line = secret + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ok = ::close(fd) == 0 && ok;
  if (!ok) return error(Code::kIOError, fmt::format("cannot write {}", path));
  return Status::Ok();
}

Status cmd_volume_create(Session& s, const VolumeCreateArgs& args, bool as_json) {
  pb::VolumeCreateReq req;
  req.set_name(args.name);
  req.set_region(args.region);
  req.set_goal(args.goal);
  uint64_t size = 0;
  if (!parse_bytes(args.size, &size))
    return error(Code::kInvalidArgument, fmt::format("--size '{}' is not a size such as 100G, 512M or 1T", args.size));
  req.set_size_bytes(size);
  req.set_max_inodes(args.inodes);
  if (!args.pack_below.empty()) {
    uint64_t below = 0;
    if (!parse_bytes(args.pack_below, &below) || below > UINT32_MAX)
      return error(Code::kInvalidArgument, fmt::format("--pack-below '{}' is not a size such as 64K or 0", args.pack_below));
    req.set_pack_below(static_cast<uint32_t>(below));
  }
  ASSIGN_OR_RETURN(client::CreatedVolume created, s.c().volume_create(req));
  const pb::VolumeInfo& v = created.info;
  if (!args.save_secret.empty()) RETURN_IF_ERROR(save_secret(args.save_secret, created.secret));
  if (as_json) {
    json j = volume_json(v);
    if (args.save_secret.empty()) j["secret"] = created.secret;
    std::cout << j.dump() << "\n";
    return Status::Ok();
  }
  std::cout << fmt::format("volume '{}' created (goal {}, region {}, size {}, inodes {})\n", v.name(), v.goal(),
                           v.region(), limit_string(v.size_bytes()),
                           v.max_inodes() ? std::to_string(v.max_inodes()) : "unlimited");
  if (args.save_secret.empty())
    std::cout << fmt::format("secret: {}\n(shown only now: mounting needs it; it was made here and the master "
                             "keeps only keys derived from it)\n",
                             created.secret);
  else
    std::cout << fmt::format("secret saved in {} (mode 0600)\n", args.save_secret);
  return Status::Ok();
}

Status cmd_volume_ls(Session& s, bool as_json) {
  ASSIGN_OR_RETURN(auto vols, s.c().volume_list());
  if (as_json) {
    json out = json::array();
    for (auto& v : vols) out.push_back(volume_json(v));
    std::cout << out.dump(2) << "\n";
    return Status::Ok();
  }
  std::cout << fmt::format("{:<20} {:<10} {:>4} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8}  {}\n", "NAME", "REGION", "GOAL",
                           "SIZE", "LOGICAL", "PHYSICAL", "FILES", "CHUNKS", "SESSIONS", "CREATED");
  for (auto& v : vols)
    std::cout << fmt::format("{:<20} {:<10} {:>4} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8}  {}\n", v.name(), v.region(),
                             v.goal(), limit_string(v.size_bytes()), human_bytes(v.logical_bytes()),
                             human_bytes(v.physical_bytes()), v.files(), v.chunks(), v.sessions_size(),
                             time_string(v.created_unix()));
  return Status::Ok();
}

void print_sessions(const google::protobuf::RepeatedPtrField<pb::SessionInfo>& sessions) {
  std::cout << fmt::format("{:<14} {:<12} {:<16} {:<24} {:>7} {:<10} {:<8} {:<19} {:>9}\n", "SESSION", "VOLUME", "HOST",
                           "MOUNT POINT", "PID", "REGION", "VERSION", "SINCE", "HEARD");
  for (auto& x : sessions)
    std::cout << fmt::format("{:<14x} {:<12} {:<16} {:<24} {:>7} {:<10} {:<8} {:<19} {:>8.1f}s{}\n", x.id(), x.volume(),
                             x.host(), x.mount_point(), x.pid(), x.region(), x.client_version(),
                             time_string(x.since_unix_ms() / 1000), x.last_heartbeat_ms_ago() / 1000.0,
                             x.connected() ? "" : "  (disconnected)");
}

Status cmd_volume_info(Session& s, const std::string& name, bool as_json) {
  ASSIGN_OR_RETURN(auto vols, s.c().volume_list());
  for (auto& v : vols) {
    if (v.name() != name) continue;
    if (as_json) {
      std::cout << volume_json(v).dump(2) << "\n";
      return Status::Ok();
    }
    std::cout << fmt::format("volume    {}\nregion    {}\ngoal      {}\nsize      {}\n", v.name(), v.region(), v.goal(),
                             limit_string(v.size_bytes()));
    std::cout << fmt::format("used      {} logical, {} physical ({} chunks)\n", human_bytes(v.logical_bytes()),
                             human_bytes(v.physical_bytes()), v.chunks());
    std::cout << fmt::format("packing   {}\n", v.pack_below() ? fmt::format("files below {}", human_bytes(v.pack_below()))
                                                            : std::string("off"));
    std::cout << fmt::format("packed    {} of small files' data, {} dead awaiting compaction (one copy)\n",
                             human_bytes(v.packed_bytes()), human_bytes(v.dead_bytes()));
    if (v.logical_bytes() > 0 && v.goal() > 0)
      std::cout << fmt::format("overhead  {:.3f} (physical / (logical x goal))\n",
                               static_cast<double>(v.physical_bytes()) /
                                   (static_cast<double>(v.logical_bytes()) * v.goal()));
    std::cout << fmt::format("files     {}{}\ncreated   {}\nsessions  {}\n", v.files(),
                             v.max_inodes() ? fmt::format(" of {}", v.max_inodes()) : "", time_string(v.created_unix()),
                             v.sessions_size());
    if (v.sessions_size() > 0) print_sessions(v.sessions());
    return Status::Ok();
  }
  return error(Code::kNotFound, fmt::format("volume '{}' does not exist", name));
}

Status cmd_volume_resize(Session& s, const std::string& name, const std::string& size_text, uint64_t inodes) {
  uint64_t size = 0;
  if (!parse_bytes(size_text, &size))
    return error(Code::kInvalidArgument, fmt::format("'{}' is not a size such as 100G, 512M or 1T", size_text));
  ASSIGN_OR_RETURN(pb::VolumeInfo v, s.c().volume_resize(name, size, inodes));
  std::cout << fmt::format("volume '{}' resized: size {}, inodes {}\n", v.name(), limit_string(v.size_bytes()),
                           v.max_inodes() ? std::to_string(v.max_inodes()) : "unlimited");
  return Status::Ok();
}

Status cmd_volume_rm(Session& s, const std::string& name) {
  RETURN_IF_ERROR(s.c().volume_remove(name));
  std::cout << fmt::format("volume '{}' removed\n", name);
  return Status::Ok();
}

Status cmd_session_ls(Session& s, const std::string& volume, bool as_json) {
  ASSIGN_OR_RETURN(auto sessions, s.c().session_list(volume));
  if (as_json) {
    json out = json::array();
    for (auto& x : sessions) out.push_back(session_json(x));
    std::cout << out.dump(2) << "\n";
    return Status::Ok();
  }
  google::protobuf::RepeatedPtrField<pb::SessionInfo> field(sessions.begin(), sessions.end());
  print_sessions(field);
  return Status::Ok();
}

std::string cs_state(const pb::CsInfo& cs) {
  std::string state = cs.alive() ? "alive" : "dead";
  if (cs.draining())
    state += cs.drain_left() == 0 ? ", draining: safe to remove"
                                  : fmt::format(", draining: {} chunks still need it", cs.drain_left());
  return state;
}

Status cmd_cs_ls(Session& s, bool as_json) {
  ASSIGN_OR_RETURN(auto servers, s.c().cs_list());
  if (as_json) {
    json out = json::array();
    for (auto& cs : servers)
      out.push_back({{"id", fmt::format("{:016x}", cs.cs_id())},
                     {"address", cs.address()},
                     {"region", cs.region()},
                     {"zone", cs.zone()},
                     {"host", cs.host()},
                     {"chunks", cs.chunks()},
                     {"used_bytes", cs.used_bytes()},
                     {"total_bytes", cs.total_bytes()},
                     {"last_heartbeat_ms_ago", cs.last_heartbeat_ms_ago()},
                     {"alive", cs.alive()},
                     {"draining", cs.draining()},
                     {"drain_left", cs.drain_left()},
                     {"safe_to_remove", cs.draining() && cs.drain_left() == 0}});
    std::cout << out.dump(2) << "\n";
    return Status::Ok();
  }
  std::cout << fmt::format("{:<22} {:<10} {:<6} {:>8} {:>10} {:>10} {:>10}  {}\n", "ADDRESS", "REGION", "ZONE", "CHUNKS",
                           "USED", "TOTAL", "HEARTBEAT", "STATE");
  for (auto& cs : servers)
    std::cout << fmt::format("{:<22} {:<10} {:<6} {:>8} {:>10} {:>10} {:>9.1f}s  {}\n", cs.address(), cs.region(),
                             cs.zone(), cs.chunks(), human_bytes(cs.used_bytes()), human_bytes(cs.total_bytes()),
                             cs.last_heartbeat_ms_ago() / 1000.0, cs_state(cs));
  return Status::Ok();
}

Status cmd_cs_drain(Session& s, const std::string& address, bool drain) {
  RETURN_IF_ERROR(s.c().cs_drain(address, drain));
  std::cout << fmt::format("{}: {}\n", address,
                           drain ? "draining: gets no new chunks, its chunks are copied elsewhere (see cs ls)"
                                 : "drain stopped");
  return Status::Ok();
}

// Exit status for scripts: 0 every chunk at its goal, 1 some under or over, 2 some missing.
Result<int> cmd_health(Session& s, bool as_json) {
  ASSIGN_OR_RETURN(pb::HealthResp h, s.c().health());
  int code = h.missing() > 0 || h.damaged_last_copies() > 0 ? 2 : (h.under_goal() > 0 || h.over_goal() > 0) ? 1 : 0;
  if (as_json) {
    json rows = json::array();
    for (auto& r : h.rows()) rows.push_back({{"goal", r.goal()}, {"copies", r.copies()}, {"chunks", r.chunks()}});
    json missing = json::array();
    for (uint64_t id : h.missing_chunk_ids()) missing.push_back(fmt::format("{:016x}", id));
    json under = json::array();
    for (uint64_t id : h.under_goal_chunk_ids()) under.push_back(fmt::format("{:016x}", id));
    json named = json::array();
    for (auto& m : h.missing_chunks())
      named.push_back({{"chunk", fmt::format("{:016x}", m.chunk_id())},
                       {"volume", m.volume()},
                       {"inode", m.inode()},
                       {"index", m.index()},
                       {"path", m.path()}});
    std::cout << json{{"chunks", h.chunks()},
                      {"missing", h.missing()},
                      {"under_goal", h.under_goal()},
                      {"over_goal", h.over_goal()},
                      {"healing", h.healing()},
                      {"waiting_for_writers", h.waiting_for_writers()},
                      {"heal_queued", h.heal_queued()},
                      {"sweeps", h.sweeps()},
                      {"packs_compacted", h.packs_compacted()},
                      {"packs_to_compact", h.packs_to_compact()},
                      {"store_memory_bytes", h.store_memory_bytes()},
                      {"location_memory_bytes", h.location_memory_bytes()},
                      {"stale_deleted", h.stale_deleted()},
                      {"damaged_reported", h.damaged_reported()},
                      {"damaged_last_copies", h.damaged_last_copies()},
                      {"servers_alive", h.servers_alive()},
                      {"servers_dead", h.servers_dead()},
                      {"servers_draining", h.servers_draining()},
                      {"rows", rows},
                      {"missing_chunk_ids", missing},
                      {"under_goal_chunk_ids", under},
                      {"missing_chunks", named},
                      {"status", code}}
                     .dump(2)
              << "\n";
    return code;
  }
  std::cout << fmt::format("chunkservers: {} alive, {} dead, {} draining\n", h.servers_alive(), h.servers_dead(),
                           h.servers_draining());
  std::cout << fmt::format(
      "chunks: {}  missing: {}  under goal: {}  over goal: {}  being copied: {}  waiting for their writers: {}\n",
      h.chunks(), h.missing(), h.under_goal(), h.over_goal(), h.healing(), h.waiting_for_writers());
  std::cout << fmt::format("healer: {} chunks queued to look at; {} sweeps over every chunk since the master started\n",
                           h.heal_queued(), h.sweeps());
  std::cout << fmt::format("compaction: {} packs rewritten since the master started, {} queued\n", h.packs_compacted(),
                           h.packs_to_compact());
  std::cout << fmt::format("master memory: metadata store {}, chunk locations {}\n", human_bytes(h.store_memory_bytes()),
                           human_bytes(h.location_memory_bytes()));
  std::cout << fmt::format("since the master started: {} stale copies deleted, {} damaged copies reported\n",
                           h.stale_deleted(), h.damaged_reported());
  if (h.damaged_last_copies() > 0)
    std::cout << fmt::format("DAMAGED: {} chunks whose only copy is damaged (blocks failing their CRC do not read)\n",
                             h.damaged_last_copies());
  // Rows: goal; columns: valid copies (as MooseFS shows it).
  uint32_t max_copies = 0;
  std::map<uint32_t, std::map<uint32_t, uint64_t>> matrix;
  for (auto& r : h.rows()) {
    matrix[r.goal()][r.copies()] += r.chunks();
    max_copies = std::max(max_copies, r.copies());
  }
  std::cout << fmt::format("{:>6} |", "goal");
  for (uint32_t c = 0; c <= max_copies; ++c) std::cout << fmt::format(" {:>8}", fmt::format("{} copies", c));
  std::cout << "\n";
  for (auto& [goal, row] : matrix) {
    std::cout << fmt::format("{:>6} |", goal);
    for (uint32_t c = 0; c <= max_copies; ++c) std::cout << fmt::format(" {:>8}", row.count(c) ? row[c] : 0);
    std::cout << "\n";
  }
  for (auto& m : h.missing_chunks())
    std::cout << fmt::format("missing chunk {:016x}: {}:{} (inode {}, bytes from {} MiB)\n", m.chunk_id(), m.volume(),
                             m.path().empty() ? "(no name)" : m.path(), m.inode(), m.index() * 64);
  for (int i = h.missing_chunks_size(); i < h.missing_chunk_ids_size(); ++i)
    std::cout << fmt::format("missing chunk {:016x}\n", h.missing_chunk_ids(i));
  return code;
}

Status cmd_put(Session& s, const std::string& local, const std::string& remote) {
  ASSIGN_OR_RETURN(Target t, parse_target(remote));
  FILE* in = local == "-" ? stdin : std::fopen(local.c_str(), "rb");
  if (!in) return error(Code::kNotFound, fmt::format("cannot open {}: {}", local, std::strerror(errno)));
  std::unique_ptr<FILE, int (*)(FILE*)> closer(in == stdin ? nullptr : in, &std::fclose);
  ASSIGN_OR_RETURN(uint64_t root, s.root(t.volume));
  auto [parent_path, name] = split_parent(t.path);
  ASSIGN_OR_RETURN(pb::Attr parent, s.c().resolve(root, parent_path));
  pb::CreateReq req;
  req.set_parent(parent.inode());
  req.set_name(name);
  req.set_mode(0644);
  req.set_truncate(true);
  req.set_uid(getuid());
  req.set_gid(getgid());
  ASSIGN_OR_RETURN(pb::Attr file, s.c().create(req));
  std::vector<char> buf(kCopyBuffer);
  uint64_t offset = 0;
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    size_t n = std::fread(buf.data(), 1, buf.size(), in);
    if (n == 0) break;
    RETURN_IF_ERROR(s.c().write(file.inode(), offset, buf.data(), n));
    offset += n;
  }
  if (std::ferror(in)) return error(Code::kIOError, fmt::format("reading {} failed", local));
  RETURN_IF_ERROR(s.c().fsync(file.inode()));  // put returns once the file is durable
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << fmt::format("{}: {} bytes in {:.2f} s ({:.0f} MB/s)\n", remote, offset, secs,
                           secs > 0 ? offset / secs / 1e6 : 0.0);
  return Status::Ok();
}

Status cmd_get(Session& s, const std::string& remote, const std::string& local) {
  ASSIGN_OR_RETURN(Target t, parse_target(remote));
  ASSIGN_OR_RETURN(uint64_t root, s.root(t.volume));
  ASSIGN_OR_RETURN(pb::Attr file, s.c().resolve(root, t.path));
  if (file.type() != pb::FT_REGULAR) return error(Code::kIsDir, fmt::format("{} is not a regular file", remote));
  FILE* out = local == "-" ? stdout : std::fopen(local.c_str(), "wb");
  if (!out) return error(Code::kIOError, fmt::format("cannot create {}: {}", local, std::strerror(errno)));
  std::vector<char> buf(kCopyBuffer);
  uint64_t offset = 0;
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, s.c().read(file.inode(), offset, buf.size(), buf.data()));
    if (n == 0) break;
    if (std::fwrite(buf.data(), 1, n, out) != n) return error(Code::kIOError, fmt::format("writing {} failed", local));
    offset += n;
  }
  if (out != stdout && std::fclose(out) != 0) return error(Code::kIOError, fmt::format("closing {} failed", local));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << fmt::format("{}: {} bytes in {:.2f} s ({:.0f} MB/s)\n", remote, offset, secs,
                           secs > 0 ? offset / secs / 1e6 : 0.0);
  return Status::Ok();
}

Status cmd_ls(Session& s, const std::string& remote, bool as_json) {
  ASSIGN_OR_RETURN(Target t, parse_target(remote));
  ASSIGN_OR_RETURN(uint64_t root, s.root(t.volume));
  ASSIGN_OR_RETURN(pb::Attr attr, s.c().resolve(root, t.path));
  std::vector<pb::DirEntry> entries;
  if (attr.type() == pb::FT_DIRECTORY) {
    ASSIGN_OR_RETURN(entries, s.c().readdir_all(attr.inode(), true));
  } else {
    pb::DirEntry e;
    e.set_name(split_parent(t.path).second);
    *e.mutable_attr() = attr;
    entries.push_back(e);
  }
  if (as_json) {
    json out = json::array();
    for (auto& e : entries) {
      json j = attr_json(e.attr());
      j["name"] = e.name();
      out.push_back(j);
    }
    std::cout << out.dump(2) << "\n";
    return Status::Ok();
  }
  for (auto& e : entries)
    std::cout << fmt::format("{} {:>3} {:>5} {:>5} {:>12} {}  {}\n", mode_string(e.attr()), e.attr().nlink(),
                             e.attr().uid(), e.attr().gid(), e.attr().size(), time_string(e.attr().mtime_sec()),
                             e.name());
  return Status::Ok();
}

Status cmd_rm(Session& s, const std::string& remote) {
  ASSIGN_OR_RETURN(Target t, parse_target(remote));
  ASSIGN_OR_RETURN(uint64_t root, s.root(t.volume));
  auto [parent_path, name] = split_parent(t.path);
  if (name.empty()) return error(Code::kInvalidArgument, "refusing to remove the volume root");
  ASSIGN_OR_RETURN(pb::Attr parent, s.c().resolve(root, parent_path));
  ASSIGN_OR_RETURN(pb::Attr attr, s.c().resolve(root, t.path));
  if (attr.type() == pb::FT_DIRECTORY) return s.c().rmdir(parent.inode(), name);
  return s.c().unlink(parent.inode(), name);
}

Status cmd_mkdir(Session& s, const std::string& remote, bool parents) {
  ASSIGN_OR_RETURN(Target t, parse_target(remote));
  ASSIGN_OR_RETURN(uint64_t root, s.root(t.volume));
  if (!parents) {
    auto [parent_path, name] = split_parent(t.path);
    ASSIGN_OR_RETURN(pb::Attr parent, s.c().resolve(root, parent_path));
    return s.c().mkdir(parent.inode(), name, 0755, getuid(), getgid()).status();
  }
  uint64_t dir = root;
  size_t pos = 1;
  while (pos <= t.path.size()) {
    size_t slash = t.path.find('/', pos);
    if (slash == std::string::npos) slash = t.path.size();
    std::string part = t.path.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty()) continue;
    auto made = s.c().mkdir(dir, part, 0755, getuid(), getgid());
    if (made.ok()) {
      dir = made->inode();
      continue;
    }
    if (!made.status().is(Code::kExists)) return made.status();
    ASSIGN_OR_RETURN(pb::Attr existing, s.c().lookup(dir, part));
    if (existing.type() != pb::FT_DIRECTORY) return error(Code::kNotDir, fmt::format("'{}' is not a directory", part));
    dir = existing.inode();
  }
  return Status::Ok();
}

Status cmd_stat(Session& s, const std::string& remote, bool as_json) {
  ASSIGN_OR_RETURN(Target t, parse_target(remote));
  ASSIGN_OR_RETURN(uint64_t root, s.root(t.volume));
  ASSIGN_OR_RETURN(pb::Attr attr, s.c().resolve(root, t.path));
  pb::ChunkLocateResp located;
  if (attr.type() == pb::FT_REGULAR) {
    ASSIGN_OR_RETURN(located, s.c().locate(attr.inode()));
    attr = located.attr();
  }
  if (as_json) {
    json j = attr_json(attr);
    j["path"] = remote;
    json chunks = json::array();
    for (auto& c : located.chunks()) {
      json replicas = json::array();
      for (auto& r : c.replicas()) replicas.push_back(r.address());
      json chunk{{"index", c.index()},
                 {"id", fmt::format("{:016x}", c.chunk_id())},
                 {"version", c.version()},
                 {"length", c.length()},
                 {"replicas", replicas}};
      if (c.extent_length() > 0) chunk["packed"] = {{"offset", c.extent_offset()}, {"length", c.extent_length()}};
      chunks.push_back(std::move(chunk));
    }
    j["chunks"] = chunks;
    std::cout << j.dump(2) << "\n";
    return Status::Ok();
  }
  std::cout << fmt::format("{}\n  type {}  inode {}  size {}  mode {:04o}  uid {}  gid {}  links {}\n", remote,
                           type_name(attr.type()), attr.inode(), attr.size(), attr.mode(), attr.uid(), attr.gid(),
                           attr.nlink());
  std::cout << fmt::format("  modified {}  changed {}\n", time_string(attr.mtime_sec()), time_string(attr.ctime_sec()));
  for (auto& c : located.chunks()) {
    std::string where;
    for (auto& r : c.replicas()) where += (where.empty() ? "" : ", ") + r.address();
    if (c.extent_length() > 0) {
      std::cout << fmt::format("  packed in {:016x} (version {}, {} bytes) at {}, {} bytes  on {}\n", c.chunk_id(),
                               c.version(), c.length(), c.extent_offset(), c.extent_length(),
                               where.empty() ? "(no live copy)" : where);
      continue;
    }
    std::cout << fmt::format("  chunk {:>4}  id {:016x}  version {}  length {}  on {}\n", c.index(), c.chunk_id(),
                             c.version(), c.length(), where.empty() ? "(no live copy)" : where);
  }
  return Status::Ok();
}

// Physical bytes over the bytes that `goal` copies of the logical data would take.
double overhead(const pb::DuResp& r) {
  const double ideal = static_cast<double>(r.logical_bytes()) * r.goal();
  return ideal > 0 ? static_cast<double>(r.physical_bytes()) / ideal : 0.0;
}

Status cmd_du(Session& s, const std::string& remote, bool as_json) {
  ASSIGN_OR_RETURN(Target t, parse_target(remote));
  ASSIGN_OR_RETURN(uint64_t root, s.root(t.volume));
  ASSIGN_OR_RETURN(pb::Attr attr, s.c().resolve(root, t.path));
  ASSIGN_OR_RETURN(pb::DuResp r, s.c().du(attr.inode()));
  if (as_json) {
    std::cout << json{{"path", remote},
                      {"type", type_name(r.attr().type())},
                      {"files", r.files()},
                      {"directories", r.dirs()},
                      {"logical_bytes", r.logical_bytes()},
                      {"physical_bytes", r.physical_bytes()},
                      {"chunks", r.chunks()},
                      {"chunk_bytes", r.chunk_bytes()},
                      {"packed_bytes", r.packed_bytes()},
                      {"goal", r.goal()},
                      {"overhead", overhead(r)}}
                     .dump(2)
              << "\n";
    return Status::Ok();
  }
  std::cout << fmt::format("{}: {} file{}, {} director{}\n", remote, r.files(), r.files() == 1 ? "" : "s", r.dirs(),
                           r.dirs() == 1 ? "y" : "ies");
  std::cout << fmt::format("  logical   {} ({} bytes)\n", human_bytes(r.logical_bytes()), r.logical_bytes());
  std::cout << fmt::format("  physical  {} ({} bytes: goal {} x ({} in {} chunk{} of their own + {} packed))\n",
                           human_bytes(r.physical_bytes()), r.physical_bytes(), r.goal(), human_bytes(r.chunk_bytes()),
                           r.chunks(), r.chunks() == 1 ? "" : "s", human_bytes(r.packed_bytes()));
  if (r.logical_bytes() > 0)
    std::cout << fmt::format("  overhead  {:.3f} (physical / (logical x goal))\n", overhead(r));
  return Status::Ok();
}

Status set_goal_at(Session& s, const pb::Attr& attr, uint32_t goal, bool recursive, uint64_t* changed) {
  pb::SetattrReq req;
  req.set_inode(attr.inode());
  req.set_mask(pb::SET_GOAL);
  req.set_goal(goal);
  RETURN_IF_ERROR(s.c().setattr(req).status());
  ++*changed;
  if (!recursive || attr.type() != pb::FT_DIRECTORY) return Status::Ok();
  ASSIGN_OR_RETURN(auto entries, s.c().readdir_all(attr.inode(), true));
  for (auto& e : entries) RETURN_IF_ERROR(set_goal_at(s, e.attr(), goal, true, changed));
  return Status::Ok();
}

Status cmd_goal_set(Session& s, const std::string& remote, uint32_t goal, bool recursive) {
  ASSIGN_OR_RETURN(Target t, parse_target(remote));
  ASSIGN_OR_RETURN(uint64_t root, s.root(t.volume));
  ASSIGN_OR_RETURN(pb::Attr attr, s.c().resolve(root, t.path));
  uint64_t changed = 0;
  RETURN_IF_ERROR(set_goal_at(s, attr, goal, recursive, &changed));
  std::cout << fmt::format("{}: goal {} ({} inode{})\n", remote, goal, changed, changed == 1 ? "" : "s");
  return Status::Ok();
}

Status cmd_goal_get(Session& s, const std::string& remote, bool as_json) {
  ASSIGN_OR_RETURN(Target t, parse_target(remote));
  ASSIGN_OR_RETURN(uint64_t root, s.root(t.volume));
  ASSIGN_OR_RETURN(pb::Attr attr, s.c().resolve(root, t.path));
  if (as_json)
    std::cout << json{{"path", remote}, {"goal", attr.goal()}}.dump() << "\n";
  else
    std::cout << fmt::format("{}: {}\n", remote, attr.goal());
  return Status::Ok();
}

// Exit status: 0 clean, 1 problems found.
Result<int> cmd_fsck(Session& s, const std::string& volume, bool as_json) {
  ASSIGN_OR_RETURN(pb::FsckResp r, s.c().fsck(volume));
  int code = r.problems_size() > 0 ? 1 : 0;
  if (as_json) {
    json problems = json::array();
    for (auto& p : r.problems()) problems.push_back(p);
    std::cout << json{{"volume", volume},         {"directories", r.directories()}, {"files", r.files()},
                      {"chunks", r.chunks()},     {"logical_bytes", r.logical_bytes()},
                      {"missing", r.missing()},   {"under_goal", r.under_goal()},
                      {"problems", problems},     {"status", code},
                      {"changed_during_check", r.changed_during_check()}}
                     .dump(2)
              << "\n";
    return code;
  }
  std::cout << fmt::format("volume {}: {} directories, {} files, {} chunks, {} logical\n", volume, r.directories(),
                           r.files(), r.chunks(), human_bytes(r.logical_bytes()));
  std::cout << fmt::format("chunks without a valid copy: {}, under goal: {}\n", r.missing(), r.under_goal());
  for (auto& p : r.problems()) std::cout << "problem: " << p << "\n";
  if (r.changed_during_check())
    std::cout << "files came or went during the check: the volume's totals were not compared (run it again to)\n";
  std::cout << (code == 0 ? "clean\n" : fmt::format("{} problem{}\n", r.problems_size(), r.problems_size() == 1 ? "" : "s"));
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keelfs: use and administer a keelfs cluster"};
  app.require_subcommand(1);
  std::string master = "127.0.0.1:9520";
  bool as_json = false;
  app.add_option("--master", master, "master address HOST:PORT")->capture_default_str();
  app.add_flag("--json", as_json, "machine-readable output (listing commands)");
  app.fallthrough();

  std::string secret_file, region;
  app.add_option("--secret-file", secret_file,
                 "file holding the volume's secret (else $KEELFS_SECRET, $KEELFS_SECRET_FILE or "
                 "$KEELFS_HOME/VOLUME.secret)");
  app.add_option("--region", region, "this host's region (else $KEELFS_REGION, /etc/keelfs/region or 'default')");
  std::string cluster_secret_file, monitor_key_file;
  app.add_option("--monitor-key-file", monitor_key_file,
                 "the cluster's monitoring key (keelfs monitor-key): health, fsck and listings, no changes");
  app.add_option("--cluster-secret-file", cluster_secret_file,
                 "the cluster secret, needed to create, resize or remove volumes and to drain chunkservers (else "
                 "$KEELFS_HOME/cluster.secret)");

  auto* volume = app.add_subcommand(
      "volume",
      "network volumes: a volume lives in one region, has a size (quota on logical bytes), an optional inode "
      "limit, a goal (copies of every chunk) and a secret that mounting needs. It outlives every mount; "
      "'volume rm' is refused while a session is attached.");
  volume->require_subcommand(1);
  VolumeCreateArgs vargs;
  auto* vcreate = volume->add_subcommand("create", "create a volume and print its secret (shown only once)");
  vcreate->add_option("NAME", vargs.name, "1-63 characters: a-z 0-9 - _ .")->required();
  vcreate->add_option("--region", vargs.region, "region whose chunkservers hold it (default: 'default')");
  vcreate->add_option("--size", vargs.size, "quota on logical bytes, e.g. 100G (default: unlimited)");
  vcreate->add_option("--inodes", vargs.inodes, "most files and directories it may hold (default: unlimited)");
  vcreate->add_option("--pack-below", vargs.pack_below,
                      "pack files smaller than this into shared chunks (default 64K; 0 = never; docs/small-files.md)");
  vcreate->add_option("--goal", vargs.goal, "copies of every chunk")->capture_default_str();
  vcreate->add_option("--save-secret", vargs.save_secret, "write the secret to this new file (mode 0600) instead");
  auto* vls = volume->add_subcommand("ls", "list volumes: region, goal, size, used bytes, files, sessions");
  std::string vol_name, vol_size;
  uint64_t vol_inodes = 0;
  auto* vinfo = volume->add_subcommand("info", "everything about one volume, with its sessions");
  vinfo->add_option("NAME", vol_name)->required();
  auto* vresize = volume->add_subcommand("resize", "change a volume's size (never below what it holds)");
  vresize->add_option("NAME", vol_name)->required();
  vresize->add_option("SIZE", vol_size, "new size, e.g. 200G; 0 = unlimited")->required();
  vresize->add_option("--inodes", vol_inodes, "new inode limit");
  auto* vrm = volume->add_subcommand("rm", "delete a volume and all its data (refused while sessions are attached)");
  vrm->add_option("NAME", vol_name)->required();

  auto* session_cmd = app.add_subcommand("session", "client sessions (mounts) attached to volumes");
  session_cmd->require_subcommand(1);
  std::string session_volume;
  auto* sls = session_cmd->add_subcommand("ls", "host, mount point, pid, region, version, since, last heartbeat");
  sls->add_option("--volume", session_volume, "only this volume's sessions");

  auto* cs = app.add_subcommand("cs", "chunkservers");
  cs->require_subcommand(1);
  auto* csls = cs->add_subcommand("ls", "list chunkservers: address, region, chunks, space, last heartbeat, state");
  std::string cs_address;
  auto* csdrain = cs->add_subcommand(
      "drain", "move every chunk off a chunkserver (it gets no new ones); 'cs ls' says when it is safe to remove");
  csdrain->add_option("ADDRESS", cs_address, "its data address, as 'cs ls' shows it")->required();
  auto* csundrain = cs->add_subcommand("undrain", "stop draining a chunkserver");
  csundrain->add_option("ADDRESS", cs_address)->required();

  std::string a, b;
  bool parents = false;
  auto* put = app.add_subcommand("put", "copy a local file into a volume");
  put->add_option("LOCAL", a, "local file, or - for stdin")->required();
  put->add_option("VOL:/PATH", b)->required();
  auto* get = app.add_subcommand("get", "copy a file out of a volume");
  get->add_option("VOL:/PATH", a)->required();
  get->add_option("LOCAL", b, "local file, or - for stdout")->required();
  auto* ls = app.add_subcommand("ls", "list a directory");
  ls->add_option("VOL:/PATH", a)->required();
  auto* rm = app.add_subcommand("rm", "remove a file or an empty directory");
  rm->add_option("VOL:/PATH", a)->required();
  auto* mkdir = app.add_subcommand("mkdir", "make a directory");
  mkdir->add_option("VOL:/PATH", a)->required();
  mkdir->add_flag("-p,--parents", parents, "make missing parents, no error if it exists");
  auto* goal_cmd = app.add_subcommand("goal", "copies of every chunk, per file or directory (new files inherit their "
                                               "directory's; a volume's root has the volume's goal)");
  goal_cmd->require_subcommand(1);
  uint32_t goal_n = 0;
  bool recursive = false;
  auto* gset = goal_cmd->add_subcommand("set", "set the goal; existing chunks gain or lose copies in the background");
  gset->add_option("VOL:/PATH", a)->required();
  gset->add_option("N", goal_n, "1 to 9")->required();
  gset->add_flag("-r,--recursive", recursive, "the whole subtree");
  auto* gget = goal_cmd->add_subcommand("get", "show the goal");
  gget->add_option("VOL:/PATH", a)->required();
  auto* health = app.add_subcommand("health",
                                    "chunks by valid copies vs goal; exit 0 all at goal, 1 under/over goal, 2 missing");
  std::string fsck_volume;
  auto* fsck = app.add_subcommand("fsck", "check a volume's namespace against the chunk records and live copies; exit 0 "
                                          "clean, 1 problems");
  fsck->add_option("VOLUME", fsck_volume)->required();
  auto* monitor = app.add_subcommand(
      "monitor-key", "print the cluster's monitoring key (from the cluster secret): give it to monitoring, which may then "
                     "read health, fsck and listings (--monitor-key-file) and change nothing");
  auto* stat = app.add_subcommand("stat", "attributes of a file and where its chunks are");
  stat->add_option("VOL:/PATH", a)->required();
  auto* du = app.add_subcommand("du", "files, directories, logical and physical bytes of everything below a directory "
                                      "(counted as they change, no tree walk), or of one file");
  du->add_option("VOL:/PATH", a)->required();
  for (auto* sub : {volume, vcreate, vls, vinfo, vresize, vrm, session_cmd, sls, cs, csls, csdrain, csundrain, put, get, ls, rm, mkdir, stat, du,
                    goal_cmd, gset, gget, health, fsck})
    sub->fallthrough();

  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::err);  // the library's warnings are for daemons' logs
  if (*monitor) {
    std::string path = cluster_secret_file;
    if (const char* home = std::getenv("KEELFS_HOME"); path.empty() && home && *home) path = std::string(home) + "/cluster.secret";
    auto secret = path.empty() ? Result<std::string>(error(Code::kInvalidArgument, "monitor-key needs --cluster-secret-file"))
                               : read_secret_file(path);
    if (!secret.ok()) {
      std::cerr << "keelfs: " << secret.status().message() << "\n";
      return 1;
    }
    std::cout << monitor_key(*secret) << "\n";
    return 0;
  }

  Session session;
  Status st = session.open(master, secret_file, region, cluster_secret_file, monitor_key_file);
  if (st.ok()) {
    if (*vcreate) st = cmd_volume_create(session, vargs, as_json);
    else if (*vls) st = cmd_volume_ls(session, as_json);
    else if (*vinfo) st = cmd_volume_info(session, vol_name, as_json);
    else if (*vresize) st = cmd_volume_resize(session, vol_name, vol_size, vol_inodes);
    else if (*vrm) st = cmd_volume_rm(session, vol_name);
    else if (*sls) st = cmd_session_ls(session, session_volume, as_json);
    else if (*gset) st = cmd_goal_set(session, a, goal_n, recursive);
    else if (*gget) st = cmd_goal_get(session, a, as_json);
    else if (*csls) st = cmd_cs_ls(session, as_json);
    else if (*csdrain) st = cmd_cs_drain(session, cs_address, true);
    else if (*csundrain) st = cmd_cs_drain(session, cs_address, false);
    else if (*put) st = cmd_put(session, a, b);
    else if (*get) st = cmd_get(session, a, b);
    else if (*ls) st = cmd_ls(session, a, as_json);
    else if (*rm) st = cmd_rm(session, a);
    else if (*mkdir) st = cmd_mkdir(session, a, parents);
    else if (*stat) st = cmd_stat(session, a, as_json);
    else if (*du) st = cmd_du(session, a, as_json);
    else if (*fsck) {
      auto code = cmd_fsck(session, fsck_volume, as_json);
      if (code.ok()) return *code;
      st = code.status();
    } else if (*health) {
      auto code = cmd_health(session, as_json);
      if (code.ok()) return *code;
      st = code.status();
    }
  }
  if (!st.ok()) {
    std::fprintf(stderr, "keelfs: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
