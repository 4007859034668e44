/* Unit tests of shard_apply (shard/apply.c, with record.c and dedupe.c
 * underneath): the optimistic-locking matrix with exact codes, versions
 * and messages, versions after delete, tiers and their sub-databases, TTLs
 * judged by the command's stamp (never a clock), the expire command, dedupe
 * of retried writes, and entries that must answer an error yet still
 * advance the applied index. Each test drives a real LMDB store in a
 * temporary folder through framed commands, as raft would. */
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

#define KEY "swarm/x"

static const struct shard_result *put_expect(int64_t expect)
{
    return t_apply(&f, &(struct tcmd){.op = T_PUT, .key = KEY, .value = "v",
                                      .has_expect = true, .expect = expect});
}

static const struct shard_result *del_expect(bool has, int64_t expect)
{
    return t_apply(&f, &(struct tcmd){.op = T_DELETE, .key = KEY,
                                      .has_expect = has, .expect = expect});
}

/* Bring KEY to version n by unconditional puts. */
static void put_times(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(t_put(&f, KEY, "v")->code, MC_OK);
    }
}

static void assert_result(const struct shard_result *r, mc_err code,
                          uint64_t version, const char *message)
{
    cr_assert_eq(r->code, code, "code %s, want %s (%s)", mc_errname(r->code),
                 mc_errname(code), r->message);
    cr_assert_eq(r->version, version, "version %llu, want %llu",
                 (unsigned long long)r->version,
                 (unsigned long long)version);
    cr_assert_str_eq(r->message, message);
    cr_assert(!r->skipped);
}

/* ---- optimistic locking ---- */

TestSuite(shard_apply, .init = setup, .fini = teardown);

Test(shard_apply, unconditional_put_creates_version_1)
{
    const struct shard_result *r = t_put(&f, KEY, "v1");
    assert_result(r, MC_OK, 1, "");
    cr_assert_eq(r->create_rev, 1);
    cr_assert_eq(r->mod_rev, 1);
}

Test(shard_apply, unconditional_put_bumps_version_and_keeps_create_rev)
{
    put_times(3);
    const struct shard_result *r = t_put(&f, KEY, "v4");
    assert_result(r, MC_OK, 4, "");
    cr_assert_eq(r->create_rev, 1);
    cr_assert_eq(r->mod_rev, 4);
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, KEY, &rec), MC_OK);
    cr_assert_eq(rec.value_len, 2);
    cr_assert_eq(memcmp(rec.value, "v4", 2), 0);
    cr_assert_eq(rec.version, 4);
}

Test(shard_apply, expect_absent_on_missing_key_creates_it)
{
    assert_result(put_expect(0), MC_OK, 1, "");
}

Test(shard_apply, expect_absent_on_existing_key_conflicts)
{
    put_times(4);
    assert_result(put_expect(0), MC_CONFLICT, 4,
                  "swarm/x exists at version 4, expected it not to exist");
}

Test(shard_apply, expect_version_on_missing_key_conflicts)
{
    assert_result(put_expect(3), MC_CONFLICT, 0,
                  "swarm/x does not exist, expected version 3");
}

Test(shard_apply, expect_matching_version_writes_next_version)
{
    put_times(3);
    const struct shard_result *r = put_expect(3);
    assert_result(r, MC_OK, 4, "");
    cr_assert_eq(r->create_rev, 1);
    cr_assert_eq(r->mod_rev, 4);
}

Test(shard_apply, expect_other_version_conflicts_and_writes_nothing)
{
    put_times(4);
    uint64_t before = shard_state_hash(f.s);
    assert_result(put_expect(3), MC_CONFLICT, 4,
                  "swarm/x is at version 4, expected 3");
    cr_assert_eq(shard_state_hash(f.s), before);
    cr_assert_eq(shard_applied_index(f.s), 5);
}

Test(shard_apply, negative_expectation_is_invalid)
{
    put_times(1);
    cr_assert_eq(put_expect(-2)->code, MC_INVALID_ARGUMENT);
}

Test(shard_apply, delete_of_missing_key_is_not_found)
{
    assert_result(del_expect(false, 0), MC_NOT_FOUND, 0,
                  "swarm/x does not exist");
    assert_result(del_expect(true, 3), MC_NOT_FOUND, 0,
                  "swarm/x does not exist");
}

Test(shard_apply, delete_checks_the_expected_version)
{
    put_times(4);
    assert_result(del_expect(true, 3), MC_CONFLICT, 4,
                  "swarm/x is at version 4, expected 3");
    assert_result(del_expect(true, 0), MC_CONFLICT, 4,
                  "swarm/x exists at version 4, expected it not to exist");
    const struct shard_result *r = del_expect(true, 4);
    assert_result(r, MC_OK, 4, "");
    cr_assert_eq(r->mod_rev, 7);
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, KEY, &rec), MC_NOT_FOUND);
    cr_assert_eq(t_count(&f, MC_TIER_LONG), 0);
}

Test(shard_apply, recreate_after_delete_restarts_at_version_1)
{
    put_times(3);
    cr_assert_eq(del_expect(false, 0)->code, MC_OK);
    const struct shard_result *r = t_put(&f, KEY, "again");
    assert_result(r, MC_OK, 1, "");
    cr_assert_eq(r->create_rev, 5);
    cr_assert_eq(r->mod_rev, 5);
}

Test(shard_apply, long_keys_are_quoted_shortly_in_messages)
{
    char key[MC_KEY_BYTES_MAX + 1];
    memset(key, 'k', MC_KEY_BYTES_MAX);
    key[MC_KEY_BYTES_MAX] = '\0';
    const struct shard_result *r =
        t_apply(&f, &(struct tcmd){.op = T_DELETE, .key = key});
    cr_assert_eq(r->code, MC_NOT_FOUND);
    cr_assert(strstr(r->message, "... does not exist") != NULL, "%s",
              r->message);
}

/* ---- tiers ---- */

static const struct shard_result *put_tier(const char *key, uint32_t tier,
                                           uint64_t ttl_ms)
{
    return t_apply(&f, &(struct tcmd){.op = T_PUT, .key = key, .value = "v",
                                      .tier = tier, .ttl_ms = ttl_ms});
}

static struct shard_record get_live(const char *key)
{
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, key, &rec), MC_OK, "%s", key);
    return rec;
}

Test(shard_apply, each_tier_keeps_its_records_in_its_own_db)
{
    cr_assert_eq(put_tier("a", MC_TIER_SHORT, 0)->code, MC_OK);
    cr_assert_eq(put_tier("b", MC_TIER_MID, 0)->code, MC_OK);
    cr_assert_eq(put_tier("c", MC_TIER_LONG, 0)->code, MC_OK);
    cr_assert_eq(put_tier("d", MC_TIER_LONG, 0)->code, MC_OK);
    cr_assert_eq(t_count(&f, MC_TIER_SHORT), 1);
    cr_assert_eq(t_count(&f, MC_TIER_MID), 1);
    cr_assert_eq(t_count(&f, MC_TIER_LONG), 2);
    cr_assert_eq(get_live("a").tier, MC_TIER_SHORT);
    cr_assert_eq(get_live("a").expires_at, T_STAMP + MC_TTL_SHORT_MS);
    cr_assert_eq(get_live("b").tier, MC_TIER_MID);
    cr_assert_eq(get_live("b").expires_at, T_STAMP + MC_TTL_MID_MS);
    cr_assert_eq(get_live("c").expires_at, 0);
}

Test(shard_apply, tier_change_moves_the_record)
{
    cr_assert_eq(put_tier(KEY, MC_TIER_SHORT, 0)->code, MC_OK);
    const struct shard_result *r = put_tier(KEY, MC_TIER_LONG, 0);
    assert_result(r, MC_OK, 2, "");
    cr_assert_eq(t_count(&f, MC_TIER_SHORT), 0);
    cr_assert_eq(t_count(&f, MC_TIER_LONG), 1);
    struct shard_record rec = get_live(KEY);
    cr_assert_eq(rec.tier, MC_TIER_LONG);
    cr_assert_eq(rec.expires_at, 0);
    cr_assert_eq(rec.create_rev, 1);
    /* The short tier's expiry entry went with it. */
    cr_assert_eq(put_tier(KEY, MC_TIER_MID, 0)->code, MC_OK);
    cr_assert_eq(t_count(&f, MC_TIER_LONG), 0);
    cr_assert_eq(t_count(&f, MC_TIER_MID), 1);
}

Test(shard_apply, default_tier_is_short_with_ttl_else_kept_else_long)
{
    cr_assert_eq(put_tier("ttl", MC_TIER_DEFAULT, 5000)->code, MC_OK);
    cr_assert_eq(get_live("ttl").tier, MC_TIER_SHORT);
    cr_assert_eq(get_live("ttl").expires_at, T_STAMP + 5000);
    cr_assert_eq(put_tier("plain", MC_TIER_DEFAULT, 0)->code, MC_OK);
    cr_assert_eq(get_live("plain").tier, MC_TIER_LONG);
    cr_assert_eq(put_tier("kept", MC_TIER_MID, 0)->code, MC_OK);
    cr_assert_eq(put_tier("kept", MC_TIER_DEFAULT, 0)->code, MC_OK);
    cr_assert_eq(get_live("kept").tier, MC_TIER_MID);
}

Test(shard_apply, long_tier_with_ttl_is_invalid)
{
    put_times(2);
    assert_result(put_tier(KEY, MC_TIER_LONG, 1000), MC_INVALID_ARGUMENT, 2,
                  "the long tier keeps records without a TTL");
    /* An existing long record and a TTL: the TTL picks the short tier. */
    cr_assert_eq(put_tier(KEY, MC_TIER_DEFAULT, 1000)->code, MC_OK);
    cr_assert_eq(get_live(KEY).tier, MC_TIER_SHORT);
}

Test(shard_apply, unknown_tier_and_huge_ttl_are_invalid)
{
    cr_assert_eq(put_tier(KEY, 4, 0)->code, MC_INVALID_ARGUMENT);
    cr_assert_eq(put_tier(KEY, MC_TIER_SHORT, MC_TTL_MS_MAX + 1)->code,
                 MC_INVALID_ARGUMENT);
    cr_assert_eq(put_tier(KEY, MC_TIER_SHORT, MC_TTL_MS_MAX)->code, MC_OK);
}

/* ---- expiry by the command's stamp ---- */

#define TTL 1000

static void put_ttl(void)
{
    const struct shard_result *r = t_apply(
        &f, &(struct tcmd){.op = T_PUT, .key = KEY, .value = "v",
                           .stamp = T_STAMP, .ttl_ms = TTL});
    cr_assert_eq(r->code, MC_OK);
}

static const struct shard_result *expire_key(int64_t stamp)
{
    static const uint32_t tiers[] = {MC_TIER_SHORT};
    static const char *const keys[] = {KEY};
    return t_expire(&f, stamp, tiers, keys, 1);
}

Test(shard_apply, ttl_counts_from_the_stamp_not_the_clock)
{
    put_ttl();
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP + TTL - 1, KEY, &rec), MC_OK);
    cr_assert_eq(rec.expires_at, T_STAMP + TTL);
    cr_assert_eq(t_get(&f, T_STAMP + TTL, KEY, &rec), MC_NOT_FOUND);
}

Test(shard_apply, expire_before_expiry_removes_nothing)
{
    put_ttl();
    assert_result(expire_key(T_STAMP + TTL - 1), MC_OK, 0, "");
    cr_assert_eq(t_count(&f, MC_TIER_SHORT), 1);
}

Test(shard_apply, expire_at_expiry_removes_record_and_index_entry)
{
    put_ttl();
    assert_result(expire_key(T_STAMP + TTL), MC_OK, 0, "");
    cr_assert_eq(t_count(&f, MC_TIER_SHORT), 0);
    /* A second expire of the same key is harmless. */
    assert_result(expire_key(T_STAMP + TTL + 1), MC_OK, 0, "");
    assert_result(t_put(&f, KEY, "new"), MC_OK, 1, "");
}

Test(shard_apply, expire_of_rewritten_record_keeps_it)
{
    put_ttl();
    /* Rewritten later with a fresh TTL before the sweep's command lands. */
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = KEY,
                                            .value = "v",
                                            .stamp = T_STAMP + 500,
                                            .ttl_ms = TTL})
                     ->code,
                 MC_OK);
    expire_key(T_STAMP + TTL);
    cr_assert_eq(t_count(&f, MC_TIER_SHORT), 1);
}

Test(shard_apply, put_after_expiry_restarts_at_version_1)
{
    put_ttl();
    put_ttl();
    const struct shard_result *r = t_apply(
        &f, &(struct tcmd){.op = T_PUT, .key = KEY, .value = "v",
                           .stamp = T_STAMP + TTL, .has_expect = true,
                           .expect = 0});
    assert_result(r, MC_OK, 1, "");
    cr_assert_eq(r->create_rev, 3);
    /* The expired record's expiry entry went with it: the index holds the
     * new record only. */
    cr_assert_eq(t_count(&f, MC_TIER_LONG), 1);
    cr_assert_eq(t_count(&f, MC_TIER_SHORT), 0);
}

Test(shard_apply, delete_of_expired_record_is_not_found)
{
    put_ttl();
    const struct shard_result *r =
        t_apply(&f, &(struct tcmd){.op = T_DELETE, .key = KEY,
                                   .stamp = T_STAMP + TTL});
    assert_result(r, MC_NOT_FOUND, 0, "swarm/x does not exist");
    cr_assert_eq(t_count(&f, MC_TIER_SHORT), 0);
}

Test(shard_apply, expire_with_invalid_item_removes_nothing)
{
    put_ttl();
    static const uint32_t tiers[] = {MC_TIER_SHORT, 9};
    static const char *const keys[] = {KEY, KEY};
    const struct shard_result *r = t_expire(&f, T_STAMP + TTL, tiers, keys, 2);
    cr_assert_eq(r->code, MC_INVALID_ARGUMENT);
    cr_assert_eq(t_count(&f, MC_TIER_SHORT), 1);
}

/* ---- dedupe ---- */

static const struct shard_result *put_as(uint64_t client, uint64_t seq,
                                         bool has_expect, int64_t expect,
                                         int64_t stamp)
{
    return t_apply(&f, &(struct tcmd){.op = T_PUT, .key = KEY, .value = "v",
                                      .client_id = client, .seq = seq,
                                      .has_expect = has_expect,
                                      .expect = expect, .stamp = stamp});
}

Test(shard_apply, retried_write_is_answered_not_applied)
{
    const struct shard_result *r = put_as(7, 1, false, 0, 0);
    assert_result(r, MC_OK, 1, "");
    uint64_t before = shard_state_hash(f.s);
    r = put_as(7, 1, false, 0, 0);
    assert_result(r, MC_OK, 1, "");
    cr_assert_eq(r->create_rev, 1);
    cr_assert_eq(r->mod_rev, 1);
    cr_assert_eq(shard_state_hash(f.s), before);
    cr_assert_eq(get_live(KEY).version, 1);
    cr_assert_eq(shard_applied_index(f.s), 2);
}

Test(shard_apply, retried_conflict_gets_the_same_conflict)
{
    put_times(1);
    assert_result(put_as(7, 1, true, 0, 0), MC_CONFLICT, 1,
                  "swarm/x exists at version 1, expected it not to exist");
    put_times(1); /* another client moves the key on */
    assert_result(put_as(7, 1, true, 0, 0), MC_CONFLICT, 1,
                  "swarm/x exists at version 1, expected it not to exist");
    assert_result(put_as(7, 2, true, 0, 0), MC_CONFLICT, 2,
                  "swarm/x exists at version 2, expected it not to exist");
}

Test(shard_apply, older_seq_is_superseded_and_writes_nothing)
{
    cr_assert_eq(put_as(7, 5, false, 0, 0)->code, MC_OK);
    uint64_t before = shard_state_hash(f.s);
    assert_result(put_as(7, 4, false, 0, 0), MC_INVALID_ARGUMENT, 0,
                  "request superseded by a later one of the same client");
    cr_assert_eq(shard_state_hash(f.s), before);
    cr_assert_eq(get_live(KEY).version, 1);
    /* Another client is not affected. */
    assert_result(put_as(8, 1, false, 0, 0), MC_OK, 2, "");
}

Test(shard_apply, delete_is_deduped_too)
{
    put_times(1);
    const struct tcmd del = {.op = T_DELETE, .key = KEY, .client_id = 3,
                             .seq = 9};
    assert_result(t_apply(&f, &del), MC_OK, 1, "");
    assert_result(t_apply(&f, &del), MC_OK, 1, "");
}

Test(shard_apply, client_zero_is_never_deduped)
{
    assert_result(put_as(0, 1, false, 0, 0), MC_OK, 1, "");
    assert_result(put_as(0, 1, false, 0, 0), MC_OK, 2, "");
}

Test(shard_apply, expire_drops_idle_dedupe_entries_only)
{
    cr_assert_eq(put_as(7, 1, false, 0, T_STAMP)->code, MC_OK);
    expire_key(T_STAMP + (int64_t)MC_DEDUPE_IDLE_MS); /* not idle yet */
    assert_result(put_as(7, 1, false, 0, T_STAMP), MC_OK, 1, "");
    expire_key(T_STAMP + (int64_t)MC_DEDUPE_IDLE_MS + 1);
    /* Forgotten: the same (client, seq) now applies as new. */
    assert_result(put_as(7, 1, false, 0, T_STAMP), MC_OK, 2, "");
}

/* ---- sizes, bad entries, skipped entries ---- */

Test(shard_apply, value_over_the_limit_is_too_large)
{
    t_close(&f);
    t_open(&f, 1, 16, 0);
    put_times(1);
    const struct shard_result *r = t_apply(
        &f, &(struct tcmd){.op = T_PUT, .key = KEY,
                           .value = "0123456789abcdefg"});
    cr_assert_eq(r->code, MC_TOO_LARGE);
    cr_assert_eq(r->version, 1);
    r = t_apply(&f, &(struct tcmd){.op = T_PUT, .key = KEY,
                                   .value = "0123456789abcdef"});
    assert_result(r, MC_OK, 2, "");
}

Test(shard_apply, garbage_entry_is_invalid_and_advances_the_index)
{
    static const char garbage[] = "this is not a frame at all";
    const struct shard_result *r =
        t_apply_raw(&f, garbage, sizeof garbage);
    cr_assert_eq(r->code, MC_INVALID_ARGUMENT);
    cr_assert_neq(r->message[0], '\0');
    cr_assert_eq(shard_applied_index(f.s), 1);
    cr_assert_eq(shard_applied_entries(f.s), 1);
    r = t_apply_raw(&f, NULL, 0);
    cr_assert_eq(r->code, MC_INVALID_ARGUMENT);
    cr_assert_eq(shard_applied_index(f.s), 2);
    assert_result(t_put(&f, KEY, "v"), MC_OK, 1, "");
}

Test(shard_apply, framed_bad_protobuf_is_invalid)
{
    void *frame;
    size_t len;
    t_frame(&(struct tcmd){.op = T_PUT, .key = KEY, .value = "v"}, &frame,
            &len);
    uint8_t *body = (uint8_t *)frame + PROTO_FRAME_HEADER_BYTES;
    body[0] = 0xff; /* field 31, wire type 7: no such wire type */
    cr_assert_eq(t_apply_raw(&f, frame, len)->code, MC_INVALID_ARGUMENT);
    free(frame);
    cr_assert_eq(shard_applied_index(f.s), 1);
}

Test(shard_apply, unknown_op_bad_ns_bad_key_bad_stamp_are_invalid)
{
    const struct tcmd bad[] = {
        {.op = MCPB__OP__OP_GET, .key = KEY},
        {.op = T_PUT, .ns = "Upper", .key = KEY, .value = "v"},
        {.op = T_PUT, .key = "bad\xff", .value = "v"},
        {.op = T_PUT, .value = "v"}, /* no key */
        {.op = T_PUT, .key = KEY, .value = "v", .stamp = -1},
        {.op = T_PUT, .key = KEY, .value = "v", .stamp = INT64_MAX},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const struct shard_result *r = t_apply(&f, &bad[i]);
        cr_assert_eq(r->code, MC_INVALID_ARGUMENT, "case %zu", i);
        cr_assert_neq(r->message[0], '\0', "case %zu", i);
    }
    cr_assert_eq(shard_applied_index(f.s), sizeof bad / sizeof bad[0]);
    cr_assert_eq(t_count(&f, MC_TIER_LONG), 0);
}

Test(shard_apply, index_at_or_below_applied_is_skipped)
{
    void *frame;
    size_t len;
    t_frame(&(struct tcmd){.op = T_PUT, .key = KEY, .value = "v"}, &frame,
            &len);
    const struct shard_result *r;
    cr_assert_eq(shard_apply(f.s, 5, frame, len, &r), MC_OK);
    cr_assert_eq(r->version, 1);
    cr_assert_eq(shard_apply(f.s, 5, frame, len, &r), MC_OK);
    cr_assert(r->skipped);
    cr_assert_eq(r->code, MC_OK);
    cr_assert_eq(shard_apply(f.s, 3, frame, len, &r), MC_OK);
    cr_assert(r->skipped);
    free(frame);
    cr_assert_eq(get_live(KEY).version, 1);
    cr_assert_eq(shard_applied_index(f.s), 5);
    cr_assert_eq(shard_applied_entries(f.s), 1);
    cr_assert_eq(shard_skipped_entries(f.s), 2);
}

Test(shard_apply, out_of_memory_while_decoding_leaves_the_entry_unapplied)
{
    void *frame;
    size_t len;
    t_frame(&(struct tcmd){.op = T_PUT, .key = KEY, .value = "v"}, &frame,
            &len);
    const struct shard_result *r;
    base_alloc_fail_after(1);
    cr_assert_eq(shard_apply(f.s, 1, frame, len, &r), MC_UNAVAILABLE);
    base_alloc_fail_after(0);
    cr_assert_eq(shard_applied_index(f.s), 0);
    /* Not broken: the same entry applies when memory is back. */
    cr_assert_eq(shard_apply(f.s, 1, frame, len, &r), MC_OK);
    cr_assert_eq(r->code, MC_OK);
    free(frame);
    cr_assert_eq(shard_applied_index(f.s), 1);
}

Test(shard_apply, storage_failure_breaks_the_shard)
{
    t_close(&f);
    /* A small map and values near the limit: LMDB runs out of pages. */
    t_open(&f, 1, 64 * 1024, 1024 * 1024);
    static char value[64 * 1024];
    memset(value, 'v', sizeof value - 1);
    mc_err rv = MC_OK;
    char err[256];
    for (int i = 0; i < 64 && rv == MC_OK; i++) {
        void *frame;
        size_t len;
        char key[32];
        snprintf(key, sizeof key, "k%d", i);
        t_frame(&(struct tcmd){.op = T_PUT, .key = key, .value = value},
                &frame, &len);
        const struct shard_result *r;
        rv = shard_apply(f.s, ++f.index, frame, len, &r);
        free(frame);
        if (rv == MC_OK) {
            rv = shard_commit(f.s, err, sizeof err);
        } else {
            cr_assert_eq(r->code, MC_UNAVAILABLE);
        }
    }
    cr_assert_eq(rv, MC_UNAVAILABLE);
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, "k0", &rec), MC_UNAVAILABLE);
    cr_assert_eq(shard_commit(f.s, err, sizeof err), MC_UNAVAILABLE);
    const struct shard_result *r;
    cr_assert_eq(shard_apply(f.s, ++f.index, "x", 1, &r), MC_UNAVAILABLE);
}

/* ---- long keys (the rule of record.h) ---- */

/* A key of ns T_NS whose record key is long and whose LMDB key is valid
 * UTF-8 without NUL, so that the LMDB key itself is a valid inline key.
 * Found by trying suffixes: about 1 in 270 hashes is all ASCII. */
static void colliding_keys(char *long_key, char *inline_key)
{
    const size_t ns = strlen(T_NS) + 1;
    for (unsigned n = 0;; n++) {
        memset(long_key, 'p', 600);
        snprintf(long_key + 600, 16, "%u", n);
        struct record_key k;
        record_key_make((const uint8_t *)T_NS, ns - 1,
                        (const uint8_t *)long_key, strlen(long_key), &k);
        struct record_dbkey dk;
        record_dbkey_make(k.bytes, k.len, &dk);
        bool ascii = true;
        for (size_t i = SHARD_DBKEY_PREFIX; i < dk.len; i++) {
            ascii = ascii && dk.bytes[i] > 0 && dk.bytes[i] < 0x80;
        }
        if (ascii) {
            memcpy(inline_key, dk.bytes + ns, dk.len - ns);
            inline_key[dk.len - ns] = '\0';
            return;
        }
    }
}

Test(shard_apply, key_whose_lmdb_key_is_taken_is_refused)
{
    char long_key[700], inline_key[600];
    colliding_keys(long_key, inline_key);
    assert_result(t_put(&f, long_key, "long"), MC_OK, 1, "");
    const struct shard_result *r = t_put(&f, inline_key, "inline");
    cr_assert_eq(r->code, MC_INVALID_ARGUMENT);
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, inline_key, &rec), MC_NOT_FOUND);
    cr_assert_eq(t_get(&f, T_STAMP, long_key, &rec), MC_OK);
    cr_assert_eq(rec.value_len, 4);
    cr_assert_eq(memcmp(rec.value, "long", 4), 0);
    /* In another tier the LMDB key is free, and the record lives there. */
    r = t_apply(&f, &(struct tcmd){.op = T_PUT, .key = inline_key,
                                   .value = "inline", .tier = MC_TIER_MID});
    assert_result(r, MC_OK, 1, "");
    cr_assert_eq(t_get(&f, T_STAMP, inline_key, &rec), MC_OK);
    cr_assert_eq(rec.tier, MC_TIER_MID);
}
