/* shard: the state machine of one shard group and its LMDB store. It knows nothing of raft: consensus/ feeds it committed entries
 * with their index, asks for snapshots and restores them.
 *
 * Storage: one LMDB environment per shard (its own folder), with these
 * sub-databases:
 *   short, mid, long  records of each tier, key = ns '\0' key (see below)
 *   expiry            [u64 BE expires_at][u8 tier][record key] -> ""
 *   dedupe            [u64 BE client_id] -> last seq, stamp and answer
 *   events            the watch event ring (watch.h):
 *                     [u64 BE revision][u16 BE seq] -> event
 *   meta              "applied_index" -> u64
 * A key lives in exactly one tier at a time.
 *
 * LMDB keys are at most 511 bytes. A record key (ns '\0' key) longer than
 * SHARD_DBKEY_INLINE_MAX is stored under its first SHARD_DBKEY_PREFIX bytes
 * followed by an 8-byte hash of the whole key; the full key is kept in the
 * value and compared on every lookup. Listing sorts each run of such keys
 * that share the prefix, so callers always see byte-wise key order.
 *
 *   CLOSED  -> OPEN     [shard_open]
 *   OPEN    -> BROKEN   [an LMDB write fails, or the disk space it
 *                        needs cannot be allocated: every later call
 *                        says UNAVAILABLE until the node restarts]
 *   *       -> CLOSED   [shard_close]
 *
 * Invariants:
 *   (1) applied_index is written in the same LMDB txn as the writes of the
 *       entries it covers.
 *   (2) Only shard_apply and shard_restore write records.
 *   (3) Apply is deterministic: it reads no clock, only the command's stamp.
 *   (4) Every change of a key has its event in the events DB, written in
 *       the txn of the change; every event with a revision above the
 *       ring's compaction point is still there (see the watch ring below).
 *
 * Thread: a shard is used by one thread at a time (its loop thread). */
#ifndef MC_SHARD_H
#define MC_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "proto/proto.h"

/* ---- the store ---- */

#define SHARD_DBKEY_INLINE_MAX 500u
#define SHARD_DBKEY_PREFIX 492u

struct shard;

struct shard_config {
    uint32_t id;
    uint64_t value_bytes_max; /* apply re-checks it: one bad entry must not
                                 wedge a group */
    uint64_t map_bytes;       /* 0 = MC_SHARD_MAP_BYTES */
    uint32_t watch_ring_events; /* 0 = MC_WATCH_RING_EVENTS_DEFAULT; the
                                   same on every replica (apply trims) */
};

/* Open (creating if needed) the store in folder dir.
 * On MC_OK the caller owns *out and releases it with shard_close.
 * Errors: INTERNAL with the LMDB text in err. */
mc_err shard_open(const char *dir, const struct shard_config *cfg,
                  struct shard **out, char *err, size_t err_len);

/* Commit what is pending and close. Safe on NULL. */
void shard_close(struct shard *s);

/* Commit the write txn of this loop turn, if one is open, with the applied
 * index. Unsynced: the raft log is the durability (DEPS-NOTES.md, LMDB).
 * Errors: UNAVAILABLE (the shard is now BROKEN), with the text in err. */
mc_err shard_commit(struct shard *s, char *err, size_t err_len);

/* Ask the OS to write the store to disk (background durability). The one
 * call that may run on another thread while the loop thread uses s; not
 * concurrently with shard_open or shard_close. A failure breaks the shard
 * (written pages may be lost). Errors: UNAVAILABLE. */
mc_err shard_sync(struct shard *s);

/* The outcome of one applied command. */
struct shard_result {
    mc_err code;
    uint64_t version; /* seen: current version on CONFLICT, 0 when missing */
    uint64_t create_rev;
    uint64_t mod_rev;
    bool skipped;     /* index was already in LMDB: nothing was done */
    char message[200];
    /* OP_TXN that ran (code OK): which branch ran and a result per
     * operation; mod_rev is the transaction's revision. NULL otherwise. */
    const Mcpb__TxnResult *txn;
};

/* Apply the framed command entry buf[0..len) committed at raft index. An
 * index at or below the stored applied index is skipped (restart replay).
 * Business outcomes (CONFLICT, NOT_FOUND, TOO_LARGE, INVALID_ARGUMENT for a
 * command that does not decode, ...) go to *out, never to the return value.
 * *out points into s and is valid until the next shard call.
 * Returns MC_OK, or UNAVAILABLE when the entry is not applied: storage
 * failed (the shard is BROKEN), or memory ran out while decoding it (the
 * shard is fine; apply the same entry again later). Running out of memory
 * is never answered as INVALID_ARGUMENT: other replicas would apply the
 * entry and this one would not. */
mc_err shard_apply(struct shard *s, uint64_t index, const void *buf,
                   size_t len, const struct shard_result **out);

/* A record as read. Every pointer is borrowed from LMDB and valid until the
 * next shard call on s. */
struct shard_record {
    const uint8_t *key; /* without the namespace */
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    uint64_t version;
    uint64_t create_rev;
    uint64_t mod_rev;
    int64_t expires_at; /* ms since the epoch; 0 = never */
    int64_t updated_at;
    uint8_t tier;       /* MC_TIER_SHORT..MC_TIER_LONG */
};

/* Read a key as of the last applied entry (the open write txn included). A
 * record with expires_at <= now_ms is reported as NOT_FOUND.
 * Errors: NOT_FOUND, UNAVAILABLE (BROKEN or LMDB read failure). */
mc_err shard_get(struct shard *s, int64_t now_ms, const uint8_t *ns,
                 size_t ns_len, const uint8_t *key, size_t key_len,
                 struct shard_record *out);

typedef void (*shard_list_cb)(void *arg, const struct shard_record *r);

/* What shard_list lists: the live records of ns whose keys start with
 * prefix or, when pattern_len > 0, match the LIKE pattern (checked with
 * proto_like_check; prefix is then empty), and are greater than
 * start_after when start_after_len > 0. Every pointer is borrowed for the
 * call. */
struct shard_list_query {
    const uint8_t *ns;
    size_t ns_len;
    const uint8_t *prefix;
    size_t prefix_len;
    const uint8_t *pattern;
    size_t pattern_len;
    const uint8_t *start_after;
    size_t start_after_len;
    uint32_t limit;    /* records handed out at most */
    uint32_t scan_max; /* pattern: records examined at most (> 0) */
    bool keys_only;    /* hand records out with empty values */
};

/* How a page ended. */
struct shard_list_end {
    bool more; /* further records may match */
    /* When a pattern list stopped at scan_max before it found limit
     * matches: the greatest key it examined (every key up to it was
     * examined), which the next page starts after. Borrowed until the next
     * shard call; NULL otherwise. */
    const uint8_t *scanned_to;
    size_t scanned_to_len;
    uint32_t examined; /* records read from LMDB, matches or not */
};

/* Call cb, in byte-wise key order, for each record q selects, at most
 * q->limit times; *end says whether more may follow and where a pattern
 * list stopped. A pattern with a literal prefix (the part before its first
 * unescaped '%' or '_') only visits the keys under that prefix. cb must
 * not call into s. Errors: UNAVAILABLE (BROKEN), INTERNAL (out of memory
 * sorting a run of long keys). */
mc_err shard_list(struct shard *s, int64_t now_ms,
                  const struct shard_list_query *q, shard_list_cb cb,
                  void *arg, struct shard_list_end *end);

typedef void (*shard_expired_cb)(void *arg, uint8_t tier, const uint8_t *ns,
                                 size_t ns_len, const uint8_t *key,
                                 size_t key_len);

/* Leader's sweep: call cb for up to max records whose expires_at <= now_ms,
 * oldest first. Read only: the caller proposes an OP_EXPIRE command. */
mc_err shard_expired_scan(struct shard *s, int64_t now_ms, uint32_t max,
                          shard_expired_cb cb, void *arg);

/* Serialize the whole state (records of all tiers, expiry index, dedupe
 * table, watch ring) and the applied index into one buffer from alloc
 * (raft_malloc for raft). Commits the open txn first. On MC_OK the caller
 * owns *buf. shard_snapshot_begin + _write + _end in one call. */
mc_err shard_snapshot(struct shard *s, void *(*alloc)(size_t), void **buf,
                      size_t *len);

/* The same in three steps, so that the loop need not wait while a large
 * shard is copied (hundreds of ms for tens of MB):
 * - begin, on the shard's thread: commit the open txn and hold what is
 *   committed in a read txn of the snapshot's own;
 * - write, once, on any one thread, while the shard goes on taking
 *   writes: the buffer of that state (the shard's own thread may not touch
 *   sn), and let go of the read txn, so that LMDB reuses the pages that
 *   later commits free;
 * - end, on the shard's thread, before the shard closes: free sn.
 * Errors: UNAVAILABLE (a broken store), INTERNAL (out of memory). */
struct shard_snap;
mc_err shard_snapshot_begin(struct shard *s, struct shard_snap **out);
mc_err shard_snapshot_write(struct shard_snap *sn, void *(*alloc)(size_t),
                            void **buf, size_t *len);
void shard_snapshot_end(struct shard_snap *sn);

/* Replace the state with a snapshot, unless the snapshot's applied index is
 * not newer than the store's (then nothing changes). The buffer is checked
 * (magic, lengths, checksum) before anything is touched: a bad one gives
 * INVALID_ARGUMENT and leaves the store as it was. Borrowed. */
mc_err shard_restore(struct shard *s, const void *buf, size_t len);

/* False when buf's header says it holds the state at an applied index the
 * store has reached already, so that shard_restore would change nothing;
 * true otherwise (a header that does not read is for shard_restore to
 * refuse). Reads the header only: raft hands a node its own last snapshot
 * at every start, a whole shard that LMDB holds already, and checking
 * every byte of it was a sixth of a restart. Borrowed. */
bool shard_restore_is_needed(struct shard *s, const void *buf, size_t len);

/* ---- the watch event ring ----
 *
 * Apply records an event for every change of a key: put, delete, expire,
 * and promote (a put that keeps the value and moves it to a higher tier).
 * Events live in the events sub-database, written in the txn of the write,
 * carried in snapshots and in the state hash: every replica holds the same
 * ring at the same applied index. An event is identified by (revision,
 * seq): the raft index of its entry and its place among that entry's
 * events. Apply also drops the oldest events beyond the ring's bounds
 * (cfg.watch_ring_events, MC_WATCH_RING_BYTES_MAX), deterministically, and
 * remembers the highest revision it dropped events of: the compaction
 * point. Every event with a higher revision is in the ring. */

struct shard_event {
    uint64_t revision;
    uint16_t seq;
    uint8_t type;       /* mc_event_type */
    uint8_t tier;
    uint64_t version;   /* after a put; the version removed otherwise */
    uint64_t create_rev;
    int64_t expires_at;
    int64_t updated_at; /* the stamp of the entry */
    const uint8_t *key; /* without the namespace */
    size_t key_len;
    const uint8_t *value; /* put and promote; empty otherwise */
    size_t value_len;
};

/* Which events a watch wants: those of ns whose key is key, or with prefix
 * those whose key starts with key (which may then be empty). Borrowed. */
struct shard_watch_filter {
    const uint8_t *ns;
    size_t ns_len;
    const uint8_t *key;
    size_t key_len;
    bool prefix;
};

typedef void (*shard_event_cb)(void *arg, const struct shard_event *e);

/* Call cb, in (revision, seq) order, for each event of the ring with
 * revision > after_rev that matches f. Stops before the first event of a
 * further revision once max_events events or max_bytes bytes of keys and
 * values went to cb: the events of one revision are never split. *through
 * is the revision up to which every matching event went to cb: the applied
 * index (or after_rev, when larger) when the scan reached the end, else
 * the revision before the one it stopped at. *compact_rev is the ring's
 * compaction point. Events borrow LMDB memory until the next shard call;
 * cb must not call into s.
 * Errors: COMPACTED when after_rev < *compact_rev (nothing went to cb;
 * *through is the applied index), UNAVAILABLE. */
mc_err shard_watch_scan(struct shard *s, uint64_t after_rev,
                        const struct shard_watch_filter *f,
                        uint32_t max_events, size_t max_bytes,
                        shard_event_cb cb, void *arg, uint64_t *through,
                        uint64_t *compact_rev);

/* The ring's size and compaction point. */
struct shard_watch_ring {
    uint64_t events;
    uint64_t bytes;       /* of event keys and encoded events */
    uint64_t compact_rev; /* 0: no event was ever dropped */
};
mc_err shard_watch_ring(struct shard *s, struct shard_watch_ring *out);

uint64_t shard_applied_index(const struct shard *s);
/* Entries applied, and entries skipped as already stored, since open. */
uint64_t shard_applied_entries(const struct shard *s);
uint64_t shard_skipped_entries(const struct shard *s);
/* Records per tier, counts[MC_TIER_SHORT..MC_TIER_LONG]; counts[0] = 0. */
void shard_counts(struct shard *s, uint64_t counts[4]);
/* FNV-1a 64 over every record, expiry, dedupe and event entry in key
 * order: equal
 * on replicas that applied the same entries. */
uint64_t shard_state_hash(struct shard *s);
/* True when the store is above 90% of its map, or when its disk is full
 * (the data file cannot be kept allocated ahead of LMDB, store.h): the
 * leader refuses new writes with QUOTA_EXCEEDED before LMDB would fail
 * with MDB_MAP_FULL, or the allocation before an entry would. May
 * allocate disk space; call it on the shard's thread. */
bool shard_is_nearly_full(struct shard *s);

#endif
