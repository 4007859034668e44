/* watch and wait of libmemcoord.
 *
 * A node answers a watch of one shard (DESIGN.md §5, node/watch.c): the
 * events of a key, or of a prefix in that shard, after a revision, as a
 * long poll. Revisions are per shard, so a prefix watch needs every shard.
 * Two designs were possible: the library asks each shard itself, or a
 * node fans a prefix watch out to the leaders of every shard and merges.
 * The library does it, because it is the simpler correct one: each shard's
 * poll goes straight to that shard's leader (the map of route.c), fails
 * over on its own (a dead leader stops one shard's poll, not all of them),
 * and the resume point is simply one revision per shard; a node fan-out
 * would need forwards that wait, cancelling the others when one shard
 * answers, and a merged answer that could still be cut by a failover.
 *
 * So an mc_watch keeps one long poll per watched shard (the key's shard,
 * or all of them for a prefix) in flight, without threads of its own: each
 * is an nng aio on a context of the shard leader's socket, whose callback
 * only records the answer and wakes mc_watch_next. mc_watch_next, on the
 * caller's thread, takes the answers, sends the next polls, and retries
 * failures the way call.c does (NOT_LEADER hints at once; other failures
 * after a backoff, with the map refreshed; after repeated direct failures
 * one attempt through the caller's endpoints, which forward). A slot's
 * revision only moves when its events are handed to the caller, so the
 * token (one revision per shard) always names exactly what was returned.
 *
 *   slot:  IDLE --send--> BUSY (nng owns the aio) --callback--> DONE
 *          DONE --mc_watch_next takes the answer--> IDLE (at once, or after
 *          a backoff)
 *
 * mc_wait is one long poll through client_call, with a call deadline of
 * its wait plus MC_CLIENT_LONGPOLL_MARGIN_MS. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/internal.h"

const char *mc_event_type_name(mc_event_type t)
{
    switch (t) {
    case MC_EVENT_PUT:
        return "put";
    case MC_EVENT_DELETE:
        return "delete";
    case MC_EVENT_EXPIRE:
        return "expire";
    case MC_EVENT_PROMOTE:
        return "promote";
    default:
        return "unknown";
    }
}

void mc_events_free(mc_event *events, size_t n)
{
    if (events == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        client_record_fini(&events[i].record);
    }
    mc_free(events);
}

/* ---- the watch ---- */

struct watch_slot {
    struct mc_watch *w;
    uint32_t shard;
    uint64_t rev; /* every event up to rev was returned to the caller */
    nng_aio *aio;
    /* The attempt in flight, while busy: nng and the callback own it. */
    bool busy;
    nng_ctx ctx;
    bool sending;
    int reply_wait_ms;
    size_t ep;
    bool direct;
    unsigned lost_at_send; /* ep's pipes_lost when it was sent */
    /* Under w->mu: set by the callback. */
    bool done;
    int rv;
    nng_msg *reply;
    bool sent; /* a connection took the request */
    /* Between attempts; only mc_watch_next touches these. */
    int64_t ready_ms;
    unsigned fails;        /* failed attempts in a row */
    unsigned direct_fails; /* of them, direct ones */
    unsigned hints;        /* NOT_LEADER hints followed in a row */
    bool failing;          /* the last attempt failed */
    mc_result last;
};

struct mc_watch {
    mc_client *c;
    char *ns;
    char *key; /* or the prefix */
    bool prefix;
    uint32_t shard_count;
    struct watch_slot *slots;
    uint32_t n_slots;
    unsigned next_ep; /* the caller endpoint of the next forwarded attempt */
    char *token;
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* a slot is done (CLOCK_MONOTONIC) */
    unsigned n_done;    /* under mu */
};

/* A watch request of slot s, from its revision, waiting wait_ms. */
static void watch_request(const struct mc_watch *w, const struct watch_slot *s,
                          uint32_t wait_ms, Mcpb__Request *req)
{
    mcpb__request__init(req);
    req->op = MCPB__OP__OP_WATCH;
    req->has_ns = true;
    req->ns.data = (uint8_t *)w->ns;
    req->ns.len = strlen(w->ns);
    if (w->prefix) {
        req->has_prefix = req->has_shard = true;
        req->prefix.data = (uint8_t *)w->key;
        req->prefix.len = strlen(w->key);
        req->shard = s->shard;
    } else {
        req->has_key = true;
        req->key.data = (uint8_t *)w->key;
        req->key.len = strlen(w->key);
    }
    req->has_after_rev = true;
    req->after_rev = s->rev;
    req->has_wait_ms = true;
    req->wait_ms = wait_ms;
}

static void slot_cb(void *arg)
{
    struct watch_slot *s = arg;
    int rv = nng_aio_result(s->aio);
    if (s->sending && rv == 0) {
        s->sending = false;
        nng_aio_set_timeout(s->aio, s->reply_wait_ms);
        nng_ctx_recv(s->ctx, s->aio);
        return;
    }
    nng_msg *reply = NULL;
    if (s->sending) {
        nng_msg_free(nng_aio_get_msg(s->aio)); /* not sent: ours again */
    } else if (rv == 0) {
        reply = nng_aio_get_msg(s->aio);
    }
    struct mc_watch *w = s->w;
    pthread_mutex_lock(&w->mu);
    s->done = true;
    s->rv = rv;
    s->reply = reply;
    s->sent = !s->sending;
    w->n_done++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* The slot failed an attempt: try again after a backoff. */
static void slot_retry_later(struct mc_watch *w, struct watch_slot *s)
{
    s->failing = true;
    s->hints = 0;
    int pause = client_backoff_ms(w->c, s->fails++);
    s->ready_ms = base_mono_ms() + pause;
}

/* Send slot s's next poll: straight to the shard's leader while the map
 * names one and direct attempts did not fail too often, else through the
 * caller's next endpoint (call.c's rule). */
static void slot_send(struct mc_watch *w, struct watch_slot *s)
{
    mc_client *c = w->c;
    Mcpb__Request req;
    watch_request(w, s, MC_CLIENT_WATCH_POLL_MS, &req);
    size_t ep = 0;
    bool direct = false;
    if (s->direct_fails < MC_CLIENT_DIRECT_TRIES_MAX) {
        client_route_refresh(c, base_mono_ms() + 2 * MC_CLIENT_REFRESH_MS_MAX);
        uint32_t shard;
        direct = client_route_pick(c, &req, &ep, &shard);
    }
    if (!direct) {
        s->direct_fails = 0;
        ep = client_route_forward_ep(c, &w->next_ep);
    }
    req.has_no_forward = direct;
    req.no_forward = direct;
    void *frame;
    size_t len;
    nng_msg *msg = NULL;
    if (proto_frame_encode(&req.base, PROTO_REQUEST, NULL, &frame, &len) !=
        MC_OK) {
        client_result_set(&s->last, MC_INTERNAL, "out of memory");
        slot_retry_later(w, s);
        return;
    }
    int rv = nng_msg_alloc(&msg, len);
    if (rv == 0) {
        memcpy(nng_msg_body(msg), frame, len);
    }
    mc_free(frame);
    if (rv == 0) {
        rv = nng_ctx_open(&s->ctx, c->eps[ep].sock);
        if (rv != 0) {
            nng_msg_free(msg);
        }
    }
    if (rv != 0) {
        client_result_set(&s->last, MC_INTERNAL, "nng: %s", nng_strerror(rv));
        slot_retry_later(w, s);
        return;
    }
    s->ep = ep;
    s->direct = direct;
    s->lost_at_send = atomic_load(&c->eps[ep].pipes_lost);
    s->busy = true;
    s->sending = true;
    s->done = false;
    s->reply_wait_ms = MC_CLIENT_WATCH_POLL_MS + MC_CLIENT_LONGPOLL_MARGIN_MS;
    nng_aio_set_msg(s->aio, msg);
    /* As call.c's attempts: a connected socket's send waits its turn. */
    nng_aio_set_timeout(s->aio, client_endpoint_connected(&c->eps[ep])
                                    ? MC_CLIENT_REPLY_WAIT_MS
                                    : MC_CLIENT_CONNECT_WAIT_MS);
    nng_ctx_send(s->ctx, s->aio);
}

/* What mc_watch_next gathers from the slots' answers. */
struct batch {
    mc_event *events;
    size_t n;
    size_t cap;
};

static mc_err batch_add(struct batch *b, uint32_t shard,
                        const Mcpb__WatchEvent *e)
{
    if (b->n == b->cap) {
        size_t cap = b->cap == 0 ? 16 : 2 * b->cap;
        mc_event *grown = mc_realloc(b->events, cap * sizeof *grown);
        if (grown == NULL) {
            return MC_INTERNAL;
        }
        b->events = grown;
        b->cap = cap;
    }
    mc_event *out = &b->events[b->n];
    memset(out, 0, sizeof *out);
    static const Mcpb__Record empty = MCPB__RECORD__INIT;
    if (client_record_init(&out->record,
                           e->record != NULL ? e->record : &empty) != MC_OK) {
        return MC_INTERNAL;
    }
    out->type = (mc_event_type)e->type;
    out->shard = shard;
    out->revision = e->revision;
    out->seq = e->seq;
    b->n++;
    return MC_OK;
}

/* Hand the events of answer r of slot s to b and move s on. All or
 * nothing: on failure b and s are as they were. */
static mc_err slot_take_events(struct watch_slot *s, const Mcpb__Response *r,
                               struct batch *b)
{
    size_t before = b->n;
    for (size_t i = 0; i < r->n_events; i++) {
        if (batch_add(b, s->shard, r->events[i]) != MC_OK) {
            for (size_t k = before; k < b->n; k++) {
                client_record_fini(&b->events[k].record);
            }
            b->n = before;
            return MC_INTERNAL;
        }
    }
    if (r->revision > s->rev) {
        s->rev = r->revision;
    }
    return MC_OK;
}

enum take {
    TAKE_NEXT,    /* go on */
    TAKE_STOP,    /* return now: res says what */
    TAKE_LATER,   /* leave this answer for the next call */
};

/* Take the answer of done slot s: events into b, failures into the slot's
 * retry state, and errors the caller must see into res. */
static enum take slot_take(struct mc_watch *w, struct watch_slot *s,
                           struct batch *b, mc_err *rv, mc_result *res)
{
    mc_client *c = w->c;
    Mcpb__Response *r = NULL;
    if (s->rv != 0) {
        /* A poll queued behind other requests on a live connection says
         * nothing against the node (client_endpoint_connected). */
        if (s->sent || s->rv != NNG_ETIMEDOUT ||
            !client_endpoint_connected(&c->eps[s->ep])) {
            client_route_failed(c, s->ep);
            s->direct_fails += s->direct;
        }
        client_result_set(&s->last, MC_UNAVAILABLE, "shard %u: %s %s: %s",
                          s->shard, s->sent ? "no answer from" :
                                              "cannot reach",
                          c->eps[s->ep].url, nng_strerror(s->rv));
        slot_retry_later(w, s);
        return TAKE_NEXT;
    }
    char err[160];
    if (proto_response_decode(nng_msg_body(s->reply), nng_msg_len(s->reply),
                              &r, err, sizeof err) != MC_OK ||
        r->code >= MC_ERR_COUNT) {
        client_result_set(&s->last, MC_INTERNAL, "shard %u: bad answer from "
                          "%s: %s", s->shard, c->eps[s->ep].url,
                          r == NULL ? err : "unknown code");
        if (r != NULL) {
            mcpb__response__free_unpacked(r, NULL);
        }
        slot_retry_later(w, s);
        return TAKE_NEXT;
    }
    mc_err code = (mc_err)r->code;
    enum take step = TAKE_NEXT;
    client_route_answered(c, s->ep);
    if (code == MC_OK) {
        if (slot_take_events(s, r, b) != MC_OK) {
            *rv = client_result_set(res, MC_INTERNAL, "out of memory");
            step = TAKE_STOP; /* the slot polls the same events again */
        }
        s->fails = s->direct_fails = s->hints = 0;
        s->failing = false;
        s->ready_ms = 0;
    } else if (code == MC_COMPACTED && b->n > 0) {
        step = TAKE_LATER; /* first the events gathered so far */
    } else if (code == MC_COMPACTED) {
        /* The watch moves on from the shard's current revision: the
         * caller re-reads what it missed. */
        s->rev = r->revision > s->rev ? r->revision : s->rev;
        s->ready_ms = 0;
        s->failing = false;
        *rv = client_result_set(res, MC_COMPACTED, "shard %u: %s", s->shard,
                                r->message != NULL ? r->message : "");
        if (res != NULL) {
            res->mod_rev = r->revision;
        }
        step = TAKE_STOP;
    } else if (code == MC_NOT_LEADER && s->direct && r->has_leader_id &&
               r->leader_id != 0 && s->hints < MC_CLIENT_HINTS_MAX) {
        client_route_learn_hint(c, s->shard, r->leader_id, r->leader_url);
        s->hints++;
        s->ready_ms = 0;
    } else if (code == MC_UNAVAILABLE || code == MC_NOT_LEADER ||
               code == MC_TIMEOUT) {
        client_route_stale(c);
        s->direct_fails += s->direct;
        client_result_set(&s->last, code, "shard %u: %s", s->shard,
                          r->message != NULL ? r->message : mc_strerror(code));
        slot_retry_later(w, s);
    } else {
        *rv = client_result_set(res, code, "%s", r->message != NULL
                                                     ? r->message
                                                     : mc_strerror(code));
        s->ready_ms = base_mono_ms() + MC_CLIENT_BACKOFF_MS_MAX;
        step = TAKE_STOP;
    }
    mcpb__response__free_unpacked(r, NULL);
    return step;
}

/* Take the answers of every done slot, in shard order. */
static enum take take_done(struct mc_watch *w, struct batch *b, mc_err *rv,
                           mc_result *res)
{
    for (uint32_t i = 0; i < w->n_slots; i++) {
        struct watch_slot *s = &w->slots[i];
        pthread_mutex_lock(&w->mu);
        bool done = s->busy && s->done;
        pthread_mutex_unlock(&w->mu);
        if (!done) {
            continue;
        }
        enum take step = slot_take(w, s, b, rv, res);
        if (step == TAKE_LATER) {
            return TAKE_STOP;
        }
        /* The answer is taken: the slot is idle again. */
        (void)nng_ctx_close(s->ctx); /* fails only when already closed */
        if (s->reply != NULL) {
            nng_msg_free(s->reply);
            s->reply = NULL;
        }
        pthread_mutex_lock(&w->mu);
        s->busy = s->done = false;
        w->n_done--;
        pthread_mutex_unlock(&w->mu);
        if (step == TAKE_STOP) {
            return TAKE_STOP;
        }
    }
    return TAKE_NEXT;
}

/* Send the poll of every idle slot that is due; the earliest time another
 * one is due, or 0. */
static int64_t send_due(struct mc_watch *w)
{
    int64_t now = base_mono_ms();
    int64_t next = 0;
    for (uint32_t i = 0; i < w->n_slots; i++) {
        struct watch_slot *s = &w->slots[i];
        if (s->busy) {
            continue;
        }
        if (s->ready_ms <= now) {
            slot_send(w, s);
        }
        if (!s->busy && (next == 0 || s->ready_ms < next)) {
            next = s->ready_ms;
        }
    }
    return next;
}

/* Cut short the polls whose connection closed since they were sent: no
 * answer will come on it (a node killed, restarted); their callbacks
 * report the cancel and the slots send again after a backoff. */
static void cancel_lost(struct mc_watch *w)
{
    for (uint32_t i = 0; i < w->n_slots; i++) {
        struct watch_slot *s = &w->slots[i];
        if (s->busy &&
            atomic_load(&w->c->eps[s->ep].pipes_lost) != s->lost_at_send) {
            s->lost_at_send = atomic_load(&w->c->eps[s->ep].pipes_lost);
            nng_aio_cancel(s->aio); /* a no-op when it just finished */
        }
    }
}

/* Wait until a slot is done or until_ms (base_mono_ms). */
static void wait_done(struct mc_watch *w, int64_t until_ms)
{
    pthread_mutex_lock(&w->mu);
    while (w->n_done == 0) {
        int64_t left = until_ms - base_mono_ms();
        if (left <= 0) {
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        int rc = pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        if (rc != 0 && rc != ETIMEDOUT && rc != EINTR) {
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
}

mc_err mc_watch_next(mc_watch *w, int timeout_ms, mc_event **events,
                     size_t *n, mc_result *res)
{
    ASSERT(w != NULL);
    CLIENT_ASSERT_NOT_IN_CALLBACK(
        "no mc_watch_next in the callback of an asynchronous call: it "
        "blocks one of the nng threads that the calls need");
    client_result_clear(res);
    if (events == NULL || n == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "events or n is NULL");
    }
    *events = NULL;
    *n = 0;
    if (timeout_ms < 0 || timeout_ms > MC_WATCH_WAIT_MS_MAX) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "timeout of %d ms is not within 0..%d ms",
                                 timeout_ms, MC_WATCH_WAIT_MS_MAX);
    }
    int64_t deadline = base_mono_ms() + timeout_ms;
    struct batch b = {0};
    mc_err rv = MC_OK;
    for (;;) {
        enum take step = take_done(w, &b, &rv, res);
        /* Before returning too: the shards that just answered poll again
         * while the caller works on their events. */
        int64_t due = send_due(w);
        if (step == TAKE_STOP || b.n > 0) {
            break;
        }
        if (base_mono_ms() >= deadline) {
            /* Nothing came: say so if a shard is failing right now. */
            for (uint32_t i = 0; i < w->n_slots; i++) {
                if (w->slots[i].failing) {
                    rv = MC_UNAVAILABLE;
                    if (res != NULL) {
                        *res = w->slots[i].last;
                        res->code = MC_UNAVAILABLE;
                    }
                    break;
                }
            }
            break;
        }
        int64_t until = due != 0 && due < deadline ? due : deadline;
        int64_t check = base_mono_ms() + MC_CLIENT_PIPE_CHECK_MS;
        wait_done(w, check < until ? check : until);
        cancel_lost(w);
    }
    if (b.n == 0) {
        mc_events_free(b.events, 0);
        return rv;
    }
    /* Events gathered moved their slots on: they go out even when a later
     * answer failed, whose slot asks again (a COMPACTED answer waits for
     * the next call, see slot_take). */
    client_result_clear(res);
    *events = b.events;
    *n = b.n;
    return MC_OK;
}

/* ---- tokens ---- */

const char *mc_watch_token(const mc_watch *w)
{
    ASSERT(w != NULL);
    char *t = w->token;
    size_t len = 0;
    len += (size_t)snprintf(t, MC_CLIENT_TOKEN_BYTES_MAX, "1/%u",
                            w->shard_count);
    for (uint32_t i = 0; i < w->n_slots; i++) {
        len += (size_t)snprintf(t + len, MC_CLIENT_TOKEN_BYTES_MAX - len,
                                "%c%u:%" PRIu64, i == 0 ? '/' : ',',
                                w->slots[i].shard, w->slots[i].rev);
        ASSERT(len < MC_CLIENT_TOKEN_BYTES_MAX);
    }
    return t;
}

static bool parse_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    if (*s < '0' || *s > '9') {
        return false;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0) {
        return false;
    }
    *out = v;
    *p = end;
    return true;
}

/* Set the slots' revisions from a token of a watch of the same shards. */
static mc_err token_apply(struct mc_watch *w, const char *token,
                          mc_result *res)
{
    const char *p = token;
    uint64_t count;
    bool seen[MC_SHARDS_MAX] = {false};
    if (strncmp(p, "1/", 2) != 0) {
        goto bad;
    }
    p += 2;
    if (!parse_u64(&p, &count) || *p != '/') {
        goto bad;
    }
    if (count != w->shard_count) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "the token is of a cluster of %" PRIu64
                                 " shards, this one has %u", count,
                                 w->shard_count);
    }
    do {
        p++;
        uint64_t shard, rev;
        if (!parse_u64(&p, &shard) || *p != ':' || shard >= count) {
            goto bad;
        }
        p++;
        if (!parse_u64(&p, &rev) || seen[shard]) {
            goto bad;
        }
        seen[shard] = true;
        for (uint32_t i = 0; i < w->n_slots; i++) {
            if (w->slots[i].shard == shard) {
                w->slots[i].rev = rev;
            }
        }
    } while (*p == ',');
    if (*p != '\0') {
        goto bad;
    }
    for (uint32_t i = 0; i < w->n_slots; i++) {
        if (!seen[w->slots[i].shard]) {
            return client_result_set(res, MC_INVALID_ARGUMENT,
                                     "the token has no revision of shard %u: "
                                     "it is of another watch",
                                     w->slots[i].shard);
        }
    }
    return MC_OK;
bad:
    return client_result_set(res, MC_INVALID_ARGUMENT,
                             "'%.64s' is not a watch token", token);
}

/* Ask every slot's shard for its current revision (a watch that waits 0
 * ms and names no revision starts from the leader's applied index, after a
 * barrier). */
static mc_err positions_now(struct mc_watch *w, mc_result *res)
{
    int64_t deadline = client_deadline(w->c);
    for (uint32_t i = 0; i < w->n_slots; i++) {
        struct watch_slot *s = &w->slots[i];
        Mcpb__Request req;
        watch_request(w, s, 0, &req);
        req.has_after_rev = false;
        Mcpb__Response *r;
        mc_err rv = client_call(w->c, &req, deadline, &r, res);
        if (rv == MC_OK) {
            s->rev = r->revision;
        }
        if (r != NULL) {
            mcpb__response__free_unpacked(r, NULL);
        }
        if (rv != MC_OK) {
            return rv;
        }
    }
    return MC_OK;
}

/* ---- open and close ---- */

static void watch_free(mc_watch *w)
{
    for (uint32_t i = 0; w->slots != NULL && i < w->n_slots; i++) {
        struct watch_slot *s = &w->slots[i];
        if (s->aio == NULL) {
            continue;
        }
        /* Cancels the poll in flight and waits out its callback; the
         * aio takes no new operation after this. */
        nng_aio_stop(s->aio);
        if (s->busy) {
            (void)nng_ctx_close(s->ctx); /* fails only when closed */
        }
        if (s->reply != NULL) {
            nng_msg_free(s->reply);
        }
        nng_aio_free(s->aio);
    }
    mc_free(w->slots);
    mc_free(w->ns);
    mc_free(w->key);
    mc_free(w->token);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    mc_free(w);
}

void mc_watch_close(mc_watch *w)
{
    if (w != NULL) {
        watch_free(w);
    }
}

/* Check ns and the key or prefix as the node will. */
static mc_err watch_check(const char *ns, const char *key, bool prefix,
                          mc_result *res)
{
    if (ns == NULL || key == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "namespace or key is missing");
    }
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_WATCH;
    req.has_ns = true;
    req.ns.data = (uint8_t *)ns;
    req.ns.len = strlen(ns);
    req.has_shard = prefix;
    req.has_prefix = prefix;
    req.has_key = !prefix;
    req.prefix.data = req.key.data = (uint8_t *)key;
    req.prefix.len = req.key.len = strlen(key);
    char err[sizeof res->message];
    mc_err rv = proto_request_check(&req, MC_VALUE_BYTES_MAX, err,
                                    sizeof err);
    return rv == MC_OK ? MC_OK : client_result_set(res, rv, "%s", err);
}

static mc_err watch_alloc(mc_client *c, const char *ns, const char *key,
                          bool prefix, uint32_t shard_count, mc_watch **out,
                          mc_result *res)
{
    mc_watch *w = mc_calloc(1, sizeof *w);
    if (w == NULL) {
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->c = c;
    w->prefix = prefix;
    w->shard_count = shard_count;
    w->n_slots = prefix ? shard_count : 1;
    w->next_ep = atomic_load(&c->preferred_ep) % (unsigned)c->n_eps;
    w->ns = mc_strdup(ns);
    w->key = mc_strdup(key);
    w->token = mc_malloc(MC_CLIENT_TOKEN_BYTES_MAX);
    w->slots = mc_calloc(w->n_slots, sizeof *w->slots);
    if (w->ns == NULL || w->key == NULL || w->token == NULL ||
        w->slots == NULL) {
        watch_free(w);
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    for (uint32_t i = 0; i < w->n_slots; i++) {
        struct watch_slot *s = &w->slots[i];
        s->w = w;
        s->shard = prefix ? i
                          : proto_shard_of_slot(
                                proto_slot((const uint8_t *)ns, strlen(ns),
                                           (const uint8_t *)key, strlen(key)),
                                shard_count);
        int rv = nng_aio_alloc(&s->aio, slot_cb, s);
        if (rv != 0) {
            watch_free(w);
            return client_result_set(res, MC_INTERNAL, "nng_aio_alloc: %s",
                                     nng_strerror(rv));
        }
    }
    *out = w;
    return MC_OK;
}

mc_err mc_watch_open(mc_client *c, const char *ns, const char *key,
                     const mc_watch_opts *opts, mc_watch **out,
                     mc_result *res)
{
    ASSERT(c != NULL);
    client_result_clear(res);
    if (out == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT, "out is NULL");
    }
    *out = NULL;
    static const mc_watch_opts defaults = MC_WATCH_OPTS_INIT;
    if (opts == NULL) {
        opts = &defaults;
    }
    if (opts->after_rev < MC_WATCH_NOW) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "after_rev %lld is neither MC_WATCH_NOW nor "
                                 "a revision", (long long)opts->after_rev);
    }
    mc_err rv = watch_check(ns, key, opts->prefix, res);
    if (rv != MC_OK) {
        return rv;
    }
    uint32_t shard_count;
    rv = client_shard_count(c, client_deadline(c), &shard_count, res);
    if (rv != MC_OK) {
        return rv;
    }
    mc_watch *w = NULL;
    rv = watch_alloc(c, ns, key, opts->prefix, shard_count, &w, res);
    if (rv != MC_OK) {
        return rv;
    }
    if (opts->resume_token != NULL) {
        rv = token_apply(w, opts->resume_token, res);
    } else if (opts->after_rev >= 0) {
        for (uint32_t i = 0; i < w->n_slots; i++) {
            w->slots[i].rev = (uint64_t)opts->after_rev;
        }
    } else {
        rv = positions_now(w, res);
    }
    if (rv != MC_OK) {
        watch_free(w);
        return rv;
    }
    client_result_clear(res);
    *out = w;
    return MC_OK;
}

/* ---- wait ---- */

/* The final TIMEOUT of a wait of timeout_ms, in the node's words but with
 * the whole wait; version is the key's at the last answer (0: missing). */
static mc_err wait_timed_out(const Mcpb__Request *req, const char *key,
                             int timeout_ms, uint64_t version,
                             mc_result *res)
{
    char now[64] = "it does not exist";
    if (version > 0) {
        snprintf(now, sizeof now, "it is at version %" PRIu64, version);
    }
    mc_err rv;
    switch (req->wait_for) {
    case MC_WAIT_EXISTS:
        rv = client_result_set(res, MC_TIMEOUT, "%.200s did not exist within "
                               "%d ms", key, timeout_ms);
        break;
    case MC_WAIT_EQUALS:
        rv = client_result_set(res, MC_TIMEOUT, "%.200s did not take the "
                               "value waited for within %d ms (%s)", key,
                               timeout_ms, now);
        break;
    default:
        rv = client_result_set(res, MC_TIMEOUT, "%.200s did not reach "
                               "version %" PRIu64 " within %d ms (%s)", key,
                               req->min_version, timeout_ms, now);
    }
    if (res != NULL) {
        res->version = version;
    }
    return rv;
}

/* The node's answer r (OK) into *out, when out is not NULL. */
static mc_err wait_record(const Mcpb__Response *r, mc_record **out,
                          mc_result *res)
{
    if (out == NULL) {
        return MC_OK;
    }
    if (r->record == NULL) {
        return client_result_set(res, MC_INTERNAL, "the node answered a "
                                 "wait without a record");
    }
    *out = mc_malloc(sizeof **out);
    if (*out == NULL || client_record_init(*out, r->record) != MC_OK) {
        mc_free(*out);
        *out = NULL;
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    return MC_OK;
}

/* A wait is a chain of long polls of at most MC_CLIENT_WATCH_POLL_MS each
 * (internal.h says why they are bounded); each goes on from the revision
 * the last one ended at, so the node checks every event of the key in
 * between and a value that held only for a moment is not missed. */
mc_err mc_wait(mc_client *c, const char *ns, const char *key,
               const mc_wait_opts *opts, mc_record **out, mc_result *res)
{
    ASSERT(c != NULL);
    client_result_clear(res);
    if (out != NULL) {
        *out = NULL;
    }
    if (ns == NULL || key == NULL || opts == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "namespace, key or options missing");
    }
    int timeout_ms = opts->timeout_ms == 0 ? MC_WAIT_TIMEOUT_MS_DEFAULT
                                           : opts->timeout_ms;
    if (timeout_ms < 0 || timeout_ms > MC_WATCH_WAIT_MS_MAX) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "timeout of %d ms is not within 1..%d ms",
                                 timeout_ms, MC_WATCH_WAIT_MS_MAX);
    }
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_WAIT;
    req.has_ns = req.has_key = true;
    req.ns.data = (uint8_t *)ns;
    req.ns.len = strlen(ns);
    req.key.data = (uint8_t *)key;
    req.key.len = strlen(key);
    req.has_wait_for = true;
    req.wait_for = (uint32_t)opts->cond;
    if (opts->cond == MC_WAIT_EQUALS) {
        req.has_value = true;
        req.value.data = (uint8_t *)(opts->value != NULL ? opts->value : "");
        req.value.len = opts->value != NULL ? opts->value_len : 0;
    }
    if (opts->cond == MC_WAIT_VERSION) {
        req.has_min_version = true;
        req.min_version = opts->version;
    }
    req.has_wait_ms = true;
    req.wait_ms = (uint32_t)timeout_ms;
    char err[sizeof res->message];
    mc_err rv = proto_request_check(&req, MC_VALUE_BYTES_MAX, err,
                                    sizeof err);
    if (rv != MC_OK) {
        return client_result_set(res, rv, "%s", err);
    }
    int64_t deadline = base_mono_ms() + timeout_ms;
    uint64_t version = 0;
    for (;;) {
        int64_t left = deadline - base_mono_ms();
        left = left < 0 ? 0 : left;
        req.wait_ms = (uint32_t)(left < MC_CLIENT_WATCH_POLL_MS
                                     ? left
                                     : MC_CLIENT_WATCH_POLL_MS);
        /* The call outlives the poll it asks for. */
        Mcpb__Response *r;
        rv = client_call(c, &req,
                         base_mono_ms() + req.wait_ms +
                             MC_CLIENT_LONGPOLL_MARGIN_MS,
                         &r, res);
        bool slice_over = rv == MC_TIMEOUT && r != NULL && r->has_revision;
        if (rv == MC_OK) {
            rv = wait_record(r, out, res);
        } else if (slice_over) {
            req.has_after_rev = true; /* go on from where it ended */
            req.after_rev = r->revision;
            version = r->version;
        }
        if (r != NULL) {
            mcpb__response__free_unpacked(r, NULL);
        }
        bool again = slice_over || rv == MC_UNAVAILABLE || rv == MC_TIMEOUT;
        if (!again) {
            return rv;
        }
        if (base_mono_ms() >= deadline) {
            /* A poll that failed without an answer (a failover) may have
             * left less than its slice: the node's word is the last one. */
            return slice_over || req.has_after_rev
                       ? wait_timed_out(&req, key, timeout_ms, version, res)
                       : rv;
        }
    }
}
