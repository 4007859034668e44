/* The engine of libmemcoord: one request, from frame to answer, with
 * retries, as a state machine whose every step is an operation on the
 * call's nng aio. There is one implementation of routing, retries and
 * request ids, and no thread of its own; two drivers run the same steps:
 *
 *   asynchronous (client_call_start, kv.c's mc_*_async): the aio has a
 *     callback, which runs the next step on the nng thread that ended the
 *     operation, and the call's end goes to the caller's callback;
 *   synchronous (client_call): the aio has none; the caller's thread waits
 *     for each operation and runs the next step itself. nng completes an
 *     aio without a callback inline, so a send that a connection takes at
 *     once does not sleep: a call wakes its thread once, for the answer.
 *
 * The first step runs on the thread that starts the call.
 *
 * An attempt sends the framed request on the call's nng_ctx of one socket
 * and waits for the reply. It ends in one of five ways:
 *
 *   ANSWERED  the node answered; the answer's code decides what follows
 *   QUEUED    the socket has a connection, but it did not take the request
 *             in time: its turn behind the client's other requests had not
 *             come. Not sent, and nothing against the node or the map
 *   NOT_SENT  no connection took the request: it certainly did not apply
 *   UNKNOWN   a connection took it but no answer came (timeout, reset): a
 *             write may or may not have applied
 *   FATAL     a local failure (out of memory, bad reply): stop at once
 *
 * QUEUED, NOT_SENT, UNKNOWN and the answers UNAVAILABLE, NOT_LEADER and
 * TIMEOUT are retried after an exponential backoff with jitter, until the
 * deadline; nothing is sent after it (attempt_next). A write is retried
 * with the same (client_id, seq), which the shard dedupes. If any attempt
 * of a write ended UNKNOWN and no later answer settled it, the call says
 * TIMEOUT: the write may have applied.
 *
 * Where each attempt goes: a request for a shard (a key, or LIST of one
 * shard) goes "direct", to the node the shard map (route.c) names as the
 * leader, or for a serializable read to a replica the caller listed, with
 * no_forward set, so a node that does not lead answers NOT_LEADER with the
 * leader's address instead of forwarding. Such a hint is learned and
 * followed at once. A direct attempt that fails marks the map stale, and
 * the next attempt first refreshes it (refresh.c, rate-limited: the call
 * that starts a refresh waits for it, others go on with the map they have).
 * After MC_CLIENT_DIRECT_TRIES_MAX direct failures in a row, one attempt
 * goes the old way: to the caller's endpoints in turn (skipping suspect
 * ones while another is not), without no_forward, and that node forwards.
 * Requests without a shard (STATUS) always go that way.
 *
 *   attempt:  map names a usable node? --yes--> DIRECT (no_forward)
 *                  |no, or direct failed twice in a row
 *                  v
 *             FORWARDED via the caller's next endpoint not suspect
 *   answer:   final -> done;  NOT_LEADER + hint (direct) -> learn, at once;
 *             other retryable or no answer -> map stale, pause, again
 *
 * The states of a call (enum call_state), each an operation on its aio:
 *
 *   start --no lane--> LANE --lane given [lane_give]--+
 *     |                                               v
 *     +----------------------------------------> target choice
 *   target choice --refresh due, or none known--> MAP --refresh ends-->
 *                 target choice (once without the refresh step)
 *   target choice --> SEND --taken--> RECV --answer--> (final) END
 *                       |not taken      |no answer      |retryable
 *                       v               v               v
 *                     PAUSE <-----------+---------------+  (hint: at once)
 *   PAUSE --backoff over--> target choice;  any --deadline--> END
 *   (target choice first checks the deadline: past it, END without a send)
 *
 * LANE, MAP and PAUSE are operations of the engine's own on the call's aio
 * (nng_aio_begin, a timeout, nng_aio_defer with a cancel function), so
 * that a timeout and mc_client_close's abort end them as they end nng's
 * sends and receives.
 *
 * An asynchronous call ends exactly once, on an nng thread: when its first
 * step ends it on the caller's thread (a local failure), the end is
 * deferred (END) so that callbacks never run on the thread that started
 * the call. A synchronous one ends on its caller's thread.
 *
 * Call objects (a call's aios, contexts and request buffer) come from a
 * pool under c->mu. At most MC_CLIENT_CALLS_MAX calls are in flight on a
 * client (calls_in_flight; a call counts until its callback begins); a
 * start beyond that fails at once. Idle objects beyond
 * MC_CLIENT_CALLS_IDLE_MAX are freed by later starts, a few per start.
 *
 * Close (client_engine_close): the closing flag stops every call at its
 * next step, and each call's aio is aborted so that nothing waits for a
 * timeout. A step that starts an operation reads the flag after starting
 * it and aborts its own aio when it is set (client_abort_if_closing): the
 * abort of the closer either finds the operation registered or comes after
 * the flag was seen. Such a step still reads c after its operation began,
 * which may end at once and end the call: on the thread that started the
 * call, close first waits for every start to return (starters); in a
 * callback, nng_aio_stop in close waits for the callback to return before
 * anything is freed. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/internal.h"

int client_backoff_ms(mc_client *c, unsigned attempt)
{
    unsigned shift = attempt > 16 ? 16 : attempt;
    int64_t full = (int64_t)MC_CLIENT_BACKOFF_MS_MIN << shift;
    if (full > MC_CLIENT_BACKOFF_MS_MAX) {
        full = MC_CLIENT_BACKOFF_MS_MAX;
    }
    /* "Equal jitter": half fixed, half random, so retries of many clients
     * spread out but none retries at once. */
    int half = (int)(full / 2);
    int jitter = (int)(client_random(c) % (uint64_t)(half + 1));
    int out = half + jitter;
    ASSERT(out >= MC_CLIENT_BACKOFF_MS_MIN / 2);
    ASSERT(out <= MC_CLIENT_BACKOFF_MS_MAX);
    return out;
}

static bool op_is_write(uint32_t op)
{
    return op == MCPB__OP__OP_PUT || op == MCPB__OP__OP_DELETE ||
           op == MCPB__OP__OP_TXN;
}

/* Answers that another attempt may change. TIMEOUT from a node means it
 * took the request and could not finish in time: as unknown as a lost
 * reply; except for a wait, whose TIMEOUT says that its condition did not
 * hold for the whole wait. */
static bool is_retryable(uint32_t op, mc_err code)
{
    if (code == MC_TIMEOUT && op == MCPB__OP__OP_WAIT) {
        return false;
    }
    return code == MC_UNAVAILABLE || code == MC_NOT_LEADER ||
           code == MC_TIMEOUT;
}

/* ms (> 0), but at most cap_ms. */
static int at_most(int64_t ms, int cap_ms)
{
    ASSERT(ms > 0);
    ASSERT(cap_ms > 0);
    return ms < cap_ms ? (int)ms : cap_ms;
}

/* An attempt's wait with left_ms (> 0) of the call left: all of it, or
 * at most cap_ms when there is another socket to try. */
static int wait_ms(int64_t left_ms, int cap_ms, size_t n_sockets)
{
    return at_most(left_ms, n_sockets > 1 ? cap_ms : INT32_MAX);
}

/* Fill res from an answer: the code, the versions and the message, or the
 * sentence of the code when the node gave none. */
static void result_from_response(mc_result *res, const Mcpb__Response *r)
{
    memset(res, 0, sizeof *res);
    res->code = (mc_err)r->code;
    res->version = r->version;
    res->create_rev = r->create_rev;
    res->mod_rev = r->mod_rev;
    if (r->message != NULL && r->message[0] != '\0') {
        snprintf(res->message, sizeof res->message, "%s", r->message);
    } else if (r->code != MC_OK) {
        snprintf(res->message, sizeof res->message, "%s",
                 mc_strerror((mc_err)r->code));
    }
}

/* The verdict of a call that found no final answer, into k->last. */
static mc_err give_up(struct client_call *k)
{
    mc_result *last = &k->last;
    mc_err code = last->code;
    if (k->is_write && k->unknown) {
        /* last->code may be UNAVAILABLE from a later attempt, but an
         * earlier one may still apply: only TIMEOUT tells the truth. */
        code = MC_TIMEOUT;
    }
    if (code == MC_OK) {
        code = MC_TIMEOUT; /* the deadline passed before any attempt */
    }
    if (code == MC_NOT_LEADER) {
        /* No leader could be found in time: to the caller that is the
         * shard being unavailable, as the API documents. */
        code = MC_UNAVAILABLE;
    }
    /* The message is cut to fit when it must: it is for people. */
    char detail[sizeof last->message];
    snprintf(detail, sizeof detail, "%s", last->message);
    client_result_set(last, code,
                      "%s after %d attempt%s in %lld ms%s (last: %s)",
                      code == MC_TIMEOUT ? "timed out" : "gave up",
                      k->attempts, k->attempts == 1 ? "" : "s",
                      (long long)(base_mono_ms() - k->started_ms),
                      k->is_write && k->unknown
                          ? "; the write may have applied"
                          : "",
                      detail);
    return code;
}

/* ---- the request: packed once, and a tail per attempt ----
 *
 * A call packs its request once, as given, when it starts (its body); the
 * caller's request is gone after that. What an attempt adds goes in a
 * small tail packed behind the body as the attempt's message is made: the
 * write's request id, drawn once when the write first goes out, and
 * no_forward for a direct attempt. Protobuf merges concatenated messages
 * (proto_frame_pack_merged), so a node decodes body and tail as one
 * request; the two kinds of attempt carry the same (client_id, seq), so
 * the shard dedupes a write whichever of them applied it. Nothing is
 * decoded or packed again, and nothing after the start can fail for want
 * of memory but the message itself. */

/* Pack req as k's body, in k's buffer (kept from its last call). A
 * request for a shard goes without no_forward: each attempt's tail says. */
static mc_err body_pack(struct client_call *k, const Mcpb__Request *req)
{
    Mcpb__Request d = *req; /* shallow: packing only reads it */
    if (k->rk.wants) {
        d.has_no_forward = false;
        d.no_forward = false;
    }
    size_t len = protobuf_c_message_get_packed_size(&d.base);
    if (len > k->body_cap) {
        uint8_t *grown = mc_realloc(k->body, len);
        if (grown == NULL) {
            return MC_INTERNAL;
        }
        k->body = grown;
        k->body_cap = len;
    }
    size_t packed = protobuf_c_message_pack(&d.base, k->body);
    ASSERT(packed == len);
    k->body_len = len;
    return MC_OK;
}

/* The tail of an attempt of k: op again (a required field, packed always:
 * the same value), the request id of a write, no_forward when direct. */
static void tail_make(struct client_call *k, bool direct, Mcpb__Request *tail)
{
    mcpb__request__init(tail);
    tail->op = k->op;
    if (k->lane != NULL) {
        if (k->seq == 0) {
            /* The write's first send: its id, for every attempt. */
            k->seq = ++k->lane->seq;
        }
        tail->has_client_id = true;
        tail->client_id = k->lane->client_id;
        tail->has_seq = true;
        tail->seq = k->seq;
    }
    if (direct) {
        ASSERT(k->rk.wants);
        tail->has_no_forward = true;
        tail->no_forward = true;
    }
}

/* The message of an attempt of k: body and tail in one frame. Errors:
 * nng's (out of memory). */
static int attempt_msg(struct client_call *k, bool direct, nng_msg **out)
{
    Mcpb__Request tail;
    tail_make(k, direct, &tail);
    size_t len = proto_frame_size(
        k->body_len + protobuf_c_message_get_packed_size(&tail.base));
    int rv = nng_msg_alloc(out, len);
    if (rv == 0) {
        proto_frame_pack_merged(k->body, k->body_len, &tail.base,
                                PROTO_REQUEST, nng_msg_body(*out), len);
    }
    return rv;
}

/* ---- lanes: request ids, one write in flight per lane ---- */

static void lane_cancel(nng_aio *aio, void *arg, int rv)
{
    struct client_call *k = arg;
    mc_client *c = k->c;
    pthread_mutex_lock(&c->mu);
    bool was_queued = k->queued;
    if (was_queued) {
        call_list_remove(&c->lane_queue, k);
    }
    pthread_mutex_unlock(&c->mu);
    if (was_queued) {
        nng_aio_finish(aio, rv);
    }
}

/* Give k's lane to the first write waiting for one, or back to the pool. */
static void lane_give(struct client_call *k)
{
    mc_client *c = k->c;
    struct client_lane *lane = k->lane;
    k->lane = NULL;
    pthread_mutex_lock(&c->mu);
    struct client_call *w = call_list_pop(&c->lane_queue);
    if (w != NULL) {
        w->lane = lane;
    } else {
        client_lane_give_locked(c, lane);
    }
    pthread_mutex_unlock(&c->mu);
    if (w != NULL) {
        nng_aio_finish(w->io, 0);
    }
}

/* ---- the end ---- */

static void call_release(struct client_call *k)
{
    mc_client *c = k->c;
    k->state = CALL_FREE;
    if (k->body_cap > MC_CLIENT_FRAME_KEEP_BYTES) {
        mc_free(k->body);
        k->body = NULL;
        k->body_cap = 0;
    }
    pthread_mutex_lock(&c->mu);
    k->next = c->free_calls;
    c->free_calls = k;
    c->n_free_calls++;
    ASSERT(c->busy > 0);
    c->busy--;
    if (c->busy == 0 && atomic_load(&c->closing)) {
        pthread_cond_broadcast(&c->idle);
    }
    pthread_mutex_unlock(&c->mu);
}

/* A callback of the caller's runs on this thread. Callbacks never nest:
 * a call that a callback starts ends on another thread. */
static _Thread_local bool in_callback;

bool client_in_callback(void)
{
    return in_callback;
}

/* End k with code (r: the answer, when one ended it) on this nng thread:
 * the lane first, so that a caller woken by done can write again with it,
 * then done, then the call object back to the pool. */
static void call_complete(struct client_call *k, mc_err code,
                          Mcpb__Response *r)
{
    ASSERT(!k->in_start);
    ASSERT(r == NULL || r->code == (uint32_t)code);
    if (k->lane != NULL) {
        lane_give(k);
    }
    struct client_done done = k->done;
    /* No longer in flight: the callback may start a call in its place. */
    atomic_fetch_sub(&k->c->calls_in_flight, 1);
    ASSERT(!in_callback);
    in_callback = true;
    done.fn(&done, code, r, &k->last);
    in_callback = false;
    call_release(k);
}

/* The call's verdict is in k->last (its code is what ends the call); r
 * the answer when there was one. */
static void call_end(struct client_call *k, mc_err code, Mcpb__Response *r)
{
    ASSERT(code == MC_OK || k->last.code == code);
    if (k->sync) {
        /* On the caller's thread, which takes it from here. */
        ASSERT(r == NULL || r->code == (uint32_t)code);
        if (k->lane != NULL) {
            lane_give(k);
        }
        k->ended = true;
        k->end_code = code;
        k->end_r = r;
        return;
    }
    if (!k->in_start) {
        call_complete(k, code, r);
        return;
    }
    /* On the caller's thread: end on nng's. Only a first step that ended
     * the call before anything was sent gets here (a local failure, a
     * deadline already past), so there is no answer to keep. */
    ASSERT(r == NULL);
    k->state = CALL_END;
    bool begun = nng_aio_begin(k->io); /* false only once stopped */
    ASSERT(begun);
    nng_aio_finish(k->io, 0);
}

/* mc_client_close ended k: the write it sent may have applied. */
static void call_end_closed(struct client_call *k, bool sent)
{
    k->unknown = k->unknown || (sent && k->is_write);
    mc_err code = k->is_write && k->unknown ? MC_TIMEOUT : MC_UNAVAILABLE;
    client_result_set(&k->last, code,
                      "client closed with the call in flight after %d "
                      "attempt%s%s",
                      k->attempts, k->attempts == 1 ? "" : "s",
                      code == MC_TIMEOUT ? "; the write may have applied"
                                         : "");
    call_end(k, code, NULL);
}

void client_abort_if_closing(mc_client *c, nng_aio *aio)
{
    CLIENT_TEST_POINT(op_begun, c);
    if (atomic_load(&c->closing)) {
        nng_aio_abort(aio, NNG_ECLOSED);
    }
}

/* ---- attempts ---- */

enum attempt_outcome {
    ATTEMPT_ANSWERED,
    ATTEMPT_QUEUED,   /* not sent: a connection is up, it was not our turn */
    ATTEMPT_NOT_SENT,
    ATTEMPT_UNKNOWN,
    ATTEMPT_BAD_ANSWER, /* sent; the answer does not decode */
    ATTEMPT_FATAL,      /* a local failure before sending */
};

static void attempt_next(struct client_call *k);
static void attempt_done(struct client_call *k, enum attempt_outcome o,
                         Mcpb__Response *r);

/* Straight to the node the shard map names while it has one and direct
 * attempts did not fail MC_CLIENT_DIRECT_TRIES_MAX times in a row; else
 * through the caller's endpoints in turn (those not suspect first), which
 * forward to the leader, so a wrong or missing map never stops a call.
 * False when k parked for the refresh of the map: its callback chooses
 * again. */
static bool target_choose(struct client_call *k, struct call_target *t)
{
    mc_client *c = k->c;
    if (k->rk.wants && k->direct_fails < MC_CLIENT_DIRECT_TRIES_MAX) {
        bool asked = k->map_asked;
        k->map_asked = false;
        if (!asked && client_refresh_park(c, k)) {
            return false;
        }
        if (client_route_pick_key(c, &k->rk, &t->ep, &t->shard)) {
            t->direct = true;
            return true;
        }
    }
    k->direct_fails = 0; /* after this forwarded attempt, direct ones again */
    t->direct = false;
    t->ep = client_route_forward_ep(c, &k->next_ep);
    return true;
}

/* k's context on socket ep, opened on first use. A req0 context that
 * sends drops whatever its previous request left (a late reply), so one
 * context serves every attempt of every call of this call object. */
static int call_ctx(struct client_call *k, size_t ep, nng_ctx *out)
{
    ASSERT(ep < MC_CLIENT_SOCKETS_MAX);
    if (nng_ctx_id(k->ctx[ep]) <= 0) {
        int rv = nng_ctx_open(&k->ctx[ep], k->c->eps[ep].sock);
        if (rv != 0) {
            k->ctx[ep] = (nng_ctx)NNG_CTX_INITIALIZER;
            return rv;
        }
    }
    *out = k->ctx[ep];
    return 0;
}

/* Send one attempt to t, with left_ms (> 0) of the call left. */
static void attempt_send(struct client_call *k, const struct call_target *t,
                         int64_t left_ms)
{
    mc_client *c = k->c;
    k->t = *t;
    /* With another socket to try, one attempt must not take the whole
     * call; a long poll waits on the node before it answers. */
    size_t n = !k->rk.wants || c->n_eps > 1 ? c->n_eps
                                            : client_route_sockets(c);
    /* The reply's wait, at most: attempt_recv takes it from when the node
     * took the request, within the deadline. */
    k->reply_wait_ms =
        wait_ms(INT32_MAX, MC_CLIENT_REPLY_WAIT_MS + (int)k->wait_ms, n);
    /* A connected socket's send waits its turn: req0 hands a request to a
     * connection once the node read the previous one, and a node reads a
     * connection only while one of its contexts is free, so with many
     * calls in flight a healthy node takes them one by one. Only a socket
     * without a connection waits for one, as long as the connect wait. */
    k->send_wait_ms =
        client_endpoint_connected(&c->eps[t->ep])
            ? at_most(left_ms, k->reply_wait_ms)
            : wait_ms(left_ms, MC_CLIENT_CONNECT_WAIT_MS, n);
    nng_ctx ctx;
    int rv = call_ctx(k, t->ep, &ctx);
    if (rv != 0) {
        client_result_set(&k->last, MC_INTERNAL, "nng_ctx_open: %s",
                          nng_strerror(rv));
        attempt_done(k, ATTEMPT_FATAL, NULL);
        return;
    }
    nng_msg *msg;
    rv = attempt_msg(k, t->direct, &msg);
    if (rv != 0) {
        client_result_set(&k->last, MC_INTERNAL, "nng_msg_alloc: %s",
                          nng_strerror(rv));
        attempt_done(k, ATTEMPT_FATAL, NULL);
        return;
    }
    k->state = CALL_SEND;
    nng_aio *aio = k->io;
    /* req0 completes a send once a connection took the message; until
     * then it waits for one, so a timeout here means nothing left. */
    nng_aio_set_msg(aio, msg);
    nng_aio_set_timeout(aio, k->send_wait_ms);
    nng_ctx_send(ctx, aio);
    client_abort_if_closing(c, aio);
}

/* Choose the next attempt's target and send it; but nothing goes out
 * after the deadline: a write sent then could apply after its caller was
 * told it failed, and would end "may have applied" where it certainly had
 * not. Every send of a call comes through here. */
static void attempt_next(struct client_call *k)
{
    if (atomic_load(&k->c->closing)) {
        call_end_closed(k, false);
        return;
    }
    int64_t left_ms = k->deadline_ms - base_mono_ms();
    if (left_ms <= 0) {
        if (k->attempts == 0) {
            client_result_set(&k->last, MC_UNAVAILABLE,
                              "the deadline passed before the request "
                              "could be sent");
        }
        call_end(k, give_up(k), NULL);
        return;
    }
    struct call_target t;
    if (!target_choose(k, &t)) {
        return; /* parked for the map */
    }
    k->attempts++;
    attempt_send(k, &t, left_ms);
}

/* The request is on the wire: wait for the answer, the reply's wait from
 * now (a send that waited its turn behind other requests does not eat the
 * node's time to answer), but not past the deadline. */
static void attempt_recv(struct client_call *k)
{
    int64_t left_ms = k->deadline_ms - base_mono_ms();
    k->reply_wait_ms = at_most(left_ms > 1 ? left_ms : 1, k->reply_wait_ms);
    k->state = CALL_RECV;
    mc_client *c = k->c;
    nng_aio *aio = k->io;
    nng_aio_set_timeout(aio, k->reply_wait_ms);
    nng_ctx_recv(k->ctx[k->t.ep], aio);
    client_abort_if_closing(c, aio);
}

/* Decode the answer in msg (which this frees). Every failure to decode is
 * BAD_ANSWER: a node that sends garbage will not get better by asking
 * again. */
static enum attempt_outcome answer_decode(struct client_call *k,
                                          nng_msg *msg, Mcpb__Response **out)
{
    const char *url = k->c->eps[k->t.ep].url;
    char err[160];
    mc_err code = proto_response_decode(nng_msg_body(msg), nng_msg_len(msg),
                                        out, err, sizeof err);
    nng_msg_free(msg);
    if (code != MC_OK) {
        client_result_set(&k->last, MC_INTERNAL, "bad answer from %s: %s",
                          url, err);
        return ATTEMPT_BAD_ANSWER;
    }
    if ((*out)->code >= MC_ERR_COUNT) {
        client_result_set(&k->last, MC_INTERNAL,
                          "answer from %s has unknown code %u", url,
                          (*out)->code);
        mcpb__response__free_unpacked(*out, NULL);
        *out = NULL;
        return ATTEMPT_BAD_ANSWER;
    }
    return ATTEMPT_ANSWERED;
}

enum next { NEXT_DONE, NEXT_NOW, NEXT_PAUSE };

/* A node answered r to the attempt at k->t. Final answers end the call;
 * a NOT_LEADER hint to a direct attempt is followed at once; the other
 * retryable answers pause first. */
static enum next answered(struct client_call *k, Mcpb__Response *r)
{
    mc_client *c = k->c;
    const struct call_target *t = &k->t;
    result_from_response(&k->last, r);
    client_route_answered(c, t->ep);
    if (!is_retryable(k->op, (mc_err)r->code)) {
        if (t->ep < c->n_eps) {
            atomic_store(&c->preferred_ep, (unsigned)t->ep);
        }
        return NEXT_DONE;
    }
    bool follow = t->direct && r->code == MC_NOT_LEADER && r->has_leader_id &&
                  r->leader_id != 0 && k->hints < MC_CLIENT_HINTS_MAX;
    if (follow) {
        client_route_learn_hint(c, t->shard, r->leader_id, r->leader_url);
        k->hints++;
    } else if (k->rk.wants) {
        k->direct_fails += t->direct;
        client_route_stale(c);
    }
    k->unknown = k->unknown || r->code == MC_TIMEOUT;
    return follow ? NEXT_NOW : NEXT_PAUSE;
}

/* No answer came through k->t's socket: it is suspect, the map may be
 * stale, and a write sent may have applied. */
static void not_answered(struct client_call *k, enum attempt_outcome o)
{
    client_route_failed(k->c, k->t.ep);
    k->direct_fails += k->t.direct;
    k->unknown = k->unknown || o == ATTEMPT_UNKNOWN;
}

/* The end of a pause: its time ran out (NNG_ETIMEDOUT) or the client is
 * closing. nng calls this once at most, so it finishes the aio once. */
static void pause_cancel(nng_aio *aio, void *arg, int rv)
{
    nng_aio_finish(aio, rv);
}

/* Pause before the next attempt, but leave at least half of what is left
 * for it; false when too little is left to try again.
 *
 * The pause is an operation of our own on the call's aio (begin, a timeout,
 * and a cancel function that finishes it), not nng_sleep_aio: in nng 1.5.2
 * a sleep leaves the aio's "expiry is success" flag set, and a later send
 * or receive on the same aio that times out then completes with 0 instead
 * of NNG_ETIMEDOUT (nni_aio_begin clears the flag only on a stopped aio). */
static bool pause_start(struct client_call *k)
{
    int64_t left = k->deadline_ms - base_mono_ms();
    if (left <= MC_CLIENT_BACKOFF_MS_MIN) {
        return false;
    }
    mc_client *c = k->c;
    int pause = client_backoff_ms(c, (unsigned)k->attempts - 1);
    k->state = CALL_PAUSE;
    nng_aio *aio = k->io;
    bool begun = nng_aio_begin(aio); /* false only once stopped */
    ASSERT(begun);
    nng_aio_set_timeout(aio, pause < left / 2 ? (nng_duration)pause
                                              : (nng_duration)(left / 2));
    nng_aio_defer(aio, pause_cancel, k);
    client_abort_if_closing(c, aio);
    return true;
}

/* An attempt ended as o (r: the answer, when o is ANSWERED). */
static void attempt_done(struct client_call *k, enum attempt_outcome o,
                         Mcpb__Response *r)
{
    enum next step = NEXT_PAUSE;
    if (o == ATTEMPT_FATAL || o == ATTEMPT_BAD_ANSWER) {
        /* No retry helps. A write that may have reached a node (this
         * attempt was sent, or an earlier one's outcome is unknown) must
         * be reported as TIMEOUT, never as a plain failure. */
        if (k->is_write && (k->unknown || o == ATTEMPT_BAD_ANSWER)) {
            k->unknown = true;
            call_end(k, give_up(k), NULL);
            return;
        }
        call_end(k, k->last.code, NULL);
        return;
    } else if (o == ATTEMPT_ANSWERED) {
        step = answered(k, r);
        if (step == NEXT_DONE) {
            call_end(k, (mc_err)r->code, r);
            return;
        }
        mcpb__response__free_unpacked(r, NULL);
    } else if (o != ATTEMPT_QUEUED) {
        not_answered(k, o);
    }
    if (step == NEXT_NOW) {
        attempt_next(k); /* ends k when the deadline passed */
        return;
    }
    if (!pause_start(k)) {
        call_end(k, give_up(k), NULL);
    }
}

/* ---- the callback of a call's aio: one step of the state machine ---- */

static void on_sent(struct client_call *k, int rv)
{
    if (rv == 0) {
        attempt_recv(k);
        return;
    }
    /* On failure the message is handed back to us (nng ownership). */
    nng_msg_free(nng_aio_get_msg(k->io));
    nng_aio_set_msg(k->io, NULL);
    if (atomic_load(&k->c->closing)) {
        call_end_closed(k, false);
        return;
    }
    const struct client_endpoint *ep = &k->c->eps[k->t.ep];
    if (rv == NNG_ETIMEDOUT && client_endpoint_connected(ep)) {
        /* Queued behind other requests on a live connection: the node is
         * there and the map is right; only another turn helps. */
        client_result_set(&k->last, MC_UNAVAILABLE,
                          "%s is connected but took no request of this "
                          "call within %d ms (busy)",
                          ep->url, k->send_wait_ms);
        attempt_done(k, ATTEMPT_QUEUED, NULL);
        return;
    }
    client_result_set(&k->last, MC_UNAVAILABLE, "cannot reach %s: %s",
                      ep->url,
                      rv == NNG_ETIMEDOUT ? "no connection" : nng_strerror(rv));
    attempt_done(k, ATTEMPT_NOT_SENT, NULL);
}

static void on_answer(struct client_call *k, int rv)
{
    if (rv != 0) {
        if (atomic_load(&k->c->closing)) {
            call_end_closed(k, true);
            return;
        }
        client_result_set(&k->last,
                          rv == NNG_ETIMEDOUT ? MC_TIMEOUT : MC_UNAVAILABLE,
                          "no answer from %s within %d ms: %s",
                          k->c->eps[k->t.ep].url, k->reply_wait_ms,
                          nng_strerror(rv));
        attempt_done(k, ATTEMPT_UNKNOWN, NULL);
        return;
    }
    nng_msg *msg = nng_aio_get_msg(k->io);
    nng_aio_set_msg(k->io, NULL);
    Mcpb__Response *r = NULL;
    enum attempt_outcome o = answer_decode(k, msg, &r);
    attempt_done(k, o, r);
}

/* A write got its lane (its id is drawn as it goes out), or its wait for
 * one ended. */
static void on_lane(struct client_call *k, int rv)
{
    if (rv == 0) {
        CLIENT_TEST_POINT(lane_given, k);
    }
    /* A lane given as the wait ran out (lane_give won the race against
     * the wait's timer) comes too late all the same; it goes on to the
     * next write at the end. */
    if (rv != 0 || base_mono_ms() >= k->deadline_ms) {
        ASSERT((k->lane == NULL) == (rv != 0));
        if (atomic_load(&k->c->closing)) {
            call_end_closed(k, false);
            return;
        }
        client_result_set(&k->last, MC_UNAVAILABLE,
                          "all %u request ids of the client were in use "
                          "until the deadline",
                          MC_CLIENT_LANES_MAX);
        call_end(k, give_up(k), NULL);
        return;
    }
    ASSERT(k->lane != NULL);
    attempt_next(k);
}

/* The operation on k->io ended with rv: the next step. */
static void call_step(struct client_call *k, int rv)
{
    switch (k->state) {
    case CALL_LANE:
        on_lane(k, rv);
        break;
    case CALL_MAP: /* the refresh ended, or the wait for it ran out */
        k->map_asked = true;
        attempt_next(k);
        break;
    case CALL_SEND:
        on_sent(k, rv);
        break;
    case CALL_RECV:
        on_answer(k, rv);
        break;
    case CALL_PAUSE: /* NNG_ETIMEDOUT: the pause is over */
        attempt_next(k); /* a close shows in attempt_next */
        break;
    case CALL_END:
        call_complete(k, k->last.code, NULL);
        break;
    case CALL_FREE:
        ASSERT(k->state != CALL_FREE);
        break;
    }
}

/* The callback of an asynchronous call's aio. */
static void call_cb(void *arg)
{
    struct client_call *k = arg;
    k->in_start = false;
    call_step(k, nng_aio_result(k->io));
}

/* ---- start ---- */

/* A call object from the pool, or a new one. Under c->mu. */
static struct client_call *call_take_locked(mc_client *c)
{
    struct client_call *k = c->free_calls;
    if (k != NULL) {
        c->free_calls = k->next;
        k->next = NULL;
        ASSERT(c->n_free_calls > 0);
        c->n_free_calls--;
        return k;
    }
    if (c->n_calls == c->calls_cap) {
        size_t cap = c->calls_cap + 64;
        struct client_call **grown = mc_realloc(c->calls, cap * sizeof *grown);
        if (grown == NULL) {
            return NULL;
        }
        c->calls = grown;
        c->calls_cap = cap;
    }
    k = mc_calloc(1, sizeof *k);
    if (k == NULL) {
        return NULL;
    }
    if (nng_aio_alloc(&k->aio_cb, call_cb, k) != 0) {
        mc_free(k);
        return NULL;
    }
    if (nng_aio_alloc(&k->aio_wait, NULL, NULL) != 0) {
        nng_aio_free(k->aio_cb);
        mc_free(k);
        return NULL;
    }
    k->c = c;
    k->slot = c->n_calls;
    c->calls[c->n_calls++] = k;
    return k;
}

/* Up to MC_CLIENT_CALLS_REAP_MAX idle call objects beyond
 * MC_CLIENT_CALLS_IDLE_MAX, taken off the pool and out of c->calls, linked
 * by next, for call_free after unlocking. Under c->mu. */
static struct client_call *calls_reap_locked(mc_client *c)
{
    struct client_call *reaped = NULL;
    for (unsigned i = 0; i < MC_CLIENT_CALLS_REAP_MAX &&
                         c->n_free_calls > MC_CLIENT_CALLS_IDLE_MAX;
         i++) {
        struct client_call *k = c->free_calls;
        c->free_calls = k->next;
        c->n_free_calls--;
        struct client_call *last = c->calls[--c->n_calls];
        c->calls[k->slot] = last; /* the last one takes its slot */
        last->slot = k->slot;
        k->next = reaped;
        reaped = k;
    }
    return reaped;
}

/* Free call object k, which no call uses and nobody can find. Its last
 * callback may still be returning on another thread (from call_release):
 * nng_aio_stop waits for it. Never on that callback's thread, which does
 * not start calls after call_release. */
static void call_free(struct client_call *k)
{
    ASSERT(k->state == CALL_FREE);
    nng_aio_stop(k->aio_cb);
    nng_aio_free(k->aio_cb);
    nng_aio_stop(k->aio_wait);
    nng_aio_free(k->aio_wait);
    for (size_t i = 0; i < MC_CLIENT_SOCKETS_MAX; i++) {
        if (nng_ctx_id(k->ctx[i]) > 0) {
            /* Fails only when its socket is closed, which closed it. */
            (void)nng_ctx_close(k->ctx[i]);
        }
    }
    mc_free(k->body);
    mc_free(k);
}

/* Park write k until a lane is free, within its deadline. Under c->mu;
 * the caller reads nothing of k after unlocking. */
static void lane_park_locked(mc_client *c, struct client_call *k)
{
    k->state = CALL_LANE;
    call_list_push(&c->lane_queue, k);
    int64_t left = k->deadline_ms - base_mono_ms();
    bool begun = nng_aio_begin(k->io); /* false only once stopped */
    ASSERT(begun);
    nng_aio_set_timeout(k->io, left > 1 ? (nng_duration)left : 1);
    nng_aio_defer(k->io, lane_cancel, k);
}

/* Write k, packed: take a lane, or park k until one is free, in one
 * critical section. Returns MC_OK with *parked false when k has its lane,
 * or true when it waits for one (then the caller must not touch k: its
 * wait may have ended already); INTERNAL when a new lane could not be
 * made (out of memory, no randomness): then nothing was taken. */
static mc_err lane_take_or_park(mc_client *c, struct client_call *k,
                                bool *parked, mc_result *res)
{
    nng_aio *aio = k->io;
    pthread_mutex_lock(&c->mu);
    mc_err rv = client_lane_take_locked(c, &k->lane, res);
    *parked = rv == MC_OK && k->lane == NULL;
    if (*parked) {
        lane_park_locked(c, k);
    }
    pthread_mutex_unlock(&c->mu);
    if (*parked) {
        client_abort_if_closing(c, aio);
    }
    return rv;
}

/* Undo a start that failed before k ran: nothing that can fail comes after
 * a write's lane was taken or k parked, so k holds no lane. */
static void start_undo(struct client_call *k)
{
    ASSERT(k->lane == NULL);
    k->in_start = false;
    atomic_fetch_sub(&k->c->calls_in_flight, 1);
    call_release(k);
}

/* The first step of call k: set it up for req, pack the request, then a
 * write's lane and the first attempt. Errors as client_call_start says,
 * with k released. */
static mc_err call_first(mc_client *c, struct client_call *k,
                         const Mcpb__Request *req, int64_t deadline_ms,
                         bool sync, const struct client_done *done,
                         mc_result *res)
{
    bool write = op_is_write(req->op);
    ASSERT(k->state == CALL_FREE);
    k->sync = sync;
    k->io = sync ? k->aio_wait : k->aio_cb;
    k->ended = false;
    k->end_r = NULL;
    /* A synchronous call may end on the caller's thread: it is its own. */
    k->in_start = !sync;
    k->map_asked = false;
    k->op = req->op;
    k->is_write = write;
    k->wait_ms = req->has_wait_ms ? req->wait_ms : 0;
    client_route_key(req, &k->rk);
    k->lane = NULL;
    k->seq = 0;
    k->deadline_ms = deadline_ms;
    k->started_ms = base_mono_ms();
    if (done != NULL) {
        k->done = *done;
    }
    k->attempts = 0;
    k->direct_fails = 0;
    k->hints = 0;
    k->next_ep = atomic_load(&c->preferred_ep) % (unsigned)c->n_eps;
    k->unknown = false;
    memset(&k->last, 0, sizeof k->last);
    /* Packed before any lane is taken: what can fail comes first. */
    if (body_pack(k, req) != MC_OK) {
        start_undo(k);
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    /* From here on only the call's own steps touch k: the starter of an
     * asynchronous call must not, its first operation may have ended. */
    if (write) {
        bool parked;
        mc_err rv = lane_take_or_park(c, k, &parked, res);
        if (rv != MC_OK) {
            start_undo(k);
            return rv;
        }
        if (parked) {
            return MC_OK;
        }
    }
    attempt_next(k);
    return MC_OK;
}

/* Begin req as a call (sync: driven by the caller's thread) and run its
 * first step here. On MC_OK *out is the call; errors as client_call_start
 * says, with nothing begun. */
static mc_err call_begin(mc_client *c, const Mcpb__Request *req,
                         int64_t deadline_ms, bool sync,
                         const struct client_done *done,
                         struct client_call **out, mc_result *res)
{
    ASSERT(c != NULL);
    ASSERT(req != NULL);
    bool write = op_is_write(req->op);
    ASSERT(!write || (!req->has_client_id && !req->has_seq));

    pthread_mutex_lock(&c->mu);
    if (atomic_load(&c->closing)) {
        pthread_mutex_unlock(&c->mu);
        return client_result_set(res, MC_UNAVAILABLE, "client closed");
    }
    /* Raised only here, under mu, and lowered anywhere: below the limit
     * now, it stays within it once raised. */
    if (atomic_load(&c->calls_in_flight) >= MC_CLIENT_CALLS_MAX) {
        pthread_mutex_unlock(&c->mu);
        return client_result_set(res, MC_UNAVAILABLE,
                                 "too many calls in flight (%u)",
                                 MC_CLIENT_CALLS_MAX);
    }
    struct client_call *k = call_take_locked(c);
    if (k == NULL) {
        pthread_mutex_unlock(&c->mu);
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    atomic_fetch_add(&c->calls_in_flight, 1);
    c->busy++;
    /* Counted under mu, where close sets closing: either close waits for
     * this start, or the start saw closing above. */
    c->starters++;
    struct client_call *reaped = calls_reap_locked(c);
    pthread_mutex_unlock(&c->mu);
    /* The pool shrinks as calls start (a start is never in a callback of
     * the objects it frees), within this start: close waits for it. */
    while (reaped != NULL) {
        struct client_call *next = reaped->next;
        call_free(reaped);
        reaped = next;
    }
    *out = k;
    mc_err rv = call_first(c, k, req, deadline_ms, sync, done, res);
    /* The start's last touch of c: under mu, so that close, which waits
     * for starters under mu, frees nothing before this returns. */
    pthread_mutex_lock(&c->mu);
    ASSERT(c->starters > 0);
    c->starters--;
    if (c->starters == 0 && atomic_load(&c->closing)) {
        pthread_cond_broadcast(&c->idle);
    }
    pthread_mutex_unlock(&c->mu);
    return rv;
}

mc_err client_call_start(mc_client *c, const Mcpb__Request *req,
                         int64_t deadline_ms, const struct client_done *done,
                         mc_result *res)
{
    ASSERT(done != NULL && done->fn != NULL);
    struct client_call *k;
    return call_begin(c, req, deadline_ms, false, done, &k, res);
}

/* ---- the synchronous call: the same steps, driven by the caller ---- */

mc_err client_call(mc_client *c, const Mcpb__Request *req,
                   int64_t deadline_ms, Mcpb__Response **out,
                   mc_result *res)
{
    CLIENT_ASSERT_NOT_IN_CALLBACK(
        "no synchronous libmemcoord call in the callback of an asynchronous "
        "call: it blocks one of the nng threads that the calls need");
    ASSERT(out != NULL);
    *out = NULL;
    client_result_clear(res);
    struct client_call *k;
    mc_err rv = call_begin(c, req, deadline_ms, true, NULL, &k, res);
    if (rv != MC_OK) {
        return rv;
    }
    /* Each step but the last starts an operation on k->io, which has no
     * callback: wait for it here (when a connection took the send at
     * once, nng completed it inline and this does not sleep), then take
     * the next step on this thread. */
    while (!k->ended) {
        nng_aio_wait(k->io);
        call_step(k, nng_aio_result(k->io));
    }
    rv = k->end_code;
    *out = k->end_r;
    if (res != NULL) {
        *res = k->last;
    }
    atomic_fetch_sub(&c->calls_in_flight, 1);
    call_release(k);
    ASSERT(rv == MC_OK || *out == NULL || (*out)->code == (uint32_t)rv);
    ASSERT(rv != MC_OK || *out != NULL);
    return rv;
}

/* ---- the engine of a client ---- */

mc_err client_engine_init(mc_client *c, mc_result *res)
{
    atomic_init(&c->closing, false);
    atomic_init(&c->calls_in_flight, 0);
    if (pthread_cond_init(&c->idle, NULL) != 0) {
        return client_result_set(res, MC_INTERNAL, "pthread_cond_init failed");
    }
    mc_err rv = client_refresh_init(c, res);
    if (rv != MC_OK) {
        pthread_cond_destroy(&c->idle);
    }
    return rv;
}

void client_engine_close(mc_client *c)
{
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->closing, true);
    /* A start in progress on another thread still reads c after its first
     * operation began (client_abort_if_closing, the refresh it may run):
     * wait until every start returned. They do not block, and no new one
     * begins. */
    while (c->starters > 0) {
        pthread_cond_wait(&c->idle, &c->mu);
    }
    /* No call object is made from now on: the array stays as it is. */
    struct client_call **calls = c->calls;
    size_t n = c->n_calls;
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        nng_aio_abort(calls[i]->aio_cb, NNG_ECLOSED);
        nng_aio_abort(calls[i]->aio_wait, NNG_ECLOSED);
    }
    nng_aio_abort(c->refresh.aio, NNG_ECLOSED);
    pthread_mutex_lock(&c->mu);
    while (c->busy > 0) {
        pthread_cond_wait(&c->idle, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    ASSERT(c->lane_queue.head == NULL);
    ASSERT(atomic_load(&c->calls_in_flight) == 0);
    for (size_t i = 0; i < n; i++) {
        call_free(calls[i]); /* waits out a callback still returning */
    }
    mc_free(c->calls);
    c->calls = NULL;
    c->n_calls = c->calls_cap = 0;
    c->free_calls = NULL;
    c->n_free_calls = 0;
    client_refresh_fini(c);
    pthread_cond_destroy(&c->idle);
}
