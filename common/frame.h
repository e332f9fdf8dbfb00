// Framing: every message on a keelfs socket is
//
//   header (24 bytes, little-endian) | protobuf body | raw payload
//
//   u16 magic 0x4B46 ("KF")   u16 type (MsgType; responses set kResponseBit)
//   u32 status (responses: Code; requests: 0)
//   u32 body_len              u32 payload_len
//   u64 request_id            (a response carries its request's id)
//
// The header is validated before a byte of the body is read: a wrong magic, a body or
// payload over its limit, or an unknown type is a protocol error that closes the
// connection. docs/protocol.md describes it byte by byte.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace keelfs {

constexpr uint16_t kFrameMagic = 0x4B46;
constexpr uint16_t kResponseBit = 0x8000;
constexpr size_t kHeaderSize = 24;
constexpr uint32_t kMaxBody = 16u << 20;     // protobuf bodies (chunk reports come in batches)
constexpr uint32_t kMaxPayload = 16u << 20;  // raw data after the body
constexpr uint32_t kProtocolVersion = 1;

struct FrameHeader {
  uint16_t magic = kFrameMagic;
  uint16_t type = 0;
  uint32_t status = 0;
  uint32_t body_len = 0;
  uint32_t payload_len = 0;
  uint64_t request_id = 0;

  bool is_response() const { return (type & kResponseBit) != 0; }
  uint16_t msg_type() const { return type & ~kResponseBit; }
};

struct Frame {
  FrameHeader header;
  std::string body;
  std::string payload;
};

void encode_header(const FrameHeader& h, char out[kHeaderSize]);
FrameHeader decode_header(const char in[kHeaderSize]);

// OK when the header may be followed by its body and payload: magic, limits, known type,
// status in range.
Status validate_header(const FrameHeader& h);

// True for message types this protocol version defines.
bool is_known_type(uint16_t type);

}  // namespace keelfs
