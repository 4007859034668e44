/* The LMDB environment of one shard: open and close, the write txn of a
 * loop turn and its commit with the applied index, the read view, the
 * BROKEN state, and the small accessors of shard.h (counters, counts, how
 * full the map is). It knows nothing of what records look like: record.c
 * does. See store.h for the txn rules. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "shard/apply.h"
#include "shard/store.h"

/* Shards are opened with one DB handle per sub-database. */
static const char *const db_names[STORE_DB_COUNT] = {
    [STORE_DB_SHORT] = "short",   [STORE_DB_MID] = "mid",
    [STORE_DB_LONG] = "long",     [STORE_DB_EXPIRY] = "expiry",
    [STORE_DB_DEDUPE] = "dedupe", [STORE_DB_EVENTS] = "events",
    [STORE_DB_META] = "meta",
};

/* The DBs whose keys come in order: the ring's revisions. A put beyond
 * the last key goes in with MDB_APPEND, whose split leaves the full page
 * full and starts a new one, where a plain put leaves the left page about
 * as full as the ring's events happen to fall (the ring took 4% fewer
 * pages in make bench). LMDB checks the order itself: a key that is not
 * beyond the last one is refused with MDB_KEYEXIST, before any change,
 * and goes in the plain way. Keys that come only mostly in order (records
 * of a bulk load with many writers in flight, expiry keys of one stamp)
 * took 14% more pages this way: a key just below the last one splits a
 * full page in halves. */
static const bool db_in_order[STORE_DB_COUNT] = {
    [STORE_DB_EVENTS] = true,
};

/* Where meta keeps the index of the last applied entry, a u64 LE. */
static const char meta_applied_key[] = "applied_index";
#define META_INDEX_BYTES 8u

/* Above this share of its map, a store is nearly full (shard.h). */
#define STORE_FULL_PERCENT 90u

/* Mode of the shard folder and its LMDB files. */
#define STORE_DIR_MODE 0755
#define STORE_FILE_MODE 0644

mc_err store_fail(struct shard *s, const char *what, int rc)
{
    if (!atomic_exchange(&s->broken, true)) {
        LOG_ERROR("shard broken shard=%u op=%s err=%s", s->cfg.id, what,
                  mdb_strerror(rc));
    }
    return MC_UNAVAILABLE;
}

mc_err store_enter(struct shard *s)
{
    ASSERT(s != NULL);
    if (atomic_load(&s->broken)) {
        return MC_UNAVAILABLE;
    }
    if (s->read_live) {
        mdb_txn_reset(s->read_txn);
        s->read_live = false;
    }
    return MC_OK;
}

mc_err store_view(struct shard *s, MDB_txn **out)
{
    if (s->txn != NULL) {
        *out = s->txn;
        return MC_OK;
    }
    if (!s->read_live) {
        int rc = s->read_txn == NULL
                     ? mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->read_txn)
                     : mdb_txn_renew(s->read_txn);
        if (rc != 0) {
            return store_fail(s, "read txn", rc);
        }
        s->read_live = true;
    }
    *out = s->read_txn;
    return MC_OK;
}

mc_err store_write_begin(struct shard *s)
{
    ASSERT(!s->read_live);
    if (s->txn != NULL) {
        return MC_OK;
    }
    int rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    if (rc != 0) {
        s->txn = NULL;
        return store_fail(s, "write txn", rc);
    }
    s->txn_thread = pthread_self();
    /* space.c reads how far the txn reached; the layout was checked at
     * open (space_layout_ok). */
    ASSERT(!s->writemap || space_txn_is_fresh(s));
    return MC_OK;
}

mc_err store_txn_isolate(struct shard *s)
{
    char err[sizeof s->result.message];
    mc_err rv = store_commit(s, err, sizeof err);
    return rv == MC_OK ? store_write_begin(s) : rv;
}

void store_txn_abort(struct shard *s)
{
    ASSERT(s->txn != NULL);
    ASSERT(pthread_equal(s->txn_thread, pthread_self()));
    /* Under MDB_WRITEMAP the txn's pages were written in the map, but
     * only at pages no committed tree uses (LMDB copies a page before it
     * changes it): dropping the txn leaves the store as committed. */
    mdb_txn_abort(s->txn);
    s->txn = NULL;
}

mc_err store_commit(struct shard *s, char *err, size_t err_len)
{
    if (atomic_load(&s->broken)) {
        base_errf(err, err_len, "shard %u is broken", s->cfg.id);
        return MC_UNAVAILABLE;
    }
    if (s->txn == NULL) {
        return MC_OK;
    }
    /* LMDB's writer mutex belongs to the thread that began the txn; a
     * commit elsewhere leaves it locked and the next writer hangs. */
    ASSERT(pthread_equal(s->txn_thread, pthread_self()));
    uint8_t index[META_INDEX_BYTES];
    bytes_put_u64le(index, s->applied_index);
    mc_err rv = store_put(s, STORE_DB_META, meta_applied_key,
                          strlen(meta_applied_key), index, sizeof index);
    if (rv != MC_OK) {
        base_errf(err, err_len, "shard %u: writing the applied index failed",
                  s->cfg.id);
        return rv;
    }
    rv = space_commit(s);
    if (rv != MC_OK) {
        base_errf(err, err_len, "shard %u: no space to commit", s->cfg.id);
        return rv;
    }
    int rc = mdb_txn_commit(s->txn);
    s->txn = NULL; /* a failed commit frees the txn too */
    if (rc != 0) {
        base_errf(err, err_len, "shard %u: commit: %s", s->cfg.id,
                  mdb_strerror(rc));
        return store_fail(s, "commit", rc);
    }
    return MC_OK;
}

mc_err store_get(struct shard *s, MDB_txn *txn, enum store_db db,
                 const void *key, size_t key_len, MDB_val *v, bool *found)
{
    MDB_val k = {.mv_size = key_len, .mv_data = (void *)key};
    int rc = mdb_get(txn, s->dbi[db], &k, v);
    *found = rc == 0;
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return store_fail(s, "get", rc);
    }
    return MC_OK;
}

/* mdb_put, appending when the key is beyond db's last (db_in_order). */
static int put_in_order(struct shard *s, enum store_db db, MDB_val *k,
                        MDB_val *v, unsigned flags)
{
    if (db_in_order[db]) {
        int rc = mdb_put(s->txn, s->dbi[db], k, v, flags | MDB_APPEND);
        if (rc != MDB_KEYEXIST) {
            return rc;
        }
    }
    return mdb_put(s->txn, s->dbi[db], k, v, flags);
}

mc_err store_put(struct shard *s, enum store_db db, const void *key,
                 size_t key_len, const void *val, size_t val_len)
{
    ASSERT(s->txn != NULL);
    mc_err rv = space_call(s, db, val_len);
    if (rv != MC_OK) {
        return rv;
    }
    MDB_val k = {.mv_size = key_len, .mv_data = (void *)key};
    MDB_val v = {.mv_size = val_len, .mv_data = (void *)val};
    int rc = put_in_order(s, db, &k, &v, 0);
    if (rc != 0) {
        return store_fail(s, "put", rc);
    }
    return MC_OK;
}

mc_err store_append(struct shard *s, enum store_db db, const void *key,
                    size_t key_len, const void *val, size_t val_len)
{
    ASSERT(s->txn != NULL);
    mc_err rv = space_call(s, db, val_len);
    if (rv != MC_OK) {
        return rv;
    }
    MDB_val k = {.mv_size = key_len, .mv_data = (void *)key};
    MDB_val v = {.mv_size = val_len, .mv_data = (void *)val};
    int rc = mdb_put(s->txn, s->dbi[db], &k, &v, MDB_APPEND);
    if (rc != 0) {
        return store_fail(s, "append", rc);
    }
    return MC_OK;
}

mc_err store_drop_data(struct shard *s)
{
    ASSERT(s->txn != NULL);
    for (unsigned db = 0; db < STORE_DATA_DBS; db++) {
        mc_err rv = space_call(s, (enum store_db)db, 0);
        if (rv != MC_OK) {
            return rv;
        }
        int rc = mdb_drop(s->txn, s->dbi[db], 0);
        if (rc != 0) {
            return store_fail(s, "drop", rc);
        }
    }
    return MC_OK;
}

mc_err store_reserve(struct shard *s, enum store_db db, const void *key,
                     size_t key_len, size_t val_len, uint8_t **space)
{
    ASSERT(s->txn != NULL);
    mc_err rv = space_call(s, db, val_len);
    if (rv != MC_OK) {
        return rv;
    }
    MDB_val k = {.mv_size = key_len, .mv_data = (void *)key};
    MDB_val v = {.mv_size = val_len, .mv_data = NULL};
    int rc = put_in_order(s, db, &k, &v, MDB_RESERVE);
    if (rc != 0) {
        return store_fail(s, "put", rc);
    }
    ASSERT(v.mv_size == val_len);
    *space = v.mv_data;
    return MC_OK;
}

mc_err store_del(struct shard *s, enum store_db db, const void *key,
                 size_t key_len)
{
    ASSERT(s->txn != NULL);
    mc_err rv = space_call(s, db, 0);
    if (rv != MC_OK) {
        return rv;
    }
    MDB_val k = {.mv_size = key_len, .mv_data = (void *)key};
    int rc = mdb_del(s->txn, s->dbi[db], &k, NULL);
    if (rc != 0) {
        return store_fail(s, db_names[db], rc);
    }
    return MC_OK;
}

mc_err store_cursor_open(struct shard *s, MDB_txn *txn, enum store_db db,
                         MDB_cursor **out)
{
    int rc = mdb_cursor_open(txn, s->dbi[db], out);
    if (rc != 0) {
        return store_fail(s, "cursor", rc);
    }
    return MC_OK;
}

mc_err store_cursor_get(struct shard *s, MDB_cursor *c, MDB_val *k,
                        MDB_val *v, MDB_cursor_op op, bool *found)
{
    int rc = mdb_cursor_get(c, k, v, op);
    *found = rc == 0;
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return store_fail(s, "cursor get", rc);
    }
    return MC_OK;
}

/* Open every sub-database and load the applied index, in one txn. */
static int open_dbs(struct shard *s, char *err, size_t err_len)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        goto err;
    }
    for (unsigned i = 0; i < STORE_DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i]);
        if (rc != 0) {
            goto err_after_txn_begin;
        }
    }
    MDB_val k = {.mv_size = strlen(meta_applied_key),
                 .mv_data = (void *)meta_applied_key};
    MDB_val v;
    rc = mdb_get(txn, s->dbi[STORE_DB_META], &k, &v);
    if (rc == 0 && v.mv_size != META_INDEX_BYTES) {
        rc = MDB_CORRUPTED;
    }
    if (rc == 0) {
        s->applied_index = bytes_get_u64le(v.mv_data);
    } else if (rc != MDB_NOTFOUND) {
        goto err_after_txn_begin;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        goto err;
    }
    return 0;

err_after_txn_begin:
    mdb_txn_abort(txn);
err:
    ASSERT(rc != 0);
    base_errf(err, err_len, "opening the sub-databases: %s", mdb_strerror(rc));
    return rc;
}

/* Create the LMDB environment of s in dir with flags beyond the usual
 * ones. */
static int open_env(struct shard *s, const char *dir, unsigned flags,
                    char *err, size_t err_len)
{
    int rc = mdb_env_create(&s->env);
    if (rc != 0) {
        goto err;
    }
    rc = mdb_env_set_maxdbs(s->env, STORE_DB_COUNT);
    if (rc == 0) {
        rc = mdb_env_set_mapsize(s->env, (size_t)s->cfg.map_bytes);
    }
    if (rc == 0) {
        /* Unsynced: the raft log is the durability (DEPS-NOTES.md, LMDB);
         * NOTLS: read txns may be reused by whichever thread runs s. */
        rc = mdb_env_open(s->env, dir, MDB_NOSYNC | MDB_NOTLS | flags,
                          STORE_FILE_MODE);
    }
    if (rc != 0) {
        goto err_after_env_create;
    }
    return 0;

err_after_env_create:
    mdb_env_close(s->env);
    s->env = NULL;
err:
    ASSERT(rc != 0);
    base_errf(err, err_len, "opening LMDB in %s: %s", dir, mdb_strerror(rc));
    return rc;
}

mc_err shard_open(const char *dir, const struct shard_config *cfg,
                  struct shard **out, char *err, size_t err_len)
{
    ASSERT(dir != NULL);
    ASSERT(cfg != NULL);
    ASSERT(out != NULL);

    if (mkdir(dir, STORE_DIR_MODE) != 0 && errno != EEXIST) {
        base_errf(err, err_len, "creating %s: %s", dir, strerror(errno));
        return MC_INTERNAL;
    }
    struct shard *s = mc_calloc(1, sizeof *s);
    if (s == NULL) {
        base_errf(err, err_len, "out of memory opening shard %u", cfg->id);
        return MC_INTERNAL;
    }
    s->cfg = *cfg;
    if (s->cfg.map_bytes == 0) {
        s->cfg.map_bytes = MC_SHARD_MAP_BYTES;
    }
    if (s->cfg.watch_ring_events == 0) {
        s->cfg.watch_ring_events = MC_WATCH_RING_EVENTS_DEFAULT;
    }
    if (space_lock_file(dir, err, err_len) != MC_OK) {
        goto err_after_alloc;
    }
    /* MDB_WRITEMAP: LMDB writes its pages in the map, and a commit makes
     * no system call (each commit of a turn wrote ~13 pages with pwrite
     * before). It needs the data file allocated ahead (space.c). */
    if (open_env(s, dir, MDB_WRITEMAP, err, err_len) != 0) {
        goto err_after_alloc;
    }
    if (!space_layout_ok(s)) {
        LOG_WARN("shard %u: this LMDB's write txns are not laid out as "
                 "0.9's; running without MDB_WRITEMAP", s->cfg.id);
        mdb_env_close(s->env);
        if (open_env(s, dir, 0, err, err_len) != 0) {
            goto err_after_alloc;
        }
    }
    if (space_open(s, dir, err, err_len) != MC_OK) {
        goto err_after_env_open;
    }
    if (open_dbs(s, err, err_len) != 0) {
        goto err_after_env_open;
    }
    *out = s;
    return MC_OK;

err_after_env_open:
    mdb_env_close(s->env);
err_after_alloc:
    mc_free(s);
    return MC_INTERNAL;
}

void shard_close(struct shard *s)
{
    if (s == NULL) {
        return;
    }
    char err[sizeof s->result.message];
    if (s->txn != NULL && store_commit(s, err, sizeof err) != MC_OK) {
        LOG_ERROR("shard close lost its last txn shard=%u err=%s", s->cfg.id,
                  err);
    }
    if (s->txn != NULL) {
        mdb_txn_abort(s->txn); /* only when BROKEN: see store.h */
    }
    if (s->read_txn != NULL) {
        mdb_txn_abort(s->read_txn);
    }
    txn_answer_free(s);
    mdb_env_close(s->env);
    mc_free(s);
}

mc_err shard_commit(struct shard *s, char *err, size_t err_len)
{
    ASSERT(s != NULL);
    return store_commit(s, err, err_len);
}

mc_err shard_sync(struct shard *s)
{
    ASSERT(s != NULL);
    /* Runs on a worker thread while the loop thread uses s: it touches
     * only the env (mdb_env_sync is thread-safe) and the atomic flag. */
    if (atomic_load(&s->broken)) {
        return MC_UNAVAILABLE;
    }
    int rc = mdb_env_sync(s->env, 1);
    if (rc != 0) {
        /* A failed fsync may have dropped dirty pages (Linux): trust
         * nothing on disk from here on. */
        return store_fail(s, "sync", rc);
    }
    return MC_OK;
}

uint64_t shard_applied_index(const struct shard *s)
{
    ASSERT(s != NULL);
    return s->applied_index;
}

uint64_t shard_applied_entries(const struct shard *s)
{
    ASSERT(s != NULL);
    return s->applied_entries;
}

uint64_t shard_skipped_entries(const struct shard *s)
{
    ASSERT(s != NULL);
    return s->skipped_entries;
}

void shard_counts(struct shard *s, uint64_t counts[4])
{
    ASSERT(s != NULL);
    ASSERT(counts != NULL);
    memset(counts, 0, 4 * sizeof counts[0]);
    MDB_txn *txn;
    if (store_enter(s) != MC_OK || store_view(s, &txn) != MC_OK) {
        return;
    }
    for (uint8_t t = MC_TIER_SHORT; t <= MC_TIER_LONG; t++) {
        MDB_stat st;
        int rc = mdb_stat(txn, s->dbi[store_tier_db(t)], &st);
        if (rc != 0) {
            store_fail(s, "stat", rc);
            return;
        }
        counts[t] = st.ms_entries;
    }
}

bool shard_is_nearly_full(struct shard *s)
{
    ASSERT(s != NULL);
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0) {
        return true; /* unknown: refusing writes is the safe answer */
    }
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    return used * 100u > (uint64_t)info.me_mapsize * STORE_FULL_PERCENT ||
           space_is_short(s);
}
