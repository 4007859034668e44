/* Integration tests of libmemcoord against a real memcoord node.
 *
 * Each test starts its own single-node cluster of 8 shards (tests/lib
 * harness), waits until every shard has a leader, and drives it through
 * the public API: put/get/delete and the whole CAS matrix, tiers and TTLs,
 * list across shards with paging, status, restarts, many threads on one
 * client. A raw nng req socket then speaks to the node around the
 * library: the node's own checks (bad keys, oversized values), garbage and
 * truncated frames, and a PUT sent twice with the same (client_id, seq),
 * which must apply once. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "memcoord.h"
#include "tests/lib/harness.h"

static struct mc_node_proc node;
static mc_client *cl;

static mc_client *client_for(const char *endpoints, int timeout_ms)
{
    mc_options opts = {.timeout_ms = timeout_ms};
    mc_client *c;
    mc_result res;
    cr_assert_eq(mc_client_open(endpoints, &opts, &c, &res), MC_OK, "%s",
                 res.message);
    return c;
}

static void up(void)
{
    cr_assert_eq(harness_node_start(&node, NULL), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    cl = client_for(node.url, 5000);
}

static void down(void)
{
    if (cl != NULL) {
        mc_client_close(cl);
        cl = NULL;
    }
    harness_fini();
}

#define NODE_TEST(suite, name) \
    Test(suite, name, .init = up, .fini = down, .timeout = 60)

static mc_err put(const char *ns, const char *key, const char *value,
                  int64_t expect, mc_result *res)
{
    mc_put_opts o = MC_PUT_OPTS_INIT;
    o.expect_version = expect;
    return mc_put(cl, ns, key, value, strlen(value), &o, res);
}

static mc_record *get_ok(const char *ns, const char *key)
{
    mc_record *r;
    mc_result res;
    cr_assert_eq(mc_get(cl, ns, key, NULL, &r, &res), MC_OK, "get %s: %s %s",
                 key, mc_errname(res.code), res.message);
    return r;
}

static void expect_conflict(mc_err rv, const mc_result *res, uint64_t seen)
{
    cr_assert_eq(rv, MC_CONFLICT, "got %s: %s", mc_errname(rv), res->message);
    cr_assert_eq(res->version, seen, "CONFLICT carries the current version");
    cr_assert_neq(res->message[0], '\0');
}

/* ---- put, get, delete ---- */

NODE_TEST(mc_put, round_trip_and_versions)
{
    mc_result res;
    int64_t t0 = base_wall_ms();
    cr_assert_eq(put("default", "swarm/x", "hello", MC_VERSION_ANY, &res),
                 MC_OK, "%s", res.message);
    cr_assert_eq(res.version, 1);
    cr_assert_gt(res.create_rev, 0);
    cr_assert_eq(res.mod_rev, res.create_rev);
    uint64_t created = res.create_rev;

    mc_record *r = get_ok("default", "swarm/x");
    cr_assert_str_eq(r->key, "swarm/x");
    cr_assert_eq(r->value_len, 5);
    cr_assert_str_eq((char *)r->value, "hello");
    cr_assert_eq(r->version, 1);
    cr_assert_eq(r->create_rev, created);
    cr_assert_eq(r->tier, MC_TIER_LONG, "no TTL, no record: long");
    cr_assert_eq(r->expires_at_ms, 0);
    cr_assert(r->updated_at_ms >= t0 - 5000 &&
              r->updated_at_ms <= base_wall_ms() + 5000);
    mc_record_free(r);

    cr_assert_eq(put("default", "swarm/x", "world", MC_VERSION_ANY, &res),
                 MC_OK);
    cr_assert_eq(res.version, 2);
    cr_assert_eq(res.create_rev, created);
    cr_assert_gt(res.mod_rev, created);
    r = get_ok("default", "swarm/x");
    cr_assert_str_eq((char *)r->value, "world");
    cr_assert_eq(r->version, 2);
    mc_record_free(r);
}

NODE_TEST(mc_put, binary_values_and_empty_values)
{
    static const uint8_t bin[] = {0, 1, 2, 0xff, 0xfe, 0, '\n'};
    mc_result res;
    cr_assert_eq(mc_put(cl, "default", "bin", bin, sizeof bin, NULL, &res),
                 MC_OK);
    mc_record *r = get_ok("default", "bin");
    cr_assert_eq(r->value_len, sizeof bin);
    cr_assert_arr_eq(r->value, bin, sizeof bin);
    mc_record_free(r);
    cr_assert_eq(mc_put(cl, "default", "empty", "", 0, NULL, &res), MC_OK);
    r = get_ok("default", "empty");
    cr_assert_eq(r->value_len, 0);
    mc_record_free(r);
}

NODE_TEST(mc_put, cas_matrix)
{
    mc_result res;
    const char *k = "swarm/x";
    /* expect 0: create only */
    cr_assert_eq(put("default", k, "a", 0, &res), MC_OK, "%s", res.message);
    cr_assert_eq(res.version, 1);
    expect_conflict(put("default", k, "b", 0, &res), &res, 1);
    /* expect n: exactly n */
    expect_conflict(put("default", k, "b", 3, &res), &res, 1);
    cr_assert(strstr(res.message, "version 1") != NULL, "%s", res.message);
    cr_assert_eq(put("default", k, "b", 1, &res), MC_OK);
    cr_assert_eq(res.version, 2);
    expect_conflict(put("default", k, "c", 1, &res), &res, 2);
    /* expect n > 0 on a missing key */
    expect_conflict(put("default", "swarm/missing", "c", 5, &res), &res, 0);
    /* delete with a stale, then the right version */
    expect_conflict(mc_delete(cl, "default", k, 1, &res), &res, 2);
    cr_assert_eq(mc_delete(cl, "default", k, 2, &res), MC_OK, "%s",
                 res.message);
    mc_record *r;
    cr_assert_eq(mc_get(cl, "default", k, NULL, &r, &res), MC_NOT_FOUND);
    cr_assert_eq(mc_delete(cl, "default", k, MC_VERSION_ANY, &res),
                 MC_NOT_FOUND);
    /* after a delete the key is new again: version 1, expect 0 holds */
    cr_assert_eq(put("default", k, "d", 0, &res), MC_OK, "%s", res.message);
    cr_assert_eq(res.version, 1);
    /* the value of a failed write was not stored */
    r = get_ok("default", k);
    cr_assert_str_eq((char *)r->value, "d");
    mc_record_free(r);
    /* unconditional delete */
    cr_assert_eq(mc_delete(cl, "default", k, MC_VERSION_ANY, &res), MC_OK);
}

NODE_TEST(mc_put, namespaces_are_separate)
{
    mc_result res;
    cr_assert_eq(put("team-a", "k", "in a", MC_VERSION_ANY, &res), MC_OK);
    cr_assert_eq(put("team-b", "k", "in b", MC_VERSION_ANY, &res), MC_OK);
    mc_record *r = get_ok("team-a", "k");
    cr_assert_str_eq((char *)r->value, "in a");
    mc_record_free(r);
    r = get_ok("team-b", "k");
    cr_assert_str_eq((char *)r->value, "in b");
    cr_assert_eq(r->version, 1);
    mc_record_free(r);
    cr_assert_eq(mc_get(cl, "default", "k", NULL, &r, &res), MC_NOT_FOUND);
}

/* ---- tiers and TTLs ---- */

static mc_record *put_tier(const char *key, mc_tier tier, uint64_t ttl_ms)
{
    mc_put_opts o = MC_PUT_OPTS_INIT;
    o.tier = tier;
    o.ttl_ms = ttl_ms;
    mc_result res;
    cr_assert_eq(mc_put(cl, "default", key, "v", 1, &o, &res), MC_OK,
                 "%s: %s", key, res.message);
    return get_ok("default", key);
}

static void assert_expires_near(const mc_record *r, int64_t ms_from_now)
{
    int64_t want = base_wall_ms() + ms_from_now;
    cr_assert(r->expires_at_ms > want - 10000 && r->expires_at_ms < want + 1000,
              "expires_at %lld, want about %lld", (long long)r->expires_at_ms,
              (long long)want);
}

NODE_TEST(mc_put, tiers_and_ttls)
{
    mc_record *r = put_tier("t/short", MC_TIER_SHORT, 60000);
    cr_assert_eq(r->tier, MC_TIER_SHORT);
    assert_expires_near(r, 60000);
    mc_record_free(r);

    r = put_tier("t/short-default", MC_TIER_SHORT, 0);
    cr_assert_eq(r->tier, MC_TIER_SHORT);
    assert_expires_near(r, 3600 * 1000);
    mc_record_free(r);

    r = put_tier("t/mid", MC_TIER_MID, 0);
    cr_assert_eq(r->tier, MC_TIER_MID);
    assert_expires_near(r, 7ll * 24 * 3600 * 1000);
    mc_record_free(r);

    r = put_tier("t/long", MC_TIER_LONG, 0);
    cr_assert_eq(r->tier, MC_TIER_LONG);
    cr_assert_eq(r->expires_at_ms, 0);
    mc_record_free(r);

    /* the server's choice: short when a TTL is given ... */
    r = put_tier("t/ttl-only", MC_TIER_DEFAULT, 120000);
    cr_assert_eq(r->tier, MC_TIER_SHORT);
    assert_expires_near(r, 120000);
    mc_record_free(r);
    /* ... else the tier the record has */
    r = put_tier("t/mid", MC_TIER_DEFAULT, 0);
    cr_assert_eq(r->tier, MC_TIER_MID);
    cr_assert_eq(r->version, 2);
    mc_record_free(r);

    mc_put_opts o = {.expect_version = MC_VERSION_ANY, .tier = MC_TIER_LONG,
                     .ttl_ms = 1000};
    mc_result res;
    cr_assert_eq(mc_put(cl, "default", "t/bad", "v", 1, &o, &res),
                 MC_INVALID_ARGUMENT);
}

NODE_TEST(mc_put, short_ttl_expires)
{
    mc_put_opts o = {.expect_version = MC_VERSION_ANY, .tier = MC_TIER_SHORT,
                     .ttl_ms = 300};
    mc_result res;
    cr_assert_eq(mc_put(cl, "default", "gone/soon", "v", 1, &o, &res), MC_OK);
    int64_t deadline = base_mono_ms() + 5000;
    mc_err rv = MC_OK;
    while (base_mono_ms() < deadline) {
        mc_record *r;
        rv = mc_get(cl, "default", "gone/soon", NULL, &r, &res);
        if (rv != MC_OK) {
            break;
        }
        mc_record_free(r);
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(rv, MC_NOT_FOUND, "still there after 5 s: %s",
                 mc_errname(rv));
}

/* ---- list ---- */

static int strp_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#define LIST_KEYS 150

/* Put LIST_KEYS keys under three prefixes (spread over the shards by
 * hash) and some in another namespace; return them sorted. */
static char **put_many(void)
{
    static const char *prefixes[] = {"agents/", "tasks/", "a/"};
    char **keys = calloc(LIST_KEYS, sizeof *keys);
    for (int i = 0; i < LIST_KEYS; i++) {
        char k[64];
        snprintf(k, sizeof k, "%s%04d", prefixes[i % 3], i * 7919 % 1000);
        keys[i] = strdup(k);
        mc_result res;
        cr_assert_eq(put("default", k, k, MC_VERSION_ANY, &res), MC_OK,
                     "%s: %s", k, res.message);
        cr_assert_eq(put("other", k, "x", MC_VERSION_ANY, &res), MC_OK);
    }
    qsort(keys, LIST_KEYS, sizeof *keys, strp_cmp);
    return keys;
}

NODE_TEST(mc_list, pages_equal_the_sorted_set_of_all_puts)
{
    char **keys = put_many();
    char *cursor = NULL;
    int got = 0;
    for (int pages = 0; pages < LIST_KEYS; pages++) {
        mc_list_opts o = {.start_after = cursor, .limit = 7};
        mc_page *p;
        mc_result res;
        cr_assert_eq(mc_list(cl, "default", "", &o, &p, &res), MC_OK, "%s",
                     res.message);
        for (size_t i = 0; i < p->n; i++) {
            cr_assert_lt(got, LIST_KEYS, "more keys than were put");
            cr_assert_str_eq(p->records[i].key, keys[got]);
            cr_assert_str_eq((char *)p->records[i].value, keys[got]);
            cr_assert_eq(p->records[i].version, 1);
            got++;
        }
        free(cursor);
        cursor = NULL;
        if (!p->more) {
            mc_page_free(p);
            break;
        }
        cr_assert_eq(p->n, 7, "a page that is not the last is full");
        cr_assert_str_eq(p->next_cursor, p->records[6].key);
        cursor = strdup(p->next_cursor);
        mc_page_free(p);
    }
    cr_assert_eq(got, LIST_KEYS);
    free(cursor);
    for (int i = 0; i < LIST_KEYS; i++) {
        free(keys[i]);
    }
    free(keys);
}

NODE_TEST(mc_list, prefix_keys_only_and_one_big_page)
{
    char **keys = put_many();
    mc_page *p;
    mc_result res;
    cr_assert_eq(mc_list(cl, "default", "", NULL, &p, &res), MC_OK);
    cr_assert_eq(p->n, LIST_KEYS, "the default page holds them all");
    cr_assert_not(p->more);
    cr_assert_null(p->next_cursor);
    mc_page_free(p);

    mc_list_opts o = {.keys_only = true};
    cr_assert_eq(mc_list(cl, "default", "tasks/", &o, &p, &res), MC_OK);
    cr_assert_eq(p->n, LIST_KEYS / 3);
    for (size_t i = 0; i < p->n; i++) {
        cr_assert_eq(strncmp(p->records[i].key, "tasks/", 6), 0);
        cr_assert_eq(p->records[i].value_len, 0, "keys only");
        cr_assert_eq(p->records[i].version, 1);
        if (i > 0) {
            cr_assert_lt(strcmp(p->records[i - 1].key, p->records[i].key), 0);
        }
    }
    mc_page_free(p);

    o = (mc_list_opts){.serializable = true};
    cr_assert_eq(mc_list(cl, "default", "nothing/", &o, &p, &res), MC_OK);
    cr_assert_eq(p->n, 0);
    cr_assert_not(p->more);
    mc_page_free(p);
    cr_assert_eq(mc_list(cl, "other", "", NULL, &p, &res), MC_OK);
    cr_assert_eq(p->n, LIST_KEYS);
    mc_page_free(p);
    for (int i = 0; i < LIST_KEYS; i++) {
        free(keys[i]);
    }
    free(keys);
}

/* ---- status ---- */

NODE_TEST(mc_status_get, every_shard_led_and_slots_covered)
{
    mc_status *s;
    mc_result res;
    cr_assert_eq(mc_status_get(cl, &s, &res), MC_OK, "%s", res.message);
    cr_assert_neq(s->node_id, 0);
    cr_assert_str_neq(s->version, "");
    cr_assert_eq(s->n_shards, 8);
    uint32_t next = 0;
    for (size_t i = 0; i < s->n_shards; i++) {
        const mc_shard_status *h = &s->shards[i];
        cr_assert_eq(h->id, i);
        cr_assert_eq(h->slot_lo, next, "slot ranges are contiguous");
        cr_assert_geq(h->slot_hi, h->slot_lo);
        next = h->slot_hi + 1;
        cr_assert_eq(h->leader_id, s->node_id, "a single node leads all");
        cr_assert(h->is_leader);
        cr_assert_gt(h->term, 0);
        cr_assert_geq(h->last_index, h->applied_index);
    }
    cr_assert_eq(next, 16384);
    mc_status_free(s);

    mc_put_opts o = MC_PUT_OPTS_INIT;
    o.tier = MC_TIER_MID;
    cr_assert_eq(mc_put(cl, "default", "counted", "v", 1, &o, &res), MC_OK);
    /* The node refreshes its record counts on its expiry sweep (about once
     * a second), so the count shows up within a few seconds. */
    uint64_t mid = 0;
    int64_t deadline = base_mono_ms() + 5000;
    while (mid != 1 && base_mono_ms() < deadline) {
        cr_assert_eq(mc_status_get(cl, &s, &res), MC_OK);
        mid = 0;
        for (size_t i = 0; i < s->n_shards; i++) {
            mid += s->shards[i].records[MC_TIER_MID];
        }
        mc_status_free(s);
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(mid, 1, "one mid record counted");
}

/* ---- restarts and retries ---- */

NODE_TEST(mc_put, acknowledged_writes_survive_restarts)
{
    mc_result res;
    cr_assert_eq(put("default", "durable", "one", MC_VERSION_ANY, &res),
                 MC_OK);
    cr_assert_eq(harness_node_stop(&node, SIGTERM), 0, "clean exit on TERM");
    cr_assert_eq(harness_node_restart(&node), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    mc_record *r = get_ok("default", "durable");
    cr_assert_str_eq((char *)r->value, "one");
    mc_record_free(r);

    cr_assert_eq(put("default", "durable", "two", 1, &res), MC_OK);
    harness_node_stop(&node, SIGKILL);
    cr_assert_eq(harness_node_restart(&node), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    r = get_ok("default", "durable");
    cr_assert_str_eq((char *)r->value, "two");
    cr_assert_eq(r->version, 2);
    mc_record_free(r);
}

struct late_put {
    mc_client *c;
    mc_err rv;
    mc_result res;
};

static void *late_put_main(void *arg)
{
    struct late_put *p = arg;
    p->rv = mc_put(p->c, "default", "retried", "v", 1, NULL, &p->res);
    return NULL;
}

NODE_TEST(mc_put, retries_until_the_node_is_back)
{
    harness_node_stop(&node, SIGKILL);
    struct late_put p = {.c = client_for(node.url, 10000)};
    pthread_t t;
    pthread_create(&t, NULL, late_put_main, &p);
    cr_assert_eq(harness_node_restart(&node), 0);
    pthread_join(t, NULL);
    cr_assert_eq(p.rv, MC_OK, "%s: %s", mc_errname(p.rv), p.res.message);
    cr_assert_eq(p.res.version, 1, "applied once");
    mc_client_close(p.c);
}

NODE_TEST(mc_client_open, skips_an_endpoint_that_is_down)
{
    char eps[160];
    snprintf(eps, sizeof eps, "tcp://127.0.0.1:1,%s", node.url);
    for (int i = 0; i < 3; i++) {
        mc_client *c = client_for(eps, 5000);
        mc_result res;
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        cr_assert_eq(mc_put(c, "default", key, "v", 1, NULL, &res), MC_OK,
                     "%s", res.message);
        mc_client_close(c);
    }
}

struct writer {
    int id;
    int ok;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    for (int i = 0; i < 50; i++) {
        char key[32];
        snprintf(key, sizeof key, "w%d/%02d", w->id, i);
        mc_result res;
        w->ok += mc_put(cl, "default", key, key, strlen(key), NULL, &res) ==
                 MC_OK;
    }
    return NULL;
}

NODE_TEST(mc_put, many_threads_share_one_client)
{
    pthread_t t[4];
    struct writer w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct writer){i, 0};
        pthread_create(&t[i], NULL, writer_main, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].ok, 50);
    }
    mc_page *p;
    mc_result res;
    cr_assert_eq(mc_list(cl, "default", "w", NULL, &p, &res), MC_OK);
    cr_assert_eq(p->n, 200);
    mc_page_free(p);
}

/* ---- bad input, through the library ---- */

NODE_TEST(mc_put, rejects_bad_input)
{
    static char big[MC_VALUE_BYTES_MAX + 1];
    memset(big, 'v', sizeof big);
    mc_result res;
    cr_assert_eq(mc_put(cl, "default", "big", big, sizeof big, NULL, &res),
                 MC_TOO_LARGE);
    cr_assert_eq(mc_put(cl, "default", "big", big, MC_VALUE_BYTES_MAX, NULL,
                        &res),
                 MC_OK, "a value of exactly the limit fits: %s", res.message);
    mc_record *r = get_ok("default", "big");
    cr_assert_eq(r->value_len, MC_VALUE_BYTES_MAX);
    mc_record_free(r);

    char long_key[MC_KEY_BYTES_MAX + 2];
    memset(long_key, 'k', sizeof long_key);
    long_key[MC_KEY_BYTES_MAX + 1] = '\0';
    const char *bad_keys[] = {"", "\xc0\xaf", "\xed\xa0\x80", "a\xff",
                              long_key};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        cr_assert_eq(mc_put(cl, "default", bad_keys[i], "v", 1, NULL, &res),
                     MC_INVALID_ARGUMENT, "bad key %zu", i);
    }
    long_key[MC_KEY_BYTES_MAX] = '\0';
    cr_assert_eq(mc_put(cl, "default", long_key, "v", 1, NULL, &res), MC_OK,
                 "a key of 1024 bytes fits: %s", res.message);
    const char *bad_ns[] = {"", "Default", "-x", "a/b", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad_ns / sizeof bad_ns[0]; i++) {
        cr_assert_eq(mc_put(cl, bad_ns[i], "k", "v", 1, NULL, &res),
                     MC_INVALID_ARGUMENT, "bad ns %zu", i);
    }
}

/* ---- the node's own checks, around the library ---- */

static Mcpb__Request raw_put(const char *ns, const void *key, size_t key_len,
                             const void *value, size_t value_len)
{
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_PUT;
    req.has_client_id = true;
    req.client_id = 0x5eed0000u + (uint64_t)key_len;
    req.has_seq = true;
    req.seq = 1;
    req.has_ns = true;
    req.ns.data = (uint8_t *)ns;
    req.ns.len = strlen(ns);
    req.has_key = true;
    req.key.data = (uint8_t *)key;
    req.key.len = key_len;
    req.has_value = true;
    req.value.data = (uint8_t *)value;
    req.value.len = value_len;
    return req;
}

static uint32_t raw_code(const Mcpb__Request *req)
{
    Mcpb__Response *r;
    int rv = harness_raw_request(node.url, req, 5000, &r);
    cr_assert_eq(rv, 0, "raw request failed: %d", rv);
    uint32_t code = r->code;
    mcpb__response__free_unpacked(r, NULL);
    return code;
}

/* A normal client still gets served: the node survived what came before. */
static void assert_still_serving(void)
{
    mc_result res;
    cr_assert_eq(put("default", "alive", "yes", MC_VERSION_ANY, &res), MC_OK,
                 "%s", res.message);
    mc_record *r = get_ok("default", "alive");
    cr_assert_str_eq((char *)r->value, "yes");
    mc_record_free(r);
    cr_assert_neq(node.pid, 0);
    cr_assert_eq(kill(node.pid, 0), 0, "the node process is gone");
}

NODE_TEST(node_frontend, checks_what_the_library_would_have_caught)
{
    static char big[MC_VALUE_BYTES_MAX + 1];
    Mcpb__Request req = raw_put("default", "big", 3, big, sizeof big);
    cr_assert_eq(raw_code(&req), MC_TOO_LARGE);

    char long_key[MC_KEY_BYTES_MAX + 1];
    memset(long_key, 'k', sizeof long_key);
    struct {
        const char *key;
        size_t len;
    } bad[] = {{"", 0},           {"a\0b", 3},         {"\xc0\xaf", 2},
               {"\xed\xa0\x80", 3}, {"\xf4\x90\x80\x80", 4},
               {long_key, sizeof long_key}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        req = raw_put("default", bad[i].key, bad[i].len, "v", 1);
        cr_assert_eq(raw_code(&req), MC_INVALID_ARGUMENT, "bad key %zu", i);
    }
    req = raw_put("NOPE", "k", 1, "v", 1);
    cr_assert_eq(raw_code(&req), MC_INVALID_ARGUMENT);
    req = raw_put("default", "k", 1, "v", 1);
    req.has_tier = true;
    req.tier = 9;
    cr_assert_eq(raw_code(&req), MC_INVALID_ARGUMENT);
    req = raw_put("default", "k", 1, "v", 1);
    req.op = MCPB__OP__OP_EXPIRE;
    cr_assert_eq(raw_code(&req), MC_INVALID_ARGUMENT, "clients cannot expire");
    req = raw_put("default", "k", 1, "v", 1);
    req.op = 77;
    cr_assert_eq(raw_code(&req), MC_INVALID_ARGUMENT);
    assert_still_serving();
}

/* Send bytes raw; the node must answer INVALID_ARGUMENT or drop the
 * connection, and nothing else. */
static void send_junk(const void *p, size_t len)
{
    void *reply = NULL;
    size_t reply_len = 0;
    int rv = harness_raw_call(node.url, p, len, 2000, &reply, &reply_len);
    if (rv != 0) {
        cr_assert(rv == NNG_ECONNRESET || rv == NNG_ECLOSED ||
                      rv == NNG_ETIMEDOUT || rv == NNG_ECONNSHUT,
                  "unexpected nng error %d: %s", rv, nng_strerror(rv));
        return;
    }
    Mcpb__Response *r;
    char err[128];
    cr_assert_eq(proto_response_decode(reply, reply_len, &r, err, sizeof err),
                 MC_OK, "the node answered garbage: %s", err);
    cr_assert_eq(r->code, MC_INVALID_ARGUMENT, "got %s",
                 mc_errname((mc_err)r->code));
    mcpb__response__free_unpacked(r, NULL);
    free(reply);
}

NODE_TEST(node_frontend, survives_random_bytes_and_truncated_frames)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 40; i++) {
        uint8_t junk[300];
        size_t len = (size_t)(i * 7 % 300);
        for (size_t k = 0; k < len; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            junk[k] = (uint8_t)x;
        }
        send_junk(junk, len);
    }
    Mcpb__Request req = raw_put("default", "swarm/x", 7, "value", 5);
    void *frame;
    size_t frame_len;
    cr_assert_eq(proto_frame_encode(&req.base, PROTO_REQUEST, NULL, &frame,
                                    &frame_len),
                 MC_OK);
    for (size_t cut = 0; cut < frame_len; cut += 3) {
        send_junk(frame, cut);
    }
    /* a frame whose header claims more than the message holds */
    uint8_t *lie = malloc(frame_len);
    memcpy(lie, frame, frame_len);
    lie[0] = 0xff, lie[1] = 0xff, lie[2] = 0xff, lie[3] = 0x7f;
    send_junk(lie, frame_len);
    free(lie);
    mc_free(frame);
    mc_record *r;
    mc_result res;
    cr_assert_eq(mc_get(cl, "default", "swarm/x", NULL, &r, &res),
                 MC_NOT_FOUND, "a truncated PUT was applied");
    assert_still_serving();
}

NODE_TEST(node_frontend, survives_a_message_over_its_size_limit)
{
    size_t len = 4u << 20; /* well over value max + header room */
    uint8_t *huge = calloc(1, len);
    send_junk(huge, len);
    free(huge);
    assert_still_serving();
}

NODE_TEST(node_frontend, same_request_id_applies_once)
{
    Mcpb__Request req = raw_put("default", "once", 4, "first", 5);
    req.client_id = 0xabcdef0123456789ull;
    req.seq = 1;
    Mcpb__Response *a, *b;
    cr_assert_eq(harness_raw_request(node.url, &req, 5000, &a), 0);
    cr_assert_eq(harness_raw_request(node.url, &req, 5000, &b), 0);
    cr_assert_eq(a->code, MC_OK, "%s", a->message);
    cr_assert_eq(b->code, a->code, "both answers are equal");
    cr_assert_eq(a->version, 1);
    cr_assert_eq(b->version, a->version);
    cr_assert_eq(b->create_rev, a->create_rev);
    cr_assert_eq(b->mod_rev, a->mod_rev);
    mcpb__response__free_unpacked(a, NULL);
    mcpb__response__free_unpacked(b, NULL);
    mc_record *r = get_ok("default", "once");
    cr_assert_eq(r->version, 1, "the retry applied again");
    mc_record_free(r);

    /* the next seq applies; the old one is superseded, not applied */
    req.seq = 2;
    req.value.data = (uint8_t *)"second";
    req.value.len = 6;
    cr_assert_eq(raw_code(&req), MC_OK);
    req.seq = 1;
    req.value.data = (uint8_t *)"stale";
    req.value.len = 5;
    cr_assert_neq(raw_code(&req), MC_OK, "a superseded seq was accepted");
    r = get_ok("default", "once");
    cr_assert_eq(r->version, 2);
    cr_assert_str_eq((char *)r->value, "second");
    mc_record_free(r);
}
