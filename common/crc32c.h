// CRC32C (Castagnoli), the checksum of every 64 KiB block of a chunk.
#pragma once

#include <cstddef>
#include <cstdint>

namespace keelfs {

// Standard CRC32C: crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void* data, size_t len);

}  // namespace keelfs
