/* Snapshots of a shard for raft: the whole state (records of every tier,
 * the expiry index, the dedupe table, the watch ring) and its applied
 * index in one buffer,
 * the restore of such a buffer, and the state hash that tests and replicas
 * compare. A snapshot may come from a peer, so restore checks every byte
 * of it before it touches LMDB (DEPS-NOTES.md, LMDB: never trust a peer's
 * file). Format, all little-endian:
 *
 *   "MCSNAP01"         magic
 *   u32 format         SNAP_FORMAT
 *   u32 shard id
 *   u64 applied index
 *   one section per data DB, in store_db order (short mid long expiry
 *   dedupe events; format 1 had no events section):
 *     u32 tag          the store_db + 1
 *     u64 count
 *     count x { u32 key_len, key, u32 value_len, value }, keys ascending
 *   u64 checksum       FNV-1a 64 of every byte before it */
#include <string.h>

#include "shard/dedupe.h"
#include "shard/record.h"
#include "shard/watch.h"

static const uint8_t snap_magic[8] = {'M', 'C', 'S', 'N', 'A', 'P', '0', '1'};
#define SNAP_FORMAT 2u
/* Format 1, of the builds before the watch ring, is still read: its state
 * without a ring, as a ring that knows nothing up to the snapshot's index
 * (so a node with such a snapshot on disk still starts). */
#define SNAP_FORMAT_NO_RING 1u
#define SNAP_HEADER_BYTES 24u  /* magic, format, shard id, index */
#define SNAP_SECTION_BYTES 12u /* tag, count */
#define SNAP_ENTRY_BYTES_MIN 8u /* the two lengths */
#define SNAP_CHECKSUM_BYTES 8u

/* ---- walking the data DBs ---- */

typedef void (*entry_fn)(void *ctx, const MDB_val *k, const MDB_val *v);

/* Call fn for every entry under cursor c, in key order.
 * Errors: UNAVAILABLE. */
static mc_err db_walk(struct shard *s, MDB_cursor *c, entry_fn fn, void *ctx)
{
    MDB_cursor_op op = MDB_FIRST;
    for (;;) {
        MDB_val k, v;
        bool found;
        mc_err rv = store_cursor_get(s, c, &k, &v, op, &found);
        if (rv != MC_OK || !found) {
            return rv;
        }
        op = MDB_NEXT;
        fn(ctx, &k, &v);
    }
}

/* One cursor per data DB, so that a snapshot allocates nothing of its own
 * once it has measured (it could not free what alloc gave it). */
struct cursors {
    MDB_cursor *c[STORE_DATA_DBS];
};

/* cs must start zeroed; cursors_close closes what opened, also after a
 * failure here. */
static mc_err cursors_open(struct shard *s, MDB_txn *txn, struct cursors *cs)
{
    mc_err rv = MC_OK;
    for (unsigned db = 0; rv == MC_OK && db < STORE_DATA_DBS; db++) {
        rv = store_cursor_open(s, txn, (enum store_db)db, &cs->c[db]);
    }
    return rv;
}

static void cursors_close(struct cursors *cs)
{
    for (unsigned db = 0; db < STORE_DATA_DBS; db++) {
        if (cs->c[db] != NULL) {
            mdb_cursor_close(cs->c[db]);
        }
    }
}

struct measure {
    uint64_t count;
    size_t bytes;
};

static void measure_entry(void *ctx, const MDB_val *k, const MDB_val *v)
{
    struct measure *m = ctx;
    ASSERT(v->mv_size <= UINT32_MAX);
    m->count++;
    m->bytes += SNAP_ENTRY_BYTES_MIN + k->mv_size + v->mv_size;
}

static void write_entry(void *ctx, const MDB_val *k, const MDB_val *v)
{
    uint8_t **p = ctx;
    bytes_put_u32le(*p, (uint32_t)k->mv_size);
    memcpy(*p + 4, k->mv_data, k->mv_size);
    *p += 4 + k->mv_size;
    bytes_put_u32le(*p, (uint32_t)v->mv_size);
    if (v->mv_size > 0) {
        memcpy(*p + 4, v->mv_data, v->mv_size);
    }
    *p += 4 + v->mv_size;
}

static void hash_entry(void *ctx, const MDB_val *k, const MDB_val *v)
{
    uint64_t *h = ctx;
    uint8_t len[4];
    bytes_put_u32le(len, (uint32_t)k->mv_size);
    *h = base_fnv64(*h, len, sizeof len);
    *h = base_fnv64(*h, k->mv_data, k->mv_size);
    bytes_put_u32le(len, (uint32_t)v->mv_size);
    *h = base_fnv64(*h, len, sizeof len);
    *h = base_fnv64(*h, v->mv_data, v->mv_size);
}

uint64_t shard_state_hash(struct shard *s)
{
    ASSERT(s != NULL);
    struct cursors cs = {{NULL}};
    MDB_txn *txn;
    mc_err rv = store_enter(s);
    if (rv == MC_OK) {
        rv = store_view(s, &txn);
    }
    if (rv == MC_OK) {
        rv = cursors_open(s, txn, &cs);
    }
    uint64_t h = BASE_FNV64_INIT;
    for (unsigned db = 0; rv == MC_OK && db < STORE_DATA_DBS; db++) {
        uint8_t tag[4];
        bytes_put_u32le(tag, db + 1);
        h = base_fnv64(h, tag, sizeof tag);
        rv = db_walk(s, cs.c[db], hash_entry, &h);
    }
    cursors_close(&cs);
    return rv == MC_OK ? h : 0; /* a BROKEN shard has no state to compare */
}

/* ---- taking a snapshot ---- */

static void write_sections(struct shard *s, const struct cursors *cs,
                           const struct measure m[STORE_DATA_DBS],
                           uint8_t **p)
{
    for (unsigned db = 0; db < STORE_DATA_DBS; db++) {
        bytes_put_u32le(*p, db + 1);
        bytes_put_u64le(*p + 4, m[db].count);
        *p += SNAP_SECTION_BYTES;
        uint8_t *start = *p;
        /* The cursors and the txn of the measuring pass: the same pages,
         * the same entries, nothing that can fail. */
        mc_err rv = db_walk(s, cs->c[db], write_entry, p);
        ASSERT(rv == MC_OK);
        ASSERT((size_t)(*p - start) == m[db].bytes);
    }
}

/* Measure every data DB and allocate the snapshot buffer. */
static mc_err snapshot_alloc(struct shard *s, const struct cursors *cs,
                             void *(*alloc)(size_t),
                             struct measure m[STORE_DATA_DBS], uint8_t **out,
                             size_t *total)
{
    *total = SNAP_HEADER_BYTES + SNAP_CHECKSUM_BYTES;
    for (unsigned db = 0; db < STORE_DATA_DBS; db++) {
        mc_err rv = db_walk(s, cs->c[db], measure_entry, &m[db]);
        if (rv != MC_OK) {
            return rv;
        }
        *total += SNAP_SECTION_BYTES + m[db].bytes;
    }
    *out = alloc(*total);
    return *out == NULL ? MC_INTERNAL : MC_OK;
}

struct shard_snap {
    struct shard *s; /* only what other threads may read: env, dbi, cfg */
    MDB_txn *txn;    /* read only, of this snapshot alone; until written */
    uint64_t index;  /* the applied index it holds */
};

mc_err shard_snapshot_begin(struct shard *s, struct shard_snap **out)
{
    ASSERT(s != NULL);
    ASSERT(out != NULL);
    char err[sizeof s->result.message];
    mc_err rv = store_enter(s);
    if (rv == MC_OK) {
        rv = store_commit(s, err, sizeof err);
    }
    if (rv != MC_OK) {
        return rv;
    }
    struct shard_snap *sn = mc_calloc(1, sizeof *sn);
    if (sn == NULL) {
        return MC_INTERNAL;
    }
    /* MDB_NOTLS (store.c): a read txn may move between threads. */
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &sn->txn);
    if (rc != 0) {
        mc_free(sn);
        return store_fail(s, "snapshot txn", rc);
    }
    sn->s = s;
    sn->index = s->applied_index;
    *out = sn;
    return MC_OK;
}

void shard_snapshot_end(struct shard_snap *sn)
{
    if (sn != NULL) {
        if (sn->txn != NULL) {
            mdb_txn_abort(sn->txn); /* never written */
        }
        mc_free(sn);
    }
}

mc_err shard_snapshot(struct shard *s, void *(*alloc)(size_t), void **buf,
                      size_t *len)
{
    struct shard_snap *sn;
    mc_err rv = shard_snapshot_begin(s, &sn);
    if (rv == MC_OK) {
        rv = shard_snapshot_write(sn, alloc, buf, len);
        shard_snapshot_end(sn);
    }
    return rv;
}

mc_err shard_snapshot_write(struct shard_snap *sn, void *(*alloc)(size_t),
                            void **buf, size_t *len)
{
    ASSERT(sn != NULL);
    ASSERT(sn->txn != NULL); /* written once: the txn ends below */
    ASSERT(alloc != NULL);
    ASSERT(buf != NULL);
    ASSERT(len != NULL);
    struct shard *s = sn->s;
    struct cursors cs = {{NULL}};
    mc_err rv = cursors_open(s, sn->txn, &cs);
    struct measure m[STORE_DATA_DBS] = {{0, 0}};
    uint8_t *out = NULL;
    size_t total = 0;
    if (rv == MC_OK) {
        rv = snapshot_alloc(s, &cs, alloc, m, &out, &total);
    }
    if (rv == MC_OK) {
        memcpy(out, snap_magic, sizeof snap_magic);
        bytes_put_u32le(out + 8, SNAP_FORMAT);
        bytes_put_u32le(out + 12, s->cfg.id);
        bytes_put_u64le(out + 16, sn->index);
        uint8_t *p = out + SNAP_HEADER_BYTES;
        write_sections(s, &cs, m, &p);
        bytes_put_u64le(p, base_fnv64(BASE_FNV64_INIT, out,
                                      (size_t)(p - out)));
        ASSERT((size_t)(p - out) + SNAP_CHECKSUM_BYTES == total);
        *buf = out;
        *len = total;
    }
    cursors_close(&cs);
    /* The buffer holds the state now. Held until _end (after raft stored
     * the snapshot), the read txn kept LMDB from reusing any page freed
     * meanwhile: in make bench's load of 1M records, 61-122 B of free
     * pages per record. */
    mdb_txn_abort(sn->txn);
    sn->txn = NULL;
    return rv;
}

/* ---- reading one back ---- */

struct reader {
    const uint8_t *p;
    size_t left;
};

static bool take(struct reader *r, size_t n, const uint8_t **out)
{
    if (n > r->left) {
        return false;
    }
    *out = r->p;
    r->p += n;
    r->left -= n;
    return true;
}

static bool take_u32(struct reader *r, uint32_t *v)
{
    const uint8_t *p;
    if (!take(r, 4, &p)) {
        return false;
    }
    *v = bytes_get_u32le(p);
    return true;
}

/* Whether one entry may go into db: the same checks as reads make, so a
 * restored store holds nothing that apply or list would choke on. */
static bool entry_valid(enum store_db db, const uint8_t *k, size_t k_len,
                        const uint8_t *v, size_t v_len)
{
    if (k_len == 0 || k_len > RECORD_LMDB_KEY_BYTES_MAX) {
        return false;
    }
    struct record r;
    struct dedupe_entry e;
    int64_t at;
    uint8_t tier;
    const uint8_t *dbkey;
    size_t dbkey_len;
    switch (db) {
    case STORE_DB_SHORT:
    case STORE_DB_MID:
    case STORE_DB_LONG:
        return record_decode(k, k_len, v, v_len, &r) &&
               store_tier_db(r.tier) == db;
    case STORE_DB_EXPIRY:
        return v_len == 0 && record_expkey_parse(k, k_len, &at, &tier,
                                                 &dbkey, &dbkey_len);
    case STORE_DB_DEDUPE:
        return k_len == DEDUPE_KEY_BYTES && dedupe_decode(v, v_len, &e);
    case STORE_DB_EVENTS:
        return watch_entry_valid(k, k_len, v, v_len);
    default:
        return false;
    }
}

/* Read one section of db; with load, also write its entries. Only a
 * section that passed a pass without load may be loaded. index is the
 * snapshot's applied index. */
static mc_err read_section(struct shard *s, struct reader *r,
                           enum store_db db, uint64_t index, bool load,
                           const char **why)
{
    const uint8_t *head;
    if (!take(r, SNAP_SECTION_BYTES, &head) ||
        bytes_get_u32le(head) != (uint32_t)db + 1) {
        *why = "section header";
        return MC_INVALID_ARGUMENT;
    }
    uint64_t count = bytes_get_u64le(head + 4);
    if (count > r->left / SNAP_ENTRY_BYTES_MIN) {
        *why = "entry count";
        return MC_INVALID_ARGUMENT;
    }
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    struct watch_tally tally = {0};
    for (uint64_t i = 0; i < count; i++) {
        uint32_t k_len, v_len;
        const uint8_t *k, *v;
        if (!take_u32(r, &k_len) || !take(r, k_len, &k) ||
            !take_u32(r, &v_len) || !take(r, v_len, &v)) {
            *why = "entry length";
            return MC_INVALID_ARGUMENT;
        }
        if (!entry_valid(db, k, k_len, v, v_len) ||
            (prev != NULL && bytes_cmp(prev, prev_len, k, k_len) >= 0)) {
            *why = "entry";
            return MC_INVALID_ARGUMENT;
        }
        prev = k;
        prev_len = k_len;
        if (db == STORE_DB_EVENTS) {
            watch_tally_add(&tally, k, k_len, v, v_len);
        }
        mc_err rv = load ? store_append(s, db, k, k_len, v, v_len) : MC_OK;
        if (rv != MC_OK) {
            return rv;
        }
    }
    if (db == STORE_DB_EVENTS && !watch_tally_ok(&tally, index)) {
        *why = "watch ring";
        return MC_INVALID_ARGUMENT;
    }
    return MC_OK;
}

/* Check the whole buffer (or, with load, write it); *index is its applied
 * index. A snapshot of format 1 gets an empty ring that knows nothing up
 * to *index. Errors: INVALID_ARGUMENT with *why; UNAVAILABLE when
 * loading. */
static mc_err read_snapshot(struct shard *s, const uint8_t *buf, size_t len,
                            bool load, uint64_t *index, const char **why)
{
    const uint8_t *head;
    struct reader r = {buf, len};
    if (len < SNAP_HEADER_BYTES + SNAP_CHECKSUM_BYTES ||
        bytes_get_u64le(buf + len - SNAP_CHECKSUM_BYTES) !=
            base_fnv64(BASE_FNV64_INIT, buf, len - SNAP_CHECKSUM_BYTES)) {
        *why = "length or checksum";
        return MC_INVALID_ARGUMENT;
    }
    r.left -= SNAP_CHECKSUM_BYTES;
    take(&r, SNAP_HEADER_BYTES, &head);
    uint32_t format = bytes_get_u32le(head + 8);
    if (memcmp(head, snap_magic, sizeof snap_magic) != 0 ||
        (format != SNAP_FORMAT && format != SNAP_FORMAT_NO_RING) ||
        bytes_get_u32le(head + 12) != s->cfg.id) {
        *why = "magic, format or shard id";
        return MC_INVALID_ARGUMENT;
    }
    *index = bytes_get_u64le(head + 16);
    for (unsigned db = 0; db < STORE_DATA_DBS; db++) {
        if (db == STORE_DB_EVENTS && format == SNAP_FORMAT_NO_RING) {
            continue;
        }
        mc_err rv = read_section(s, &r, (enum store_db)db, *index, load, why);
        if (rv != MC_OK) {
            return rv;
        }
    }
    if (r.left != 0) {
        *why = "trailing bytes";
        return MC_INVALID_ARGUMENT;
    }
    if (load && format == SNAP_FORMAT_NO_RING) {
        return watch_ring_reset(s, *index);
    }
    return MC_OK;
}

bool shard_restore_is_needed(struct shard *s, const void *buf, size_t len)
{
    ASSERT(s != NULL);
    const uint8_t *b = buf;
    if (len < SNAP_HEADER_BYTES + SNAP_CHECKSUM_BYTES ||
        memcmp(b, snap_magic, sizeof snap_magic) != 0 ||
        bytes_get_u32le(b + 12) != s->cfg.id) {
        return true;
    }
    return bytes_get_u64le(b + 16) > s->applied_index;
}

mc_err shard_restore(struct shard *s, const void *buf, size_t len)
{
    ASSERT(s != NULL);
    ASSERT(buf != NULL || len == 0);
    mc_err rv = store_enter(s);
    if (rv != MC_OK) {
        return rv;
    }
    uint64_t index;
    const char *why = "";
    rv = read_snapshot(s, buf, len, false, &index, &why);
    if (rv != MC_OK) {
        LOG_WARN("snapshot refused shard=%u bytes=%zu bad=%s", s->cfg.id, len,
                 why);
        return rv;
    }
    if (index <= s->applied_index) {
        return MC_OK; /* LMDB is as new or newer (DESIGN.md §5) */
    }
    char err[sizeof s->result.message];
    rv = store_commit(s, err, sizeof err);
    if (rv == MC_OK) {
        rv = store_write_begin(s);
    }
    if (rv == MC_OK) {
        rv = store_drop_data(s);
    }
    if (rv == MC_OK) {
        rv = read_snapshot(s, buf, len, true, &index, &why);
        ASSERT(rv != MC_INVALID_ARGUMENT); /* it passed the check above */
    }
    if (rv != MC_OK) {
        return rv;
    }
    s->applied_index = index;
    return store_commit(s, err, sizeof err);
}
