/* Records in LMDB: record keys and their LMDB keys (the long-key rule),
 * the value encoding, expiry index keys, and the lookups and writes that
 * keep a record and its expiry entry in step. The layout is in record.h.
 * What a command does with records is apply.c's business. */
#include <string.h>

#include "shard/record.h"

/* Offsets in the header of format 1 (record.h). */
enum {
    OFF_FORMAT = 0,
    OFF_TIER = 1,
    OFF_RKEY_LEN = 2,
    OFF_VERSION = 4,
    OFF_CREATE_REV = 12,
    OFF_MOD_REV = 20,
    OFF_EXPIRES_AT = 28,
    OFF_UPDATED_AT = 36,
};
_Static_assert(OFF_UPDATED_AT + 8 == RECORD_FIXED_HEADER_BYTES,
               "header layout");

void record_key_make(const uint8_t *ns, size_t ns_len, const uint8_t *key,
                     size_t key_len, struct record_key *out)
{
    ASSERT(ns_len > 0);
    ASSERT(ns_len <= MC_NS_BYTES_MAX);
    ASSERT(key_len <= MC_KEY_BYTES_MAX);
    memcpy(out->bytes, ns, ns_len);
    out->bytes[ns_len] = '\0';
    if (key_len > 0) {
        memcpy(out->bytes + ns_len + 1, key, key_len);
    }
    out->len = ns_len + 1 + key_len;
}

void record_dbkey_make(const uint8_t *rkey, size_t rkey_len,
                       struct record_dbkey *out)
{
    ASSERT(rkey_len > 0);
    ASSERT(rkey_len <= RECORD_KEY_BYTES_MAX);
    if (rkey_len <= SHARD_DBKEY_INLINE_MAX) {
        memcpy(out->bytes, rkey, rkey_len);
        out->len = rkey_len;
        return;
    }
    memcpy(out->bytes, rkey, SHARD_DBKEY_PREFIX);
    /* Big-endian, so that the hash reads the same in a hex dump. */
    bytes_put_u64be(out->bytes + SHARD_DBKEY_PREFIX,
                    base_fnv64(BASE_FNV64_INIT, rkey, rkey_len));
    out->len = SHARD_DBKEY_INLINE_MAX;
}

void record_expkey_make(int64_t expires_at, uint8_t tier,
                        const uint8_t *dbkey, size_t dbkey_len,
                        struct record_expkey *out)
{
    ASSERT(expires_at > 0);
    ASSERT(dbkey_len > 0);
    ASSERT(dbkey_len <= SHARD_DBKEY_INLINE_MAX);
    /* expires_at > 0, so its big-endian bytes sort like the number. */
    bytes_put_u64be(out->bytes, (uint64_t)expires_at);
    out->bytes[8] = tier;
    memcpy(out->bytes + RECORD_EXPKEY_HEAD_BYTES, dbkey, dbkey_len);
    out->len = RECORD_EXPKEY_HEAD_BYTES + dbkey_len;
}

bool record_expkey_parse(const uint8_t *k, size_t len, int64_t *expires_at,
                         uint8_t *tier, const uint8_t **dbkey,
                         size_t *dbkey_len)
{
    if (len <= RECORD_EXPKEY_HEAD_BYTES || len > RECORD_EXPKEY_BYTES_MAX) {
        return false;
    }
    uint64_t at = bytes_get_u64be(k);
    if (at == 0 || at > INT64_MAX) {
        return false;
    }
    if (k[8] < MC_TIER_SHORT || k[8] > MC_TIER_LONG) {
        return false;
    }
    *expires_at = (int64_t)at;
    *tier = k[8];
    *dbkey = k + RECORD_EXPKEY_HEAD_BYTES;
    *dbkey_len = len - RECORD_EXPKEY_HEAD_BYTES;
    return true;
}

static bool rkey_is_long(size_t rkey_len)
{
    return rkey_len > SHARD_DBKEY_INLINE_MAX;
}

/* The expiry time as format 2 keeps it: relative to updated_at, zigzag
 * (a restored store may hold anything), + 1 so that 0 says never. */
static uint64_t expires_code(const struct record *r)
{
    if (r->expires_at == 0) {
        return 0;
    }
    /* Both are in 0..INT64_MAX: the difference fits, and so does + 1. */
    uint64_t zigzag = bytes_zigzag(r->expires_at - r->updated_at);
    ASSERT(zigzag != UINT64_MAX);
    return zigzag + 1;
}

/* The header of r in format 2, into h; returns its length. */
static size_t header_make(const struct record *r,
                          uint8_t h[RECORD_HEADER_BYTES_MAX])
{
    ASSERT(r->tier >= MC_TIER_SHORT);
    ASSERT(r->tier <= MC_TIER_LONG);
    ASSERT(r->rkey_len <= RECORD_KEY_BYTES_MAX);
    ASSERT(r->mod_rev >= r->create_rev);
    ASSERT(r->updated_at >= 0);
    ASSERT(r->expires_at >= 0);
    size_t n = 0;
    h[n++] = RECORD_FORMAT;
    h[n++] = r->tier;
    n += bytes_put_varint(h + n, rkey_is_long(r->rkey_len) ? r->rkey_len : 0);
    n += bytes_put_varint(h + n, r->version);
    n += bytes_put_varint(h + n, r->create_rev);
    n += bytes_put_varint(h + n, r->mod_rev - r->create_rev);
    n += bytes_put_varint(h + n, (uint64_t)r->updated_at);
    n += bytes_put_varint(h + n, expires_code(r));
    ASSERT(n <= RECORD_HEADER_BYTES_MAX);
    return n;
}

size_t record_encoded_bytes(const struct record *r)
{
    uint8_t h[RECORD_HEADER_BYTES_MAX];
    size_t n = header_make(r, h) + r->value_len;
    return rkey_is_long(r->rkey_len) ? n + r->rkey_len : n;
}

void record_encode(const struct record *r, uint8_t *out)
{
    uint8_t h[RECORD_HEADER_BYTES_MAX];
    size_t n = header_make(r, h);
    memcpy(out, h, n);
    uint8_t *p = out + n;
    if (rkey_is_long(r->rkey_len)) {
        memcpy(p, r->rkey, r->rkey_len);
        p += r->rkey_len;
    }
    if (r->value_len > 0) {
        memcpy(p, r->value, r->value_len);
    }
}

/* Format 1's header: the fields and the length of the record key.
 * *head is the header's length. */
static bool header_read_fixed(const uint8_t *v, size_t v_len,
                              struct record *out, size_t *head)
{
    if (v_len < RECORD_FIXED_HEADER_BYTES) {
        return false;
    }
    out->tier = v[OFF_TIER];
    out->rkey_len = bytes_get_u16le(v + OFF_RKEY_LEN);
    out->version = bytes_get_u64le(v + OFF_VERSION);
    out->create_rev = bytes_get_u64le(v + OFF_CREATE_REV);
    out->mod_rev = bytes_get_u64le(v + OFF_MOD_REV);
    out->expires_at = (int64_t)bytes_get_u64le(v + OFF_EXPIRES_AT);
    out->updated_at = (int64_t)bytes_get_u64le(v + OFF_UPDATED_AT);
    *head = RECORD_FIXED_HEADER_BYTES;
    return true;
}

/* Format 2's header. The record key's length is k_len unless the header
 * gives one. */
static bool header_read(const uint8_t *v, size_t v_len, size_t k_len,
                        struct record *out, size_t *head)
{
    uint64_t f[6]; /* long_len, version, create_rev, mod delta, updated,
                      expires */
    size_t n = 2;
    if (v_len < n) {
        return false;
    }
    for (unsigned i = 0; i < 6; i++) {
        size_t len = bytes_get_varint(v + n, v_len - n, &f[i]);
        if (len == 0) {
            return false;
        }
        n += len;
    }
    if ((f[0] != 0 && !rkey_is_long(f[0])) || f[0] > RECORD_KEY_BYTES_MAX ||
        f[3] > UINT64_MAX - f[2] || f[4] > INT64_MAX) {
        return false;
    }
    out->tier = v[1];
    out->rkey_len = f[0] != 0 ? f[0] : k_len;
    out->version = f[1];
    out->create_rev = f[2];
    out->mod_rev = f[2] + f[3];
    out->updated_at = (int64_t)f[4];
    out->expires_at = 0;
    if (f[5] != 0) {
        int64_t d = bytes_unzigzag(f[5] - 1);
        if ((d > 0 && out->updated_at > INT64_MAX - d) ||
            out->updated_at + d <= 0) {
            return false;
        }
        out->expires_at = out->updated_at + d;
    }
    *head = n;
    return true;
}

bool record_decode(const uint8_t *k, size_t k_len, const uint8_t *v,
                   size_t v_len, struct record *out)
{
    size_t head;
    if (v_len < 1 ||
        !(v[OFF_FORMAT] == RECORD_FORMAT
              ? header_read(v, v_len, k_len, out, &head)
              : v[OFF_FORMAT] == RECORD_FORMAT_FIXED &&
                    header_read_fixed(v, v_len, out, &head))) {
        return false;
    }
    if (out->tier < MC_TIER_SHORT || out->tier > MC_TIER_LONG ||
        out->expires_at < 0 || out->rkey_len > RECORD_KEY_BYTES_MAX) {
        return false;
    }
    size_t rest = v_len - head;
    if (!rkey_is_long(out->rkey_len)) {
        if (out->rkey_len != k_len) {
            return false;
        }
        out->rkey = k;
    } else {
        if (rest < out->rkey_len || k_len != SHARD_DBKEY_INLINE_MAX) {
            return false;
        }
        out->rkey = v + head;
        rest -= out->rkey_len;
        struct record_dbkey dk;
        record_dbkey_make(out->rkey, out->rkey_len, &dk);
        if (memcmp(dk.bytes, k, k_len) != 0) {
            return false;
        }
    }
    /* Every record key is ns '\0' key with a non-empty ns. */
    const uint8_t *nul = memchr(out->rkey, '\0', out->rkey_len);
    if (nul == NULL || nul == out->rkey ||
        nul - out->rkey > (ptrdiff_t)MC_NS_BYTES_MAX) {
        return false;
    }
    out->value = v + (v_len - rest);
    out->value_len = rest;
    return true;
}

mc_err record_find(struct shard *s, MDB_txn *txn, uint8_t tier,
                   const struct record_key *k, const struct record_dbkey *dk,
                   struct record *out, enum record_slot *slot)
{
    MDB_val v;
    bool found;
    *slot = RECORD_ABSENT;
    mc_err rv = store_get(s, txn, store_tier_db(tier),
                          dk->bytes, dk->len, &v, &found);
    if (rv != MC_OK || !found) {
        return rv;
    }
    if (!record_decode(dk->bytes, dk->len, v.mv_data, v.mv_size, out) ||
        out->tier != tier) {
        return store_fail(s, "record decode", MDB_CORRUPTED);
    }
    bool same = bytes_cmp(out->rkey, out->rkey_len, k->bytes, k->len) == 0;
    *slot = same ? RECORD_FOUND : RECORD_OTHER;
    return MC_OK;
}

mc_err record_find_any(struct shard *s, MDB_txn *txn,
                       const struct record_key *k,
                       const struct record_dbkey *dk, struct record *out,
                       bool *found)
{
    *found = false;
    for (uint8_t t = MC_TIER_SHORT; t <= MC_TIER_LONG; t++) {
        enum record_slot slot;
        mc_err rv = record_find(s, txn, t, k, dk, out, &slot);
        if (rv != MC_OK) {
            return rv;
        }
        if (slot == RECORD_FOUND) {
            *found = true;
            return MC_OK;
        }
    }
    return MC_OK;
}

mc_err record_put(struct shard *s, const struct record_dbkey *dk,
                  const struct record *r)
{
    ASSERT(r->expires_at >= 0);
    size_t n = record_encoded_bytes(r);
    uint8_t *space;
    mc_err rv = store_reserve(s, store_tier_db(r->tier),
                              dk->bytes, dk->len, n, &space);
    if (rv != MC_OK) {
        return rv;
    }
    record_encode(r, space);
    if (r->expires_at == 0) {
        return MC_OK;
    }
    struct record_expkey ek;
    record_expkey_make(r->expires_at, r->tier, dk->bytes, dk->len, &ek);
    return store_put(s, STORE_DB_EXPIRY, ek.bytes, ek.len, NULL, 0);
}

mc_err record_remove(struct shard *s, const struct record_dbkey *dk,
                     const struct record *r)
{
    /* Copy what is needed first: r may borrow the LMDB memory that the
     * first delete frees. */
    uint8_t tier = r->tier;
    int64_t expires_at = r->expires_at;
    mc_err rv = store_del(s, store_tier_db(tier),
                          dk->bytes, dk->len);
    if (rv != MC_OK || expires_at == 0) {
        return rv;
    }
    struct record_expkey ek;
    record_expkey_make(expires_at, tier, dk->bytes, dk->len, &ek);
    return store_del(s, STORE_DB_EXPIRY, ek.bytes, ek.len);
}
