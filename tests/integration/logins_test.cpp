// Logins are challenge–response, both ways (common/auth.h): a proof is good on the
// connection it was made for only; a master that cannot prove itself is neither trusted by
// clients nor obeyed by chunkservers; and no secret ever crosses the wire.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "client/client.h"
#include "common/auth.h"
#include "common/util.h"
#include "tests/integration/harness.h"
#include "tests/integration/rpc_peer.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {

std::string cluster_secret(Cluster& cluster) {
  auto s = read_secret_file(cluster.dir() + "/cluster.secret");
  REQUIRE(s.ok());
  return *s;
}

template <class Msg>
Msg parsed(const Result<Frame>& r) {
  INFO((r.ok() ? std::string("OK") : r.status().to_string()));
  REQUIRE(r.ok());
  Msg m;
  REQUIRE(m.ParseFromString(r->body));
  return m;
}

void refused(const Result<Frame>& r, const std::string& why) {
  INFO((r.ok() ? std::string("OK") : r.status().to_string()));
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.status().is(Code::kPermissionDenied));
  REQUIRE(r.status().message().find(why) != std::string::npos);
}

// A TCP relay on 127.0.0.1 that keeps every byte it carries, both ways.
class RecordingRelay {
 public:
  explicit RecordingRelay(uint16_t upstream_port) : upstream_(upstream_port) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(listener_, 16) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~RecordingRelay() {
    stop_ = true;
    shutdown(listener_, SHUT_RDWR);
    close(listener_);
    acceptor_.join();
    for (auto& t : pumps_) t.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string carried() {
    std::lock_guard<std::mutex> lock(mu_);
    return carried_;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      int down = accept(listener_, nullptr, nullptr);
      if (down < 0) return;
      int up = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(upstream_);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (connect(up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(down);
        close(up);
        continue;
      }
      pumps_.emplace_back([this, down, up] { pump(down, up); });
    }
  }
  // Both directions of one connection, until either side closes or the relay stops.
  void pump(int a, int b) {
    char buf[65536];
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    while (!stop_) {
      if (poll(fds, 2, 100) < 0) break;
      bool done = false;
      for (int i = 0; i < 2 && !done; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          done = true;
          break;
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          carried_.append(buf, static_cast<size_t>(n));
        }
        for (ssize_t off = 0; off < n;) {
          ssize_t w = write(fds[1 - i].fd, buf + off, static_cast<size_t>(n - off));
          if (w <= 0) {
            done = true;
            break;
          }
          off += w;
        }
      }
      if (done) break;
    }
    close(a);
    close(b);
  }

  uint16_t upstream_;
  uint16_t port_ = 0;
  int listener_ = -1;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> pumps_;  // joined by the destructor only (accept_loop adds)
  std::mutex mu_;
  std::string carried_;
};

// Something that answers at a master's address without the cluster's secrets: it answers
// every login with a proof of its own making, and orders a chunkserver that logs in to
// delete a chunk before it answers.
struct Impostor {
  asio::io_context io{1};
  std::unique_ptr<RpcServer> server;
  std::thread thread;
  uint16_t port = 0;
  std::mutex mu;
  std::string delete_answer;  // what the chunkserver answered to the order

  Impostor() {
    server = std::make_unique<RpcServer>(io.get_executor(),
                                         [this](ConnectionPtr c, Frame f) { return serve(this, std::move(c), std::move(f)); });
    auto p = server->listen("127.0.0.1", 0);
    REQUIRE(p.ok());
    port = *p;
    thread = std::thread([this] { io.run(); });
  }
  ~Impostor() {
    asio::post(io, [this] { server->stop(); });
    io.stop();
    thread.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
  std::string answer_to_delete() {
    std::lock_guard<std::mutex> lock(mu);
    return delete_answer;
  }

  static awaitable<Reply> serve(Impostor* self, ConnectionPtr conn, Frame frame) {
    const std::string forged(32, 'x');
    switch (frame.header.msg_type()) {
      case pb::ADMIN_LOGIN: {
        pb::AdminLoginResp resp;
        resp.set_master_proof(forged);
        co_return reply_ok(resp);
      }
      case pb::MOUNT_SALT: {
        pb::MountSaltResp resp;
        resp.set_salt("salt-of-my-own!!");
        co_return reply_ok(resp);
      }
      case pb::MOUNT: {
        pb::MountResp resp;
        resp.set_session(1);
        resp.set_master_proof(forged);
        co_return reply_ok(resp);
      }
      case pb::CS_LOGIN: {
        pb::CsDeleteChunkReq order;
        pb::ChunkCopy* copy = order.add_copies();
        copy->set_chunk_id(1);
        auto r = co_await conn->call(pb::CS_DELETE_CHUNK, order, {}, std::chrono::seconds(10));
        {
          std::lock_guard<std::mutex> lock(self->mu);
          self->delete_answer = r.ok() ? "OK" : r.status().to_string();
        }
        pb::CsLoginResp resp;
        resp.set_master_proof(forged);
        co_return reply_ok(resp);
      }
      default:
        co_return reply_error(error(Code::kUnavailable, "impostor"));
    }
  }
};

}  // namespace

TEST_CASE("logins: a proof is good only on the connection it was made for", "[logins]") {
  Cluster cluster(1);
  cluster.create_volume("v", 1);
  const std::string secret = cluster_secret(cluster);

  // An admin login, and the master's answer proves the master holds the same secret.
  RpcPeer first(cluster.master_address());
  pb::AdminLoginReq login;
  login.set_proof(login_proof(secret, first.nonces(), admin_subject()));
  auto answer = parsed<pb::AdminLoginResp>(first.call(pb::ADMIN_LOGIN, login));
  REQUIRE(check_master_login_proof(secret, first.nonces(), admin_subject(), answer.master_proof(), "m").ok());
  REQUIRE_FALSE(answer.read_only());
  // The same proof replayed on another connection: refused, and that one stays no admin.
  RpcPeer second(cluster.master_address());
  refused(second.call(pb::ADMIN_LOGIN, login), "admin login is not signed with this cluster's secret");
  pb::VolumeListReq list;
  REQUIRE(second.call(pb::VOLUME_LIST, list).status().is(Code::kPermissionDenied));
  // The monitoring key logs in as a reader.
  RpcPeer reader(cluster.master_address());
  pb::AdminLoginReq monitor;
  monitor.set_proof(login_proof(monitor_key(secret), reader.nonces(), admin_subject()));
  REQUIRE(parsed<pb::AdminLoginResp>(reader.call(pb::ADMIN_LOGIN, monitor)).read_only());

  // A mount's proof, likewise.
  const std::string volume_secret = cluster.secret("v");
  auto mounted = parsed<pb::MountResp>(mount_volume(first, "v", volume_secret));
  pb::MountSaltReq salt_req;
  salt_req.set_volume("v");
  auto salt = parsed<pb::MountSaltResp>(first.call(pb::MOUNT_SALT, salt_req)).salt();
  REQUIRE(check_master_mount_proof(volume_secret, salt, first.nonces(), "v", mounted.master_proof(), "m").ok());
  pb::MountReq replay;
  replay.set_volume("v");
  replay.set_proof(mount_proof(volume_secret, salt, first.nonces(), "v"));
  refused(second.call(pb::MOUNT, replay), "wrong secret for volume 'v'");
  refused(mount_volume(second, "v", "not-the-secret"), "wrong secret for volume 'v'");
  pb::MountReq bare;
  bare.set_volume("v");
  refused(second.call(pb::MOUNT, bare), "needs its secret");

  // A chunkserver's login, likewise; and registration needs a login as that chunkserver.
  RpcPeer cs_first(cluster.master_cs_address(), pb::ROLE_CHUNKSERVER);
  const std::string subject = chunkserver_subject(0x1234, "127.0.0.1:1");
  pb::CsLoginReq cs_login;
  cs_login.set_cs_id(0x1234);
  cs_login.set_address("127.0.0.1:1");
  cs_login.set_proof(login_proof(secret, cs_first.nonces(), subject));
  auto cs_answer = parsed<pb::CsLoginResp>(cs_first.call(pb::CS_LOGIN, cs_login));
  REQUIRE(check_master_login_proof(secret, cs_first.nonces(), subject, cs_answer.master_proof(), "m").ok());
  pb::CsRegisterReq other_id;
  other_id.set_cs_id(0x9999);
  other_id.set_address("127.0.0.1:1");
  refused(cs_first.call(pb::CS_REGISTER, other_id), "registration needs CS_LOGIN first");
  RpcPeer cs_second(cluster.master_cs_address(), pb::ROLE_CHUNKSERVER);
  refused(cs_second.call(pb::CS_LOGIN, cs_login), "chunkserver login is not signed with this cluster's secret");
  pb::CsRegisterReq unproved;
  unproved.set_cs_id(0x1234);
  unproved.set_address("127.0.0.1:1");
  refused(cs_second.call(pb::CS_REGISTER, unproved), "registration needs CS_LOGIN first");
  // None of that registered a chunkserver.
  auto servers = cluster.client().cs_list();
  REQUIRE(servers.ok());
  REQUIRE(servers->size() == 1);
}

TEST_CASE("logins: a master that cannot prove itself is neither trusted nor obeyed", "[logins]") {
  Impostor impostor;
  Cluster cluster(1);  // for its secret file and directories
  const std::string secret = cluster_secret(cluster);

  client::ClientOptions opts;
  opts.master = impostor.address();
  opts.name = "logins-test";
  opts.master_wait_ms = 1000;
  auto c = client::Client::connect(opts);
  REQUIRE(c.ok());
  Status admin = (*c)->admin_login(secret);
  INFO(admin.to_string());
  REQUIRE(admin.is(Code::kPermissionDenied));
  REQUIRE(admin.message().find("could not prove that it holds the cluster secret") != std::string::npos);
  auto mounter = client::Client::connect(opts);  // one that never tried an admin login
  REQUIRE(mounter.ok());
  client::MountRequest m;
  m.volume = "v";
  m.secret = "any-secret";
  auto mounted = (*mounter)->mount(m);
  INFO(mounted.status().to_string());
  REQUIRE(mounted.status().is(Code::kPermissionDenied));
  REQUIRE(mounted.status().message().find("could not prove that it knows volume 'v'") != std::string::npos);

  // A real chunkserver pointed at it: refuses its order, and does not register with it.
  const std::string data = cluster.dir() + "/impostor-cs";
  std::filesystem::create_directories(data);
  Process cs;
  cs.name = "impostor-cs";
  cs.log = cluster.dir() + "/impostor-cs.log";
  cs.argv = {bin("keelfs-chunkserver"), "--master", impostor.address(), "--listen", "127.0.0.1:0", "--data-dir", data,
             "--secret-file", cluster.dir() + "/cluster.secret"};
  cs.start();
  struct Reaper {
    Process& p;
    ~Reaper() { p.kill_now(SIGKILL); }
  } reaper{cs};
  REQUIRE(wait_until([&] { return !impostor.answer_to_delete().empty(); }));
  INFO(impostor.answer_to_delete());
  REQUIRE(impostor.answer_to_delete().find("the master has not proved itself on this connection") != std::string::npos);
  REQUIRE(wait_until([&] {
    return read_text_file(cs.log).find("could not prove that it holds the cluster secret") != std::string::npos;
  }));
  REQUIRE(read_text_file(cs.log).find("registered with master") == std::string::npos);
}

TEST_CASE("logins: no secret crosses the wire, in either direction", "[logins]") {
  Cluster cluster(2);
  const std::string secret = cluster_secret(cluster);
  RecordingRelay relay(static_cast<uint16_t>(std::stoi(cluster.master_address().substr(10))));

  // Everything an admin and a mount do with secrets, through the relay.
  client::ClientOptions opts;
  opts.master = relay.address();
  opts.name = "logins-test";
  auto c = client::Client::connect(opts);
  REQUIRE(c.ok());
  REQUIRE((*c)->admin_login(secret).ok());
  pb::VolumeCreateReq create;
  create.set_name("w");
  create.set_goal(2);
  auto made = (*c)->volume_create(create);
  REQUIRE(made.ok());
  REQUIRE(made->secret.size() == 64);
  client::MountRequest m;
  m.volume = "w";
  m.secret = made->secret;
  auto mounted = (*c)->mount(m);
  INFO(mounted.status().to_string());
  REQUIRE(mounted.ok());
  std::string content = random_bytes(5000, 7);
  uint64_t ino = put_file(**c, mounted->root().inode(), "f", content);
  REQUIRE(get_file(**c, ino) == content);
  // A second client, with the monitoring key.
  auto reader = client::Client::connect(opts);
  REQUIRE(reader.ok());
  REQUIRE((*reader)->admin_login(monitor_key(secret)).ok());
  REQUIRE((*reader)->cs_list().ok());

  const std::string wire = relay.carried();
  REQUIRE(wire.size() > 1000);  // the logins, the creation, the mount went through it (the data goes to chunkservers)
  REQUIRE(wire.find(secret) == std::string::npos);
  REQUIRE(wire.find(made->secret) == std::string::npos);
  REQUIRE(wire.find(monitor_key(secret)) == std::string::npos);
  // Nor does the master keep the volume's secret anywhere in its store.
  std::string stored;
  for (auto& f : std::filesystem::recursive_directory_iterator(cluster.dir() + "/master"))
    if (f.is_regular_file()) stored += read_text_file(f.path().string());
  REQUIRE(!stored.empty());
  REQUIRE(stored.find(made->secret) == std::string::npos);
}
