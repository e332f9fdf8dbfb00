#include "master/master.h"

#include <unistd.h>

#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/crypto.h"
#include "common/util.h"

namespace keelfs::master {
namespace {

// The name of this boot of the machine; a master that cannot read it takes every start for
// a new boot (a new durability epoch: clients are told of a possible loss they may not have had).
std::string read_boot_id(const std::string& path) {
  std::ifstream in(path);
  std::string id;
  if (!std::getline(in, id) || id.empty()) {
    spdlog::warn("cannot read the boot id from {}: every start counts as after a power loss", path);
    return fmt::format("unknown-{:x}", random_u64_nonzero());
  }
  return id;
}

}  // namespace

// Session ids start from the clock, so that an id from before a restart is never reused.
Master::Master(asio::io_context& io, MasterConfig config)
    : io_(io), config_(std::move(config)), first_session_(static_cast<uint64_t>(unix_ms()) << 12),
      sessions_(first_session_) {}
Master::~Master() = default;

Result<std::pair<uint16_t, uint16_t>> Master::start() {
  ASSIGN_OR_RETURN(store_, MetaStore::open(config_.data_dir, io_.get_executor(), config_.cache_mb));
  registry_.expect_chunks(store_->chunks_at_open());
  ns_ = std::make_unique<Namespace>(*store_);
  RETURN_IF_ERROR(ns_->count_dir_figures());
  RETURN_IF_ERROR(ns_->convert_volume_secrets());
  ASSIGN_OR_RETURN(durability_epoch_, store_->durability_epoch(read_boot_id(config_.boot_id_file)));
  op_memory_ = std::make_unique<OpMemory>(*store_, unix_ms());
  // Files unlinked while open stay until released; no session survives a restart. Their
  // chunks are deleted when chunkservers report them, as chunks the namespace does not know.
  std::vector<FreedChunk> orphan_chunks;
  RETURN_IF_ERROR(ns_->drop_orphans(&orphan_chunks));
  // Nor does any session append to a pack any more.
  for (uint64_t pack : store_->list_open_packs()) RETURN_IF_ERROR(ns_->seal_pack(pack, &orphan_chunks));
  spdlog::info("metadata store {} opened: {} volumes", config_.data_dir, ns_->list_volumes().size());
  for (uint64_t id : store_->list_draining()) {
    draining_.insert(id);
    drain_needs_[id];  // filled from its chunk report
  }

  ASSIGN_OR_RETURN(auto client_addr, parse_address(config_.listen));
  ASSIGN_OR_RETURN(auto cs_addr, parse_address(config_.cs_listen));
  client_server_ = std::make_unique<RpcServer>(
      io_.get_executor(), [this](ConnectionPtr c, Frame f) { return serve_client(std::move(c), std::move(f)); },
      [this](ConnectionPtr c, const Status&) { client_closed(std::move(c)); });
  cs_server_ = std::make_unique<RpcServer>(
      io_.get_executor(), [this](ConnectionPtr c, Frame f) { return serve_chunkserver(std::move(c), std::move(f)); },
      [this](ConnectionPtr c, const Status& st) { chunkserver_closed(std::move(c), st); });
  ASSIGN_OR_RETURN(uint16_t client_port, client_server_->listen(client_addr.first, client_addr.second));
  ASSIGN_OR_RETURN(uint16_t cs_port, cs_server_->listen(cs_addr.first, cs_addr.second));
  spdlog::info("serving clients on {}:{} and chunkservers on {}:{}", client_addr.first, client_port, cs_addr.first,
               cs_port);
  asio::co_spawn(io_, liveness_loop(), asio::detached);
  asio::co_spawn(io_, heal_loop(), asio::detached);
  data_conns_ = std::make_unique<ConnectionCache>(pb::ROLE_CLIENT, "keelfs-master");
  asio::co_spawn(io_, compact_loop(), asio::detached);
  // Volumes removed before a restart whose trees were not all deleted yet.
  for (auto [volume_id, root] : store_->list_removing())
    asio::co_spawn(io_, remove_tree(TreeRemoval(*store_, volume_id, root)), asio::detached);
  return std::make_pair(client_port, cs_port);
}

void Master::stop() {
  stopping_ = true;
  if (client_server_) client_server_->stop();
  if (cs_server_) cs_server_->stop();
}

}  // namespace keelfs::master
