/* Unit tests of the reads of shard/read.c: shard_get, shard_list (prefix,
 * byte-wise order across the three tier DBs, cursor paging that visits
 * every key exactly once, keys_only, expired records hidden at once, long
 * keys whose LMDB keys end in a hash), LIKE patterns (only the literal
 * prefix's range is read; the scan budget ends a page with a cursor; pages
 * equal a brute-force filter of random keys) and shard_expired_scan. Records are
 * written through shard_apply into a real LMDB store in a temporary
 * folder, then listed and compared with the expected order computed here
 * by memcmp. */
#include "tests/unit/shard/shard_test.h"
#include "tests/lib/like_ref.h"

static struct tshard f;

static void setup(void)
{
    t_open(&f, 2, 0, 0);
}

static void teardown(void)
{
    t_close(&f);
}

TestSuite(shard_get, .init = setup, .fini = teardown);
TestSuite(shard_list, .init = setup, .fini = teardown);
TestSuite(shard_expired_scan, .init = setup, .fini = teardown);

#define KEYS_MAX 256
#define KEY_BYTES (MC_KEY_BYTES_MAX + 1)

/* What a list call handed out. */
struct page {
    size_t n;
    char keys[KEYS_MAX][KEY_BYTES];
    size_t key_lens[KEYS_MAX];
    size_t value_lens[KEYS_MAX];
    bool values_null[KEYS_MAX];
    bool more;
    struct shard_list_end end;
    bool has_scanned_to;
    char scanned_to[KEY_BYTES];
};

static void page_cb(void *arg, const struct shard_record *r)
{
    struct page *p = arg;
    cr_assert_lt(p->n, KEYS_MAX);
    cr_assert_lt(r->key_len, KEY_BYTES);
    memcpy(p->keys[p->n], r->key, r->key_len);
    p->keys[p->n][r->key_len] = '\0';
    p->key_lens[p->n] = r->key_len;
    p->value_lens[p->n] = r->value_len;
    p->values_null[p->n] = r->value == NULL;
    p->n++;
}

static struct page *list_query(int64_t now, const char *prefix,
                               const char *pattern, const char *after,
                               uint32_t limit, uint32_t scan_max,
                               bool keys_only)
{
    static struct page p;
    memset(&p, 0, sizeof p);
    struct shard_list_query q = {
        .ns = (const uint8_t *)T_NS,
        .ns_len = strlen(T_NS),
        .prefix = (const uint8_t *)prefix,
        .prefix_len = prefix ? strlen(prefix) : 0,
        .pattern = (const uint8_t *)pattern,
        .pattern_len = pattern ? strlen(pattern) : 0,
        .start_after = (const uint8_t *)after,
        .start_after_len = after ? strlen(after) : 0,
        .limit = limit,
        .scan_max = scan_max,
        .keys_only = keys_only,
    };
    mc_err rv = shard_list(f.s, now, &q, page_cb, &p, &p.end);
    cr_assert_eq(rv, MC_OK);
    p.more = p.end.more;
    if (p.end.scanned_to != NULL) {
        cr_assert(pattern != NULL, "only pattern lists stop at a budget");
        cr_assert_lt(p.end.scanned_to_len, KEY_BYTES);
        memcpy(p.scanned_to, p.end.scanned_to, p.end.scanned_to_len);
        p.scanned_to[p.end.scanned_to_len] = '\0';
        p.has_scanned_to = true;
    }
    return &p;
}

static struct page *list(int64_t now, const char *prefix, const char *after,
                         uint32_t limit, bool keys_only)
{
    return list_query(now, prefix, NULL, after, limit, 0, keys_only);
}

static void put_in(const char *key, uint32_t tier)
{
    const struct shard_result *r = t_apply(
        &f, &(struct tcmd){.op = T_PUT, .key = key, .value = "val",
                           .tier = tier});
    cr_assert_eq(r->code, MC_OK, "%s: %s", key, r->message);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Page through everything under prefix with pages of limit and check that
 * the keys come out as want[0..n), each exactly once. */
static void assert_paged(const char *prefix, uint32_t limit,
                         const char *const *want, size_t n)
{
    static char after[KEY_BYTES];
    size_t seen = 0;
    bool first = true;
    for (;;) {
        struct page *p = list(T_STAMP, prefix, first ? NULL : after, limit,
                              true);
        first = false;
        cr_assert_leq(p->n, limit);
        for (size_t i = 0; i < p->n; i++, seen++) {
            cr_assert_lt(seen, n, "more keys than written");
            cr_assert_str_eq(p->keys[i], want[seen], "key %zu (limit %u)",
                             seen, limit);
        }
        if (!p->more) {
            break;
        }
        cr_assert_gt(p->n, 0);
        memcpy(after, p->keys[p->n - 1], p->key_lens[p->n - 1] + 1);
    }
    cr_assert_eq(seen, n, "limit %u: saw %zu of %zu", limit, seen, n);
}

/* ---- get ---- */

Test(shard_get, missing_key_is_not_found)
{
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, "nothing", &rec), MC_NOT_FOUND);
}

Test(shard_get, returns_every_field)
{
    const struct shard_result *r = t_apply(
        &f, &(struct tcmd){.op = T_PUT, .key = "a/b", .value = "hello",
                           .tier = MC_TIER_MID, .ttl_ms = 60000});
    cr_assert_eq(r->code, MC_OK);
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, "a/b", &rec), MC_OK);
    cr_assert_eq(rec.key_len, 3);
    cr_assert_eq(memcmp(rec.key, "a/b", 3), 0);
    cr_assert_eq(rec.value_len, 5);
    cr_assert_eq(memcmp(rec.value, "hello", 5), 0);
    cr_assert_eq(rec.version, 1);
    cr_assert_eq(rec.create_rev, 1);
    cr_assert_eq(rec.mod_rev, 1);
    cr_assert_eq(rec.tier, MC_TIER_MID);
    cr_assert_eq(rec.expires_at, T_STAMP + 60000);
    cr_assert_eq(rec.updated_at, T_STAMP);
}

Test(shard_get, namespaces_are_separate)
{
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .ns = "other",
                                            .key = "k", .value = "v"})
                     ->code,
                 MC_OK);
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, "k", &rec), MC_NOT_FOUND);
}

Test(shard_get, two_long_keys_sharing_600_bytes_are_distinct)
{
    static char a[700], b[700];
    memset(a, 'x', 600);
    memset(b, 'x', 600);
    strcpy(a + 600, "/one");
    strcpy(b + 600, "/two");
    cr_assert_eq(t_put(&f, a, "first")->code, MC_OK);
    cr_assert_eq(t_put(&f, b, "second")->code, MC_OK);
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, a, &rec), MC_OK);
    cr_assert_eq(rec.key_len, strlen(a));
    cr_assert_eq(memcmp(rec.key, a, rec.key_len), 0);
    cr_assert_eq(memcmp(rec.value, "first", 5), 0);
    cr_assert_eq(t_get(&f, T_STAMP, b, &rec), MC_OK);
    cr_assert_eq(memcmp(rec.value, "second", 6), 0);
    a[603] = 'x'; /* "/onx": same length, same 600-byte prefix */
    cr_assert_eq(t_get(&f, T_STAMP, a, &rec), MC_NOT_FOUND);
}

Test(shard_get, sees_applied_entries_before_commit_and_after)
{
    cr_assert_eq(t_put(&f, "k", "v")->code, MC_OK);
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, "k", &rec), MC_OK);
    t_commit(&f);
    cr_assert_eq(t_get(&f, T_STAMP, "k", &rec), MC_OK);
    cr_assert_eq(rec.version, 1);
}

/* ---- list ---- */

Test(shard_list, prefix_selects_sorted_keys)
{
    put_in("b/2", MC_TIER_LONG);
    put_in("a/2", MC_TIER_SHORT);
    put_in("a/1", MC_TIER_MID);
    put_in("a", MC_TIER_LONG);
    put_in("ab", MC_TIER_SHORT);
    put_in("a/10", MC_TIER_LONG);
    struct page *p = list(T_STAMP, "a/", NULL, 100, false);
    cr_assert_eq(p->n, 3);
    cr_assert_str_eq(p->keys[0], "a/1");
    cr_assert_str_eq(p->keys[1], "a/10");
    cr_assert_str_eq(p->keys[2], "a/2");
    cr_assert(!p->more);
    cr_assert_eq(p->value_lens[0], 3);
    p = list(T_STAMP, "", NULL, 100, false);
    cr_assert_eq(p->n, 6);
    cr_assert_str_eq(p->keys[0], "a");
    cr_assert_str_eq(p->keys[5], "b/2");
}

Test(shard_list, other_namespaces_are_not_listed)
{
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .ns = "t2",
                                            .key = "a", .value = "v"})
                     ->code,
                 MC_OK);
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .ns = "s",
                                            .key = "a", .value = "v"})
                     ->code,
                 MC_OK);
    put_in("a", MC_TIER_LONG);
    struct page *p = list(T_STAMP, "", NULL, 100, false);
    cr_assert_eq(p->n, 1);
    cr_assert(!p->more);
}

Test(shard_list, cursor_pages_visit_every_key_once)
{
    static char keys[60][16];
    const char *want[60];
    for (int i = 0; i < 60; i++) {
        snprintf(keys[i], sizeof keys[i], "job/%02d/x", (i * 37) % 60);
        put_in(keys[i], MC_TIER_SHORT + (uint32_t)(i % 3));
        want[i] = keys[i];
    }
    put_in("jobs", MC_TIER_LONG); /* outside the prefix */
    qsort(want, 60, sizeof want[0], cmp_str);
    for (uint32_t limit = 1; limit <= 61; limit += 6) {
        assert_paged("job/", limit, want, 60);
    }
}

Test(shard_list, limit_reports_more_exactly)
{
    put_in("a", MC_TIER_LONG);
    put_in("b", MC_TIER_SHORT);
    struct page *p = list(T_STAMP, "", NULL, 2, false);
    cr_assert_eq(p->n, 2);
    cr_assert(!p->more);
    p = list(T_STAMP, "", NULL, 1, false);
    cr_assert_eq(p->n, 1);
    cr_assert(p->more);
    p = list(T_STAMP, "", NULL, 0, false);
    cr_assert_eq(p->n, 0);
    cr_assert(p->more);
    p = list(T_STAMP, "", "b", 10, false);
    cr_assert_eq(p->n, 0);
    cr_assert(!p->more);
}

Test(shard_list, keys_only_hands_out_no_values)
{
    put_in("a", MC_TIER_LONG);
    struct page *p = list(T_STAMP, "", NULL, 10, true);
    cr_assert_eq(p->n, 1);
    cr_assert_eq(p->value_lens[0], 0);
    cr_assert(p->values_null[0]);
    p = list(T_STAMP, "", NULL, 10, false);
    cr_assert_eq(p->value_lens[0], 3);
}

Test(shard_list, expired_records_are_invisible_at_once)
{
    put_in("a", MC_TIER_LONG);
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = "b",
                                            .value = "v", .ttl_ms = 1000})
                     ->code,
                 MC_OK);
    put_in("c", MC_TIER_MID);
    struct page *p = list(T_STAMP + 999, "", NULL, 10, false);
    cr_assert_eq(p->n, 3);
    p = list(T_STAMP + 1000, "", NULL, 10, false);
    cr_assert_eq(p->n, 2);
    cr_assert_str_eq(p->keys[0], "a");
    cr_assert_str_eq(p->keys[1], "c");
    /* An expired record at a page boundary does not make "more". */
    p = list(T_STAMP + 1000, "", "a", 1, false);
    cr_assert_eq(p->n, 1);
    cr_assert(!p->more);
}

/* Keys around the 492-byte LMDB prefix: long ones (their LMDB keys end in
 * a hash), inline ones of 490..498 bytes with the same first bytes, and
 * ones that differ before the prefix ends. */
static size_t make_long_keys(char keys[][KEY_BYTES], const char **want)
{
    const size_t ns = strlen(T_NS) + 1; /* record key = ns '\0' key */
    const size_t common = SHARD_DBKEY_PREFIX - ns;
    size_t n = 0;
    static const char *const tails[] = {"",     "0",    "00",   "1",
                                        "a",    "zz",   "b/c",  "0123456"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        memset(keys[n], 'p', common);
        strcpy(keys[n] + common, tails[i]);
        n++;
    }
    for (int i = 0; i < 24; i++) {
        memset(keys[n], 'p', 600);
        snprintf(keys[n] + common, KEY_BYTES - common, "%c%s%d",
                 "0az"[i % 3], i % 2 ? "-" : "", i * 7919 % 1000);
        memset(keys[n] + strlen(keys[n]), 'q', 30 + i); /* long tail */
        keys[n][common + 40 + i] = '\0';
        n++;
    }
    memset(keys[n], 'o', 700);
    keys[n++][700] = '\0';
    memset(keys[n], 'p', 700);
    keys[n][common - 1] = 'q';
    keys[n++][700] = '\0';
    for (size_t i = 0; i < n; i++) {
        want[i] = keys[i];
    }
    qsort(want, n, sizeof want[0], cmp_str);
    return n;
}

Test(shard_list, long_keys_come_out_in_byte_order)
{
    static char keys[40][KEY_BYTES];
    const char *want[40];
    size_t n = make_long_keys(keys, want);
    for (size_t i = 0; i < n; i++) {
        put_in(keys[i], MC_TIER_SHORT + (uint32_t)(i % 3));
    }
    for (uint32_t limit = 1; limit <= n + 1; limit++) {
        assert_paged("", limit, want, n);
    }
    /* A prefix whose record key is longer than the LMDB prefix is matched
     * on full keys: here 490 bytes of 'p' and a '0'. */
    const size_t prefix_len = SHARD_DBKEY_PREFIX - strlen(T_NS);
    char prefix[KEY_BYTES];
    memset(prefix, 'p', prefix_len - 1);
    prefix[prefix_len - 1] = '0';
    prefix[prefix_len] = '\0';
    size_t lo = n, hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(want[i], prefix, prefix_len) == 0) {
            lo = i < lo ? i : lo;
            hi = i + 1;
        }
    }
    cr_assert_gt(hi - lo, 8);
    for (uint32_t limit = 1; limit <= 5; limit++) {
        assert_paged(prefix, limit, want + lo, hi - lo);
    }
}

/* ---- list with a LIKE pattern ---- */

Test(shard_list, pattern_selects_matching_keys_in_order)
{
    static const char *const keys[] = {
        "swarm/researcher/status", "swarm/writer/status",
        "swarm/writer/notes",      "swarm/status",
        "swarm/shared/api-contract", "swarm/shared/db-contract",
        "swarm/shared/contract",   "other/x/status",
        "swarm/a_b/status",        "swarm/axb/status",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        put_in(keys[i], MC_TIER_SHORT + (uint32_t)(i % 3));
    }
    struct page *p = list_query(T_STAMP, NULL, "swarm/%/status", NULL, 100,
                                1000, false);
    cr_assert_eq(p->n, 4);
    cr_assert_str_eq(p->keys[0], "swarm/a_b/status");
    cr_assert_str_eq(p->keys[1], "swarm/axb/status");
    cr_assert_str_eq(p->keys[2], "swarm/researcher/status");
    cr_assert_str_eq(p->keys[3], "swarm/writer/status");
    cr_assert(!p->more);
    cr_assert_eq(p->value_lens[0], 3);
    p = list_query(T_STAMP, NULL, "swarm/shared/%-contract", NULL, 100, 1000,
                   true);
    cr_assert_eq(p->n, 2);
    cr_assert_str_eq(p->keys[0], "swarm/shared/api-contract");
    cr_assert_str_eq(p->keys[1], "swarm/shared/db-contract");
    cr_assert(p->values_null[0]);
    p = list_query(T_STAMP, NULL, "swarm/a\\_b/%", NULL, 100, 1000, true);
    cr_assert_eq(p->n, 1);
    cr_assert_str_eq(p->keys[0], "swarm/a_b/status");
    p = list_query(T_STAMP, NULL, "%/status", NULL, 2, 1000, true);
    cr_assert_eq(p->n, 2);
    cr_assert(p->more, "a full page with matches left says more");
    cr_assert(!p->has_scanned_to, "a page that filled needs no scan cursor");
}

Test(shard_list, pattern_reads_only_its_literal_prefix)
{
    static char keys[300][16];
    for (int i = 0; i < 300; i++) {
        snprintf(keys[i], sizeof keys[i], "a/%03d/x", i);
        put_in(keys[i], MC_TIER_SHORT + (uint32_t)(i % 3));
    }
    put_in("z/1/x", MC_TIER_LONG);
    put_in("z/2/y", MC_TIER_MID);
    struct page *p = list_query(T_STAMP, NULL, "z/%/x", NULL, 100, 1000,
                                true);
    cr_assert_eq(p->n, 1);
    cr_assert_eq(p->end.examined, 2, "read %u records for 2 under z/",
                 p->end.examined);
    p = list_query(T_STAMP, NULL, "a/1%", NULL, 100, 1000, true);
    cr_assert_eq(p->n, 100);
    cr_assert_leq(p->end.examined, 101);
    p = list_query(T_STAMP, NULL, "%/x", NULL, 1000 > KEYS_MAX ? KEYS_MAX : 1000,
                   1000, true);
    cr_assert_eq(p->end.examined, KEYS_MAX + 1, "no literal prefix: %u",
                 p->end.examined);
}

Test(shard_list, pattern_stops_at_its_scan_budget_with_a_cursor)
{
    static char keys[50][16];
    for (int i = 0; i < 50; i++) {
        snprintf(keys[i], sizeof keys[i], "k/%02d", i);
        put_in(keys[i], MC_TIER_LONG);
    }
    put_in("k/99/match", MC_TIER_LONG);
    /* 10 records examined, none matches: no records, more, and the cursor
     * is the last key examined. */
    struct page *p = list_query(T_STAMP, NULL, "k/%/match", NULL, 10, 10,
                                true);
    cr_assert_eq(p->n, 0);
    cr_assert(p->more);
    cr_assert(p->has_scanned_to);
    cr_assert_str_eq(p->scanned_to, "k/09");
    p = list_query(T_STAMP, NULL, "k/%/match", "k/09", 10, 10, true);
    cr_assert_eq(p->n, 0);
    cr_assert_str_eq(p->scanned_to, "k/19");
    p = list_query(T_STAMP, NULL, "k/%/match", "k/45", 10, 10, true);
    cr_assert_eq(p->n, 1);
    cr_assert_str_eq(p->keys[0], "k/99/match");
    cr_assert(!p->more, "the budget ran out at the end: nothing is left");
    cr_assert(!p->has_scanned_to);
}

/* Random keys of a small alphabet that holds the wildcards themselves, in
 * every tier, some expired and some long; every pattern, paged with small
 * limits and budgets the way the node pages, must give exactly the keys a
 * brute-force filter gives, each once, the cursor always moving on. */
static const char *const rand_pieces[] = {"a", "b", "/", "-", "_", "%",
                                          "\xc3\xa9"};
#define RAND_KEYS 400

static void paged_pattern(const char *pattern, uint32_t limit,
                          uint32_t scan_max, int64_t now,
                          const char *const *all, size_t n_all)
{
    static char cursor[KEY_BYTES];
    bool has_cursor = false;
    size_t n_want = 0;
    for (size_t i = 0; i < n_all; i++) {
        n_want += like_ref_match(pattern, strlen(pattern), all[i],
                                 strlen(all[i]));
    }
    size_t seen = 0, want_i = 0;
    for (unsigned pages = 0;; pages++) {
        cr_assert_lt(pages, 10000, "paging does not end");
        struct page *p = list_query(now, NULL, pattern,
                                    has_cursor ? cursor : NULL, limit,
                                    scan_max, true);
        for (size_t i = 0; i < p->n; i++, seen++) {
            while (want_i < n_all &&
                   !like_ref_match(pattern, strlen(pattern), all[want_i],
                                   strlen(all[want_i]))) {
                want_i++;
            }
            cr_assert_lt(want_i, n_all, "'%s': more keys than match",
                         pattern);
            cr_assert_str_eq(p->keys[i], all[want_i], "'%s' limit %u scan %u",
                             pattern, limit, scan_max);
            want_i++;
        }
        if (!p->more) {
            break;
        }
        const char *next = p->has_scanned_to ? p->scanned_to
                                             : p->keys[p->n - 1];
        cr_assert(p->has_scanned_to || p->n > 0);
        if (p->n > 0) {
            cr_assert_geq(strcmp(next, p->keys[p->n - 1]), 0);
        }
        cr_assert(!has_cursor || strcmp(next, cursor) > 0,
                  "the cursor must move on");
        strcpy(cursor, next);
        has_cursor = true;
    }
    cr_assert_eq(seen, n_want, "'%s' limit %u scan %u: %zu of %zu", pattern,
                 limit, scan_max, seen, n_want);
}

Test(shard_list, pattern_pages_equal_a_brute_force_filter)
{
    static char keys[RAND_KEYS + 2][KEY_BYTES];
    const char *live[RAND_KEYS + 2];
    size_t n_live = 0;
    srand(77);
    for (int i = 0; i < RAND_KEYS; i++) {
        keys[i][0] = '\0';
        int len = 1 + rand() % 7;
        for (int k = 0; k < len; k++) {
            strcat(keys[i], rand_pieces[rand() % 7]);
        }
        uint64_t ttl = i % 10 == 0 ? 1000 : 0; /* a tenth expire */
        const struct shard_result *r = t_apply(
            &f, &(struct tcmd){.op = T_PUT, .key = keys[i], .value = "v",
                               .tier = ttl ? MC_TIER_SHORT
                                           : MC_TIER_SHORT + (uint32_t)(i % 3),
                               .ttl_ms = ttl});
        cr_assert_eq(r->code, MC_OK, "%s", r->message);
    }
    /* Two long keys (a run of LMDB keys that end in a hash). */
    memset(keys[RAND_KEYS], 'a', 600);
    strcpy(keys[RAND_KEYS] + 600, "/x-1");
    memset(keys[RAND_KEYS + 1], 'a', 600);
    strcpy(keys[RAND_KEYS + 1] + 600, "/x_2");
    put_in(keys[RAND_KEYS], MC_TIER_LONG);
    put_in(keys[RAND_KEYS + 1], MC_TIER_MID);
    int64_t now = T_STAMP + 1000;
    for (int i = 0; i < RAND_KEYS + 2; i++) {
        bool dup = false;
        for (size_t j = 0; j < n_live; j++) {
            dup = dup || strcmp(live[j], keys[i]) == 0;
        }
        struct shard_record rec;
        if (!dup && t_get(&f, now, keys[i], &rec) == MC_OK) {
            live[n_live++] = keys[i];
        }
    }
    qsort(live, n_live, sizeof live[0], cmp_str);
    static const char *const patterns[] = {
        "%", "a%", "%a", "a/%", "%/%", "_", "__", "%\\%%", "%\\_%", "a_b%",
        "%-%", "\\%%", "\\_%", "b%a", "%\xc3\xa9", "_\xc3\xa9%", "a%/x-_",
        "aaaa%", "%\\\\%",
    };
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        paged_pattern(patterns[i], 1000 > KEYS_MAX ? KEYS_MAX : 1000, 1000000,
                      now, live, n_live);
        paged_pattern(patterns[i], 3, 1, now, live, n_live);
        paged_pattern(patterns[i], 7, 5, now, live, n_live);
        paged_pattern(patterns[i], 1, 40, now, live, n_live);
    }
}

/* ---- the leader's expiry scan ---- */

struct expired {
    size_t n;
    char keys[8][32];
    uint8_t tiers[8];
};

static void expired_cb(void *arg, uint8_t tier, const uint8_t *ns,
                       size_t ns_len, const uint8_t *key, size_t key_len)
{
    struct expired *e = arg;
    cr_assert_lt(e->n, 8);
    cr_assert_eq(ns_len, strlen(T_NS));
    cr_assert_eq(memcmp(ns, T_NS, ns_len), 0);
    memcpy(e->keys[e->n], key, key_len);
    e->keys[e->n][key_len] = '\0';
    e->tiers[e->n++] = tier;
}

static void put_ttl(const char *key, uint32_t tier, uint64_t ttl_ms)
{
    const struct shard_result *r = t_apply(
        &f, &(struct tcmd){.op = T_PUT, .key = key, .value = "v",
                           .tier = tier, .ttl_ms = ttl_ms});
    cr_assert_eq(r->code, MC_OK, "%s", r->message);
}

Test(shard_expired_scan, finds_expired_records_oldest_first)
{
    put_ttl("late", MC_TIER_MID, 3000);
    put_ttl("early", MC_TIER_SHORT, 1000);
    put_ttl("middle", MC_TIER_SHORT, 2000);
    put_in("forever", MC_TIER_LONG);
    struct expired e = {0};
    cr_assert_eq(shard_expired_scan(f.s, T_STAMP + 999, 8, expired_cb, &e),
                 MC_OK);
    cr_assert_eq(e.n, 0);
    cr_assert_eq(shard_expired_scan(f.s, T_STAMP + 2000, 8, expired_cb, &e),
                 MC_OK);
    cr_assert_eq(e.n, 2);
    cr_assert_str_eq(e.keys[0], "early");
    cr_assert_str_eq(e.keys[1], "middle");
    cr_assert_eq(e.tiers[0], MC_TIER_SHORT);
    memset(&e, 0, sizeof e);
    cr_assert_eq(shard_expired_scan(f.s, INT64_MAX, 2, expired_cb, &e),
                 MC_OK);
    cr_assert_eq(e.n, 2);
    memset(&e, 0, sizeof e);
    cr_assert_eq(shard_expired_scan(f.s, INT64_MAX, 8, expired_cb, &e),
                 MC_OK);
    cr_assert_eq(e.n, 3);
    cr_assert_str_eq(e.keys[2], "late");
    cr_assert_eq(e.tiers[2], MC_TIER_MID);
}

Test(shard_expired_scan, rewritten_records_are_found_at_their_new_time)
{
    put_ttl("k", MC_TIER_SHORT, 1000);
    put_ttl("k", MC_TIER_SHORT, 5000);
    struct expired e = {0};
    cr_assert_eq(shard_expired_scan(f.s, T_STAMP + 4999, 8, expired_cb, &e),
                 MC_OK);
    cr_assert_eq(e.n, 0);
    cr_assert_eq(shard_expired_scan(f.s, T_STAMP + 5000, 8, expired_cb, &e),
                 MC_OK);
    cr_assert_eq(e.n, 1);
}
