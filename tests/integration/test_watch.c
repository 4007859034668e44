/* Integration tests of watch and wait against real memcoord processes.
 *
 * A single node of 8 shards: a key watch sees puts, deletes and promotes
 * in order with their versions and revisions; a prefix watch sees keys of
 * every shard and nothing outside the prefix; a watch resumed from its
 * token goes on exactly after what it returned; a watcher that fell
 * behind a small ring (--watch-ring) gets COMPACTED with the current
 * revision and then goes on; waits for a key to exist, to equal a value,
 * to reach a version, answered the moment the write applies (the latency
 * is printed, and held only to a generous bound), and a wait that times
 * out says so.
 *
 * Three nodes: a writer puts unique counter values to keys of every shard
 * while a prefix watcher follows them; the leader of a watched shard is
 * killed with SIGKILL mid-way, and the watcher (also reopening from its
 * token now and then, as a restarted agent would) must see, per key,
 * versions 1..N exactly, none missing, none twice, in order. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memcoord.h"
#include "proto/proto.h"
#include "tests/lib/harness.h"

#define NS "watch"
#define SHARDS 8

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

static void up_with(const char *ring)
{
    if (ring != NULL) {
        cr_assert_eq(harness_node_start(&node, "--watch-ring", ring, NULL), 0);
    } else {
        cr_assert_eq(harness_node_start(&node, NULL), 0);
    }
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    cl = client_for(node.url, 5000);
}

static void up(void)
{
    up_with(NULL);
}

static void up_small_ring(void)
{
    up_with("4");
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

static mc_result put(const char *key, const char *value, mc_tier tier)
{
    mc_put_opts o = MC_PUT_OPTS_INIT;
    o.tier = tier;
    mc_result res;
    cr_assert_eq(mc_put(cl, NS, key, value, strlen(value), &o, &res), MC_OK,
                 "put %s: %s", key, res.message);
    return res;
}

static mc_watch *watch_open(const char *key, const mc_watch_opts *o)
{
    mc_watch *w;
    mc_result res;
    cr_assert_eq(mc_watch_open(cl, NS, key, o, &w, &res), MC_OK, "%s",
                 res.message);
    return w;
}

/* Collect events from w until want of them came or 10 s passed. */
static size_t collect(mc_watch *w, mc_event *out, size_t want)
{
    size_t got = 0;
    int64_t deadline = harness_now_ms() + 10000;
    while (got < want && harness_now_ms() < deadline) {
        mc_event *ev;
        size_t n;
        mc_result res;
        mc_err rv = mc_watch_next(w, 500, &ev, &n, &res);
        cr_assert_eq(rv, MC_OK, "%s: %s", mc_errname(rv), res.message);
        for (size_t i = 0; i < n; i++) {
            cr_assert_lt(got, want, "more events than expected: %s v%llu",
                         ev[i].record.key,
                         (unsigned long long)ev[i].record.version);
            out[got] = ev[i];
            memset(&ev[i].record, 0, sizeof ev[i].record); /* moved */
            got++;
        }
        mc_events_free(ev, n);
    }
    return got;
}

static void events_fini(mc_event *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].record.key);
        free(e[i].record.value);
    }
}

/* Nothing more arrives within ms. */
static void assert_quiet(mc_watch *w, int ms)
{
    mc_event *ev;
    size_t n;
    mc_result res;
    cr_assert_eq(mc_watch_next(w, ms, &ev, &n, &res), MC_OK, "%s",
                 res.message);
    cr_assert_eq(n, 0, "unexpected event %s %s", n ? ev[0].record.key : "",
                 n ? mc_event_type_name(ev[0].type) : "");
    mc_events_free(ev, n);
}

/* ---- watch: a single node ---- */

NODE_TEST(watch, key_sees_each_change_in_order)
{
    put("swarm/status", "before", MC_TIER_DEFAULT); /* before: not seen */
    mc_watch *w = watch_open("swarm/status", NULL);
    mc_result r1 = put("swarm/status", "one", MC_TIER_SHORT);
    mc_result r2 = put("swarm/status", "one", MC_TIER_LONG);
    put("swarm/other", "x", MC_TIER_DEFAULT);
    mc_result r3;
    cr_assert_eq(mc_delete(cl, NS, "swarm/status", MC_VERSION_ANY, &r3),
                 MC_OK);
    mc_event e[3];
    cr_assert_eq(collect(w, e, 3), 3);
    cr_assert_eq(e[0].type, MC_EVENT_PUT);
    cr_assert_str_eq(e[0].record.key, "swarm/status");
    cr_assert_str_eq((char *)e[0].record.value, "one");
    cr_assert_eq(e[0].record.version, 2);
    cr_assert_eq(e[0].revision, r1.mod_rev);
    cr_assert_eq(e[0].record.tier, MC_TIER_SHORT);
    cr_assert_eq(e[1].type, MC_EVENT_PROMOTE, "same value, higher tier");
    cr_assert_eq(e[1].record.version, 3);
    cr_assert_eq(e[1].revision, r2.mod_rev);
    cr_assert_eq(e[2].type, MC_EVENT_DELETE);
    cr_assert_eq(e[2].record.version, 3, "the version removed");
    cr_assert_eq(e[2].revision, r3.mod_rev);
    cr_assert_eq(e[2].record.value_len, 0);
    assert_quiet(w, 200);
    events_fini(e, 3);
    mc_watch_close(w);
}

NODE_TEST(watch, prefix_spans_every_shard)
{
    mc_watch_opts o = MC_WATCH_OPTS_INIT;
    o.prefix = true;
    mc_watch *w = watch_open("team/", &o);
    char keys[SHARDS][64];
    for (uint32_t s = 0; s < SHARDS; s++) {
        harness_key_in_shard(NS, SHARDS, "team/k", s, keys[s],
                             sizeof keys[s]);
        put(keys[s], keys[s], MC_TIER_DEFAULT);
        char other[64];
        harness_key_in_shard(NS, SHARDS, "teamx/k", s, other, sizeof other);
        put(other, "outside the prefix", MC_TIER_DEFAULT);
    }
    mc_event e[SHARDS];
    cr_assert_eq(collect(w, e, SHARDS), SHARDS);
    bool seen[SHARDS] = {false};
    for (size_t i = 0; i < SHARDS; i++) {
        uint32_t s = e[i].shard;
        cr_assert_lt(s, SHARDS);
        cr_assert(!seen[s], "shard %u twice", s);
        seen[s] = true;
        cr_assert_str_eq(e[i].record.key, keys[s]);
        cr_assert_str_eq((char *)e[i].record.value, keys[s]);
    }
    assert_quiet(w, 300);
    events_fini(e, SHARDS);
    mc_watch_close(w);
}

NODE_TEST(watch, resumes_from_its_token_exactly)
{
    mc_watch_opts o = MC_WATCH_OPTS_INIT;
    o.prefix = true;
    mc_watch *w = watch_open("job/", &o);
    for (int i = 1; i <= 5; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        put("job/a", v, MC_TIER_DEFAULT);
    }
    mc_event e[10];
    cr_assert_eq(collect(w, e, 5), 5);
    char token[4096];
    snprintf(token, sizeof token, "%s", mc_watch_token(w));
    mc_watch_close(w); /* the agent stops ... */
    for (int i = 6; i <= 10; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        put("job/a", v, MC_TIER_DEFAULT);
    }
    o.resume_token = token; /* ... and comes back */
    w = watch_open("job/", &o);
    cr_assert_eq(collect(w, e + 5, 5), 5);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(e[i].record.version, (uint64_t)i + 1);
    }
    assert_quiet(w, 200);
    events_fini(e, 10);
    mc_watch_close(w);
    /* A token of another shard count, or garbage, is refused. */
    mc_result res;
    o.resume_token = "1/4/0:1,1:1,2:1,3:1";
    cr_assert_eq(mc_watch_open(cl, NS, "job/", &o, &w, &res),
                 MC_INVALID_ARGUMENT);
    o.resume_token = "not a token";
    cr_assert_eq(mc_watch_open(cl, NS, "job/", &o, &w, &res),
                 MC_INVALID_ARGUMENT);
}

Test(watch, behind_the_ring_is_compacted_then_goes_on, .init = up_small_ring,
     .fini = down, .timeout = 60)
{
    mc_result first = put("hot/k", "v0", MC_TIER_DEFAULT);
    mc_watch_opts o = MC_WATCH_OPTS_INIT;
    o.after_rev = (int64_t)first.mod_rev;
    mc_watch *w = watch_open("hot/k", &o);
    mc_result last = first;
    for (int i = 1; i <= 10; i++) { /* more than the ring of 4 keeps */
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        last = put("hot/k", v, MC_TIER_DEFAULT);
    }
    mc_event *ev;
    size_t n;
    mc_result res;
    cr_assert_eq(mc_watch_next(w, 2000, &ev, &n, &res), MC_COMPACTED, "%s",
                 res.message);
    cr_assert_eq(n, 0);
    cr_assert_eq(res.mod_rev, last.mod_rev, "the current revision");
    cr_assert(strstr(res.message, "re-read") != NULL, "%s", res.message);
    /* The caller re-read (the value is v10); the watch goes on. */
    mc_result next = put("hot/k", "v11", MC_TIER_DEFAULT);
    mc_event e[1];
    cr_assert_eq(collect(w, e, 1), 1);
    cr_assert_str_eq((char *)e[0].record.value, "v11");
    cr_assert_eq(e[0].revision, next.mod_rev);
    events_fini(e, 1);
    mc_watch_close(w);
    /* From revision 0, long trimmed: COMPACTED at once. */
    o.after_rev = 0;
    w = watch_open("hot/k", &o);
    cr_assert_eq(mc_watch_next(w, 2000, &ev, &n, &res), MC_COMPACTED);
    mc_watch_close(w);
}

/* ---- wait ---- */

struct waiter {
    pthread_t thread;
    char key[64];
    mc_wait_opts opts;
    mc_err rv;
    mc_result res;
    mc_record *rec;
    int64_t woke_ns;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *waiter_main(void *arg)
{
    struct waiter *x = arg;
    x->rv = mc_wait(cl, NS, x->key, &x->opts, &x->rec, &x->res);
    x->woke_ns = now_ns();
    return NULL;
}

static void waiter_start(struct waiter *x, const char *key,
                         const mc_wait_opts *opts)
{
    memset(x, 0, sizeof *x);
    snprintf(x->key, sizeof x->key, "%s", key);
    x->opts = *opts;
    cr_assert_eq(pthread_create(&x->thread, NULL, waiter_main, x), 0);
    /* Give the wait time to park on the node. Were it not parked yet it
     * would find its condition true at once, and the figure would only
     * look better; the record's mod_rev tells the two apart. */
    harness_pause_ms(30);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

#define WAITS 20

NODE_TEST(wait, wakes_the_moment_the_write_applies)
{
    int64_t after_start[WAITS], after_ack[WAITS];
    for (int i = 0; i < WAITS; i++) {
        char key[32];
        snprintf(key, sizeof key, "gate/%d", i);
        mc_wait_opts o = MC_WAIT_OPTS_INIT;
        o.timeout_ms = 10000;
        struct waiter x;
        waiter_start(&x, key, &o);
        int64_t t0 = now_ns();
        mc_result r = put(key, "open", MC_TIER_DEFAULT);
        int64_t t1 = now_ns();
        pthread_join(x.thread, NULL);
        cr_assert_eq(x.rv, MC_OK, "%s", x.res.message);
        cr_assert_str_eq((char *)x.rec->value, "open");
        cr_assert_eq(x.rec->mod_rev, r.mod_rev);
        cr_assert_eq(x.res.mod_rev, r.mod_rev);
        mc_record_free(x.rec);
        after_start[i] = x.woke_ns - t0;
        after_ack[i] = x.woke_ns - t1;
        cr_assert_lt(after_start[i], 1000000000ll, "woke %lld ms after the "
                     "put", (long long)(after_start[i] / 1000000));
    }
    qsort(after_start, WAITS, sizeof after_start[0], cmp_i64);
    qsort(after_ack, WAITS, sizeof after_ack[0], cmp_i64);
    fprintf(stderr,
            "wait: woke after the put began: p50 %.3f ms, max %.3f ms; "
            "after the put's ack: p50 %.3f ms, max %.3f ms (%d waits)\n",
            after_start[WAITS / 2] / 1e6, after_start[WAITS - 1] / 1e6,
            after_ack[WAITS / 2] / 1e6, after_ack[WAITS - 1] / 1e6, WAITS);
}

NODE_TEST(wait, for_a_value_and_for_a_version)
{
    put("step", "draft", MC_TIER_DEFAULT);
    mc_wait_opts o = MC_WAIT_OPTS_INIT;
    o.cond = MC_WAIT_EQUALS;
    o.value = "done";
    o.value_len = 4;
    o.timeout_ms = 10000;
    struct waiter x;
    waiter_start(&x, "step", &o);
    put("step", "review", MC_TIER_DEFAULT);
    mc_result done = put("step", "done", MC_TIER_DEFAULT);
    put("step", "archived", MC_TIER_DEFAULT);
    pthread_join(x.thread, NULL);
    cr_assert_eq(x.rv, MC_OK, "%s", x.res.message);
    cr_assert_str_eq((char *)x.rec->value, "done", "the value when it held");
    cr_assert_eq(x.rec->version, 3);
    cr_assert_eq(x.rec->mod_rev, done.mod_rev);
    mc_record_free(x.rec);
    /* Version 4 already holds: at once. Version 6 after two more puts. */
    mc_wait_opts v = MC_WAIT_OPTS_INIT;
    v.cond = MC_WAIT_VERSION;
    v.version = 4;
    mc_record *rec;
    mc_result res;
    cr_assert_eq(mc_wait(cl, NS, "step", &v, &rec, &res), MC_OK, "%s",
                 res.message);
    cr_assert_eq(rec->version, 4);
    mc_record_free(rec);
    v.version = 6;
    v.timeout_ms = 10000;
    waiter_start(&x, "step", &v);
    put("step", "v5", MC_TIER_DEFAULT);
    put("step", "v6", MC_TIER_DEFAULT);
    pthread_join(x.thread, NULL);
    cr_assert_eq(x.rv, MC_OK, "%s", x.res.message);
    cr_assert_eq(x.rec->version, 6);
    mc_record_free(x.rec);
}

NODE_TEST(wait, times_out_with_a_clear_message)
{
    mc_wait_opts o = MC_WAIT_OPTS_INIT;
    o.timeout_ms = 300;
    mc_record *rec;
    mc_result res;
    int64_t t0 = harness_now_ms();
    cr_assert_eq(mc_wait(cl, NS, "never/there", &o, &rec, &res), MC_TIMEOUT);
    int64_t took = harness_now_ms() - t0;
    cr_assert_null(rec);
    cr_assert_str_eq(res.message, "never/there did not exist within 300 ms");
    cr_assert_geq(took, 300);
    cr_assert_lt(took, 3000);
    put("there", "1", MC_TIER_DEFAULT);
    o.cond = MC_WAIT_VERSION;
    o.version = 5;
    cr_assert_eq(mc_wait(cl, NS, "there", &o, &rec, &res), MC_TIMEOUT);
    cr_assert(strstr(res.message, "did not reach version 5 within 300 ms "
                                  "(it is at version 1)") != NULL,
              "%s", res.message);
    o.timeout_ms = MC_WATCH_WAIT_MS_MAX + 1;
    cr_assert_eq(mc_wait(cl, NS, "there", &o, &rec, &res),
                 MC_INVALID_ARGUMENT);
}

/* ---- watch across a leader kill ---- */

#define NODES 3
#define KEYS SHARDS
#define WATCH_VERSIONS_MAX 100000

static struct mc_node_proc nodes[NODES];

struct kill_writer {
    mc_client *c;
    char keys[KEYS][64];
    atomic_bool stop;
    atomic_uint puts;
};

static void *kill_writer_main(void *arg)
{
    struct kill_writer *x = arg;
    for (unsigned i = 0; !atomic_load(&x->stop); i++) {
        const char *key = x->keys[i % KEYS];
        char value[32];
        snprintf(value, sizeof value, "n%u", i); /* unique: a counter */
        mc_result res;
        mc_err rv = mc_put(x->c, NS, key, value, strlen(value), NULL, &res);
        cr_assert(rv == MC_OK || rv == MC_TIMEOUT || rv == MC_UNAVAILABLE,
                  "put %s: %s %s", key, mc_errname(rv), res.message);
        atomic_fetch_add(&x->puts, 1);
    }
    return NULL;
}

/* What the watcher saw of one key. */
struct seen {
    uint64_t versions[WATCH_VERSIONS_MAX];
    size_t n;
    long last_counter;
};

static struct seen seen[KEYS];

static int key_index(const struct kill_writer *x, const char *key)
{
    for (int k = 0; k < KEYS; k++) {
        if (strcmp(x->keys[k], key) == 0) {
            return k;
        }
    }
    return -1;
}

/* Take a batch: each event once, per key in version order, its counter
 * value growing. */
static void seen_add(const struct kill_writer *x, const mc_event *ev,
                     size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int k = key_index(x, ev[i].record.key);
        cr_assert_geq(k, 0, "unexpected key %s", ev[i].record.key);
        cr_assert_eq(ev[i].type, MC_EVENT_PUT);
        struct seen *s = &seen[k];
        cr_assert_lt(s->n, WATCH_VERSIONS_MAX);
        s->versions[s->n++] = ev[i].record.version;
        long counter = strtol((const char *)ev[i].record.value + 1, NULL, 10);
        cr_assert_gt(counter, s->last_counter, "%s: value n%ld after n%ld",
                     ev[i].record.key, counter, s->last_counter);
        s->last_counter = counter;
    }
}

static int shard_leader(mc_client *c, uint32_t shard)
{
    mc_status *st;
    mc_result res;
    int leader = -1;
    if (mc_status_get(c, &st, &res) == MC_OK) {
        for (size_t k = 0; k < st->n_shards; k++) {
            if (st->shards[k].id == shard && st->shards[k].leader_id != 0) {
                leader = (int)st->shards[k].leader_id;
            }
        }
        mc_status_free(st);
    }
    return leader;
}

Test(watch, leader_kill_misses_nothing_and_repeats_nothing,
     .fini = harness_fini, .timeout = 120)
{
    cr_assert_eq(harness_cluster_start(nodes, NODES, NULL), 0);
    for (unsigned i = 0; i < NODES; i++) {
        cr_assert_eq(harness_node_wait_ready(&nodes[i], HARNESS_READY_MS), 0);
    }
    char eps[512] = "";
    for (unsigned i = 0; i < NODES; i++) {
        strncat(eps, i ? "," : "", sizeof eps - strlen(eps) - 1);
        strncat(eps, nodes[i].url, sizeof eps - strlen(eps) - 1);
    }
    static struct kill_writer x;
    memset(&x, 0, sizeof x);
    memset(seen, 0, sizeof seen);
    x.c = client_for(eps, 5000);
    for (uint32_t s = 0; s < KEYS; s++) {
        harness_key_in_shard(NS, SHARDS, "kill/k", s, x.keys[s],
                             sizeof x.keys[s]);
        seen[s].last_counter = -1;
    }
    mc_client *wc = client_for(eps, 5000);
    mc_client *saved = cl;
    cl = wc;
    mc_watch_opts o = MC_WATCH_OPTS_INIT;
    o.prefix = true;
    mc_watch *w = watch_open("kill/", &o);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, kill_writer_main, &x), 0);

    /* The victim: the leader of shard 0, once leaders have spread. */
    int victim = -1;
    int64_t t0 = harness_now_ms();
    unsigned reopens = 0, errors = 0;
    bool killed = false;
    char token[4096];
    while (harness_now_ms() - t0 < 6000) {
        mc_event *ev;
        size_t n;
        mc_result res;
        mc_err rv = mc_watch_next(w, 200, &ev, &n, &res);
        if (rv == MC_OK) {
            seen_add(&x, ev, n);
            mc_events_free(ev, n);
        } else {
            cr_assert_eq(rv, MC_UNAVAILABLE, "%s: %s", mc_errname(rv),
                         res.message);
            errors++;
        }
        if (!killed && harness_now_ms() - t0 > 1500) {
            victim = shard_leader(wc, 0);
            cr_assert_geq(victim, 1, "shard 0 has no leader");
            cr_assert_eq(harness_node_stop(&nodes[victim - 1], SIGKILL),
                         128 + SIGKILL);
            killed = true;
            fprintf(stderr, "watch: killed node %d (leader of shard 0) "
                    "after %u puts\n", victim, atomic_load(&x.puts));
        }
        if (rv != MC_OK || (harness_now_ms() - t0) / 1000 > reopens) {
            /* As an agent that restarts would: go on from the token. */
            snprintf(token, sizeof token, "%s", mc_watch_token(w));
            mc_watch_close(w);
            o.resume_token = token;
            w = watch_open("kill/", &o);
            reopens++;
        }
    }
    atomic_store(&x.stop, true);
    pthread_join(th, NULL);
    /* The final version of each key, then the watcher catches up. */
    uint64_t final[KEYS];
    for (int k = 0; k < KEYS; k++) {
        mc_record *rec;
        mc_result res;
        cr_assert_eq(mc_get(x.c, NS, x.keys[k], NULL, &rec, &res), MC_OK,
                     "%s", res.message);
        final[k] = rec->version;
        mc_record_free(rec);
    }
    for (int64_t deadline = harness_now_ms() + 20000;
         harness_now_ms() < deadline;) {
        bool all = true;
        for (int k = 0; k < KEYS; k++) {
            all = all && seen[k].n >= final[k];
        }
        if (all) {
            break;
        }
        mc_event *ev;
        size_t n;
        mc_result res;
        mc_err rv = mc_watch_next(w, 500, &ev, &n, &res);
        if (rv == MC_OK) {
            seen_add(&x, ev, n);
            mc_events_free(ev, n);
        }
    }
    assert_quiet(w, 300);
    unsigned total = 0;
    for (int k = 0; k < KEYS; k++) {
        cr_assert_eq(seen[k].n, final[k], "%s: saw %zu versions, it is at %llu",
                     x.keys[k], seen[k].n, (unsigned long long)final[k]);
        for (size_t i = 0; i < seen[k].n; i++) {
            cr_assert_eq(seen[k].versions[i], i + 1,
                         "%s: event %zu is version %llu", x.keys[k], i,
                         (unsigned long long)seen[k].versions[i]);
        }
        total += (unsigned)seen[k].n;
    }
    fprintf(stderr, "watch: %u events of %d keys in every shard, each once "
            "and in order, across the kill of node %d (%u reopens from the "
            "token, %u UNAVAILABLE answers)\n", total, KEYS, victim, reopens,
            errors);
    cr_assert_gt(total, 100);
    mc_watch_close(w);
    mc_client_close(x.c);
    cl = saved;
    mc_client_close(wc);
}
