// libFuzzer target: frame headers from the wire (common/frame.h). A header decodes and
// encodes back to the same bytes; one that validates names a known type and stays within
// the limits, so that a receiver never allocates more than they allow.
#include <cstdlib>
#include <cstring>

#include "common/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace keelfs;
  if (size < kHeaderSize) return 0;
  const FrameHeader h = decode_header(reinterpret_cast<const char*>(data));
  char again[kHeaderSize];
  encode_header(h, again);
  if (std::memcmp(again, data, kHeaderSize) != 0) std::abort();
  if (!validate_header(h).ok()) return 0;
  if (h.magic != kFrameMagic || h.body_len > kMaxBody || h.payload_len > kMaxPayload) std::abort();
  if (!is_known_type(h.msg_type())) std::abort();
  return 0;
}
