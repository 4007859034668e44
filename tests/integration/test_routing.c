/* The client's shard map against a real cluster: three memcoord processes
 * on loopback, 8 shards of 3 replicas, leaders spread over the nodes.
 *
 *   - A client opened with node 1 alone learns the map and then sends each
 *     request straight to its shard's leader: with node 1 stopped
 *     (SIGSTOP), requests for shards that nodes 2 and 3 lead still finish
 *     in milliseconds, and a shard node 1 led is found again at its new
 *     leader, through members the caller never listed.
 *   - Killing a shard's leader: a client opened with the dead node alone
 *     writes to that shard again within 3 s, and writes with expected
 *     version 0 on fresh keys, running across the failover, each end OK or
 *     TIMEOUT (never a CONFLICT with their own retry) and apply once.
 *   - A serializable read goes to the first replica the caller listed, so
 *     it is served while the shard's leader and the other listed node are
 *     stopped.
 * One-node behaviour is covered by test_client.c, whose node is a cluster
 * of one. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "memcoord.h"
#include "proto/proto.h"
#include "tests/lib/harness.h"

#define NODES 3
#define SHARDS 8
#define NS "routing"
/* A request that goes straight to a live leader on loopback takes well
 * under a millisecond; one that went through the stopped node would wait
 * for its reply (MC_CLIENT_REPLY_WAIT_MS, 2 s) first. */
#define DIRECT_MS_MAX 250
#define FAILOVER_MS_MAX 3000
#define SETTLE_MS 30000
#define WRITES_MAX 20000

static struct mc_node_proc nodes[NODES];

static mc_client *client_of(const char *endpoints, int timeout_ms)
{
    mc_options o = {.timeout_ms = timeout_ms};
    mc_client *c;
    mc_result res;
    cr_assert_eq(mc_client_open(endpoints, &o, &c, &res), MC_OK, "%s",
                 res.message);
    return c;
}


/* The leader of each shard (index into nodes[], or -1), as each live node
 * says of itself; true when every shard is led by its preferred leader
 * (the first of its replicas), where leadership stays put. */
static bool leaders_settled(int lead[SHARDS])
{
    bool settled = true;
    for (uint32_t s = 0; s < SHARDS; s++) {
        lead[s] = -1;
    }
    for (unsigned i = 0; i < NODES; i++) {
        if (nodes[i].pid == 0) {
            continue;
        }
        mc_client *c = client_of(nodes[i].url, 1000);
        mc_status *st;
        mc_result res;
        if (mc_status_get(c, &st, &res) == MC_OK) {
            for (size_t k = 0; k < st->n_shards; k++) {
                const mc_shard_status *sh = &st->shards[k];
                if (sh->is_leader && sh->id < SHARDS) {
                    lead[sh->id] = (int)i;
                    settled = settled && sh->n_replicas > 0 &&
                              sh->replicas[0] == st->node_id;
                }
            }
            mc_status_free(st);
        }
        mc_client_close(c);
    }
    for (uint32_t s = 0; s < SHARDS; s++) {
        settled = settled && lead[s] >= 0;
    }
    return settled;
}

static void start_settled_cluster(int lead[SHARDS])
{
    cr_assert_eq(harness_cluster_start(nodes, NODES, NULL), 0);
    for (unsigned i = 0; i < NODES; i++) {
        cr_assert_eq(harness_node_wait_ready(&nodes[i], HARNESS_READY_MS), 0,
                     "node %u not ready", i + 1);
    }
    int64_t deadline = harness_now_ms() + SETTLE_MS;
    while (!leaders_settled(lead)) {
        cr_assert_lt(harness_now_ms(), deadline, "leaders never settled");
        harness_pause_ms(100);
    }
}

static int64_t timed_put(mc_client *c, const char *key, mc_err *rv,
                         mc_result *res)
{
    int64_t t0 = harness_now_ms();
    *rv = mc_put(c, NS, key, key, strlen(key), NULL, res);
    return harness_now_ms() - t0;
}

/* ---- straight to the leader ---- */

Test(routing, requests_go_straight_to_the_leader, .fini = harness_fini,
     .timeout = 120)
{
    int lead[SHARDS];
    start_settled_cluster(lead);
    mc_client *c = client_of(nodes[0].url, 5000);
    /* Learn the map: one write per shard. */
    for (uint32_t s = 0; s < SHARDS; s++) {
        char key[64];
        harness_key_in_shard(NS, SHARDS, "warm", s, key, sizeof key);
        mc_result res;
        mc_err rv;
        timed_put(c, key, &rv, &res);
        cr_assert_eq(rv, MC_OK, "warm %s: %s", key, res.message);
    }
    cr_assert(leaders_settled(lead), "leadership moved during the test");

    /* Node 1 is the only endpoint the client was given. */
    cr_assert_eq(kill(nodes[0].pid, SIGSTOP), 0);
    int64_t worst_ms = 0;
    unsigned direct = 0;
    for (uint32_t s = 0; s < SHARDS; s++) {
        if (lead[s] == 0) {
            continue;
        }
        char key[64];
        harness_key_in_shard(NS, SHARDS, "direct", s, key, sizeof key);
        mc_result res;
        mc_err rv;
        int64_t ms = timed_put(c, key, &rv, &res);
        cr_assert_eq(rv, MC_OK, "put %s (shard %u, led by node %d) with node 1 "
                     "stopped: %s", key, s, lead[s] + 1, res.message);
        cr_assert_leq(ms, DIRECT_MS_MAX, "put to shard %u took %lld ms", s,
                      (long long)ms);
        mc_record *rec;
        int64_t t0 = harness_now_ms();
        cr_assert_eq(mc_get(c, NS, key, NULL, &rec, &res), MC_OK, "%s",
                     res.message);
        mc_record_free(rec);
        ms = ms > harness_now_ms() - t0 ? ms : harness_now_ms() - t0;
        worst_ms = ms > worst_ms ? ms : worst_ms;
        direct++;
    }
    cr_assert_geq(direct, 4, "nodes 2 and 3 lead too few shards");
    fprintf(stderr, "routing: node 1 stopped; %u shards led by nodes 2 and 3 "
                    "served directly, slowest put or get %lld ms\n",
            direct, (long long)worst_ms);

    /* A shard node 1 led: its followers elect a new leader, and the
     * client finds it through the members it learned. */
    int s1 = -1;
    for (uint32_t s = 0; s < SHARDS && s1 < 0; s++) {
        s1 = lead[s] == 0 ? (int)s : -1;
    }
    cr_assert_geq(s1, 0);
    char key[64];
    harness_key_in_shard(NS, SHARDS, "moved", (uint32_t)s1, key, sizeof key);
    mc_result res;
    mc_err rv;
    int64_t ms = timed_put(c, key, &rv, &res);
    cr_assert_eq(rv, MC_OK, "put to shard %d after its leader stopped: %s", s1,
                 res.message);
    fprintf(stderr, "routing: shard %d (led by the stopped node 1) took a "
                    "write at its new leader after %lld ms\n",
            s1, (long long)ms);
    cr_assert_eq(kill(nodes[0].pid, SIGCONT), 0);
    mc_client_close(c);
}

/* ---- failover ---- */

struct writer {
    mc_client *c;
    uint32_t shard;
    atomic_bool stop;
    atomic_uint n; /* writes done: the main thread watches it grow */
    char keys[WRITES_MAX][24];
    mc_err rv[WRITES_MAX];
    uint64_t version[WRITES_MAX];
    int64_t ms[WRITES_MAX];
};

static struct writer W;

/* Fresh keys of one shard, each put once with expected version 0: a retry
 * that applied the write again would see version 1 and say CONFLICT. */
static void *writer_main(void *arg)
{
    (void)arg;
    unsigned next = 0;
    for (unsigned i = 0; i < WRITES_MAX && !atomic_load(&W.stop); i++) {
        char key[24];
        do {
            snprintf(key, sizeof key, "once/%05u", next++);
        } while (proto_shard_of_slot(
                     proto_slot((const uint8_t *)NS, strlen(NS),
                                (const uint8_t *)key, strlen(key)),
                     SHARDS) != W.shard);
        snprintf(W.keys[i], sizeof W.keys[i], "%s", key);
        mc_put_opts o = MC_PUT_OPTS_INIT;
        o.expect_version = 0;
        mc_result res;
        int64_t t0 = harness_now_ms();
        W.rv[i] = mc_put(W.c, NS, key, "v", 1, &o, &res);
        W.ms[i] = harness_now_ms() - t0;
        W.version[i] = res.version;
        atomic_store(&W.n, i + 1);
    }
    return NULL;
}

/* Every write ended OK or TIMEOUT (UNAVAILABLE: it never reached a node),
 * and each one present was applied exactly once. */
static void writes_check(const char *endpoints, unsigned *retried_ok)
{
    mc_client *c = client_of(endpoints, 5000);
    *retried_ok = 0;
    for (unsigned i = 0; i < W.n; i++) {
        mc_err rv = W.rv[i];
        cr_assert(rv == MC_OK || rv == MC_TIMEOUT || rv == MC_UNAVAILABLE,
                  "put %s ended %s", W.keys[i], mc_errname(rv));
        mc_record *rec = NULL;
        mc_result res;
        mc_err got = mc_get(c, NS, W.keys[i], NULL, &rec, &res);
        cr_assert(got == MC_OK || got == MC_NOT_FOUND, "get %s: %s",
                  W.keys[i], res.message);
        if (rv == MC_OK) {
            cr_assert_eq(W.version[i], 1, "put %s answered version %llu",
                         W.keys[i], (unsigned long long)W.version[i]);
            cr_assert_eq(got, MC_OK, "acknowledged %s lost", W.keys[i]);
            *retried_ok += W.ms[i] >= 100;
        }
        if (rv == MC_UNAVAILABLE) {
            cr_assert_eq(got, MC_NOT_FOUND, "%s applied though no node took "
                         "it", W.keys[i]);
        }
        if (got == MC_OK) {
            cr_assert_eq(rec->version, 1, "%s applied twice", W.keys[i]);
            mc_record_free(rec);
        }
    }
    mc_client_close(c);
}

Test(routing, a_killed_leader_is_found_again_and_writes_apply_once,
     .fini = harness_fini, .timeout = 150)
{
    int lead[SHARDS];
    start_settled_cluster(lead);
    const unsigned victim = 1; /* node 2 */
    int shard = -1;
    for (uint32_t s = 0; s < SHARDS && shard < 0; s++) {
        shard = lead[s] == (int)victim ? (int)s : -1;
    }
    cr_assert_geq(shard, 0, "node 2 leads no shard");
    char all[512], survivors[512];
    snprintf(all, sizeof all, "%s,%s,%s", nodes[0].url, nodes[1].url,
             nodes[2].url);
    snprintf(survivors, sizeof survivors, "%s,%s", nodes[0].url, nodes[2].url);

    /* The probe knows only the node about to die; the writer all three. */
    mc_client *probe = client_of(nodes[victim].url, 5000);
    char key[64];
    harness_key_in_shard(NS, SHARDS, "probe", (uint32_t)shard, key, sizeof key);
    mc_result res;
    cr_assert_eq(mc_put(probe, NS, key, "x", 1, NULL, &res), MC_OK, "%s",
                 res.message);
    W.c = client_of(all, 5000);
    W.shard = (uint32_t)shard;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, writer_main, NULL), 0);
    while (atomic_load(&W.n) < 50) {
        harness_pause_ms(5);
    }

    cr_assert_eq(harness_node_stop(&nodes[victim], SIGKILL), 128 + SIGKILL);
    int64_t t0 = harness_now_ms();
    while (mc_put(probe, NS, key, "x", 1, NULL, &res) != MC_OK) {
        cr_assert_lt(harness_now_ms() - t0, 10000, "shard %d never failed over: %s",
                     shard, res.message);
    }
    int64_t failover_ms = harness_now_ms() - t0;
    unsigned n_at_failover = atomic_load(&W.n);
    while (atomic_load(&W.n) < n_at_failover + 200) {
        harness_pause_ms(10);
    }
    atomic_store(&W.stop, true);
    pthread_join(th, NULL);

    int64_t gap_ms = 0;
    for (unsigned i = 0; i < W.n; i++) {
        gap_ms = W.ms[i] > gap_ms ? W.ms[i] : gap_ms;
    }
    unsigned retried_ok;
    writes_check(survivors, &retried_ok);
    fprintf(stderr, "routing: killed node 2 (leader of shard %d): a client "
                    "that knew only node 2 wrote to the shard again after "
                    "%lld ms; %u writes with expected version 0 across the "
                    "failover, the slowest %lld ms, %u of them retried to "
                    "OK, each applied once\n",
            shard, (long long)failover_ms, W.n, (long long)gap_ms,
            retried_ok);
    cr_assert_leq(failover_ms, FAILOVER_MS_MAX);
    cr_assert_geq(retried_ok, 1, "no write ran across the failover");
    mc_client_close(probe);
    mc_client_close(W.c);
}

/* ---- serializable reads ---- */

#define READERS 8

Test(routing, serializable_reads_come_from_the_first_listed_replica,
     .fini = harness_fini, .timeout = 120)
{
    int lead[SHARDS];
    start_settled_cluster(lead);
    int shard = -1;
    for (uint32_t s = 0; s < SHARDS && shard < 0; s++) {
        shard = lead[s] == 0 ? (int)s : -1;
    }
    cr_assert_geq(shard, 0, "node 1 leads no shard");
    char eps[512], key[64];
    snprintf(eps, sizeof eps, "%s,%s", nodes[2].url, nodes[1].url);
    harness_key_in_shard(NS, SHARDS, "ser", (uint32_t)shard, key, sizeof key);
    /* Several clients: each one that ignored the order of its endpoints
     * would start at node 2 half of the time. */
    mc_client *c[READERS];
    mc_result res;
    mc_read_opts ser = {.serializable = true};
    mc_record *rec = NULL;
    for (unsigned i = 0; i < READERS; i++) {
        c[i] = client_of(eps, 5000);
        cr_assert_eq(mc_put(c[i], NS, key, "v", 1, NULL, &res), MC_OK, "%s",
                     res.message);
        /* Node 3's replica applies the write a moment later. */
        for (int64_t deadline = harness_now_ms() + 5000;
             mc_get(c[i], NS, key, &ser, &rec, &res) != MC_OK; harness_pause_ms(10)) {
            cr_assert_lt(harness_now_ms(), deadline, "node 3 never saw %s", key);
        }
        mc_record_free(rec);
    }

    /* The leader and node 2 stop: no quorum, and node 3 alone answers. */
    cr_assert_eq(kill(nodes[0].pid, SIGSTOP), 0);
    cr_assert_eq(kill(nodes[1].pid, SIGSTOP), 0);
    int64_t worst_ms = 0;
    for (unsigned i = 0; i < READERS; i++) {
        int64_t t0 = harness_now_ms();
        cr_assert_eq(mc_get(c[i], NS, key, &ser, &rec, &res), MC_OK, "%s",
                     res.message);
        int64_t ms = harness_now_ms() - t0;
        cr_assert_geq(rec->version, 1);
        mc_record_free(rec);
        cr_assert_leq(ms, DIRECT_MS_MAX, "reader %u took %lld ms", i,
                      (long long)ms);
        worst_ms = ms > worst_ms ? ms : worst_ms;
    }
    fprintf(stderr, "routing: serializable reads of shard %d from node 3 "
                    "with nodes 1 (its leader) and 2 stopped: slowest %lld "
                    "ms\n",
            shard, (long long)worst_ms);
    cr_assert_eq(kill(nodes[0].pid, SIGCONT), 0);
    cr_assert_eq(kill(nodes[1].pid, SIGCONT), 0);
    for (unsigned i = 0; i < READERS; i++) {
        mc_client_close(c[i]);
    }
}
