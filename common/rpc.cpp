#include "common/rpc.h"

#include <atomic>
#include <cstring>
#include <deque>

#include <google/protobuf/message_lite.h>
#include <spdlog/spdlog.h>

#include "common/async.h"
#include "common/crypto.h"
#include "keelfs.pb.h"

namespace keelfs {
namespace {

// What a peer may make this process hold (docs/security.md, "Bounded resources"). A peer
// is a stranger until its HELLO: it may send only small frames, and must send HELLO soon.
constexpr uint32_t kMaxHandshakeFrame = 4096;  // body + payload of frames before HELLO
constexpr auto kHandshakeTimeout = std::chrono::seconds(5);
// A frame's buffers are allocated as announced while all frames being received in this
// process hold less than this; past it they grow with the bytes that really arrive, so
// headers that announce much and stall cost little.
constexpr int64_t kFrameBudget = 32ll << 20;
constexpr size_t kGrowStep = 4096;
// One connection's requests being served at once, and their bytes: past either, the
// connection is not read until some are answered (the peer's sends then wait in TCP).
constexpr size_t kMaxServing = 512;
constexpr size_t kMaxServingBytes = 64ull << 20;
// Connections one server holds at once; more are closed at accept, with a log line.
constexpr size_t kMaxConnections = 16384;

std::atomic<int64_t> frame_bytes_announced{0};  // of frames being received, this process

// Reads `want` bytes into `s`, of which `have` are there: all at once when the budget
// allows, else growing `s` as bytes arrive (at most doubling what arrived).
awaitable<error_code> read_into(tcp::socket& socket, std::string& s, size_t have, size_t want, bool within_budget) {
  error_code ec;
  while (have < want && !ec) {
    const size_t next = within_budget ? want : std::min(want, std::max(have * 2, have + kGrowStep));
    s.resize(next);
    co_await asio::async_read(socket, asio::buffer(s.data() + have, next - have), asio::redirect_error(use_awaitable, ec));
    have = next;
  }
  co_return ec;
}

}  // namespace

size_t RpcServer::open_connections_ = 0;

struct Connection::Pending {
  explicit Pending(asio::any_io_executor ex) : done(ex) {}
  Event done;
  std::optional<Result<Frame>> result;
};

struct Connection::OutFrame {
  char header[kHeaderSize];
  std::string body;
  std::string payload;
};

Reply reply_ok(const google::protobuf::MessageLite& msg, std::string payload) {
  Reply r;
  r.body = msg.SerializeAsString();
  r.payload = std::move(payload);
  return r;
}

Reply reply_error(Status status) {
  Reply r;
  r.status = std::move(status);
  return r;
}

Status parse_body(const Frame& frame, google::protobuf::MessageLite* msg) {
  if (!msg->ParseFromString(frame.body))
    return error(Code::kProtocol, fmt::format("body of message type {} does not parse", frame.header.msg_type()));
  return Status::Ok();
}

Connection::Connection(tcp::socket socket, Side side)
    : socket_(std::move(socket)),
      side_(side),
      serving_room_(socket_.get_executor()),
      out_(std::make_unique<std::deque<OutFrame>>()) {
  if (side_ == Side::kServer) ++RpcServer::open_connections_;
  error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  peer_ = ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  socket_.set_option(tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);  // send() writes at once when it can, never blocking
}

Connection::~Connection() {
  if (side_ == Side::kServer) --RpcServer::open_connections_;
}

void Connection::start(RequestHandler handler, CloseHandler on_close) {
  handler_ = std::move(handler);
  on_close_ = std::move(on_close);
  // co_spawn only posts the coroutine: it must own the connection until it runs.
  asio::co_spawn(socket_.get_executor(), read_loop(shared_from_this()), asio::detached);
  if (side_ == Side::kServer) asio::co_spawn(socket_.get_executor(), handshake_deadline(weak_from_this()), asio::detached);
}

awaitable<void> Connection::handshake_deadline(std::weak_ptr<Connection> weak) {
  asio::steady_timer timer(co_await asio::this_coro::executor, kHandshakeTimeout);
  error_code ec;
  co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
  auto self = weak.lock();
  if (!self || !self->open_ || self->hello_done_) co_return;
  spdlog::warn("closing connection from {}: no handshake within {} s", self->peer_, kHandshakeTimeout.count());
  self->close(error(Code::kTimeout, "no handshake in time"));
}

void Connection::close(const Status& reason) {
  if (!open_) return;
  open_ = false;
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) {
    p->result.emplace(error(Code::kUnavailable, fmt::format("connection to {} closed: {}", peer_, reason.message())));
    p->done.notify();
  }
  if (on_close_) {
    auto cb = std::move(on_close_);
    on_close_ = nullptr;
    cb(shared_from_this(), reason);
  }
  handler_ = nullptr;  // breaks the cycle handler -> captured state -> connection
}

void Connection::send(const FrameHeader& header, std::string body, std::string payload) {
  if (!open_) return;
  OutFrame& f = out_->emplace_back();
  FrameHeader h = header;
  h.body_len = static_cast<uint32_t>(body.size());
  h.payload_len = static_cast<uint32_t>(payload.size());
  encode_header(h, f.header);
  f.body = std::move(body);
  f.payload = std::move(payload);
  if (writing_) return;
  // Nothing else queued: most frames leave right here, in one non-blocking write, without a
  // trip through the executor. What the socket does not take now, write_loop sends.
  if (out_->size() == 1) {
    std::vector<asio::const_buffer> buffers = gather(1);
    error_code ec;
    size_t n = socket_.write_some(buffers, ec);
    if (!ec && n == asio::buffer_size(buffers)) {
      out_->pop_front();
      return;
    }
    if (!ec) front_written_ = n;  // errors (and would_block) are write_loop's to handle
  }
  writing_ = true;
  asio::co_spawn(socket_.get_executor(), write_loop(shared_from_this()), asio::detached);
}

// Buffers of the first `n` queued frames, less what was already written of the first.
std::vector<asio::const_buffer> Connection::gather(size_t n) {
  std::vector<asio::const_buffer> buffers;
  for (size_t i = 0; i < n; ++i) {
    OutFrame& f = (*out_)[i];
    buffers.emplace_back(f.header, kHeaderSize);
    if (!f.body.empty()) buffers.emplace_back(f.body.data(), f.body.size());
    if (!f.payload.empty()) buffers.emplace_back(f.payload.data(), f.payload.size());
  }
  size_t skip = front_written_;
  size_t first = 0;
  while (skip > 0 && first < buffers.size()) {
    if (buffers[first].size() <= skip) {
      skip -= buffers[first].size();
      ++first;
    } else {
      buffers[first] += skip;
      skip = 0;
    }
  }
  buffers.erase(buffers.begin(), buffers.begin() + static_cast<std::ptrdiff_t>(first));
  return buffers;
}

awaitable<void> Connection::write_loop(ConnectionPtr /*keeps this alive*/) {
  while (open_ && !out_->empty()) {
    // Gather everything queued into one write: many small responses leave in one syscall.
    size_t n = std::min<size_t>(out_->size(), 64);
    std::vector<asio::const_buffer> buffers = gather(n);
    error_code ec;
    co_await asio::async_write(socket_, buffers, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      close(error(Code::kUnavailable, "write failed: " + ec.message()));
      break;
    }
    front_written_ = 0;
    for (size_t i = 0; i < n && !out_->empty(); ++i) out_->pop_front();
  }
  writing_ = false;
}

awaitable<void> Connection::read_loop(ConnectionPtr self) {  // self keeps this alive
  // Reads go through a buffer, so that a small frame (header and body), or several, arrive
  // in one recv; the rest of a big frame is read straight into its body and payload.
  constexpr size_t kReadBuffer = 64 * 1024;
  std::unique_ptr<char[]> buf(new char[kReadBuffer]);
  size_t begin = 0, end = 0;  // the unread bytes are buf[begin, end)
  while (open_) {
    error_code ec;
    while (end - begin < kHeaderSize && !ec) {
      if (begin > 0) {
        std::memmove(buf.get(), buf.get() + begin, end - begin);
        end -= begin;
        begin = 0;
      }
      end += co_await socket_.async_read_some(asio::buffer(buf.get() + end, kReadBuffer - end),
                                              asio::redirect_error(use_awaitable, ec));
    }
    if (ec) {
      if (open_ && end > begin) spdlog::warn("closing connection from {}: truncated header ({})", peer_, ec.message());
      close(error(Code::kUnavailable, ec == asio::error::eof ? "peer closed" : ec.message()));
      break;
    }
    Frame frame;
    frame.header = decode_header(buf.get() + begin);
    begin += kHeaderSize;
    if (Status st = validate_header(frame.header); !st.ok()) {
      spdlog::warn("closing connection from {}: {}", peer_, st.message());
      close(st);
      break;
    }
    // A request waits (unread, the peer's later sends held back in TCP) while this peer's
    // requests being served are at their cap; answers to our own calls never wait.
    while (open_ && !frame.header.is_response() && (serving_ >= kMaxServing || serving_bytes_ >= kMaxServingBytes)) {
      serving_room_.expires_after(std::chrono::seconds(1));
      error_code ignored;
      co_await serving_room_.async_wait(asio::redirect_error(use_awaitable, ignored));
    }
    if (!open_) break;
    const size_t body_len = frame.header.body_len, payload_len = frame.header.payload_len;
    if (side_ == Side::kServer && !hello_done_ && body_len + payload_len > kMaxHandshakeFrame) {
      spdlog::warn("closing connection from {}: a frame of {} bytes before the handshake (at most {})", peer_,
                   body_len + payload_len, kMaxHandshakeFrame);
      close(error(Code::kProtocol, "large frame before the handshake"));
      break;
    }
    const size_t buffered = std::min(end - begin, body_len + payload_len);
    const size_t body_have = std::min(buffered, body_len), payload_have = buffered - body_have;
    frame.body.assign(buf.get() + begin, body_have);
    frame.payload.assign(buf.get() + begin + body_have, payload_have);
    begin += buffered;
    if (begin == end) begin = end = 0;
    if (body_have < body_len || payload_have < payload_len) {
      struct Announced {  // counted while this frame is being received, however that ends
        int64_t bytes;
        ~Announced() { frame_bytes_announced.fetch_sub(bytes); }
      } announced{static_cast<int64_t>(body_len + payload_len)};
      const bool within_budget = frame_bytes_announced.fetch_add(announced.bytes) + announced.bytes <= kFrameBudget;
      ec = co_await read_into(socket_, frame.body, body_have, body_len, within_budget);
      if (!ec) ec = co_await read_into(socket_, frame.payload, payload_have, payload_len, within_budget);
      if (ec) {
        if (open_) spdlog::warn("closing connection from {}: truncated frame ({})", peer_, ec.message());
        close(error(Code::kUnavailable, "truncated frame"));
        break;
      }
    }
    if (frame.header.is_response()) {
      auto it = pending_.find(frame.header.request_id);
      if (it == pending_.end()) continue;  // the caller gave up (timeout)
      auto p = it->second;
      pending_.erase(it);
      if (frame.header.status != 0) {
        pb::ErrorReply err;
        err.ParseFromString(frame.body);
        p->result.emplace(error(static_cast<Code>(frame.header.status), err.message()));
      } else {
        p->result.emplace(std::move(frame));
      }
      p->done.notify();
      continue;
    }
    if (side_ == Side::kServer && !hello_done_) {
      if (frame.header.msg_type() != pb::HELLO) {
        spdlog::warn("closing connection from {}: first frame is type {}, not HELLO", peer_, frame.header.msg_type());
        close(error(Code::kProtocol, "no handshake"));
        break;
      }
      Reply r = handle_hello(frame);
      FrameHeader h;
      h.type = frame.header.type | kResponseBit;
      h.request_id = frame.header.request_id;
      h.status = static_cast<uint32_t>(r.status.code());
      if (!r.status.ok()) {
        pb::ErrorReply err;
        err.set_message(r.status.message());
        send(h, err.SerializeAsString(), {});
        spdlog::warn("closing connection from {}: {}", peer_, r.status.message());
        // Let the refusal reach the peer before closing.
        co_await sleep_for(std::chrono::milliseconds(50));
        close(r.status);
        break;
      }
      send(h, std::move(r.body), {});
      hello_done_ = true;
      continue;
    }
    ++serving_;
    serving_bytes_ += frame.body.size() + frame.payload.size();
    asio::co_spawn(socket_.get_executor(), serve(self, std::move(frame)), asio::detached);
  }
}

Reply Connection::handle_hello(const Frame& frame) {
  pb::HelloReq req;
  if (Status st = parse_body(frame, &req); !st.ok()) return reply_error(st);
  if (req.protocol_version() != kProtocolVersion)
    return reply_error(error(Code::kProtocol, fmt::format("protocol version {} is not supported (this server speaks {})",
                                                          req.protocol_version(), kProtocolVersion)));
  if (req.nonce().size() > kLoginNonceBytes)
    return reply_error(error(Code::kProtocol, fmt::format("HELLO nonce of {} bytes (at most {})", req.nonce().size(),
                                                          kLoginNonceBytes)));
  peer_name_ = req.name();
  peer_role_ = req.role();
  nonces_.client = req.nonce();
  nonces_.server = secure_random_bytes(kLoginNonceBytes);
  pb::HelloResp resp;
  resp.set_protocol_version(kProtocolVersion);
  resp.set_nonce(nonces_.server);
  return reply_ok(resp);
}

awaitable<void> Connection::serve(ConnectionPtr self, Frame frame) {
  FrameHeader h;
  h.type = frame.header.type | kResponseBit;
  h.request_id = frame.header.request_id;
  struct Served {  // the read loop may take the next request when this one is answered
    Connection* c;
    size_t bytes;
    ~Served() {
      --c->serving_;
      c->serving_bytes_ -= bytes;
      c->serving_room_.cancel();
    }
  } served{this, frame.body.size() + frame.payload.size()};
  Reply reply;
  if (!handler_) {
    reply = reply_error(error(Code::kNotSupported, fmt::format("message type {} is not served here", h.msg_type())));
  } else {
    try {
      reply = co_await handler_(self, std::move(frame));
    } catch (const std::exception& e) {
      spdlog::error("request type {} from {} failed: {}", h.msg_type(), peer_, e.what());
      reply = reply_error(error(Code::kInternal, e.what()));
    }
  }
  if (reply.status.is(Code::kProtocol)) {
    spdlog::warn("closing connection from {}: {}", peer_, reply.status.message());
    close(reply.status);
    co_return;
  }
  h.status = static_cast<uint32_t>(reply.status.code());
  if (!reply.status.ok()) {
    pb::ErrorReply err;
    err.set_message(reply.status.message());
    send(h, err.SerializeAsString(), {});
  } else {
    send(h, std::move(reply.body), std::move(reply.payload));
  }
}

awaitable<Result<Frame>> Connection::call(uint16_t type, const google::protobuf::MessageLite& body, std::string payload,
                                          std::chrono::steady_clock::duration timeout) {
  auto self = shared_from_this();
  if (!open_) co_return error(Code::kUnavailable, fmt::format("connection to {} is closed", peer_));
  uint64_t id = next_request_id_++;
  auto p = std::make_shared<Pending>(socket_.get_executor());
  pending_[id] = p;
  FrameHeader h;
  h.type = type;
  h.request_id = id;
  send(h, body.SerializeAsString(), std::move(payload));
  co_await p->done.wait(timeout);
  if (!p->result) {
    pending_.erase(id);
    co_return error(Code::kTimeout, fmt::format("no answer from {} to message type {} within {} s", peer_, type,
                                                std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
  }
  co_return std::move(*p->result);
}

awaitable<Result<std::string>> Connection::call_into(uint16_t type, const google::protobuf::MessageLite& body,
                                                     google::protobuf::MessageLite* response, std::string payload,
                                                     std::chrono::steady_clock::duration timeout) {
  CO_ASSIGN_OR_RETURN(Frame f, co_await call(type, body, std::move(payload), timeout));
  if (response) CO_RETURN_IF_ERROR(parse_body(f, response));
  co_return std::move(f.payload);
}

awaitable<Status> Connection::handshake(int role, const std::string& name) {
  pb::HelloReq req;
  req.set_protocol_version(kProtocolVersion);
  req.set_role(static_cast<pb::Role>(role));
  req.set_name(name);
  nonces_.client = secure_random_bytes(kLoginNonceBytes);
  req.set_nonce(nonces_.client);
  pb::HelloResp resp;
  auto r = co_await call_into(pb::HELLO, req, &resp, {}, std::chrono::seconds(10));
  if (!r.ok()) co_return r.status();
  nonces_.server = resp.nonce();
  co_return Status::Ok();
}

RpcServer::RpcServer(asio::any_io_executor ex, RequestHandler handler, CloseHandler on_close)
    : ex_(ex), acceptor_(ex), handler_(std::move(handler)), on_close_(std::move(on_close)) {}

Result<uint16_t> RpcServer::listen(const std::string& host, uint16_t port) {
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return error(Code::kInvalidArgument, fmt::format("bad listen address '{}': {}", host, ec.message()));
  tcp::endpoint ep(addr, port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(1024, ec);
  if (ec) return error(Code::kUnavailable, fmt::format("cannot listen on {}:{}: {}", host, port, ec.message()));
  asio::co_spawn(ex_, accept_loop(), asio::detached);
  return acceptor_.local_endpoint().port();
}

void RpcServer::stop() {
  error_code ec;
  acceptor_.close(ec);
}

awaitable<void> RpcServer::accept_loop() {
  while (acceptor_.is_open()) {
    error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted) break;
      spdlog::warn("accept failed: {}", ec.message());
      co_await sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (open_connections_ >= kMaxConnections) {
      error_code ignored;
      spdlog::warn("refusing a connection from {}: {} connections open already",
                   socket.remote_endpoint(ignored).address().to_string(), open_connections_);
      socket.close(ignored);
      continue;
    }
    auto conn = std::make_shared<Connection>(std::move(socket), Connection::Side::kServer);
    conn->start(handler_, on_close_);
  }
}

Result<std::pair<std::string, uint16_t>> parse_address(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    return error(Code::kInvalidArgument, fmt::format("address '{}' is not HOST:PORT", address));
  std::string host = address.substr(0, colon);
  std::string digits = address.substr(colon + 1);
  unsigned long port = 0;
  bool valid = digits.size() <= 5 && digits.find_first_not_of("0123456789") == std::string::npos;
  if (valid) port = std::stoul(digits);
  if (!valid || port > 65535) return error(Code::kInvalidArgument, fmt::format("address '{}' has no valid port", address));
  return std::make_pair(host, static_cast<uint16_t>(port));
}

awaitable<Result<ConnectionPtr>> dial(const std::string& address, int role, const std::string& name,
                                      RequestHandler handler, CloseHandler on_close) {
  CO_ASSIGN_OR_RETURN(auto hp, parse_address(address));
  auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  error_code ec;
  auto endpoints = co_await resolver.async_resolve(hp.first, std::to_string(hp.second),
                                                   asio::redirect_error(use_awaitable, ec));
  if (ec) co_return error(Code::kUnavailable, fmt::format("cannot resolve {}: {}", address, ec.message()));
  tcp::socket socket(ex);
  co_await asio::async_connect(socket, endpoints, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return error(Code::kUnavailable, fmt::format("cannot connect to {}: {}", address, ec.message()));
  auto conn = std::make_shared<Connection>(std::move(socket), Connection::Side::kClient);
  conn->start(std::move(handler), std::move(on_close));
  Status st = co_await conn->handshake(role, name);
  if (!st.ok()) {
    conn->close(st);
    co_return error(st.code(), fmt::format("handshake with {} failed: {}", address, st.message()));
  }
  co_return conn;
}

struct ConnectionCache::Dial {
  std::vector<std::shared_ptr<Event>> waiters;  // one Event each: an Event has one waiter
  std::optional<Result<ConnectionPtr>> result;
};

ConnectionCache::ConnectionCache(int role, std::string name) : role_(role), name_(std::move(name)) {}
ConnectionCache::~ConnectionCache() = default;

awaitable<Result<ConnectionPtr>> ConnectionCache::get(const std::string& address) {
  auto it = conns_.find(address);
  if (it != conns_.end() && it->second->is_open()) co_return it->second;
  // One dial per address: without this, every request that finds no connection dials its
  // own, and the extra connections stay open (their read loops hold them) unused.
  auto under_way = dialing_.find(address);
  if (under_way != dialing_.end()) {
    std::shared_ptr<Dial> pending = under_way->second;
    auto ev = std::make_shared<Event>(co_await asio::this_coro::executor);
    pending->waiters.push_back(ev);
    co_await ev->wait();
    co_return *pending->result;
  }
  auto mine = std::make_shared<Dial>();
  dialing_[address] = mine;
  auto conn = co_await dial(address, role_, name_);
  dialing_.erase(address);
  if (conn.ok()) conns_[address] = *conn;
  mine->result.emplace(conn);
  for (auto& ev : mine->waiters) ev->notify();
  co_return conn;
}

void ConnectionCache::close_all() {
  for (auto& [addr, conn] : conns_) conn->close(error(Code::kUnavailable, "shutting down"));
  conns_.clear();
}

}  // namespace keelfs
