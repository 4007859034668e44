/* nemesis: kills, pauses and partitions of real nodes. See nemesis.h. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fault/nemesis.h"

#define CLIENT_MS 2000
#define PROBE_CALL_MS 1000
#define LEADER_WAIT_MS 20000
#define POLL_MS 50
/* How long each fault lasts before it heals: kills long enough for the
 * survivors to elect (election timeout 300 ms in the harness), pauses
 * and partitions several election timeouts. */
#define KILL_HOLD_MS_MIN 500
#define KILL_HOLD_MS_MAX 1500
#define PAUSE_HOLD_MS_MIN 1000
#define PAUSE_HOLD_MS_MAX 2500
#define PART_HOLD_MS_MIN 2000
#define PART_HOLD_MS_MAX 4000

static const char *const names[NEMESIS_KINDS] = {
    [NEMESIS_KILL_ONE] = "kill-one",
    [NEMESIS_KILL_LEADER] = "kill-leader",
    [NEMESIS_KILL_ALL] = "kill-all",
    [NEMESIS_PAUSE_LEADER] = "pause-leader",
    [NEMESIS_ISOLATE_ONE] = "isolate-one",
    [NEMESIS_ISOLATE_LEADER] = "isolate-leader",
    [NEMESIS_SPLIT] = "split",
    [NEMESIS_BRIDGE] = "bridge",
};

const char *nemesis_name(enum nemesis_kind k)
{
    return k < NEMESIS_KINDS ? names[k] : "?";
}

static unsigned draw(struct nemesis *m, unsigned n)
{
    return (unsigned)rand_r(&m->seed) % n;
}

static int hold_ms(struct nemesis *m, int lo, int hi)
{
    return lo + (int)draw(m, (unsigned)(hi - lo + 1));
}

static int step_failed(struct nemesis *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int step_failed(struct nemesis *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nemesis: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    m->errors++;
    return -1;
}

static mc_client *client_of(const char *endpoints, int timeout_ms)
{
    mc_options o = {.timeout_ms = timeout_ms};
    mc_client *c = NULL;
    mc_result res;
    if (mc_client_open(endpoints, &o, &c, &res) != MC_OK) {
        fprintf(stderr, "nemesis: client on %s: %s\n", endpoints, res.message);
        return NULL;
    }
    return c;
}

/* ---- looking at the cluster ---- */

int nemesis_leader_of(struct nemesis *m, uint32_t shard)
{
    for (unsigned i = 0; i < m->n; i++) {
        if (m->nodes[i].pid == 0) {
            continue;
        }
        mc_client *c = client_of(m->nodes[i].url, CLIENT_MS);
        if (c == NULL) {
            continue;
        }
        mc_status *st;
        mc_result res;
        int led = -1;
        if (mc_status_get(c, &st, &res) == MC_OK) {
            for (size_t k = 0; k < st->n_shards; k++) {
                uint64_t id = st->shards[k].leader_id;
                if (st->shards[k].id == shard && id >= 1 && id <= m->n &&
                    m->nodes[id - 1].pid != 0) {
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

/* A random shard and the node that leads it, waiting for one. */
static int leader_pick(struct nemesis *m, uint32_t *shard)
{
    *shard = draw(m, m->n_shards);
    int led = -1;
    for (int64_t deadline = harness_now_ms() + LEADER_WAIT_MS;
         led < 0 && harness_now_ms() < deadline; harness_pause_ms(POLL_MS)) {
        led = nemesis_leader_of(m, *shard);
    }
    if (led < 0) {
        return step_failed(m, "shard %u has no leader", *shard);
    }
    return led;
}

/* Every replica of every shard at the same applied index and hash. */
static bool replicas_agree(struct nemesis *m, char *why, size_t why_len)
{
    mc_client *via[HARNESS_NODES_MAX] = {NULL};
    bool agree = true;
    for (unsigned i = 0; i < m->n && agree; i++) {
        via[i] = client_of(m->nodes[i].url, CLIENT_MS);
        agree = via[i] != NULL;
    }
    for (uint32_t s = 0; s < m->n_shards && agree; s++) {
        uint64_t applied0 = 0, hash0 = 0;
        for (unsigned i = 0; i < m->n && agree; i++) {
            uint64_t applied, hash;
            mc_result res;
            if (mc_shard_hash(via[i], s, &applied, &hash, &res) != MC_OK) {
                snprintf(why, why_len, "shard %u on node %u: %.160s", s, i + 1,
                         res.message);
                agree = false;
            } else if (i == 0) {
                applied0 = applied;
                hash0 = hash;
            } else if (applied != applied0 || hash != hash0) {
                snprintf(why, why_len,
                         "shard %u: node 1 at %" PRIu64 "/%016" PRIx64
                         ", node %u at %" PRIu64 "/%016" PRIx64,
                         s, applied0, hash0, i + 1, applied, hash);
                agree = false;
            }
        }
    }
    for (unsigned i = 0; i < m->n; i++) {
        if (via[i] != NULL) {
            mc_client_close(via[i]);
        }
    }
    return agree;
}

unsigned nemesis_check_alive(struct nemesis *m)
{
    unsigned found = 0;
    for (unsigned i = 0; i < m->n; i++) {
        struct mc_node_proc *n = &m->nodes[i];
        if (n->pid == 0) {
            continue;
        }
        int code = harness_node_wait_exit(n, 0);
        if (code >= 0) {
            fprintf(stderr, "nemesis: node %u exited by itself with %d\n",
                    i + 1, code);
            harness_node_log_tail(n, 40);
            found++;
        }
    }
    m->crashes += found;
    return found;
}

int64_t nemesis_converge(struct nemesis *m, int64_t since_ms)
{
    for (unsigned i = 0; i < m->n; i++) {
        if (harness_node_wait_ready(&m->nodes[i], HARNESS_READY_MS) != 0) {
            return step_failed(m, "node %u not ready after the heal", i + 1);
        }
    }
    if (m->w != NULL) {
        workload_pause(m->w);
    }
    char why[256] = "";
    int64_t deadline = since_ms + NEMESIS_CONVERGE_MS;
    bool agree;
    while (!(agree = replicas_agree(m, why, sizeof why)) &&
           harness_now_ms() < deadline) {
        harness_pause_ms(100);
    }
    int64_t took = harness_now_ms() - since_ms;
    if (m->w != NULL) {
        workload_resume(m->w);
    }
    m->heals++;
    if (!agree) {
        m->diverged++;
        fprintf(stderr, "nemesis: replicas differ %lld ms after the heal: %s\n",
                (long long)took, why);
        return -1;
    }
    m->converge_ms_max = took > m->converge_ms_max ? took : m->converge_ms_max;
    return took;
}

/* ---- the faults ---- */

static int kill9(struct nemesis *m, unsigned v)
{
    int code = harness_node_stop(&m->nodes[v], SIGKILL);
    if (code != 128 + SIGKILL) {
        /* It had exited before: that is a crash, not our kill. */
        m->crashes++;
        return step_failed(m, "node %u was already gone (%d)", v + 1, code);
    }
    return 0;
}

static int restart(struct nemesis *m, unsigned v)
{
    if (harness_node_restart(&m->nodes[v]) != 0) {
        return step_failed(m, "restart of node %u failed", v + 1);
    }
    return 0;
}

/* Write to shard through every node but v until one write is accepted:
 * the time from t0 is the failover's. */
static int failover_probe(struct nemesis *m, uint32_t shard, unsigned v,
                          int64_t t0)
{
    char others[HARNESS_NODES_MAX * (HARNESS_URL_BYTES_MAX + 1)] = "";
    for (unsigned i = 0; i < m->n; i++) {
        if (i != v) {
            strcat(others, others[0] != '\0' ? "," : "");
            strcat(others, m->nodes[i].url);
        }
    }
    mc_client *c = client_of(others, PROBE_CALL_MS);
    if (c == NULL) {
        return step_failed(m, "no probe client");
    }
    char key[64];
    harness_key_in_shard(m->ns, m->n_shards, "probe", shard, key, sizeof key);
    mc_result res;
    mc_err rv;
    while ((rv = mc_put(c, m->ns, key, "p", 1, NULL, &res)) != MC_OK &&
           harness_now_ms() - t0 < NEMESIS_PROBE_MS) {
    }
    mc_client_close(c);
    int64_t took = harness_now_ms() - t0;
    if (rv != MC_OK) {
        took = NEMESIS_PROBE_MS;
    }
    m->failovers++;
    m->failover_ms_max = took > m->failover_ms_max ? took : m->failover_ms_max;
    fprintf(stderr, "nemesis: writes to shard %u accepted again %lld ms after "
                    "node %u went\n", shard, (long long)took, v + 1);
    return 0;
}

static int kill_one(struct nemesis *m)
{
    unsigned v = draw(m, m->n);
    fprintf(stderr, "nemesis: kill -9 node %u\n", v + 1);
    if (kill9(m, v) != 0) {
        return -1;
    }
    harness_pause_ms(hold_ms(m, KILL_HOLD_MS_MIN, KILL_HOLD_MS_MAX));
    if (restart(m, v) != 0) {
        return -1;
    }
    return nemesis_converge(m, harness_now_ms()) < 0 ? -1 : 0;
}

static int kill_leader(struct nemesis *m)
{
    uint32_t shard;
    int v = leader_pick(m, &shard);
    if (v < 0) {
        return -1;
    }
    fprintf(stderr, "nemesis: kill -9 node %d, leader of shard %u\n", v + 1,
            shard);
    int64_t t0 = harness_now_ms();
    if (kill9(m, (unsigned)v) != 0 ||
        failover_probe(m, shard, (unsigned)v, t0) != 0) {
        return -1;
    }
    if (restart(m, (unsigned)v) != 0) {
        return -1;
    }
    return nemesis_converge(m, harness_now_ms()) < 0 ? -1 : 0;
}

static int kill_all(struct nemesis *m)
{
    fprintf(stderr, "nemesis: kill -9 every node\n");
    for (unsigned i = 0; i < m->n; i++) {
        kill(m->nodes[i].pid, SIGKILL); /* all at once, then reap */
    }
    for (unsigned i = 0; i < m->n; i++) {
        if (kill9(m, i) != 0) {
            return -1;
        }
    }
    harness_pause_ms(hold_ms(m, KILL_HOLD_MS_MIN, KILL_HOLD_MS_MAX));
    for (unsigned i = 0; i < m->n; i++) {
        if (restart(m, i) != 0) {
            return -1;
        }
    }
    return nemesis_converge(m, harness_now_ms()) < 0 ? -1 : 0;
}

static int pause_leader(struct nemesis *m)
{
    uint32_t shard;
    int v = leader_pick(m, &shard);
    if (v < 0) {
        return -1;
    }
    int ms = hold_ms(m, PAUSE_HOLD_MS_MIN, PAUSE_HOLD_MS_MAX);
    fprintf(stderr, "nemesis: SIGSTOP node %d, leader of shard %u, for %d ms\n",
            v + 1, shard, ms);
    kill(m->nodes[v].pid, SIGSTOP);
    harness_pause_ms(ms);
    kill(m->nodes[v].pid, SIGCONT);
    return nemesis_converge(m, harness_now_ms()) < 0 ? -1 : 0;
}

/* Apply a partition, hold it, heal it. */
static int partition(struct nemesis *m, const char *what, int rv)
{
    int ms = hold_ms(m, PART_HOLD_MS_MIN, PART_HOLD_MS_MAX);
    fprintf(stderr, "nemesis: %s for %d ms\n", what, ms);
    if (rv == 0) {
        harness_pause_ms(ms);
    }
    int healed = m->links.heal(m->links.ctx);
    if (rv != 0 || healed != 0) {
        return step_failed(m, "%s: could not %s", what,
                           rv != 0 ? "make it" : "heal it");
    }
    return nemesis_converge(m, harness_now_ms()) < 0 ? -1 : 0;
}

static int cut_from_all(struct nemesis *m, unsigned v)
{
    int rv = 0;
    for (unsigned i = 0; i < m->n && rv == 0; i++) {
        if (i != v) {
            rv = m->links.cut(m->links.ctx, v, i);
        }
    }
    return rv;
}

static int partition_run(struct nemesis *m, enum nemesis_kind k)
{
    char what[96];
    if (m->links.ctx == NULL) {
        return step_failed(m, "%s: no way to make partitions",
                           nemesis_name(k));
    }
    if (k == NEMESIS_ISOLATE_ONE) {
        unsigned v = draw(m, m->n);
        snprintf(what, sizeof what, "isolate node %u from everyone", v + 1);
        return partition(m, what, m->links.isolate(m->links.ctx, v));
    }
    if (k == NEMESIS_ISOLATE_LEADER) {
        uint32_t shard;
        int v = leader_pick(m, &shard);
        if (v < 0) {
            return -1;
        }
        snprintf(what, sizeof what, "cut node %d, leader of shard %u, from "
                                    "the other nodes", v + 1, shard);
        return partition(m, what, cut_from_all(m, (unsigned)v));
    }
    if (k == NEMESIS_SPLIT) {
        unsigned v = draw(m, m->n);
        snprintf(what, sizeof what, "split node %u | the others", v + 1);
        return partition(m, what, cut_from_all(m, v));
    }
    unsigned a = draw(m, m->n);
    unsigned b = (a + 1 + draw(m, m->n - 1)) % m->n;
    snprintf(what, sizeof what, "cut the link node %u - node %u only", a + 1,
             b + 1);
    return partition(m, what, m->links.cut(m->links.ctx, a, b));
}

int nemesis_run(struct nemesis *m, enum nemesis_kind k)
{
    if (k >= NEMESIS_KINDS) {
        return step_failed(m, "no fault %d", (int)k);
    }
    if (nemesis_check_alive(m) > 0) {
        return -1;
    }
    m->count[k]++;
    m->faults++;
    switch (k) {
    case NEMESIS_KILL_ONE:
        return kill_one(m);
    case NEMESIS_KILL_LEADER:
        return kill_leader(m);
    case NEMESIS_KILL_ALL:
        return kill_all(m);
    case NEMESIS_PAUSE_LEADER:
        return pause_leader(m);
    default:
        return partition_run(m, k);
    }
}
