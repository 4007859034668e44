/* Refreshing the shard map of libmemcoord from nodes' STATUS answers.
 *
 * A node's STATUS lists the cluster's members and shard count, and for
 * each shard it hosts the replicas and the leader it knows. One node may
 * not host every shard, so a refresh asks one node after another (the
 * caller's endpoints first, then the other members) until every shard has
 * a leader it can reach, or nobody is left to ask.
 *
 * A refresh is a state machine of its own, on the client's refresh aio, so
 * that it never blocks a thread, an nng callback least of all:
 *
 *   [client_refresh_park, client_route_refresh] --due--> begin
 *   begin --> SEND (STATUS to the next node) --taken--> RECV --answer-->
 *   learn --> SEND to the next node ... --> end (complete, nobody left to
 *   ask, time up, or the client closing)
 *
 * It is frugal: one attempt per node with short waits (a node without a
 * connection gets at most half of what is left while others remain, so one
 * dead node does not eat the refresh), no retries, nodes that just failed
 * asked only when nobody else answered, and at most one
 * refresh per MC_CLIENT_REFRESH_MS_MIN across all the client's calls, with
 * at most half of the time left to the call that began it. It never fails
 * a call: what it could not learn, forwarding by the nodes covers. The
 * call that began it waits for it (parked, CALL_MAP), as do calls that
 * find no shard count in the map at all; every other call goes on with
 * the map as it is while a refresh runs. At its end the parked calls are
 * woken (their aios finished) and synchronous waiters signalled. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "client/internal.h"

static int wait_cap(int64_t left_ms, int cap_ms)
{
    if (left_ms < 1) {
        return 1;
    }
    return left_ms < cap_ms ? (int)left_ms : cap_ms;
}

/* A refresh is due: the map is missing or stale, none runs, and the last
 * one began MC_CLIENT_REFRESH_MS_MIN ago or more. Under route.mu. */
static bool refresh_due_locked(const struct client_route *r, int64_t now)
{
    return !r->refreshing && (r->shard_count == 0 || r->stale) &&
           (r->refreshed_ms == 0 ||
            now - r->refreshed_ms >= MC_CLIENT_REFRESH_MS_MIN);
}

/* Begin a refresh that may run for budget_ms. Under route.mu; the caller
 * then runs it with refresh_run, after unlocking. */
static void refresh_begin_locked(mc_client *c, int64_t now, int64_t budget_ms)
{
    struct client_route *r = &c->route;
    struct client_refresh *f = &c->refresh;
    r->refreshing = true;
    r->refreshed_ms = now;
    f->gen = r->stale_gen;
    f->until_ms = now + (budget_ms < MC_CLIENT_REFRESH_MS_MAX
                             ? budget_ms
                             : MC_CLIENT_REFRESH_MS_MAX);
    memset(f->asked, 0, sizeof f->asked);
    f->learned = false;
    f->complete = false;
}

/* The end of the refresh: the map is fresh when it learned a leader for
 * every shard, unless a stale mark came meanwhile (it may be about an
 * answer the refresh did not see). Then wake whoever waits. counted: the
 * refresh was counted in c->busy. */
static void refresh_end(mc_client *c, bool counted)
{
    struct client_route *r = &c->route;
    struct client_refresh *f = &c->refresh;
    pthread_mutex_lock(&r->mu);
    ASSERT(r->refreshing);
    r->refreshing = false;
    r->refreshes++;
    if (f->complete && r->stale_gen == f->gen) {
        r->stale = false;
    }
    /* The whole list at once; not queued any more, so that a wait that
     * runs out now leaves the call to this (park_cancel). */
    struct client_call *w = r->waiters.head;
    r->waiters.head = r->waiters.tail = NULL;
    for (struct client_call *k = w; k != NULL; k = k->next) {
        k->queued = false;
    }
    pthread_cond_broadcast(&r->refreshed);
    pthread_mutex_unlock(&r->mu);
    while (w != NULL) {
        struct client_call *next = w->next; /* w's own once finished */
        w->next = w->prev = NULL;
        nng_aio_finish(w->io, 0);
        w = next;
    }
    if (counted) {
        pthread_mutex_lock(&c->mu);
        ASSERT(c->busy > 0);
        c->busy--;
        if (c->busy == 0 && atomic_load(&c->closing)) {
            pthread_cond_broadcast(&c->idle);
        }
        pthread_mutex_unlock(&c->mu);
    }
}

/* The next socket to ask: a node that did not just fail, or, while nobody
 * answered yet, any node left. */
static bool next_ask(mc_client *c, const bool *asked, bool learned,
                     size_t *ep)
{
    return client_route_next_ask(c, asked, false, ep) ||
           (!learned && client_route_next_ask(c, asked, true, ep));
}

/* How long the STATUS to ep (marked asked) may wait for a connection:
 * while someone else is left to ask, a socket without a connection (a
 * node that may be dead) gets at most half of what is left, so that one
 * dead node never eats the whole refresh and the calls parked behind it. */
static int connect_wait(mc_client *c, size_t ep)
{
    struct client_refresh *f = &c->refresh;
    int64_t left = f->until_ms - base_mono_ms();
    size_t other;
    if (!client_endpoint_connected(&c->eps[ep]) &&
        next_ask(c, f->asked, f->learned, &other)) {
        left /= 2;
    }
    return wait_cap(left, MC_CLIENT_STATUS_CONNECT_MS);
}

/* Ask the next node, or end. */
static void refresh_next(mc_client *c)
{
    struct client_refresh *f = &c->refresh;
    size_t ep;
    while (!atomic_load(&c->closing) && !f->complete &&
           base_mono_ms() < f->until_ms &&
           next_ask(c, f->asked, f->learned, &ep)) {
        f->asked[ep] = true;
        if (nng_ctx_id(f->ctx[ep]) <= 0 &&
            nng_ctx_open(&f->ctx[ep], c->eps[ep].sock) != 0) {
            f->ctx[ep] = (nng_ctx)NNG_CTX_INITIALIZER;
            continue;
        }
        nng_msg *msg;
        if (nng_msg_alloc(&msg, f->frame_len) != 0) {
            break; /* out of memory: the next call tries again */
        }
        memcpy(nng_msg_body(msg), f->frame, f->frame_len);
        f->ep = ep;
        f->state = REFRESH_SEND;
        nng_aio *aio = f->aio;
        nng_aio_set_msg(aio, msg);
        nng_aio_set_timeout(aio, connect_wait(c, ep));
        nng_ctx_send(f->ctx[ep], aio);
        client_abort_if_closing(c, aio);
        return;
    }
    refresh_end(c, true);
}

/* Learn the answer in msg (freed here) of the node behind f->ep. */
static void refresh_learn(mc_client *c, nng_msg *msg)
{
    struct client_refresh *f = &c->refresh;
    Mcpb__Response *r = NULL;
    char err[128];
    mc_err code = proto_response_decode(nng_msg_body(msg), nng_msg_len(msg),
                                        &r, err, sizeof err);
    nng_msg_free(msg);
    if (code != MC_OK) {
        return; /* a bad answer: neither a failure nor a status */
    }
    client_route_answered(c, f->ep);
    if (r->code == MC_OK && r->status != NULL) {
        client_route_learn_status(c, f->ep, r->status);
        f->learned = true;
        f->complete = client_route_is_complete(c);
    }
    mcpb__response__free_unpacked(r, NULL);
}

static void refresh_cb(void *arg)
{
    mc_client *c = arg;
    struct client_refresh *f = &c->refresh;
    int rv = nng_aio_result(f->aio);
    if (f->state == REFRESH_SEND && rv == 0) {
        f->state = REFRESH_RECV;
        nng_aio *aio = f->aio;
        nng_aio_set_timeout(aio, wait_cap(f->until_ms - base_mono_ms(),
                                          MC_CLIENT_STATUS_REPLY_MS));
        nng_ctx_recv(f->ctx[f->ep], aio);
        client_abort_if_closing(c, aio);
        return;
    }
    if (f->state == REFRESH_SEND) {
        nng_msg_free(nng_aio_get_msg(f->aio)); /* not sent: ours again */
        nng_aio_set_msg(f->aio, NULL);
    }
    if (rv != 0) {
        /* A STATUS queued behind other requests on a live connection
         * (client_endpoint_connected) says nothing against the node. */
        bool queued = f->state == REFRESH_SEND && rv == NNG_ETIMEDOUT &&
                      client_endpoint_connected(&c->eps[f->ep]);
        if (!atomic_load(&c->closing) && !queued) {
            client_route_failed(c, f->ep);
        }
    } else {
        nng_msg *msg = nng_aio_get_msg(f->aio);
        nng_aio_set_msg(f->aio, NULL);
        refresh_learn(c, msg);
    }
    refresh_next(c);
}

/* Run the refresh begun by this thread: its first question goes from
 * here, the rest from its callbacks. */
static void refresh_run(mc_client *c)
{
    pthread_mutex_lock(&c->mu);
    bool closing = atomic_load(&c->closing);
    if (!closing) {
        c->busy++;
    }
    pthread_mutex_unlock(&c->mu);
    if (closing) {
        refresh_end(c, false);
        return;
    }
    refresh_next(c);
}

void client_route_refresh(mc_client *c, int64_t deadline_ms)
{
    CLIENT_ASSERT_NOT_IN_CALLBACK(
        "no synchronous libmemcoord call in the callback of an asynchronous "
        "call: it blocks one of the nng threads that the calls need");
    struct client_route *r = &c->route;
    int64_t now = base_mono_ms();
    int64_t budget = (deadline_ms - now) / 2;
    /* A call with no time to spare leaves the refresh to the next one. */
    if (budget < 1) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    if (!refresh_due_locked(r, now)) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    refresh_begin_locked(c, now, budget);
    unsigned ended = r->refreshes;
    int64_t until_ms = c->refresh.until_ms;
    pthread_mutex_unlock(&r->mu);
    refresh_run(c);
    /* Wait for it: it ends by until_ms, give or take an answer in flight;
     * a little more than that and the caller goes on anyway. */
    int64_t give_up_ms = until_ms + MC_CLIENT_STATUS_REPLY_MS;
    struct timespec ts = {give_up_ms / 1000,
                          (long)(give_up_ms % 1000) * 1000000};
    pthread_mutex_lock(&r->mu);
    while (r->refreshes == ended &&
           pthread_cond_timedwait(&r->refreshed, &r->mu, &ts) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&r->mu);
}

/* Parked call k's wait ran out, or the client is closing: unpark it. */
static void park_cancel(nng_aio *aio, void *arg, int rv)
{
    struct client_call *k = arg;
    struct client_route *r = &k->c->route;
    pthread_mutex_lock(&r->mu);
    bool was_queued = k->queued;
    if (was_queued) {
        call_list_remove(&r->waiters, k);
    }
    pthread_mutex_unlock(&r->mu);
    if (was_queued) {
        nng_aio_finish(aio, rv);
    }
}

bool client_refresh_park(mc_client *c, struct client_call *k)
{
    struct client_route *r = &c->route;
    int64_t now = base_mono_ms();
    int64_t budget = (k->deadline_ms - now) / 2;
    if (budget < 1) {
        return false;
    }
    pthread_mutex_lock(&r->mu);
    bool begin = refresh_due_locked(r, now);
    if (begin) {
        refresh_begin_locked(c, now, budget);
    }
    /* Without a shard count every attempt would be forwarded: better to
     * wait for the first map than to load the nodes with forwards. */
    bool park = begin || (r->refreshing && r->shard_count == 0);
    nng_aio *aio = k->io;
    if (park) {
        k->state = CALL_MAP;
        call_list_push(&r->waiters, k);
        /* Parked under the lock, so that the refresh cannot end between
         * the decision and the park. */
        bool begun = nng_aio_begin(aio); /* false only once stopped */
        ASSERT(begun);
        nng_aio_set_timeout(aio, budget < MC_CLIENT_REFRESH_MS_MAX
                                     ? (nng_duration)budget
                                     : MC_CLIENT_REFRESH_MS_MAX);
        nng_aio_defer(aio, park_cancel, k);
    }
    pthread_mutex_unlock(&r->mu);
    if (begin) {
        refresh_run(c);
    }
    if (park) {
        client_abort_if_closing(c, aio);
    }
    return park;
}

mc_err client_refresh_init(mc_client *c, mc_result *res)
{
    struct client_refresh *f = &c->refresh;
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_STATUS;
    if (proto_frame_encode(&req.base, PROTO_REQUEST, NULL, &f->frame,
                           &f->frame_len) != MC_OK) {
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    int rv = nng_aio_alloc(&f->aio, refresh_cb, c);
    if (rv != 0) {
        mc_free(f->frame);
        f->frame = NULL;
        return client_result_set(res, MC_INTERNAL, "nng_aio_alloc: %s",
                                 nng_strerror(rv));
    }
    return MC_OK;
}

void client_refresh_fini(mc_client *c)
{
    struct client_refresh *f = &c->refresh;
    ASSERT(!c->route.refreshing);
    nng_aio_stop(f->aio);
    nng_aio_free(f->aio);
    f->aio = NULL;
    mc_free(f->frame);
    f->frame = NULL;
}
