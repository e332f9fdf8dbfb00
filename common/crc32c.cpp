#include "common/crc32c.h"

#include <isa-l/crc.h>

namespace keelfs {

uint32_t crc32c(const void* data, size_t len) {
  return crc32_iscsi(static_cast<unsigned char*>(const_cast<void*>(data)), static_cast<int>(len), 0xffffffffu) ^
         0xffffffffu;
}

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t len) {
  return crc32_iscsi(static_cast<unsigned char*>(const_cast<void*>(data)), static_cast<int>(len), crc ^ 0xffffffffu) ^
         0xffffffffu;
}

}  // namespace keelfs
