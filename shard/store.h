/* The LMDB side of a shard, private to shard/: the struct shard itself, its
 * sub-databases, the one write txn of a loop turn, the read view, and the
 * BROKEN state. Every other file of shard/ reaches LMDB through the helpers
 * here, so that each LMDB failure is logged once and breaks the shard the
 * same way. Record layout, apply rules and snapshots live elsewhere.
 *
 * Transactions:
 *   - s->txn is the write txn of this loop turn: opened by
 *     store_write_begin (apply, restore), ended by store_commit with the
 *     applied index in meta (invariant 1 of shard.h).
 *   - Reads use s->txn when it is open, so they see every applied entry;
 *     otherwise a read-only txn that stays open until the next shard call
 *     (store_enter resets it), which keeps borrowed pointers valid.
 *   - A transaction (OP_TXN) must keep all of its writes or none. LMDB
 *     refuses nested txns under MDB_WRITEMAP, so store_txn_isolate commits
 *     the turn's txn (the entries before it, with their applied index) and
 *     begins a fresh one for the transaction alone; when an operation
 *     fails, store_txn_abort drops it, and with it every page the
 *     transaction wrote in the map (those pages belong to no committed
 *     tree), and a fresh txn records the failure.
 *   - A failed LMDB call sets s->broken (store_fail). The write txn is left
 *     as it is and aborted by shard_close: callers may still hold cursors
 *     on it, and nothing of it will ever be committed.
 *
 * Space (MDB_WRITEMAP): LMDB writes pages through a shared map of the data
 * file, which it sizes to the whole map (4 GiB, a sparse file). A page
 * written in a hole of a full filesystem is a SIGBUS, not an error. So
 * the store keeps the file allocated (posix_fallocate) ahead of the
 * write txn's next page: before each LMDB call that writes, by what that
 * call can take at most (space_call, space_commit), and before each
 * entry, by what an entry of the largest value can take (space_entry). A
 * failed allocation is an error that breaks the shard like a full map,
 * and the leader refuses writes early (shard_is_nearly_full) when it
 * cannot keep twice that much allocated ahead (space_is_short). */
#ifndef MC_SHARD_STORE_H
#define MC_SHARD_STORE_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "shard/shard.h"

/* The sub-databases of a shard environment (shard.h). The three tier DBs
 * come first, in the order of mc_tier, so that store_tier_db is a
 * subtraction. */
enum store_db {
    STORE_DB_SHORT,
    STORE_DB_MID,
    STORE_DB_LONG,
    STORE_DB_EXPIRY,
    STORE_DB_DEDUPE,
    STORE_DB_EVENTS,
    STORE_DB_META,
    STORE_DB_COUNT
};

/* The DBs that hold state: everything but meta, in snapshot and state
 * hash order. */
#define STORE_DATA_DBS STORE_DB_META

_Static_assert(STORE_DB_SHORT == MC_TIER_SHORT - 1, "tier DBs follow mc_tier");
_Static_assert(STORE_DB_LONG == MC_TIER_LONG - 1, "tier DBs follow mc_tier");

struct shard {
    struct shard_config cfg;
    MDB_env *env;
    MDB_dbi dbi[STORE_DB_COUNT];
    MDB_txn *txn;      /* write txn of this loop turn, or NULL */
    pthread_t txn_thread; /* the thread that began txn: it must end it */
    MDB_txn *read_txn; /* reused read-only txn, or NULL before first use */
    bool read_live;    /* read_txn is renewed and holds a snapshot */
    atomic_bool broken; /* shard_sync may set it from another thread */
    bool writemap;      /* MDB_WRITEMAP: the space rules above apply */
    int fd;             /* of data.mdb, for posix_fallocate */
    uint64_t page_bytes;
    uint64_t alloc_bytes; /* data.mdb is allocated from 0 up to here */
    uint64_t entry_pages; /* space_entry keeps this many ahead */
    bool space_short;     /* the last admission check found no room */
    uint64_t applied_index; /* of the last applied entry, committed or not */
    uint64_t applied_entries;
    uint64_t skipped_entries;
    uint64_t event_rev; /* revision of the last event written ... */
    uint32_t event_seq; /* ... and the seq the next one of it takes */
    struct shard_result result; /* what shard_apply answers */
    Mcpb__TxnResult *txn_answer; /* result.txn; freed by the next apply */
};

static inline enum store_db store_tier_db(uint8_t tier)
{
    ASSERT(tier >= MC_TIER_SHORT);
    ASSERT(tier <= MC_TIER_LONG);
    return (enum store_db)(STORE_DB_SHORT + (tier - MC_TIER_SHORT));
}

/* Start of every shard call: UNAVAILABLE when BROKEN; else ends the read
 * view of the previous call (its borrowed pointers die here). */
mc_err store_enter(struct shard *s);

/* Log an LMDB failure rc of what, and mark the shard BROKEN.
 * Returns UNAVAILABLE, for the caller to pass up. */
mc_err store_fail(struct shard *s, const char *what, int rc);

/* The txn to read through: the open write txn, else the read view.
 * Valid until the next shard call. Errors: UNAVAILABLE (BROKEN). */
mc_err store_view(struct shard *s, MDB_txn **out);

/* Open the write txn of this loop turn unless it is open.
 * Errors: UNAVAILABLE (BROKEN). */
mc_err store_write_begin(struct shard *s);

/* Write s->applied_index to meta and commit the write txn, if open.
 * Errors: UNAVAILABLE (BROKEN), with the LMDB text in err. */
mc_err store_commit(struct shard *s, char *err, size_t err_len);

/* Before an OP_TXN: commit the write txn, if open (the entries before
 * this one, with their applied index), and begin a fresh one, so that
 * store_txn_abort can drop the transaction's writes and nothing else.
 * Errors: UNAVAILABLE (BROKEN). */
mc_err store_txn_isolate(struct shard *s);

/* Abort the write txn: none of its writes stay, in LMDB or in the map.
 * s->txn is NULL afterwards; store_write_begin opens the next. */
void store_txn_abort(struct shard *s);

/* Read db[key] through txn. *found = false when missing. v borrows LMDB
 * memory until the next write or the end of txn. Errors: UNAVAILABLE. */
mc_err store_get(struct shard *s, MDB_txn *txn, enum store_db db,
                 const void *key, size_t key_len, MDB_val *v, bool *found);

/* Write db[key] = val in the write txn. Errors: UNAVAILABLE. */
mc_err store_put(struct shard *s, enum store_db db, const void *key,
                 size_t key_len, const void *val, size_t val_len);

/* Write db[key] = val at the end of db, in the write txn: key must sort
 * after every key of db (restore loads sorted snapshots this way).
 * Errors: UNAVAILABLE. */
mc_err store_append(struct shard *s, enum store_db db, const void *key,
                    size_t key_len, const void *val, size_t val_len);

/* Empty every data DB (all but meta) in the write txn.
 * Errors: UNAVAILABLE. */
mc_err store_drop_data(struct shard *s);

/* Reserve val_len bytes for db[key] in the write txn and return where to
 * write them (valid until the next write). Errors: UNAVAILABLE. */
mc_err store_reserve(struct shard *s, enum store_db db, const void *key,
                     size_t key_len, size_t val_len, uint8_t **space);

/* Delete db[key] from the write txn. The key must exist: a missing one
 * means the store is out of step with itself, so it breaks the shard.
 * Errors: UNAVAILABLE. */
mc_err store_del(struct shard *s, enum store_db db, const void *key,
                 size_t key_len);

/* Move cursor c by op. *found = false at the end (or no match). Borrowed
 * k and v as for store_get. Errors: UNAVAILABLE. */
mc_err store_cursor_get(struct shard *s, MDB_cursor *c, MDB_val *k,
                        MDB_val *v, MDB_cursor_op op, bool *found);

/* Open a cursor on db through txn; the caller closes it with
 * mdb_cursor_close before the next shard call. Errors: UNAVAILABLE. */
mc_err store_cursor_open(struct shard *s, MDB_txn *txn, enum store_db db,
                         MDB_cursor **out);

/* ---- space.c: the data file allocated ahead of LMDB ---- */

/* Whether this LMDB's MDB_txn reads as space.c expects (see there): a
 * fresh write txn's next page must be the committed last page + 1.
 * Begins and aborts a write txn. */
bool space_layout_ok(struct shard *s);

/* The same check on s->txn, just begun (store_write_begin asserts it). */
bool space_txn_is_fresh(struct shard *s);

/* After the env is open, before anything is written: note the data
 * file's descriptor and page size, allocate the lock file and what
 * opening a new store writes, and try to allocate an entry's room ahead
 * (a full disk then only refuses writes). Errors: INTERNAL with the
 * reason in err (no space to open the store). */
mc_err space_open(struct shard *s, const char *dir, char *err,
                  size_t err_len);

/* Before LMDB opens the env in dir: allocate its lock file, which LMDB
 * writes through a shared map as well. Errors: INTERNAL with the reason
 * in err. */
mc_err space_lock_file(const char *dir, char *err, size_t err_len);

/* Before an LMDB call that writes val_len bytes into db in s->txn: keep
 * the file allocated for what the call can take. Errors: UNAVAILABLE
 * (the allocation failed: the shard is BROKEN). */
mc_err space_call(struct shard *s, enum store_db db, size_t val_len);

/* Before mdb_txn_commit: room for the main DB records and the free list
 * the commit writes. Errors: UNAVAILABLE (BROKEN). */
mc_err space_commit(struct shard *s);

/* Before each entry, in s->txn: keep the file allocated ahead of the
 * txn's next page by what one entry can take (a value of the limit, its
 * event copy, tree splits, trims), so that a full disk stops a replica
 * between entries. Errors: UNAVAILABLE (the allocation failed, e.g. a
 * full disk: the shard is BROKEN). */
mc_err space_entry(struct shard *s);

/* The leader's check before it accepts a write: true when the file
 * cannot be kept allocated SPACE_ADMIT_ENTRIES entries ahead (the disk
 * is full). Breaks nothing. */
bool space_is_short(struct shard *s);

#endif
