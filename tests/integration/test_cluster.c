/* A real cluster: three memcoord processes on loopback, 8 shards of 3
 * replicas. Any node serves any request (forwarding to the shard leader);
 * leaders spread over the nodes; killing the node that leads a shard gets
 * a new leader that accepts writes within 3 s, while a writer runs and
 * loses no acknowledged write; a killed node restarts and catches up. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "memcoord.h"
#include "proto/proto.h"
#include "tests/lib/harness.h"

#define NODES 3
#define SHARDS 8
#define NS "cluster"
#define WRITES_MAX 20000
#define FAILOVER_MS_MAX 3000

static struct mc_node_proc nodes[NODES];

static void start_cluster(void)
{
    cr_assert_eq(harness_cluster_start(nodes, NODES, NULL), 0);
    for (unsigned i = 0; i < NODES; i++) {
        cr_assert_eq(harness_node_wait_ready(&nodes[i], HARNESS_READY_MS), 0,
                     "node %u not ready", i + 1);
    }
}

static mc_client *client_of(const char *endpoints, int timeout_ms)
{
    mc_options o = {.timeout_ms = timeout_ms};
    mc_client *c;
    mc_result res;
    cr_assert_eq(mc_client_open(endpoints, &o, &c, &res), MC_OK, "%s",
                 res.message);
    return c;
}

static void all_endpoints(char *buf, size_t len)
{
    buf[0] = '\0';
    for (unsigned i = 0; i < NODES; i++) {
        if (i > 0) {
            strncat(buf, ",", len - strlen(buf) - 1);
        }
        strncat(buf, nodes[i].url, len - strlen(buf) - 1);
    }
}


Test(cluster, every_node_serves_every_shard, .fini = harness_fini,
     .timeout = 90)
{
    start_cluster();
    mc_client *via[NODES];
    for (unsigned i = 0; i < NODES; i++) {
        via[i] = client_of(nodes[i].url, 5000);
    }
    /* Write each shard's key through each node, read it through all. */
    for (uint32_t s = 0; s < SHARDS; s++) {
        for (unsigned i = 0; i < NODES; i++) {
            char prefix[32], key[64];
            snprintf(prefix, sizeof prefix, "spread/n%u", i);
            harness_key_in_shard(NS, SHARDS, prefix, s, key, sizeof key);
            mc_result res;
            cr_assert_eq(mc_put(via[i], NS, key, key, strlen(key), NULL, &res),
                         MC_OK, "put %s via node %u: %s", key, i + 1,
                         res.message);
            for (unsigned j = 0; j < NODES; j++) {
                mc_record *rec;
                cr_assert_eq(mc_get(via[j], NS, key, NULL, &rec, &res), MC_OK,
                             "get %s via node %u: %s", key, j + 1, res.message);
                cr_assert_eq(rec->value_len, strlen(key));
                mc_record_free(rec);
            }
        }
    }
    /* The list through any node is the sorted union of every shard. */
    mc_list_opts lo = {.limit = MC_LIST_PAGE_MAX, .keys_only = true};
    mc_page *page;
    mc_result res;
    cr_assert_eq(mc_list(via[1], NS, "spread/", &lo, &page, &res), MC_OK, "%s",
                 res.message);
    cr_assert_eq(page->n, SHARDS * NODES);
    for (size_t k = 1; k < page->n; k++) {
        cr_assert_lt(strcmp(page->records[k - 1].key, page->records[k].key), 0);
    }
    mc_page_free(page);
    for (unsigned i = 0; i < NODES; i++) {
        mc_client_close(via[i]);
    }
}

/* ---- failover under a writer ---- */

struct writer {
    mc_client *c;
    atomic_bool stop;
    atomic_uint acked;
    unsigned n;
    bool ok[WRITES_MAX];
};

static struct writer W;

static void *writer_main(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < WRITES_MAX && !atomic_load(&W.stop); i++) {
        char key[32];
        snprintf(key, sizeof key, "w/%05u", i);
        mc_result res;
        mc_err rv = mc_put(W.c, NS, key, key, strlen(key), NULL, &res);
        W.ok[i] = rv == MC_OK;
        cr_assert(rv == MC_OK || rv == MC_TIMEOUT || rv == MC_UNAVAILABLE,
                  "put %s: %s %s", key, mc_errname(rv), res.message);
        W.n = i + 1;
        atomic_fetch_add(&W.acked, rv == MC_OK);
    }
    return NULL;
}

/* The node (index into nodes[]) that leads shard now, from the status of
 * the first running node that knows; -1 when none knows. */
static int leader_of(uint32_t shard)
{
    for (unsigned i = 0; i < NODES; i++) {
        if (nodes[i].pid == 0) {
            continue;
        }
        mc_client *c = client_of(nodes[i].url, 2000);
        mc_status *st;
        mc_result res;
        int led = -1;
        if (mc_status_get(c, &st, &res) == MC_OK) {
            for (size_t k = 0; k < st->n_shards; k++) {
                uint64_t id = st->shards[k].leader_id;
                if (st->shards[k].id == shard && id >= 1 && id <= NODES) {
                    led = (int)id - 1;
                }
            }
            mc_status_free(st);
        }
        mc_client_close(c);
        if (led >= 0) {
            return led;
        }
    }
    return -1;
}

/* Kill -9 the leader of each shard in turn while a writer runs; restart it
 * before the next kill. */
Test(cluster, leader_kill_fails_over_and_loses_nothing, .fini = harness_fini,
     .timeout = 240)
{
    start_cluster();
    char eps[512];
    all_endpoints(eps, sizeof eps);
    W.c = client_of(eps, 5000);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, writer_main, NULL), 0);

    int64_t failover_ms[SHARDS];
    for (uint32_t shard = 0; shard < SHARDS; shard++) {
        int victim = -1;
        for (int64_t deadline = harness_now_ms() + 20000;
             victim < 0 && harness_now_ms() < deadline; harness_pause_ms(50)) {
            victim = leader_of(shard);
        }
        cr_assert_geq(victim, 0, "shard %u has no leader", shard);
        char key[64], others[512] = "";
        harness_key_in_shard(NS, SHARDS, "probe", shard, key, sizeof key);
        for (int i = 0; i < NODES; i++) {
            if (i != victim) {
                strncat(others, others[0] ? "," : "", sizeof others - 1);
                strncat(others, nodes[i].url, sizeof others - strlen(others) - 1);
            }
        }
        mc_client *probe = client_of(others, 1000);
        cr_assert_eq(harness_node_stop(&nodes[victim], SIGKILL), 128 + SIGKILL);
        int64_t t0 = harness_now_ms();
        mc_result res;
        while (mc_put(probe, NS, key, "x", 1, NULL, &res) != MC_OK) {
            cr_assert_lt(harness_now_ms() - t0, 10000, "shard %u never failed over",
                         shard);
        }
        failover_ms[shard] = harness_now_ms() - t0;
        mc_client_close(probe);
        fprintf(stderr, "cluster: killed node %d (leader of shard %u): writes "
                        "to the shard accepted again after %lld ms\n",
                victim + 1, shard, (long long)failover_ms[shard]);
        cr_assert_eq(harness_node_restart(&nodes[victim]), 0);
        cr_assert_eq(harness_node_wait_ready(&nodes[victim], HARNESS_READY_MS), 0);
    }
    atomic_store(&W.stop, true);
    pthread_join(th, NULL);
    int64_t worst = 0;
    for (uint32_t s = 0; s < SHARDS; s++) {
        worst = failover_ms[s] > worst ? failover_ms[s] : worst;
    }
    cr_assert_leq(worst, FAILOVER_MS_MAX, "a failover took %lld ms",
                  (long long)worst);

    /* Every acknowledged write is there, applied once, on every node. */
    unsigned acked = 0;
    for (unsigned i = 0; i < NODES; i++) {
        mc_client *c = client_of(nodes[i].url, 5000);
        for (unsigned k = 0; k < W.n; k++) {
            char key[32];
            snprintf(key, sizeof key, "w/%05u", k);
            mc_record *rec = NULL;
            mc_result res;
            mc_read_opts ro = {.serializable = false};
            mc_err rv = mc_get(c, NS, key, &ro, &rec, &res);
            if (W.ok[k]) {
                cr_assert_eq(rv, MC_OK, "acknowledged %s lost (via node %u): "
                             "%s", key, i + 1, res.message);
                acked += i == 0;
            }
            if (rv == MC_OK) {
                cr_assert_eq(rec->version, 1, "%s applied twice", key);
                mc_record_free(rec);
            }
        }
        mc_client_close(c);
    }
    fprintf(stderr, "cluster: %u acknowledged writes across %u leader kills "
                    "(one per shard), all present; slowest failover %lld ms\n",
            acked, SHARDS, (long long)worst);
    cr_assert_gt(acked, 100);
    mc_client_close(W.c);
}

/* A whole-cluster stop (SIGTERM to every node) and start: every write of
 * every tier is still there, and the cluster serves again. */
Test(cluster, whole_cluster_restart_keeps_every_tier, .fini = harness_fini,
     .timeout = 90)
{
    start_cluster();
    char eps[512];
    all_endpoints(eps, sizeof eps);
    mc_client *c = client_of(eps, 5000);
    const unsigned n = 90;
    for (unsigned i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "restart/%03u", i);
        mc_put_opts po = MC_PUT_OPTS_INIT;
        po.tier = (mc_tier)(MC_TIER_SHORT + i % 3);
        mc_result res;
        cr_assert_eq(mc_put(c, NS, key, key, strlen(key), &po, &res), MC_OK,
                     "%s", res.message);
    }
    mc_client_close(c);
    for (unsigned i = 0; i < NODES; i++) {
        cr_assert_eq(harness_node_stop(&nodes[i], SIGTERM), 0);
    }
    for (unsigned i = 0; i < NODES; i++) {
        cr_assert_eq(harness_node_restart(&nodes[i]), 0);
    }
    for (unsigned i = 0; i < NODES; i++) {
        cr_assert_eq(harness_node_wait_ready(&nodes[i], HARNESS_READY_MS), 0);
    }
    c = client_of(eps, 5000);
    for (unsigned i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "restart/%03u", i);
        mc_record *rec;
        mc_result res;
        cr_assert_eq(mc_get(c, NS, key, NULL, &rec, &res), MC_OK, "%s lost: %s",
                     key, res.message);
        cr_assert_eq(rec->tier, (mc_tier)(MC_TIER_SHORT + i % 3));
        cr_assert_eq(rec->version, 1);
        mc_record_free(rec);
    }
    mc_result res;
    cr_assert_eq(mc_put(c, NS, "restart/after", "x", 1, NULL, &res), MC_OK,
                 "%s", res.message);
    mc_client_close(c);
}

/* memcoordctl shard transfer-leader moves a shard's leadership. */
Test(cluster, ctl_transfers_leadership, .fini = harness_fini, .timeout = 90)
{
    start_cluster();
    for (unsigned to = 1; to <= NODES; to++) {
        char to_s[8];
        snprintf(to_s, sizeof to_s, "%u", to);
        char *out = NULL, *err = NULL;
        int64_t deadline = harness_now_ms() + 10000;
        int rc;
        /* A transfer to a node that is still catching up is refused:
         * try again until the deadline. */
        while ((rc = harness_run_ctl(&nodes[0], NULL, &out, &err, "shard",
                                     "transfer-leader", "0", "--to", to_s,
                                     NULL)) != 0 &&
               harness_now_ms() < deadline) {
            free(out);
            free(err);
            harness_pause_ms(200);
        }
        cr_assert_eq(rc, 0, "transfer to %u: %s", to, err);
        cr_assert(strstr(out, "led by node") != NULL, "%s", out);
        char want[32];
        snprintf(want, sizeof want, "led by node %u", to);
        cr_assert(strstr(out, want) != NULL, "%s", out);
        free(out);
        free(err);
    }
    char *out = NULL, *err = NULL;
    cr_assert_eq(harness_run_ctl(&nodes[0], NULL, &out, &err, "shard",
                                 "transfer-leader", "0", "--to", "9", NULL),
                 1);
    cr_assert(strstr(err, "INVALID_ARGUMENT") != NULL, "%s", err);
    free(out);
    free(err);
}

/* A transfer to any node names the leader it moves away from, so that a
 * retry of one that completed does not move the leadership again: such a
 * request answers OK with the leader as it is. */
Test(cluster, retried_transfer_moves_leadership_once, .fini = harness_fini,
     .timeout = 90)
{
    start_cluster();
    int led = -1;
    for (int64_t deadline = harness_now_ms() + 10000;
         led < 0 && harness_now_ms() < deadline; harness_pause_ms(50)) {
        led = leader_of(0);
    }
    cr_assert_geq(led, 0, "shard 0 has no leader");
    uint64_t gone = (uint64_t)(led + 1) % NODES + 1; /* another node */
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_TRANSFER;
    req.has_shard = req.has_from_node = true;
    req.shard = 0;
    req.from_node = gone; /* "move it away from a node that leads no more" */
    /* To the leader itself: no forward (whose first connection may take
     * longer than a forward waits for one on a loaded machine). */
    Mcpb__Response *r = NULL;
    cr_assert_eq(harness_raw_request(nodes[led].url, &req, 5000, &r), 0);
    cr_assert_eq(r->code, MC_OK, "%s", r->message);
    cr_assert_eq(r->leader_id, (uint64_t)led + 1, "leader %llu",
                 (unsigned long long)r->leader_id);
    mcpb__response__free_unpacked(r, NULL);
    cr_assert_eq(leader_of(0), led, "the retry moved the leadership");
    /* The library's transfer to any node does move it, once. */
    mc_client *c = client_of(nodes[0].url, 10000);
    uint64_t now_led = 0;
    mc_result res;
    cr_assert_eq(mc_shard_transfer_leader(c, 0, 0, &now_led, &res), MC_OK,
                 "%s", res.message);
    cr_assert_neq(now_led, (uint64_t)led + 1);
    mc_client_close(c);
}

/* Every replica of every shard has applied the same entries and holds the
 * same state: equal applied index and equal state hash on all nodes. */
static bool replicas_agree(char *why, size_t why_len)
{
    mc_client *via[NODES];
    for (unsigned i = 0; i < NODES; i++) {
        via[i] = client_of(nodes[i].url, 2000);
    }
    bool agree = true;
    for (uint32_t s = 0; s < SHARDS && agree; s++) {
        uint64_t applied0 = 0, hash0 = 0;
        for (unsigned i = 0; i < NODES && agree; i++) {
            uint64_t applied, hash;
            mc_result res;
            if (mc_shard_hash(via[i], s, &applied, &hash, &res) != MC_OK) {
                snprintf(why, why_len, "shard %u on node %u: %.160s", s,
                         i + 1, res.message);
                agree = false;
            } else if (i == 0) {
                applied0 = applied, hash0 = hash;
            } else if (applied != applied0 || hash != hash0) {
                snprintf(why, why_len, "shard %u: node 1 at %llu/%016llx, "
                         "node %u at %llu/%016llx", s,
                         (unsigned long long)applied0, (unsigned long long)hash0,
                         i + 1, (unsigned long long)applied,
                         (unsigned long long)hash);
                agree = false;
            }
        }
    }
    for (unsigned i = 0; i < NODES; i++) {
        mc_client_close(via[i]);
    }
    return agree;
}

/* A follower killed while writes go on restarts, catches up from the log
 * and ends with the same state as the other replicas. */
Test(cluster, restarted_follower_catches_up_to_equal_state,
     .fini = harness_fini, .timeout = 90)
{
    start_cluster();
    char eps[512];
    all_endpoints(eps, sizeof eps);
    mc_client *c = client_of(eps, 5000);
    for (unsigned round = 0; round < 3; round++) {
        if (round == 1) { /* node 3 misses the second round */
            cr_assert_eq(harness_node_stop(&nodes[2], SIGKILL), 128 + SIGKILL);
        }
        for (unsigned i = 0; i < 200; i++) {
            char key[32];
            snprintf(key, sizeof key, "catchup/%u/%03u", round, i);
            mc_put_opts po = MC_PUT_OPTS_INIT;
            po.tier = (mc_tier)(MC_TIER_SHORT + i % 3);
            mc_result res;
            cr_assert_eq(mc_put(c, NS, key, key, strlen(key), &po, &res), MC_OK,
                         "%s", res.message);
        }
        if (round == 1) {
            cr_assert_eq(harness_node_restart(&nodes[2]), 0);
            cr_assert_eq(harness_node_wait_ready(&nodes[2], HARNESS_READY_MS), 0);
        }
    }
    mc_client_close(c);
    char why[256] = "";
    /* The verdict of the wait itself: asked once more, the replicas may
     * differ for an instant by an entry that changes no state (a new
     * leader's no-op as node 3 takes its shards back). */
    int64_t deadline = harness_now_ms() + 10000;
    bool agree;
    while (!(agree = replicas_agree(why, sizeof why)) &&
           harness_now_ms() < deadline) {
        harness_pause_ms(100);
    }
    cr_assert(agree, "replicas differ 10 s after the writes stopped: %s", why);
}

/* ---- a leader that steps down while linearizable reads queue ---- */

struct reader {
    pthread_t thread;
    mc_client *c;
    char key[64];
    atomic_bool *stop;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    while (!atomic_load(r->stop)) {
        mc_record *rec = NULL;
        mc_result res;
        if (mc_get(r->c, NS, r->key, NULL, &rec, &res) == MC_OK) {
            mc_record_free(rec);
        }
    }
    return NULL;
}

/* The followers of the shards node 1 leads are frozen: node 1 loses its
 * quorum and steps down while reads wait for barriers. raft 0.15 fails
 * the pending barrier while still reporting itself leader; the node
 * crashed when it asked raft for the next barrier from that callback. */
Test(cluster, leader_steps_down_under_reads_and_survives,
     .fini = harness_fini, .timeout = 90)
{
    start_cluster();
    int shard = -1;
    for (int64_t deadline = harness_now_ms() + 20000;
         shard < 0 && harness_now_ms() < deadline; harness_pause_ms(50)) {
        for (uint32_t s = 0; s < SHARDS && shard < 0; s++) {
            shard = leader_of(s) == 0 ? (int)s : -1;
        }
    }
    cr_assert_geq(shard, 0, "node 1 never led a shard");
    atomic_bool stop = false;
    enum { READERS = 4 };
    struct reader readers[READERS];
    for (unsigned i = 0; i < READERS; i++) {
        readers[i] = (struct reader){.c = client_of(nodes[0].url, 300),
                                     .stop = &stop};
        harness_key_in_shard(NS, SHARDS, "stepdown", (uint32_t)shard, readers[i].key,
                     sizeof readers[i].key);
        cr_assert_eq(pthread_create(&readers[i].thread, NULL, reader_main,
                                    &readers[i]), 0);
    }
    harness_pause_ms(200);
    kill(nodes[1].pid, SIGSTOP);
    kill(nodes[2].pid, SIGSTOP);
    harness_pause_ms(1500); /* several election timeouts of 300 ms */
    kill(nodes[1].pid, SIGCONT);
    kill(nodes[2].pid, SIGCONT);
    atomic_store(&stop, true);
    for (unsigned i = 0; i < READERS; i++) {
        pthread_join(readers[i].thread, NULL);
        mc_client_close(readers[i].c);
    }
    int wstatus;
    cr_assert_eq(waitpid(nodes[0].pid, &wstatus, WNOHANG), 0,
                 "node 1 died while stepping down (status %d)", wstatus);
    cr_assert_eq(harness_node_wait_ready(&nodes[0], HARNESS_READY_MS), 0);
    mc_client *c = client_of(nodes[0].url, 5000);
    mc_result res;
    cr_assert_eq(mc_put(c, NS, readers[0].key, "after", 5, NULL, &res), MC_OK,
                 "%s", res.message);
    mc_client_close(c);
}

/* A write that the leader proposed and then lost the leadership over may
 * still commit elsewhere: its answer is TIMEOUT (outcome unknown), never a
 * plain failure the caller could take as "not applied". */
Test(cluster, write_pending_at_step_down_is_unknown_not_failed,
     .fini = harness_fini, .timeout = 90)
{
    start_cluster();
    /* A shard node 1 leads and prefers (shard s prefers the (s mod N)+1-th
     * node): one it leads only until leaders spread over the nodes may be
     * handed on before the request gets there. */
    int shard = -1;
    for (int64_t deadline = harness_now_ms() + 20000;
         shard < 0 && harness_now_ms() < deadline; harness_pause_ms(50)) {
        for (uint32_t s = 0; s < SHARDS && shard < 0; s += NODES) {
            shard = leader_of(s) == 0 ? (int)s : -1;
        }
    }
    cr_assert_geq(shard, 0, "node 1 never led a shard it prefers");
    char key[64];
    harness_key_in_shard(NS, SHARDS, "stepdown-write", (uint32_t)shard, key,
                         sizeof key);
    kill(nodes[1].pid, SIGSTOP);
    kill(nodes[2].pid, SIGSTOP);
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_PUT;
    req.has_client_id = req.has_seq = req.has_ns = req.has_key = true;
    req.has_value = req.has_no_forward = true;
    req.client_id = 0x5eed;
    req.seq = 1;
    req.ns = (ProtobufCBinaryData){strlen(NS), (uint8_t *)NS};
    req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    req.value = (ProtobufCBinaryData){1, (uint8_t *)"x"};
    req.no_forward = true;
    Mcpb__Response *r = NULL;
    int rv = harness_raw_request(nodes[0].url, &req, 5000, &r);
    kill(nodes[1].pid, SIGCONT);
    kill(nodes[2].pid, SIGCONT);
    cr_assert_eq(rv, 0, "no answer from node 1 (%d)", rv);
    cr_assert_eq(r->code, MC_TIMEOUT, "answer %s: %s", mc_errname(r->code),
                 r->message);
    mcpb__response__free_unpacked(r, NULL);
}

/* ---- writes of one shard, proposed together ---- */

#define BATCH_THREADS 16
#define BATCH_WRITES 40

struct batch_writer {
    pthread_t thread;
    mc_client *c;
    unsigned id;
    uint64_t mod_revs[BATCH_WRITES];
    char keys[BATCH_WRITES][64];
    char failure[512]; /* a key (64) and a message (256) fit */
};

static void *batch_writer_main(void *arg)
{
    struct batch_writer *b = arg;
    for (unsigned i = 0; i < BATCH_WRITES && b->failure[0] == '\0'; i++) {
        mc_put_opts po = MC_PUT_OPTS_INIT;
        po.expect_version = 0;
        mc_result res;
        const char *key = b->keys[i];
        if (mc_put(b->c, NS, key, key, strlen(key), &po, &res) != MC_OK ||
            res.version != 1) {
            snprintf(b->failure, sizeof b->failure, "put %s: %s (version "
                     "%llu)", key, res.message,
                     (unsigned long long)res.version);
            break;
        }
        b->mod_revs[i] = res.mod_rev;
        /* A linearizable read right after: it rides on the entries
         * proposed with it, and must see this write. */
        mc_record *rec = NULL;
        if (mc_get(b->c, NS, key, NULL, &rec, &res) != MC_OK ||
            rec->mod_rev != b->mod_revs[i] ||
            strcmp((const char *)rec->value, key) != 0) {
            snprintf(b->failure, sizeof b->failure, "get %s after its put "
                     "at %llu: %s", key, (unsigned long long)b->mod_revs[i],
                     rec != NULL ? (const char *)rec->value : res.message);
        }
        mc_record_free(rec);
    }
    return NULL;
}

static int cmp_rev(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Writes that arrive at a shard leader in the same loop turn go to raft as
 * one proposal of many entries (node/replica.c); raft 0.15 calls back its
 * first entry only, so each is answered from the apply hook. Every write
 * must still get its own entry (its own mod_rev, the revision) and its own
 * answer, and a read issued after a write must see it. */
Test(cluster, writes_proposed_together_each_get_their_own_entry,
     .fini = harness_fini, .timeout = 90)
{
    start_cluster();
    char eps[512];
    all_endpoints(eps, sizeof eps);
    static struct batch_writer w[BATCH_THREADS];
    const uint32_t shard = 5;
    for (unsigned t = 0; t < BATCH_THREADS; t++) {
        w[t].c = client_of(eps, 10000);
        w[t].id = t;
        for (unsigned i = 0; i < BATCH_WRITES; i++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "batch/%u/%u", t, i);
            harness_key_in_shard(NS, SHARDS, prefix, shard, w[t].keys[i],
                                 sizeof w[t].keys[i]);
        }
    }
    for (unsigned t = 0; t < BATCH_THREADS; t++) {
        cr_assert_eq(pthread_create(&w[t].thread, NULL, batch_writer_main,
                                    &w[t]),
                     0);
    }
    static uint64_t all[BATCH_THREADS * BATCH_WRITES];
    size_t n = 0;
    for (unsigned t = 0; t < BATCH_THREADS; t++) {
        pthread_join(w[t].thread, NULL);
        cr_assert_eq(w[t].failure[0], '\0', "writer %u: %s", t, w[t].failure);
        for (unsigned i = 0; i < BATCH_WRITES; i++) {
            all[n++] = w[t].mod_revs[i];
        }
        mc_client_close(w[t].c);
    }
    qsort(all, n, sizeof all[0], cmp_rev);
    for (size_t i = 1; i < n; i++) {
        cr_assert_neq(all[i], all[i - 1], "two writes share revision %llu",
                      (unsigned long long)all[i]);
    }
}

/* ---- the raft transport's port takes no garbage ---- */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

/* The hello of a lane's connection (consensus/mux_wire.h): 32 bytes. */
static void hello(uint8_t *p, uint64_t id, uint32_t lane, uint32_t lanes)
{
    memcpy(p, "MCMUX01\x01", 8);
    put_u64(p + 8, id);
    put_u32(p + 16, lane);
    put_u32(p + 20, lanes);
    put_u64(p + 24, 0);
}

/* Connect to port on 127.0.0.1, send len bytes, close. */
static void raft_port_send(int port, const void *data, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0,
                 "connect to raft port %d", port);
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, (const char *)data + off, len - off,
                         MSG_NOSIGNAL);
        if (n <= 0) {
            break; /* the node dropped us: fine */
        }
        off += (size_t)n;
    }
    close(fd);
}

/* Junk, a hello of another cluster shape, a frame that does not decode,
 * a frame of a shard the lane does not hold, and a frame claiming more
 * than any frame may be: each connection is dropped or its frame ignored,
 * and the cluster goes on serving. */
Test(cluster, raft_lane_port_survives_garbage, .fini = harness_fini,
     .timeout = 90)
{
    start_cluster();
    int lane0 = nodes[0].raft_port + 1;
    uint8_t junk[4096];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof junk; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        junk[i] = (uint8_t)x;
    }
    raft_port_send(lane0, junk, sizeof junk);
    uint8_t buf[256];
    hello(buf, 2, 0, 7); /* lanes differ: refused at the hello */
    raft_port_send(lane0, buf, 32);
    /* A good hello, then a frame whose body is garbage. */
    hello(buf, 2, 0, 2);
    put_u64(buf + 32, 40);
    memcpy(buf + 40, junk, 40);
    raft_port_send(lane0, buf, 80);
    /* A good hello, a well-formed TimeoutNow of a shard nobody has (with
     * a term that would depose any leader it reached), then a length of
     * 1 TiB. */
    put_u64(buf + 32, 8 + 24);
    put_u32(buf + 40, 250);                 /* shard */
    buf[44] = 6, buf[45] = 0;               /* RAFT_IO_TIMEOUT_NOW */
    buf[46] = buf[47] = 0;
    put_u64(buf + 48, 1ull << 30);          /* term */
    put_u64(buf + 56, 1);
    put_u64(buf + 64, 1);
    put_u64(buf + 72, 1ull << 40);
    raft_port_send(lane0, buf, 80);

    char eps[512];
    all_endpoints(eps, sizeof eps);
    mc_client *c = client_of(eps, 5000);
    for (unsigned i = 0; i < 64; i++) {
        char key[32];
        snprintf(key, sizeof key, "after-garbage/%02u", i);
        mc_result res;
        cr_assert_eq(mc_put(c, NS, key, "v", 1, NULL, &res), MC_OK, "%s",
                     res.message);
    }
    mc_client_close(c);
    cr_assert_eq(kill(nodes[0].pid, 0), 0, "node 1 still runs");
    static char log[1 << 18];
    FILE *f = fopen(nodes[0].log, "r");
    cr_assert_not_null(f);
    size_t got = fread(log, 1, sizeof log - 1, f);
    fclose(f);
    log[got] = '\0';
    cr_assert_not_null(strstr(log, "--loops must be the same"),
                       "the wrong hello is named in the log");
}
