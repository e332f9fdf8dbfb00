// Namespace operations through the client library against the real master: what POSIX
// callers (the FUSE mount, the S3 gateway) rely on.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {

constexpr size_t MiB = 1024 * 1024;

uint64_t make_dir(client::Client& c, uint64_t parent, const std::string& name) {
  auto a = c.mkdir(parent, name, 0755);
  INFO(name << ": " << (a.ok() ? "" : a.status().to_string()));
  REQUIRE(a.ok());
  return a->inode();
}

uint64_t make_file(client::Client& c, uint64_t parent, const std::string& name) {
  pb::CreateReq req;
  req.set_parent(parent);
  req.set_name(name);
  req.set_mode(0644);
  req.set_exclusive(true);
  auto a = c.create(req);
  INFO(name << ": " << (a.ok() ? "" : a.status().to_string()));
  REQUIRE(a.ok());
  return a->inode();
}

pb::Attr attr_of(client::Client& c, uint64_t ino) {
  auto a = c.getattr(ino);
  INFO("inode " << ino << ": " << (a.ok() ? "" : a.status().to_string()));
  REQUIRE(a.ok());
  return *a;
}

uint64_t inode_at(client::Client& c, uint64_t parent, const std::string& name) {
  auto a = c.lookup(parent, name);
  INFO(name << ": " << (a.ok() ? "" : a.status().to_string()));
  REQUIRE(a.ok());
  return a->inode();
}

bool missing(client::Client& c, uint64_t parent, const std::string& name) {
  return c.lookup(parent, name).status().is(Code::kNotFound);
}

// Paths of the chunk file of (id, version) in every chunkserver's data directory.
std::vector<std::string> chunk_paths(const Cluster& cluster, uint64_t id, uint32_t version) {
  std::vector<std::string> out;
  for (int i = 0; i < cluster.chunkservers(); ++i) out.push_back(cluster.cs_chunk_path(i, id, version));
  return out;
}

// How many chunkservers hold a file for every chunk of `ino`, by (id, version).
std::vector<std::pair<uint64_t, uint32_t>> chunks_of(client::Client& c, uint64_t ino) {
  auto located = c.locate(ino);
  REQUIRE(located.ok());
  std::vector<std::pair<uint64_t, uint32_t>> out;
  for (auto& ch : located->chunks()) out.emplace_back(ch.chunk_id(), ch.version());
  return out;
}

int copies_on_disk(const Cluster& cluster, uint64_t id, uint32_t version) {
  int n = 0;
  for (auto& p : chunk_paths(cluster, id, version)) n += std::filesystem::exists(p) ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("mkdir and rmdir with link counts and ENOTEMPTY", "[namespace]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  REQUIRE(attr_of(c, root).nlink() == 2);

  uint64_t a = make_dir(c, root, "a");
  pb::Attr aa = attr_of(c, a);
  REQUIRE(aa.type() == pb::FT_DIRECTORY);
  REQUIRE(aa.mode() == 0755);
  REQUIRE(aa.nlink() == 2);
  REQUIRE(attr_of(c, root).nlink() == 3);
  REQUIRE(c.mkdir(root, "a", 0755).status().is(Code::kExists));
  REQUIRE(c.mkdir(root, "", 0755).status().is(Code::kInvalidArgument));
  REQUIRE(c.mkdir(root, "x/y", 0755).status().is(Code::kInvalidArgument));
  REQUIRE(c.mkdir(root, std::string(256, 'n'), 0755).status().is(Code::kNameTooLong));
  REQUIRE(c.mkdir(root, std::string(255, 'n'), 0755).ok());

  // "." and ".." resolve inside the volume; ".." of the root stays at the root.
  REQUIRE(c.lookup(a, "..")->inode() == root);
  REQUIRE(c.lookup(a, ".")->inode() == a);
  REQUIRE(c.lookup(root, "..")->inode() == root);

  uint64_t b = make_dir(c, a, "b");
  make_file(c, b, "f");
  REQUIRE(attr_of(c, a).nlink() == 3);
  REQUIRE(c.rmdir(root, "a").is(Code::kNotEmpty));
  REQUIRE(c.rmdir(a, "b").is(Code::kNotEmpty));
  REQUIRE(c.rmdir(b, "f").is(Code::kNotDir));
  REQUIRE(c.unlink(a, "b").is(Code::kIsDir));
  REQUIRE(c.rmdir(a, "nothing").is(Code::kNotFound));
  // mkdir below a file is refused.
  auto f = c.lookup(b, "f");
  REQUIRE(c.mkdir(f->inode(), "x", 0755).status().is(Code::kNotDir));

  REQUIRE(c.unlink(b, "f").ok());
  REQUIRE(c.rmdir(a, "b").ok());
  REQUIRE(c.getattr(b).status().is(Code::kNotFound));
  REQUIRE(attr_of(c, a).nlink() == 2);
  REQUIRE(c.rmdir(root, "a").ok());
  REQUIRE(missing(c, root, "a"));
  REQUIRE(attr_of(c, root).nlink() == 3);  // the 255-byte name is still there
}

TEST_CASE("rename replaces, moves across directories and refuses a directory into its own subtree",
          "[namespace][rename]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  uint64_t d1 = make_dir(c, root, "d1");
  uint64_t d2 = make_dir(c, root, "d2");

  // A file over a file: the target's inode (and data) goes, the source keeps its inode.
  uint64_t src = put_file(c, d1, "src", "new contents");
  // (Big enough for a chunk of its own: smaller files share a pack, docs/small-files.md.)
  uint64_t victim = put_file(c, d2, "dst", std::string(70 * 1024, 'o'));
  auto victim_chunks = chunks_of(c, victim);
  REQUIRE(victim_chunks.size() == 1);
  REQUIRE(c.rename(d1, "src", d2, "dst").ok());
  REQUIRE(missing(c, d1, "src"));
  REQUIRE(inode_at(c, d2, "dst") == src);
  REQUIRE(get_file(c, src) == "new contents");
  REQUIRE(c.getattr(victim).status().is(Code::kNotFound));
  // The replaced file's chunk is deleted on the chunkservers.
  REQUIRE(wait_until([&] { return copies_on_disk(cluster, victim_chunks[0].first, victim_chunks[0].second) == 0; },
                     std::chrono::seconds(10)));

  // Within one directory, and to the same name (a no-op).
  REQUIRE(c.rename(d2, "dst", d2, "renamed").ok());
  REQUIRE(inode_at(c, d2, "renamed") == src);
  REQUIRE(c.rename(d2, "renamed", d2, "renamed").ok());
  REQUIRE(inode_at(c, d2, "renamed") == src);
  REQUIRE(c.rename(d2, "nothing", d2, "x").is(Code::kNotFound));

  // A directory across directories: link counts of both parents and its ".." follow.
  uint64_t sub = make_dir(c, d1, "sub");
  make_file(c, sub, "inner");
  REQUIRE(attr_of(c, d1).nlink() == 3);
  REQUIRE(c.rename(d1, "sub", d2, "sub").ok());
  REQUIRE(attr_of(c, d1).nlink() == 2);
  REQUIRE(attr_of(c, d2).nlink() == 3);
  REQUIRE(c.lookup(sub, "..")->inode() == d2);
  REQUIRE(inode_at(c, d2, "sub") == sub);
  REQUIRE(c.lookup(sub, "inner").ok());

  // A directory over an empty directory replaces it; over a non-empty one it is refused.
  uint64_t empty = make_dir(c, d1, "empty");
  uint64_t full = make_dir(c, d1, "full");
  make_file(c, full, "x");
  REQUIRE(c.rename(d2, "sub", d1, "full").is(Code::kNotEmpty));
  REQUIRE(c.rename(d2, "sub", d1, "empty").ok());
  REQUIRE(inode_at(c, d1, "empty") == sub);
  REQUIRE(c.getattr(empty).status().is(Code::kNotFound));
  REQUIRE(attr_of(c, d1).nlink() == 4);  // empty (now sub) and full
  REQUIRE(attr_of(c, d2).nlink() == 2);

  // Kinds must match.
  make_file(c, d1, "plain");
  REQUIRE(c.rename(d1, "plain", d1, "full").is(Code::kIsDir));
  REQUIRE(c.rename(d1, "full", d1, "plain").is(Code::kNotDir));

  // A directory into its own subtree, or into itself, is refused and nothing moves.
  uint64_t deep = make_dir(c, sub, "deep");
  uint64_t deeper = make_dir(c, deep, "deeper");
  REQUIRE(c.rename(d1, "empty", deeper, "loop").is(Code::kLoop));
  REQUIRE(c.rename(d1, "empty", sub, "loop").is(Code::kLoop));
  REQUIRE(c.rename(root, "d1", deeper, "loop").is(Code::kLoop));
  REQUIRE(inode_at(c, d1, "empty") == sub);
  REQUIRE(missing(c, deeper, "loop"));
  REQUIRE(missing(c, sub, "loop"));
  // Moving it up out of its own subtree is fine.
  REQUIRE(c.rename(deep, "deeper", root, "top").ok());
  REQUIRE(c.lookup(deeper, "..")->inode() == root);
}

TEST_CASE("rename with RENAME_NOREPLACE and RENAME_EXCHANGE", "[namespace][rename]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  uint64_t d1 = make_dir(c, root, "d1");
  uint64_t d2 = make_dir(c, root, "d2");
  uint64_t f = put_file(c, d1, "f", "file f");
  uint64_t g = put_file(c, d2, "g", "file g");

  // NOREPLACE: refused over an existing name (both stay), fine onto a free one.
  REQUIRE(c.rename(d1, "f", d2, "g", pb::RF_NOREPLACE).is(Code::kExists));
  REQUIRE(inode_at(c, d1, "f") == f);
  REQUIRE(get_file(c, g) == "file g");
  REQUIRE(c.rename(d1, "f", d2, "f2", pb::RF_NOREPLACE).ok());
  REQUIRE(inode_at(c, d2, "f2") == f);
  REQUIRE(missing(c, d1, "f"));
  REQUIRE(c.rename(d2, "f2", d1, "f", pb::RF_NOREPLACE | pb::RF_EXCHANGE).is(Code::kInvalidArgument));

  // EXCHANGE of two files in one directory: both names stay, the inodes swap.
  REQUIRE(c.rename(d2, "f2", d2, "g", pb::RF_EXCHANGE).ok());
  REQUIRE(inode_at(c, d2, "g") == f);
  REQUIRE(inode_at(c, d2, "f2") == g);
  REQUIRE(get_file(c, inode_at(c, d2, "g")) == "file f");
  REQUIRE(get_file(c, inode_at(c, d2, "f2")) == "file g");
  REQUIRE(c.rename(d2, "g", d2, "absent", pb::RF_EXCHANGE).is(Code::kNotFound));

  // EXCHANGE of a directory and a file across directories: the directory's parent and
  // both parents' link counts follow.
  uint64_t dir = make_dir(c, d1, "dir");
  REQUIRE(attr_of(c, d1).nlink() == 3);
  REQUIRE(attr_of(c, d2).nlink() == 2);
  REQUIRE(c.rename(d1, "dir", d2, "g", pb::RF_EXCHANGE).ok());
  REQUIRE(inode_at(c, d2, "g") == dir);
  REQUIRE(inode_at(c, d1, "dir") == f);
  REQUIRE(c.lookup(dir, "..")->inode() == d2);
  REQUIRE(attr_of(c, d1).nlink() == 2);
  REQUIRE(attr_of(c, d2).nlink() == 3);
  REQUIRE(get_file(c, f) == "file f");
  REQUIRE(get_file(c, g) == "file g");

  // EXCHANGE that would put a directory below itself is refused.
  uint64_t inner = make_dir(c, dir, "inner");
  make_file(c, inner, "x");
  REQUIRE(c.rename(d2, "g", inner, "x", pb::RF_EXCHANGE).is(Code::kLoop));
  REQUIRE(inode_at(c, d2, "g") == dir);
}

TEST_CASE("hard links count names and keep the data until the last one goes", "[namespace][link]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  uint64_t d1 = make_dir(c, root, "d1");
  uint64_t d2 = make_dir(c, root, "d2");
  std::string data = random_bytes(2 * MiB + 3, 5);
  uint64_t ino = put_file(c, d1, "orig", data);
  REQUIRE(attr_of(c, ino).nlink() == 1);
  auto chunks = chunks_of(c, ino);
  REQUIRE(chunks.size() == 1);
  auto [chunk_id, version] = chunks[0];
  REQUIRE(copies_on_disk(cluster, chunk_id, version) == 2);

  auto linked = c.link(ino, d2, "other");
  REQUIRE(linked.ok());
  REQUIRE(linked->inode() == ino);
  REQUIRE(linked->nlink() == 2);
  REQUIRE(c.link(ino, d1, "third").ok());
  REQUIRE(attr_of(c, ino).nlink() == 3);
  REQUIRE(inode_at(c, d2, "other") == ino);
  REQUIRE(c.link(ino, d2, "other").status().is(Code::kExists));
  REQUIRE(c.link(d1, root, "dirlink").status().code() == Code::kPermissionDenied);  // no links to directories
  REQUIRE(c.link(ino, ino, "x").status().is(Code::kNotDir));
  // Renaming one link onto another of the same file changes nothing.
  REQUIRE(c.rename(d1, "third", d2, "other").ok());
  REQUIRE(attr_of(c, ino).nlink() == 3);

  REQUIRE(c.unlink(d1, "orig").ok());
  REQUIRE(attr_of(c, ino).nlink() == 2);
  REQUIRE(c.unlink(d1, "third").ok());
  REQUIRE(attr_of(c, ino).nlink() == 1);
  // Read through the remaining name with a fresh client (nothing cached).
  auto fresh = cluster.new_client("v");
  REQUIRE(fresh.ok());
  auto other = (*fresh)->lookup(d2, "other");
  REQUIRE(other.ok());
  REQUIRE(get_file(**fresh, other->inode()) == data);
  REQUIRE(copies_on_disk(cluster, chunk_id, version) == 2);

  // The last name goes: the inode and its chunks go with it.
  REQUIRE(c.unlink(d2, "other").ok());
  REQUIRE(c.getattr(ino).status().is(Code::kNotFound));
  REQUIRE(wait_until([&] { return copies_on_disk(cluster, chunk_id, version) == 0; }, std::chrono::seconds(10)));
}

TEST_CASE("symlink and readlink", "[namespace]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::string target = "../some/where/über file";
  auto l = c.symlink(root, "link", target, 1000, 1001);
  REQUIRE(l.ok());
  REQUIRE(l->type() == pb::FT_SYMLINK);
  REQUIRE(l->size() == target.size());
  REQUIRE(l->uid() == 1000);
  REQUIRE(l->gid() == 1001);
  REQUIRE(c.readlink(l->inode()).value() == target);
  REQUIRE(c.lookup(root, "link")->type() == pb::FT_SYMLINK);
  REQUIRE(c.symlink(root, "link", "x").status().is(Code::kExists));
  REQUIRE(c.symlink(root, "empty", "").status().is(Code::kInvalidArgument));
  REQUIRE(c.symlink(root, "long", std::string(4097, 'a')).status().is(Code::kInvalidArgument));
  REQUIRE(c.symlink(root, "max", std::string(4096, 'a')).ok());
  uint64_t f = make_file(c, root, "f");
  REQUIRE(c.readlink(f).status().is(Code::kInvalidArgument));
  // The client's path resolution does not follow symlinks.
  REQUIRE(c.resolve(root, "/link")->inode() == l->inode());

  REQUIRE(c.unlink(root, "link").ok());
  REQUIRE(c.readlink(l->inode()).status().is(Code::kNotFound));
}

TEST_CASE("extended attributes set get list remove", "[namespace][xattr]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  uint64_t f = make_file(c, root, "f");
  uint64_t d = make_dir(c, root, "d");

  REQUIRE(c.listxattr(f).value().empty());
  std::string binary("a\0b\xff", 4);
  REQUIRE(c.setxattr(f, "user.one", "1", 0).ok());
  REQUIRE(c.setxattr(f, "user.bin", binary, 0).ok());
  REQUIRE(c.setxattr(f, "user.empty", "", 0).ok());
  REQUIRE(c.setxattr(d, "user.dir", "on a directory", 0).ok());
  REQUIRE(c.getxattr(f, "user.one").value() == "1");
  REQUIRE(c.getxattr(f, "user.bin").value() == binary);
  REQUIRE(c.getxattr(f, "user.empty").value().empty());
  REQUIRE(c.getxattr(d, "user.dir").value() == "on a directory");
  REQUIRE(c.getxattr(f, "user.dir").status().is(Code::kNoData));
  auto names = c.listxattr(f).value();
  std::sort(names.begin(), names.end());
  REQUIRE(names == std::vector<std::string>{"user.bin", "user.empty", "user.one"});

  // XATTR_CREATE (1) and XATTR_REPLACE (2).
  REQUIRE(c.setxattr(f, "user.one", "x", 1).is(Code::kExists));
  REQUIRE(c.getxattr(f, "user.one").value() == "1");
  REQUIRE(c.setxattr(f, "user.two", "x", 2).is(Code::kNoData));
  REQUIRE(c.getxattr(f, "user.two").status().is(Code::kNoData));
  REQUIRE(c.setxattr(f, "user.one", "replaced", 2).ok());
  REQUIRE(c.getxattr(f, "user.one").value() == "replaced");
  REQUIRE(c.setxattr(f, "user.two", "created", 1).ok());

  // Limits: a 64 KiB value fits, one byte more does not; names of 1 to 255 bytes.
  REQUIRE(c.setxattr(f, "user.big", std::string(64 * 1024, 'v'), 0).ok());
  REQUIRE(c.getxattr(f, "user.big").value().size() == 64 * 1024);
  REQUIRE_FALSE(c.setxattr(f, "user.big", std::string(64 * 1024 + 1, 'v'), 0).ok());
  REQUIRE_FALSE(c.setxattr(f, "", "x", 0).ok());
  REQUIRE_FALSE(c.setxattr(f, std::string(256, 'n'), "x", 0).ok());

  // Setting one moves ctime.
  pb::Attr before = attr_of(c, f);
  pb::SetattrReq old;
  old.set_inode(f);
  old.set_mask(pb::SET_CTIME);
  old.set_ctime_sec(1000);
  REQUIRE(c.setattr(old).ok());
  REQUIRE(c.setxattr(f, "user.three", "3", 0).ok());
  REQUIRE(attr_of(c, f).ctime_sec() >= before.ctime_sec());

  REQUIRE(c.removexattr(f, "user.one").ok());
  REQUIRE(c.removexattr(f, "user.one").is(Code::kNoData));
  REQUIRE(c.getxattr(f, "user.one").status().is(Code::kNoData));
  names = c.listxattr(f).value();
  std::sort(names.begin(), names.end());
  REQUIRE(names == std::vector<std::string>{"user.big", "user.bin", "user.empty", "user.three", "user.two"});

  // A deleted inode has none; a new inode does not inherit them.
  REQUIRE(c.unlink(root, "f").ok());
  REQUIRE(c.getxattr(f, "user.two").status().is(Code::kNotFound));
  uint64_t g = make_file(c, root, "f");
  REQUIRE(c.listxattr(g).value().empty());
}

TEST_CASE("setattr of mode owner and times incl negative and past 2038 with nanoseconds",
          "[namespace][setattr]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  uint64_t f = make_file(c, root, "f");
  pb::Attr created = attr_of(c, f);
  REQUIRE(created.mode() == 0644);

  pb::SetattrReq req;
  req.set_inode(f);
  req.set_mask(pb::SET_MODE);
  req.set_mode(S_IFREG | 04751);  // type bits are not the mode's business
  auto a = c.setattr(req);
  REQUIRE(a.ok());
  REQUIRE(a->mode() == 04751);
  REQUIRE(a->type() == pb::FT_REGULAR);

  // chown clears setuid on a regular file, as Linux does.
  req.set_mask(pb::SET_UID | pb::SET_GID);
  req.set_uid(4000000000u);
  req.set_gid(12345);
  a = c.setattr(req);
  REQUIRE(a.ok());
  REQUIRE(a->uid() == 4000000000u);
  REQUIRE(a->gid() == 12345);
  REQUIRE(a->mode() == 0751);

  // Only the fields in the mask change.
  req.set_mask(pb::SET_GID);
  req.set_uid(1);
  req.set_gid(7);
  a = c.setattr(req);
  REQUIRE(a->uid() == 4000000000u);
  REQUIRE(a->gid() == 7);

  // Times before 1970 and after 2038 (past int32), with nanoseconds.
  req.set_mask(pb::SET_ATIME | pb::SET_MTIME);
  req.set_atime_sec(-1234567890);
  req.set_atime_nsec(999999999);
  req.set_mtime_sec(4102444800);  // 2100-01-01
  req.set_mtime_nsec(1);
  a = c.setattr(req);
  REQUIRE(a.ok());
  REQUIRE(a->atime_sec() == -1234567890);
  REQUIRE(a->atime_nsec() == 999999999);
  REQUIRE(a->mtime_sec() == 4102444800);
  REQUIRE(a->mtime_nsec() == 1);
  // ctime moved to now (not to either of the times set).
  REQUIRE(a->ctime_sec() >= created.ctime_sec());
  REQUIRE(a->ctime_sec() < 4102444800);

  req.set_mask(pb::SET_ATIME | pb::SET_MTIME | pb::SET_CTIME);
  req.set_atime_sec(-1);
  req.set_atime_nsec(5);
  req.set_mtime_sec(253402300799);  // 9999-12-31 23:59:59
  req.set_mtime_nsec(123456789);
  req.set_ctime_sec(-62135596800);  // year 1
  req.set_ctime_nsec(42);
  REQUIRE(c.setattr(req).ok());

  // What a fresh client reads back is what was stored (and it survives a master restart).
  cluster.kill_master();
  cluster.restart_master();
  auto& c2 = cluster.client();
  pb::Attr got = attr_of(c2, f);
  REQUIRE(got.atime_sec() == -1);
  REQUIRE(got.atime_nsec() == 5);
  REQUIRE(got.mtime_sec() == 253402300799);
  REQUIRE(got.mtime_nsec() == 123456789);
  REQUIRE(got.ctime_sec() == -62135596800);
  REQUIRE(got.ctime_nsec() == 42);
  REQUIRE(got.uid() == 4000000000u);
  REQUIRE(got.gid() == 7);
  REQUIRE(got.mode() == 0751);

  // "now" for both times.
  req.set_mask(pb::SET_ATIME_NOW | pb::SET_MTIME_NOW);
  a = c2.setattr(req);
  REQUIRE(a.ok());
  REQUIRE(a->mtime_sec() >= created.mtime_sec());
  REQUIRE(a->mtime_sec() < created.mtime_sec() + 600);
  REQUIRE(a->atime_sec() >= created.mtime_sec());
  REQUIRE(a->atime_sec() < created.mtime_sec() + 600);

  // Directories: mode and times; no size.
  uint64_t d = make_dir(c2, root, "d");
  req.set_inode(d);
  req.set_mask(pb::SET_MODE);
  req.set_mode(01777);
  REQUIRE(c2.setattr(req)->mode() == 01777);
  req.set_mask(pb::SET_SIZE);
  req.set_size(0);
  REQUIRE(c2.setattr(req).status().is(Code::kIsDir));
  req.set_inode(999999999);
  req.set_mask(pb::SET_MODE);
  REQUIRE(c2.setattr(req).status().is(Code::kNotFound));
}

TEST_CASE("statfs reports space files and bytes of the volume", "[namespace]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  auto empty = c.statfs(root);
  REQUIRE(empty.ok());
  REQUIRE(empty->files() == 0);
  REQUIRE(empty->used_bytes() == 0);
  REQUIRE(empty->total_bytes() > 0);
  REQUIRE(empty->free_bytes() > 0);
  REQUIRE(empty->free_bytes() <= empty->total_bytes());
  REQUIRE(empty->free_files() > 0);

  // Space is the region's chunkservers' space divided by the goal.
  auto servers = c.cs_list();
  REQUIRE(servers.ok());
  uint64_t total = 0;
  for (auto& s : *servers) total += s.total_bytes();
  double ratio = static_cast<double>(empty->total_bytes()) / static_cast<double>(total / 2);
  INFO("statfs total " << empty->total_bytes() << ", servers " << total);
  REQUIRE(ratio > 0.95);
  REQUIRE(ratio < 1.05);

  uint64_t d = make_dir(c, root, "d");
  put_file(c, d, "a", random_bytes(1000, 1));
  put_file(c, root, "b", random_bytes(MiB, 2));
  make_file(c, root, "c");
  REQUIRE(c.symlink(root, "l", "a").ok());
  auto st = c.statfs(d);  // any inode of the volume
  REQUIRE(st.ok());
  REQUIRE(st->files() == 5);  // d, a, b, c, l
  REQUIRE(st->used_bytes() == 1000 + MiB);
  REQUIRE(c.unlink(root, "b").ok());
  st = c.statfs(root);
  REQUIRE(st->files() == 4);  // d, a, c, l
  REQUIRE(st->used_bytes() == 1000);

  // Another volume's figures are its own.
  uint64_t other = cluster.create_volume("w", 1);
  auto w = c.statfs(other);
  REQUIRE(w->files() == 0);
  REQUIRE(w->used_bytes() == 0);
  REQUIRE(w->total_bytes() > st->total_bytes());  // goal 1: twice the room
  REQUIRE(c.statfs(123456789).status().is(Code::kNotFound));
}

TEST_CASE("readdir pages 2500 entries and every name comes exactly once", "[namespace][readdir]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  uint64_t dir = make_dir(c, root, "big");
  constexpr int kEntries = 2500;
  auto name_of = [](int i) {
    char buf[32];
    snprintf(buf, sizeof buf, "entry-%05d", i);
    return std::string(buf);
  };
  // Created from several threads: the client is thread-safe and the master group-commits.
  std::atomic<int> next{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = next++; i < kEntries; i = next++) {
        pb::CreateReq req;
        req.set_parent(dir);
        req.set_name(name_of(i));
        req.set_mode(0644);
        req.set_exclusive(true);
        if (i % 10 == 0) {
          if (!c.mkdir(dir, name_of(i), 0755).ok()) ++failures;
        } else if (!c.create(req).ok()) {
          ++failures;
        }
      }
    });
  for (auto& t : threads) t.join();
  REQUIRE(failures == 0);

  // Pages of 1000: 1000, 1000, 500, with `more` on all but the last.
  std::vector<std::string> seen;
  std::string after;
  std::vector<size_t> page_sizes;
  for (int page = 0; page < 10; ++page) {
    auto r = c.readdir(dir, after, 1000, page == 1);
    REQUIRE(r.ok());
    page_sizes.push_back(r->entries_size());
    for (auto& e : r->entries()) {
      seen.push_back(e.name());
      int i = std::stoi(e.name().substr(6));
      REQUIRE(e.type() == (i % 10 == 0 ? pb::FT_DIRECTORY : pb::FT_REGULAR));
      REQUIRE(e.inode() != 0);
      if (page == 1) REQUIRE(e.attr().inode() == e.inode());  // plus: attributes included
      else REQUIRE(e.attr().inode() == 0);
    }
    if (!r->more()) break;
    after = seen.back();
  }
  REQUIRE(page_sizes == std::vector<size_t>{1000, 1000, 500});
  REQUIRE(seen.size() == kEntries);
  REQUIRE(std::is_sorted(seen.begin(), seen.end()));
  std::set<std::string> unique(seen.begin(), seen.end());
  REQUIRE(unique.size() == kEntries);
  for (int i = 0; i < kEntries; ++i) REQUIRE(unique.count(name_of(i)) == 1);

  // The library's readdir_all agrees, and 0 asks for the default page of 1000.
  REQUIRE(c.readdir_all(dir, false)->size() == kEntries);
  REQUIRE(c.readdir(dir, "", 0, false)->entries_size() == 1000);
  REQUIRE(attr_of(c, dir).nlink() == 2 + kEntries / 10);

  // Changes between pages: the cursor is a name, so entries that stay are listed exactly
  // once, a removed one that was not listed yet is not listed, and a new one after the
  // cursor is.
  auto first = c.readdir(dir, "", 1000, false);
  REQUIRE(first.ok());
  REQUIRE(c.unlink(dir, name_of(1)).ok());     // already listed
  REQUIRE(c.unlink(dir, name_of(1501)).ok());  // not yet listed
  pb::CreateReq req;
  req.set_parent(dir);
  req.set_name("zzz-new");
  REQUIRE(c.create(req).ok());
  std::vector<std::string> rest;
  after = first->entries(999).name();
  for (;;) {
    auto r = c.readdir(dir, after, 1000, false);
    REQUIRE(r.ok());
    for (auto& e : r->entries()) rest.push_back(e.name());
    if (!r->more()) break;
    after = rest.back();
  }
  REQUIRE(rest.size() == kEntries - 1000 - 1 + 1);
  REQUIRE(std::count(rest.begin(), rest.end(), name_of(1501)) == 0);
  REQUIRE(rest.back() == "zzz-new");
  std::set<std::string> all;
  for (auto& e : first->entries()) all.insert(e.name());
  for (auto& n : rest) REQUIRE(all.insert(n).second);  // nothing twice
  REQUIRE(all.size() == kEntries + 1 - 1);

  REQUIRE(c.readdir(inode_at(c, dir, name_of(2)), "", 10, false).status().is(Code::kNotDir));
}

TEST_CASE("unlink of a file frees its chunks on the chunkservers", "[namespace][chunks]") {
  Cluster cluster(3);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  // Two chunks: all copies of both must go.
  std::string data = random_bytes(64 * MiB + 4096, 8);
  uint64_t ino = put_file(c, root, "f", data);
  // (Big enough for a chunk of its own: smaller files share a pack, docs/small-files.md.)
  const std::string another(70 * 1024, 'a');
  uint64_t keep = put_file(c, root, "keep", another);
  auto chunks = chunks_of(c, ino);
  REQUIRE(chunks.size() == 2);
  for (auto [id, version] : chunks) REQUIRE(copies_on_disk(cluster, id, version) == 2);
  auto kept = chunks_of(c, keep);
  REQUIRE(kept.size() == 1);

  REQUIRE(c.unlink(root, "f").ok());
  REQUIRE(c.getattr(ino).status().is(Code::kNotFound));
  REQUIRE(wait_until(
      [&] {
        for (auto [id, version] : chunks)
          if (copies_on_disk(cluster, id, version) != 0) return false;
        return true;
      },
      std::chrono::seconds(10)));
  // The master forgets them too, and the volume's figures drop.
  auto vols = c.volume_list();
  REQUIRE(vols.ok());
  REQUIRE(vols->at(0).chunks() == 1);
  REQUIRE(vols->at(0).files() == 1);
  // Other files are untouched.
  REQUIRE(copies_on_disk(cluster, kept[0].first, kept[0].second) == 2);
  REQUIRE(get_file(c, keep) == another);

  // Truncating to 0 through create(truncate) frees chunks as well.
  auto keep_chunks = chunks_of(c, keep);
  pb::CreateReq req;
  req.set_parent(root);
  req.set_name("keep");
  req.set_truncate(true);
  REQUIRE(c.create(req).ok());
  REQUIRE(wait_until([&] { return copies_on_disk(cluster, keep_chunks[0].first, keep_chunks[0].second) == 0; },
                     std::chrono::seconds(10)));
  REQUIRE(attr_of(c, keep).size() == 0);
}

namespace {

// Looks missing names up on `c` until its snapshot of `dir` (with the master's watch) is
// in and denies one without asking the master.
bool snapshot_denies(client::Client& c, uint64_t dir) {
  const uint64_t before = c.cache_stats().snapshot_denials;
  return wait_until([&] {
    auto r = c.lookup_cached(dir, "no-such-name", 1.0);
    return r.status().is(Code::kNotFound) && c.cache_stats().snapshot_denials > before;
  }, std::chrono::seconds(10));
}

}  // namespace

TEST_CASE("a watched snapshot denies missing names itself and hears of another client's change before it is answered",
          "[namespace][snapshots]") {
  Cluster cluster(3);
  uint64_t root = cluster.create_volume("v", 2);
  auto& a = cluster.client();
  auto b_made = cluster.new_client("v");
  REQUIRE(b_made.ok());
  auto& b = **b_made;
  uint64_t dir = make_dir(a, root, "d");
  uint64_t kept = make_dir(a, dir, "kept");

  // Another client's new names, of every kind, are found at once: the master told B
  // before A's change returned.
  REQUIRE(snapshot_denies(b, dir));
  uint64_t heard = b.cache_stats().dir_changes_heard;
  REQUIRE(a.mkdir(dir, "made", 0755).ok());
  REQUIRE(b.cache_stats().dir_changes_heard == heard + 1);
  REQUIRE(b.lookup_cached(dir, "made", 1.0).ok());

  REQUIRE(snapshot_denies(b, dir));
  put_file(a, dir, "file", "some bytes");
  REQUIRE(b.lookup_cached(dir, "file", 1.0).ok());

  REQUIRE(snapshot_denies(b, dir));
  REQUIRE(a.rename(dir, "file", dir, "renamed").ok());
  REQUIRE(b.lookup_cached(dir, "renamed", 1.0).ok());
  REQUIRE(b.lookup_cached(dir, "file", 1.0).status().is(Code::kNotFound));

  REQUIRE(snapshot_denies(b, root));  // a rename into a watched directory from another one
  REQUIRE(a.rename(dir, "renamed", root, "moved").ok());
  REQUIRE(b.lookup_cached(root, "moved", 1.0).ok());

  // B's own changes keep its snapshot right without the master telling it.
  REQUIRE(snapshot_denies(b, dir));
  heard = b.cache_stats().dir_changes_heard;
  REQUIRE(b.rename(dir, "kept", dir, "kept2").ok());
  REQUIRE(b.lookup_cached(dir, "kept2", 1.0)->inode() == kept);
  REQUIRE(b.lookup_cached(dir, "kept", 1.0).status().is(Code::kNotFound));
  REQUIRE(b.mkdir(kept, "inside", 0755).ok());
  REQUIRE(b.rmdir(dir, "kept2").is(Code::kNotEmpty));  // failed: the name stays
  REQUIRE(b.lookup_cached(dir, "kept2", 1.0).ok());
  REQUIRE(b.cache_stats().dir_changes_heard == heard);

  // Past the attribute timeout, a watched snapshot still answers for a subdirectory (its
  // name is exact; its attributes go out expired), not for a file (its size would be old).
  put_file(a, dir, "late-file", "x");  // A's change: B's snapshot goes, the next one is whole
  REQUIRE(snapshot_denies(b, dir));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past max_age 0.2 below
  uint64_t hits = b.cache_stats().snapshot_hits;
  REQUIRE(b.lookup_cached(dir, "kept2", 0.2)->inode() == kept);
  REQUIRE(b.cache_stats().snapshot_hits == hits + 1);
  REQUIRE(b.lookup_cached(dir, "late-file", 0.2).ok());
  REQUIRE(b.cache_stats().snapshot_hits == hits + 1);

  // A client that holds no watch costs the changer nothing and hears nothing.
  heard = a.cache_stats().dir_changes_heard;
  REQUIRE(b.mkdir(dir, "by-b", 0755).ok());
  REQUIRE(a.cache_stats().dir_changes_heard == heard);
}
