/* Space for LMDB under MDB_WRITEMAP: the data file kept allocated ahead of
 * every page LMDB may write through its map, so that a full disk is an
 * error and not a SIGBUS (store.h, Space). What LMDB does with the pages
 * is store.c's business; this file only knows how far a write txn can
 * reach.
 *
 * How far a write txn has reached: LMDB 0.9 has no call for it
 * (mdb_env_info gives the last page of the last commit). Every 0.9
 * release, 0.9.0 to 0.9.33, begins struct MDB_txn with
 *   MDB_txn *mt_parent; MDB_txn *mt_child; pgno_t mt_next_pgno;
 * (pgno_t is a size_t), and mt_next_pgno is the first page no committed
 * tree uses and the txn has not taken: every page the txn writes beyond
 * the committed file is below it. txn_next_page reads it there. A library
 * laid out otherwise is found when the store opens (space_layout_ok: a
 * fresh txn's next page must be the committed last page + 1), and the
 * store then opens without MDB_WRITEMAP (store.c), where LMDB writes with
 * pwrite and a full disk is an ordinary error.
 *
 * How much one call can take beyond that page: a put copies the pages on
 * its path that the txn has not copied yet (depth), splits at most one
 * page per level and adds a root (depth + 1), and writes a large value
 * in overflow pages; a delete also copies the neighbours it rebalances
 * with and may split a parent whose separator key grows (depth each).
 * space_call allows 3 * (depth + 1) pages plus the value's pages and a
 * little slack, depth read from LMDB before the call. Pages LMDB takes
 * from its free list were allocated before, and need nothing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shard/store.h"

/* The head of LMDB 0.9's struct MDB_txn (see above). */
struct lmdb_txn_head {
    MDB_txn *parent;
    MDB_txn *child;
    size_t next_pgno;
};

/* Pages allowed per call beyond the bound above: LMDB's split of a page
 * of large nodes may leave the new node on a page of its own. */
#define SPACE_CALL_SLACK_PAGES 4u

/* A commit writes the main DB's records of the DBs it changed (one page
 * of seven records, copied and perhaps split) and the free list: the
 * pages the txn freed and those it took from the list and did not use, 8
 * bytes each, never more of either than there are pages in the file; in
 * a free DB of depth well under SPACE_FREE_DEPTH_MAX. */
#define SPACE_COMMIT_PAGES 16u
#define SPACE_FREE_DEPTH_MAX 8u

/* What opening a new store writes: the root pages of its seven DBs and of
 * the main DB, and their first commit. */
#define SPACE_OPEN_PAGES 64u

/* The room of one entry, in values of the limit, plus tree pages: the
 * record's overflow pages, the event's copy of the value, a transaction's
 * answer that read values (kept in the dedupe table), and the leaves of
 * the old events a large event trims. Every call still checks its own
 * room, so an entry that takes more is safe; this bound makes a full
 * disk stop a replica between entries rather than inside one. */
#define SPACE_ENTRY_VALUES 4u
#define SPACE_ENTRY_TREE_BYTES (1u << 20)

/* The leader accepts a write only when it can keep this many entries'
 * room allocated ahead: room for the writes in flight behind it. */
#define SPACE_ADMIT_ENTRIES 2u

/* The file grows by at least 1/16 of what is allocated (and by at least
 * an entry's room), so that allocations stay rare as the store grows. */
#define SPACE_GROW_SHIFT 4u

/* LMDB's lock file for its 126 readers: 125 reader slots of 64 bytes
 * after a header of 192. LMDB writes it through a shared map too; it
 * adopts a file of this size as it finds it. */
#define SPACE_LOCK_BYTES 8192u

static uint64_t txn_next_page(const MDB_txn *txn)
{
    size_t next;
    memcpy(&next,
           (const unsigned char *)txn + offsetof(struct lmdb_txn_head,
                                                 next_pgno),
           sizeof next);
    return next;
}

/* The first page past the committed file. */
static uint64_t committed_end_page(struct shard *s)
{
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    ASSERT(rc == 0); /* it only reads the env's metas */
    return (uint64_t)info.me_last_pgno + 1;
}

/* The first page nothing uses or has taken: the open write txn's, else
 * the committed file's end. */
static uint64_t next_page(struct shard *s)
{
    return s->txn != NULL ? txn_next_page(s->txn) : committed_end_page(s);
}

bool space_layout_ok(struct shard *s)
{
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0) {
        return false;
    }
    bool ok = txn_next_page(txn) == committed_end_page(s);
    mdb_txn_abort(txn);
    return ok;
}

bool space_txn_is_fresh(struct shard *s)
{
    return txn_next_page(s->txn) == committed_end_page(s);
}

/* Allocate the data file up to need bytes (and, when the disk allows, a
 * growth step beyond). Returns 0 or an errno. */
static int grow(struct shard *s, uint64_t need)
{
    uint64_t map = s->cfg.map_bytes;
    if (need > map) {
        need = map; /* LMDB answers MAP_FULL before it writes past it */
    }
    if (need <= s->alloc_bytes) {
        return 0;
    }
    uint64_t step = s->alloc_bytes >> SPACE_GROW_SHIFT;
    uint64_t entry = s->entry_pages * s->page_bytes;
    step = step > entry ? step : entry;
    uint64_t target = need + step < map ? need + step : map;
    int rc = posix_fallocate(s->fd, (off_t)s->alloc_bytes,
                             (off_t)(target - s->alloc_bytes));
    if (rc != 0 && target > need) {
        target = need; /* there may be room for what is needed now */
        rc = posix_fallocate(s->fd, (off_t)s->alloc_bytes,
                             (off_t)(target - s->alloc_bytes));
    }
    if (rc == 0) {
        s->alloc_bytes = target;
    }
    return rc;
}

/* Keep pages pages allocated past the next page; a failure breaks the
 * shard (what for the log). */
static mc_err need_pages(struct shard *s, uint64_t pages, const char *what)
{
    uint64_t need = (next_page(s) + pages) * s->page_bytes;
    if (need <= s->alloc_bytes) {
        return MC_OK;
    }
    int rc = grow(s, need);
    if (rc != 0) {
        LOG_ERROR("shard %u cannot allocate its store: %s (%llu bytes "
                  "needed, %llu allocated): it stops applying until the "
                  "node restarts with free space", s->cfg.id, strerror(rc),
                  (unsigned long long)need,
                  (unsigned long long)s->alloc_bytes);
        return store_fail(s, what, rc);
    }
    return MC_OK;
}

mc_err space_open(struct shard *s, const char *dir, char *err,
                  size_t err_len)
{
    unsigned flags;
    MDB_stat st;
    if (mdb_env_get_flags(s->env, &flags) != 0 ||
        mdb_env_get_fd(s->env, &s->fd) != 0 ||
        mdb_env_stat(s->env, &st) != 0) {
        base_errf(err, err_len, "reading the LMDB env of %s", dir);
        return MC_INTERNAL;
    }
    s->writemap = (flags & MDB_WRITEMAP) != 0;
    if (!s->writemap) {
        return MC_OK;
    }
    s->page_bytes = st.ms_psize;
    /* The map LMDB uses: the configured one, or a larger one that the
     * store was made with. LMDB writes nowhere past it. */
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) != 0) {
        base_errf(err, err_len, "reading the LMDB env of %s", dir);
        return MC_INTERNAL;
    }
    s->cfg.map_bytes = info.me_mapsize;
    uint64_t entry = SPACE_ENTRY_VALUES * s->cfg.value_bytes_max +
                     SPACE_ENTRY_TREE_BYTES;
    s->entry_pages = (entry + s->page_bytes - 1) / s->page_bytes;
    /* Every page of the committed file was written once, by the txn
     * that took it: it has its blocks. */
    s->alloc_bytes = committed_end_page(s) * s->page_bytes;
    int rc = grow(s, (committed_end_page(s) + SPACE_OPEN_PAGES) *
                         s->page_bytes);
    if (rc != 0) {
        base_errf(err, err_len, "allocating the store in %s: %s", dir,
                  strerror(rc));
        return MC_INTERNAL;
    }
    rc = grow(s, (committed_end_page(s) + s->entry_pages) * s->page_bytes);
    if (rc != 0) {
        LOG_WARN("shard %u cannot allocate room ahead in %s: %s; writes are "
                 "refused until there is space", s->cfg.id, dir,
                 strerror(rc));
    }
    return MC_OK;
}

mc_err space_lock_file(const char *dir, char *err, size_t err_len)
{
    char path[MC_PATH_BYTES_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/lock.mdb", dir) >=
        sizeof path) {
        base_errf(err, err_len, "path %s/lock.mdb is too long", dir);
        return MC_INTERNAL;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        base_errf(err, err_len, "opening %s: %s", path, strerror(errno));
        return MC_INTERNAL;
    }
    int rc = posix_fallocate(fd, 0, SPACE_LOCK_BYTES);
    close(fd);
    if (rc != 0) {
        base_errf(err, err_len, "allocating %s: %s", path, strerror(rc));
        return MC_INTERNAL;
    }
    return MC_OK;
}

mc_err space_call(struct shard *s, enum store_db db, size_t val_len)
{
    ASSERT(s->txn != NULL);
    if (!s->writemap) {
        return MC_OK;
    }
    MDB_stat st;
    int rc = mdb_stat(s->txn, s->dbi[db], &st);
    if (rc != 0) {
        return store_fail(s, "stat", rc);
    }
    uint64_t pages = 3u * (st.ms_depth + 1u) + SPACE_CALL_SLACK_PAGES +
                     (val_len + s->page_bytes - 1) / s->page_bytes;
    return need_pages(s, pages, "allocate");
}

mc_err space_commit(struct shard *s)
{
    ASSERT(s->txn != NULL);
    if (!s->writemap) {
        return MC_OK;
    }
    uint64_t list_pages =
        next_page(s) * sizeof(uint64_t) / s->page_bytes + 1;
    uint64_t pages = SPACE_COMMIT_PAGES + 2u * list_pages +
                     3u * (SPACE_FREE_DEPTH_MAX + 1u);
    return need_pages(s, pages, "allocate");
}

mc_err space_entry(struct shard *s)
{
    ASSERT(s->txn != NULL);
    if (!s->writemap) {
        return MC_OK;
    }
    return need_pages(s, s->entry_pages, "allocate");
}

bool space_is_short(struct shard *s)
{
    if (!s->writemap) {
        return false;
    }
    uint64_t need =
        (next_page(s) + SPACE_ADMIT_ENTRIES * s->entry_pages) * s->page_bytes;
    int rc = need > s->alloc_bytes ? grow(s, need) : 0;
    if ((rc != 0) != s->space_short) {
        s->space_short = rc != 0;
        if (rc != 0) {
            LOG_WARN("shard %u: no space to allocate its store ahead (%s): "
                     "writes are refused with QUOTA_EXCEEDED", s->cfg.id,
                     strerror(rc));
        } else {
            LOG_INFO("shard %u: space again: writes are accepted",
                     s->cfg.id);
        }
    }
    return rc != 0;
}
