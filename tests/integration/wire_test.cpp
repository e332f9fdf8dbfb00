// The wire against real processes: malformed frames sent to the master's client port and
// to a chunkserver's data port close only that connection (with a log line naming the
// reason) while the process keeps serving; chunkservers refuse data operations whose
// ticket is forged, tampered with, expired, for another chunk or without the right.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <future>
#include <optional>
#include <thread>

#include <catch2/catch.hpp>

#include "common/frame.h"
#include "common/rpc.h"
#include "common/auth.h"
#include "common/ticket.h"
#include "common/util.h"
#include "tests/integration/harness.h"
#include "tests/integration/rpc_peer.h"

using namespace keelfs;
using namespace keelfs::test;

namespace {

uint16_t port_of(const std::string& address) { return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))); }

int raw_connect(const std::string& address) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_of(address));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
    REQUIRE(n > 0);
    off += static_cast<size_t>(n);
  }
}

// Reads until the server closes the connection; everything it sent before in *received.
// False when the connection is still open after the receive timeout.
bool closed_by_server(int fd, std::string* received = nullptr) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
    if (received) received->append(buf, static_cast<size_t>(n));
  }
}

std::string frame_bytes(FrameHeader h, const std::string& body, const std::string& payload = "") {
  h.body_len = static_cast<uint32_t>(body.size());
  h.payload_len = static_cast<uint32_t>(payload.size());
  char raw[kHeaderSize];
  encode_header(h, raw);
  return std::string(raw, kHeaderSize) + body + payload;
}

std::string hello_frame(uint32_t version = kProtocolVersion) {
  pb::HelloReq hello;
  hello.set_protocol_version(version);
  hello.set_role(pb::ROLE_CLIENT);
  hello.set_name("wire-test-raw");
  FrameHeader h;
  h.type = pb::HELLO;
  h.request_id = 1;
  return frame_bytes(h, hello.SerializeAsString());
}

// A malformed conversation and what the server must log about it.
struct BadInput {
  std::string what;
  std::string bytes;
  std::string log;               // the server's log line contains this
  bool server_closes = true;     // false: the test closes the socket half way (truncated frame)
};

// Malformed conversations that are wrong for any server. `request` is a valid request
// type for the port (its body is made unparseable).
std::vector<BadInput> bad_inputs(uint16_t request) {
  std::vector<BadInput> out;
  std::string junk(1000, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (auto& ch : junk) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    ch = static_cast<char>(x);
  }
  junk[0] = 0;  // never the magic by chance
  out.push_back({"random bytes", junk, "bad magic", true});

  FrameHeader h;
  h.type = request;
  h.request_id = 2;
  std::string huge_body = frame_bytes(h, "");
  uint32_t huge = 0xfffffff0u;
  std::memcpy(&huge_body[8], &huge, 4);  // body_len
  out.push_back({"a huge body length", hello_frame() + huge_body, "body of 4294967280 bytes exceeds the limit", true});
  std::string huge_payload = frame_bytes(h, "");
  std::memcpy(&huge_payload[12], &huge, 4);  // payload_len
  out.push_back({"a huge payload length", hello_frame() + huge_payload, "payload of 4294967280 bytes exceeds the limit",
                 true});

  FrameHeader unknown = h;
  unknown.type = 4000;
  out.push_back({"an unknown message type", hello_frame() + frame_bytes(unknown, ""), "unknown message type 4000", true});

  out.push_back({"a body that does not parse",
                 hello_frame() + frame_bytes(h, std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11)),
                 "does not parse", true});

  std::string truncated = hello_frame() + frame_bytes(h, std::string(100, 'a'));
  truncated.resize(truncated.size() - 50);
  out.push_back({"a truncated frame", truncated, "truncated frame", false});

  out.push_back({"a request before the handshake", frame_bytes(h, ""), "not HELLO", true});
  out.push_back({"a wrong protocol version", hello_frame(kProtocolVersion + 100), "protocol version 101", true});

  FrameHeader with_status = h;
  with_status.status = 3;
  out.push_back({"a request carrying a status", hello_frame() + frame_bytes(with_status, ""), "request with a status",
                 true});
  return out;
}

// Sends every bad input on a fresh socket; after each, `still_serving` must hold.
void feed_bad_inputs(uint16_t request, const std::string& address, const std::string& log_path,
                     const std::function<void()>& still_serving) {
  for (const BadInput& bad : bad_inputs(request)) {
    INFO(bad.what);
    int fd = raw_connect(address);
    send_all(fd, bad.bytes);
    if (bad.server_closes) {
      std::string received;
      REQUIRE(closed_by_server(fd, &received));
      if (bad.what == "a wrong protocol version") {
        // The refusal is answered before the close: a HELLO response with status Protocol.
        REQUIRE(received.size() >= kHeaderSize);
        FrameHeader resp = decode_header(received.data());
        REQUIRE(resp.type == (pb::HELLO | kResponseBit));
        REQUIRE(resp.status == static_cast<uint32_t>(Code::kProtocol));
        pb::ErrorReply err;
        REQUIRE(err.ParseFromString(received.substr(kHeaderSize, resp.body_len)));
        REQUIRE(err.message().find("not supported") != std::string::npos);
      }
    }
    close(fd);
    REQUIRE(wait_until([&] { return read_text_file(log_path).find(bad.log) != std::string::npos; },
                       std::chrono::seconds(10)));
    still_serving();
  }
}

}  // namespace

TEST_CASE("malformed frames to the master close only that connection", "[wire]") {
  Cluster cluster(2);
  uint64_t root = cluster.create_volume("v", 2);
  std::string data = random_bytes(100000, 1);
  uint64_t ino = put_file(cluster.client(), root, "f", data);
  // Connected before the garbage arrives, and must stay connected through all of it.
  RpcPeer keeper(cluster.master_address());
  REQUIRE(mount_volume(keeper, "v", cluster.secret("v")).ok());
  int round = 0;
  auto still_serving = [&] {
    ++round;
    // The old connection still answers...
    pb::GetattrReq get;
    get.set_inode(ino);
    auto r = keeper.call(pb::GETATTR, get);
    INFO((r.ok() ? "" : r.status().to_string()));
    REQUIRE(r.ok());
    pb::AttrResp attr;
    REQUIRE(attr.ParseFromString(r->body));
    REQUIRE(attr.attr().size() == data.size());
    // ...and a new client does real work.
    auto c = cluster.new_client("v");
    REQUIRE(c.ok());
    REQUIRE((*c)->mkdir(root, "after-" + std::to_string(round), 0755).ok());
    REQUIRE(get_file(**c, ino) == data);
  };
  feed_bad_inputs(pb::MKDIR, cluster.master_address(), cluster.dir() + "/master.log", still_serving);

  // A known type the client port does not serve is an error reply, not a closed connection.
  pb::ChunkReadReq wrong;
  auto r = keeper.call(pb::CHUNK_READ, wrong);
  REQUIRE(r.status().is(Code::kNotSupported));
  pb::GetattrReq get;
  get.set_inode(ino);
  REQUIRE(keeper.call(pb::GETATTR, get).ok());
  // An error reply carries the status in the header and the reason in an ErrorReply.
  get.set_inode(987654321);
  r = keeper.call(pb::GETATTR, get);
  REQUIRE(r.status().is(Code::kNotFound));
  REQUIRE(r.status().message().find("987654321") != std::string::npos);
}

TEST_CASE("malformed frames to a chunkserver close only that connection", "[wire]") {
  Cluster cluster(2);
  uint64_t root = cluster.create_volume("v", 2);
  std::string data = random_bytes(300000, 2);
  uint64_t ino = put_file(cluster.client(), root, "f", data);
  auto located = cluster.client().locate(ino);
  REQUIRE(located.ok());
  REQUIRE(located->chunks_size() == 1);
  const pb::ChunkInfo chunk = located->chunks(0);
  const int victim = 0;
  RpcPeer keeper(cluster.cs_address(victim));

  auto read_req = [&](uint64_t offset, uint32_t length) {
    pb::ChunkReadReq req;
    req.set_chunk_id(chunk.chunk_id());
    req.set_version(chunk.version());
    req.set_offset(offset);
    req.set_length(length);
    *req.mutable_ticket() = chunk.ticket();
    return req;
  };
  auto still_serving = [&] {
    auto r = keeper.call(pb::CHUNK_READ, read_req(1000, 5000));
    INFO((r.ok() ? "" : r.status().to_string()));
    REQUIRE(r.ok());
    REQUIRE(r->payload == data.substr(1000, 5000));
    RpcPeer fresh(cluster.cs_address(victim));
    auto f = fresh.call(pb::CHUNK_READ, read_req(0, static_cast<uint32_t>(data.size())));
    REQUIRE(f.ok());
    REQUIRE(f->payload == data);
  };
  feed_bad_inputs(pb::CHUNK_READ, cluster.cs_address(victim), cluster.cs_log(victim), still_serving);

  // The master still sees the chunkserver alive, and the whole file still reads.
  auto servers = cluster.client().cs_list();
  REQUIRE(servers.ok());
  for (auto& s : *servers) REQUIRE(s.alive());
  auto c = cluster.new_client("v");
  REQUIRE(c.ok());
  REQUIRE(get_file(**c, ino) == data);
  // A master-only message on the data port is refused without closing it.
  pb::CsDeleteChunkReq del;
  del.add_copies()->set_chunk_id(chunk.chunk_id());
  REQUIRE(keeper.call(pb::CS_DELETE_CHUNK, del).status().is(Code::kNotSupported));
  REQUIRE(keeper.call(pb::CHUNK_READ, read_req(0, 10)).ok());
}

TEST_CASE("chunkservers refuse forged expired and misapplied tickets", "[wire][ticket]") {
  Cluster cluster(2);
  auto& c = cluster.client();
  uint64_t root = cluster.create_volume("v", 2);
  std::string data = random_bytes(200000, 3);
  uint64_t ino = put_file(c, root, "f", data);
  uint64_t other_ino = put_file(c, root, "g", random_bytes(1000, 4));
  auto located = c.locate(ino);
  REQUIRE(located.ok());
  REQUIRE(located->chunks_size() == 1);
  const pb::ChunkInfo chunk = located->chunks(0);
  REQUIRE(chunk.replicas_size() == 2);
  auto other = c.locate(other_ino);
  REQUIRE(other.ok());
  const pb::ChunkInfo other_chunk = other->chunks(0);
  REQUIRE(other_chunk.chunk_id() != chunk.chunk_id());
  auto secret = read_secret_file(cluster.dir() + "/cluster.secret");
  REQUIRE(secret.ok());

  auto read_with = [&](const pb::Ticket& ticket) {
    pb::ChunkReadReq req;
    req.set_chunk_id(chunk.chunk_id());
    req.set_version(chunk.version());
    req.set_offset(0);
    req.set_length(static_cast<uint32_t>(data.size()));
    *req.mutable_ticket() = ticket;
    return req;
  };
  auto denied = [](const Result<Frame>& r, const std::string& why) {
    INFO((r.ok() ? std::string("OK") : r.status().to_string()));
    REQUIRE_FALSE(r.ok());
    REQUIRE(r.status().is(Code::kPermissionDenied));
    REQUIRE(r.status().message().find(why) != std::string::npos);
  };

  for (const pb::Replica& replica : chunk.replicas()) {
    INFO("replica " << replica.address());
    RpcPeer cs(replica.address());

    // The master's ticket reads.
    auto good = cs.call(pb::CHUNK_READ, read_with(chunk.ticket()));
    INFO((good.ok() ? "" : good.status().to_string()));
    REQUIRE(good.ok());
    REQUIRE(good->payload == data);

    // Signed with a wrong secret.
    pb::Ticket forged = chunk.ticket();
    sign_ticket("not-the-cluster-secret", &forged);
    REQUIRE(forged.mac() != chunk.ticket().mac());
    denied(cs.call(pb::CHUNK_READ, read_with(forged)), "bad signature");

    // The real signature over changed fields.
    pb::Ticket tampered = chunk.ticket();
    tampered.set_expires_unix_ms(tampered.expires_unix_ms() + 3600 * 1000);
    denied(cs.call(pb::CHUNK_READ, read_with(tampered)), "bad signature");

    // No ticket at all.
    denied(cs.call(pb::CHUNK_READ, read_with(pb::Ticket())), "bad signature");

    // Genuine but expired.
    pb::Ticket expired = chunk.ticket();
    expired.set_expires_unix_ms(unix_ms() - 1000);
    sign_ticket(*secret, &expired);
    denied(cs.call(pb::CHUNK_READ, read_with(expired)), "expired");
    // The same, still valid, is accepted: the secret is right and expiry is what failed.
    pb::Ticket renewed = expired;
    renewed.set_expires_unix_ms(unix_ms() + 60 * 1000);
    sign_ticket(*secret, &renewed);
    REQUIRE(cs.call(pb::CHUNK_READ, read_with(renewed)).ok());

    // A genuine ticket of another chunk does not open this one.
    denied(cs.call(pb::CHUNK_READ, read_with(other_chunk.ticket())), "ticket is for chunk");

    // A read ticket does not write; a forged write ticket does not either.
    pb::ChunkWriteReq write;
    write.set_chunk_id(chunk.chunk_id());
    write.set_version(chunk.version());
    write.set_offset(0);
    *write.mutable_ticket() = chunk.ticket();  // from locate(): read only
    REQUIRE(chunk.ticket().rights() == kRightRead);
    denied(cs.call(pb::CHUNK_WRITE, write, std::string(100, 'X')), "does not grant write");
    pb::Ticket forged_write = chunk.ticket();
    forged_write.set_rights(kRightRead | kRightWrite);
    sign_ticket("not-the-cluster-secret", &forged_write);
    *write.mutable_ticket() = forged_write;
    denied(cs.call(pb::CHUNK_WRITE, write, std::string(100, 'X')), "bad signature");
    pb::ChunkSyncReq sync;
    sync.set_chunk_id(chunk.chunk_id());
    sync.set_version(chunk.version());
    *sync.mutable_ticket() = chunk.ticket();
    denied(cs.call(pb::CHUNK_SYNC, sync), "does not grant write");

    // Nothing was written, and the connection survived every refusal.
    auto after = cs.call(pb::CHUNK_READ, read_with(chunk.ticket()));
    REQUIRE(after.ok());
    REQUIRE(after->payload == data);
  }

  // Writes go down the chain the master signed, and no other way: a writer may not skip a
  // copy (copies would differ at one version with valid CRCs), repeat one, add a host of
  // its own, or start part-way down.
  const std::string head = chunk.replicas(0).address(), tail = chunk.replicas(1).address();
  pb::Ticket write_ticket = chunk.ticket();
  write_ticket.set_rights(kRightRead | kRightWrite);
  write_ticket.add_chain(head);
  write_ticket.add_chain(tail);
  sign_ticket(*secret, &write_ticket);
  auto write_down = [&](const std::string& to, const std::vector<std::string>& chain) {
    pb::ChunkWriteReq w;
    w.set_chunk_id(chunk.chunk_id());
    w.set_version(chunk.version());
    w.set_offset(0);
    for (const auto& a : chain) w.add_chain(a);
    *w.mutable_ticket() = write_ticket;
    return RpcPeer(to).call(pb::CHUNK_WRITE, w, std::string(100, 'X'));
  };
  denied(write_down(head, {}), "not the one the master signed");                   // tail skipped
  denied(write_down(head, {tail, tail}), "not the one the master signed");         // tail twice
  denied(write_down(head, {"127.0.0.1:9"}), "not the one the master signed");      // a host of its own
  denied(write_down(tail, {}), "without coming down the chain");                   // head skipped
  pb::Ticket unchained = chunk.ticket();
  unchained.set_rights(kRightRead | kRightWrite);
  sign_ticket(*secret, &unchained);
  pb::ChunkSyncReq sync;
  sync.set_chunk_id(chunk.chunk_id());
  sync.set_version(chunk.version());
  *sync.mutable_ticket() = unchained;
  denied(RpcPeer(head).call(pb::CHUNK_SYNC, sync), "does not name this chunkserver");
  // Down the signed chain, the same bytes again: accepted on both.
  pb::ChunkWriteReq same;
  same.set_chunk_id(chunk.chunk_id());
  same.set_version(chunk.version());
  same.set_offset(0);
  same.add_chain(tail);
  *same.mutable_ticket() = write_ticket;
  auto ok = RpcPeer(head).call(pb::CHUNK_WRITE, same, data.substr(0, 100));
  INFO((ok.ok() ? "" : ok.status().to_string()));
  REQUIRE(ok.ok());
  for (const pb::Replica& replica : chunk.replicas()) {
    auto r = RpcPeer(replica.address()).call(pb::CHUNK_READ, read_with(chunk.ticket()));
    REQUIRE(r.ok());
    REQUIRE(r->payload == data);
  }
  // The client library, going through the master, reads the file unchanged.
  auto fresh = cluster.new_client("v");
  REQUIRE(fresh.ok());
  REQUIRE(get_file(**fresh, ino) == data);
}

namespace {

// Resident memory of a process, from /proc.
uint64_t rss_bytes(pid_t pid) {
  std::string status = read_text_file("/proc/" + std::to_string(pid) + "/status");
  auto at = status.find("VmRSS:");
  if (at == std::string::npos) return 0;
  return std::stoull(status.substr(at + 6)) * 1024;  // "VmRSS:   1234 kB"
}

// The 24 bytes of a header announcing the largest body a frame may have, and nothing after.
std::string big_header() {
  FrameHeader h;
  h.type = pb::MKDIR;
  h.request_id = 2;
  h.body_len = kMaxBody;
  char raw[kHeaderSize];
  encode_header(h, raw);
  return std::string(raw, kHeaderSize);
}

}  // namespace

TEST_CASE("a ticket stops working on every chunkserver within seconds of its session's end, and of a master restart",
          "[wire][ticket]") {
  Cluster cluster(2);
  uint64_t root = cluster.create_volume("v", 2);
  std::string data = random_bytes(200000, 5);  // past the packing threshold: a chunk of its own
  put_file(cluster.client(), root, "f", data);
  auto pod = cluster.new_client("v");
  REQUIRE(pod.ok());
  auto ino = (*pod)->lookup(root, "f");
  REQUIRE(ino.ok());
  auto located = (*pod)->locate(ino->inode());
  REQUIRE(located.ok());
  const pb::ChunkInfo chunk = located->chunks(0);
  REQUIRE(chunk.ticket().session() != 0);
  auto read_with = [&](const pb::ChunkInfo& c, const std::string& address) {
    pb::ChunkReadReq req;
    req.set_chunk_id(c.chunk_id());
    req.set_version(c.version());
    req.set_length(static_cast<uint32_t>(data.size()));
    *req.mutable_ticket() = c.ticket();
    RpcPeer cs(address);
    return cs.call(pb::CHUNK_READ, req);
  };
  auto refused_everywhere = [&](const pb::ChunkInfo& c) {
    for (const pb::Replica& r : c.replicas()) {
      auto got = read_with(c, r.address());
      if (got.ok()) return false;
      INFO(got.status().to_string());
      REQUIRE(got.status().is(Code::kPermissionDenied));
      REQUIRE(got.status().message().find("has ended") != std::string::npos);
    }
    return true;
  };
  for (const pb::Replica& r : chunk.replicas()) REQUIRE(read_with(chunk, r.address()).ok());

  // The pod unmounts: its tickets go dead on both chunkservers within a few heartbeats,
  // while another session's ticket for the same chunk still reads.
  REQUIRE((*pod)->unmount().ok());
  REQUIRE(wait_until([&] { return refused_everywhere(chunk); }, std::chrono::seconds(5)));
  auto mine = cluster.client().locate(ino->inode());
  REQUIRE(mine.ok());
  const pb::ChunkInfo live = mine->chunks(0);
  for (const pb::Replica& r : live.replicas()) {
    auto got = read_with(live, r.address());
    INFO((got.ok() ? "" : got.status().to_string()));
    REQUIRE(got.ok());
    REQUIRE(got->payload == data);
  }

  // A master restart ends every session it had: their tickets go dead too, and the client,
  // mounted again, reads with new ones.
  cluster.kill_master();
  cluster.restart_master();
  REQUIRE(wait_until([&] { return refused_everywhere(live); }, std::chrono::seconds(5)));
  REQUIRE(get_file(cluster.client(), ino->inode()) == data);
}

TEST_CASE("strangers that announce big frames and stall cost the servers little, and clients keep working",
          "[wire][bounds]") {
  Cluster cluster(1);
  uint64_t root = cluster.create_volume("v", 1);
  auto& c = cluster.client();
  uint64_t ino = put_file(c, root, "f", random_bytes(1000, 3));
  const uint64_t master_before = rss_bytes(cluster.master_pid()), cs_before = rss_bytes(cluster.cs_pid(0));
  REQUIRE(master_before > 0);
  REQUIRE(cs_before > 0);

  // Per server: 500 that said HELLO and then announce 16 MiB, 250 that announce 16 MiB
  // without HELLO (closed at once), 250 that send nothing (closed after the handshake
  // deadline).
  constexpr int kHello = 500, kNoHello = 250, kSilent = 250;
  std::vector<int> hello_fds, no_hello_fds, silent_fds;
  for (const std::string& address : {cluster.master_address(), cluster.cs_address(0)}) {
    for (int i = 0; i < kHello; ++i) {
      int fd = raw_connect(address);
      send_all(fd, hello_frame() + big_header());
      hello_fds.push_back(fd);
    }
    for (int i = 0; i < kNoHello; ++i) {
      int fd = raw_connect(address);
      send_all(fd, big_header());
      no_hello_fds.push_back(fd);
    }
    for (int i = 0; i < kSilent; ++i) silent_fds.push_back(raw_connect(address));
  }

  // A client beside them: stat latency stays low.
  std::vector<double> ms;
  for (int i = 0; i < 2000; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(c.getattr(ino).ok());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double p99 = ms[ms.size() * 99 / 100];
  const uint64_t master_growth = rss_bytes(cluster.master_pid()) - std::min(master_before, rss_bytes(cluster.master_pid()));
  const uint64_t cs_growth = rss_bytes(cluster.cs_pid(0)) - std::min(cs_before, rss_bytes(cluster.cs_pid(0)));
  INFO("stat p99 " << p99 << " ms; master RSS +" << master_growth / 1024 << " KiB, chunkserver RSS +"
                   << cs_growth / 1024 << " KiB");
  CHECK(p99 < 10.0);
  CHECK(master_growth < 100ull << 20);
  CHECK(cs_growth < 100ull << 20);

  // Who never said HELLO is closed: at once with a big frame, within the deadline when silent.
  for (int fd : no_hello_fds) REQUIRE(closed_by_server(fd));
  for (int fd : silent_fds) REQUIRE(closed_by_server(fd));
  for (auto* fds : {&hello_fds, &no_hello_fds, &silent_fds})
    for (int fd : *fds) ::close(fd);
  // And the servers still serve.
  REQUIRE(get_file(c, ino).size() == 1000);
  REQUIRE(c.mkdir(root, "after", 0755).ok());
  const std::string log = read_text_file(cluster.dir() + "/master.log");
  REQUIRE(log.find("before the handshake") != std::string::npos);
  REQUIRE(log.find("no handshake within") != std::string::npos);
}
