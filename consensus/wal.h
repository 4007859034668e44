/* The raft log of a lane (a loop thread): one write-ahead log shared by
 * every group of the lane, so that a loop turn costs one write and one
 * fdatasync for all of its groups' entries, votes and truncations. raft_uv
 * kept a log per group replica and synced each on its own: 24 logs on one
 * disk for 3 nodes of 8 shards, each waiting for the others' flushes
 * (README, Benchmarks). Private to consensus/ (and its tests).
 *
 * Files in the lane's folder:
 *   wal-<seq, 16 hex>    segments, written in order; a new one once the
 *                        current passes WAL_SEGMENT_BYTES, the oldest
 *                        removed once nothing in it is needed
 *   snap-<shard, 4 hex>-<index, 16 hex>
 *                        a group's latest snapshot (snapshots are whole
 *                        shard states: files of their own, not records)
 *
 * A segment: [u64 WAL_MAGIC][u64 seq][u32 lane][u32 0][u64 0], then
 * records, each [u32 crc32c of what follows it][u32 len][u8 type][u8 0]
 * [u16 0][u32 shard][payload][zeros to 8 bytes], len counting from the
 * type byte through the padding. Payloads, little-endian:
 *   ENTRIES   [u64 first index][u32 n][u32 0], n x [u64 term][u16 type]
 *             [u16 0][u32 len], then each entry's data padded to 8
 *   TRUNCATE  [u64 index]      entries from index on are gone
 *   VOTE      [u64 term][u64 voted for]
 *   COMPACT   [u64 index]      entries before index are not needed (a
 *                              snapshot covers them)
 *   RESET     [u64 index]      a snapshot at index was installed: no
 *                              entries; the next is index + 1
 * Recovery replays the records in order: an ENTRIES record puts its
 * entries at their indexes (a later one of the same index replaces it,
 * which is how entries are copied forward out of an old segment), only
 * TRUNCATE and RESET remove. In the newest segment the first record that
 * is cut short or fails its checksum ends the log (a torn write: it was
 * never acknowledged); anywhere else it is corruption, and the node
 * refuses to start rather than lose acknowledged entries.
 *
 * Durability: records wait in memory until cons_wal_sync (each loop turn,
 * and at once for votes) writes them and calls fdatasync; append
 * callbacks fire only then. A failed write or sync stops the process
 * (fail-stop: raft 0.15 cannot survive an I/O error in-process, and the
 * other replicas carry on).
 *
 * Thread: the lane's loop thread, but for the snapshot file work, which
 * runs on libuv's thread pool. */
#ifndef MC_CONSENSUS_WAL_H
#define MC_CONSENSUS_WAL_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/base.h"

/* The bytes "MCWAL01" and the version byte 1, read little-endian. */
#define WAL_MAGIC 0x0131304c4157434dull
#define WAL_SEGMENT_BYTES (64u << 20)
#define WAL_SEG_HEAD_BYTES 32u

struct cons_wal;

/* Where a live entry is: its segment, and its data in it. */
struct wal_loc {
    uint64_t term;
    uint64_t seq; /* the segment */
    uint64_t off; /* of the entry's data in it */
    uint32_t len;
    uint16_t type;
};

/* What the log knows of a group. */
struct wal_group {
    bool used;
    uint64_t term, vote;
    uint64_t vote_seq;    /* segment of its latest VOTE record */
    uint64_t first, last; /* live entries [first, last]; none when
                             last == first - 1 */
    uint64_t floor;       /* entries below it are not needed */
    struct wal_loc *locs; /* locs[i - first]; seq 0: missing, which only
                             recovery may see, out of order */
    size_t cap;
};

/* cons_wal_open (consensus.h) replays the log: errors are INTERNAL with
 * the file and offset of a damaged segment in err. */
/* Write and fdatasync what waits, then fire the append callbacks. */
void cons_wal_sync(struct cons_wal *w);
/* True when records or callbacks wait for a sync. */
bool cons_wal_pending(const struct cons_wal *w);

/* A group's view, and its calls (the raft_io of lane_io.c). */
const struct wal_group *wal_group_get(const struct cons_wal *w,
                                      uint32_t shard);
/* Everything raft_io->load returns. A snapshot at or below have_index
 * (what the state machine holds already) comes without its data: a
 * placeholder (wal_placeholder_index) that the state machine's restore
 * checks, so that a restart reads no snapshot file; one above it is read
 * whole. Errors: RAFT_CORRUPT (a gap, a bad snapshot file), RAFT_NOMEM,
 * RAFT_IOERR; errmsg says which. */
int wal_load(struct cons_wal *w, uint32_t shard, uint64_t have_index,
             raft_term *term, raft_id *vote, struct raft_snapshot **snapshot,
             raft_index *start_index, struct raft_entry **entries,
             size_t *n_entries, char *errmsg, size_t errmsg_len);
/* The index a placeholder snapshot buffer stands for, or 0 when buf is a
 * real snapshot. */
uint64_t wal_placeholder_index(const struct raft_buffer *buf);
int wal_bootstrap(struct cons_wal *w, uint32_t shard,
                  const struct raft_configuration *conf);
/* Durable when they return. */
int wal_set_term(struct cons_wal *w, uint32_t shard, raft_term term);
int wal_set_vote(struct cons_wal *w, uint32_t shard, raft_id vote);
/* Entries after the group's last; cb at the next sync. */
int wal_append(struct cons_wal *w, uint32_t shard, struct raft_io_append *req,
               const struct raft_entry *entries, unsigned n,
               raft_io_append_cb cb);
int wal_truncate(struct cons_wal *w, uint32_t shard, raft_index index);
/* Store snapshot in a file (on the thread pool), then, on the loop,
 * compact the group's log to keep `trailing` entries before it (none, and
 * none after it either, for 0: an installed snapshot) and call cb. */
int wal_snapshot_put(struct cons_wal *w, uint32_t shard, unsigned trailing,
                     struct raft_io_snapshot_put *req,
                     const struct raft_snapshot *snapshot,
                     raft_io_snapshot_put_cb cb);
/* Read the group's latest snapshot (on the thread pool). */
int wal_snapshot_get(struct cons_wal *w, uint32_t shard,
                     struct raft_io_snapshot_get *req,
                     raft_io_snapshot_get_cb cb);
/* Fail the group's waiting callbacks (it is closing): cb(status). Work on
 * the thread pool finishes; close_cb fires once none of the group's is
 * left. */
void wal_group_close(struct cons_wal *w, uint32_t shard,
                     void (*close_cb)(void *arg), void *arg);

/* Tests: start a new segment past bytes rather than WAL_SEGMENT_BYTES. */
void wal_set_segment_bytes(struct cons_wal *w, uint64_t bytes);

struct cons_wal_stats {
    uint64_t syncs, bytes, records;
    uint64_t segments, removed, copied; /* entries copied forward */
};
void cons_wal_stats_get(const struct cons_wal *w, struct cons_wal_stats *out);

#endif
