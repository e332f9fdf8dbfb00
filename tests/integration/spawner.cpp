#include "tests/integration/spawner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace keelfs::test {
namespace {

// Messages are a u32 length and that many bytes. A request's first byte says what it is:
// 's' + out \0 err \0 argc \0 argv0 \0 … argv[argc-1] \0 env0 \0 … (spawn, with the test's
// environment as it is now; answer: the pid), or 'w'/'n' + pid
// (wait, blocking / not; answer: the pid and the status).
bool write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w <= 0) return false;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}
bool read_all(int fd, void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = ::read(fd, c, n);
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}
bool send_msg(int fd, const std::string& m) {
  uint32_t n = static_cast<uint32_t>(m.size());
  return write_all(fd, &n, 4) && write_all(fd, m.data(), m.size());
}
bool recv_msg(int fd, std::string* m) {
  uint32_t n = 0;
  if (!read_all(fd, &n, 4)) return false;
  m->resize(n);
  return read_all(fd, m->data(), n);
}

[[noreturn]] void exec_child(const std::string& req) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::vector<std::string> parts;
  for (size_t at = 1; at < req.size();) {
    size_t end = req.find('\0', at);
    parts.push_back(req.substr(at, end - at));
    at = end + 1;
  }
  int out = ::open(parts[0].c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  int err = ::open(parts[1].c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (out >= 0) dup2(out, 1);
  if (err >= 0) dup2(err, 2);
  close_range(3, ~0U, 0);  // the helper's socket and the log files
  const size_t argc = std::strtoul(parts[2].c_str(), nullptr, 10);
  std::vector<char*> argv, env;
  for (size_t i = 3; i < parts.size(); ++i) (i < 3 + argc ? argv : env).push_back(parts[i].data());
  argv.push_back(nullptr);
  env.push_back(nullptr);
  execve(argv[0], argv.data(), env.data());
  _exit(127);
}

// The helper: serves requests until the test process goes (its socket closes).
[[noreturn]] void serve(int fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::string req;
  while (recv_msg(fd, &req) && !req.empty()) {
    std::string answer(12, '\0');
    if (req[0] == 's') {
      pid_t pid = fork();
      if (pid == 0) exec_child(req);
      std::memcpy(answer.data(), &pid, sizeof pid);
    } else {
      pid_t pid = 0;
      std::memcpy(&pid, req.data() + 1, sizeof pid);
      int status = 0;
      pid_t got = waitpid(pid, &status, req[0] == 'n' ? WNOHANG : 0);
      std::memcpy(answer.data(), &got, sizeof got);
      std::memcpy(answer.data() + 4, &status, sizeof status);
    }
    if (!send_msg(fd, answer)) break;
  }
  _exit(0);
}

struct Helper {
  int fd = -1;
  std::mutex mu;
  Helper() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    pid_t pid = fork();
    if (pid < 0) std::abort();
    if (pid == 0) {
      ::close(sv[0]);
      serve(sv[1]);
    }
    ::close(sv[1]);
    fd = sv[0];
  }
  std::string ask(const std::string& req) {
    std::lock_guard<std::mutex> lock(mu);
    std::string answer;
    if (!send_msg(fd, req) || !recv_msg(fd, &answer) || answer.size() != 12) std::abort();
    return answer;
  }
};

// Forked while the test binary starts, before any test (and any thread) runs.
Helper g_helper;

}  // namespace

pid_t spawn(const std::vector<std::string>& argv, const std::string& out, const std::string& err) {
  std::string req = "s" + out + '\0' + err + '\0' + std::to_string(argv.size()) + '\0';
  for (const std::string& a : argv) req += a + '\0';
  for (char** e = environ; *e; ++e) req += std::string(*e) + '\0';
  std::string answer = g_helper.ask(req);
  pid_t pid = 0;
  std::memcpy(&pid, answer.data(), sizeof pid);
  return pid;
}

pid_t wait_spawned(pid_t pid, int* status, bool no_hang) {
  std::string req(1 + sizeof pid, no_hang ? 'n' : 'w');
  std::memcpy(req.data() + 1, &pid, sizeof pid);
  std::string answer = g_helper.ask(req);
  pid_t got = 0;
  std::memcpy(&got, answer.data(), sizeof got);
  if (status) std::memcpy(status, answer.data() + 4, sizeof *status);
  return got;
}

}  // namespace keelfs::test
