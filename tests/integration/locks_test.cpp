// Locks between mounts: what one pod locks, another cannot, until it is released or the
// pod's mount dies.
#include <fstream>

#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;

TEST_CASE("locks: flock and fcntl on one mount exclude the other mount", "[fuse][locks]") {
  Cluster cluster(2);
  cluster.create_volume("v", 2);
  std::string a = cluster.mount("v");
  std::string b = cluster.mount("v");
  REQUIRE(shell("echo data > " + a + "/f") == 0);
  REQUIRE(wait_until([&] { return shell("test -e " + b + "/f") == 0; }, std::chrono::seconds(3)));

  // A holds an exclusive flock while B tries without waiting.
  std::string out;
  REQUIRE(shell("flock -x " + a + "/f -c 'flock -n -x " + b + "/f -c true; echo b-got=$?'", &out) == 0);
  REQUIRE(out == "b-got=1\n");
  // Released with A's close: B gets it now.
  REQUIRE(shell("flock -n -x " + b + "/f -c true") == 0);
  // Shared locks share.
  REQUIRE(shell("flock -s " + a + "/f -c 'flock -n -s " + b + "/f -c true; echo b-got=$?'", &out) == 0);
  REQUIRE(out == "b-got=0\n");

  // fcntl byte ranges, through Python's lockf.
  std::string script = cluster.dir() + "/lockf.py";
  std::ofstream(script) << "import fcntl, sys, subprocess\n"
                           "f = open(sys.argv[1], 'r+')\n"
                           "fcntl.lockf(f, fcntl.LOCK_EX, 10, 0)\n"
                           "other = ('import fcntl,sys\\nf=open(sys.argv[1],\"r+\")\\n'\n"
                           "         'try:\\n fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB, 1, int(sys.argv[2])); print(\"free\")\\n'\n"
                           "         'except OSError: print(\"held\")\\n')\n"
                           "for off in ('5', '20'):\n"
                           "    print(subprocess.run([sys.executable, '-c', other, sys.argv[2], off], capture_output=True, text=True).stdout.strip())\n";
  REQUIRE(shell("python3 " + script + " " + a + "/f " + b + "/f", &out) == 0);
  REQUIRE(out == "held\nfree\n");

  // A read lock through a read-only descriptor (which gets no FLUSH at close) excludes a
  // writer on B, and its close lets B have it.
  std::string reader = cluster.dir() + "/reader.py";
  std::ofstream(reader) << "import fcntl, sys, subprocess\n"
                           "f = open(sys.argv[1], 'r')\n"
                           "fcntl.lockf(f, fcntl.LOCK_SH)\n"
                           "print(subprocess.run(['python3', sys.argv[2], sys.argv[3]], capture_output=True, text=True).stdout.strip())\n"
                           "f.close()\n";
  std::string writer = cluster.dir() + "/writer.py";
  std::ofstream(writer) << "import fcntl, sys\n"
                           "f = open(sys.argv[1], 'r+')\n"
                           "try:\n fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
                           "except OSError: print('held')\n";
  REQUIRE(shell("python3 " + reader + " " + a + "/f " + writer + " " + b + "/f", &out) == 0);
  REQUIRE(out == "held\n");
  REQUIRE(wait_until([&] { return shell("python3 " + writer + " " + b + "/f", &out) == 0 && out == "free\n"; },
                     std::chrono::seconds(5)));
}

TEST_CASE("locks: a mount that dies releases its locks", "[fuse][locks]") {
  Cluster cluster(2);
  cluster.create_volume("v", 2);
  std::string a = cluster.mount("v");
  std::string b = cluster.mount("v");
  REQUIRE(shell("echo data > " + a + "/f") == 0);
  // A background holder on A that never lets go by itself, in its own process group so
  // the test can end it (and its sleep) whatever happens.
  std::string pid_file = cluster.dir() + "/holder.pid";
  REQUIRE(shell("setsid sh -c 'echo $$ > " + pid_file + "; exec flock -x " + a + "/f sleep 600' > /dev/null 2>&1 &") == 0);
  struct KillGroup {
    std::string pid_file;
    ~KillGroup() { shell("/bin/kill -9 -- -$(cat " + pid_file + ") 2>/dev/null"); }
  } holder{pid_file};
  REQUIRE(wait_until([&] { return !read_text_file(pid_file).empty(); }));
  REQUIRE(wait_until([&] { return shell("flock -n -x " + b + "/f -c true") == 1; }, std::chrono::seconds(5)));
  cluster.kill_mount(a);  // the pod is gone: its session ends, its locks with it
  REQUIRE(wait_until([&] { return shell("flock -n -x " + b + "/f -c true") == 0; }, std::chrono::seconds(10)));
}
