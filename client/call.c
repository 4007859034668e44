/* One request of libmemcoord, from frame to answer, with retries.
 *
 * An attempt sends the framed request on a fresh nng_ctx of one endpoint's
 * req socket and waits for the reply. It ends in one of four ways:
 *
 *   ANSWERED  the node answered; the answer's code decides what follows
 *   NOT_SENT  no connection took the request: it certainly did not apply
 *   UNKNOWN   a connection took it but no answer came (timeout, reset): a
 *             write may or may not have applied
 *   FATAL     a local failure (out of memory, bad reply): stop at once
 *
 * NOT_SENT, UNKNOWN and the answers UNAVAILABLE, NOT_LEADER and TIMEOUT are
 * retried on the next endpoint after an exponential backoff with jitter,
 * until the deadline. A write is retried with the same bytes, so the same
 * (client_id, seq), which the server dedupes. If any attempt of a write
 * ended UNKNOWN and no later answer settled it, the call says TIMEOUT: the
 * write may have applied. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/internal.h"

enum attempt_outcome {
    ATTEMPT_ANSWERED,
    ATTEMPT_NOT_SENT,
    ATTEMPT_UNKNOWN,
    ATTEMPT_FATAL,
};

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
    return req->op == MCPB__OP__OP_PUT || req->op == MCPB__OP__OP_DELETE;
}

/* Answers that another attempt may change. TIMEOUT from a node means it
 * took the request and could not finish in time: as unknown as a lost
 * reply. */
static bool is_retryable(mc_err code)
{
    return code == MC_UNAVAILABLE || code == MC_NOT_LEADER ||
           code == MC_TIMEOUT;
}

static int wait_ms(int64_t deadline_ms, int cap_ms, size_t n_eps)
{
    int64_t left = deadline_ms - base_mono_ms();
    if (left < 1) {
        left = 1;
    }
    if (n_eps > 1 && left > cap_ms) {
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
        return ATTEMPT_FATAL;
    }
    if ((*out)->code >= MC_ERR_COUNT) {
        client_result_set(res, MC_INTERNAL,
                          "answer from %s has unknown code %u", ep->url,
                          (*out)->code);
        mcpb__response__free_unpacked(*out, NULL);
        *out = NULL;
        return ATTEMPT_FATAL;
    }
    return ATTEMPT_ANSWERED;
}

static enum attempt_outcome attempt(const struct client_endpoint *ep,
                                    const void *frame, size_t frame_len,
                                    int send_wait_ms, int reply_wait_ms,
                                    Mcpb__Response **out, mc_result *res)
{
    enum attempt_outcome outcome = ATTEMPT_FATAL;
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
    outcome = attempt_recv(ep, ctx, aio, reply_wait_ms, out, res);

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

/* The attempts of one call, one endpoint after the other, until a final
 * answer or the deadline. */
static mc_err attempts_run(mc_client *c, const Mcpb__Request *req,
                           const void *frame, size_t frame_len,
                           int64_t deadline_ms, Mcpb__Response **out,
                           mc_result *res)
{
    int64_t started_ms = base_mono_ms();
    mc_result last = {0};
    bool unknown = false;
    unsigned ep_i = atomic_load(&c->preferred_ep) % (unsigned)c->n_eps;
    for (int attempts = 1;; attempts++) {
        Mcpb__Response *r = NULL;
        enum attempt_outcome o = attempt(
            &c->eps[ep_i], frame, frame_len,
            wait_ms(deadline_ms, MC_CLIENT_CONNECT_WAIT_MS, c->n_eps),
            wait_ms(deadline_ms, MC_CLIENT_REPLY_WAIT_MS, c->n_eps), &r,
            &last);
        if (o == ATTEMPT_FATAL) {
            if (res != NULL) {
                *res = last;
            }
            return last.code;
        }
        if (o == ATTEMPT_ANSWERED) {
            result_from_response(&last, r);
            if (!is_retryable((mc_err)r->code)) {
                atomic_store(&c->preferred_ep, ep_i);
                if (res != NULL) {
                    *res = last;
                }
                *out = r;
                return (mc_err)r->code;
            }
            unknown = unknown || r->code == MC_TIMEOUT;
            mcpb__response__free_unpacked(r, NULL);
        }
        unknown = unknown || o == ATTEMPT_UNKNOWN;

        /* Pause, but leave at least half of what is left for one more
         * attempt; with too little left, stop now. */
        int64_t left = deadline_ms - base_mono_ms();
        if (left <= MC_CLIENT_BACKOFF_MS_MIN) {
            return give_up(req, unknown, attempts, started_ms, &last, res);
        }
        int pause = client_backoff_ms(c, (unsigned)attempts - 1);
        sleep_ms(pause < left / 2 ? pause : (int)(left / 2));
        ep_i = (ep_i + 1) % (unsigned)c->n_eps;
    }
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

    void *frame;
    size_t frame_len;
    if (proto_frame_encode(&req->base, PROTO_REQUEST, NULL, &frame,
                           &frame_len) != MC_OK) {
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    mc_err rv = attempts_run(c, req, frame, frame_len, deadline_ms, out, res);
    mc_free(frame);
    ASSERT(rv == MC_OK || *out == NULL || (*out)->code == (uint32_t)rv);
    ASSERT(rv != MC_OK || *out != NULL);
    return rv;
}
