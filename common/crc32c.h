// CRC32C (Castagnoli), the checksum of every 64 KiB block of a chunk.
#pragma once

#include <cstddef>
#include <cstdint>

namespace keelfs {

// Standard CRC32C: crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void* data, size_t len);
// The CRC32C of (the bytes whose CRC32C is `crc`) followed by `data`: appending to a block
// needs no read of what it already holds.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t len);

}  // namespace keelfs
