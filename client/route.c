/* The shard map of libmemcoord: how many shards the cluster has, which node
 * leads each one and which hold its replicas, and where each member
 * listens. Nodes tell it in their STATUS answers (refresh.c) and in the
 * hints of NOT_LEADER answers; call.c reads it before each attempt of a
 * request for a shard, to send the request straight to the leader (one
 * network hop instead of two) or, for a serializable read, to a replica
 * the caller listed.
 *
 * The map is a cache and nothing here is trusted for correctness: the node
 * that gets a request checks leadership itself and answers NOT_LEADER, so
 * a wrong entry costs one attempt. Members the caller did not list get a
 * socket of their own, opened here on first use (nng dials in the
 * background, so opening does not wait for the network).
 *
 * Threads: everything is under route.mu, held for a few comparisons and,
 * once per member, for opening its socket; never across a network wait. */
#include <string.h>
#include <time.h>

#include "client/internal.h"

mc_err client_route_init(struct client_route *r)
{
    memset(r, 0, sizeof *r);
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        return MC_INTERNAL;
    }
    /* Synchronous waits for a refresh are timed on the monotonic clock. */
    pthread_condattr_t attr;
    bool ok = pthread_condattr_init(&attr) == 0;
    if (ok) {
        ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
             pthread_cond_init(&r->refreshed, &attr) == 0;
        pthread_condattr_destroy(&attr);
    }
    if (!ok) {
        pthread_mutex_destroy(&r->mu);
        return MC_INTERNAL;
    }
    return MC_OK;
}

void client_route_fini(struct client_route *r)
{
    ASSERT(r->waiters.head == NULL);
    pthread_cond_destroy(&r->refreshed);
    pthread_mutex_destroy(&r->mu);
}

bool client_route_wants(const Mcpb__Request *req)
{
    switch (req->op) {
    case MCPB__OP__OP_PUT:
    case MCPB__OP__OP_DELETE:
    case MCPB__OP__OP_GET:
    case MCPB__OP__OP_WAIT:
        return req->has_key;
    case MCPB__OP__OP_TXN: {
        const uint8_t *key;
        size_t len;
        return proto_route_key(req, &key, &len);
    }
    case MCPB__OP__OP_LIST:
        return req->has_shard;
    case MCPB__OP__OP_WATCH:
        return req->has_prefix ? req->has_shard : req->has_key;
    default:
        return false;
    }
}

static bool is_suspect(const struct client_endpoint *ep, int64_t now_ms)
{
    int64_t failed = atomic_load(&ep->failed_ms);
    return failed != 0 && now_ms - failed < MC_CLIENT_SUSPECT_MS;
}

static struct route_member *member_find(struct client_route *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->n_members; i++) {
        if (r->members[i].id == id) {
            return &r->members[i];
        }
    }
    return NULL;
}

/* Add a socket for member m. Under route.mu. Returns its index, or
 * CLIENT_EP_NONE when the array is full or the URL does not open; a bad
 * URL is not tried again. */
static size_t member_socket_open(mc_client *c, struct route_member *m)
{
    if (c->n_socks == MC_CLIENT_SOCKETS_MAX) {
        return CLIENT_EP_NONE;
    }
    struct client_endpoint *ep = &c->eps[c->n_socks];
    memset(ep, 0, sizeof *ep);
    ep->url = mc_strdup(m->url);
    if (ep->url == NULL) {
        return CLIENT_EP_NONE; /* out of memory now: try again later */
    }
    mc_result ignored;
    if (client_endpoint_open(ep, &ignored) != MC_OK) {
        if (ep->sock_open) {
            (void)nng_close(ep->sock); /* fails only when already closed */
        }
        mc_free(ep->url);
        memset(ep, 0, sizeof *ep);
        m->unusable = true;
        return CLIENT_EP_NONE;
    }
    /* Trust the member list until its node answers through this socket. */
    ep->node_id = m->id;
    return c->n_socks++;
}

/* The socket to node id: one whose node is known to be id (the caller's
 * endpoints come first), else one dialed to the member's URL, else a new
 * one. Under route.mu. */
static size_t node_socket(mc_client *c, uint64_t id)
{
    for (size_t i = 0; i < c->n_socks; i++) {
        if (c->eps[i].node_id == id) {
            return i;
        }
    }
    struct route_member *m = member_find(&c->route, id);
    if (m == NULL || m->unusable) {
        return CLIENT_EP_NONE;
    }
    for (size_t i = 0; i < c->n_socks; i++) {
        if (c->eps[i].node_id == 0 && strcmp(c->eps[i].url, m->url) == 0) {
            return i;
        }
    }
    return member_socket_open(c, m);
}

static bool has_replica(const struct route_shard *s, uint64_t id)
{
    for (uint32_t k = 0; k < s->n_replicas; k++) {
        if (s->replicas[k] == id) {
            return true;
        }
    }
    return false;
}

/* The first of the caller's endpoints, in the caller's order, whose node
 * holds a replica of s: the "nearest" replica is the one the caller chose
 * to list first. Under route.mu. */
static size_t replica_socket(mc_client *c, const struct route_shard *s,
                             int64_t now_ms)
{
    for (size_t i = 0; i < c->n_eps; i++) {
        const struct client_endpoint *ep = &c->eps[i];
        if (ep->node_id != 0 && !is_suspect(ep, now_ms) &&
            has_replica(s, ep->node_id)) {
            return i;
        }
    }
    return CLIENT_EP_NONE;
}

void client_route_key(const Mcpb__Request *req, struct route_key *out)
{
    memset(out, 0, sizeof *out);
    out->wants = client_route_wants(req);
    out->serializable = req->serializable;
    if (!out->wants) {
        return;
    }
    const uint8_t *key;
    size_t key_len;
    if (req->op == MCPB__OP__OP_LIST ||
        (req->op == MCPB__OP__OP_WATCH && req->has_prefix)) {
        out->by_shard = true;
        out->shard = req->shard;
    } else if (proto_route_key(req, &key, &key_len)) {
        /* A transaction goes by its first key: mc_txn checked that all of
         * them are in one shard. The slot does not depend on the shard
         * count, so it outlives a change of the map. */
        out->slot = proto_slot(req->ns.data, req->ns.len, key, key_len);
    } else {
        out->wants = false;
    }
}

/* k's shard under the map's shard count. Under route.mu. */
static bool shard_of(const struct client_route *r, const struct route_key *k,
                     uint32_t *shard)
{
    if (r->shard_count == 0 || !k->wants) {
        return false;
    }
    *shard = k->by_shard ? k->shard
                         : proto_shard_of_slot(k->slot, r->shard_count);
    return *shard < r->shard_count;
}

bool client_route_pick_key(mc_client *c, const struct route_key *k,
                           size_t *ep, uint32_t *shard)
{
    ASSERT(k->wants);
    struct client_route *r = &c->route;
    int64_t now = base_mono_ms();
    size_t i = CLIENT_EP_NONE;
    pthread_mutex_lock(&r->mu);
    if (shard_of(r, k, shard)) {
        const struct route_shard *s = &r->shards[*shard];
        if (k->serializable) {
            i = replica_socket(c, s, now);
        }
        if (i == CLIENT_EP_NONE && s->leader_id != 0) {
            i = node_socket(c, s->leader_id);
        }
        if (i != CLIENT_EP_NONE && is_suspect(&c->eps[i], now)) {
            i = CLIENT_EP_NONE; /* go around it, through forwarding */
        }
    }
    if (i == CLIENT_EP_NONE) {
        r->stale = true;
        r->stale_gen++;
    }
    pthread_mutex_unlock(&r->mu);
    *ep = i;
    return i != CLIENT_EP_NONE;
}

bool client_route_pick(mc_client *c, const Mcpb__Request *req, size_t *ep,
                       uint32_t *shard)
{
    ASSERT(client_route_wants(req));
    struct route_key k;
    client_route_key(req, &k);
    return client_route_pick_key(c, &k, ep, shard);
}

size_t client_route_forward_ep(mc_client *c, unsigned *next)
{
    int64_t now = base_mono_ms();
    size_t n = c->n_eps;
    size_t pick = *next % n;
    for (size_t k = 0; k < n; k++) {
        size_t i = (*next + k) % n;
        if (!is_suspect(&c->eps[i], now)) {
            pick = i;
            break;
        }
    }
    *next = (unsigned)((pick + 1) % n);
    return pick;
}

/* ---- learning ---- */

static void members_learn(struct client_route *r, const Mcpb__NodeStatus *st)
{
    for (size_t i = 0; i < st->n_members; i++) {
        const Mcpb__Member *w = st->members[i];
        size_t len = w->url != NULL ? strlen(w->url) : 0;
        if (w->id == 0 || len == 0 || len >= MC_CLIENT_URL_BYTES_MAX) {
            continue; /* nothing we could dial */
        }
        struct route_member *m = member_find(r, w->id);
        if (m == NULL) {
            if (r->n_members == MC_NODES_MAX) {
                continue;
            }
            m = &r->members[r->n_members++];
            m->id = w->id;
        } else if (strcmp(m->url, w->url) == 0) {
            continue;
        }
        memcpy(m->url, w->url, len + 1);
        m->unusable = false;
    }
}

/* The caller's endpoints whose URL is a member's URL belong to that
 * member: a serializable read can then prefer them before anyone asked
 * them. An endpoint whose node answered keeps what it said. */
static void endpoints_name(mc_client *c)
{
    struct client_route *r = &c->route;
    for (size_t i = 0; i < c->n_eps; i++) {
        for (uint32_t k = 0; k < r->n_members && c->eps[i].node_id == 0;
             k++) {
            if (strcmp(c->eps[i].url, r->members[k].url) == 0) {
                c->eps[i].node_id = r->members[k].id;
            }
        }
    }
}

/* Invariant (2): a report replaces the leader only when it is of a newer
 * term, or of the same term when no leader was known; a node that says it
 * leads is believed for its term. */
static void shard_learn(struct route_shard *s, uint64_t node_id,
                        const Mcpb__ShardStatus *w)
{
    s->n_replicas = 0;
    for (size_t k = 0; k < w->n_replicas && k < MC_REPLICAS_MAX; k++) {
        s->replicas[s->n_replicas++] = w->replicas[k];
    }
    uint64_t leader = w->is_leader ? node_id : w->leader_id;
    if (w->term > s->term || (w->term == s->term && s->leader_id == 0)) {
        s->leader_id = leader;
        s->term = w->term;
    }
}

void client_route_learn_status(mc_client *c, size_t ep,
                               const Mcpb__NodeStatus *st)
{
    struct client_route *r = &c->route;
    uint32_t count = st->has_shard_count ? st->shard_count
                                         : (uint32_t)st->n_shards;
    pthread_mutex_lock(&r->mu);
    if (ep != CLIENT_EP_NONE && st->node_id != 0) {
        ASSERT(ep < c->n_socks);
        c->eps[ep].node_id = st->node_id;
    }
    if (count > 0 && count <= MC_SHARDS_MAX && count != r->shard_count) {
        /* Invariant (1): what was known under another count is void. */
        memset(r->shards, 0, sizeof r->shards);
        r->shard_count = count;
    }
    members_learn(r, st);
    endpoints_name(c);
    for (size_t i = 0; i < st->n_shards; i++) {
        const Mcpb__ShardStatus *w = st->shards[i];
        if (w->id < r->shard_count) {
            shard_learn(&r->shards[w->id], st->node_id, w);
        }
    }
    pthread_mutex_unlock(&r->mu);
}

void client_route_learn_hint(mc_client *c, uint32_t shard, uint64_t leader_id,
                             const char *leader_url)
{
    ASSERT(leader_id != 0);
    struct client_route *r = &c->route;
    pthread_mutex_lock(&r->mu);
    if (shard < r->shard_count) {
        /* The term stays: the next report of a newer term still wins. */
        r->shards[shard].leader_id = leader_id;
    }
    size_t len = leader_url != NULL ? strlen(leader_url) : 0;
    if (member_find(r, leader_id) == NULL && len > 0 &&
        len < MC_CLIENT_URL_BYTES_MAX && r->n_members < MC_NODES_MAX) {
        struct route_member *m = &r->members[r->n_members++];
        m->id = leader_id;
        memcpy(m->url, leader_url, len + 1);
        m->unusable = false;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- marks ---- */

void client_route_answered(mc_client *c, size_t ep)
{
    ASSERT(ep < MC_CLIENT_SOCKETS_MAX);
    /* Most answers come through a socket without a mark: no lock then. */
    if (atomic_load(&c->eps[ep].failed_ms) == 0) {
        return;
    }
    pthread_mutex_lock(&c->route.mu);
    ASSERT(ep < c->n_socks);
    atomic_store(&c->eps[ep].failed_ms, 0);
    pthread_mutex_unlock(&c->route.mu);
}

void client_route_failed(mc_client *c, size_t ep)
{
    pthread_mutex_lock(&c->route.mu);
    ASSERT(ep < c->n_socks);
    atomic_store(&c->eps[ep].failed_ms, base_mono_ms());
    c->route.stale = true;
    c->route.stale_gen++;
    pthread_mutex_unlock(&c->route.mu);
}

void client_route_stale(mc_client *c)
{
    pthread_mutex_lock(&c->route.mu);
    c->route.stale = true;
    c->route.stale_gen++;
    pthread_mutex_unlock(&c->route.mu);
}

uint32_t client_route_shard_count(mc_client *c)
{
    pthread_mutex_lock(&c->route.mu);
    uint32_t n = c->route.shard_count;
    pthread_mutex_unlock(&c->route.mu);
    return n;
}

size_t client_route_sockets(mc_client *c)
{
    pthread_mutex_lock(&c->route.mu);
    size_t n = c->n_socks;
    pthread_mutex_unlock(&c->route.mu);
    return n;
}

/* ---- what refresh.c asks ---- */

uint64_t client_route_leader(mc_client *c, uint32_t shard)
{
    struct client_route *r = &c->route;
    pthread_mutex_lock(&r->mu);
    uint64_t id = shard < r->shard_count ? r->shards[shard].leader_id : 0;
    pthread_mutex_unlock(&r->mu);
    return id;
}

bool client_route_is_complete(mc_client *c)
{
    struct client_route *r = &c->route;
    int64_t now = base_mono_ms();
    pthread_mutex_lock(&r->mu);
    bool complete = r->shard_count > 0;
    for (uint32_t s = 0; complete && s < r->shard_count; s++) {
        uint64_t id = r->shards[s].leader_id;
        size_t i = id != 0 ? node_socket(c, id) : CLIENT_EP_NONE;
        complete = i != CLIENT_EP_NONE && !is_suspect(&c->eps[i], now);
    }
    pthread_mutex_unlock(&r->mu);
    return complete;
}

/* True when a socket in asked[] reached node id. Under route.mu. */
static bool node_asked(const mc_client *c, const bool *asked, uint64_t id)
{
    for (size_t i = 0; id != 0 && i < c->n_socks; i++) {
        if (asked[i] && c->eps[i].node_id == id) {
            return true;
        }
    }
    return false;
}

static bool worth_asking(const mc_client *c, const bool *asked, size_t i,
                         bool include_suspect, int64_t now_ms)
{
    return !asked[i] && !node_asked(c, asked, c->eps[i].node_id) &&
           (include_suspect || !is_suspect(&c->eps[i], now_ms));
}

bool client_route_next_ask(mc_client *c, const bool *asked,
                           bool include_suspect, size_t *ep)
{
    struct client_route *r = &c->route;
    int64_t now = base_mono_ms();
    bool found = false;
    pthread_mutex_lock(&r->mu);
    /* The caller's endpoints first, from the one that answered last: they
     * are the nodes the caller means to use. */
    size_t first = atomic_load(&c->preferred_ep) % c->n_eps;
    for (size_t k = 0; k < c->n_eps && !found; k++) {
        size_t i = (first + k) % c->n_eps;
        if (worth_asking(c, asked, i, include_suspect, now)) {
            *ep = i;
            found = true;
        }
    }
    /* Then the members nobody asked yet: they know the shards the caller's
     * nodes do not host. */
    for (uint32_t k = 0; k < r->n_members && !found; k++) {
        if (node_asked(c, asked, r->members[k].id)) {
            continue;
        }
        size_t i = node_socket(c, r->members[k].id);
        if (i != CLIENT_EP_NONE &&
            worth_asking(c, asked, i, include_suspect, now)) {
            *ep = i;
            found = true;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}
