// Namespace: every metadata operation of the master, one per file under master/ops/.
// Each mutation reads what it needs, builds one Batch and commits it; the change is
// visible and in the WAL at once, and on disk after MetaStore::durable().
//
// All or nothing: an operation that fails changes nothing, neither in RocksDB nor in the
// volumes' usage, and frees no chunk. Chunks an operation frees reach its `freed`
// argument only once its batch has committed (commit() below).
//
// Operations never talk to chunkservers: where a change needs them (a new chunk, a version
// bump, a truncated tail chunk, chunks to delete), the service does that part and calls in
// here before or after, as the operation's comment says.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "keelfs.pb.h"
#include "master/store.h"

namespace keelfs::master {

constexpr uint64_t kChunkSize = 64ull << 20;
constexpr size_t kMaxNameLength = 255;
constexpr uint32_t kMaxGoal = 9;
constexpr uint32_t kMaxLinks = 65000;
// Orphans (files unlinked while open) are listed as entries of this directory number,
// which no inode has, named by their inode number: a restart finds and frees them.
constexpr uint64_t kOrphanDir = 0;

// Files below this many bytes are packed unless the volume says otherwise
// (docs/small-files.md, where the figure is measured).
constexpr uint32_t kDefaultPackBelow = 64 * 1024;
constexpr uint32_t kMaxPackBelow = 1024 * 1024;
// The session a pack being written by compaction is open for: no client session has this
// id (theirs start from the clock, Master::Master).
constexpr uint64_t kCompactorSession = 1;

// Chunkservers and volumes that name no region are in this one.
inline constexpr const char* kDefaultRegion = "default";

// The size below which the volume's files are packed (VolumeRecord.pack_below).
uint32_t pack_below(const pb::VolumeRecord& vol);

// A file packed in a pack: its bytes [0, length) are at `offset` of the pack.
struct PackedFile {
  uint64_t inode = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// A packed file's bytes copied by compaction from one pack to another.
struct PackMove {
  uint64_t inode = 0;
  uint64_t from_offset = 0;
  uint64_t to_offset = 0;
  uint64_t length = 0;  // bytes copied
};

struct ChunkRef {
  uint64_t chunk_id = 0;
  uint32_t version = 0;
  uint64_t length = 0;
  uint32_t goal = 0;
  std::optional<uint64_t> pending_cut;  // see ChunkRecord.pending_cut
};

// What a walk over a tree of names calls for each name: its path (starting with '/'), its
// directory, the entry. A non-OK status stops the walk and is returned by it.
using WalkFn = std::function<Status(const std::string& path, uint64_t parent, const Dentry& entry)>;

// A depth-first walk over the names below a directory, one page of one directory at a
// time, so that its caller may give the thread away between pages (Master::walk_sliced)
// or not (Namespace::walk). Each name is visited once; the order is unspecified.
class TreeWalk {
 public:
  TreeWalk(MetaStore& store, uint64_t root) : store_(&store), dirs_{{root, "", ""}} {}
  bool done() const { return dirs_.empty(); }
  // Calls fn for up to `max` names of the next directory; stops at fn's first error.
  Status next_page(size_t max, const WalkFn& fn);

 private:
  struct Dir {
    uint64_t ino;
    std::string path;
    std::string after;  // names up to this one were visited
  };
  MetaStore* store_;
  std::vector<Dir> dirs_;
};

// A removed volume's tree being deleted (Namespace::remove_tree_slice).
struct TreeRemoval {
  TreeRemoval(MetaStore& store, uint64_t volume_id, uint64_t root) : volume_id(volume_id), root(root), walk(store, root) {}
  uint64_t volume_id;
  uint64_t root;
  TreeWalk walk;  // files are deleted as it finds them
  std::vector<std::pair<uint64_t, Dentry>> dirs;  // (parent, entry) in the order found: deleted last to first
};

class Namespace {
 public:
  // Loads the volume records into memory.
  explicit Namespace(MetaStore& store) : store_(store) { load_volumes(); }

  // ---- volumes (ops/volume.cpp); the records are cached in memory.
  // The request carries the keys of the volume's secret, made by the creator (common/auth.h).
  Result<pb::VolumeInfo> create_volume(const pb::VolumeCreateReq& req);
  Result<pb::VolumeRecord> find_volume(const std::string& name);
  Result<pb::VolumeRecord> volume_by_id(uint64_t volume_id);
  std::vector<pb::VolumeInfo> list_volumes();
  pb::VolumeInfo volume_info(const pb::VolumeRecord& rec);
  // A new size or inode limit; never below what the volume already holds.
  Result<pb::VolumeInfo> resize_volume(const pb::VolumeResizeReq& req);
  // Removes the volume in one small commit: its name, record and usage go, and a marker
  // (MetaStore::list_removing) remembers its tree, which remove_tree_slice() then deletes
  // in the background. Returns the removal to carry on with.
  // REQUIRES: no session is attached (the service checks).
  Result<TreeRemoval> remove_volume(const std::string& name);
  // Deletes up to `max` names of a removed volume's tree in one commit (the chunks freed go
  // to `freed`): files first, then directories, children before their parents, so that all
  // that is left stays reachable from the root and a removal cut short by a restart goes
  // on from the marker. Returns true once the whole tree and the marker are gone.
  Result<bool> remove_tree_slice(TreeRemoval& removal, size_t max, std::vector<FreedChunk>* freed);
  // QuotaExceeded when growing a file from old_size to new_size would take the volume past
  // its size, or when it has no inode left.
  Status check_bytes(uint64_t volume_id, uint64_t old_size, uint64_t new_size);
  Status check_inodes(uint64_t volume_id);

  // ---- lookups (ops/lookup.cpp)
  Result<pb::Attr> lookup(uint64_t parent, const std::string& name);
  Result<pb::Attr> getattr(uint64_t ino);
  // The volume an inode belongs to. Cached: an inode never changes volume, and inode
  // numbers are never reused (so a deleted inode's entry misleads no one).
  Result<uint64_t> volume_of(uint64_t ino);
  Result<std::string> readlink(uint64_t ino);
  Result<pb::ReaddirResp> readdir(const pb::ReaddirReq& req);

  // Changes that carry an OpId (mkdir, create, symlink, link, unlink, rmdir, rename,
  // setxattr, removexattr, append) are
  // remembered with their batch; a retry of one that committed is answered from that
  // record (the same inode, no second change) instead of failing with EEXIST or ENOENT.

  // ---- creation (ops/create.cpp)
  Result<pb::Attr> mkdir(const pb::MkdirReq& req);
  // An existing regular file is returned as is (or truncated with req.truncate, its chunks
  // added to `freed`) unless req.exclusive. `created` (when given) says whether the file is new.
  Result<pb::Attr> create(const pb::CreateReq& req, std::vector<FreedChunk>* freed, bool* created = nullptr);
  Result<pb::Attr> symlink(const pb::SymlinkReq& req);
  Result<pb::Attr> link(const pb::LinkReq& req);

  // ---- removal (ops/remove.cpp)
  Status unlink(const pb::UnlinkReq& req, std::vector<FreedChunk>* freed);
  Status rmdir(const pb::UnlinkReq& req);

  // ---- rename (ops/rename.cpp)
  Status rename(const pb::RenameReq& req, std::vector<FreedChunk>* freed);

  // ---- attributes (ops/setattr.cpp)
  // With SET_SIZE: chunks wholly past the new size are dropped (added to `freed`), and a
  // chunk the new size cuts in the middle is marked for its cut (ChunkRecord.pending_cut),
  // which the service then makes on the chunkservers. The namespace change comes first, so
  // a refused truncate, or a master that dies half-way, never destroys bytes the file
  // still references.
  // REQUIRES (growing): no cut is pending at the file's current end (see cut_pending_before()).
  Result<pb::Attr> setattr(const pb::SetattrReq& req, std::vector<FreedChunk>* freed);

  // ---- open files (ops/open.cpp)
  // A session (one client connection) holds a file open from open() to release(). When a
  // file loses its last name while some session holds it, it stays as an orphan (nlink 0,
  // no name) that can still be read, written and stat'ed, and goes with the last release,
  // as POSIX wants of unlink and of rename over a file. Who holds what is kept in memory:
  // sessions do not outlive the master.
  Result<pb::Attr> open(uint64_t session, uint64_t ino);
  // After a create that opened the file. REQUIRES: the inode exists.
  void hold_open(uint64_t session, uint64_t ino);
  // One open() of the session ends; an orphan nobody holds any more is freed.
  Status release(uint64_t session, uint64_t ino, std::vector<FreedChunk>* freed);
  // The session ended (unmount, crash, lost connection): every open of it ends.
  Status release_session(uint64_t session, std::vector<FreedChunk>* freed);
  // At start-up no session holds anything: frees the orphans a previous run left.
  Status drop_orphans(std::vector<FreedChunk>* freed);
  bool is_open(uint64_t ino) const { return open_count_.count(ino) != 0; }

  // ---- xattrs (ops/xattr.cpp)
  Status setxattr(const pb::SetxattrReq& req);
  Result<std::string> getxattr(uint64_t ino, const std::string& name);
  Result<std::vector<std::string>> listxattr(uint64_t ino);
  Status removexattr(uint64_t ino, const std::string& name, const pb::OpId& op = {});

  // ---- file data (ops/data.cpp)
  // The chunk holding bytes [index * 64 MiB, ...) of the file, if any.
  Result<std::optional<ChunkRef>> chunk_at(uint64_t ino, uint64_t index);
  // Records a new chunk (version 1) at `index` of the file. REQUIRES: none there yet.
  Result<ChunkRef> add_chunk(uint64_t ino, uint64_t index, uint64_t chunk_id);
  // Records that the chunk's replicas now carry `version` (and, when truncated, `length`:
  // a pending cut is then done).
  Status set_chunk_version(uint64_t chunk_id, uint32_t version, std::optional<uint64_t> length);
  // O_APPEND: the file grows by `length` at once; returns where those bytes go. Appends
  // from several clients thus never overlap.
  // A retry of a reservation that committed (`op`) gets the same offset again.
  Result<uint64_t> reserve_append(uint64_t ino, uint64_t length, const pb::OpId& op = {});
  // After a write: the file is at least file_size long, the chunk at least chunk_length.
  // *chunk_growth (when given) receives how many bytes the chunk grew by.
  Result<pb::Attr> write_end(const pb::WriteEndReq& req, uint64_t* chunk_growth = nullptr);
  // Attributes and the chunks of [first, first + count) (count 0 = all), without replicas.
  Result<pb::ChunkLocateResp> locate(uint64_t ino, uint64_t first, uint64_t count);
  // The index of the file's last, partly used chunk when a cut of it is pending and the
  // file would grow past its end to `new_end`. Before a file grows, that cut is made: the
  // bytes past it must read as zeros.
  Result<std::optional<uint64_t>> cut_pending_before(uint64_t ino, uint64_t new_end);
  // Every (chunk id, version) the namespace knows, for checking chunkserver reports.
  Result<std::optional<ChunkRef>> chunk(uint64_t chunk_id);

  // ---- packed small files (ops/pack.cpp); docs/small-files.md
  // Records a new pack chunk (version 1, made on its servers) that `session` appends to.
  Status add_pack(uint64_t chunk_id, uint64_t volume_id, uint32_t goal, uint64_t session);
  // No session appends to the pack any more: freed when no file uses it.
  Status seal_pack(uint64_t chunk_id, std::vector<FreedChunk>* freed);
  // PACK_COMMIT: the file's whole content becomes the extent; its old data is let go. The
  // pack must be open for `session`. *pack_growth: how far the pack's length grew.
  Result<pb::Attr> pack_commit(const pb::PackCommitReq& req, uint64_t session, std::vector<FreedChunk>* freed,
                               uint64_t* pack_growth);
  // The file's packed extent, when its data is packed.
  Result<std::optional<pb::FileExtent>> packed_extent(uint64_t ino);
  // A packed file starts moving into a chunk of its own (made on its servers): the file
  // owns the chunk but still reads from its pack until unpack_end(). Frees the chunk of
  // an earlier move that did not end.
  Status begin_unpack(uint64_t ino, uint64_t chunk_id, uint32_t goal, std::vector<FreedChunk>* freed);
  // UNPACK_END: the packed bytes were copied; the file now uses its own chunk.
  Status unpack_end(const pb::UnpackEndReq& req, std::vector<FreedChunk>* freed);
  // The files packed in the pack with inode numbers above `after`, at most `max`, where
  // their bytes are now.
  Result<std::vector<PackedFile>> pack_files(uint64_t pack_id, uint64_t after, size_t max, bool* more);
  // Compaction: the files' bytes were copied from pack `from` to pack `to`; each file whose
  // bytes are still where they were copied from now uses the copy, in one commit. `from`
  // is freed when no file is left in it (and it is sealed).
  Status move_packed(uint64_t from, uint64_t to, const std::vector<PackMove>& moves, std::vector<FreedChunk>* freed);

  // ---- per-directory figures (accounting.cpp; docs/small-files.md, "Accounting")
  // DU: a file's figures, or those of everything below a directory (one read, no walk).
  Result<pb::DuResp> du(uint64_t ino);
  // What `rec` adds to the figures of the directory counting it: a file its own, a
  // directory itself and everything below it.
  Result<DirDelta> figures_of(const pb::InodeRecord& rec, const Batch& batch);
  // The directory whose figures count `rec` (0: none: a volume's root, an orphan).
  static uint64_t counted_in(const pb::InodeRecord& rec);
  // Once per store, at start-up: a store written before directories had figures gets them,
  // counted from a walk of every volume (each file's counting directory set on the way).
  // A no-op afterwards. Runs before any client is served.
  Status count_dir_figures();
  // Once per store, at start-up: volumes written before logins were challenge–response
  // kept SHA-256(salt || secret); their keys are made from it and the hash is cleared.
  Status convert_volume_secrets();

  MetaStore& store() { return store_; }

  // Calls fn(path, parent, entry) for every name below directory `root`, depth first
  // (paths start with '/'); stops at the first error fn returns. All in one go; see
  // TreeWalk for a walk that pauses between pages.
  Status walk(uint64_t root, const WalkFn& fn);

 private:
  void load_volumes();
  // helpers (namespace.cpp)
  Result<pb::InodeRecord> dir_inode(uint64_t ino);
  pb::InodeRecord new_inode(pb::FileType type, uint32_t mode, uint32_t uid, uint32_t gid, const pb::InodeRecord& parent);
  // Drops a file's data from chunk index `first_index` on: extents and chunk records, the
  // chunks freed with the batch.
  Status drop_data_from(const pb::InodeRecord& rec, uint64_t first_index, Batch& batch);
  // The chunk's record as `batch` left it so far (see Batch::chunk_change).
  Result<std::optional<pb::ChunkRecord>> chunk_in(const Batch& batch, uint64_t chunk_id);
  // The file lets go of the extent at `index`: the chunk loses an owner (a pack, an extent
  // of its count) and is freed when that was its last. The figures of directory `dir`
  // lose what the extent held (0: no directory's, as when compaction moves it).
  Status let_go(uint64_t ino, uint64_t index, const pb::FileExtent& extent, uint64_t dir, Batch& batch);
  // Frees the chunk of an unfinished unpack (InodeRecord.unpack_chunk), if any.
  Status drop_unpack_chunk(pb::InodeRecord& rec, Batch& batch);
  // A pack's record changes from `before` to `after` (nullopt: freed): the volume's pack
  // and packed bytes follow (UsageRecord).
  static void count_pack(Batch& batch, const pb::ChunkRecord& before, const std::optional<pb::ChunkRecord>& after);
  // The chunk's record goes and its copies are deleted once the batch commits.
  void free_chunk(uint64_t chunk_id, const pb::ChunkRecord& chunk, Batch& batch);
  // The name of `rec` in directory `dir` went: nlink - 1; deletes the inode and its data
  // when no link is left, unless a session holds the file open: then it becomes an orphan
  // (see open()), counted in no directory.
  Status drop_link(pb::InodeRecord& rec, uint64_t dir, Batch& batch);
  // Deletes the inode with its data and xattrs, and takes it out of the volume's usage:
  // the last step of unlink, rmdir, rename over a name, releasing an orphan and removing
  // a volume. REQUIRES: a directory is empty.
  Status drop_inode(const pb::InodeRecord& rec, Batch& batch);
  // `count` opens of the session end.
  Status release_opens(uint64_t session, uint64_t ino, uint32_t count, std::vector<FreedChunk>* freed);
  // Frees the inode if it is an orphan.
  Status drop_if_orphan(uint64_t ino, std::vector<FreedChunk>* freed);
  // The file's size moves: its volume's logical bytes and its directories' follow.
  void account_size(const pb::InodeRecord& rec, uint64_t old_size, uint64_t new_size, Batch& batch);
  // The figures of `rec` leave directory `from` for `to` (0: none).
  Status move_figures(const pb::InodeRecord& rec, uint64_t from, uint64_t to, Batch& batch);
  // Keeping a file's figures with one of its names (InodeRecord.link_parents): a new name
  // in `dir`; the name in `dir` goes while others stay; a name moves from `from` to `to`.
  static void note_link(pb::InodeRecord& rec, uint64_t dir);
  Status note_unlink(pb::InodeRecord& rec, uint64_t dir, Batch& batch);
  Status note_move(pb::InodeRecord& rec, uint64_t from, uint64_t to, Batch& batch);
  // When `op` is a retry of a change that committed: what it did.
  Result<std::optional<pb::OpRecord>> replayed(const pb::OpId& op);
  // Commits the batch; then, and only then, hands the chunks it freed to `freed`.
  Status commit(Batch& batch, std::vector<FreedChunk>* freed = nullptr);

  MetaStore& store_;
  std::map<uint64_t, pb::VolumeRecord> volumes_;  // by id
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> opens_;  // (session, inode) -> open count
  std::unordered_map<uint64_t, uint32_t> open_count_;        // inode -> opens of all sessions
  std::unordered_map<uint64_t, uint64_t> volume_of_;         // inode -> volume id (volume_of)
};

// Shared by ops.
Status check_name(const std::string& name);
// What Batch::put_op() remembers of a change.
pb::OpRecord op_record(pb::MsgType type, uint64_t inode, bool created = false);
void touch_times(pb::Attr* attr, bool mtime, bool ctime);
bool is_dir(const pb::Attr& attr);

}  // namespace keelfs::master
