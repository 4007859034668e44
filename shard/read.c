/* Reads of a shard: get, list and the leader's expiry scan. They see the
 * state as of the last applied entry (the open write txn included), and
 * hide records that have expired by the caller's now_ms even before the
 * sweep removes them. Records handed out borrow LMDB memory until the next
 * shard call.
 *
 * Listing merges the three tier DBs, which hold disjoint keys, by LMDB key.
 * LMDB order is record key order except inside a run of LMDB keys that
 * share their first SHARD_DBKEY_PREFIX bytes (long keys end in a hash
 * there), so each such run is gathered, the smallest keys of it kept, and
 * sorted by full record key before it is handed out. A key outside the run
 * compares with every key inside it as its LMDB key does, so sorting runs
 * is enough for byte-wise order overall.
 *
 * A LIKE pattern (proto/like.c) lists like a prefix, its literal prefix,
 * with each key tested against the pattern. As matches may be rare, a
 * pattern page examines at most scan_max records: when it stops there, it
 * reports the greatest key it examined, and the next page starts after
 * that key even when this one found nothing. Keys are examined in key
 * order (a run of long keys all at once, and every key after a run is
 * greater than the run's), so every key up to that one was examined. */
#include <stdlib.h>
#include <string.h>

#include "shard/record.h"

#define LIST_TIERS (MC_TIER_LONG - MC_TIER_SHORT + 1)

static void record_out(const struct record *r, size_t ns_len,
                       bool with_value, struct shard_record *out)
{
    ASSERT(r->rkey_len > ns_len);
    out->key = r->rkey + ns_len + 1;
    out->key_len = r->rkey_len - ns_len - 1;
    out->value = with_value ? r->value : NULL;
    out->value_len = with_value ? r->value_len : 0;
    out->version = r->version;
    out->create_rev = r->create_rev;
    out->mod_rev = r->mod_rev;
    out->expires_at = r->expires_at;
    out->updated_at = r->updated_at;
    out->tier = r->tier;
}

mc_err shard_get(struct shard *s, int64_t now_ms, const uint8_t *ns,
                 size_t ns_len, const uint8_t *key, size_t key_len,
                 struct shard_record *out)
{
    ASSERT(s != NULL);
    ASSERT(ns != NULL);
    ASSERT(ns_len > 0);
    ASSERT(ns_len <= MC_NS_BYTES_MAX);
    ASSERT(key != NULL);
    ASSERT(key_len > 0);
    ASSERT(key_len <= MC_KEY_BYTES_MAX);
    ASSERT(out != NULL);
    MDB_txn *txn;
    mc_err rv = store_enter(s);
    if (rv == MC_OK) {
        rv = store_view(s, &txn);
    }
    if (rv != MC_OK) {
        return rv;
    }
    struct record_key k;
    struct record_dbkey dk;
    record_key_make(ns, ns_len, key, key_len, &k);
    record_dbkey_make(k.bytes, k.len, &dk);
    struct record r;
    bool found;
    rv = record_find_any(s, txn, &k, &dk, &r, &found);
    if (rv != MC_OK) {
        return rv;
    }
    if (!found || !record_is_live(&r, now_ms)) {
        return MC_NOT_FOUND;
    }
    record_out(&r, ns_len, true, out);
    return MC_OK;
}

/* ---- list ---- */

/* One tier's cursor in the merge. */
struct list_head {
    MDB_cursor *c;
    MDB_val k;
    MDB_val v;
    bool valid; /* k, v hold an entry that may match */
};

struct list_scan {
    struct shard *s;
    int64_t now_ms;
    size_t ns_len;
    struct record_key want; /* ns '\0' prefix: what every match starts with */
    size_t end_len;         /* ...and its LMDB key with want[0..end_len) */
    struct record_key after; /* ns '\0' start_after, when has_after */
    bool has_after;
    const uint8_t *pattern; /* NULL: a prefix list */
    size_t pattern_len;
    uint32_t limit;
    uint32_t emitted;
    uint32_t scanned;  /* records in range examined (pattern lists) */
    uint32_t examined; /* records decoded */
    const uint8_t *last; /* the greatest record key of them */
    size_t last_len;
    bool keys_only;
    bool more;
    bool done;
    shard_list_cb cb;
    void *arg;
    struct list_head heads[LIST_TIERS];
    struct record *run; /* candidates of a long-key run */
    uint32_t run_n;
    uint32_t run_cap;
};

/* r is in the range of the list: under want, after the cursor. A pattern
 * list counts it against its scan budget. */
static bool list_in_range(struct list_scan *l, const struct record *r)
{
    bool in = bytes_has_prefix(r->rkey, r->rkey_len, l->want.bytes,
                               l->want.len) &&
              (!l->has_after || bytes_cmp(r->rkey, r->rkey_len,
                                          l->after.bytes, l->after.len) > 0);
    if (in && l->pattern != NULL) {
        l->scanned++;
        if (l->last == NULL ||
            bytes_cmp(r->rkey, r->rkey_len, l->last, l->last_len) > 0) {
            l->last = r->rkey;
            l->last_len = r->rkey_len;
        }
    }
    return in;
}

static bool list_matches(struct list_scan *l, const struct record *r)
{
    if (!list_in_range(l, r) || !record_is_live(r, l->now_ms)) {
        return false;
    }
    if (l->pattern == NULL) {
        return true;
    }
    ASSERT(r->rkey_len > l->ns_len);
    return proto_like_match(l->pattern, l->pattern_len,
                            r->rkey + l->ns_len + 1,
                            r->rkey_len - l->ns_len - 1);
}

/* Hand the match r out if the page has room; a match beyond the page only
 * tells that there is more. */
static void list_emit(struct list_scan *l, const struct record *r)
{
    if (l->emitted == l->limit) {
        l->more = true;
        l->done = true;
        return;
    }
    struct shard_record out;
    record_out(r, l->ns_len, !l->keys_only, &out);
    l->cb(l->arg, &out);
    l->emitted++;
}

/* Hand r out if it matches and the page has room. */
static void list_consider(struct list_scan *l, const struct record *r)
{
    if (list_matches(l, r)) {
        list_emit(l, r);
    }
}

static mc_err list_decode(struct list_scan *l, const struct list_head *h,
                          struct record *r)
{
    l->examined++;
    if (!record_decode(h->k.mv_data, h->k.mv_size, h->v.mv_data,
                       h->v.mv_size, r)) {
        return store_fail(l->s, "record decode", MDB_CORRUPTED);
    }
    return MC_OK;
}

/* Move h by op (MDB_SET_RANGE with h->k set, or MDB_NEXT); it stays valid
 * while its LMDB keys can belong to a match. */
static mc_err list_move(struct list_scan *l, struct list_head *h,
                        MDB_cursor_op op)
{
    bool found;
    mc_err rv = store_cursor_get(l->s, h->c, &h->k, &h->v, op, &found);
    h->valid = rv == MC_OK && found &&
               bytes_has_prefix(h->k.mv_data, h->k.mv_size, l->want.bytes,
                                l->end_len);
    return rv;
}

/* The head with the smallest LMDB key, or NULL when all are done. */
static struct list_head *list_min(struct list_scan *l)
{
    struct list_head *min = NULL;
    for (unsigned t = 0; t < LIST_TIERS; t++) {
        struct list_head *h = &l->heads[t];
        if (h->valid &&
            (min == NULL || bytes_cmp(h->k.mv_data, h->k.mv_size,
                                      min->k.mv_data, min->k.mv_size) < 0)) {
            min = h;
        }
    }
    return min;
}

static int record_cmp(const void *a, const void *b)
{
    const struct record *x = a;
    const struct record *y = b;
    return bytes_cmp(x->rkey, x->rkey_len, y->rkey, y->rkey_len);
}

/* Keep r among the `need` smallest candidates: the array holds up to twice
 * that, and is cut back to the smallest `need` when full. */
static void run_add(struct list_scan *l, const struct record *r,
                    uint32_t need)
{
    ASSERT(l->run_cap >= 2 * need);
    if (l->run_n == 2 * need) {
        qsort(l->run, l->run_n, sizeof l->run[0], record_cmp);
        l->run_n = need;
    }
    l->run[l->run_n++] = *r;
}

/* Gather the run of LMDB keys that start with prefix p from every tier,
 * then hand its matches out in record key order. */
static mc_err list_run(struct list_scan *l, const uint8_t *first_key)
{
    uint8_t p[SHARD_DBKEY_PREFIX];
    memcpy(p, first_key, sizeof p);
    uint32_t need = l->limit - l->emitted + 1; /* +1: is there more? */
    if (l->run == NULL) {
        /* need only shrinks while a page fills: one allocation will do. */
        l->run = mc_malloc(2 * (size_t)need * sizeof l->run[0]);
        if (l->run == NULL) {
            return MC_INTERNAL;
        }
        l->run_cap = 2 * need;
    }
    l->run_n = 0;
    for (unsigned t = 0; t < LIST_TIERS; t++) {
        struct list_head *h = &l->heads[t];
        while (h->valid &&
               bytes_has_prefix(h->k.mv_data, h->k.mv_size, p, sizeof p)) {
            struct record r;
            mc_err rv = list_decode(l, h, &r);
            if (rv == MC_OK && list_matches(l, &r)) {
                run_add(l, &r, need);
            }
            if (rv == MC_OK) {
                rv = list_move(l, h, MDB_NEXT);
            }
            if (rv != MC_OK) {
                return rv;
            }
        }
    }
    qsort(l->run, l->run_n, sizeof l->run[0], record_cmp);
    for (uint32_t i = 0; i < l->run_n && !l->done; i++) {
        list_emit(l, &l->run[i]);
    }
    return MC_OK;
}

/* Take the next entry (or run) in LMDB key order. */
static mc_err list_step(struct list_scan *l)
{
    struct list_head *h = list_min(l);
    if (h == NULL) {
        l->done = true;
        return MC_OK;
    }
    if (h->k.mv_size >= SHARD_DBKEY_PREFIX) {
        return list_run(l, h->k.mv_data);
    }
    struct record r;
    mc_err rv = list_decode(l, h, &r);
    if (rv != MC_OK) {
        return rv;
    }
    list_consider(l, &r);
    return list_move(l, h, MDB_NEXT);
}

/* Place every head at the first LMDB key that can hold a match: the
 * larger of want and after, both cut to an LMDB key's common prefix. */
static mc_err list_open(struct list_scan *l, MDB_txn *txn)
{
    const struct record_key *from = &l->want;
    if (l->has_after && bytes_cmp(l->after.bytes, l->after.len,
                                  l->want.bytes, l->want.len) > 0) {
        from = &l->after;
    }
    size_t from_len =
        from->len < SHARD_DBKEY_PREFIX ? from->len : SHARD_DBKEY_PREFIX;
    for (unsigned t = 0; t < LIST_TIERS; t++) {
        struct list_head *h = &l->heads[t];
        mc_err rv = store_cursor_open(l->s, txn,
                                      store_tier_db(MC_TIER_SHORT + t), &h->c);
        if (rv == MC_OK) {
            h->k = (MDB_val){.mv_size = from_len, .mv_data = (void *)from->bytes};
            rv = list_move(l, h, MDB_SET_RANGE);
        }
        if (rv != MC_OK) {
            return rv;
        }
    }
    return MC_OK;
}

static void list_close(struct list_scan *l)
{
    for (unsigned t = 0; t < LIST_TIERS; t++) {
        if (l->heads[t].c != NULL) {
            mdb_cursor_close(l->heads[t].c);
        }
    }
    mc_free(l->run);
}

/* A pattern list that used up its scan budget stops between two steps,
 * unless nothing is left anyway. */
static bool list_budget_spent(struct list_scan *l, uint32_t scan_max)
{
    return l->pattern != NULL && !l->done && l->scanned >= scan_max &&
           list_min(l) != NULL;
}

mc_err shard_list(struct shard *s, int64_t now_ms,
                  const struct shard_list_query *q, shard_list_cb cb,
                  void *arg, struct shard_list_end *end)
{
    ASSERT(s != NULL);
    ASSERT(q != NULL);
    ASSERT(q->ns != NULL);
    ASSERT(q->ns_len > 0);
    ASSERT(q->ns_len <= MC_NS_BYTES_MAX);
    ASSERT(q->prefix != NULL || q->prefix_len == 0);
    ASSERT(q->prefix_len <= MC_KEY_BYTES_MAX);
    ASSERT(q->pattern != NULL || q->pattern_len == 0);
    ASSERT(q->pattern_len <= MC_KEY_BYTES_MAX);
    ASSERT(q->pattern_len == 0 || q->prefix_len == 0);
    ASSERT(q->pattern_len == 0 || q->scan_max > 0);
    ASSERT(q->start_after != NULL || q->start_after_len == 0);
    ASSERT(q->start_after_len <= MC_KEY_BYTES_MAX);
    ASSERT(q->limit <= MC_LIST_PAGE_MAX);
    ASSERT(cb != NULL);
    ASSERT(end != NULL);
    memset(end, 0, sizeof *end);
    MDB_txn *txn;
    mc_err rv = store_enter(s);
    if (rv == MC_OK) {
        rv = store_view(s, &txn);
    }
    if (rv != MC_OK) {
        return rv;
    }
    struct list_scan l = {.s = s, .now_ms = now_ms, .ns_len = q->ns_len,
                          .limit = q->limit, .keys_only = q->keys_only,
                          .cb = cb, .arg = arg,
                          .has_after = q->start_after_len > 0};
    const uint8_t *prefix = q->prefix;
    size_t prefix_len = q->prefix_len;
    uint8_t literal[MC_KEY_BYTES_MAX];
    if (q->pattern_len > 0) {
        l.pattern = q->pattern;
        l.pattern_len = q->pattern_len;
        prefix = literal;
        prefix_len = proto_like_prefix(q->pattern, q->pattern_len, literal);
    }
    record_key_make(q->ns, q->ns_len, prefix, prefix_len, &l.want);
    l.end_len = l.want.len < SHARD_DBKEY_PREFIX ? l.want.len
                                                : SHARD_DBKEY_PREFIX;
    record_key_make(q->ns, q->ns_len, q->start_after, q->start_after_len,
                    &l.after);
    rv = list_open(&l, txn);
    while (rv == MC_OK && !l.done) {
        rv = list_step(&l);
        if (rv == MC_OK && list_budget_spent(&l, q->scan_max)) {
            ASSERT(l.last != NULL);
            end->more = true;
            end->scanned_to = l.last + q->ns_len + 1;
            end->scanned_to_len = l.last_len - q->ns_len - 1;
            break;
        }
    }
    end->more = rv == MC_OK && (l.more || end->more);
    end->examined = l.examined;
    list_close(&l);
    return rv;
}

/* ---- the leader's expiry sweep ---- */

/* The record an expiry entry points at; a missing or different one means
 * the index is out of step with the records. */
static mc_err expired_record(struct shard *s, MDB_txn *txn,
                             const MDB_val *ek, struct record *r)
{
    int64_t at;
    uint8_t tier;
    const uint8_t *dbkey;
    size_t dbkey_len;
    if (!record_expkey_parse(ek->mv_data, ek->mv_size, &at, &tier, &dbkey,
                             &dbkey_len)) {
        return store_fail(s, "expiry key decode", MDB_CORRUPTED);
    }
    MDB_val v;
    bool found;
    mc_err rv = store_get(s, txn, store_tier_db(tier), dbkey, dbkey_len, &v,
                          &found);
    if (rv != MC_OK) {
        return rv;
    }
    if (!found ||
        !record_decode(dbkey, dbkey_len, v.mv_data, v.mv_size, r) ||
        r->tier != tier || r->expires_at != at) {
        return store_fail(s, "expiry index", MDB_CORRUPTED);
    }
    return MC_OK;
}

mc_err shard_expired_scan(struct shard *s, int64_t now_ms, uint32_t max,
                          shard_expired_cb cb, void *arg)
{
    ASSERT(s != NULL);
    ASSERT(cb != NULL);
    MDB_txn *txn;
    MDB_cursor *c;
    mc_err rv = store_enter(s);
    if (rv == MC_OK) {
        rv = store_view(s, &txn);
    }
    if (rv == MC_OK) {
        rv = store_cursor_open(s, txn, STORE_DB_EXPIRY, &c);
    }
    if (rv != MC_OK) {
        return rv;
    }
    MDB_cursor_op op = MDB_FIRST;
    for (uint32_t n = 0; n < max; n++) {
        MDB_val k, v;
        bool found;
        rv = store_cursor_get(s, c, &k, &v, op, &found);
        if (rv != MC_OK || !found) {
            break;
        }
        op = MDB_NEXT;
        struct record r;
        rv = expired_record(s, txn, &k, &r);
        if (rv != MC_OK || r.expires_at > now_ms) {
            break; /* oldest first: the rest expire later */
        }
        const uint8_t *nul = memchr(r.rkey, '\0', r.rkey_len);
        ASSERT(nul != NULL);
        size_t ns_len = (size_t)(nul - r.rkey);
        cb(arg, r.tier, r.rkey, ns_len, nul + 1, r.rkey_len - ns_len - 1);
    }
    mdb_cursor_close(c);
    return rv;
}
