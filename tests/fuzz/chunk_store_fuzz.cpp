// libFuzzer target: sequences of chunk store operations chosen by the fuzzer's bytes
// against a model of every chunk's bytes (tests/unit/chunk_store_driver.h), each input on
// an empty data directory. Aborts when an answer or a byte read differs from the model.
#include <stdlib.h>

#include <cstdio>
#include <filesystem>

#include "tests/unit/chunk_store_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  char tmpl[] = "/tmp/keelfs-fuzz-cs-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  size_t at = 0;
  std::string problems;
  {
    keelfs::test::ChunkStoreDriver driver(dir, [&]() -> int { return at < size ? data[at++] : -1; });
    problems = driver.run(500);
  }  // the store closes before its directory goes
  std::filesystem::remove_all(dir);
  if (!problems.empty()) {
    std::fprintf(stderr, "%s\n", problems.c_str());
    std::abort();
  }
  return 0;
}
