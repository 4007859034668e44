/* The watch event ring of a shard: apply writes one event per change of a
 * key into the events DB, in the txn of the change, and drops the oldest
 * events beyond the ring's bounds; watches read the ring from a revision
 * on. The layout is in watch.h; which changes make which events is
 * apply.c's business.
 *
 * Trimming is part of apply, so it is as deterministic as the rest of it:
 * it depends only on the ring (count and bytes in the control entry) and
 * the configured bounds, which must be the same on every replica. The
 * compaction point only grows; invariant (4) of shard.h holds because
 * events are dropped oldest first. */
#include <string.h>

#include "shard/watch.h"

/* Offsets in the event header of format 1 (watch.h). */
enum {
    OFF_FORMAT = 0,
    OFF_TYPE = 1,
    OFF_TIER = 2,
    OFF_NS_LEN = 3,
    OFF_KEY_LEN = 4,
    OFF_ZERO = 6,
    OFF_VERSION = 8,
    OFF_CREATE_REV = 16,
    OFF_EXPIRES_AT = 24,
    OFF_UPDATED_AT = 32,
};
_Static_assert(OFF_UPDATED_AT + 8 == WATCH_EVENT_FIXED_HEADER_BYTES,
               "event header layout");

static const uint8_t control_key[WATCH_KEY_BYTES];

struct control {
    uint64_t compact_rev;
    uint64_t count;
    uint64_t bytes;
};

static void key_make(uint8_t k[WATCH_KEY_BYTES], uint64_t rev, uint16_t seq)
{
    bytes_put_u64be(k, rev);
    k[8] = (uint8_t)(seq >> 8);
    k[9] = (uint8_t)seq;
}

static uint64_t key_rev(const uint8_t *k)
{
    return bytes_get_u64be(k);
}

static uint16_t key_seq(const uint8_t *k)
{
    return (uint16_t)(k[8] << 8 | k[9]);
}

static bool type_valid(uint8_t type)
{
    return type >= MC_EVENT_PUT && type <= MC_EVENT_PROMOTE;
}

static bool type_has_value(uint8_t type)
{
    return type == MC_EVENT_PUT || type == MC_EVENT_PROMOTE;
}

/* Format 1's header into out; *head is its length. */
static bool header_read_fixed(const uint8_t *v, size_t v_len,
                              struct shard_event *out, size_t *ns_len,
                              size_t *head)
{
    if (v_len < WATCH_EVENT_FIXED_HEADER_BYTES ||
        bytes_get_u16le(v + OFF_ZERO) != 0) {
        return false;
    }
    *ns_len = v[OFF_NS_LEN];
    out->key_len = bytes_get_u16le(v + OFF_KEY_LEN);
    out->version = bytes_get_u64le(v + OFF_VERSION);
    out->create_rev = bytes_get_u64le(v + OFF_CREATE_REV);
    out->expires_at = (int64_t)bytes_get_u64le(v + OFF_EXPIRES_AT);
    out->updated_at = (int64_t)bytes_get_u64le(v + OFF_UPDATED_AT);
    *head = WATCH_EVENT_FIXED_HEADER_BYTES;
    return true;
}

/* Format 2's header into out (out->revision set); *head is its length. */
static bool header_read(const uint8_t *v, size_t v_len,
                        struct shard_event *out, size_t *ns_len,
                        size_t *head)
{
    uint64_t f[5]; /* key_len, version, created, updated, expires */
    size_t n = 4;
    if (v_len < n) {
        return false;
    }
    for (unsigned i = 0; i < 5; i++) {
        size_t len = bytes_get_varint(v + n, v_len - n, &f[i]);
        if (len == 0) {
            return false;
        }
        n += len;
    }
    int64_t created = bytes_unzigzag(f[2]);
    if (f[0] > MC_KEY_BYTES_MAX || f[3] > INT64_MAX ||
        (created > 0 && (uint64_t)created > out->revision) ||
        (created < 0 && -(uint64_t)created > UINT64_MAX - out->revision)) {
        return false;
    }
    *ns_len = v[OFF_NS_LEN];
    out->key_len = f[0];
    out->version = f[1];
    out->create_rev = out->revision - (uint64_t)created;
    out->updated_at = (int64_t)f[3];
    out->expires_at = 0;
    if (f[4] != 0) {
        int64_t d = bytes_unzigzag(f[4] - 1);
        if ((d > 0 && out->updated_at > INT64_MAX - d) ||
            out->updated_at + d <= 0) {
            return false;
        }
        out->expires_at = out->updated_at + d;
    }
    *head = n;
    return true;
}

/* Decode the event v under key k. False when malformed; out and *ns borrow
 * k and v. */
static bool event_decode(const uint8_t *k, size_t k_len, const uint8_t *v,
                         size_t v_len, struct shard_event *out,
                         const uint8_t **ns, size_t *ns_len)
{
    if (k_len != WATCH_KEY_BYTES || key_rev(k) == 0 || v_len < 1) {
        return false;
    }
    out->revision = key_rev(k);
    out->seq = key_seq(k);
    size_t head;
    if (!(v[OFF_FORMAT] == WATCH_EVENT_FORMAT
              ? header_read(v, v_len, out, ns_len, &head)
              : v[OFF_FORMAT] == WATCH_EVENT_FORMAT_FIXED &&
                    header_read_fixed(v, v_len, out, ns_len, &head))) {
        return false;
    }
    out->type = v[OFF_TYPE];
    out->tier = v[OFF_TIER];
    size_t end = head + *ns_len + out->key_len;
    if (!type_valid(out->type) || out->tier < MC_TIER_SHORT ||
        out->tier > MC_TIER_LONG || *ns_len == 0 ||
        *ns_len > MC_NS_BYTES_MAX || out->key_len == 0 ||
        out->key_len > MC_KEY_BYTES_MAX || out->expires_at < 0 ||
        end > v_len || (!type_has_value(out->type) && end != v_len)) {
        return false;
    }
    *ns = v + head;
    out->key = *ns + *ns_len;
    out->value = v + end;
    out->value_len = v_len - end;
    return true;
}

/* The format 2 header of an event of r of type at revision rev, into h;
 * returns its length. */
static size_t header_make(uint64_t rev, uint8_t type, const struct record *r,
                          size_t ns_len, size_t key_len,
                          uint8_t h[WATCH_EVENT_HEADER_BYTES_MAX])
{
    ASSERT(r->updated_at >= 0);
    ASSERT(r->expires_at >= 0);
    size_t n = 0;
    h[n++] = WATCH_EVENT_FORMAT;
    h[n++] = type;
    h[n++] = r->tier;
    h[n++] = (uint8_t)ns_len;
    n += bytes_put_varint(h + n, key_len);
    n += bytes_put_varint(h + n, r->version);
    /* A record is created at or before any event of it; zigzag keeps a
     * restored oddity encodable all the same. */
    n += bytes_put_varint(h + n, bytes_zigzag((int64_t)(rev - r->create_rev)));
    n += bytes_put_varint(h + n, (uint64_t)r->updated_at);
    uint64_t expires = 0;
    if (r->expires_at != 0) {
        expires = bytes_zigzag(r->expires_at - r->updated_at) + 1;
    }
    n += bytes_put_varint(h + n, expires);
    ASSERT(n <= WATCH_EVENT_HEADER_BYTES_MAX);
    return n;
}

/* ---- the control entry ---- */

static mc_err control_read(struct shard *s, MDB_txn *txn, struct control *c)
{
    MDB_val v;
    bool found;
    memset(c, 0, sizeof *c);
    mc_err rv = store_get(s, txn, STORE_DB_EVENTS, control_key,
                          sizeof control_key, &v, &found);
    if (rv != MC_OK || !found) {
        return rv; /* a ring that never held an event */
    }
    if (v.mv_size != WATCH_CONTROL_BYTES) {
        return store_fail(s, "watch ring control", MDB_CORRUPTED);
    }
    const uint8_t *p = v.mv_data;
    c->compact_rev = bytes_get_u64le(p);
    c->count = bytes_get_u64le(p + 8);
    c->bytes = bytes_get_u64le(p + 16);
    return MC_OK;
}

static mc_err control_write(struct shard *s, const struct control *c)
{
    uint8_t v[WATCH_CONTROL_BYTES];
    bytes_put_u64le(v, c->compact_rev);
    bytes_put_u64le(v + 8, c->count);
    bytes_put_u64le(v + 16, c->bytes);
    return store_put(s, STORE_DB_EVENTS, control_key, sizeof control_key, v,
                     sizeof v);
}

mc_err watch_ring_reset(struct shard *s, uint64_t compact_rev)
{
    ASSERT(s->txn != NULL);
    struct control c = {.compact_rev = compact_rev};
    return control_write(s, &c);
}

/* ---- writing ---- */

static bool ring_is_over(const struct shard *s, const struct control *c)
{
    return c->count > 0 && (c->count > s->cfg.watch_ring_events ||
                            c->bytes > MC_WATCH_RING_BYTES_MAX);
}

/* Drop the oldest events until the ring is within its bounds. */
static mc_err trim(struct shard *s, struct control *c)
{
    if (!ring_is_over(s, c)) {
        return MC_OK;
    }
    MDB_cursor *cur = NULL;
    mc_err rv = store_cursor_open(s, s->txn, STORE_DB_EVENTS, &cur);
    while (rv == MC_OK && ring_is_over(s, c)) {
        /* The first key after the control entry: the oldest event. Seek
         * again after each delete rather than trust where a cursor stands
         * after a delete by another path. */
        uint8_t first[WATCH_KEY_BYTES];
        key_make(first, 0, 1);
        MDB_val k = {.mv_size = sizeof first, .mv_data = first};
        MDB_val v;
        bool found;
        rv = store_cursor_get(s, cur, &k, &v, MDB_SET_RANGE, &found);
        if (rv != MC_OK) {
            break;
        }
        uint64_t size = k.mv_size + v.mv_size;
        if (!found || k.mv_size != WATCH_KEY_BYTES || c->bytes < size) {
            rv = store_fail(s, "watch ring count", MDB_CORRUPTED);
            break;
        }
        uint8_t victim[WATCH_KEY_BYTES];
        memcpy(victim, k.mv_data, sizeof victim);
        uint64_t rev = key_rev(victim);
        rv = store_del(s, STORE_DB_EVENTS, victim, sizeof victim);
        c->count--;
        c->bytes -= size;
        c->compact_rev = rev > c->compact_rev ? rev : c->compact_rev;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rv;
}

mc_err watch_emit(struct shard *s, uint64_t rev, uint8_t type,
                  const struct record *r)
{
    ASSERT(s->txn != NULL);
    ASSERT(rev > 0);
    ASSERT(type_valid(type));
    ASSERT(r->tier >= MC_TIER_SHORT && r->tier <= MC_TIER_LONG);
    if (rev != s->event_rev) {
        s->event_rev = rev;
        s->event_seq = 0;
    }
    ASSERT(s->event_seq <= WATCH_SEQ_MAX);
    uint16_t seq = (uint16_t)s->event_seq++;

    const uint8_t *nul = memchr(r->rkey, '\0', r->rkey_len);
    ASSERT(nul != NULL);
    size_t ns_len = (size_t)(nul - r->rkey);
    size_t key_len = r->rkey_len - ns_len - 1;
    ASSERT(ns_len > 0 && ns_len <= MC_NS_BYTES_MAX);
    ASSERT(key_len > 0 && key_len <= MC_KEY_BYTES_MAX);
    size_t value_len = type_has_value(type) ? r->value_len : 0;
    uint8_t h[WATCH_EVENT_HEADER_BYTES_MAX];
    size_t head = header_make(rev, type, r, ns_len, key_len, h);
    size_t n = head + ns_len + key_len + value_len;

    uint8_t k[WATCH_KEY_BYTES];
    key_make(k, rev, seq);
    uint8_t *p;
    mc_err rv = store_reserve(s, STORE_DB_EVENTS, k, sizeof k, n, &p);
    if (rv != MC_OK) {
        return rv;
    }
    memcpy(p, h, head);
    memcpy(p + head, r->rkey, ns_len);
    memcpy(p + head + ns_len, nul + 1, key_len);
    if (value_len > 0) {
        memcpy(p + head + ns_len + key_len, r->value, value_len);
    }

    struct control c;
    rv = control_read(s, s->txn, &c);
    if (rv != MC_OK) {
        return rv;
    }
    c.count++;
    c.bytes += sizeof k + n;
    rv = trim(s, &c);
    return rv == MC_OK ? control_write(s, &c) : rv;
}

/* ---- checking snapshots ---- */

bool watch_entry_valid(const uint8_t *k, size_t k_len, const uint8_t *v,
                       size_t v_len)
{
    if (k_len != WATCH_KEY_BYTES) {
        return false;
    }
    if (memcmp(k, control_key, sizeof control_key) == 0) {
        return v_len == WATCH_CONTROL_BYTES;
    }
    struct shard_event e;
    const uint8_t *ns;
    size_t ns_len;
    char why[8];
    return event_decode(k, k_len, v, v_len, &e, &ns, &ns_len) &&
           proto_ns_check(ns, ns_len, why, sizeof why) == MC_OK &&
           proto_key_check(e.key, e.key_len, why, sizeof why) == MC_OK;
}

void watch_tally_add(struct watch_tally *t, const uint8_t *k, size_t k_len,
                     const uint8_t *v, size_t v_len)
{
    ASSERT(k_len == WATCH_KEY_BYTES);
    if (memcmp(k, control_key, sizeof control_key) == 0) {
        ASSERT(v_len == WATCH_CONTROL_BYTES);
        t->has_control = true;
        t->control_compact_rev = bytes_get_u64le(v);
        t->control_count = bytes_get_u64le(v + 8);
        t->control_bytes = bytes_get_u64le(v + 16);
        return;
    }
    uint64_t rev = key_rev(k);
    t->count++;
    t->bytes += k_len + v_len;
    t->max_rev = rev > t->max_rev ? rev : t->max_rev;
    if (t->min_rev == 0 || rev < t->min_rev) {
        t->min_rev = rev;
    }
}

bool watch_tally_ok(const struct watch_tally *t, uint64_t index)
{
    if (!t->has_control) {
        return t->count == 0; /* a ring that never held an event */
    }
    return t->control_count == t->count && t->control_bytes == t->bytes &&
           t->control_compact_rev <= index && t->max_rev <= index &&
           (t->count == 0 || t->min_rev >= t->control_compact_rev);
}

/* ---- reading ---- */

static bool event_matches(const struct shard_event *e, const uint8_t *ns,
                          size_t ns_len, const struct shard_watch_filter *f)
{
    if (bytes_cmp(ns, ns_len, f->ns, f->ns_len) != 0) {
        return false;
    }
    if (f->prefix) {
        return bytes_has_prefix(e->key, e->key_len, f->key, f->key_len);
    }
    return bytes_cmp(e->key, e->key_len, f->key, f->key_len) == 0;
}

/* The scan of shard_watch_scan from its first key on. */
static mc_err scan_from(struct shard *s, MDB_cursor *cur, uint64_t after_rev,
                        const struct shard_watch_filter *f,
                        uint32_t max_events, size_t max_bytes,
                        shard_event_cb cb, void *arg, uint64_t *through)
{
    uint8_t start[WATCH_KEY_BYTES];
    key_make(start, after_rev + 1, 0);
    MDB_val k = {.mv_size = sizeof start, .mv_data = start};
    MDB_cursor_op op = MDB_SET_RANGE;
    uint32_t n = 0;
    size_t bytes = 0;
    uint64_t last_rev = 0;
    for (;; op = MDB_NEXT) {
        MDB_val v;
        bool found;
        mc_err rv = store_cursor_get(s, cur, &k, &v, op, &found);
        if (rv != MC_OK || !found) {
            return rv;
        }
        struct shard_event e;
        const uint8_t *ns;
        size_t ns_len;
        if (!event_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &e,
                          &ns, &ns_len)) {
            return store_fail(s, "watch event decode", MDB_CORRUPTED);
        }
        ASSERT(e.revision > after_rev);
        if (!event_matches(&e, ns, ns_len, f)) {
            continue;
        }
        if ((n >= max_events || bytes >= max_bytes) &&
            e.revision != last_rev) {
            *through = e.revision - 1;
            return MC_OK;
        }
        cb(arg, &e);
        n++;
        bytes += e.key_len + e.value_len;
        last_rev = e.revision;
    }
}

mc_err shard_watch_scan(struct shard *s, uint64_t after_rev,
                        const struct shard_watch_filter *f,
                        uint32_t max_events, size_t max_bytes,
                        shard_event_cb cb, void *arg, uint64_t *through,
                        uint64_t *compact_rev)
{
    ASSERT(s != NULL);
    ASSERT(f != NULL);
    ASSERT(f->ns_len > 0);
    ASSERT(f->prefix || f->key_len > 0);
    ASSERT(max_events > 0);
    ASSERT(cb != NULL);
    MDB_txn *txn;
    mc_err rv = store_enter(s);
    if (rv == MC_OK) {
        rv = store_view(s, &txn);
    }
    struct control c;
    if (rv == MC_OK) {
        rv = control_read(s, txn, &c);
    }
    if (rv != MC_OK) {
        return rv;
    }
    *compact_rev = c.compact_rev;
    *through = after_rev > s->applied_index ? after_rev : s->applied_index;
    if (after_rev < c.compact_rev) {
        *through = s->applied_index;
        return MC_COMPACTED;
    }
    if (after_rev >= s->applied_index) {
        return MC_OK; /* nothing applied after it */
    }
    MDB_cursor *cur;
    rv = store_cursor_open(s, txn, STORE_DB_EVENTS, &cur);
    if (rv != MC_OK) {
        return rv;
    }
    rv = scan_from(s, cur, after_rev, f, max_events, max_bytes, cb, arg,
                   through);
    mdb_cursor_close(cur);
    return rv;
}

mc_err shard_watch_ring(struct shard *s, struct shard_watch_ring *out)
{
    ASSERT(s != NULL);
    ASSERT(out != NULL);
    MDB_txn *txn;
    mc_err rv = store_enter(s);
    if (rv == MC_OK) {
        rv = store_view(s, &txn);
    }
    struct control c;
    if (rv == MC_OK) {
        rv = control_read(s, txn, &c);
    }
    if (rv == MC_OK) {
        *out = (struct shard_watch_ring){c.count, c.bytes, c.compact_rev};
    }
    return rv;
}
