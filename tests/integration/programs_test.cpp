// Real programs inside a keelfs mount: the tools ML engineers run on their volumes.
#include <fstream>

#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {

void run(const std::string& command) {
  std::string out;
  int rc = shell(command, &out);
  INFO(command << "\n" << out);
  REQUIRE(rc == 0);
}

}  // namespace

TEST_CASE("programs: git init, add, commit and clone", "[fuse][programs]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  run("cd " + m + " && git init -q repo && cd repo && git config user.email t@t && git config user.name t && "
      "for i in $(seq 1 50); do echo line $i > file$i.txt; done && mkdir sub && echo x > sub/y && "
      "git add -A && git commit -q -m first && echo more >> file1.txt && git commit -q -am second && git fsck --strict");
  run("cd " + m + " && git clone -q repo clone && cd clone && git log --oneline | wc -l | grep -qx 2 && "
      "diff -r --exclude=.git ../repo .");
}

TEST_CASE("programs: tar extracts 5000 files and creates the same archive back", "[fuse][programs]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  std::string src = cluster.dir() + "/src";
  run("mkdir -p " + src + " && cd " + src + " && for d in $(seq 1 50); do mkdir d$d; for f in $(seq 1 100); do "
      "echo \"file $d $f\" > d$d/f$f; done; done && head -c 3000000 /dev/urandom > d1/big && "
      "tar --sort=name --mtime=@0 --owner=0 --group=0 -cf " + cluster.dir() + "/in.tar .");
  run("cd " + m + " && mkdir x && tar -xf " + cluster.dir() + "/in.tar -C x && find x -type f | wc -l | grep -qx 5001");
  run("cd " + m + "/x && tar --sort=name --mtime=@0 --owner=0 --group=0 -cf " + cluster.dir() + "/out.tar . && cmp " +
      cluster.dir() + "/in.tar " + cluster.dir() + "/out.tar");
}

TEST_CASE("programs: rsync -a keeps symlinks, hardlinks and permissions", "[fuse][programs]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  std::string src = cluster.dir() + "/tree";
  run("mkdir -p " + src + "/a/b && cd " + src + " && echo one > a/one && chmod 0751 a/one && ln -s a/one link && "
      "ln a/one a/b/hard && echo two > a/b/two && chmod 0600 a/b/two && chmod 0700 a/b");
  run("rsync -aH " + src + "/ " + m + "/tree/");
  run("cd " + m + "/tree && test \"$(readlink link)\" = a/one && test \"$(stat -c %h a/one)\" = 2 && "
      "test \"$(stat -c %a a/one)\" = 751 && test \"$(stat -c %a a/b/two)\" = 600 && test \"$(stat -c %a a/b)\" = 700 && "
      "test \"$(stat -c %i a/one)\" = \"$(stat -c %i a/b/hard)\"");
  run("diff -r " + src + " " + m + "/tree");
  // Nothing left to copy the second time.
  std::string out;
  REQUIRE(shell("rsync -aHi " + src + "/ " + m + "/tree/", &out) == 0);
  REQUIRE(out.empty());
}

TEST_CASE("programs: python writes and reads a file through mmap", "[fuse][programs]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  std::string script = cluster.dir() + "/mmap_test.py";
  std::ofstream(script) << "import mmap, os\n"
      "p = '" + m + "/weights.bin'\n"
      "data = os.urandom(5 * 1024 * 1024)\n"
      "with open(p, 'wb') as f: f.write(data)\n"
      "with open(p, 'rb') as f:\n"
      "    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)\n"
      "    assert mm[:] == data\n"
      "    assert mm[4096:8192] == data[4096:8192]\n"
      "with open(p, 'r+b') as f:\n"
      "    mm = mmap.mmap(f.fileno(), 0)\n"
      "    mm[100:105] = b'hello'\n"
      "    mm.flush(); mm.close()\n"
      "with open(p, 'rb') as f: assert f.read(105)[100:] == b'hello'\n";
  run("python3 " + script);
}

TEST_CASE("programs: sqlite3 runs 1000 transactions and the database checks out", "[fuse][programs]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  run("cd " + m + " && (echo 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);'; for i in $(seq 1 1000); do "
      "echo \"BEGIN; INSERT INTO t(v) VALUES('row $i'); COMMIT;\"; done) | sqlite3 db.sqlite");
  std::string out;
  REQUIRE(shell("sqlite3 " + m + "/db.sqlite 'PRAGMA integrity_check; SELECT count(*) FROM t;'", &out) == 0);
  REQUIRE(out == "ok\n1000\n");
}
