// libFuzzer target: sequences of namespace operations chosen by the fuzzer's bytes
// (tests/unit/namespace_ops_driver.h), each input on a volume of its own. Aborts when a
// refused operation changed the store or a directory's figures differ from its tree.
#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/fuzz_store.h"
#include "tests/unit/namespace_ops_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& fs = keelfs::fuzz::FuzzStore::get();
  const uint64_t root = fs.new_volume();
  size_t at = 0;
  keelfs::master::test::NamespaceOpsDriver driver(*fs.store, *fs.ns, root,
                                                  [&]() -> int { return at < size ? data[at++] : -1; });
  const std::string problems = driver.run(120);
  if (!problems.empty()) {
    std::fprintf(stderr, "%s\n", problems.c_str());
    std::abort();
  }
  return 0;
}
