/* Fake memcoord nodes for the unit tests of client/, shared by the test
 * files of tests/unit/client/. Header-only (static inline), because every
 * tests/unit/<dir>/<file>.c is a test binary of its own.
 *
 * A fake node is an nng rep0 socket on an inproc:// address, served by a
 * thread that decodes each request and answers as the test says:
 *   - STATUS goes to the fake's status handler, and is counted in n_status
 *     but not recorded in seen[] (the client asks for it to learn its shard
 *     map, which tests of other requests do not care about). The default
 *     describes a one-node cluster of one shard led by the fake itself;
 *     fake_status_cluster describes a cluster the test sets up.
 *   - every other request is recorded in seen[] and answered by the test's
 *     handler: an answer, no answer at all (a lost reply), or garbage.
 * No process, no TCP, no raft.
 *
 * The unit-test link line carries the server's objects, not libmemcoord,
 * so the client's sources are compiled in here; that also lets the tests
 * reach the internals (lanes, backoff, endpoints, the shard map). */
#ifndef MC_TEST_FAKE_NODE_H
#define MC_TEST_FAKE_NODE_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/call.c"
#include "client/client.c"
#include "client/kv.c"
#include "client/list.c"
#include "client/refresh.c"
#include "client/route.c"
#include "client/status.c"
#include "client/txn.c"

#include <nng/protocol/reqrep0/rep.h>

enum fake_action { FAKE_ANSWER, FAKE_DROP, FAKE_GARBAGE };

struct fake;
/* Fill resp (code OK already) for the nth request (0-based) of this fake.
 * Pointers put in resp must stay valid until the handler is called again. */
typedef enum fake_action (*fake_handler)(struct fake *f,
                                         const Mcpb__Request *req,
                                         unsigned nth, Mcpb__Response *resp);

#define FAKE_SEEN_MAX 4096u
#define FAKE_MEMBERS_MAX 4u
#define FAKE_SHARDS_MAX 16u

struct seen {
    uint32_t op;
    uint64_t client_id, seq;
    bool has_client_id, has_expect_version, has_tier, has_ttl_ms;
    int64_t expect_version;
    uint32_t tier, shard, limit;
    uint64_t ttl_ms;
    bool keys_only, serializable, no_forward, has_pattern;
    size_t n_compares, n_then, n_else;
    char key[64];
    char start_after[64];
    size_t value_len;
};

/* What fake_status_cluster reports: the members, and per shard its leader
 * (in a term) and replicas. Each fake reports the shards it holds a
 * replica of, as a node does. Set it up before the client first asks. */
struct fake_cluster {
    unsigned n_members;
    uint64_t ids[FAKE_MEMBERS_MAX];
    char urls[FAKE_MEMBERS_MAX][64];
    unsigned n_shards;
    uint64_t leader[FAKE_SHARDS_MAX];
    uint64_t term[FAKE_SHARDS_MAX];
    uint64_t replicas[FAKE_SHARDS_MAX][MC_REPLICAS_MAX];
    unsigned n_replicas[FAKE_SHARDS_MAX];
};

struct fake {
    nng_socket sock;
    pthread_t thread;
    char url[64];
    uint64_t id; /* node id: unique in the test process */
    fake_handler handler;
    fake_handler on_status;
    void *arg;
    struct fake_cluster *cluster; /* for fake_status_cluster */
    atomic_bool stop;
    atomic_uint n_status;
    pthread_mutex_t mu;
    struct seen seen[FAKE_SEEN_MAX];
    unsigned n_seen;
    /* Scratch of the status handlers: valid until the next answer. */
    Mcpb__NodeStatus st;
    Mcpb__ShardStatus sh[FAKE_SHARDS_MAX];
    Mcpb__ShardStatus *shp[FAKE_SHARDS_MAX];
    Mcpb__Member mem[FAKE_MEMBERS_MAX];
    Mcpb__Member *memp[FAKE_MEMBERS_MAX];
};

static inline void seen_add(struct fake *f, const Mcpb__Request *r)
{
    pthread_mutex_lock(&f->mu);
    if (f->n_seen < FAKE_SEEN_MAX) {
        struct seen *s = &f->seen[f->n_seen++];
        s->op = r->op;
        s->has_client_id = r->has_client_id;
        s->client_id = r->client_id;
        s->seq = r->seq;
        s->has_expect_version = r->has_expect_version;
        s->expect_version = r->expect_version;
        s->has_tier = r->has_tier;
        s->tier = r->tier;
        s->has_ttl_ms = r->has_ttl_ms;
        s->ttl_ms = r->ttl_ms;
        s->shard = r->shard;
        s->limit = r->limit;
        s->keys_only = r->keys_only;
        s->serializable = r->serializable;
        s->no_forward = r->no_forward;
        s->has_pattern = r->has_pattern;
        s->n_compares = r->n_compares;
        s->n_then = r->n_then_ops;
        s->n_else = r->n_else_ops;
        snprintf(s->key, sizeof s->key, "%.*s", (int)r->key.len,
                 (const char *)r->key.data);
        snprintf(s->start_after, sizeof s->start_after, "%.*s",
                 (int)r->start_after.len, (const char *)r->start_after.data);
        s->value_len = r->value.len;
    }
    pthread_mutex_unlock(&f->mu);
}

static inline unsigned seen_count(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    unsigned n = f->n_seen;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static inline void fake_reply(struct fake *f, enum fake_action act,
                              const Mcpb__Response *resp)
{
    void *buf;
    size_t len;
    if (act == FAKE_GARBAGE) {
        static const char junk[] = "this is not a memcoord frame";
        nng_send(f->sock, (void *)junk, sizeof junk, 0);
        return;
    }
    /* malloc, not the allocation hooks: a test that fails the client's Nth
     * allocation must fail none of the fake's, which runs meanwhile. */
    cr_assert_eq(proto_frame_encode(&resp->base, PROTO_RESPONSE, malloc,
                                    &buf, &len),
                 MC_OK);
    nng_send(f->sock, buf, len, 0);
    free(buf);
}

static inline void fake_serve(struct fake *f, const Mcpb__Request *req,
                              unsigned *nth)
{
    Mcpb__Response resp = MCPB__RESPONSE__INIT;
    enum fake_action act;
    if (req->op == MCPB__OP__OP_STATUS) {
        unsigned n = atomic_fetch_add(&f->n_status, 1);
        act = f->on_status(f, req, n, &resp);
    } else {
        seen_add(f, req);
        act = f->handler(f, req, (*nth)++, &resp);
    }
    if (act != FAKE_DROP) {
        fake_reply(f, act, &resp);
    }
}

static inline void *fake_main(void *arg)
{
    struct fake *f = arg;
    unsigned nth = 0;
    while (!atomic_load(&f->stop)) {
        char *buf = NULL;
        size_t len = 0;
        int rv = nng_recv(f->sock, &buf, &len, NNG_FLAG_ALLOC);
        if (rv == NNG_ETIMEDOUT) {
            continue;
        }
        if (rv != 0) {
            break;
        }
        Mcpb__Request *req;
        char err[128];
        mc_err code = proto_request_decode(buf, len, &req, err, sizeof err);
        nng_free(buf, len);
        if (code != MC_OK) {
            Mcpb__Response resp = MCPB__RESPONSE__INIT;
            resp.code = MC_INVALID_ARGUMENT;
            resp.message = err;
            fake_reply(f, FAKE_ANSWER, &resp);
            continue;
        }
        fake_serve(f, req, &nth);
        mcpb__request__free_unpacked(req, NULL);
    }
    return NULL;
}

/* ---- status handlers ---- */

static inline void fake_status_member(struct fake *f, unsigned k, uint64_t id,
                                      char *url)
{
    f->mem[k] = (Mcpb__Member)MCPB__MEMBER__INIT;
    f->mem[k].id = id;
    f->mem[k].url = url;
    f->memp[k] = &f->mem[k];
}

/* Shard k of f's answer: id, leader in term, replicas. */
static inline void fake_status_shard(struct fake *f, unsigned k, uint32_t id,
                                     uint64_t leader, uint64_t term,
                                     uint64_t *replicas, unsigned n_replicas)
{
    Mcpb__ShardStatus *s = &f->sh[k];
    *s = (Mcpb__ShardStatus)MCPB__SHARD_STATUS__INIT;
    s->id = id;
    s->has_leader_id = s->has_term = s->has_is_leader = true;
    s->leader_id = leader;
    s->term = term;
    s->is_leader = leader == f->id;
    s->replicas = replicas;
    s->n_replicas = n_replicas;
    f->shp[k] = s;
}

static inline void fake_status_begin(struct fake *f, Mcpb__Response *resp,
                                     uint32_t shard_count)
{
    f->st = (Mcpb__NodeStatus)MCPB__NODE_STATUS__INIT;
    f->st.has_node_id = true;
    f->st.node_id = f->id;
    f->st.has_shard_count = true;
    f->st.shard_count = shard_count;
    f->st.shards = f->shp;
    f->st.members = f->memp;
    resp->status = &f->st;
}

/* A one-node cluster: f alone leads its one shard. */
static inline enum fake_action fake_status_single(struct fake *f,
                                                  const Mcpb__Request *req,
                                                  unsigned nth,
                                                  Mcpb__Response *resp)
{
    fake_status_begin(f, resp, 1);
    fake_status_member(f, 0, f->id, f->url);
    f->st.n_members = 1;
    fake_status_shard(f, 0, 0, f->id, 1, &f->id, 1);
    f->st.n_shards = 1;
    return FAKE_ANSWER;
}

static inline bool fake_cluster_hosts(const struct fake_cluster *c,
                                      unsigned s, uint64_t id)
{
    for (unsigned k = 0; k < c->n_replicas[s]; k++) {
        if (c->replicas[s][k] == id) {
            return true;
        }
    }
    return false;
}

/* The cluster of f->cluster, as node f sees it. */
static inline enum fake_action fake_status_cluster(struct fake *f,
                                                   const Mcpb__Request *req,
                                                   unsigned nth,
                                                   Mcpb__Response *resp)
{
    struct fake_cluster *c = f->cluster;
    fake_status_begin(f, resp, c->n_shards);
    for (unsigned k = 0; k < c->n_members; k++) {
        fake_status_member(f, k, c->ids[k], c->urls[k]);
    }
    f->st.n_members = c->n_members;
    unsigned n = 0;
    for (unsigned s = 0; s < c->n_shards; s++) {
        if (fake_cluster_hosts(c, s, f->id)) {
            fake_status_shard(f, n++, s, c->leader[s], c->term[s],
                              c->replicas[s], c->n_replicas[s]);
        }
    }
    f->st.n_shards = n;
    return FAKE_ANSWER;
}

/* ---- start and stop ---- */

static inline struct fake *fake_start_with(fake_handler h,
                                           fake_handler on_status, void *arg)
{
    static atomic_uint counter;
    unsigned k = atomic_fetch_add(&counter, 1);
    struct fake *f = calloc(1, sizeof *f);
    f->id = 1 + k;
    f->handler = h;
    f->on_status = on_status;
    f->arg = arg;
    pthread_mutex_init(&f->mu, NULL);
    snprintf(f->url, sizeof f->url, "inproc://fake-%d-%u", (int)getpid(), k);
    cr_assert_eq(nng_rep0_open(&f->sock), 0);
    nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, 20);
    nng_socket_set_size(f->sock, NNG_OPT_RECVMAXSZ, 4u << 20);
    cr_assert_eq(nng_listen(f->sock, f->url, NULL, 0), 0);
    cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
    return f;
}

static inline struct fake *fake_start(fake_handler h, void *arg)
{
    return fake_start_with(h, fake_status_single, arg);
}

static inline void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    nng_close(f->sock);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static inline mc_client *client_on(const char *endpoints, int timeout_ms)
{
    mc_options opts = {.timeout_ms = timeout_ms};
    mc_client *c;
    mc_result res;
    cr_assert_eq(mc_client_open(endpoints, &opts, &c, &res), MC_OK, "%s",
                 res.message);
    return c;
}

#endif
