/* One request of libmemcoord, from frame to answer, with retries.
 *
 * An attempt sends the framed request on a fresh nng_ctx of one socket and
 * waits for the reply. It ends in one of four ways:
 *
 *   ANSWERED  the node answered; the answer's code decides what follows
 *   NOT_SENT  no connection took the request: it certainly did not apply
 *   UNKNOWN   a connection took it but no answer came (timeout, reset): a
 *             write may or may not have applied
 *   FATAL     a local failure (out of memory, bad reply): stop at once
 *
 * NOT_SENT, UNKNOWN and the answers UNAVAILABLE, NOT_LEADER and TIMEOUT are
 * retried after an exponential backoff with jitter, until the deadline. A
 * write is retried with the same (client_id, seq), which the shard dedupes.
 * If any attempt of a write ended UNKNOWN and no later answer settled it,
 * the call says TIMEOUT: the write may have applied.
 *
 * Where each attempt goes: a request for a shard (a key, or LIST of one
 * shard) goes "direct", to the node the shard map (route.c) names as the
 * leader, or for a serializable read to a replica the caller listed, with
 * no_forward set, so a node that does not lead answers NOT_LEADER with the
 * leader's address instead of forwarding. Such a hint is learned and
 * followed at once. A direct attempt that fails marks the map stale, and
 * the next attempt first refreshes it (refresh.c, rate-limited). After
 * MC_CLIENT_DIRECT_TRIES_MAX direct failures in a row, one attempt goes the
 * old way: to the caller's endpoints in turn, without no_forward, and that
 * node forwards. Requests without a shard (STATUS) always go that way.
 *
 *   attempt:  map names a usable node? --yes--> DIRECT (no_forward)
 *                  |no, or direct failed twice in a row
 *                  v
 *             FORWARDED via the caller's next endpoint
 *   answer:   final -> done;  NOT_LEADER + hint (direct) -> learn, at once;
 *             other retryable or no answer -> map stale, pause, again */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/internal.h"

int client_backoff_ms(mc_client *c, unsigned attempt)
{
    int delay = MC_CLIENT_BACKOFF_MS_MAX;
    if (attempt < 16) {
        long d = (long)MC_CLIENT_BACKOFF_MS_MIN << attempt;
        delay = d < MC_CLIENT_BACKOFF_MS_MAX ? (int)d : MC_CLIENT_BACKOFF_MS_MAX;
    }
    /* Full range [delay/2, delay]: clients that failed together spread
     * out instead of retrying in step. */
    int half = delay / 2;
    int jitter = (int)(client_random(c) % (uint64_t)(delay - half + 1));
    int out = half + jitter;
    ASSERT(out >= MC_CLIENT_BACKOFF_MS_MIN / 2);
    ASSERT(out <= MC_CLIENT_BACKOFF_MS_MAX);
    return out;
}

static bool is_write(const Mcpb__Request *req)
{
    return req->op == MCPB__OP__OP_PUT || req->op == MCPB__OP__OP_DELETE ||
           req->op == MCPB__OP__OP_TXN;
}

/* Answers that another attempt may change. TIMEOUT from a node means it
 * took the request and could not finish in time: as unknown as a lost
 * reply; except for a wait, whose TIMEOUT says that its condition did not
 * hold for the whole wait. */
static bool is_retryable(const Mcpb__Request *req, mc_err code)
{
    if (code == MC_TIMEOUT && req->op == MCPB__OP__OP_WAIT) {
        return false;
    }
    return code == MC_UNAVAILABLE || code == MC_NOT_LEADER ||
           code == MC_TIMEOUT;
}

static int wait_ms(int64_t deadline_ms, int cap_ms, size_t n_sockets)
{
    int64_t left = deadline_ms - base_mono_ms();
    if (left < 1) {
        left = 1;
    }
    if (n_sockets > 1 && left > cap_ms) {
        left = cap_ms;
    }
    return (int)(left > INT32_MAX ? INT32_MAX : left);
}

/* Wait for the reply on ctx and decode it. The request is on the wire, so
 * every failure here leaves its outcome unknown, except a reply that does
 * not decode, which is FATAL: a node that sends garbage will not get better
 * by asking again. */
static enum attempt_outcome attempt_recv(const struct client_endpoint *ep,
                                         nng_ctx ctx, nng_aio *aio,
                                         int reply_wait_ms,
                                         Mcpb__Response **out, mc_result *res)
{
    nng_aio_set_timeout(aio, reply_wait_ms);
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    int rv = nng_aio_result(aio);
    if (rv != 0) {
        client_result_set(res, rv == NNG_ETIMEDOUT ? MC_TIMEOUT : MC_UNAVAILABLE,
                          "no answer from %s within %d ms: %s", ep->url,
                          reply_wait_ms, nng_strerror(rv));
        return ATTEMPT_UNKNOWN;
    }
    nng_msg *msg = nng_aio_get_msg(aio);
    char err[160];
    mc_err code = proto_response_decode(nng_msg_body(msg), nng_msg_len(msg),
                                        out, err, sizeof err);
    nng_msg_free(msg);
    if (code != MC_OK) {
        client_result_set(res, MC_INTERNAL, "bad answer from %s: %s",
                          ep->url, err);
        return ATTEMPT_BAD_ANSWER;
    }
    if ((*out)->code >= MC_ERR_COUNT) {
        client_result_set(res, MC_INTERNAL,
                          "answer from %s has unknown code %u", ep->url,
                          (*out)->code);
        mcpb__response__free_unpacked(*out, NULL);
        *out = NULL;
        return ATTEMPT_BAD_ANSWER;
    }
    return ATTEMPT_ANSWERED;
}

enum attempt_outcome client_attempt(const struct client_endpoint *ep,
                                    const void *frame, size_t frame_len,
                                    int send_wait_ms, int reply_wait_ms,
                                    Mcpb__Response **out, mc_result *res)
{
    enum attempt_outcome outcome = ATTEMPT_FATAL;
    int64_t started_ms = base_mono_ms();
    nng_ctx ctx;
    int rv = nng_ctx_open(&ctx, ep->sock);
    if (rv != 0) {
        client_result_set(res, MC_INTERNAL, "nng_ctx_open: %s",
                          nng_strerror(rv));
        goto out;
    }
    nng_aio *aio;
    rv = nng_aio_alloc(&aio, NULL, NULL);
    if (rv != 0) {
        client_result_set(res, MC_INTERNAL, "nng_aio_alloc: %s",
                          nng_strerror(rv));
        goto out_after_ctx;
    }
    nng_msg *msg;
    rv = nng_msg_alloc(&msg, frame_len);
    if (rv != 0) {
        client_result_set(res, MC_INTERNAL, "nng_msg_alloc: %s",
                          nng_strerror(rv));
        goto out_after_aio;
    }
    memcpy(nng_msg_body(msg), frame, frame_len);

    /* req0 completes a send once a connection took the message; until
     * then it waits for one, so a timeout here means nothing left. */
    nng_aio_set_msg(aio, msg);
    nng_aio_set_timeout(aio, send_wait_ms);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    rv = nng_aio_result(aio);
    if (rv != 0) {
        /* On failure the message is handed back to us (nng ownership). */
        nng_msg_free(nng_aio_get_msg(aio));
        client_result_set(res, MC_UNAVAILABLE, "cannot reach %s: %s",
                          ep->url,
                          rv == NNG_ETIMEDOUT ? "no connection" :
                                                nng_strerror(rv));
        outcome = ATTEMPT_NOT_SENT;
        goto out_after_aio;
    }
    /* Both waits were set from the time left when the attempt began: the
     * time spent waiting for a connection comes off the reply's, or a call
     * could outlast its deadline. */
    int64_t left_ms = reply_wait_ms - (base_mono_ms() - started_ms);
    outcome = attempt_recv(ep, ctx, aio, left_ms > 1 ? (int)left_ms : 1, out,
                           res);

out_after_aio:
    nng_aio_free(aio);
out_after_ctx:
    /* Closing the context drops a late reply of this attempt. */
    (void)nng_ctx_close(ctx);
out:
    return outcome;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Fill res from an answer: the code, the versions and the message, or the
 * sentence of the code when the node gave none. */
static void result_from_response(mc_result *res, const Mcpb__Response *r)
{
    if (res == NULL) {
        return;
    }
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

static mc_err give_up(const Mcpb__Request *req, bool unknown, int attempts,
                      int64_t started_ms, mc_result *last, mc_result *res)
{
    mc_err code = last->code;
    if (is_write(req) && unknown) {
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
    if (res != NULL) {
        *res = *last;
        /* The message is cut to fit when it must: it is for people. */
        char detail[sizeof res->message];
        snprintf(detail, sizeof detail, "%s", last->message);
        client_result_set(res, code,
                          "%s after %d attempt%s in %lld ms%s (last: %s)",
                          code == MC_TIMEOUT ? "timed out" : "gave up",
                          attempts, attempts == 1 ? "" : "s",
                          (long long)(base_mono_ms() - started_ms),
                          is_write(req) && unknown
                              ? "; the write may have applied"
                              : "",
                          detail);
    }
    return code;
}

/* One call in progress. */
struct call {
    mc_client *c;
    const Mcpb__Request *req;
    int64_t deadline_ms;
    int64_t started_ms;
    void *fwd;          /* req as given: a node that does not lead forwards */
    size_t fwd_len;
    void *direct;       /* req with no_forward; NULL when req has no shard */
    size_t direct_len;
    unsigned direct_fails; /* direct attempts failed in a row */
    unsigned hints;        /* NOT_LEADER hints followed */
    unsigned next_ep;      /* caller endpoint of the next forwarded attempt */
    bool unknown;          /* an attempt of a write may have applied */
    mc_result last;        /* what the last attempt said */
};

/* Where one attempt goes. */
struct target {
    size_t ep;
    bool direct;
    uint32_t shard; /* when direct */
};

/* Straight to the node the shard map names while it has one and direct
 * attempts did not fail MC_CLIENT_DIRECT_TRIES_MAX times in a row; else
 * through the caller's endpoints in turn, which forward to the leader, so
 * a wrong or missing map never stops a call. */
static void target_choose(struct call *k, struct target *t)
{
    mc_client *c = k->c;
    if (k->direct != NULL && k->direct_fails < MC_CLIENT_DIRECT_TRIES_MAX) {
        client_route_refresh(c, k->deadline_ms);
        if (client_route_pick(c, k->req, &t->ep, &t->shard)) {
            t->direct = true;
            return;
        }
    }
    k->direct_fails = 0; /* after this forwarded attempt, direct ones again */
    t->direct = false;
    t->ep = k->next_ep;
    k->next_ep = (k->next_ep + 1) % (unsigned)c->n_eps;
}

enum next { NEXT_DONE, NEXT_NOW, NEXT_PAUSE };

/* A node answered r to an attempt at t. Final answers end the call (*out
 * takes r); a NOT_LEADER hint to a direct attempt is followed at once; the
 * other retryable answers pause first. */
static enum next answered(struct call *k, const struct target *t,
                          Mcpb__Response *r, Mcpb__Response **out)
{
    mc_client *c = k->c;
    result_from_response(&k->last, r);
    client_route_answered(c, t->ep);
    if (!is_retryable(k->req, (mc_err)r->code)) {
        if (t->ep < c->n_eps) {
            atomic_store(&c->preferred_ep, (unsigned)t->ep);
        }
        *out = r;
        return NEXT_DONE;
    }
    bool follow = t->direct && r->code == MC_NOT_LEADER && r->has_leader_id &&
                  r->leader_id != 0 && k->hints < MC_CLIENT_HINTS_MAX;
    if (follow) {
        client_route_learn_hint(c, t->shard, r->leader_id, r->leader_url);
        k->hints++;
    } else if (k->direct != NULL) {
        k->direct_fails += t->direct;
        client_route_stale(c);
    }
    k->unknown = k->unknown || r->code == MC_TIMEOUT;
    mcpb__response__free_unpacked(r, NULL);
    return follow ? NEXT_NOW : NEXT_PAUSE;
}

/* No answer came through t's socket: it is suspect, the map may be
 * stale, and a write sent may have applied. */
static void not_answered(struct call *k, const struct target *t,
                         enum attempt_outcome o)
{
    client_route_failed(k->c, t->ep);
    k->direct_fails += t->direct;
    k->unknown = k->unknown || o == ATTEMPT_UNKNOWN;
}

/* Pause before the next attempt, but leave at least half of what is left
 * for it; false when too little is left to try again. */
static bool pause_before(struct call *k, int attempts)
{
    int64_t left = k->deadline_ms - base_mono_ms();
    if (left <= MC_CLIENT_BACKOFF_MS_MIN) {
        return false;
    }
    int pause = client_backoff_ms(k->c, (unsigned)attempts - 1);
    sleep_ms(pause < left / 2 ? pause : (int)(left / 2));
    return true;
}

/* The attempts of one call, until a final answer or the deadline. */
static mc_err attempts_run(struct call *k, Mcpb__Response **out,
                           mc_result *res)
{
    mc_client *c = k->c;
    for (int attempts = 1;; attempts++) {
        struct target t;
        target_choose(k, &t);
        /* With another socket to try, one attempt must not take the whole
         * call. */
        size_t n = k->direct != NULL ? client_route_sockets(c) : c->n_eps;
        Mcpb__Response *r = NULL;
        /* A long poll waits on the node before it answers. */
        int reply_cap = MC_CLIENT_REPLY_WAIT_MS + (int)k->req->wait_ms;
        enum attempt_outcome o = client_attempt(
            &c->eps[t.ep], t.direct ? k->direct : k->fwd,
            t.direct ? k->direct_len : k->fwd_len,
            wait_ms(k->deadline_ms, MC_CLIENT_CONNECT_WAIT_MS, n),
            wait_ms(k->deadline_ms, reply_cap, n), &r, &k->last);
        enum next step = NEXT_PAUSE;
        if (o == ATTEMPT_FATAL || o == ATTEMPT_BAD_ANSWER) {
            /* No retry helps. A write that may have reached a node (this
             * attempt was sent, or an earlier one's outcome is unknown)
             * must be reported as TIMEOUT, never as a plain failure. */
            if (is_write(k->req) && (k->unknown || o == ATTEMPT_BAD_ANSWER)) {
                return give_up(k->req, true, attempts, k->started_ms,
                               &k->last, res);
            }
            if (res != NULL) {
                *res = k->last;
            }
            return k->last.code;
        } else if (o == ATTEMPT_ANSWERED) {
            step = answered(k, &t, r, out);
        } else {
            not_answered(k, &t, o);
        }
        if (step == NEXT_DONE) {
            if (res != NULL) {
                *res = k->last;
            }
            return (mc_err)(*out)->code;
        }
        bool again = step == NEXT_NOW ? base_mono_ms() < k->deadline_ms
                                      : pause_before(k, attempts);
        if (!again) {
            return give_up(k->req, k->unknown, attempts, k->started_ms,
                           &k->last, res);
        }
    }
}

/* Encode req twice when it has a shard: as given, and with no_forward. The
 * two frames carry the same (client_id, seq), so the shard dedupes a write
 * whichever of them applied it. */
static mc_err frames_encode(struct call *k)
{
    if (proto_frame_encode(&k->req->base, PROTO_REQUEST, NULL, &k->fwd,
                           &k->fwd_len) != MC_OK) {
        return MC_INTERNAL;
    }
    if (!client_route_wants(k->req)) {
        return MC_OK;
    }
    Mcpb__Request d = *k->req; /* shallow: packing only reads it */
    d.has_no_forward = true;
    d.no_forward = true;
    if (proto_frame_encode(&d.base, PROTO_REQUEST, NULL, &k->direct,
                           &k->direct_len) != MC_OK) {
        mc_free(k->fwd);
        k->fwd = NULL;
        return MC_INTERNAL;
    }
    return MC_OK;
}

mc_err client_call(mc_client *c, const Mcpb__Request *req,
                   int64_t deadline_ms, Mcpb__Response **out,
                   mc_result *res)
{
    ASSERT(c != NULL);
    ASSERT(req != NULL);
    ASSERT(out != NULL);
    ASSERT(!is_write(req) || (req->has_client_id && req->has_seq));
    *out = NULL;
    client_result_clear(res);

    struct call k = {
        .c = c,
        .req = req,
        .deadline_ms = deadline_ms,
        .started_ms = base_mono_ms(),
        .next_ep = atomic_load(&c->preferred_ep) % (unsigned)c->n_eps,
    };
    if (frames_encode(&k) != MC_OK) {
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    mc_err rv = attempts_run(&k, out, res);
    mc_free(k.fwd);
    mc_free(k.direct);
    ASSERT(rv == MC_OK || *out == NULL || (*out)->code == (uint32_t)rv);
    ASSERT(rv != MC_OK || *out != NULL);
    return rv;
}
