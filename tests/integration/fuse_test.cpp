// keelfs-mount: a real FUSE mount used through system calls and real programs.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <fstream>

#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace keelfs;
using namespace keelfs::test;
namespace fs = std::filesystem;

namespace {

void write_file(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, std::min<size_t>(data.size() - off, 1 << 20));
    REQUIRE(n > 0);
    off += static_cast<size_t>(n);
  }
  REQUIRE(close(fd) == 0);
}

std::string read_file(const std::string& path) { return read_text_file(path); }

}  // namespace

TEST_CASE("mount: files of several sizes written and read through the kernel", "[fuse]") {
  Cluster cluster(3);
  uint64_t root = cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  for (size_t size : {size_t{0}, size_t{1}, size_t{65535}, size_t{65537}, size_t{5 << 20}, size_t{(64 << 20) + 3}}) {
    INFO("size " << size);
    std::string data = random_bytes(size, size);
    std::string path = m + "/f" + std::to_string(size);
    write_file(path, data);
    struct stat st;
    REQUIRE(stat(path.c_str(), &st) == 0);
    REQUIRE(static_cast<size_t>(st.st_size) == size);
    REQUIRE(read_file(path) == data);
  }
  // And the client library sees the same bytes (the mount really wrote them).
  auto attr = cluster.client().resolve(root, "/f65537");
  REQUIRE(attr.ok());
  REQUIRE(get_file(cluster.client(), attr->inode()) == random_bytes(65537, 65537));
}

TEST_CASE("mount: namespace operations and attributes", "[fuse]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  REQUIRE(mkdir((m + "/d").c_str(), 0750) == 0);
  write_file(m + "/d/a", "hello");
  REQUIRE(rename((m + "/d/a").c_str(), (m + "/b").c_str()) == 0);
  REQUIRE(access((m + "/d/a").c_str(), F_OK) == -1);
  REQUIRE(read_file(m + "/b") == "hello");
  REQUIRE(symlink("b", (m + "/s").c_str()) == 0);
  REQUIRE(read_file(m + "/s") == "hello");
  REQUIRE(link((m + "/b").c_str(), (m + "/d/hard").c_str()) == 0);
  struct stat st;
  REQUIRE(stat((m + "/b").c_str(), &st) == 0);
  REQUIRE(st.st_nlink == 2);
  REQUIRE(chmod((m + "/b").c_str(), 0600) == 0);
  REQUIRE(chown((m + "/b").c_str(), 1234, 5678) == 0);
  struct timespec times[2] = {{1000, 123456789}, {4102444800, 987654321}};  // 2100-01-01
  REQUIRE(utimensat(AT_FDCWD, (m + "/b").c_str(), times, 0) == 0);
  REQUIRE(stat((m + "/d/hard").c_str(), &st) == 0);
  REQUIRE((st.st_mode & 07777) == 0600);
  REQUIRE(st.st_uid == 1234);
  REQUIRE(st.st_gid == 5678);
  REQUIRE(st.st_mtim.tv_sec == 4102444800);
  REQUIRE(st.st_mtim.tv_nsec == 987654321);
  REQUIRE(st.st_atim.tv_nsec == 123456789);
  REQUIRE(truncate((m + "/b").c_str(), 2) == 0);
  REQUIRE(read_file(m + "/d/hard") == "he");
  REQUIRE(truncate((m + "/b").c_str(), 4) == 0);
  REQUIRE(read_file(m + "/d/hard") == std::string("he\0\0", 4));
  REQUIRE(setxattr((m + "/b").c_str(), "user.k", "val", 3, 0) == 0);
  char buf[16] = {};
  REQUIRE(getxattr((m + "/b").c_str(), "user.k", buf, sizeof buf) == 3);
  REQUIRE(std::string(buf, 3) == "val");
  REQUIRE(rmdir((m + "/d").c_str()) == -1);
  REQUIRE(errno == ENOTEMPTY);
  REQUIRE(mkfifo((m + "/fifo").c_str(), 0644) == 0);
  REQUIRE(lstat((m + "/fifo").c_str(), &st) == 0);
  REQUIRE(S_ISFIFO(st.st_mode));
  int fd = open((m + "/b").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
  REQUIRE(fd == -1);
  REQUIRE(errno == EEXIST);
  // Listing sees every name once.
  std::set<std::string> names;
  for (auto& e : fs::directory_iterator(m)) names.insert(e.path().filename());
  REQUIRE(names == std::set<std::string>{"b", "d", "s", "fifo"});
  struct statvfs sv;
  REQUIRE(statvfs(m.c_str(), &sv) == 0);
  REQUIRE(sv.f_blocks > 0);
  REQUIRE(sv.f_namemax == 255);
}

namespace {

struct Listed {
  unsigned char type;
  ino_t ino;
  bool operator==(const Listed&) const = default;
};

// Names of `dir` with their d_type and d_ino, after the kernel's caches were dropped (so
// the listing comes from the mount).
std::map<std::string, Listed> list_cold(const std::string& dir) {
  sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
  std::map<std::string, Listed> out;
  DIR* d = opendir(dir.c_str());
  REQUIRE(d != nullptr);
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out[name] = Listed{e->d_type, e->d_ino};
  }
  closedir(d);
  return out;
}

}  // namespace

// A listing carries names only until the listing thread looks names up (then attributes
// too, Mount::wants_attrs_in_listings); either way names, types and inode numbers are
// those stat() gives. The loop that reads /dev/fuse without sleeping can be turned off.
TEST_CASE("mount: listings without and with attributes agree with stat, with and without polling", "[fuse]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  for (const std::string& opts : {std::string(), std::string("poll_us=0")}) {
    INFO("mount options '" << opts << "'");
    std::vector<std::string> args;
    if (!opts.empty()) args = {"-o", opts};
    std::string m = cluster.mount("v", args);
    std::string dir = m + "/list" + std::to_string(opts.size());
    REQUIRE(mkdir(dir.c_str(), 0755) == 0);
    for (int i = 0; i < 40; ++i) write_file(dir + "/f" + std::to_string(i), "x");
    for (int i = 0; i < 3; ++i) REQUIRE(mkdir((dir + "/d" + std::to_string(i)).c_str(), 0755) == 0);
    REQUIRE(symlink("f0", (dir + "/link").c_str()) == 0);

    auto names_only = list_cold(dir);  // a thread that listed nothing before: names only
    REQUIRE(names_only.size() == 44);
    for (auto& [name, l] : names_only) {
      INFO(name);
      struct stat st;
      REQUIRE(lstat((dir + "/" + name).c_str(), &st) == 0);  // looked up after the listing
      REQUIRE(st.st_ino == l.ino);
      unsigned char type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISLNK(st.st_mode) ? DT_LNK : DT_REG;
      REQUIRE(l.type == type);
      REQUIRE(type == (name[0] == 'd' ? DT_DIR : name == "link" ? DT_LNK : DT_REG));
    }
    auto with_attrs = list_cold(dir);  // this thread now gets attributes with its listings
    REQUIRE(with_attrs == names_only);
    for (auto& [name, l] : with_attrs) {
      struct stat st;
      REQUIRE(lstat((dir + "/" + name).c_str(), &st) == 0);
      REQUIRE(st.st_ino == l.ino);
    }
    struct stat st;
    REQUIRE(lstat((dir + "/f7").c_str(), &st) == 0);
    REQUIRE(st.st_size == 1);
    cluster.unmount(m);
  }
}

TEST_CASE("mount: mmap reads and a shared writable map reaches the file", "[fuse]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  std::string data = random_bytes(3 << 20, 77);
  write_file(m + "/model.safetensors", data);
  int fd = open((m + "/model.safetensors").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  void* p = mmap(nullptr, data.size(), PROT_READ, MAP_PRIVATE, fd, 0);
  REQUIRE(p != MAP_FAILED);
  REQUIRE(memcmp(p, data.data(), data.size()) == 0);
  munmap(p, data.size());
  close(fd);

  fd = open((m + "/model.safetensors").c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  char* w = static_cast<char*>(mmap(nullptr, data.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  REQUIRE(w != MAP_FAILED);
  memcpy(w + 4096 * 10 + 5, "MAPPED", 6);
  REQUIRE(msync(w, data.size(), MS_SYNC) == 0);
  munmap(w, data.size());
  close(fd);
  data.replace(4096 * 10 + 5, 6, "MAPPED");
  // A second mount has no cached pages: it reads what reached the cluster.
  std::string m2 = cluster.mount("v");
  REQUIRE(read_file(m2 + "/model.safetensors") == data);
}

TEST_CASE("mount: two mounts see each other's closed files and changes", "[fuse][pods]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string a = cluster.mount("v");
  std::string b = cluster.mount("v");
  std::string data = random_bytes(9 << 20, 5);
  write_file(a + "/ckpt", data);
  REQUIRE(read_file(b + "/ckpt") == data);  // close-to-open
  // Rewritten on A: B's next open reads the new bytes, not its cached pages.
  std::string data2 = random_bytes(9 << 20, 6);
  write_file(a + "/ckpt", data2);
  REQUIRE(wait_until([&] { return read_file(b + "/ckpt") == data2; }, std::chrono::seconds(3)));
  // Renames, new files, chmod and unlinks show on B within the attribute timeout.
  REQUIRE(rename((a + "/ckpt").c_str(), (a + "/ckpt.old").c_str()) == 0);
  write_file(a + "/new", "x");
  REQUIRE(chmod((a + "/new").c_str(), 0611) == 0);
  REQUIRE(wait_until([&] { return access((b + "/ckpt.old").c_str(), F_OK) == 0; }, std::chrono::seconds(3)));
  REQUIRE(wait_until([&] { return access((b + "/ckpt").c_str(), F_OK) != 0; }, std::chrono::seconds(3)));
  REQUIRE(wait_until([&] {
    struct stat st;
    return stat((b + "/new").c_str(), &st) == 0 && (st.st_mode & 07777) == 0611;
  }, std::chrono::seconds(3)));
  REQUIRE(unlink((a + "/new").c_str()) == 0);
  REQUIRE(wait_until([&] { return access((b + "/new").c_str(), F_OK) != 0; }, std::chrono::seconds(3)));
}

TEST_CASE("mount: an open on one mount sees the size and new files another mount closed, at once", "[fuse][pods]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string a = cluster.mount("v");
  std::string b = cluster.mount("v");
  REQUIRE(mkdir((a + "/d").c_str(), 0755) == 0);
  for (int i = 0; i < 5; ++i) write_file(a + "/d/f" + std::to_string(i), std::string(10, 'x'));
  // B looks every file up: its kernel caches their size, its client reads the directory.
  struct stat st;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(stat((b + "/d/f" + std::to_string(i)).c_str(), &st) == 0);
    REQUIRE(st.st_size == 10);
  }
  // A grows one file and makes another: B's very next open reads them whole.
  std::string grown = random_bytes(100000, 7);
  write_file(a + "/d/f0", grown);
  REQUIRE(read_file(b + "/d/f0") == grown);
  write_file(a + "/d/f1", "short");
  REQUIRE(read_file(b + "/d/f1") == "short");
  write_file(a + "/d/made-on-a", "new");
  REQUIRE(read_file(b + "/d/made-on-a") == "new");
  // B's own changes show in its own lookups at once.
  REQUIRE(rename((b + "/d/f2").c_str(), (b + "/d/g2").c_str()) == 0);
  REQUIRE(stat((b + "/d/f2").c_str(), &st) != 0);
  REQUIRE(stat((b + "/d/g2").c_str(), &st) == 0);
  write_file(b + "/d/f3", std::string(12345, 'y'));
  REQUIRE(stat((b + "/d/f3").c_str(), &st) == 0);
  REQUIRE(st.st_size == 12345);
  // A file of two names loses one by a rename over it: the other name shows one link,
  // even once the kernel asks again after its entry timeout (pjdfstest rename/23.t).
  REQUIRE(link((b + "/d/f4").c_str(), (b + "/d/f4-link").c_str()) == 0);
  write_file(b + "/d/src", "s");
  REQUIRE(stat((b + "/d/f4-link").c_str(), &st) == 0);
  REQUIRE(st.st_nlink == 2);
  REQUIRE(rename((b + "/d/src").c_str(), (b + "/d/f4").c_str()) == 0);
  REQUIRE(wait_until([&] { return stat((b + "/d/f4-link").c_str(), &st) == 0 && st.st_nlink == 1; },
                     std::chrono::seconds(3)));
  // Let the kernel's entry expire, so that it asks the mount again (not a synchronisation).
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  REQUIRE(stat((b + "/d/f4-link").c_str(), &st) == 0);
  REQUIRE(st.st_nlink == 1);
}

TEST_CASE("mount: a write-back failure is reported by fsync and close", "[fuse]") {
  Cluster cluster(2);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  cluster.kill_chunkserver(0);
  cluster.kill_chunkserver(1);
  int fd = open((m + "/doomed").c_str(), O_WRONLY | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  std::string data(1 << 20, 'x');
  ssize_t n = write(fd, data.data(), data.size());  // accepted into the write-back buffer
  REQUIRE(n == static_cast<ssize_t>(data.size()));
  REQUIRE(fsync(fd) == -1);
  REQUIRE(errno != 0);
  close(fd);
}

TEST_CASE("mount: unknown volume and unreachable master are refused with no mount left", "[fuse]") {
  Cluster cluster(1);
  std::string dir = cluster.dir() + "/m";
  fs::create_directories(dir);
  std::string out;
  std::string bin = std::string(KEELFS_BIN_DIR) + "/keelfs-mount";
  REQUIRE(shell(bin + " --master " + cluster.master_address() + " --volume nope " + dir, &out) == 1);
  REQUIRE(out.find("volume 'nope' does not exist") != std::string::npos);
  REQUIRE(!is_mounted(dir));
  REQUIRE(shell(bin + " --master 127.0.0.1:1 --volume nope " + dir, &out) == 1);
  REQUIRE(out.find("127.0.0.1:1") != std::string::npos);
  REQUIRE(!is_mounted(dir));
}

TEST_CASE("mount: unmount flushes and the data stays", "[fuse]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  std::string data = random_bytes(20 << 20, 8);
  write_file(m + "/f", data);
  // A file written, closed and deleted has nothing to flush: the unmount is still clean.
  write_file(m + "/gone", data);
  REQUIRE(unlink((m + "/gone").c_str()) == 0);
  cluster.unmount(m);
  REQUIRE(!is_mounted(m));
  std::string m2 = cluster.mount("v");
  REQUIRE(read_file(m2 + "/f") == data);
}

TEST_CASE("mount: O_APPEND from two mounts interleaves without losing records", "[fuse][pods]") {
  Cluster cluster(2);
  cluster.create_volume("v", 2);
  std::string a = cluster.mount("v");
  std::string b = cluster.mount("v");
  write_file(a + "/log", "");
  REQUIRE(wait_until([&] { return access((b + "/log").c_str(), F_OK) == 0; }, std::chrono::seconds(3)));
  constexpr int kRecords = 200;
  auto appender = [&](const std::string& path, char tag) {
    int fd = open(path.c_str(), O_WRONLY | O_APPEND);
    REQUIRE(fd >= 0);
    for (int i = 0; i < kRecords; ++i) {
      char rec[64];
      std::memset(rec, tag, sizeof rec);
      snprintf(rec + 1, 5, "%04d", 1000 + i);
      rec[5] = tag;
      rec[55] = '\n';
      REQUIRE(write(fd, rec, 56) == 56);
    }
    REQUIRE(close(fd) == 0);
  };
  std::thread ta([&] { appender(a + "/log", 'A'); });
  std::thread tb([&] { appender(b + "/log", 'B'); });
  ta.join();
  tb.join();
  // Every record of both writers is there, whole, once; each writer's in its order.
  std::string all;
  REQUIRE(wait_until([&] {
    all = read_file(a + "/log");
    return all.size() == 2u * kRecords * 56;
  }, std::chrono::seconds(5)));
  std::istringstream lines(all);
  std::string line;
  int next_a = 0, next_b = 0;
  while (std::getline(lines, line)) {
    REQUIRE(line.size() == 55);
    char tag = line[0];
    REQUIRE((tag == 'A' || tag == 'B'));
    REQUIRE(line.substr(5) == std::string(50, tag));
    int& next = tag == 'A' ? next_a : next_b;
    REQUIRE(std::stoi(line.substr(1, 4)) == 1000 + next);
    ++next;
  }
  REQUIRE(next_a == kRecords);
  REQUIRE(next_b == kRecords);
}

TEST_CASE("mount: copy_file_range copies inside the volume", "[fuse]") {
  Cluster cluster(2);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  std::string data = random_bytes((10 << 20) + 77, 3);
  write_file(m + "/src", data);
  int in = open((m + "/src").c_str(), O_RDONLY);
  int out = open((m + "/dst").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(in >= 0);
  REQUIRE(out >= 0);
  off_t off_in = 100, off_out = 0;
  size_t left = data.size() - 100;
  while (left > 0) {
    ssize_t n = copy_file_range(in, &off_in, out, &off_out, left, 0);
    REQUIRE(n > 0);
    left -= static_cast<size_t>(n);
  }
  REQUIRE(close(out) == 0);
  close(in);
  REQUIRE(read_file(m + "/dst") == data.substr(100));
}

TEST_CASE("mount: carries on after the master is killed and restarted", "[fuse][restart]") {
  Cluster cluster(3);
  cluster.create_volume("v", 2);
  std::string m = cluster.mount("v");
  std::string before = random_bytes(3 << 20, 11);
  write_file(m + "/before", before);
  cluster.kill_master();
  cluster.restart_master();
  // The mount dials the master again by itself: old files read, new ones write.
  REQUIRE(read_file(m + "/before") == before);
  std::string after = random_bytes(2 << 20, 12);
  write_file(m + "/after", after);
  REQUIRE(read_file(m + "/after") == after);
  REQUIRE(mkdir((m + "/dir").c_str(), 0755) == 0);
  REQUIRE(rename((m + "/after").c_str(), (m + "/dir/after").c_str()) == 0);
  REQUIRE(read_file(m + "/dir/after") == after);
}
