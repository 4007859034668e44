/* Unit tests of libmemcoord's asynchronous calls (mc_put_async,
 * mc_get_async, mc_delete_async) and of the engine under them (call.c),
 * against fake nodes (fake_node.h).
 *
 * What is tested: an asynchronous call ends with what the synchronous one
 * returns (codes, versions, messages, records); bad arguments are refused
 * at the start and the callback never runs; retries keep the request id,
 * NOT_LEADER hints are followed, a lost reply makes a write TIMEOUT within
 * the deadline; many calls in flight from one thread, more writes than
 * request ids, callbacks that start the next call, callbacks on the
 * library's threads only; and mc_client_close with calls in flight ends
 * each of them once, before it returns. */
/* The engine's test points (internal.h) call the hook a test sets, to
 * force an interleaving of threads; each test runs in a process of its
 * own. */
#include <signal.h>

typedef void (*point_fn)(const char *point, void *arg);
static _Atomic(point_fn) point_hook;
static void test_point(const char *point, void *arg);
#define CLIENT_TEST_POINT(point, arg) test_point(#point, (void *)(arg))

#include "tests/unit/client/fake_node.h"

#define NS "default"

static void test_point(const char *point, void *arg)
{
    point_fn hook = atomic_load(&point_hook);
    if (hook != NULL) {
        hook(point, arg);
    }
}

/* ---- handlers ---- */

static enum fake_action ok_versions(struct fake *f, const Mcpb__Request *req,
                                    unsigned nth, Mcpb__Response *resp)
{
    resp->has_version = true;
    resp->version = nth + 1;
    resp->has_create_rev = true;
    resp->create_rev = 50 + nth;
    resp->has_mod_rev = true;
    resp->mod_rev = 100 + nth;
    return FAKE_ANSWER;
}

static enum fake_action conflict_at_4(struct fake *f,
                                      const Mcpb__Request *req, unsigned nth,
                                      Mcpb__Response *resp)
{
    resp->code = MC_CONFLICT;
    resp->message = "swarm/x is at version 4, expected 3";
    resp->has_version = true;
    resp->version = 4;
    return FAKE_ANSWER;
}

static enum fake_action unavailable_then_ok(struct fake *f,
                                            const Mcpb__Request *req,
                                            unsigned nth,
                                            Mcpb__Response *resp)
{
    if (nth < 2) {
        resp->code = nth == 0 ? MC_UNAVAILABLE : MC_TIMEOUT;
        resp->message = "election";
        return FAKE_ANSWER;
    }
    resp->has_version = true;
    resp->version = 1;
    return FAKE_ANSWER;
}

static enum fake_action drop_first(struct fake *f, const Mcpb__Request *req,
                                   unsigned nth, Mcpb__Response *resp)
{
    if (nth == 0) {
        return FAKE_DROP;
    }
    resp->has_version = true;
    resp->version = 1;
    return FAKE_ANSWER;
}

static enum fake_action drop_every(struct fake *f, const Mcpb__Request *req,
                                   unsigned nth, Mcpb__Response *resp)
{
    return FAKE_DROP;
}

static enum fake_action drop_then_junk(struct fake *f,
                                       const Mcpb__Request *req,
                                       unsigned nth, Mcpb__Response *resp)
{
    return nth == 0 ? FAKE_DROP : FAKE_GARBAGE;
}

static enum fake_action record_of_key(struct fake *f,
                                      const Mcpb__Request *req, unsigned nth,
                                      Mcpb__Response *resp)
{
    static Mcpb__Record rec;
    if (req->key.len == 7 && memcmp(req->key.data, "missing", 7) == 0) {
        resp->code = MC_NOT_FOUND;
        resp->message = "missing not found";
        return FAKE_ANSWER;
    }
    rec = (Mcpb__Record)MCPB__RECORD__INIT;
    rec.has_key = rec.has_value = true;
    rec.key = req->key;
    rec.value.data = (uint8_t *)"a\0b\xff";
    rec.value.len = 4;
    rec.has_version = rec.has_create_rev = rec.has_mod_rev = true;
    rec.version = 7;
    rec.create_rev = 3;
    rec.mod_rev = 9;
    rec.has_tier = true;
    rec.tier = MC_TIER_MID;
    rec.has_expires_at = rec.has_updated_at = true;
    rec.expires_at = 1700000000123ll;
    rec.updated_at = 1690000000000ll;
    resp->record = &rec;
    resp->has_version = true;
    resp->version = 7;
    return FAKE_ANSWER;
}

/* A node that no longer leads: asked not to forward, it names the fake in
 * f->arg. */
static enum fake_action hint_elsewhere(struct fake *f,
                                       const Mcpb__Request *req, unsigned nth,
                                       Mcpb__Response *resp)
{
    struct fake *leader = f->arg;
    resp->code = MC_NOT_LEADER;
    resp->message = "not the leader";
    resp->has_leader_id = true;
    resp->leader_id = leader->id;
    resp->leader_url = leader->url;
    return FAKE_ANSWER;
}

/* Writes to "held" are never answered; the others are. */
static enum fake_action drop_held(struct fake *f, const Mcpb__Request *req,
                                  unsigned nth, Mcpb__Response *resp)
{
    if (req->key.len == 4 && memcmp(req->key.data, "held", 4) == 0) {
        return FAKE_DROP;
    }
    return ok_versions(f, req, nth, resp);
}

/* ---- waiting for callbacks ---- */

/* What the callbacks of a test saw. */
struct ends {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned n;              /* callbacks run */
    unsigned by_code[MC_ERR_COUNT];
    bool on_start_thread;    /* a callback ran on the test's thread */
    pthread_t start_thread;
    mc_err code;             /* of the last one */
    mc_result res;
    mc_record *rec;
};

static void ends_init(struct ends *e)
{
    memset(e, 0, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->start_thread = pthread_self();
}

static void ends_fini(struct ends *e)
{
    mc_record_free(e->rec);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
}

static void ends_add(struct ends *e, mc_err code, mc_record *rec,
                     const mc_result *res)
{
    pthread_mutex_lock(&e->mu);
    e->n++;
    e->by_code[(unsigned)code < MC_ERR_COUNT ? code : MC_INTERNAL]++;
    e->on_start_thread =
        e->on_start_thread || pthread_equal(pthread_self(), e->start_thread);
    e->code = code;
    e->res = *res;
    mc_record_free(e->rec);
    e->rec = rec;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void on_done(void *arg, mc_err code, const mc_result *res)
{
    ends_add(arg, code, NULL, res);
}

static void on_get(void *arg, mc_err code, mc_record *rec,
                   const mc_result *res)
{
    cr_assert(code == MC_OK || rec == NULL, "a record with %s",
              mc_errname(code));
    ends_add(arg, code, rec, res);
}

/* Wait until n callbacks ran, at most 10 s. */
static void ends_wait(struct ends *e, unsigned n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&e->mu);
    while (e->n < n) {
        cr_assert_neq(pthread_cond_timedwait(&e->cv, &e->mu, &until),
                      ETIMEDOUT, "%u of %u callbacks after 10 s", e->n, n);
    }
    pthread_mutex_unlock(&e->mu);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Calls and refreshes of c not ended yet, once they settle (a call ends
 * just after its callback returns): waits up to 2 s for want. */
static unsigned busy_settled_to(mc_client *c, unsigned want)
{
    unsigned busy = 0;
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&c->mu);
        busy = c->busy;
        pthread_mutex_unlock(&c->mu);
        if (busy == want) {
            break;
        }
        sleep_ms(10);
    }
    return busy;
}

static unsigned busy_settled(mc_client *c)
{
    return busy_settled_to(c, 0);
}

/* ---- the same results as the synchronous calls ---- */

static void result_eq(const mc_result *a, const mc_result *b)
{
    cr_assert_eq(a->code, b->code);
    cr_assert_eq(a->version, b->version);
    cr_assert_eq(a->create_rev, b->create_rev);
    cr_assert_eq(a->mod_rev, b->mod_rev);
    cr_assert_str_eq(a->message, b->message);
}

Test(mc_put_async, ends_as_mc_put_does)
{
    /* Two fakes with the same answers: one for the synchronous call, one
     * for the asynchronous one. */
    struct fake *fs = fake_start(ok_versions, NULL);
    struct fake *fa = fake_start(ok_versions, NULL);
    mc_client *cs = client_on(fs->url, 1000), *ca = client_on(fa->url, 1000);
    mc_put_opts o = {.expect_version = 0, .tier = MC_TIER_SHORT,
                     .ttl_ms = 30000};
    mc_result want, res;
    cr_assert_eq(mc_put(cs, NS, "swarm/x", "hello", 5, &o, &want), MC_OK);
    struct ends e;
    ends_init(&e);
    cr_assert_eq(mc_put_async(ca, NS, "swarm/x", "hello", 5, &o, &res,
                              on_done, &e),
                 MC_OK, "%s", res.message);
    ends_wait(&e, 1);
    cr_assert_eq(e.code, MC_OK);
    result_eq(&e.res, &want);
    cr_assert_eq(e.res.version, 1);
    cr_assert_eq(e.res.mod_rev, 100);
    cr_assert_not(e.on_start_thread, "a callback ran on the caller's thread");
    /* The same request on the wire, but for its id. */
    struct seen *a = &fs->seen[0], *b = &fa->seen[0];
    cr_assert_eq(seen_count(fa), 1);
    cr_assert_eq(b->op, a->op);
    cr_assert_str_eq(b->key, a->key);
    cr_assert_eq(b->value_len, a->value_len);
    cr_assert_eq(b->expect_version, a->expect_version);
    cr_assert_eq(b->tier, a->tier);
    cr_assert_eq(b->ttl_ms, a->ttl_ms);
    cr_assert_eq(b->no_forward, a->no_forward);
    cr_assert(b->has_client_id);
    cr_assert_eq(b->seq, 1);
    ends_fini(&e);
    mc_client_close(cs);
    mc_client_close(ca);
    fake_stop(fs);
    fake_stop(fa);
}

Test(mc_put_async, conflict_carries_the_current_version)
{
    struct fake *f = fake_start(conflict_at_4, NULL);
    mc_client *c = client_on(f->url, 1000);
    mc_put_opts o = MC_PUT_OPTS_INIT;
    o.expect_version = 3;
    mc_result want;
    cr_assert_eq(mc_put(c, NS, "swarm/x", "v", 1, &o, &want), MC_CONFLICT);
    struct ends e;
    ends_init(&e);
    cr_assert_eq(mc_put_async(c, NS, "swarm/x", "v", 1, &o, NULL, on_done,
                              &e),
                 MC_OK);
    ends_wait(&e, 1);
    cr_assert_eq(e.code, MC_CONFLICT);
    result_eq(&e.res, &want);
    cr_assert_eq(e.res.version, 4);
    cr_assert_eq(seen_count(f), 2, "a conflict is not retried");
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

Test(mc_get_async, hands_the_record_to_the_callback)
{
    struct fake *f = fake_start(record_of_key, NULL);
    mc_client *c = client_on(f->url, 1000);
    mc_read_opts ser = {.serializable = true};
    mc_record *want;
    mc_result want_res;
    cr_assert_eq(mc_get(c, NS, "swarm/x", &ser, &want, &want_res), MC_OK);
    struct ends e;
    ends_init(&e);
    cr_assert_eq(mc_get_async(c, NS, "swarm/x", &ser, NULL, on_get, &e),
                 MC_OK);
    ends_wait(&e, 1);
    cr_assert_eq(e.code, MC_OK);
    result_eq(&e.res, &want_res);
    mc_record *r = e.rec;
    cr_assert_not_null(r);
    cr_assert_str_eq(r->key, want->key);
    cr_assert_eq(r->value_len, 4);
    cr_assert_arr_eq(r->value, want->value, 5, "values are NUL-terminated");
    cr_assert_eq(r->version, want->version);
    cr_assert_eq(r->create_rev, want->create_rev);
    cr_assert_eq(r->mod_rev, want->mod_rev);
    cr_assert_eq(r->tier, MC_TIER_MID);
    cr_assert_eq(r->expires_at_ms, want->expires_at_ms);
    cr_assert_eq(r->updated_at_ms, want->updated_at_ms);
    cr_assert(f->seen[1].serializable);
    mc_record_free(want);

    /* Missing: NOT_FOUND and no record, with the node's message. */
    cr_assert_eq(mc_get_async(c, NS, "missing", NULL, NULL, on_get, &e),
                 MC_OK);
    ends_wait(&e, 2);
    cr_assert_eq(e.code, MC_NOT_FOUND);
    cr_assert_null(e.rec);
    cr_assert_str_eq(e.res.message, "missing not found");
    cr_assert_not(f->seen[2].serializable);
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

Test(mc_delete_async, sends_the_expected_version)
{
    struct fake *f = fake_start(ok_versions, NULL);
    mc_client *c = client_on(f->url, 1000);
    struct ends e;
    ends_init(&e);
    cr_assert_eq(mc_delete_async(c, NS, "k", 3, NULL, on_done, &e), MC_OK);
    ends_wait(&e, 1);
    cr_assert_eq(e.code, MC_OK);
    cr_assert_eq(seen_count(f), 1);
    cr_assert_eq(f->seen[0].op, MCPB__OP__OP_DELETE);
    cr_assert(f->seen[0].has_expect_version);
    cr_assert_eq(f->seen[0].expect_version, 3);
    cr_assert(f->seen[0].has_client_id);
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

static void must_not_run(void *arg, mc_err code, const mc_result *res)
{
    cr_assert_fail("the callback of a refused call ran: %s", res->message);
}

static void must_not_run_get(void *arg, mc_err code, mc_record *rec,
                             const mc_result *res)
{
    cr_assert_fail("the callback of a refused get ran: %s", res->message);
}

Test(mc_put_async, refuses_bad_arguments_at_the_start)
{
    struct fake *f = fake_start(ok_versions, NULL);
    mc_client *c = client_on(f->url, 1000);
    static char big[MC_VALUE_BYTES_MAX + 1];
    mc_result res;
    mc_put_opts o = MC_PUT_OPTS_INIT;
    cr_expect_eq(mc_put_async(c, "Bad", "k", "v", 1, NULL, &res,
                              must_not_run, NULL),
                 MC_INVALID_ARGUMENT);
    cr_expect_neq(res.message[0], '\0');
    cr_expect_eq(mc_put_async(c, NS, "", "v", 1, NULL, &res, must_not_run,
                              NULL),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_put_async(c, NS, NULL, "v", 1, NULL, NULL, must_not_run,
                              NULL),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_put_async(c, NS, "k", NULL, 3, NULL, &res, must_not_run,
                              NULL),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_put_async(c, NS, "k", big, sizeof big, NULL, &res,
                              must_not_run, NULL),
                 MC_TOO_LARGE);
    cr_expect(strstr(res.message, "1048577") != NULL, "%s", res.message);
    o.expect_version = -2;
    cr_expect_eq(mc_put_async(c, NS, "k", "v", 1, &o, &res, must_not_run,
                              NULL),
                 MC_INVALID_ARGUMENT);
    o = (mc_put_opts)MC_PUT_OPTS_INIT;
    o.tier = (mc_tier)7;
    cr_expect_eq(mc_put_async(c, NS, "k", "v", 1, &o, &res, must_not_run,
                              NULL),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_delete_async(c, NS, "\xc0\xaf", MC_VERSION_ANY, &res,
                                 must_not_run, NULL),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_delete_async(c, NS, "k", -5, &res, must_not_run, NULL),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(mc_get_async(c, NS, "", NULL, &res, must_not_run_get, NULL),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(busy_settled(c), 0);
    cr_expect_eq(seen_count(f), 0, "a bad request reached the node");
    mc_client_close(c);
    fake_stop(f);
}

/* Each allocation of a start fails in turn: the start fails INTERNAL and
 * its callback never runs, or it starts and ends as usual; either way it
 * leaves no lane taken and no call busy (a write's lane is taken only
 * after everything that can fail). Before each start a write the node
 * never answers takes the pooled call object and lane, so that the start
 * must make new ones. */
Test(mc_put_async, a_start_out_of_memory_leaves_nothing_taken)
{
    struct fake *f = fake_start(drop_held, NULL);
    mc_client *c = client_on(f->url, 5000);
    /* The shard map first: no refresh runs during the sweep. */
    cr_assert_eq(mc_put(c, NS, "k", "v", 1, NULL, NULL), MC_OK);
    struct ends e, held;
    ends_init(&e);
    ends_init(&held);
    unsigned started = 0, failed = 0;
    for (unsigned k = 1; k <= 12; k++) {
        cr_assert_eq(mc_put_async(c, NS, "held", "v", 1, NULL, NULL, on_done,
                                  &held),
                     MC_OK);
        mc_result res;
        base_alloc_fail_after(k);
        mc_err rv = mc_put_async(c, NS, "k", "v", 1, NULL, &res, on_done, &e);
        base_alloc_fail_after(0);
        if (rv == MC_OK) {
            ends_wait(&e, ++started);
            cr_assert_eq(e.code, MC_OK, "%s", e.res.message);
        } else {
            cr_assert_eq(rv, MC_INTERNAL, "allocation %u: %s", k,
                         res.message);
            failed++;
        }
        unsigned busy = busy_settled_to(c, k);
        pthread_mutex_lock(&c->mu);
        size_t n_free = 0;
        for (struct client_lane *l = c->free_lanes; l != NULL; l = l->next) {
            n_free++;
        }
        size_t n_lanes = c->n_lanes;
        pthread_mutex_unlock(&c->mu);
        cr_assert_eq(busy, k, "%u calls busy after %u held", busy, k);
        cr_assert_eq(n_free + k, n_lanes, "a lane was left taken");
    }
    cr_assert_gt(failed, 0, "no allocation of a start failed");
    cr_assert_eq(e.n, started);
    mc_client_close(c);
    cr_assert_eq(held.by_code[MC_TIMEOUT], 12);
    ends_fini(&e);
    ends_fini(&held);
    fake_stop(f);
}

/* ---- retries ---- */

Test(mc_put_async, retries_with_the_same_request_id)
{
    struct fake *f = fake_start(unavailable_then_ok, NULL);
    mc_client *c = client_on(f->url, 3000);
    struct ends e;
    ends_init(&e);
    cr_assert_eq(mc_put_async(c, NS, "k", "v", 1, NULL, NULL, on_done, &e),
                 MC_OK);
    ends_wait(&e, 1);
    cr_assert_eq(e.code, MC_OK, "%s", e.res.message);
    cr_assert_eq(seen_count(f), 3);
    for (unsigned i = 1; i < 3; i++) {
        cr_assert_eq(f->seen[i].client_id, f->seen[0].client_id);
        cr_assert_eq(f->seen[i].seq, f->seen[0].seq, "a retry's id moved");
    }
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

/* The first attempt reaches the node and its answer is lost; with two
 * endpoints an attempt waits MC_CLIENT_REPLY_WAIT_MS for it, then the
 * write goes again, with the same id, and the second answer settles it. */
Test(mc_put_async, a_lost_reply_is_retried_with_the_same_id)
{
    struct fake *f = fake_start(drop_first, NULL);
    char eps[160];
    snprintf(eps, sizeof eps, "%s,%s", f->url, f->url);
    mc_client *c = client_on(eps, 5000);
    struct ends e;
    ends_init(&e);
    cr_assert_eq(mc_put_async(c, NS, "k", "v", 1, NULL, NULL, on_done, &e),
                 MC_OK);
    ends_wait(&e, 1);
    cr_assert_eq(e.code, MC_OK, "%s", e.res.message);
    cr_assert_eq(seen_count(f), 2);
    cr_assert_eq(f->seen[1].client_id, f->seen[0].client_id);
    cr_assert_eq(f->seen[1].seq, f->seen[0].seq);
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

Test(mc_put_async, a_lost_reply_until_the_deadline_is_timeout)
{
    struct fake *f = fake_start(drop_every, NULL);
    mc_client *c = client_on(f->url, 300);
    struct ends e;
    ends_init(&e);
    int64_t t0 = base_mono_ms();
    cr_assert_eq(mc_put_async(c, NS, "k", "v", 1, NULL, NULL, on_done, &e),
                 MC_OK);
    cr_assert_lt(base_mono_ms() - t0, 100, "the start did not return at once");
    ends_wait(&e, 1);
    int64_t took = base_mono_ms() - t0;
    cr_assert_eq(e.code, MC_TIMEOUT, "%s", mc_errname(e.code));
    cr_assert(strstr(e.res.message, "may have applied") != NULL, "%s",
              e.res.message);
    cr_assert_geq(took, 290);
    cr_assert_lt(took, 1500, "the deadline was not kept: %lld ms",
                 (long long)took);
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

Test(mc_put_async, unknown_outcome_then_bad_answer_is_timeout)
{
    struct fake *f = fake_start(drop_then_junk, NULL);
    char eps[160];
    snprintf(eps, sizeof eps, "%s,%s", f->url, f->url);
    mc_client *c = client_on(eps, 5000);
    struct ends e;
    ends_init(&e);
    cr_assert_eq(mc_put_async(c, NS, "k", "v", 1, NULL, NULL, on_done, &e),
                 MC_OK);
    ends_wait(&e, 1);
    cr_assert_eq(e.code, MC_TIMEOUT, "%s: %s", mc_errname(e.code),
                 e.res.message);
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

Test(mc_get_async, no_node_is_unavailable_within_the_deadline)
{
    mc_client *c = client_on("inproc://nobody-home-async", 200);
    struct ends e;
    ends_init(&e);
    int64_t t0 = base_mono_ms();
    cr_assert_eq(mc_get_async(c, NS, "k", NULL, NULL, on_get, &e), MC_OK);
    cr_assert_eq(mc_put_async(c, NS, "k", "v", 1, NULL, NULL, on_done, &e),
                 MC_OK);
    ends_wait(&e, 2);
    cr_assert_eq(e.by_code[MC_UNAVAILABLE], 2, "a write that never left is "
                 "UNAVAILABLE, not TIMEOUT: %u %u %u; last %s %s",
                 e.by_code[MC_UNAVAILABLE], e.by_code[MC_TIMEOUT],
                 e.by_code[MC_INTERNAL], mc_errname(e.code), e.res.message);
    cr_assert_lt(base_mono_ms() - t0, 1000);
    cr_assert(strstr(e.res.message, "nobody-home-async") != NULL, "%s",
              e.res.message);
    ends_fini(&e);
    mc_client_close(c);
}

static enum fake_action busy_answer(struct fake *f, const Mcpb__Request *req,
                                    unsigned nth, Mcpb__Response *resp)
{
    resp->code = MC_UNAVAILABLE;
    resp->message = "no leader yet";
    return FAKE_ANSWER;
}

/* A pause, then an attempt whose send finds no connection until the
 * deadline: that attempt did not send anything. (In nng 1.5.2 a sleep on
 * an aio makes a later timeout on it complete as a success; the engine's
 * pause must not be a sleep.) */
Test(mc_get_async, a_send_that_times_out_after_a_pause_was_not_sent)
{
    struct fake *f = fake_start(busy_answer, NULL);
    char url[64];
    snprintf(url, sizeof url, "%s", f->url);
    mc_client *c = client_on(url, 600);
    struct ends e;
    ends_init(&e);
    cr_assert_eq(mc_get_async(c, NS, "k", NULL, NULL, on_get, &e), MC_OK);
    while (seen_count(f) == 0) {
        sleep_ms(1);
    }
    fake_stop(f); /* the retries after the backoff find nobody */
    ends_wait(&e, 1);
    cr_assert_eq(e.code, MC_UNAVAILABLE, "%s", e.res.message);
    cr_assert(strstr(e.res.message, "cannot reach") != NULL, "%s",
              e.res.message);
    cr_assert(strstr(e.res.message, "Incorrect state") == NULL, "%s",
              e.res.message);
    ends_fini(&e);
    mc_client_close(c);
}

/* ---- the deadline ---- */

/* The step of a write that was given a lane runs only once its deadline
 * passed: as when lane_give wins the race against the lane wait's timer
 * at the deadline. */
static void lane_given_late(const char *point, void *arg)
{
    if (strcmp(point, "lane_given") == 0) {
        struct client_call *k = arg;
        while (base_mono_ms() <= k->deadline_ms) {
            sleep_ms(1);
        }
    }
}

/* Every lane is held by a write the node never answers (300 ms); one more
 * write (400 ms) waits for a lane, gets one as the first holder times out,
 * and its step runs past its deadline: it must give up without sending,
 * UNAVAILABLE, not send late and end "may have applied". */
Test(mc_put_async, a_write_whose_lane_comes_too_late_is_not_sent)
{
    struct fake *f = fake_start(drop_held, NULL);
    mc_client *c = client_on(f->url, 300);
    struct ends held, late;
    ends_init(&held);
    ends_init(&late);
    for (unsigned i = 0; i < MC_CLIENT_LANES_MAX; i++) {
        cr_assert_eq(mc_put_async(c, NS, "held", "v", 1, NULL, NULL, on_done,
                                  &held),
                     MC_OK);
    }
    atomic_store(&point_hook, lane_given_late);
    c->timeout_ms = 400;
    cr_assert_eq(mc_put_async(c, NS, "late", "v", 1, NULL, NULL, on_done,
                              &late),
                 MC_OK);
    ends_wait(&late, 1);
    cr_assert_eq(late.code, MC_UNAVAILABLE, "%s: %s", mc_errname(late.code),
                 late.res.message);
    cr_assert(strstr(late.res.message, "request ids") != NULL, "%s",
              late.res.message);
    ends_wait(&held, MC_CLIENT_LANES_MAX);
    cr_assert_eq(held.by_code[MC_TIMEOUT], MC_CLIENT_LANES_MAX);
    mc_client_close(c);
    for (unsigned i = 0; i < seen_count(f); i++) {
        cr_assert_str_eq(f->seen[i].key, "held", "a write went out after its "
                         "deadline");
    }
    ends_fini(&held);
    ends_fini(&late);
    fake_stop(f);
}

/* ---- routing ---- */

Test(mc_put_async, follows_a_not_leader_hint_with_the_same_id)
{
    struct fake_cluster cl = {0};
    struct fake *b = fake_start_with(ok_versions, fake_status_cluster, NULL);
    struct fake *a = fake_start_with(hint_elsewhere, fake_status_cluster, b);
    a->cluster = b->cluster = &cl;
    cl.n_members = 2;
    cl.ids[0] = a->id;
    cl.ids[1] = b->id;
    snprintf(cl.urls[0], sizeof cl.urls[0], "%s", a->url);
    snprintf(cl.urls[1], sizeof cl.urls[1], "%s", b->url);
    cl.n_shards = 1;
    cl.leader[0] = a->id; /* stale: b leads now */
    cl.term[0] = 1;
    cl.n_replicas[0] = 2;
    cl.replicas[0][0] = a->id;
    cl.replicas[0][1] = b->id;
    mc_client *c = client_on(a->url, 2000);
    struct ends e;
    ends_init(&e);
    int64_t t0 = base_mono_ms();
    cr_assert_eq(mc_put_async(c, NS, "k", "v", 1, NULL, NULL, on_done, &e),
                 MC_OK);
    ends_wait(&e, 1);
    cr_assert_eq(e.code, MC_OK, "%s", e.res.message);
    cr_assert_lt(base_mono_ms() - t0, 200, "a hint costs no pause");
    cr_assert_eq(seen_count(a), 1);
    cr_assert_eq(seen_count(b), 1);
    cr_assert(a->seen[0].no_forward);
    cr_assert(b->seen[0].no_forward);
    cr_assert_eq(b->seen[0].client_id, a->seen[0].client_id);
    cr_assert_eq(b->seen[0].seq, a->seen[0].seq);
    /* The map learned it: the next write goes straight to b. */
    cr_assert_eq(mc_put_async(c, NS, "k", "v", 1, NULL, NULL, on_done, &e),
                 MC_OK);
    ends_wait(&e, 2);
    cr_assert_eq(seen_count(a), 1);
    cr_assert_eq(seen_count(b), 2);
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(a);
    fake_stop(b);
}

/* ---- many calls in flight ---- */

/* Per client id, the seqs a fake saw must grow: one write in flight per
 * id. */
static void seqs_grow(struct fake *f)
{
    unsigned n = seen_count(f);
    for (unsigned i = 0; i < n; i++) {
        if (!f->seen[i].has_client_id) {
            continue; /* a read */
        }
        for (unsigned k = i + 1; k < n; k++) {
            if (f->seen[k].client_id == f->seen[i].client_id) {
                cr_assert_gt(f->seen[k].seq, f->seen[i].seq);
                break;
            }
        }
    }
}

Test(mc_put_async, many_calls_in_flight_from_one_thread)
{
    struct fake *f = fake_start(record_of_key, NULL);
    mc_client *c = client_on(f->url, 5000);
    enum { N = 600 };
    struct ends e;
    ends_init(&e);
    for (unsigned i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "k/%u", i);
        mc_err rv = i % 3 == 0
                        ? mc_get_async(c, NS, key, NULL, NULL, on_get, &e)
                        : mc_put_async(c, NS, key, "v", 1, NULL, NULL,
                                       on_done, &e);
        cr_assert_eq(rv, MC_OK);
    }
    ends_wait(&e, N);
    cr_assert_eq(e.by_code[MC_OK], N);
    cr_assert_not(e.on_start_thread);
    cr_assert_eq(seen_count(f), N, "each call sent once");
    seqs_grow(f);
    cr_assert_leq(c->n_lanes, N - N / 3);
    cr_assert_eq(busy_settled(c), 0);
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

/* The first answer takes 300 ms, so that every call started meanwhile is
 * still in flight. */
static enum fake_action slow_first(struct fake *f, const Mcpb__Request *req,
                                   unsigned nth, Mcpb__Response *resp)
{
    if (nth == 0) {
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return ok_versions(f, req, nth, resp);
}

/* A node that takes 10 ms per request, one at a time. */
static enum fake_action slow_10ms(struct fake *f, const Mcpb__Request *req,
                                  unsigned nth, Mcpb__Response *resp)
{
    sleep_ms(10);
    return ok_versions(f, req, nth, resp);
}

/* 90 calls at once on a healthy node that serves one request at a time:
 * most of them wait well over MC_CLIENT_CONNECT_WAIT_MS for the node to
 * read their request, but its connection is up: they wait their turn.
 * None of them marks the node suspect or the map stale (which would send
 * later calls through forwarding and refresh the map), and each request
 * goes once, straight to the node. Two endpoints, so that an attempt may
 * not take the whole call: both are the one node. */
Test(mc_delete_async, a_queue_on_a_live_connection_is_not_a_dead_node)
{
    struct fake *f = fake_start(slow_10ms, NULL);
    char eps[160];
    snprintf(eps, sizeof eps, "%s,%s", f->url, f->url);
    mc_client *c = client_on(eps, 5000);
    /* The map first: one STATUS. */
    cr_assert_eq(mc_put(c, NS, "warm", "v", 1, NULL, NULL), MC_OK);
    cr_assert_eq(atomic_load(&f->n_status), 1);
    enum { N = 90 };
    _Static_assert(N * 10 > 2 * MC_CLIENT_CONNECT_WAIT_MS,
                   "the last calls wait longer than the connect wait");
    struct ends e;
    ends_init(&e);
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(mc_delete_async(c, NS, "k", MC_VERSION_ANY, NULL,
                                     on_done, &e),
                     MC_OK);
    }
    ends_wait(&e, N);
    cr_assert_eq(e.by_code[MC_OK], N, "%s", e.res.message);
    cr_assert_eq(seen_count(f), N + 1, "a request went more than once");
    for (unsigned i = 0; i < N + 1; i++) {
        cr_assert(f->seen[i].no_forward, "request %u was forwarded", i);
    }
    cr_assert_eq(atomic_load(&f->n_status), 1, "the map was refreshed");
    for (size_t i = 0; i < c->n_eps; i++) {
        cr_assert_eq(atomic_load(&c->eps[i].failed_ms), 0);
    }
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

/* More writes than request ids: those beyond MC_CLIENT_LANES_MAX wait for
 * a lane, each id keeps one write in flight, and all of them end. */
Test(mc_put_async, more_writes_than_lanes_wait_for_one)
{
    struct fake *f = fake_start(slow_first, NULL);
    mc_client *c = client_on(f->url, 8000);
    enum { N = MC_CLIENT_LANES_MAX + 300 };
    struct ends e;
    ends_init(&e);
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(mc_put_async(c, NS, "k", "v", 1, NULL, NULL, on_done,
                                  &e),
                     MC_OK);
    }
    ends_wait(&e, N);
    cr_assert_eq(e.by_code[MC_OK], N, "%s", e.res.message);
    cr_assert_eq(c->n_lanes, MC_CLIENT_LANES_MAX);
    cr_assert_eq(seen_count(f), N);
    seqs_grow(f);
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

/* A chain: each callback starts the next put, from the library's thread. */
struct chain {
    mc_client *c;
    unsigned left;
    struct ends *e;
    pthread_t starter;
    bool on_starter;
};

static void chain_next(void *arg, mc_err code, const mc_result *res)
{
    struct chain *ch = arg;
    ch->on_starter = ch->on_starter || pthread_equal(pthread_self(),
                                                     ch->starter);
    if (code != MC_OK || --ch->left == 0) {
        ends_add(ch->e, code, NULL, res);
        return;
    }
    mc_result r;
    mc_err rv = mc_put_async(ch->c, NS, "chain", "v", 1, NULL, &r,
                             chain_next, ch);
    if (rv != MC_OK) {
        ends_add(ch->e, rv, NULL, &r);
    }
}

Test(mc_put_async, a_callback_starts_the_next_call)
{
    struct fake *f = fake_start(ok_versions, NULL);
    mc_client *c = client_on(f->url, 2000);
    struct ends e;
    ends_init(&e);
    struct chain ch = {.c = c, .left = 50, .e = &e,
                       .starter = pthread_self()};
    cr_assert_eq(mc_put_async(c, NS, "chain", "v", 1, NULL, NULL, chain_next,
                              &ch),
                 MC_OK);
    ends_wait(&e, 1);
    cr_assert_eq(e.code, MC_OK, "%s", e.res.message);
    cr_assert_eq(ch.left, 0);
    cr_assert_not(ch.on_starter);
    cr_assert_eq(seen_count(f), 50);
    /* One writer at a time: the lane came back before each callback, and
     * the next write took it again. */
    cr_assert_eq(c->n_lanes, 1);
    for (unsigned i = 0; i < 50; i++) {
        cr_assert_eq(f->seen[i].client_id, f->seen[0].client_id);
        cr_assert_eq(f->seen[i].seq, i + 1);
    }
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

/* ---- the limit on calls in flight, and the pool ---- */

/* Gets of "answer" are answered, the rest never. */
static enum fake_action answer_only_answer(struct fake *f,
                                           const Mcpb__Request *req,
                                           unsigned nth, Mcpb__Response *resp)
{
    if (req->key.len == 6 && memcmp(req->key.data, "answer", 6) == 0) {
        return record_of_key(f, req, nth, resp);
    }
    return FAKE_DROP;
}

/* The callback of the get that is answered: at the limit, it may start a
 * call in its own place. */
struct at_limit {
    mc_client *c;
    struct ends *e;
    atomic_int started; /* what the start in the callback returned, +1 */
};

static void start_in_place(void *arg, mc_err code, mc_record *rec,
                           const mc_result *res)
{
    struct at_limit *l = arg;
    mc_err rv = mc_get_async(l->c, NS, "never", NULL, NULL, on_get, l->e);
    atomic_store(&l->started, (int)rv + 1);
    mc_record_free(rec);
}

Test(mc_get_async, a_start_beyond_the_calls_limit_fails_at_once)
{
    struct fake *f = fake_start(answer_only_answer, NULL);
    mc_client *c = client_on(f->url, 20000);
    mc_record *rec;
    cr_assert_eq(mc_get(c, NS, "answer", NULL, &rec, NULL), MC_OK);
    mc_record_free(rec);
    struct ends e;
    ends_init(&e);
    for (unsigned i = 0; i < MC_CLIENT_CALLS_MAX - 1; i++) {
        cr_assert_eq(mc_get_async(c, NS, "never", NULL, NULL, on_get, &e),
                     MC_OK, "call %u", i);
    }
    /* The last one within the limit is answered, and its callback starts
     * another: the count had room for it again. */
    struct at_limit l = {.c = c, .e = &e};
    atomic_init(&l.started, 0);
    cr_assert_eq(mc_get_async(c, NS, "answer", NULL, NULL, start_in_place,
                              &l),
                 MC_OK);
    while (atomic_load(&l.started) == 0) {
        sleep_ms(1);
    }
    cr_assert_eq(atomic_load(&l.started), MC_OK + 1,
                 "a callback could not start a call in its own place");
    /* Now the limit is reached: refused at once, asynchronous or not. */
    mc_result res;
    int64_t t0 = base_mono_ms();
    cr_assert_eq(mc_get_async(c, NS, "k", NULL, &res, must_not_run_get, NULL),
                 MC_UNAVAILABLE);
    cr_assert(strstr(res.message, "too many calls in flight (4096)") != NULL,
              "%s", res.message);
    cr_assert_eq(mc_put_async(c, NS, "k", "v", 1, NULL, &res, must_not_run,
                              NULL),
                 MC_UNAVAILABLE);
    cr_assert_eq(mc_get(c, NS, "k", NULL, &rec, &res), MC_UNAVAILABLE);
    cr_assert(strstr(res.message, "too many calls in flight") != NULL, "%s",
              res.message);
    cr_assert_lt(base_mono_ms() - t0, 100, "a refused start waited");
    cr_assert_leq(c->n_calls, MC_CLIENT_CALLS_MAX + 1);
    mc_client_close(c);
    cr_assert_eq(e.n, MC_CLIENT_CALLS_MAX);
    cr_assert_eq(e.by_code[MC_UNAVAILABLE], MC_CLIENT_CALLS_MAX);
    ends_fini(&e);
    fake_stop(f);
}

/* After a burst of calls, later starts free the idle call objects beyond
 * MC_CLIENT_CALLS_IDLE_MAX, a few at a time; the calls still work. Some of
 * those starts run in callbacks, beside objects whose own callbacks are
 * still returning. */
static void get_then_get(void *arg, mc_err code, mc_record *rec,
                         const mc_result *res)
{
    struct chain *ch = arg;
    mc_record_free(rec);
    if (code == MC_OK) {
        code = mc_get_async(ch->c, NS, "again", NULL, NULL, on_get, ch->e);
    }
    if (code != MC_OK) {
        ends_add(ch->e, code, NULL, res);
    }
}

/* The first answer takes 300 ms, so that every get started meanwhile is
 * still in flight; then each has a record. */
static enum fake_action slow_first_record(struct fake *f,
                                          const Mcpb__Request *req,
                                          unsigned nth, Mcpb__Response *resp)
{
    if (nth == 0) {
        sleep_ms(300);
    }
    return record_of_key(f, req, nth, resp);
}

Test(mc_get_async, the_pool_shrinks_after_a_burst)
{
    struct fake *f = fake_start(slow_first_record, NULL);
    mc_client *c = client_on(f->url, 8000);
    enum { N = 1000 };
    struct ends e;
    ends_init(&e);
    struct chain ch = {.c = c, .e = &e};
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(mc_get_async(c, NS, "k", NULL, NULL, get_then_get, &ch),
                     MC_OK);
    }
    ends_wait(&e, N);
    cr_assert_eq(e.n, N);
    cr_assert_eq(busy_settled(c), 0);
    pthread_mutex_lock(&c->mu);
    size_t after_burst = c->n_calls;
    pthread_mutex_unlock(&c->mu);
    cr_assert_gt(after_burst, N / 2, "the burst was not in flight at once");
    /* Each start frees up to MC_CLIENT_CALLS_REAP_MAX. */
    unsigned starts = (unsigned)(after_burst / MC_CLIENT_CALLS_REAP_MAX) + 1;
    for (unsigned i = 0; i < starts; i++) {
        mc_record *rec;
        cr_assert_eq(mc_get(c, NS, "k", NULL, &rec, NULL), MC_OK);
        mc_record_free(rec);
    }
    pthread_mutex_lock(&c->mu);
    cr_assert_leq(c->n_calls, MC_CLIENT_CALLS_IDLE_MAX + 1);
    cr_assert_eq(c->n_free_calls, c->n_calls);
    for (size_t i = 0; i < c->n_calls; i++) {
        cr_assert_eq(c->calls[i]->slot, i);
    }
    pthread_mutex_unlock(&c->mu);
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

/* Synchronous calls on other threads beside asynchronous ones. */
struct sync_writer {
    mc_client *c;
    int ok;
};

static void *sync_writer_main(void *arg)
{
    struct sync_writer *w = arg;
    for (int i = 0; i < 50; i++) {
        mc_result res;
        w->ok += mc_put(w->c, NS, "s", "v", 1, NULL, &res) == MC_OK;
    }
    return NULL;
}

Test(mc_put_async, mixes_with_synchronous_calls)
{
    struct fake *f = fake_start(ok_versions, NULL);
    mc_client *c = client_on(f->url, 5000);
    struct ends e;
    ends_init(&e);
    pthread_t t[4];
    struct sync_writer w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct sync_writer){c, 0};
        pthread_create(&t[i], NULL, sync_writer_main, &w[i]);
    }
    for (unsigned i = 0; i < 200; i++) {
        cr_assert_eq(mc_put_async(c, NS, "a", "v", 1, NULL, NULL, on_done,
                                  &e),
                     MC_OK);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].ok, 50);
    }
    ends_wait(&e, 200);
    cr_assert_eq(e.by_code[MC_OK], 200);
    cr_assert_eq(seen_count(f), 400);
    seqs_grow(f);
    ends_fini(&e);
    mc_client_close(c);
    fake_stop(f);
}

/* ---- the lists of parked calls ---- */

/* The calls of l from head to tail, checked against the prev links. */
static unsigned list_order(const struct call_list *l, struct client_call *base,
                           unsigned *out)
{
    unsigned n = 0;
    const struct client_call *prev = NULL;
    for (const struct client_call *k = l->head; k != NULL; k = k->next) {
        cr_assert_eq(k->prev, prev);
        cr_assert(k->queued);
        out[n++] = (unsigned)(k - base);
        prev = k;
    }
    cr_assert_eq(l->tail, prev);
    return n;
}

Test(call_list, removes_from_anywhere_and_keeps_the_order)
{
    static struct client_call k[5];
    struct call_list l = {NULL, NULL};
    for (unsigned i = 0; i < 5; i++) {
        call_list_push(&l, &k[i]);
    }
    unsigned order[5];
    cr_assert_eq(list_order(&l, k, order), 5);
    call_list_remove(&l, &k[2]); /* the middle */
    call_list_remove(&l, &k[0]); /* the head */
    call_list_remove(&l, &k[4]); /* the tail */
    cr_assert_not(k[2].queued);
    cr_assert_null(k[2].next);
    cr_assert_null(k[2].prev);
    cr_assert_eq(list_order(&l, k, order), 2);
    cr_assert_eq(order[0], 1);
    cr_assert_eq(order[1], 3);
    call_list_push(&l, &k[2]); /* back, at the end */
    cr_assert_eq(call_list_pop(&l), &k[1]);
    cr_assert_eq(call_list_pop(&l), &k[3]);
    cr_assert_eq(call_list_pop(&l), &k[2]);
    cr_assert_null(call_list_pop(&l));
    cr_assert_null(l.head);
    cr_assert_null(l.tail);
}

/* Thousands of writes wait for a lane and their waits run out together:
 * each leaves the queue at once (a doubly linked list), and every one of
 * them ends UNAVAILABLE, having sent nothing. The writes that hold the
 * lanes have a longer deadline (the test sets the client's timeout between
 * the two batches), so no lane comes free meanwhile. */
Test(mc_put_async, thousands_of_lane_waits_run_out_together)
{
    struct fake *f = fake_start(drop_every, NULL);
    mc_client *c = client_on(f->url, 10000);
    enum { WAITING = 2000 };
    struct ends held, waited;
    ends_init(&held);
    ends_init(&waited);
    for (unsigned i = 0; i < MC_CLIENT_LANES_MAX; i++) {
        cr_assert_eq(mc_put_async(c, NS, "held", "v", 1, NULL, NULL, on_done,
                                  &held),
                     MC_OK);
    }
    c->timeout_ms = 300;
    int64_t t0 = base_mono_ms();
    for (unsigned i = 0; i < WAITING; i++) {
        cr_assert_eq(mc_put_async(c, NS, "waits", "v", 1, NULL, NULL,
                                  on_done, &waited),
                     MC_OK);
    }
    ends_wait(&waited, WAITING);
    cr_assert_lt(base_mono_ms() - t0, 2000);
    cr_assert_eq(waited.by_code[MC_UNAVAILABLE], WAITING, "%s",
                 waited.res.message);
    cr_assert(strstr(waited.res.message, "request ids") != NULL, "%s",
              waited.res.message);
    cr_assert_null(c->lane_queue.head);
    cr_assert_eq(held.n, 0);
    mc_client_close(c);
    cr_assert_eq(held.by_code[MC_TIMEOUT], MC_CLIENT_LANES_MAX,
                 "a write that was sent may have applied");
    for (unsigned i = 0; i < seen_count(f); i++) {
        cr_assert_str_eq(f->seen[i].key, "held");
    }
    ends_fini(&held);
    ends_fini(&waited);
    fake_stop(f);
}

/* ---- what a callback must not do ---- */

/* A callback that makes a synchronous call on its client, or closes it. */
struct misbehave {
    mc_client *c;
    bool close;
};

static void misbehaving_cb(void *arg, mc_err code, const mc_result *res)
{
    struct misbehave *m = arg;
    if (m->close) {
        mc_client_close(m->c);
    } else {
        mc_put(m->c, NS, "sync", "v", 1, NULL, NULL);
    }
}

static void misbehave(bool close)
{
    struct fake *f = fake_start(ok_versions, NULL);
    struct misbehave m = {client_on(f->url, 2000), close};
    cr_assert_eq(mc_put_async(m.c, NS, "k", "v", 1, NULL, NULL,
                              misbehaving_cb, &m),
                 MC_OK);
    /* The assertion aborts the process on the callback's thread. */
    sleep_ms(3000);
    cr_assert_fail("the callback's %s went unnoticed",
                   close ? "mc_client_close" : "synchronous call");
}

Test(mc_put_async, a_synchronous_call_in_a_callback_asserts,
     .signal = SIGABRT, .timeout = 10)
{
    misbehave(false);
}

Test(mc_put_async, mc_client_close_in_a_callback_asserts, .signal = SIGABRT,
     .timeout = 10)
{
    misbehave(true);
}

/* ---- close with calls in flight ---- */

struct closing {
    struct ends *e;
    mc_client *c;
    atomic_uint refused; /* calls the callbacks tried to start */
};

static void on_done_then_start(void *arg, mc_err code, const mc_result *res)
{
    struct closing *cl = arg;
    mc_result r;
    if (mc_put_async(cl->c, NS, "late", "v", 1, NULL, &r, must_not_run,
                     NULL) == MC_UNAVAILABLE) {
        atomic_fetch_add(&cl->refused, 1);
    }
    ends_add(cl->e, code, NULL, res);
}

static void on_get_closing(void *arg, mc_err code, mc_record *rec,
                           const mc_result *res)
{
    struct closing *cl = arg;
    ends_add(cl->e, code, rec, res);
}

Test(mc_client_close, ends_every_call_in_flight_before_it_returns)
{
    struct fake *f = fake_start(drop_every, NULL);
    mc_client *c = client_on(f->url, 20000);
    struct ends e;
    ends_init(&e);
    struct closing cl = {.e = &e, .c = c};
    atomic_init(&cl.refused, 0);
    enum { PUTS = 20, GETS = 10 };
    for (unsigned i = 0; i < PUTS; i++) {
        cr_assert_eq(mc_put_async(c, NS, "k", "v", 1, NULL, NULL,
                                  on_done_then_start, &cl),
                     MC_OK);
    }
    for (unsigned i = 0; i < GETS; i++) {
        cr_assert_eq(mc_get_async(c, NS, "k", NULL, NULL, on_get_closing,
                                  &cl),
                     MC_OK);
    }
    /* Let them reach the node (which never answers). */
    for (int i = 0; i < 200 && seen_count(f) < PUTS + GETS; i++) {
        sleep_ms(10);
    }
    cr_assert_eq(seen_count(f), PUTS + GETS);
    int64_t t0 = base_mono_ms();
    mc_client_close(c);
    cr_assert_lt(base_mono_ms() - t0, 1000, "close waited for timeouts");
    /* Every callback ran, once, before close returned. */
    cr_assert_eq(e.n, PUTS + GETS);
    cr_assert_eq(e.by_code[MC_TIMEOUT], PUTS,
                 "a write that was sent may have applied");
    cr_assert_eq(e.by_code[MC_UNAVAILABLE], GETS);
    cr_assert(strstr(e.res.message, "client closed") != NULL, "%s",
              e.res.message);
    cr_assert_eq(atomic_load(&cl.refused), PUTS,
                 "a call started while closing was not refused");
    ends_fini(&e);
    fake_stop(f);
}

/* A close on another thread while this one is inside an asynchronous
 * start, between its first operation's start and its check of the closing
 * flag: the closer runs while the starter is held at the test point. */
static struct {
    pthread_t starter, closer;
    mc_client *c;
    atomic_bool fired, close_began, close_returned, returned_early;
} mid;

static void *closer_main(void *arg)
{
    atomic_store(&mid.close_began, true);
    mc_client_close(mid.c);
    atomic_store(&mid.close_returned, true);
    return NULL;
}

static void close_mid_start(const char *point, void *arg)
{
    if (strcmp(point, "op_begun") != 0 ||
        !pthread_equal(pthread_self(), mid.starter) ||
        atomic_exchange(&mid.fired, true)) {
        return;
    }
    cr_assert_eq(pthread_create(&mid.closer, NULL, closer_main, NULL), 0);
    while (!atomic_load(&mid.close_began)) {
        sleep_ms(1);
    }
    /* Ample time for a close that does not wait for this start to abort
     * the call, see it end on nng's thread and free the client, which
     * this start then reads. */
    sleep_ms(300);
    atomic_store(&mid.returned_early, atomic_load(&mid.close_returned));
}

Test(mc_client_close, waits_for_a_start_in_progress_on_another_thread)
{
    struct fake *f = fake_start(drop_held, NULL);
    mid.c = client_on(f->url, 20000);
    mid.starter = pthread_self();
    /* The shard map first, so that the put goes straight to the node. */
    cr_assert_eq(mc_put(mid.c, NS, "warm", "v", 1, NULL, NULL), MC_OK);
    struct ends e;
    ends_init(&e);
    atomic_store(&point_hook, close_mid_start);
    mc_result res;
    int64_t t0 = base_mono_ms();
    mc_err rv = mc_put_async(mid.c, NS, "held", "v", 1, NULL, &res, on_done,
                             &e);
    cr_assert_lt(base_mono_ms() - t0, 2000);
    bool early = atomic_load(&mid.returned_early);
    cr_assert(atomic_load(&mid.fired), "the start passed no test point");
    cr_assert_not(early, "mc_client_close returned while another thread "
                  "was inside a start on the client");
    pthread_join(mid.closer, NULL);
    cr_assert_eq(rv, MC_OK, "%s", res.message);
    cr_assert_eq(e.n, 1, "the call did not end exactly once");
    cr_assert(strstr(e.res.message, "client closed") != NULL, "%s",
              e.res.message);
    ends_fini(&e);
    fake_stop(f);
}

/* Calls parked (waiting for a lane, pausing between attempts) end too. */
static enum fake_action always_busy(struct fake *f, const Mcpb__Request *req,
                                    unsigned nth, Mcpb__Response *resp)
{
    resp->code = MC_UNAVAILABLE;
    resp->message = "no leader yet";
    return FAKE_ANSWER;
}

Test(mc_client_close, ends_calls_that_pause_or_wait_for_a_lane)
{
    struct fake *f = fake_start(always_busy, NULL);
    mc_client *c = client_on(f->url, 20000);
    struct ends e;
    ends_init(&e);
    enum { N = MC_CLIENT_LANES_MAX + 50 };
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(mc_put_async(c, NS, "k", "v", 1, NULL, NULL, on_done,
                                  &e),
                     MC_OK);
    }
    sleep_ms(300); /* attempts, backoffs, and 50 writes waiting */
    int64_t t0 = base_mono_ms();
    mc_client_close(c);
    cr_assert_lt(base_mono_ms() - t0, 2000);
    cr_assert_eq(e.n, N);
    cr_assert_eq(e.by_code[MC_OK], 0);
    cr_assert_eq(e.by_code[MC_UNAVAILABLE] + e.by_code[MC_TIMEOUT], N);
    ends_fini(&e);
    fake_stop(f);
}

Test(mc_client_close, with_nothing_in_flight_after_async_calls)
{
    struct fake *f = fake_start(ok_versions, NULL);
    mc_client *c = client_on(f->url, 2000);
    struct ends e;
    ends_init(&e);
    for (unsigned i = 0; i < 10; i++) {
        cr_assert_eq(mc_delete_async(c, NS, "k", MC_VERSION_ANY, NULL,
                                     on_done, &e),
                     MC_OK);
    }
    ends_wait(&e, 10);
    mc_client_close(c);
    cr_assert_eq(e.n, 10);
    cr_assert_eq(e.by_code[MC_OK], 10);
    ends_fini(&e);
    fake_stop(f);
}
