/* Unit tests of the record encoding (shard/record.c): format 2, with its
 * varint header, decodes to what was encoded, over the edges of every
 * field (versions and revisions up to 2^64 - 1, stamps up to INT64_MAX,
 * expiry before or after the stamp, long keys); its header is small for
 * the records a store mostly holds; format 1, of earlier builds, still
 * decodes, in a store and from a snapshot; and malformed values are
 * refused rather than read past their end. No LMDB but in the last test. */
#include "shard/record.h"
#include "tests/unit/shard/shard_test.h"

static struct tshard f;

static void setup(void)
{
    t_open(&f, 1, 0, 0);
}

static void teardown(void)
{
    t_close(&f);
}

TestSuite(record, .init = setup, .fini = teardown);

struct enc {
    struct record_key k;
    struct record_dbkey dk;
    uint8_t buf[RECORD_HEADER_BYTES_MAX + RECORD_KEY_BYTES_MAX + 64];
    size_t len;
};

static void encode(const char *key, struct record *r, struct enc *e)
{
    record_key_make((const uint8_t *)"ns", 2, (const uint8_t *)key,
                    strlen(key), &e->k);
    record_dbkey_make(e->k.bytes, e->k.len, &e->dk);
    r->rkey = e->k.bytes;
    r->rkey_len = e->k.len;
    e->len = record_encoded_bytes(r);
    cr_assert_leq(e->len, sizeof e->buf);
    record_encode(r, e->buf);
}

static void assert_round_trip(const char *key, struct record r)
{
    struct enc e;
    encode(key, &r, &e);
    struct record d;
    cr_assert(record_decode(e.dk.bytes, e.dk.len, e.buf, e.len, &d),
              "%s: does not decode", key);
    cr_assert_eq(d.tier, r.tier);
    cr_assert_eq(d.version, r.version);
    cr_assert_eq(d.create_rev, r.create_rev);
    cr_assert_eq(d.mod_rev, r.mod_rev);
    cr_assert_eq(d.expires_at, r.expires_at, "%lld != %lld",
                 (long long)d.expires_at, (long long)r.expires_at);
    cr_assert_eq(d.updated_at, r.updated_at);
    cr_assert_eq(d.rkey_len, e.k.len);
    cr_assert_eq(memcmp(d.rkey, e.k.bytes, e.k.len), 0);
    cr_assert_eq(d.value_len, r.value_len);
    cr_assert_eq(memcmp(d.value, r.value, r.value_len), 0);
    /* Every proper prefix of it is refused, or decodes to less value. */
    for (size_t n = 0; n < e.len - r.value_len; n++) {
        cr_assert(!record_decode(e.dk.bytes, e.dk.len, e.buf, n, &d),
                  "%s: a prefix of %zu bytes decodes", key, n);
    }
}

Test(record, round_trip_over_the_edges)
{
    static const uint64_t u[] = {0, 1, 127, 128, 16383, 16384,
                                 (1ull << 32), INT64_MAX, UINT64_MAX};
    static const int64_t t[] = {0, 1, 1700000000000ll, INT64_MAX - 1,
                                INT64_MAX};
    char long_key[700];
    memset(long_key, 'L', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    const char *keys[] = {"k", long_key};
    for (size_t ki = 0; ki < 2; ki++) {
        for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
            for (size_t j = 0; j < sizeof t / sizeof t[0]; j++) {
                uint64_t create = u[i] / 2;
                struct record r = {
                    .tier = (uint8_t)(MC_TIER_SHORT + (i + j) % 3),
                    .version = u[i],
                    .create_rev = create,
                    .mod_rev = u[i],
                    .updated_at = t[j],
                    .expires_at = t[(j + i) % 5] == 0 ? 0 : t[(j + i) % 5],
                    .value = (const uint8_t *)"value",
                    .value_len = i % 2 ? 5 : 0,
                };
                assert_round_trip(keys[ki], r);
                r.expires_at = 1; /* long before the stamp */
                assert_round_trip(keys[ki], r);
            }
        }
    }
}

Test(record, a_small_record_has_a_small_header)
{
    struct record mid = {
        .tier = MC_TIER_MID,
        .version = 1,
        .create_rev = 1500000,
        .mod_rev = 1500000,
        .updated_at = 1700000000000ll,
        .expires_at = 1700000000000ll + MC_TTL_MID_MS,
        .value_len = 0,
    };
    struct enc e;
    encode("m1/00000042", &mid, &e);
    cr_assert_leq(e.len, 19u, "a mid-tier header of %zu bytes", e.len);
    mid.tier = MC_TIER_LONG;
    mid.expires_at = 0;
    encode("l1/00000042", &mid, &e);
    cr_assert_leq(e.len, 15u, "a long-tier header of %zu bytes", e.len);
}

/* A value of format 1 (record.h), as earlier builds wrote it. */
static size_t format1(const struct record *r, uint8_t *out)
{
    out[0] = 1;
    out[1] = r->tier;
    bytes_put_u16le(out + 2, (uint16_t)r->rkey_len);
    bytes_put_u64le(out + 4, r->version);
    bytes_put_u64le(out + 12, r->create_rev);
    bytes_put_u64le(out + 20, r->mod_rev);
    bytes_put_u64le(out + 28, (uint64_t)r->expires_at);
    bytes_put_u64le(out + 36, (uint64_t)r->updated_at);
    size_t n = RECORD_FIXED_HEADER_BYTES;
    if (r->rkey_len > SHARD_DBKEY_INLINE_MAX) {
        memcpy(out + n, r->rkey, r->rkey_len);
        n += r->rkey_len;
    }
    memcpy(out + n, r->value, r->value_len);
    return n + r->value_len;
}

Test(record, format_1_still_decodes)
{
    struct enc e;
    struct record r = {.tier = MC_TIER_SHORT,
                       .version = 7,
                       .create_rev = 3,
                       .mod_rev = 9,
                       .updated_at = T_STAMP,
                       .expires_at = T_STAMP + 1000,
                       .value = (const uint8_t *)"old",
                       .value_len = 3};
    encode("k", &r, &e); /* for the keys */
    uint8_t v[128];
    size_t n = format1(&r, v);
    struct record d;
    cr_assert(record_decode(e.dk.bytes, e.dk.len, v, n, &d));
    cr_assert_eq(d.version, 7);
    cr_assert_eq(d.mod_rev, 9);
    cr_assert_eq(d.expires_at, T_STAMP + 1000);
    cr_assert_eq(d.value_len, 3);
    cr_assert_eq(memcmp(d.value, "old", 3), 0);
    v[0] = 3; /* no such format */
    cr_assert(!record_decode(e.dk.bytes, e.dk.len, v, n, &d));
}

Test(record, malformed_headers_are_refused)
{
    struct enc e;
    struct record r = {.tier = MC_TIER_LONG, .version = 1, .create_rev = 1,
                       .mod_rev = 1, .updated_at = T_STAMP};
    encode("k", &r, &e);
    struct record d;
    cr_assert(record_decode(e.dk.bytes, e.dk.len, e.buf, e.len, &d));
    uint8_t v[64];
    /* A varint that never ends, or holds more than 64 bits. */
    memcpy(v, e.buf, 2);
    memset(v + 2, 0xff, 20);
    cr_assert(!record_decode(e.dk.bytes, e.dk.len, v, 22, &d));
    memset(v + 2, 0x80, 9);
    v[11] = 0x02; /* a 10th byte above 1 */
    cr_assert(!record_decode(e.dk.bytes, e.dk.len, v, 12, &d));
    /* A long key's length on a short LMDB key; a tier out of range; mod
     * before create by overflow; an expiry before the epoch. */
    uint8_t h[RECORD_HEADER_BYTES_MAX];
    size_t n;
    struct {
        uint8_t tier;
        uint64_t f[6];
    } const bad[] = {
        {MC_TIER_LONG, {600, 1, 1, 0, 1, 0}},
        {MC_TIER_LONG, {3, 1, 1, 0, 1, 0}},
        {0, {0, 1, 1, 0, 1, 0}},
        {4, {0, 1, 1, 0, 1, 0}},
        {MC_TIER_LONG, {0, 1, UINT64_MAX, 1, 1, 0}},
        {MC_TIER_LONG, {0, 1, 1, 0, (uint64_t)INT64_MAX + 1, 0}},
        {MC_TIER_SHORT, {0, 1, 1, 0, 10, 19 + 1}}, /* 10 + -10 = 0 */
        {MC_TIER_SHORT, {0, 1, 1, 0, INT64_MAX, 2 + 1}}, /* max + 1 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = 0;
        h[n++] = RECORD_FORMAT;
        h[n++] = bad[i].tier;
        for (unsigned j = 0; j < 6; j++) {
            n += bytes_put_varint(h + n, bad[i].f[j]);
        }
        cr_assert(!record_decode(e.dk.bytes, e.dk.len, h, n, &d),
                  "bad header %zu decodes", i);
    }
}

/* A store written by an earlier build: its records stay in format 1 until
 * they are written again, and a snapshot carries them as they are. */
Test(record, a_store_of_format_1_records_reads_and_moves_on)
{
    cr_assert_eq(t_put(&f, "new", "2")->code, MC_OK);
    t_commit(&f);
    struct record r = {.tier = MC_TIER_LONG,
                       .version = 4,
                       .create_rev = 1,
                       .mod_rev = 1,
                       .updated_at = T_STAMP,
                       .value = (const uint8_t *)"one",
                       .value_len = 3};
    struct enc e;
    encode("old", &r, &e);
    record_key_make((const uint8_t *)T_NS, strlen(T_NS),
                    (const uint8_t *)"old", 3, &e.k);
    record_dbkey_make(e.k.bytes, e.k.len, &e.dk);
    r.rkey = e.k.bytes;
    r.rkey_len = e.k.len;
    uint8_t v[128];
    size_t n = format1(&r, v);
    cr_assert_eq(store_write_begin(f.s), MC_OK);
    cr_assert_eq(store_put(f.s, STORE_DB_LONG, e.dk.bytes, e.dk.len, v, n),
                 MC_OK);
    t_commit(&f);
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, "old", &rec), MC_OK);
    cr_assert_eq(rec.version, 4);
    cr_assert_eq(rec.value_len, 3);
    /* A snapshot of both restores into a fresh store. */
    void *snap;
    size_t len;
    cr_assert_eq(shard_snapshot(f.s, malloc, &snap, &len), MC_OK);
    struct tshard g;
    t_open(&g, 1, 0, 0);
    cr_assert_eq(shard_restore(g.s, snap, len), MC_OK);
    free(snap);
    cr_assert_eq(shard_state_hash(g.s), shard_state_hash(f.s));
    cr_assert_eq(t_get(&g, T_STAMP, "old", &rec), MC_OK);
    cr_assert_eq(rec.version, 4);
    t_close(&g);
    /* Written again, it moves to format 2, versions going on. */
    const struct shard_result *res = t_put(&f, "old", "two");
    cr_assert_eq(res->code, MC_OK);
    cr_assert_eq(res->version, 5);
    cr_assert_eq(t_get(&f, T_STAMP, "old", &rec), MC_OK);
    cr_assert_eq(rec.create_rev, 1);
    cr_assert_eq(rec.value_len, 3);
    cr_assert_eq(memcmp(rec.value, "two", 3), 0);
}
