// The wire: frames are validated before they are parsed; malformed input closes only the
// connection it came on, and the server keeps serving everyone else.
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <thread>

#include <catch2/catch.hpp>

#include "common/async.h"
#include "common/frame.h"
#include "common/rpc.h"
#include "keelfs.pb.h"

using namespace keelfs;

namespace {

// An RPC server on a free loopback port, answering LOOKUP with the name it was given.
class EchoServer {
 public:
  EchoServer() {
    server_ = std::make_unique<RpcServer>(io_.get_executor(), [](ConnectionPtr, Frame f) -> awaitable<Reply> {
      pb::LookupReq req;
      if (Status st = parse_body(f, &req); !st.ok()) co_return reply_error(st);
      if (req.name() == "fail") co_return reply_error(error(Code::kNotFound, "no such thing"));
      pb::ReadlinkResp resp;
      resp.set_target(req.name());
      co_return reply_ok(resp, f.payload);
    });
    auto port = server_->listen("127.0.0.1", 0);
    REQUIRE(port.ok());
    port_ = *port;
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EchoServer() {
    asio::post(io_, [this] { server_->stop(); });
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  asio::io_context io_{1};
  std::unique_ptr<RpcServer> server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

// A well-behaved client call on its own io_context; returns the echoed name and payload.
Result<std::pair<std::string, std::string>> echo(uint16_t port, const std::string& name, const std::string& payload) {
  asio::io_context io;
  std::optional<Result<std::pair<std::string, std::string>>> out;
  asio::co_spawn(io, [&]() -> awaitable<void> {
    auto conn = co_await dial("127.0.0.1:" + std::to_string(port), pb::ROLE_CLIENT, "test");
    if (!conn.ok()) {
      out.emplace(conn.status());
      co_return;
    }
    pb::LookupReq req;
    req.set_name(name);
    pb::ReadlinkResp resp;
    auto r = co_await (*conn)->call_into(pb::LOOKUP, req, &resp, payload);
    if (r.ok()) out.emplace(std::make_pair(resp.target(), *r));
    else out.emplace(r.status());
    (*conn)->close(Status::Ok());
  }, asio::detached);
  io.run();
  return std::move(*out);
}

int raw_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

std::string frame_bytes(FrameHeader h, const std::string& body, const std::string& payload = "") {
  h.body_len = static_cast<uint32_t>(body.size());
  h.payload_len = static_cast<uint32_t>(payload.size());
  char raw[kHeaderSize];
  encode_header(h, raw);
  return std::string(raw, kHeaderSize) + body + payload;
}

std::string hello_frame() {
  pb::HelloReq hello;
  hello.set_protocol_version(kProtocolVersion);
  FrameHeader h;
  h.type = pb::HELLO;
  h.request_id = 1;
  return frame_bytes(h, hello.SerializeAsString());
}

// True when the server closed the connection (read returns 0 or an error other than timeout).
bool closed_by_server(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

}  // namespace

TEST_CASE("header validation rejects bad magic, sizes, types and statuses", "[rpc]") {
  FrameHeader h;
  h.type = pb::LOOKUP;
  REQUIRE(validate_header(h).ok());
  FrameHeader bad = h;
  bad.magic = 0x1234;
  REQUIRE(validate_header(bad).is(Code::kProtocol));
  bad = h;
  bad.body_len = kMaxBody + 1;
  REQUIRE(validate_header(bad).is(Code::kProtocol));
  bad = h;
  bad.payload_len = 0xffffffffu;
  REQUIRE(validate_header(bad).is(Code::kProtocol));
  bad = h;
  bad.type = 999;
  REQUIRE(validate_header(bad).is(Code::kProtocol));
  bad = h;
  bad.status = 3;  // a request carrying a status
  REQUIRE(validate_header(bad).is(Code::kProtocol));
  char raw[kHeaderSize];
  h.request_id = 0x0102030405060708ull;
  h.body_len = 77;
  encode_header(h, raw);
  FrameHeader back = decode_header(raw);
  REQUIRE(back.request_id == h.request_id);
  REQUIRE(back.body_len == 77);
  REQUIRE(back.type == h.type);
}

TEST_CASE("requests, payloads and errors travel over a connection", "[rpc]") {
  EchoServer server;
  auto r = echo(server.port(), "hello", std::string(3 << 20, 'x'));
  REQUIRE(r.ok());
  REQUIRE(r->first == "hello");
  REQUIRE(r->second == std::string(3 << 20, 'x'));
  auto err = echo(server.port(), "fail", "");
  REQUIRE(err.status().is(Code::kNotFound));
  REQUIRE(err.status().message() == "no such thing");
}

TEST_CASE("many requests in flight on one connection", "[rpc]") {
  EchoServer server;
  asio::io_context io;
  int good = 0;
  asio::co_spawn(io, [&]() -> awaitable<void> {
    auto conn = co_await dial("127.0.0.1:" + std::to_string(server.port()), pb::ROLE_CLIENT, "test");
    REQUIRE(conn.ok());
    std::vector<awaitable<Result<Frame>>> calls;
    std::vector<pb::LookupReq> reqs(200);
    for (int i = 0; i < 200; ++i) {
      reqs[i].set_name("n" + std::to_string(i));
      calls.push_back((*conn)->call(pb::LOOKUP, reqs[i]));
    }
    auto results = co_await when_all(std::move(calls));
    for (int i = 0; i < 200; ++i) {
      pb::ReadlinkResp resp;
      if (results[i].ok() && resp.ParseFromString(results[i]->body) && resp.target() == "n" + std::to_string(i)) ++good;
    }
    (*conn)->close(Status::Ok());
  }, asio::detached);
  io.run();
  REQUIRE(good == 200);
}

TEST_CASE("malformed input closes only that connection and the server keeps serving", "[rpc]") {
  EchoServer server;
  FrameHeader lookup;
  lookup.type = pb::LOOKUP;
  lookup.request_id = 2;

  SECTION("random bytes") {
    int fd = raw_connect(server.port());
    std::string junk(1000, '\0');
    for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 7919 + 13);
    REQUIRE(write(fd, junk.data(), junk.size()) > 0);
    REQUIRE(closed_by_server(fd));
    close(fd);
  }
  SECTION("a huge length") {
    int fd = raw_connect(server.port());
    FrameHeader h = lookup;
    std::string f = frame_bytes(h, "");
    uint32_t huge = 0xfffffff0u;
    memcpy(&f[8], &huge, 4);  // body_len
    REQUIRE(write(fd, f.data(), f.size()) > 0);
    REQUIRE(closed_by_server(fd));
    close(fd);
  }
  SECTION("an unknown message type after the handshake") {
    int fd = raw_connect(server.port());
    std::string f = hello_frame();
    FrameHeader h = lookup;
    h.type = 4000;
    f += frame_bytes(h, "");
    REQUIRE(write(fd, f.data(), f.size()) > 0);
    REQUIRE(closed_by_server(fd));
    close(fd);
  }
  SECTION("a body that does not parse") {
    int fd = raw_connect(server.port());
    std::string f = hello_frame() + frame_bytes(lookup, std::string("\xff\xff\xff\xff\xff", 5));
    REQUIRE(write(fd, f.data(), f.size()) > 0);
    REQUIRE(closed_by_server(fd));
    close(fd);
  }
  SECTION("a request before the handshake") {
    pb::LookupReq req;
    req.set_name("x");
    int fd = raw_connect(server.port());
    std::string f = frame_bytes(lookup, req.SerializeAsString());
    REQUIRE(write(fd, f.data(), f.size()) > 0);
    REQUIRE(closed_by_server(fd));
    close(fd);
  }
  SECTION("a wrong protocol version") {
    pb::HelloReq hello;
    hello.set_protocol_version(kProtocolVersion + 100);
    FrameHeader h;
    h.type = pb::HELLO;
    int fd = raw_connect(server.port());
    std::string f = frame_bytes(h, hello.SerializeAsString());
    REQUIRE(write(fd, f.data(), f.size()) > 0);
    REQUIRE(closed_by_server(fd));
    close(fd);
  }
  SECTION("a truncated frame, then the peer goes away") {
    int fd = raw_connect(server.port());
    std::string f = hello_frame() + frame_bytes(lookup, std::string(100, 'a'));
    f.resize(f.size() - 50);
    REQUIRE(write(fd, f.data(), f.size()) > 0);
    close(fd);
  }
  // Whatever happened above, a good client is still served.
  auto r = echo(server.port(), "still here", "");
  REQUIRE(r.ok());
  REQUIRE(r->first == "still here");
}
