/* client: the private half of libmemcoord. The public contract is
 * include/memcoord.h; this header ties the files of client/ together:
 *
 *   client.c  open/close, endpoints, lanes (request ids), result helpers
 *   call.c    one request: encode, send, wait, retry with backoff
 *   kv.c      put, delete, get and records
 *   list.c    list: fan-out over shards, merge, pages
 *   status.c  status and the cached shard count
 *
 * Threads: an mc_client is shared by many threads. The endpoints and their
 * nng sockets are fixed at open (nng sockets are thread-safe, each call
 * opens its own nng_ctx); the lane pool is under mu; the preferred endpoint,
 * the jitter state and the shard count are atomics.
 *
 * Invariants:
 *   (1) A lane is held by at most one call at a time, so each client_id has
 *       at most one write in flight and its seq only grows: the server keeps
 *       only the last seq per client_id (DESIGN.md §5).
 *   (2) Every attempt of one write carries the same (client_id, seq).
 *   (3) The library never logs: every failure ends in an mc_err and a
 *       sentence in mc_result.message. */
#ifndef MC_CLIENT_INTERNAL_H
#define MC_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <nng/nng.h>

#include "base/base.h"
#include "proto/proto.h"

/* ---- limits of the client (candidates for base/limits.h) ---- */

/* Endpoints in one mc_client_open string: each costs a socket and a dialer
 * thread's attention; a cluster is a handful of nodes. */
#define MC_CLIENT_ENDPOINTS_MAX 64u
/* Length of one endpoint URL. */
#define MC_CLIENT_URL_BYTES_MAX 256u
/* Whole-call timeout when mc_options gives none. */
#define MC_CLIENT_TIMEOUT_MS_DEFAULT 5000
/* Largest reply accepted: a list page of MC_LIST_PAGE_MAX records can carry
 * far more than one value, so the receive side is generous (a larger reply
 * resets the connection, DEPS-NOTES.md nng). */
#define MC_CLIENT_RECV_BYTES_MAX (64u << 20)
/* Retry backoff: exponential from MIN to MAX, with jitter. */
#define MC_CLIENT_BACKOFF_MS_MIN 10
#define MC_CLIENT_BACKOFF_MS_MAX 500
/* With several endpoints, how long one attempt waits for a connection
 * before it tries the next node, and for a reply from a node that took the
 * request. With one endpoint an attempt may use the whole call. */
#define MC_CLIENT_CONNECT_WAIT_MS 300
#define MC_CLIENT_REPLY_WAIT_MS 2000
/* nng's background redial of a node that is down: first retry after MIN,
 * doubling up to MAX, so a restarted node is found quickly. */
#define MC_CLIENT_REDIAL_MS_MIN 20
#define MC_CLIENT_REDIAL_MS_MAX 500
/* Lanes (request ids) of one client: one per concurrent writer. A call
 * that finds all of them taken waits for one. */
#define MC_CLIENT_LANES_MAX 1024u
/* list: page size when mc_list_opts gives none (memcoord.h). */
#define MC_CLIENT_LIST_LIMIT_DEFAULT 1000u
/* list: rounds of "the shard count changed, ask again" per page. */
#define MC_CLIENT_SHARD_REFRESH_MAX 1u

_Static_assert(MC_CLIENT_BACKOFF_MS_MIN > 0 &&
                   MC_CLIENT_BACKOFF_MS_MIN <= MC_CLIENT_BACKOFF_MS_MAX,
               "backoff grows from a positive start to its cap");
_Static_assert(MC_CLIENT_RECV_BYTES_MAX >= MC_MESSAGE_BYTES_MAX,
               "a client must accept any message a node may send");
_Static_assert(MC_LIST_PAGE_MAX * (MC_KEY_BYTES_MAX + 64u) <
                   MC_CLIENT_RECV_BYTES_MAX,
               "a keys-only page of maximal keys fits in one reply");
_Static_assert(MC_CLIENT_LIST_LIMIT_DEFAULT <= MC_LIST_PAGE_MAX,
               "the default page is a valid page");

struct client_endpoint {
    char *url;
    nng_socket sock;
    bool sock_open;
};

/* A request id source: (client_id, seq). See invariant (1). */
struct client_lane {
    uint64_t client_id;
    uint64_t seq;
    struct client_lane *next; /* free list, under mc_client.mu */
};

struct mc_client {
    struct client_endpoint *eps;
    size_t n_eps;
    int timeout_ms;

    atomic_uint preferred_ep;   /* the endpoint that answered last */
    atomic_uint_fast64_t jitter; /* splitmix64 state for backoff jitter */
    atomic_uint n_shards;       /* 0 = not known yet (status.c) */

    pthread_mutex_t mu;
    pthread_cond_t lane_freed;
    struct client_lane *free_lanes; /* under mu */
    struct client_lane **lanes;     /* every lane, for close; under mu */
    size_t n_lanes;
};

/* ---- client.c ---- */

/* Take a free lane, creating one when none is free, or wait for one when
 * MC_CLIENT_LANES_MAX are in use. The caller gives it back with
 * client_lane_give when its call is done, retries included.
 * Errors: INTERNAL (out of memory, no randomness), message in res. */
mc_err client_lane_take(mc_client *c, struct client_lane **out,
                        mc_result *res);
void client_lane_give(mc_client *c, struct client_lane *lane);

/* Reset res (which may be NULL) for a new call. */
void client_result_clear(mc_result *res);
/* Set code and message of res (which may be NULL); returns code. */
mc_err client_result_set(mc_result *res, mc_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The absolute deadline (base_mono_ms) of a call that starts now. */
int64_t client_deadline(const mc_client *c);

/* Random 64 bits for jitter; never blocks. */
uint64_t client_random(mc_client *c);

/* ---- call.c ---- */

/* Send req to the cluster and wait for the answer, retrying transport
 * failures and the answers UNAVAILABLE, NOT_LEADER and TIMEOUT with backoff
 * over the endpoints until deadline_ms (base_mono_ms). A write (OP_PUT,
 * OP_DELETE) must carry its lane's (client_id, seq): every attempt sends
 * the same bytes.
 *
 * Returns the final code and fills res (which may be NULL) from the answer.
 * When the server answered, *out is its response (also for error codes);
 * the caller frees it with mcpb__response__free_unpacked(*out, NULL).
 * Otherwise *out is NULL and the code is UNAVAILABLE (nothing reached a
 * node), TIMEOUT (a request may have been taken: a write's outcome is
 * unknown), or INTERNAL. */
mc_err client_call(mc_client *c, const Mcpb__Request *req,
                   int64_t deadline_ms, Mcpb__Response **out,
                   mc_result *res);

/* The backoff before retry number attempt (0-based), jitter included. */
int client_backoff_ms(mc_client *c, unsigned attempt);

/* ---- status.c ---- */

/* The number of shards, from the cache or else from an OP_STATUS call
 * before deadline_ms. Errors: those of client_call. */
mc_err client_shard_count(mc_client *c, int64_t deadline_ms, uint32_t *out,
                          mc_result *res);
/* Forget the cached shard count and ask a node again. */
mc_err client_shard_count_refresh(mc_client *c, int64_t deadline_ms,
                                  uint32_t *out, mc_result *res);

/* ---- kv.c ---- */

/* Copy a wire record into r (whose storage the caller owns); the key and
 * value are new allocations (value NUL-terminated), freed by
 * client_record_fini. Errors: INTERNAL (out of memory). */
mc_err client_record_init(mc_record *r, const Mcpb__Record *w);
void client_record_fini(mc_record *r);

#endif
