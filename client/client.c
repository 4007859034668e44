/* libmemcoord: opening and closing a client, its endpoints and its lanes
 * of request ids. The calls themselves live in call.c and the files of
 * each operation. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "client/internal.h"

#include <nng/protocol/reqrep0/req.h>

void client_result_clear(mc_result *res)
{
    if (res != NULL) {
        memset(res, 0, sizeof *res);
    }
}

mc_err client_result_set(mc_result *res, mc_err code, const char *fmt, ...)
{
    if (res != NULL) {
        res->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(res->message, sizeof res->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

int64_t client_deadline(const mc_client *c)
{
    return base_mono_ms() + c->timeout_ms;
}

/* splitmix64: good enough for jitter, lock-free, never blocks. */
uint64_t client_random(mc_client *c)
{
    uint64_t z = atomic_fetch_add(&c->jitter, 0x9e3779b97f4a7c15ull) +
                 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* 64 random bits from the kernel: client ids must not repeat across
 * processes, or two clients would share one dedupe slot on the server. */
static bool random_u64(uint64_t *out)
{
    uint8_t *p = (uint8_t *)out;
    size_t got = 0;
    while (got < sizeof *out) {
        ssize_t n = getrandom(p + got, sizeof *out - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        got += (size_t)n;
    }
    return true;
}

static mc_err lane_new(mc_client *c, struct client_lane **out, mc_result *res)
{
    if (c->n_lanes % 16 == 0) {
        struct client_lane **grown =
            mc_realloc(c->lanes, (c->n_lanes + 16) * sizeof *grown);
        if (grown == NULL) {
            return client_result_set(res, MC_INTERNAL, "out of memory");
        }
        c->lanes = grown;
    }
    struct client_lane *lane = mc_calloc(1, sizeof *lane);
    if (lane == NULL) {
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    /* client_id 0 reads as "no id" on the wire: draw again. */
    do {
        if (!random_u64(&lane->client_id)) {
            mc_free(lane);
            return client_result_set(res, MC_INTERNAL,
                                     "getrandom failed: %s", strerror(errno));
        }
    } while (lane->client_id == 0);
    c->lanes[c->n_lanes++] = lane;
    *out = lane;
    return MC_OK;
}

mc_err client_lane_take_locked(mc_client *c, struct client_lane **out,
                               mc_result *res)
{
    ASSERT(c != NULL);
    ASSERT(out != NULL);
    *out = NULL;
    if (c->free_lanes != NULL) {
        *out = c->free_lanes;
        c->free_lanes = (*out)->next;
        (*out)->next = NULL;
        return MC_OK;
    }
    /* Every lane in use: lanes come back when calls end, and every call
     * has a deadline, so a write waits for one at most that long. */
    if (c->n_lanes >= MC_CLIENT_LANES_MAX) {
        return MC_OK;
    }
    return lane_new(c, out, res);
}

void client_lane_give_locked(mc_client *c, struct client_lane *lane)
{
    ASSERT(c != NULL);
    ASSERT(lane != NULL);
    ASSERT(lane->next == NULL);
    lane->next = c->free_lanes;
    c->free_lanes = lane;
}

/* nng calls this on its own thread as a connection of the socket comes
 * (ADD_PRE) and goes (REM_POST); it reports REM_POST for exactly the pipes
 * it reported ADD_PRE for, so the count is exact. ep outlives its socket:
 * client_free closes the socket first. */
static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    struct client_endpoint *ep = arg;
    if (ev == NNG_PIPE_EV_ADD_PRE) {
        atomic_fetch_add(&ep->pipes, 1);
    } else {
        ASSERT(atomic_load(&ep->pipes) > 0);
        atomic_fetch_sub(&ep->pipes, 1);
        atomic_fetch_add(&ep->pipes_lost, 1);
    }
}

bool client_endpoint_connected(const struct client_endpoint *ep)
{
    return atomic_load(&ep->pipes) > 0;
}

/* Open the req socket of one endpoint and start dialing in the background:
 * a node that is down now is found when it comes up. */
mc_err client_endpoint_open(struct client_endpoint *ep, mc_result *res)
{
    int rv = nng_req0_open(&ep->sock);
    if (rv != 0) {
        return client_result_set(res, MC_INTERNAL, "nng_req0_open: %s",
                                 nng_strerror(rv));
    }
    ep->sock_open = true;
    atomic_init(&ep->pipes, 0);
    atomic_init(&ep->pipes_lost, 0);
    rv = nng_pipe_notify(ep->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, ep);
    if (rv == 0) {
        rv = nng_pipe_notify(ep->sock, NNG_PIPE_EV_REM_POST, pipe_cb, ep);
    }
    if (rv != 0) {
        return client_result_set(res, MC_INTERNAL, "nng_pipe_notify: %s",
                                 nng_strerror(rv));
    }
    /* The library retries with its own ids and deadlines; nng's resend
     * would send a write again behind our back (DEPS-NOTES.md nng). */
    rv = nng_socket_set_ms(ep->sock, NNG_OPT_REQ_RESENDTIME,
                           NNG_DURATION_INFINITE);
    if (rv == 0) {
        rv = nng_socket_set_size(ep->sock, NNG_OPT_RECVMAXSZ,
                                 MC_CLIENT_RECV_BYTES_MAX);
    }
    if (rv == 0) {
        rv = nng_socket_set_ms(ep->sock, NNG_OPT_RECONNMINT,
                               MC_CLIENT_REDIAL_MS_MIN);
    }
    if (rv == 0) {
        rv = nng_socket_set_ms(ep->sock, NNG_OPT_RECONNMAXT,
                               MC_CLIENT_REDIAL_MS_MAX);
    }
    if (rv != 0) {
        return client_result_set(res, MC_INTERNAL, "nng socket option: %s",
                                 nng_strerror(rv));
    }
    rv = nng_dial(ep->sock, ep->url, NULL, NNG_FLAG_NONBLOCK);
    if (rv != 0) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "bad endpoint '%s': %s", ep->url,
                                 nng_strerror(rv));
    }
    return MC_OK;
}

/* Split "a, b,c" into trimmed, non-empty URLs in c->eps. */
static mc_err endpoints_parse(mc_client *c, const char *endpoints,
                              mc_result *res)
{
    const char *p = endpoints;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        p += len + (end != NULL ? 1 : 0);
        while (len > 0 && (*s == ' ' || *s == '\t')) {
            s++, len--;
        }
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
            len--;
        }
        if (len == 0) {
            continue;
        }
        if (c->n_eps == MC_CLIENT_ENDPOINTS_MAX) {
            return client_result_set(res, MC_INVALID_ARGUMENT,
                                     "more than %u endpoints",
                                     MC_CLIENT_ENDPOINTS_MAX);
        }
        if (len >= MC_CLIENT_URL_BYTES_MAX) {
            return client_result_set(res, MC_INVALID_ARGUMENT,
                                     "endpoint of %zu bytes is longer than %u",
                                     len, MC_CLIENT_URL_BYTES_MAX - 1);
        }
        struct client_endpoint *ep = &c->eps[c->n_eps];
        ep->url = mc_strndup(s, len);
        if (ep->url == NULL) {
            return client_result_set(res, MC_INTERNAL, "out of memory");
        }
        c->n_eps++;
    }
    if (c->n_eps == 0) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "no endpoint given");
    }
    return MC_OK;
}

static void client_free(mc_client *c)
{
    size_t n = c->n_socks > c->n_eps ? c->n_socks : c->n_eps;
    for (size_t i = 0; i < n; i++) {
        if (c->eps[i].sock_open) {
            /* Closing fails only for a socket that is already closed. */
            (void)nng_close(c->eps[i].sock);
        }
        mc_free(c->eps[i].url);
    }
    mc_free(c->eps);
    for (size_t i = 0; i < c->n_lanes; i++) {
        mc_free(c->lanes[i]);
    }
    mc_free(c->lanes);
    mc_free(c);
}

mc_err mc_client_open(const char *endpoints, const mc_options *opts,
                      mc_client **out, mc_result *res)
{
    client_result_clear(res);
    if (out == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT, "out is NULL");
    }
    *out = NULL;
    if (endpoints == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "no endpoint given");
    }
    if (opts != NULL && opts->timeout_ms < 0) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "timeout of %d ms is negative",
                                 opts->timeout_ms);
    }

    mc_err rv;
    mc_client *c = mc_calloc(1, sizeof *c);
    if (c == NULL) {
        rv = client_result_set(res, MC_INTERNAL, "out of memory");
        goto err;
    }
    c->timeout_ms = opts != NULL && opts->timeout_ms > 0
                        ? opts->timeout_ms
                        : MC_CLIENT_TIMEOUT_MS_DEFAULT;
    uint64_t seed = (uint64_t)base_mono_ns();
    (void)random_u64(&seed); /* the clock is seed enough when this fails */
    atomic_init(&c->jitter, seed);
    atomic_init(&c->preferred_ep, 0);
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        rv = client_result_set(res, MC_INTERNAL, "pthread_mutex_init failed");
        goto err_after_alloc;
    }
    if (client_route_init(&c->route) != MC_OK) {
        rv = client_result_set(res, MC_INTERNAL, "pthread_mutex_init failed");
        goto err_after_mutex;
    }
    /* Room for the members' sockets too, so that the array never moves
     * while other threads use its sockets. */
    c->eps = mc_calloc(MC_CLIENT_SOCKETS_MAX, sizeof *c->eps);
    if (c->eps == NULL) {
        rv = client_result_set(res, MC_INTERNAL, "out of memory");
        goto err_after_route;
    }
    rv = endpoints_parse(c, endpoints, res);
    if (rv != MC_OK) {
        goto err_after_route;
    }
    for (size_t i = 0; i < c->n_eps; i++) {
        rv = client_endpoint_open(&c->eps[i], res);
        if (rv != MC_OK) {
            goto err_after_route;
        }
    }
    c->n_socks = c->n_eps;
    rv = client_engine_init(c, res);
    if (rv != MC_OK) {
        goto err_after_route;
    }
    /* Spread clients over the nodes; the first answer then sticks. */
    atomic_store(&c->preferred_ep, (unsigned)(seed % c->n_eps));
    *out = c;
    return MC_OK;

err_after_route:
    client_route_fini(&c->route);
err_after_mutex:
    pthread_mutex_destroy(&c->mu);
err_after_alloc:
    client_free(c);
err:
    ASSERT(rv != MC_OK);
    return rv;
}

void mc_client_close(mc_client *c)
{
    if (c == NULL) {
        return;
    }
    CLIENT_ASSERT_NOT_IN_CALLBACK(
        "no mc_client_close in the callback of an asynchronous call: close "
        "waits for every callback, this one too");
    /* Ends the asynchronous calls in flight and waits for them. */
    client_engine_close(c);
    /* Every lane came back: one still out would mean a caller is using a
     * client it closed. */
    pthread_mutex_lock(&c->mu);
    size_t n_free = 0;
    for (struct client_lane *l = c->free_lanes; l != NULL; l = l->next) {
        n_free++;
    }
    ASSERT(n_free == c->n_lanes);
    pthread_mutex_unlock(&c->mu);
    client_route_fini(&c->route);
    pthread_mutex_destroy(&c->mu);
    client_free(c);
}
