// Packer: writes small files into pack chunks (docs/small-files.md). This client holds one
// open pack per volume, which only its session appends to; a small file's whole content is
// appended there at the next free offset, through the pack's replication chain, and then
// committed at the master in one request (PACK_COMMIT), which is what publishes it to the
// other clients. No chunk is created per file.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "common/async.h"
#include "common/rpc.h"
#include "common/status.h"
#include "keelfs.pb.h"

namespace keelfs::client {

class Packer {
 public:
  // How the packer reaches the master: the client's call_master (sessions, retries).
  using CallMaster = std::function<awaitable<Result<Frame>>(uint16_t type, const google::protobuf::MessageLite& req)>;

  Packer(CallMaster call_master, ConnectionCache& cs_conns) : call_master_(std::move(call_master)), cs_conns_(cs_conns) {}

  struct Committed {
    pb::Attr attr;       // the file as the master now has it
    pb::ChunkInfo pack;  // the chain that holds it (CHUNK_SYNC makes it durable)
  };
  // Makes `data` the whole content of file `ino` (of volume `volume_id`), which is then
  // `file_size` bytes long (the rest reads as zeros). `base_size` is the file's size at
  // the master as this client last heard: Busy when it is no longer that (another client
  // changed the file; the caller then writes the ordinary way).
  awaitable<Result<Committed>> write_file(uint64_t volume_id, uint64_t ino, const std::string& data, uint64_t file_size,
                                          uint64_t base_size);

 private:
  struct OpenPack {
    pb::ChunkInfo chunk;  // replicas = the write chain
    uint64_t capacity = 0;
    uint64_t next = 0;  // where the next file goes
    int64_t renew_at_ms = 0;  // the ticket is renewed from then on (before it expires)
  };
  struct Place {
    pb::ChunkInfo chunk;
    uint64_t offset = 0;
  };
  // Room for `len` bytes in the volume's pack: a new pack when there is none, it is full,
  // or its ticket is about to expire.
  awaitable<Result<Place>> place(uint64_t volume_id, uint64_t ino, uint64_t len);
  // The pack failed (a chunkserver, a version moved on, the master forgot it): the next
  // file goes to a new one.
  void give_up(uint64_t volume_id, uint64_t chunk_id);

  template <class Resp>
  awaitable<Result<Resp>> ask(uint16_t type, const google::protobuf::MessageLite& req);

  CallMaster call_master_;
  ConnectionCache& cs_conns_;
  KeyedMutex opening_;                  // by volume: one PACK_OPEN at a time
  std::map<uint64_t, OpenPack> packs_;  // by volume id
};

}  // namespace keelfs::client
