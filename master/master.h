// Master: the metadata server. Requests enter here: client_service.cpp serves clients and
// admins (the namespace through master/ops/, with client_sessions.cpp, data_service.cpp
// and admin.cpp), cs_service.cpp serves chunkservers (registration, chunk reports,
// heartbeats) and calls them (versions, deletes); healer.cpp keeps chunks at their goal.
//
// Threading: everything runs on one io_context thread, RocksDB reads and writes included;
// only the WAL sync runs on the store's syncer thread (MetaStore::durable()).
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>

#include "common/async.h"
#include "common/rpc.h"
#include "master/locks.h"
#include "master/namespace.h"
#include "master/op_memory.h"
#include "master/region_networks.h"
#include "master/chunks/heal_queue.h"
#include "master/chunks/range_locks.h"
#include "master/chunks/registry.h"
#include "master/sessions.h"
#include "master/store.h"
#include "master/watches.h"

namespace keelfs::master {

struct MasterConfig {
  std::string data_dir;
  std::string listen = "127.0.0.1:9520";     // clients and admins
  std::string cs_listen = "127.0.0.1:9521";  // chunkservers
  std::string cluster_secret;
  // The networks of each region (--region-network): when given, they, not the hosts,
  // decide which region a mount is in.
  RegionNetworks region_networks;
  int64_t ticket_ttl_ms = 10 * 60 * 1000;
  // A chunkserver silent for this long is declared dead (a hung machine keeps its socket).
  int64_t cs_timeout_ms = 10 * 1000;
  // A session not heard from for this long expires; clients heartbeat at a third of it.
  int64_t session_timeout_ms = 30 * 1000;
  // A chunkserver with no more free space than this gets no new chunks (room for the
  // chunks it already holds to grow, and for heartbeats that lag behind).
  uint64_t cs_reserve_bytes = 256ull << 20;
  // Healing: how often the planner retries chunks that had to wait (busy servers, failed
  // copies, writers), and how many copies may flow into and out of one chunkserver at a time.
  int64_t heal_interval_ms = 1000;
  int replications_per_cs = 2;
  // The sweep behind the healer's events reads at most this many chunk records a second,
  // and starts a new round no sooner than sweep_every_ms after the last one began.
  int64_t sweep_chunks_per_s = 20000;
  int64_t sweep_every_ms = 60 * 1000;
  // Compaction (docs/small-files.md): a sealed pack whose live bytes are below this
  // fraction of its length is rewritten (0: never), copying at most this many bytes a second.
  double compact_below = 0.5;
  uint64_t compact_bytes_per_s = 64ull << 20;
  // RocksDB's block cache (memtables included), in MiB.
  size_t cache_mb = MetaStore::kDefaultCacheMb;
  // Changes named by a client (OpId) are remembered until the client says they were
  // answered, or for this long after the client was last heard from.
  int64_t op_memory_ms = 10 * 60 * 1000;
  // Testing only: the master exits, as kill -9 would, right after it committed a change
  // of this message type and before it answers (0: never); once per data directory (a
  // file there remembers it). Proves that a retried change is applied once.
  uint16_t crash_after_commit = 0;
  // Where this boot of the machine is named (durability_epoch_). Tests point it at a file
  // they change to play a power loss.
  std::string boot_id_file = "/proc/sys/kernel/random/boot_id";
};

class Master {
 public:
  Master(asio::io_context& io, MasterConfig config);
  ~Master();
  // Opens the store and starts listening. Returns the bound (client, chunkserver) ports.
  Result<std::pair<uint16_t, uint16_t>> start();
  void stop();

 private:
  // ---- client_service.cpp: where client requests enter (handle_client), then the answer
  awaitable<Reply> serve_client(ConnectionPtr conn, Frame frame);
  awaitable<Reply> handle_client(ConnectionPtr conn, Frame frame);

  // ---- client_sessions.cpp: mounts, sessions, admin logins, directory watches
  awaitable<Reply> mount(const ConnectionPtr& conn, const pb::MountReq& req);
  // The session through which `conn` may touch `inode`: NoSession when the inode's volume
  // is not mounted on this connection (a client reaches only the volumes it mounted).
  Result<uint64_t> session_for(const ConnectionPtr& conn, uint64_t inode);
  // Both inodes through one session; CrossDevice when they are in different volumes.
  Result<uint64_t> session_for(const ConnectionPtr& conn, uint64_t inode, uint64_t other);
  // Ends a session: its locks and open files are released. `why` goes to the log.
  void end_session(uint64_t session, const std::string& why);
  pb::SessionInfo session_info(const Session& s, int64_t now_ms) const;
  // PermissionDenied unless the connection logged in as admin (changes to volumes and
  // chunkservers need the cluster secret).
  Status check_admin(const ConnectionPtr& conn) const;
  // PermissionDenied unless the connection logged in as admin or with the monitoring key
  // (monitor_key(), common/auth.h): what only reads (HEALTH, FSCK, listings).
  Status check_reader(const ConnectionPtr& conn) const;
  void client_closed(ConnectionPtr conn);
  // `r` once the other clients watching the changed directories heard of it (if it is OK).
  awaitable<Reply> after_change(const ConnectionPtr& changer, Reply r, uint64_t dir, uint64_t other_dir = 0);

  // ---- data_service.cpp: chunks of files for readers and writers, truncates, statfs
  awaitable<Reply> chunk_for_write(uint64_t session, const pb::ChunkForWriteReq& req);
  awaitable<Reply> chunk_locate(uint64_t session, const pb::ChunkLocateReq& req);
  awaitable<Result<pb::Attr>> setattr(const pb::SetattrReq& req);
  // Makes the pending cut of the file's last chunk (ChunkRecord.pending_cut) on its
  // chunkservers, if there is one; finish_cut() the one of chunk `index`.
  // With `new_end`: only when the file is about to grow past its end up to new_end.
  awaitable<Status> finish_cut_at_end(uint64_t ino, uint64_t new_end = UINT64_MAX);
  awaitable<Status> finish_cut(uint64_t ino, uint64_t index);
  Reply statfs(const pb::StatfsReq& req);
  pb::ChunkLocateResp open_reply(uint64_t session, const pb::Attr& attr);

  // The chunk's live copies and a ticket for them, bound to `session` (0: the master's own).
  void fill_replicas(pb::ChunkInfo* info, uint32_t rights, uint64_t session);

  // ---- admin.cpp: listings, HEALTH, FSCK, drain, volume removal
  Reply session_list(const pb::SessionListReq& req);
  awaitable<Reply> volume_remove(const pb::VolumeRemoveReq& req);
  awaitable<void> remove_tree(TreeRemoval removal);
  Reply cs_list();
  awaitable<Reply> cs_drain(const pb::CsDrainReq& req);
  awaitable<Reply> health();
  awaitable<Reply> fsck(const pb::FsckReq& req);
  // Namespace::walk() in slices: gives the thread back between pages of names.
  awaitable<Status> walk_sliced(uint64_t root, Slicer& slicer, const WalkFn& fn);
  // Chunk records per slice of a scan (HEALTH).
  static constexpr size_t kScanSlice = 1024;
  // Names of the files the missing chunks belong to (health).
  awaitable<void> name_missing_chunks(pb::HealthResp* resp, Slicer& slicer);
  // Waits until every change so far is durable, then answers `reply`: for SYNC, admin
  // changes and the chunkserver side. Namespace answers do not wait (docs/decisions.md).
  awaitable<Reply> durable(Reply reply);

  // ---- healer.cpp: events queue chunks (queue_heal), the planner copies or trims them
  void queue_heal(uint64_t chunk_id, HealQueue::Urgency urgency);
  void wake_healer();
  awaitable<void> heal_loop();
  void requeue_waiting();
  awaitable<void> plan_heals();
  bool copy_slots_free();
  // Copies the chunk or trims its extra copies as needed; an urgency when it must wait for
  // busy servers (to be queued again), nullopt when there is nothing (more) to do now.
  std::optional<HealQueue::Urgency> look_at(uint64_t chunk_id);
  awaitable<void> sweep_loop();
  // A chunkserver registered: when the healer let chunks be for want of a server since the
  // last sweep round, a new round starts now rather than after sweep_every_ms.
  void sweep_soon();
  awaitable<void> copies_lost(LocationTable::Holder incarnation);
  awaitable<void> drain_scan(uint64_t cs_id);
  // Chunks that still need the draining server's copy (0 when it is not draining).
  uint64_t drain_left(const ChunkServer& cs) const;
  void finish_pending_cuts();
  awaitable<void> finish_pending_cut(uint64_t chunk_id, uint64_t ino, uint64_t index);
  awaitable<void> heal_chunk(uint64_t chunk_id, uint64_t source_id, uint64_t target_id);
  awaitable<Status> copy_chunk(uint64_t chunk_id, uint64_t source_id, uint64_t target_id);

  // ---- cs_service.cpp
  awaitable<Reply> serve_chunkserver(ConnectionPtr conn, Frame frame);
  // A heartbeat's answer: the sessions whose tickets chunkservers must refuse.
  pb::CsHeartbeatResp ended_sessions_reply();
  void chunkserver_closed(ConnectionPtr conn, const Status& reason);
  // Declares dead every chunkserver whose heartbeats stopped; runs until stop().
  awaitable<void> liveness_loop();
  awaitable<void> check_reported_chunks(ChunkServer& cs, const google::protobuf::RepeatedPtrField<pb::ChunkReport>& chunks);
  // Tells every chunkserver holding a freed chunk to delete it (in the background).
  void delete_chunks(const std::vector<FreedChunk>& freed);
  void delete_copy(ChunkServer& cs, uint64_t chunk_id, uint32_t version);
  awaitable<void> send_deletions();
  // Moves the chunk to new_version on its live copies (cutting it when `truncate`, or when
  // a cut is pending); returns the servers that did, in order. Records the version (and
  // length) in the namespace.
  awaitable<Result<std::vector<ChunkServer*>>> bump_version(const ChunkRef& chunk, std::optional<uint64_t> truncate);
  // Creates a new chunk on the chosen servers; returns those that did.
  awaitable<std::vector<ChunkServer*>> create_on(uint64_t chunk_id, const std::vector<ChunkServer*>& servers);

  // ---- spares.cpp: new chunks, and those created ahead of need per (region, goal)
  struct NewChunk {
    uint64_t chunk_id = 0;
    std::vector<uint64_t> servers;  // chunkserver ids holding it at version 1
  };
  using SpareKey = std::pair<std::string, uint32_t>;  // region, goal
  // Places a chunk of (region, goal), writes its id and creates it on the chosen servers.
  // Its id stays in unfiled_ids_ until a file takes it. NoSpace when no server takes new
  // chunks, Unavailable when none could create it.
  awaitable<Result<NewChunk>> new_chunk(SpareKey key);
  // A spare whose servers all still take new chunks, or nullopt; refills the stock when low.
  std::optional<NewChunk> take_spare(const std::string& region, uint32_t goal);
  bool fit_for_new_chunk(const NewChunk& s);
  void drop_spare(const NewChunk& s);
  uint64_t spares_on(uint64_t cs_id) const;
  awaitable<void> refill_spares(SpareKey key);

  // ---- pack_service.cpp: packed small files (docs/small-files.md)
  // PACK_OPEN: a new pack chunk of the file's volume that `session` alone appends to (the
  // one it had is sealed).
  awaitable<Reply> pack_open(uint64_t session, const pb::PackOpenReq& req);
  // PACK_COMMIT: the file's whole content is the extent the session wrote in its pack.
  Result<pb::Attr> pack_commit(uint64_t session, const pb::PackCommitReq& req);
  // The session appends no more (it asked for another pack, or ended): its pack is sealed.
  void seal_session_pack(uint64_t session);
  void seal_pack_of_any_session(uint64_t chunk_id);  // when it is some session's open pack
  // CHUNK_FOR_WRITE into a packed file: a chunk of its own for it, with the packed extent
  // to copy there first (ChunkForWriteResp.packed).
  awaitable<Reply> unpack_for_write(uint64_t session, const pb::Attr& attr, const pb::FileExtent& packed);
  // UNPACK_END: the file moves into its own chunk.
  Status unpack_end(const pb::UnpackEndReq& req);
  // A new chunk of the volume's region on `goal` servers (a spare when there is one),
  // for the caller to file in the namespace.
  awaitable<Result<NewChunk>> chunk_for(const pb::VolumeRecord& vol, uint32_t goal);
  // Its servers are its locations and its writer holds it; `info` gets its chain and ticket.
  void hand_out(const NewChunk& made, pb::ChunkInfo* info, uint64_t session);
  // A new chunk no record took: its copies go.
  void drop_copies(const NewChunk& made);

  // ---- compactor.cpp: packs whose dead bytes are worth reclaiming are rewritten
  // Queues the pack when it is sealed and its live fraction fell below compact_below.
  void consider_compaction(uint64_t chunk_id, const pb::ChunkRecord& rec);
  awaitable<void> compact_loop();
  // Copies the live files of the pack into a new pack and moves them there; the old pack
  // is freed with its last file.
  awaitable<Status> compact_pack(uint64_t pack_id);


  asio::io_context& io_;
  MasterConfig config_;
  std::unique_ptr<MetaStore> store_;
  std::unique_ptr<Namespace> ns_;
  Registry registry_;
  std::unique_ptr<RpcServer> client_server_;
  std::unique_ptr<RpcServer> cs_server_;
  LockTable locks_;         // flock and fcntl locks of the clients' sessions
  // Session ids grow with the clock across restarts: every id below this one was made by an
  // earlier run of the master, and has ended.
  const uint64_t first_session_;
  // MetaStore::durability_epoch: new when this start may have lost changes an earlier one
  // answered (MountResp.master_incarnation).
  uint64_t durability_epoch_ = 0;
  SessionTable sessions_;
  // Sessions that ended less than a ticket's lifetime ago, with when that is over: their
  // tickets are refused by the chunkservers (told with every heartbeat).
  std::map<uint64_t, int64_t> ended_sessions_;
  std::unique_ptr<OpMemory> op_memory_;  // which named changes to keep remembering
  static constexpr int64_t kOpPruneEveryMs = 2000;
  int64_t last_op_prune_ms_ = 0;
  DirWatches dir_watches_;  // clients' directory snapshots to tell of other clients' changes
  std::set<uint64_t> admin_conns_;  // client connections that proved the cluster secret (ADMIN_LOGIN)
  std::set<uint64_t> monitor_conns_;  // ... that proved the monitoring key: they may only read
  uint64_t next_conn_id_ = 1;  // Connection::tag of client connections
  RangeLocks chunk_locks_;  // set-ups of the same bytes of a chunk take turns
  HealQueue heal_queue_;
  asio::steady_timer heal_timer_{io_};  // the planner's sleep; wake_healer() cuts it short
  // The sweep's wait between rounds. A chunk the healer let be because no server could
  // take a copy (lacked_servers_) is found again by the next round, which a chunkserver
  // registering starts at once (sweep_again_).
  asio::steady_timer sweep_timer_{io_};
  bool lacked_servers_ = false;
  bool sweep_again_ = false;
  bool heal_woken_ = false;
  std::set<uint64_t> healing_;  // chunks being copied
  std::set<uint64_t> writer_held_;  // off goal, left to their writers until they are done
  // Chunks whose one copy left was reported damaged: no copy can be made of it (the source
  // refuses to send a block that fails its CRC), so the healer leaves them alone until a
  // second copy turns up or the chunk goes. In memory: a restart learns them again.
  std::set<uint64_t> damaged_last_copy_;
  std::vector<uint64_t> heal_retry_;  // copies that failed, retried at the next tick
  std::chrono::steady_clock::time_point last_retry_;
  uint64_t sweeps_done_ = 0;
  // Draining servers: the chunks that still need their copy; drain_scan fills it.
  std::map<uint64_t, std::unordered_set<uint64_t>> drain_needs_;
  std::set<uint64_t> drain_scanning_;
  std::set<uint64_t> cutting_;  // chunks whose pending cut finish_pending_cuts() is making
  // Chunks handed out by CHUNK_FOR_WRITE and not yet ended by WRITE_END: chunk id -> when.
  std::map<uint64_t, std::chrono::steady_clock::time_point> writing_;
  std::set<uint64_t> draining_;  // chunkservers being drained (persisted)
  uint64_t stale_deleted_ = 0;     // since start, for health
  uint64_t damaged_reported_ = 0;
  std::map<uint64_t, int> copies_out_, copies_in_;  // cs id -> copies in flight
  std::map<uint64_t, pb::CsDeleteChunkReq> deletions_;  // cs id -> copies to delete soon
  bool deletions_due_ = false;
  std::chrono::steady_clock::time_point last_name_change_;  // deletions wait while names keep changing
  std::map<SpareKey, std::deque<NewChunk>> spares_;
  std::set<SpareKey> refilling_;
  std::map<uint64_t, uint64_t> open_packs_;  // session -> the pack it appends to
  std::set<uint64_t> compact_queue_;         // packs to rewrite
  uint64_t packs_compacted_ = 0;
  std::unique_ptr<ConnectionCache> data_conns_;  // to chunkservers' data ports, as a client (compaction)
  std::set<uint64_t> unfiled_ids_;  // created, no file holds them yet (spares): no orphans in a chunk report
  bool stopping_ = false;
};

}  // namespace keelfs::master
