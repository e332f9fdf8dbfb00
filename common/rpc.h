// RPC over framed TCP. A Connection carries requests both ways with request ids, so one
// socket holds many requests in flight (pipelining) and either side may call the other
// (the master calls its chunkservers over the socket they registered on).
//
// Threading: a Connection lives on one single-threaded executor (an io_context run by one
// thread). Every member is called from that executor.
//
// Handshake: the first frame a client sends is HELLO with the protocol version and a fresh
// nonce, answered with the server's own (LoginNonces, common/auth.h); a server connection
// closes when anything else comes first or the version differs.
// Malformed input (bad header, over-limit sizes, unknown type, body that does not parse)
// closes only that connection, with one log line naming the peer and the reason.
//
// Bounds (rpc.cpp): a server connection must send HELLO within 5 s and only small frames
// before it; frame buffers grow with the bytes that arrive once many bytes are announced
// at once; a connection whose requests being served reach a cap (count or bytes) is not
// read until some are answered; a server holds a bounded number of connections.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/asio.h"
#include "common/auth.h"
#include "common/frame.h"
#include "common/status.h"

namespace google::protobuf {
class MessageLite;
}

namespace keelfs {

// What a request handler returns: OK with a body (and payload), or an error status.
struct Reply {
  Status status;
  std::string body;
  std::string payload;
};
Reply reply_ok(const google::protobuf::MessageLite& msg, std::string payload = {});
Reply reply_error(Status status);

// Parses a frame's body into msg; a body that does not parse is a protocol error.
Status parse_body(const Frame& frame, google::protobuf::MessageLite* msg);

class Connection;
using ConnectionPtr = std::shared_ptr<Connection>;
using RequestHandler = std::function<awaitable<Reply>(ConnectionPtr, Frame)>;
using CloseHandler = std::function<void(ConnectionPtr, const Status&)>;

constexpr std::chrono::seconds kDefaultCallTimeout{60};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class Side { kClient, kServer };

  Connection(tcp::socket socket, Side side);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts reading. `handler` serves requests from the peer; `on_close` runs once when the
  // connection closes for any reason.
  void start(RequestHandler handler, CloseHandler on_close = {});

  // Sends a request and waits for its response. The result is the response frame when the
  // peer answered OK, or the peer's error, or Unavailable/Timeout when the connection
  // closed or the deadline passed.
  awaitable<Result<Frame>> call(uint16_t type, const google::protobuf::MessageLite& body, std::string payload = {},
                                std::chrono::steady_clock::duration timeout = kDefaultCallTimeout);

  // call() and parse the response body into `response`; returns the response's payload.
  awaitable<Result<std::string>> call_into(uint16_t type, const google::protobuf::MessageLite& body,
                                           google::protobuf::MessageLite* response, std::string payload = {},
                                           std::chrono::steady_clock::duration timeout = kDefaultCallTimeout);

  // Client side: HELLO exchange. REQUIRES: start() was called.
  awaitable<Status> handshake(int role, const std::string& name);

  void close(const Status& reason);
  bool is_open() const { return open_; }
  const std::string& peer() const { return peer_; }
  // The peer's name from its HELLO (server side).
  const std::string& peer_name() const { return peer_name_; }
  int peer_role() const { return peer_role_; }
  // Both HELLO nonces, once the handshake is done: what every login proof covers.
  const LoginNonces& nonces() const { return nonces_; }

  // State a server attaches to the connection (the master keeps the chunkserver id here).
  uint64_t tag = 0;
  // Who proved themselves on this connection (a login subject, common/auth.h); empty until then.
  std::string logged_in_as;

 private:
  struct Pending;
  struct OutFrame;
  awaitable<void> read_loop(ConnectionPtr self);
  // Closes a server connection that has not sent HELLO in time.
  static awaitable<void> handshake_deadline(std::weak_ptr<Connection> weak);
  awaitable<void> serve(ConnectionPtr self, Frame frame);
  awaitable<void> write_loop(ConnectionPtr self);
  void send(const FrameHeader& header, std::string body, std::string payload);
  std::vector<asio::const_buffer> gather(size_t n);
  Reply handle_hello(const Frame& frame);

  tcp::socket socket_;
  Side side_;
  std::string peer_;
  std::string peer_name_;
  int peer_role_ = 0;
  LoginNonces nonces_;
  bool open_ = true;
  bool hello_done_ = false;
  bool writing_ = false;
  size_t serving_ = 0;        // requests of the peer being served
  size_t serving_bytes_ = 0;  // and their bytes
  asio::steady_timer serving_room_;  // cancelled when one of them is answered
  size_t front_written_ = 0;  // bytes of the first queued frame already sent
  uint64_t next_request_id_ = 1;
  RequestHandler handler_;
  CloseHandler on_close_;
  std::unordered_map<uint64_t, std::shared_ptr<Pending>> pending_;
  std::unique_ptr<std::deque<OutFrame>> out_;
};

// Accepts connections and serves them with one handler.
class RpcServer {
 public:
  RpcServer(asio::any_io_executor ex, RequestHandler handler, CloseHandler on_close = {});
  // Binds and starts accepting. port 0 picks a free port; the bound port is returned.
  Result<uint16_t> listen(const std::string& host, uint16_t port);
  void stop();

 private:
  friend class Connection;
  static size_t open_connections_;  // server-side connections of this process
  awaitable<void> accept_loop();
  asio::any_io_executor ex_;
  tcp::acceptor acceptor_;
  RequestHandler handler_;
  CloseHandler on_close_;
};

// "host:port" -> (host, port).
Result<std::pair<std::string, uint16_t>> parse_address(const std::string& address);

// Connects, starts the connection and performs the handshake.
awaitable<Result<ConnectionPtr>> dial(const std::string& address, int role, const std::string& name,
                                      RequestHandler handler = {}, CloseHandler on_close = {});

// Keeps one open connection per address and redials when it closed. Callers that ask
// while a dial to that address is under way wait for it and share its result.
// REQUIRES: used from one single-threaded executor.
class ConnectionCache {
 public:
  ConnectionCache(int role, std::string name);
  ~ConnectionCache();
  awaitable<Result<ConnectionPtr>> get(const std::string& address);
  void close_all();

 private:
  struct Dial;
  int role_;
  std::string name_;
  std::unordered_map<std::string, ConnectionPtr> conns_;
  std::unordered_map<std::string, std::shared_ptr<Dial>> dialing_;
};

}  // namespace keelfs
