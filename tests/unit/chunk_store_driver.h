// Random sequences of chunk store operations, chosen by a stream of bytes, against a model
// of what every chunk must hold: creates, writes at any offset (past the end, across
// blocks, past the chunk's size), reads, version changes with cuts and zero-extensions,
// removals, syncs and reopening the store. Every answer is compared with the model: a
// refused operation must be refused for the model's reason, and every byte read must be
// the model's. Shared by a unit test (seeded bytes) and a fuzz target; no test framework.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "chunkserver/chunk_store.h"

namespace keelfs::test {

class ChunkStoreDriver {
 public:
  ChunkStoreDriver(std::string dir, std::function<int()> next_byte) : dir_(std::move(dir)), next_(std::move(next_byte)) {}

  // Runs up to `max_ops` operations; "" when every answer matched the model, else what did
  // not, with the operations that led to it.
  std::string run(int max_ops) {
    auto opened = ChunkStore::open(dir_);
    if (!opened.ok()) return "cannot open the store: " + opened.status().to_string();
    store_ = std::move(*opened);
    for (int i = 0; i < max_ops && !done_; ++i) {
      std::string problem = step();
      if (done_) break;
      if (!problem.empty()) return problem + "\nafter:\n" + log_.str();
    }
    return "";
  }

 private:
  struct Model {
    uint32_t version = 0;
    std::string data;
  };

  int byte() {
    const int b = next_();
    if (b < 0) done_ = true;
    return b < 0 ? 0 : b;
  }
  uint64_t offset() {
    const int kind = byte() % 8;
    if (kind == 0) return kChunkSize - byte();  // near the chunk's end
    return static_cast<uint64_t>(byte()) * 997 + byte();  // within the first 250 KiB
  }
  std::string bytes(size_t n) {
    std::string s(n, '\0');
    const char seed = static_cast<char>(byte());
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 31);
    return s;
  }
  // The version to ask with: usually the chunk's, sometimes another.
  uint32_t version_for(uint64_t id) {
    auto it = model_.find(id);
    const bool wrong = byte() % 8 == 0;
    if (it == model_.end() || wrong) return 1 + byte() % 4;
    return it->second.version;
  }
  // The reasons the model knows to refuse an operation on (id, version); none: it must
  // succeed. When several apply, the store may name any of them.
  using Reasons = std::vector<Code>;
  Reasons refusal(uint64_t id, uint32_t version) const {
    auto it = model_.find(id);
    if (it == model_.end()) return {Code::kNotFound};
    if (it->second.version != version) return {Code::kStaleVersion};
    return {};
  }
  std::string expect(const Status& st, const Reasons& reasons, const std::string& what) {
    log_ << what << " -> " << (st.ok() ? "ok" : st.to_string()) << "\n";
    if (reasons.empty() && !st.ok()) return what + ": refused (" + st.to_string() + "), the model says it must succeed";
    if (!reasons.empty() && st.ok()) return what + ": succeeded, the model says it must be refused";
    if (!reasons.empty() && std::find_if(reasons.begin(), reasons.end(), [&](Code c) { return st.is(c); }) == reasons.end())
      return what + ": refused with " + st.to_string() + ", the model expects another code";
    return "";
  }

  std::string step() {
    const uint64_t id = 1 + byte() % 4;
    switch (byte() % 8) {
      case 0: {
        const uint32_t version = 1 + byte() % 4;
        const bool exists = model_.count(id) != 0;
        std::string p = expect(store_->create(id, version), exists ? Reasons{Code::kExists} : Reasons{},
                               "create " + std::to_string(id) + " v" + std::to_string(version));
        if (p.empty() && !exists) model_[id] = Model{version, ""};
        return p;
      }
      case 1:
      case 2: {
        const uint32_t version = version_for(id);
        const uint64_t at = offset();
        const std::string data = bytes(static_cast<size_t>(byte()) * 80);
        Reasons want = refusal(id, version);
        if (at + data.size() > kChunkSize) want.push_back(Code::kInvalidArgument);
        std::string p = expect(store_->write(id, version, at, data), want,
                               "write " + std::to_string(data.size()) + " at " + std::to_string(at) + " of " +
                                   std::to_string(id) + " v" + std::to_string(version));
        if (p.empty() && want.empty() && !data.empty()) {  // writing nothing extends nothing
          std::string& m = model_[id].data;
          if (m.size() < at + data.size()) m.resize(at + data.size(), '\0');
          m.replace(at, data.size(), data);
        }
        return p;
      }
      case 3:
      case 4: {
        const uint32_t version = version_for(id);
        const uint64_t at = offset();
        const uint64_t length = static_cast<uint64_t>(byte()) * 300;
        auto got = store_->read(id, version, at, length);
        const Reasons want = refusal(id, version);
        std::string p = expect(got.status(), want,
                               "read " + std::to_string(length) + " at " + std::to_string(at) + " of " + std::to_string(id));
        if (!p.empty() || !want.empty()) return p;
        const std::string& m = model_[id].data;
        const std::string expected = at >= m.size() ? "" : m.substr(at, length);
        if (*got != expected) return "read of chunk " + std::to_string(id) + " at " + std::to_string(at) + ": wrong bytes";
        return "";
      }
      case 5: {
        const uint32_t old_version = version_for(id);
        const uint32_t new_version = 1 + byte() % 6;
        std::optional<uint64_t> cut;
        if (byte() % 2) cut = byte() % 8 == 0 ? kChunkSize + 1 : offset();
        Reasons want = refusal(id, old_version);
        // Asking for the version it already has (with the length it has) is done already.
        auto it = model_.find(id);
        if (want == Reasons{Code::kStaleVersion} && it != model_.end() && it->second.version == new_version &&
            (!cut || *cut == it->second.data.size()))
          want.clear();
        if (cut && *cut > kChunkSize) want.push_back(Code::kInvalidArgument);
        std::string p = expect(store_->set_version(id, old_version, new_version, cut), want,
                               "set_version " + std::to_string(id) + " v" + std::to_string(old_version) + " -> v" +
                                   std::to_string(new_version) + (cut ? " cut " + std::to_string(*cut) : ""));
        if (p.empty() && want.empty()) {
          model_[id].version = new_version;
          if (cut) model_[id].data.resize(*cut, '\0');
        }
        return p;
      }
      case 6: {
        const uint32_t version = byte() % 4 == 0 ? 0 : version_for(id);
        Reasons want = refusal(id, version);
        if (version == 0 && model_.count(id)) want.clear();  // whatever version it has
        std::string p = expect(store_->remove(id, version), want, "remove " + std::to_string(id) + " v" + std::to_string(version));
        if (p.empty() && want.empty()) model_.erase(id);
        return p;
      }
      default: {
        if (byte() % 2) {
          const uint32_t version = version_for(id);
          return expect(store_->sync(id, version), refusal(id, version), "sync " + std::to_string(id));
        }
        log_ << "reopen\n";
        store_.reset();
        auto opened = ChunkStore::open(dir_);
        if (!opened.ok()) return "reopen: " + opened.status().to_string();
        store_ = std::move(*opened);
        for (const auto& [cid, m] : model_) {
          auto meta = store_->stat(cid);
          if (!meta.ok() || meta->version != m.version || meta->length != m.data.size())
            return "after reopening, chunk " + std::to_string(cid) + " is not as it was";
        }
        if (store_->chunk_count() != model_.size()) return "after reopening, the store holds other chunks";
        return "";
      }
    }
  }

  std::string dir_;
  std::function<int()> next_;
  bool done_ = false;
  std::unique_ptr<ChunkStore> store_;
  std::map<uint64_t, Model> model_;
  std::ostringstream log_;
};

}  // namespace keelfs::test
