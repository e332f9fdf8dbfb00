#include "common/frame.h"

#include <cstring>

#include <fmt/format.h>

#include "keelfs.pb.h"

namespace keelfs {
namespace {

template <class T>
void put(char*& p, T v) {
  std::memcpy(p, &v, sizeof v);  // x86-64 and arm64 are little-endian; see docs/protocol.md
  p += sizeof v;
}
template <class T>
T get(const char*& p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  p += sizeof v;
  return v;
}

}  // namespace

void encode_header(const FrameHeader& h, char out[kHeaderSize]) {
  char* p = out;
  put(p, h.magic);
  put(p, h.type);
  put(p, h.status);
  put(p, h.body_len);
  put(p, h.payload_len);
  put(p, h.request_id);
}

FrameHeader decode_header(const char in[kHeaderSize]) {
  const char* p = in;
  FrameHeader h;
  h.magic = get<uint16_t>(p);
  h.type = get<uint16_t>(p);
  h.status = get<uint32_t>(p);
  h.body_len = get<uint32_t>(p);
  h.payload_len = get<uint32_t>(p);
  h.request_id = get<uint64_t>(p);
  return h;
}

bool is_known_type(uint16_t type) {
  return type != pb::MSG_NONE && pb::MsgType_IsValid(type);
}

Status validate_header(const FrameHeader& h) {
  if (h.magic != kFrameMagic) return error(Code::kProtocol, fmt::format("bad magic 0x{:04x}", h.magic));
  if (h.body_len > kMaxBody) return error(Code::kProtocol, fmt::format("body of {} bytes exceeds the limit", h.body_len));
  if (h.payload_len > kMaxPayload)
    return error(Code::kProtocol, fmt::format("payload of {} bytes exceeds the limit", h.payload_len));
  if (!is_known_type(h.msg_type())) return error(Code::kProtocol, fmt::format("unknown message type {}", h.msg_type()));
  if (h.status > kMaxCode) return error(Code::kProtocol, fmt::format("unknown status {}", h.status));
  if (!h.is_response() && h.status != 0) return error(Code::kProtocol, "request with a status");
  return Status::Ok();
}

}  // namespace keelfs
