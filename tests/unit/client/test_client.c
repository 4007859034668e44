/* Unit tests of libmemcoord (client/) against fake nodes (fake_node.h).
 *
 * What is tested is the library's side of the protocol: local checks,
 * request ids and their reuse across retries, backoff and endpoint
 * rotation, the TIMEOUT/UNAVAILABLE verdicts, list's merge of shards (by
 * pattern too, with pages that stop at a scan budget), transactions
 * (checked and refused before sending, retried under one id, results
 * copied), and the copies handed to the caller. Each fake answers STATUS as a one-node
 * cluster unless a test says otherwise, so the shard map sends every
 * request to the one fake; test_route.c tests the map itself. */
#include "tests/unit/client/fake_node.h"
#include "tests/lib/like_ref.h"

/* ---- handlers ---- */

static enum fake_action answer_ok(struct fake *f, const Mcpb__Request *req,
                                  unsigned nth, Mcpb__Response *resp)
{
    resp->has_version = true;
    resp->version = nth + 1;
    resp->has_mod_rev = true;
    resp->mod_rev = 100 + nth;
    return FAKE_ANSWER;
}

/* UNAVAILABLE for the first two requests, then OK. */
static enum fake_action unavailable_twice(struct fake *f,
                                          const Mcpb__Request *req,
                                          unsigned nth, Mcpb__Response *resp)
{
    if (nth < 2) {
        resp->code = MC_UNAVAILABLE;
        resp->message = "no leader yet";
        return FAKE_ANSWER;
    }
    resp->has_version = true;
    resp->version = 1;
    return FAKE_ANSWER;
}

static enum fake_action timeout_once(struct fake *f, const Mcpb__Request *req,
                                     unsigned nth, Mcpb__Response *resp)
{
    if (nth == 0) {
        resp->code = MC_TIMEOUT;
        resp->message = "apply took too long";
        return FAKE_ANSWER;
    }
    resp->has_version = true;
    resp->version = 1;
    return FAKE_ANSWER;
}

static enum fake_action not_leader(struct fake *f, const Mcpb__Request *req,
                                   unsigned nth, Mcpb__Response *resp)
{
    resp->code = MC_NOT_LEADER;
    resp->message = "node 2 leads shard 3";
    return FAKE_ANSWER;
}

static enum fake_action conflict(struct fake *f, const Mcpb__Request *req,
                                 unsigned nth, Mcpb__Response *resp)
{
    resp->code = MC_CONFLICT;
    resp->message = "swarm/x is at version 4, expected 3";
    resp->has_version = true;
    resp->version = 4;
    return FAKE_ANSWER;
}

static enum fake_action drop_all(struct fake *f, const Mcpb__Request *req,
                                 unsigned nth, Mcpb__Response *resp)
{
    return FAKE_DROP;
}

static enum fake_action garbage(struct fake *f, const Mcpb__Request *req,
                                unsigned nth, Mcpb__Response *resp)
{
    return FAKE_GARBAGE;
}

static enum fake_action unknown_code(struct fake *f, const Mcpb__Request *req,
                                     unsigned nth, Mcpb__Response *resp)
{
    resp->code = 999;
    return FAKE_ANSWER;
}

/* ---- mc_client_open ---- */

Test(mc_client_open, rejects_bad_endpoint_lists)
{
    const char *bad[] = {"", " , ,", "bogus://x", "tcp://", "no-scheme"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mc_client *c = (mc_client *)1;
        mc_result res;
        cr_expect_eq(mc_client_open(bad[i], NULL, &c, &res),
                     MC_INVALID_ARGUMENT, "'%s' accepted", bad[i]);
        cr_expect_null(c);
        cr_expect_eq(res.code, MC_INVALID_ARGUMENT);
        cr_expect_neq(res.message[0], '\0', "'%s' has no reason", bad[i]);
    }
    mc_client *c;
    mc_result res;
    cr_expect_eq(mc_client_open(NULL, NULL, &c, &res), MC_INVALID_ARGUMENT);
    mc_options neg = {.timeout_ms = -1};
    cr_expect_eq(mc_client_open("inproc://x", &neg, &c, &res),
                 MC_INVALID_ARGUMENT);
}

Test(mc_client_open, rejects_too_many_endpoints)
{
    char list[MC_CLIENT_ENDPOINTS_MAX * 24 + 64] = "";
    for (unsigned i = 0; i <= MC_CLIENT_ENDPOINTS_MAX; i++) {
        char one[32];
        snprintf(one, sizeof one, "%sinproc://e%u", i ? "," : "", i);
        strcat(list, one);
    }
    mc_client *c;
    mc_result res;
    cr_assert_eq(mc_client_open(list, NULL, &c, &res), MC_INVALID_ARGUMENT);
    cr_assert(strstr(res.message, "endpoints") != NULL, "%s", res.message);
}

Test(mc_client_open, trims_and_keeps_every_endpoint)
{
    mc_client *c = client_on(" inproc://a ,inproc://b,, inproc://c", 0);
    cr_assert_eq(c->n_eps, 3);
    cr_assert_str_eq(c->eps[0].url, "inproc://a");
    cr_assert_str_eq(c->eps[1].url, "inproc://b");
    cr_assert_str_eq(c->eps[2].url, "inproc://c");
    cr_assert_eq(c->timeout_ms, MC_CLIENT_TIMEOUT_MS_DEFAULT);
    mc_client_close(c);
}

Test(mc_client_open, failed_allocations_fail_cleanly)
{
    for (unsigned k = 1; k < 16; k++) {
        base_alloc_fail_after(k);
        mc_client *c = NULL;
        mc_result res;
        mc_err rv = mc_client_open("inproc://a,inproc://b", NULL, &c, &res);
        base_alloc_fail_after(0);
        if (rv == MC_OK) {
            mc_client_close(c);
        } else {
            cr_assert_eq(rv, MC_INTERNAL, "allocation %u: %s", k,
                         mc_errname(rv));
            cr_assert_null(c);
        }
    }
}

/* ---- local checks ---- */

Test(mc_put, checks_arguments_before_sending)
{
    struct fake *f = fake_start(answer_ok, NULL);
    mc_client *c = client_on(f->url, 1000);
    static char big[MC_VALUE_BYTES_MAX + 1];
    mc_result res;
    mc_put_opts o = MC_PUT_OPTS_INIT;

    cr_expect_eq(mc_put(c, "Bad", "k", "v", 1, NULL, &res),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_put(c, "default", "", "v", 1, NULL, &res),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_put(c, "default", "\xc0\xaf", "v", 1, NULL, &res),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_put(c, NULL, "k", "v", 1, NULL, &res),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_put(c, "default", NULL, "v", 1, NULL, &res),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_put(c, "default", "k", NULL, 3, NULL, &res),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_put(c, "default", "k", big, sizeof big, NULL, &res),
                 MC_TOO_LARGE);
    cr_expect(strstr(res.message, "1048577") != NULL, "%s", res.message);
    o.tier = MC_TIER_LONG;
    o.ttl_ms = 1000;
    cr_expect_eq(mc_put(c, "default", "k", "v", 1, &o, &res),
                 MC_INVALID_ARGUMENT);
    o = (mc_put_opts)MC_PUT_OPTS_INIT;
    o.tier = (mc_tier)7;
    cr_expect_eq(mc_put(c, "default", "k", "v", 1, &o, &res),
                 MC_INVALID_ARGUMENT);
    o = (mc_put_opts)MC_PUT_OPTS_INIT;
    o.expect_version = -2;
    cr_expect_eq(mc_put(c, "default", "k", "v", 1, &o, &res),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_delete(c, "default", "", MC_VERSION_ANY, &res),
                 MC_INVALID_ARGUMENT);
    mc_record *r;
    cr_expect_eq(mc_get(c, "default", "", NULL, &r, &res),
                 MC_INVALID_ARGUMENT);
    mc_page *p;
    mc_list_opts lo = {.limit = MC_LIST_PAGE_MAX + 1};
    cr_expect_eq(mc_list(c, "default", "", &lo, &p, &res),
                 MC_INVALID_ARGUMENT);
    lo = (mc_list_opts){.pattern = "swarm/%\\"};
    cr_expect_eq(mc_list(c, "default", NULL, &lo, &p, &res),
                 MC_INVALID_ARGUMENT);
    cr_expect(strstr(res.message, "lone") != NULL, "%s", res.message);
    lo = (mc_list_opts){.pattern = "swarm/\xff%"};
    cr_expect_eq(mc_list(c, "default", NULL, &lo, &p, &res),
                 MC_INVALID_ARGUMENT);
    cr_expect(strstr(res.message, "UTF-8") != NULL, "%s", res.message);
    lo = (mc_list_opts){.pattern = "a%"};
    cr_expect_eq(mc_list(c, "default", "a", &lo, &p, &res),
                 MC_INVALID_ARGUMENT);

    cr_expect_eq(seen_count(f), 0, "a bad request reached the node");
    mc_client_close(c);
    fake_stop(f);
}

/* ---- request ids ---- */

Test(mc_put, sends_fields_and_a_fresh_seq_per_call)
{
    struct fake *f = fake_start(answer_ok, NULL);
    mc_client *c = client_on(f->url, 1000);
    mc_result res;
    cr_assert_eq(mc_put(c, "default", "swarm/x", "hello", 5, NULL, &res),
                 MC_OK, "%s", res.message);
    cr_assert_eq(res.version, 1);
    cr_assert_eq(res.mod_rev, 100);
    cr_assert_str_eq(res.message, "");
    mc_put_opts o = {.expect_version = 0, .tier = MC_TIER_SHORT,
                     .ttl_ms = 30000};
    cr_assert_eq(mc_put(c, "default", "swarm/y", "", 0, &o, &res), MC_OK);

    cr_assert_eq(seen_count(f), 2);
    struct seen *a = &f->seen[0], *b = &f->seen[1];
    cr_assert_eq(a->op, MCPB__OP__OP_PUT);
    cr_assert_str_eq(a->key, "swarm/x");
    cr_assert_eq(a->value_len, 5);
    cr_assert(a->has_client_id);
    cr_assert_neq(a->client_id, 0);
    cr_assert_eq(a->seq, 1);
    cr_assert_not(a->has_expect_version, "MC_VERSION_ANY must be absent");
    cr_assert_not(a->has_tier);
    cr_assert_not(a->has_ttl_ms);
    /* One caller: the lane is reused, its seq moves on. */
    cr_assert_eq(b->client_id, a->client_id);
    cr_assert_eq(b->seq, 2);
    cr_assert(b->has_expect_version);
    cr_assert_eq(b->expect_version, 0);
    cr_assert_eq(b->tier, MC_TIER_SHORT);
    cr_assert_eq(b->ttl_ms, 30000);
    mc_client_close(c);
    fake_stop(f);
}

Test(client_call, retries_unavailable_with_the_same_id)
{
    struct fake *f = fake_start(unavailable_twice, NULL);
    mc_client *c = client_on(f->url, 2000);
    mc_result res;
    cr_assert_eq(mc_put(c, "default", "k", "v", 1, NULL, &res), MC_OK, "%s",
                 res.message);
    cr_assert_eq(seen_count(f), 3);
    for (unsigned i = 1; i < 3; i++) {
        cr_assert_eq(f->seen[i].client_id, f->seen[0].client_id);
        cr_assert_eq(f->seen[i].seq, f->seen[0].seq);
    }
    mc_client_close(c);
    fake_stop(f);
}

Test(client_call, retries_a_timeout_answer)
{
    struct fake *f = fake_start(timeout_once, NULL);
    mc_client *c = client_on(f->url, 2000);
    mc_result res;
    cr_assert_eq(mc_delete(c, "default", "k", 3, &res), MC_OK, "%s",
                 res.message);
    cr_assert_eq(seen_count(f), 2);
    cr_assert_eq(f->seen[1].seq, f->seen[0].seq);
    cr_assert_eq(f->seen[0].op, MCPB__OP__OP_DELETE);
    cr_assert_eq(f->seen[0].expect_version, 3);
    mc_client_close(c);
    fake_stop(f);
}

Test(client_call, moves_past_a_node_that_does_not_lead)
{
    struct fake *a = fake_start(not_leader, NULL);
    struct fake *b = fake_start(answer_ok, NULL);
    char eps[160];
    snprintf(eps, sizeof eps, "%s,%s", a->url, b->url);
    for (int i = 0; i < 4; i++) {
        mc_client *c = client_on(eps, 3000);
        mc_result res;
        cr_assert_eq(mc_put(c, "default", "k", "v", 1, NULL, &res), MC_OK,
                     "%s", res.message);
        mc_client_close(c);
    }
    cr_assert_eq(seen_count(b), 4);
    /* Whichever node a client tried first, its retries kept the id. */
    for (unsigned i = 0; i < seen_count(a); i++) {
        bool found = false;
        for (unsigned k = 0; k < 4; k++) {
            found = found || (a->seen[i].client_id == b->seen[k].client_id &&
                              a->seen[i].seq == b->seen[k].seq);
        }
        cr_assert(found, "a retry changed its request id");
    }
    fake_stop(a);
    fake_stop(b);
}

Test(client_call, returns_a_conflict_at_once)
{
    struct fake *f = fake_start(conflict, NULL);
    mc_client *c = client_on(f->url, 2000);
    mc_result res;
    mc_put_opts o = MC_PUT_OPTS_INIT;
    o.expect_version = 3;
    cr_assert_eq(mc_put(c, "default", "swarm/x", "v", 1, &o, &res),
                 MC_CONFLICT);
    cr_assert_eq(res.code, MC_CONFLICT);
    cr_assert_eq(res.version, 4);
    cr_assert_str_eq(res.message, "swarm/x is at version 4, expected 3");
    cr_assert_eq(seen_count(f), 1);
    mc_client_close(c);
    fake_stop(f);
}

Test(client_call, lost_replies_make_a_write_time_out)
{
    struct fake *f = fake_start(drop_all, NULL);
    mc_client *c = client_on(f->url, 300);
    mc_result res;
    int64_t t0 = base_mono_ms();
    cr_assert_eq(mc_put(c, "default", "k", "v", 1, NULL, &res), MC_TIMEOUT);
    int64_t took = base_mono_ms() - t0;
    cr_assert_geq(took, 290);
    cr_assert_lt(took, 1500);
    cr_assert(strstr(res.message, "may have applied") != NULL, "%s",
              res.message);
    for (unsigned i = 0; i < seen_count(f); i++) {
        cr_assert_eq(f->seen[i].seq, f->seen[0].seq);
    }
    mc_client_close(c);
    fake_stop(f);
}

Test(client_call, no_node_means_unavailable)
{
    mc_client *c = client_on("inproc://nobody-home", 200);
    mc_result res;
    int64_t t0 = base_mono_ms();
    cr_assert_eq(mc_put(c, "default", "k", "v", 1, NULL, &res),
                 MC_UNAVAILABLE, "%s", res.message);
    cr_assert_lt(base_mono_ms() - t0, 1000);
    cr_assert(strstr(res.message, "nobody-home") != NULL, "%s", res.message);
    mc_record *r;
    cr_assert_eq(mc_get(c, "default", "k", NULL, &r, &res), MC_UNAVAILABLE);
    mc_client_close(c);
}

Test(client_call, garbage_answers_are_internal)
{
    struct fake *f = fake_start(garbage, NULL);
    mc_client *c = client_on(f->url, 2000);
    mc_result res;
    mc_record *r;
    cr_assert_eq(mc_get(c, "default", "k", NULL, &r, &res), MC_INTERNAL);
    cr_assert(strstr(res.message, "bad answer") != NULL, "%s", res.message);
    cr_assert_eq(seen_count(f), 1, "a broken node is not asked again");
    mc_client_close(c);
    fake_stop(f);

    f = fake_start(unknown_code, NULL);
    c = client_on(f->url, 2000);
    cr_assert_eq(mc_get(c, "default", "k", NULL, &r, &res), MC_INTERNAL);
    mc_client_close(c);
    fake_stop(f);
}

Test(client_backoff_ms, grows_to_its_cap_with_jitter)
{
    mc_client *c = client_on("inproc://x", 0);
    for (int i = 0; i < 200; i++) {
        int d0 = client_backoff_ms(c, 0);
        cr_assert(d0 >= MC_CLIENT_BACKOFF_MS_MIN / 2 &&
                  d0 <= MC_CLIENT_BACKOFF_MS_MIN);
        int d3 = client_backoff_ms(c, 3);
        cr_assert(d3 >= 40 && d3 <= 80, "%d", d3);
        int dmax = client_backoff_ms(c, 40);
        cr_assert(dmax >= MC_CLIENT_BACKOFF_MS_MAX / 2 &&
                  dmax <= MC_CLIENT_BACKOFF_MS_MAX);
    }
    mc_client_close(c);
}

/* ---- lanes under threads ---- */

struct writer {
    mc_client *c;
    int n;
    int ok;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    for (int i = 0; i < w->n; i++) {
        mc_result res;
        w->ok += mc_put(w->c, "default", "k", "v", 1, NULL, &res) == MC_OK;
    }
    return NULL;
}

Test(client_lane_take, each_client_id_has_one_write_in_flight)
{
    struct fake *f = fake_start(answer_ok, NULL);
    mc_client *c = client_on(f->url, 5000);
    enum { THREADS = 8, PER = 40 };
    pthread_t t[THREADS];
    struct writer w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct writer){c, PER, 0};
        pthread_create(&t[i], NULL, writer_main, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].ok, PER);
    }
    cr_assert_eq(seen_count(f), THREADS * PER);
    cr_assert_leq(c->n_lanes, THREADS);
    /* The fake serves one request at a time, in arrival order: per id the
     * seqs must arrive strictly increasing, or two writes shared an id. */
    for (unsigned i = 0; i < seen_count(f); i++) {
        for (unsigned k = i + 1; k < seen_count(f); k++) {
            if (f->seen[k].client_id == f->seen[i].client_id) {
                cr_assert_gt(f->seen[k].seq, f->seen[i].seq);
                break;
            }
        }
    }
    mc_client_close(c);
    fake_stop(f);
}

/* ---- get ---- */

static enum fake_action get_handler(struct fake *f, const Mcpb__Request *req,
                                    unsigned nth, Mcpb__Response *resp)
{
    static Mcpb__Record rec = MCPB__RECORD__INIT;
    if (req->key.len == 7 && memcmp(req->key.data, "missing", 7) == 0) {
        resp->code = MC_NOT_FOUND;
        resp->message = "missing not found";
        return FAKE_ANSWER;
    }
    rec = (Mcpb__Record)MCPB__RECORD__INIT;
    rec.has_key = true;
    rec.key = req->key;
    rec.has_value = true;
    rec.value.data = (uint8_t *)"a\0b\xff";
    rec.value.len = 4;
    rec.has_version = true;
    rec.version = 7;
    rec.create_rev = 3;
    rec.has_create_rev = true;
    rec.mod_rev = 9;
    rec.has_mod_rev = true;
    rec.tier = MC_TIER_MID;
    rec.has_tier = true;
    rec.expires_at = 1700000000123ll;
    rec.has_expires_at = true;
    rec.updated_at = 1690000000000ll;
    rec.has_updated_at = true;
    resp->record = &rec;
    resp->has_version = true;
    resp->version = 7;
    return FAKE_ANSWER;
}

Test(mc_get, copies_the_record)
{
    struct fake *f = fake_start(get_handler, NULL);
    mc_client *c = client_on(f->url, 2000);
    mc_record *r;
    mc_result res;
    mc_read_opts ro = {.serializable = true};
    cr_assert_eq(mc_get(c, "default", "swarm/x", &ro, &r, &res), MC_OK);
    cr_assert_str_eq(r->key, "swarm/x");
    cr_assert_eq(r->key_len, 7);
    cr_assert_eq(r->value_len, 4);
    cr_assert_arr_eq(r->value, "a\0b\xff", 4);
    cr_assert_eq(r->value[4], 0, "values are NUL-terminated");
    cr_assert_eq(r->version, 7);
    cr_assert_eq(r->create_rev, 3);
    cr_assert_eq(r->mod_rev, 9);
    cr_assert_eq(r->tier, MC_TIER_MID);
    cr_assert_eq(r->expires_at_ms, 1700000000123ll);
    cr_assert_eq(r->updated_at_ms, 1690000000000ll);
    cr_assert(f->seen[0].serializable);
    mc_record_free(r);

    r = (mc_record *)1;
    cr_assert_eq(mc_get(c, "default", "missing", NULL, &r, &res),
                 MC_NOT_FOUND);
    cr_assert_null(r);
    cr_assert_str_eq(res.message, "missing not found");
    cr_assert_not(f->seen[1].serializable);
    mc_client_close(c);
    fake_stop(f);
}

/* ---- list across shards ---- */

#define KEYS 40

struct shard_world {
    unsigned n_shards;      /* what status reports */
    unsigned valid_shards;  /* LIST of a shard >= this: INVALID_ARGUMENT */
    char keys[KEYS][16];    /* sorted */
    unsigned cut_shard0;    /* > 0: shard 0 answers at most this many
                               records with more (as a node cuts a reply
                               at its size bound) */
    unsigned scan_budget;   /* > 0: a pattern list examines at most this
                               many keys per shard, then answers where it
                               stopped (scanned_to) */
};

static unsigned world_shard_of(const char *key, unsigned n)
{
    return (unsigned)(base_fnv64(BASE_FNV64_INIT, key, strlen(key)) % n);
}

/* A one-node cluster of w->n_shards shards, all led by the fake. */
static enum fake_action list_status(struct fake *f, const Mcpb__Request *req,
                                    unsigned nth, Mcpb__Response *resp)
{
    struct shard_world *w = f->arg;
    cr_assert_leq(w->n_shards, FAKE_SHARDS_MAX);
    fake_status_begin(f, resp, w->n_shards);
    fake_status_member(f, 0, f->id, f->url);
    f->st.n_members = 1;
    for (unsigned i = 0; i < w->n_shards; i++) {
        fake_status_shard(f, i, i, f->id, 1, &f->id, 1);
    }
    f->st.n_shards = w->n_shards;
    return FAKE_ANSWER;
}

static enum fake_action list_handler(struct fake *f, const Mcpb__Request *req,
                                     unsigned nth, Mcpb__Response *resp)
{
    struct shard_world *w = f->arg;
    static Mcpb__Record recs[KEYS];
    static Mcpb__Record *recp[KEYS];
    cr_assert_eq(req->op, MCPB__OP__OP_LIST);
    if (req->shard >= w->valid_shards) {
        resp->code = MC_INVALID_ARGUMENT;
        resp->message = "no such shard";
        w->n_shards = w->valid_shards; /* status tells the truth from now */
        return FAKE_ANSWER;
    }
    char after[32] = ""; /* wire bytes carry no NUL */
    snprintf(after, sizeof after, "%.*s", (int)req->start_after.len,
             req->start_after.len > 0 ? (const char *)req->start_after.data
                                      : "");
    size_t n = 0;
    bool more = false;
    unsigned examined = 0;
    for (unsigned i = 0; i < KEYS; i++) {
        const char *k = w->keys[i];
        if (world_shard_of(k, w->valid_shards) != req->shard ||
            (req->prefix.len > 0 &&
             strncmp(k, (const char *)req->prefix.data, req->prefix.len) !=
                 0) ||
            strcmp(k, after) <= 0) {
            continue;
        }
        if (req->has_pattern && w->scan_budget > 0 &&
            examined == w->scan_budget) {
            more = true;
            resp->has_scanned_to = true;
            resp->scanned_to.data = (uint8_t *)w->keys[i - 1];
            resp->scanned_to.len = strlen(w->keys[i - 1]);
            for (unsigned j = i; j-- > 0;) { /* the last key examined */
                if (world_shard_of(w->keys[j], w->valid_shards) ==
                    req->shard) {
                    resp->scanned_to.data = (uint8_t *)w->keys[j];
                    resp->scanned_to.len = strlen(w->keys[j]);
                    break;
                }
            }
            break;
        }
        examined++;
        if (req->has_pattern &&
            !like_ref_match((const char *)req->pattern.data,
                            req->pattern.len, k, strlen(k))) {
            continue;
        }
        if (n == req->limit ||
            (w->cut_shard0 > 0 && req->shard == 0 && n == w->cut_shard0)) {
            more = true;
            break;
        }
        recs[n] = (Mcpb__Record)MCPB__RECORD__INIT;
        recs[n].has_key = true;
        recs[n].key.data = (uint8_t *)k;
        recs[n].key.len = strlen(k);
        if (!req->keys_only) {
            recs[n].has_value = true;
            recs[n].value.data = (uint8_t *)k;
            recs[n].value.len = strlen(k);
        }
        recp[n] = &recs[n];
        n++;
    }
    resp->n_records = n;
    resp->records = recp;
    resp->has_more = true;
    resp->more = more;
    return FAKE_ANSWER;
}

static void world_init(struct shard_world *w, unsigned n_shards)
{
    w->n_shards = n_shards;
    w->valid_shards = n_shards;
    for (unsigned i = 0; i < KEYS; i++) {
        snprintf(w->keys[i], sizeof w->keys[i], "%s/%03u",
                 i % 2 ? "b" : "a", i);
    }
    /* "a/..." before "b/...": sort as the shards' stores do. */
    qsort(w->keys, KEYS, sizeof w->keys[0],
          (int (*)(const void *, const void *))strcmp);
}

Test(mc_list, pages_through_the_merge_of_all_shards)
{
    struct shard_world w;
    world_init(&w, 3);
    struct fake *f = fake_start_with(list_handler, list_status, &w);
    mc_client *c = client_on(f->url, 2000);
    char cursor[32] = "";
    unsigned got = 0, pages = 0;
    for (;;) {
        mc_list_opts o = {.start_after = got ? cursor : NULL, .limit = 7};
        mc_page *p;
        mc_result res;
        cr_assert_eq(mc_list(c, "default", "", &o, &p, &res), MC_OK, "%s",
                     res.message);
        pages++;
        for (size_t i = 0; i < p->n; i++) {
            cr_assert_str_eq(p->records[i].key, w.keys[got + i]);
            cr_assert_str_eq((char *)p->records[i].value, w.keys[got + i]);
        }
        got += (unsigned)p->n;
        if (!p->more) {
            cr_assert_null(p->next_cursor);
            mc_page_free(p);
            break;
        }
        cr_assert_eq(p->n, 7);
        cr_assert_str_eq(p->next_cursor, p->records[p->n - 1].key);
        snprintf(cursor, sizeof cursor, "%s", p->next_cursor);
        mc_page_free(p);
    }
    cr_assert_eq(got, KEYS);
    cr_assert_eq(pages, (KEYS + 6) / 7);
    cr_assert_eq(atomic_load(&f->n_status), 1, "the shard map is cached");
    for (unsigned i = 0; i < seen_count(f); i++) {
        cr_assert(f->seen[i].no_forward, "LIST goes straight to the leader");
    }
    mc_client_close(c);
    fake_stop(f);
}

Test(mc_list, prefix_and_keys_only)
{
    struct shard_world w;
    world_init(&w, 4);
    struct fake *f = fake_start_with(list_handler, list_status, &w);
    mc_client *c = client_on(f->url, 2000);
    mc_list_opts o = {.keys_only = true, .serializable = true};
    mc_page *p;
    mc_result res;
    cr_assert_eq(mc_list(c, "default", "b/", &o, &p, &res), MC_OK);
    cr_assert_eq(p->n, KEYS / 2);
    cr_assert_not(p->more);
    for (size_t i = 0; i < p->n; i++) {
        cr_assert_eq(strncmp(p->records[i].key, "b/", 2), 0);
        cr_assert_eq(p->records[i].value_len, 0);
        if (i > 0) {
            cr_assert_lt(strcmp(p->records[i - 1].key, p->records[i].key), 0);
        }
    }
    mc_page_free(p);
    for (unsigned i = 0; i < seen_count(f); i++) {
        if (f->seen[i].op == MCPB__OP__OP_LIST) {
            cr_assert(f->seen[i].keys_only);
            cr_assert(f->seen[i].serializable);
            cr_assert_eq(f->seen[i].limit, MC_CLIENT_LIST_LIMIT_DEFAULT);
        }
    }
    mc_client_close(c);
    fake_stop(f);
}

Test(mc_list, asks_again_when_the_shard_count_changed)
{
    struct shard_world w;
    world_init(&w, 3);
    w.n_shards = 5; /* a stale count: shards 3 and 4 do not exist */
    struct fake *f = fake_start_with(list_handler, list_status, &w);
    mc_client *c = client_on(f->url, 2000);
    mc_page *p;
    mc_result res;
    cr_assert_eq(mc_list(c, "default", "", NULL, &p, &res), MC_OK, "%s",
                 res.message);
    cr_assert_eq(p->n, KEYS);
    cr_assert_eq(client_route_shard_count(c), 3);
    mc_page_free(p);
    mc_client_close(c);
    fake_stop(f);
}

/* ---- status ---- */

static enum fake_action status_handler(struct fake *f,
                                       const Mcpb__Request *req, unsigned nth,
                                       Mcpb__Response *resp)
{
    static uint64_t counts[3] = {11, 22, 33};
    static Mcpb__ShardStatus sh = MCPB__SHARD_STATUS__INIT;
    static Mcpb__ShardStatus *shp[1] = {&sh};
    static Mcpb__NodeStatus st = MCPB__NODE_STATUS__INIT;
    static uint64_t replicas[2] = {1, 2};
    static Mcpb__Member m1 = MCPB__MEMBER__INIT, m2 = MCPB__MEMBER__INIT;
    static Mcpb__Member *members[2] = {&m1, &m2};
    m1.id = 1;
    m1.url = "tcp://127.0.0.1:7400";
    m1.raft_addr = "127.0.0.1:7500";
    m2.id = 2;
    m2.url = "tcp://127.0.0.1:7401";
    m2.raft_addr = "127.0.0.1:7600";
    st.members = members;
    st.n_members = 2;
    st.has_shard_count = true;
    st.shard_count = 4; /* the cluster's; this node hosts one of them */
    sh.replicas = replicas;
    sh.n_replicas = 2;
    /* proto2: an optional field goes on the wire only with its has_. */
    sh.id = 0;
    sh.has_slot_lo = sh.has_slot_hi = sh.has_leader_id = sh.has_term = true;
    sh.has_applied_index = sh.has_last_index = true;
    sh.has_applied_entries = sh.has_skipped_entries = true;
    sh.slot_lo = 0;
    sh.slot_hi = 16383;
    sh.leader_id = 1;
    sh.term = 2;
    sh.applied_index = 10;
    sh.last_index = 12;
    sh.n_records = 3;
    sh.records = counts;
    sh.applied_entries = 8;
    sh.skipped_entries = 2;
    sh.has_is_leader = true;
    sh.is_leader = true;
    st.has_node_id = true;
    st.node_id = 1;
    st.version = "0.1.0";
    st.listen = "tcp://127.0.0.1:7400";
    st.has_uptime_ms = true;
    st.uptime_ms = 1234;
    st.n_shards = 1;
    st.shards = shp;
    resp->status = &st;
    return FAKE_ANSWER;
}

Test(mc_status_get, maps_the_tiers_and_copies_everything)
{
    struct fake *f = fake_start_with(answer_ok, status_handler, NULL);
    mc_client *c = client_on(f->url, 2000);
    mc_status *s;
    mc_result res;
    cr_assert_eq(mc_status_get(c, &s, &res), MC_OK);
    cr_assert_eq(s->node_id, 1);
    cr_assert_eq(s->uptime_ms, 1234);
    cr_assert_eq(s->shards[0].term, 2);
    cr_assert_eq(s->shards[0].applied_index, 10);
    cr_assert_eq(s->shards[0].last_index, 12);
    cr_assert_str_eq(s->version, "0.1.0");
    cr_assert_str_eq(s->listen, "tcp://127.0.0.1:7400");
    cr_assert_eq(s->n_shards, 1);
    cr_assert_eq(s->shards[0].slot_hi, 16383);
    cr_assert_eq(s->shards[0].records[MC_TIER_SHORT], 11);
    cr_assert_eq(s->shards[0].records[MC_TIER_MID], 22);
    cr_assert_eq(s->shards[0].records[MC_TIER_LONG], 33);
    cr_assert_eq(s->shards[0].records[MC_TIER_DEFAULT], 0);
    cr_assert_eq(s->shards[0].applied_entries, 8);
    cr_assert_eq(s->shards[0].skipped_entries, 2);
    cr_assert(s->shards[0].is_leader);
    cr_assert_eq(s->shards[0].n_replicas, 2);
    cr_assert_eq(s->shards[0].replicas[1], 2);
    cr_assert_eq(s->shard_count, 4);
    cr_assert_eq(s->n_members, 2);
    cr_assert_eq(s->members[1].id, 2);
    cr_assert_str_eq(s->members[1].url, "tcp://127.0.0.1:7401");
    cr_assert_str_eq(s->members[1].raft_addr, "127.0.0.1:7600");
    /* The answer also taught the shard map. */
    cr_assert_eq(client_route_shard_count(c), 4);
    cr_assert_eq(c->route.shards[0].leader_id, 1);
    mc_status_free(s);
    mc_client_close(c);
    fake_stop(f);
}

/* A node cuts a list reply at a size bound, returning fewer records than
 * the limit with more set. The merge must not run past such a shard's last
 * key: its next keys would fall behind the cursor and never be listed. */
Test(mc_list, reply_cut_short_by_size_leaves_no_gap)
{
    struct shard_world w;
    world_init(&w, 3);
    w.cut_shard0 = 2;
    struct fake *f = fake_start_with(list_handler, list_status, &w);
    mc_client *c = client_on(f->url, 2000);
    char cursor[32] = "";
    unsigned got = 0;
    for (unsigned pages = 0;; pages++) {
        cr_assert_lt(pages, KEYS, "paging does not end");
        mc_list_opts o = {.start_after = got ? cursor : NULL, .limit = 7};
        mc_page *p;
        mc_result res;
        cr_assert_eq(mc_list(c, "default", "", &o, &p, &res), MC_OK, "%s",
                     res.message);
        for (size_t i = 0; i < p->n; i++) {
            cr_assert_str_eq(p->records[i].key, w.keys[got + i],
                             "a gap before page key %s", p->records[i].key);
        }
        got += (unsigned)p->n;
        bool more = p->more;
        if (more) {
            snprintf(cursor, sizeof cursor, "%s", p->next_cursor);
        }
        mc_page_free(p);
        if (!more) {
            break;
        }
    }
    cr_assert_eq(got, KEYS, "listed %u of %u keys", got, KEYS);
    mc_client_close(c);
    fake_stop(f);
}

/* A pattern list whose shards stop at a tiny scan budget: most pages come
 * back empty but with more and a cursor past the old one. Paging must
 * list exactly the matching keys, in order, and end. */
Test(mc_list, pattern_pages_empty_at_the_scan_budget_leave_no_gap)
{
    struct shard_world w;
    world_init(&w, 3);
    w.scan_budget = 2;
    struct fake *f = fake_start_with(list_handler, list_status, &w);
    mc_client *c = client_on(f->url, 2000);
    static const char *const patterns[] = {"b/%1", "%0_", "a/0\\_%", "%"};
    for (size_t pi = 0; pi < sizeof patterns / sizeof patterns[0]; pi++) {
        const char *pat = patterns[pi];
        char cursor[32] = "";
        bool has_cursor = false;
        unsigned want_i = 0, got = 0, empty = 0;
        for (unsigned pages = 0;; pages++) {
            cr_assert_lt(pages, 4 * KEYS, "paging does not end");
            mc_list_opts o = {.start_after = has_cursor ? cursor : NULL,
                              .limit = 3, .pattern = pat};
            mc_page *p;
            mc_result res;
            cr_assert_eq(mc_list(c, "default", NULL, &o, &p, &res), MC_OK,
                         "%s", res.message);
            empty += p->n == 0;
            for (size_t i = 0; i < p->n; i++, got++) {
                while (want_i < KEYS &&
                       !like_ref_match(pat, strlen(pat), w.keys[want_i],
                                       strlen(w.keys[want_i]))) {
                    want_i++;
                }
                cr_assert_lt(want_i, KEYS);
                cr_assert_str_eq(p->records[i].key, w.keys[want_i],
                                 "'%s': a gap before %s", pat,
                                 p->records[i].key);
                want_i++;
            }
            bool more = p->more;
            if (more) {
                cr_assert(!has_cursor || strcmp(p->next_cursor, cursor) > 0,
                          "the cursor must move on");
                snprintf(cursor, sizeof cursor, "%s", p->next_cursor);
                has_cursor = true;
            } else {
                cr_assert_null(p->next_cursor);
            }
            mc_page_free(p);
            if (!more) {
                break;
            }
        }
        unsigned n_want = 0;
        for (unsigned i = 0; i < KEYS; i++) {
            n_want += like_ref_match(pat, strlen(pat), w.keys[i],
                                     strlen(w.keys[i]));
        }
        cr_assert_eq(got, n_want, "'%s': listed %u of %u", pat, got, n_want);
        if (pi == 0) {
            cr_assert_gt(empty, 0, "the budget made empty pages");
        }
    }
    for (unsigned i = 0; i < seen_count(f); i++) {
        if (f->seen[i].op == MCPB__OP__OP_LIST) {
            cr_assert(f->seen[i].has_pattern);
        }
    }
    mc_client_close(c);
    fake_stop(f);
}

/* ---- transactions ---- */

/* UNAVAILABLE twice, then the answer: "then" ran, with a
 * result per then operation (a get finds "{t}/k" = "val"). */
static enum fake_action txn_third_time(struct fake *f, const Mcpb__Request *req,
                                       unsigned nth, Mcpb__Response *resp)
{
    static Mcpb__TxnResult tr;
    static Mcpb__TxnOpResult ops[8];
    static Mcpb__TxnOpResult *ptrs[8];
    static Mcpb__Record rec;
    cr_assert_eq(req->op, MCPB__OP__OP_TXN);
    if (nth < 2) {
        resp->code = MC_UNAVAILABLE;
        resp->message = "election";
        return FAKE_ANSWER;
    }
    mcpb__txn_result__init(&tr);
    tr.succeeded = true;
    tr.has_revision = true;
    tr.revision = 77;
    cr_assert_leq(req->n_then_ops, 8);
    for (size_t i = 0; i < req->n_then_ops; i++) {
        mcpb__txn_op_result__init(&ops[i]);
        ops[i].code = MC_OK;
        ops[i].has_version = true;
        ops[i].version = i + 1;
        if (req->then_ops[i]->op == MCPB__OP__OP_GET) {
            mcpb__record__init(&rec);
            rec.has_key = rec.has_value = true;
            rec.key.data = (uint8_t *)"{t}/k";
            rec.key.len = 5;
            rec.value.data = (uint8_t *)"val";
            rec.value.len = 3;
            rec.has_tier = true;
            rec.tier = MC_TIER_MID;
            ops[i].record = &rec;
        }
        ptrs[i] = &ops[i];
    }
    tr.results = ptrs;
    tr.n_results = req->n_then_ops;
    resp->txn = &tr;
    resp->has_mod_rev = true;
    resp->mod_rev = 77;
    return FAKE_ANSWER;
}

Test(mc_txn, retries_with_the_same_id_and_copies_the_results)
{
    struct fake *f = fake_start(txn_third_time, NULL);
    mc_client *c = client_on(f->url, 3000);
    const mc_cmp cmps[] = {{.target = MC_CMP_VERSION, .key = "{t}/k",
                            .op = MC_GT, .version = 2}};
    const mc_op ops[] = {{.type = MC_OP_PUT, .key = "{t}/k", .value = "v",
                          .value_len = 1, .tier = MC_TIER_SHORT,
                          .ttl_ms = 5000},
                         {.type = MC_OP_GET, .key = "{t}/k"}};
    const mc_op els[] = {{.type = MC_OP_DELETE, .key = "{t}/k"}};
    mc_txn_req t = {cmps, 1, ops, 2, els, 1};
    mc_txn_result *r;
    mc_result res;
    cr_assert_eq(mc_txn(c, "default", &t, &r, &res), MC_OK, "%s",
                 res.message);
    cr_assert(r->succeeded);
    cr_assert_eq(r->revision, 77);
    cr_assert_eq(res.mod_rev, 77);
    cr_assert_eq(r->n_results, 2);
    cr_assert_eq(r->results[0].type, MC_OP_PUT);
    cr_assert_eq(r->results[0].version, 1);
    cr_assert_eq(r->results[1].type, MC_OP_GET);
    cr_assert_str_eq(r->results[1].record.key, "{t}/k");
    cr_assert_str_eq((char *)r->results[1].record.value, "val");
    cr_assert_eq(r->results[1].record.tier, MC_TIER_MID);
    mc_txn_result_free(r);
    cr_assert_eq(seen_count(f), 3);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(f->seen[i].op, MCPB__OP__OP_TXN);
        cr_assert(f->seen[i].has_client_id);
        cr_assert_eq(f->seen[i].client_id, f->seen[0].client_id);
        cr_assert_eq(f->seen[i].seq, f->seen[0].seq, "a retry's id moved");
        cr_assert_eq(f->seen[i].n_compares, 1);
        cr_assert_eq(f->seen[i].n_then, 2);
        cr_assert_eq(f->seen[i].n_else, 1);
    }
    mc_client_close(c);
    fake_stop(f);
}

static enum fake_action txn_no_result(struct fake *f, const Mcpb__Request *req,
                                      unsigned nth, Mcpb__Response *resp)
{
    return FAKE_ANSWER; /* OK, but no TxnResult */
}

Test(mc_txn, checks_before_sending)
{
    struct shard_world w;
    world_init(&w, 8);
    struct fake *f = fake_start_with(txn_no_result, list_status, &w);
    mc_client *c = client_on(f->url, 2000);
    mc_txn_result *r;
    mc_result res;
    /* Two keys of different shards: refused with the tag advice. */
    char a[16] = "job/a", b[16];
    uint32_t sa = proto_shard_of_slot(
        proto_slot((const uint8_t *)"default", 7, (const uint8_t *)a, 5), 8);
    for (unsigned i = 0;; i++) {
        snprintf(b, sizeof b, "job/b%u", i);
        if (proto_shard_of_slot(proto_slot((const uint8_t *)"default", 7,
                                           (const uint8_t *)b, strlen(b)),
                                8) != sa) {
            break;
        }
    }
    const mc_op two[] = {{.type = MC_OP_GET, .key = a},
                         {.type = MC_OP_GET, .key = b}};
    mc_txn_req t = {.then_ops = two, .n_then = 2};
    cr_expect_eq(mc_txn(c, "default", &t, &r, &res), MC_INVALID_ARGUMENT);
    cr_expect(strstr(res.message, "{tag}") != NULL, "%s", res.message);
    /* 129 in all */
    static mc_op many[MC_TXN_OPS_MAX + 1];
    for (size_t i = 0; i <= MC_TXN_OPS_MAX; i++) {
        many[i] = (mc_op){.type = MC_OP_GET, .key = "{x}/k"};
    }
    t = (mc_txn_req){.then_ops = many, .n_then = MC_TXN_OPS_MAX + 1};
    cr_expect_eq(mc_txn(c, "default", &t, &r, &res), MC_INVALID_ARGUMENT);
    cr_expect(strstr(res.message, "more than 128") != NULL, "%s",
              res.message);
    /* a missing key, a bad target, a NULL value with a length, nothing */
    const mc_op nokey[] = {{.type = MC_OP_GET}};
    t = (mc_txn_req){.else_ops = nokey, .n_else = 1};
    cr_expect_eq(mc_txn(c, "default", &t, &r, &res), MC_INVALID_ARGUMENT);
    cr_expect_str_eq(res.message, "else_ops[0]: key is missing");
    const mc_cmp bad[] = {{.target = (mc_cmp_target)9, .key = "k"}};
    t = (mc_txn_req){.compares = bad, .n_compares = 1};
    cr_expect_eq(mc_txn(c, "default", &t, &r, &res), MC_INVALID_ARGUMENT);
    cr_expect(strstr(res.message, "compares[0]") != NULL, "%s", res.message);
    const mc_op nullval[] = {{.type = MC_OP_PUT, .key = "k",
                              .value_len = 3}};
    t = (mc_txn_req){.then_ops = nullval, .n_then = 1};
    cr_expect_eq(mc_txn(c, "default", &t, &r, &res), MC_INVALID_ARGUMENT);
    t = (mc_txn_req){0};
    cr_expect_eq(mc_txn(c, "default", &t, &r, &res), MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_txn(c, "Bad", &t, &r, &res), MC_INVALID_ARGUMENT);
    cr_expect_eq(seen_count(f), 0, "a bad transaction reached the node");
    /* An answer without its result is the node's fault. */
    const mc_op one[] = {{.type = MC_OP_GET, .key = "k"}};
    t = (mc_txn_req){.then_ops = one, .n_then = 1};
    cr_expect_eq(mc_txn(c, "default", &t, &r, &res), MC_INTERNAL);
    cr_expect(strstr(res.message, "without its result") != NULL, "%s",
              res.message);
    mc_client_close(c);
    fake_stop(f);
}

static enum fake_action drop_then_garbage(struct fake *f,
                                          const Mcpb__Request *req,
                                          unsigned nth, Mcpb__Response *resp)
{
    return nth == 0 ? FAKE_DROP : FAKE_GARBAGE;
}

/* The first attempt of a put reaches the node but its answer is lost; the
 * retry gets an answer that does not decode. The put may have applied: the
 * caller must hear TIMEOUT, never a plain failure. */
Test(mc_put, unknown_outcome_then_bad_answer_is_timeout)
{
    struct fake *f = fake_start(drop_then_garbage, NULL);
    char eps[600];
    snprintf(eps, sizeof eps, "%s,%s", f->url, f->url);
    mc_client *c = client_on(eps, 5000);
    mc_result res;
    mc_err rv = mc_put(c, "default", "k", "v", 1, NULL, &res);
    cr_assert_eq(rv, MC_TIMEOUT, "%s: %s", mc_errname(rv), res.message);
    mc_client_close(c);
    fake_stop(f);
}
