/* client: the private half of libmemcoord. The public contract is
 * include/memcoord.h; this header ties the files of client/ together:
 *
 *   client.c   open/close, endpoints, lanes (request ids), result helpers
 *   call.c     the engine: one request as a state machine of nng aio
 *              callbacks (encode, send, receive, retry with backoff, the
 *              node of each attempt), and the synchronous call on top
 *   route.c    the shard map: leaders, replicas, members and their sockets
 *   refresh.c  learning the shard map from nodes' STATUS answers, as a
 *              state machine of its own that calls wait for or go around
 *   kv.c       put, delete, get (synchronous and asynchronous) and records
 *   list.c     list: fan-out over shards, merge, pages
 *   txn.c      transactions: checks, the shard of their keys, results
 *   status.c   status, and the shard count list needs
 *   watch.c    watch (one long poll per shard in flight) and wait
 *
 * Threads: an mc_client is shared by many threads, and by the callbacks of
 * its asynchronous calls, which run on nng's threads. The caller's
 * endpoints and their nng sockets are fixed at open; sockets to other
 * members are added later, under route.mu, to an array that never moves
 * (nng sockets are thread-safe; each call object keeps an nng_ctx per
 * socket). The lanes, the call objects, the count of busy calls and of
 * starts in progress are under mu; the shard map and the refresh's
 * waiters are under route.mu; the two locks are never held together. The
 * preferred endpoint, the jitter state, the closing flag, the count of
 * calls in flight, and the sockets' failure marks and connection counts
 * are atomics. A thread-local flag marks the caller's callbacks.
 *
 * Invariants:
 *   (1) A lane is held by at most one call at a time, so each client_id has
 *       at most one write in flight and its seq only grows: the server keeps
 *       only the last seq per client_id (DESIGN.md §5).
 *   (2) Every attempt of one write carries the same (client_id, seq).
 *   (3) The library never logs: every failure ends in an mc_err and a
 *       sentence in mc_result.message.
 *   (4) A call that started ends exactly once: an asynchronous one by its
 *       done function, on an nng thread (never the thread that started
 *       it); a synchronous one on its caller's thread, which runs its
 *       steps and returns its end. mc_client_close returns only after
 *       every call and the refresh ended (busy is 0). */
#ifndef MC_CLIENT_INTERNAL_H
#define MC_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <nng/nng.h>

#include "base/base.h"
#include "proto/proto.h"

/* Test points: where a unit test of tests/unit/client/ (which compiles the
 * client's sources into itself) runs code of its own, to force an
 * interleaving of threads that timing alone gives too rarely to test (as
 * SQLite's fault simulator does). The library defines them as nothing. */
#ifndef CLIENT_TEST_POINT
#define CLIENT_TEST_POINT(point, arg) ((void)0)
#endif

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
 * request. With one endpoint an attempt may use the whole call. A socket
 * that has a connection is not waiting for one: its send may wait as long
 * as the reply (its turn behind the client's other requests). */
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
/* A long poll (a watch of one shard, a slice of a wait) waits this long on
 * a node for an event before the node answers it empty and the library
 * sends the next. A node that dies closes its connections, and a poll on
 * a closed connection is sent again at once; but a host that crashes or
 * drops off the network closes nothing, and its polls are noticed only at
 * their end: this bounds how long events of a shard can be held up then
 * (with MC_CLIENT_LONGPOLL_MARGIN_MS). It also bounds how long a poll left
 * behind by a closed watch holds a node context. An idle prefix watch
 * costs one request per shard per poll, which a node barely notices. */
#define MC_CLIENT_WATCH_POLL_MS 5000
/* Beyond its wait, a long poll's attempt waits this long for the answer
 * (a barrier, a forward, the network): the call's timeout is always
 * longer than the wait it asks for. */
#define MC_CLIENT_LONGPOLL_MARGIN_MS MC_CLIENT_REPLY_WAIT_MS
/* How often a watch waiting for answers looks for closed connections. */
#define MC_CLIENT_PIPE_CHECK_MS 50
/* A watch token (memcoord.h): "1/" shard count, then "/shard:revision"
 * per watched shard; its longest form. */
#define MC_CLIENT_TOKEN_BYTES_MAX (16u + MC_SHARDS_MAX * 32u)

/* Sockets of one client: the caller's endpoints, and one per member of the
 * cluster that the caller did not list (members answer STATUS with their
 * addresses, and requests go straight to shard leaders). */
#define MC_CLIENT_SOCKETS_MAX (MC_CLIENT_ENDPOINTS_MAX + MC_NODES_MAX)
/* The shard map is refreshed at most once per this interval: a cluster in
 * an election answers UNAVAILABLE to every request, and each of them must
 * not turn into a round of STATUS calls. About a third of an election
 * timeout in the tests, a tenth of the default. */
#define MC_CLIENT_REFRESH_MS_MIN 100
/* A refresh takes at most this long, and at most half of what is left of
 * the call that runs it: the call still needs time for its request. */
#define MC_CLIENT_REFRESH_MS_MAX 1000
/* One STATUS of a refresh: waits for a connection and for the answer. A
 * node answers STATUS from its front end without a raft round, so a live
 * node answers in well under a millisecond on a LAN. While other nodes are
 * left to ask, a socket without a connection waits at most half of what
 * is left of the refresh: a dead node must not eat all of it. */
#define MC_CLIENT_STATUS_CONNECT_MS 200
#define MC_CLIENT_STATUS_REPLY_MS 500
/* Direct attempts (to the leader the map names, with no_forward) that may
 * fail in a row before one attempt goes through any endpoint with
 * forwarding, so a wrong map costs a call at most this many attempts. */
#define MC_CLIENT_DIRECT_TRIES_MAX 2u
/* NOT_LEADER hints one call follows at once, without a pause. Leadership
 * that moves more often than this is an election: wait it out. */
#define MC_CLIENT_HINTS_MAX MC_FORWARD_HOPS_MAX
/* A socket whose attempt got no answer (no connection, lost reply) is
 * suspect this long: requests go around it (through forwarding) and a
 * refresh asks it last. An answer through it clears the mark. */
#define MC_CLIENT_SUSPECT_MS 1000

/* Idle call objects a client keeps for its next calls (each about 2 KiB,
 * two nng aios and a context per socket it used). Beyond them the pool
 * shrinks: each start frees up to MC_CLIENT_CALLS_REAP_MAX of them, so
 * that a client that had thousands of calls in flight gives their memory
 * back soon, and no one start pays for all of it. */
#define MC_CLIENT_CALLS_IDLE_MAX 64u
#define MC_CLIENT_CALLS_REAP_MAX 8u

/* A call object keeps its request buffer for its next call up to this size,
 * which holds the request of a value of a few KiB; a larger one is freed,
 * so that a client that had thousands of calls in flight does not keep
 * megabytes (that call pays a malloc, beside sending the value). */
#define MC_CLIENT_FRAME_KEEP_BYTES (4u << 10)

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
_Static_assert(MC_CLIENT_REFRESH_MS_MIN > 0 &&
                   MC_CLIENT_REFRESH_MS_MIN < MC_CLIENT_SUSPECT_MS,
               "a suspect node can be found alive again by a refresh");
_Static_assert(MC_CLIENT_DIRECT_TRIES_MAX >= 1,
               "a call with a shard map tries the leader at least once");
_Static_assert(MC_CLIENT_WATCH_POLL_MS <= MC_WATCH_WAIT_MS_MAX,
               "a watch poll is a valid wait");
_Static_assert(MC_CLIENT_CALLS_MAX >= MC_FRONTEND_CTX_DEFAULT,
               "one client can keep a node's contexts busy");
_Static_assert(MC_CLIENT_CALLS_IDLE_MAX <= MC_CLIENT_CALLS_MAX &&
                   MC_CLIENT_CALLS_REAP_MAX > 0,
               "the pool keeps fewer objects than calls and shrinks");

struct client_endpoint {
    char *url;
    nng_socket sock;
    bool sock_open;
    /* Connections of the socket that are up (nng's pipe notifications):
     * a send on a socket with one waits its turn behind the client's
     * other requests, not for a node that is gone. */
    atomic_uint pipes;
    /* Connections of the socket that closed: a long poll whose connection
     * closed will never be answered, so it is sent again at once rather
     * than at its timeout. */
    atomic_uint pipes_lost;
    /* Under route.mu: */
    uint64_t node_id;  /* the node behind it: 0 = not known yet */
    /* base_mono_ms of its last attempt without an answer; 0 = it answered
     * since. Written under route.mu; atomic so that an answer can see
     * without the lock that there is no mark to clear. */
    _Atomic int64_t failed_ms;
};

/* One shard in the map. */
struct route_shard {
    uint64_t leader_id; /* 0 = not known (an election, or never told) */
    uint64_t term;      /* the raft term in which leader_id was reported */
    uint64_t replicas[MC_REPLICAS_MAX]; /* node ids, preferred leader first */
    uint32_t n_replicas;
};

/* One member of the cluster, as STATUS lists it. */
struct route_member {
    uint64_t id;
    char url[MC_CLIENT_URL_BYTES_MAX];
    bool unusable; /* its url failed to open: do not try again */
};

struct client_call;

/* Parked calls in arrival order: the writes waiting for a lane (under
 * mc_client.mu), the calls waiting for a refresh (under route.mu). Doubly
 * linked through the calls' next and prev, so that a call whose wait runs
 * out leaves its list in O(1): thousands of them may time out together. */
struct call_list {
    struct client_call *head, *tail;
};

/* The shard map (route.c). A cache: a wrong entry costs an attempt or a
 * NOT_LEADER hint, never a wrong answer, because nodes check leadership
 * themselves.
 *
 * Invariants (under mu):
 *   (1) shards[s] is zero for s >= shard_count; shard_count is 0 until a
 *       node told it.
 *   (2) A shard's leader is replaced by a report of a higher term, by a
 *       report of the same term when none was known, or by a hint.
 *   (3) mc_client.n_socks only grows; eps[0..n_eps) are the caller's
 *       endpoints in the caller's order. */
struct client_route {
    pthread_mutex_t mu;
    uint32_t shard_count;
    struct route_shard shards[MC_SHARDS_MAX];
    struct route_member members[MC_NODES_MAX];
    uint32_t n_members;
    bool stale;          /* an attempt failed: the map may be wrong */
    unsigned stale_gen;  /* counts stale marks, see refresh_end */
    bool refreshing;     /* a refresh runs: no other one starts */
    int64_t refreshed_ms; /* start of the last refresh; 0 = never */
    unsigned refreshes;  /* refreshes that ended */
    /* Calls parked until the running refresh ends (refresh.c); and the
     * synchronous waiters' condition (CLOCK_MONOTONIC), broadcast when a
     * refresh ends. */
    struct call_list waiters;
    pthread_cond_t refreshed;
};

/* A request id source: (client_id, seq). See invariant (1). */
struct client_lane {
    uint64_t client_id;
    uint64_t seq;
    struct client_lane *next; /* free list, under mc_client.mu */
};

/* Where one attempt goes. */
struct call_target {
    size_t ep;
    bool direct;
    uint32_t shard; /* when direct */
};

/* What the shard map needs of a request to route it, taken from the
 * request when its call starts (the request itself is the caller's and
 * is gone by then). */
struct route_key {
    bool wants;        /* the request has a shard (client_route_wants) */
    bool by_shard;     /* the shard is given (LIST, WATCH of a prefix) */
    uint32_t shard;    /* by_shard */
    uint32_t slot;     /* else: the slot of its key */
    bool serializable; /* any replica may serve it */
};

/* How a call ends: fn runs exactly once, on an nng thread, with the final
 * code, the node's answer r when there was one (fn owns it and frees it
 * with mcpb__response__free_unpacked), and res, borrowed for the duration
 * of fn. fn must not block: it may start calls, but not wait for them. */
struct client_done;
typedef void (*client_done_fn)(const struct client_done *d, mc_err code,
                               Mcpb__Response *r, const mc_result *res);
struct client_done {
    client_done_fn fn;
    void *arg;
    /* The caller's callback of an asynchronous call (kv.c), for fn. */
    union {
        mc_done_cb done;
        mc_get_cb get;
    } user;
    void *user_arg;
};

/* The states of a call (call.c has the diagram). */
enum call_state {
    CALL_FREE,  /* in the pool */
    CALL_LANE,  /* parked until a lane is free */
    CALL_MAP,   /* parked until the refresh of the shard map ends */
    CALL_SEND,  /* nng: until a connection takes the request */
    CALL_RECV,  /* nng: until the answer comes */
    CALL_PAUSE, /* the backoff before the next attempt: a timed operation
                   of the engine's own, not nng_sleep_aio (pause_start) */
    CALL_END,   /* the end, deferred to an nng thread */
};

/* One call in flight, or a free call object in the pool. Call objects and
 * their aios are made on demand; idle ones beyond MC_CLIENT_CALLS_IDLE_MAX
 * are freed by later starts, the rest at mc_client_close. While a
 * call runs, only its own callbacks touch it (one at a time: each starts
 * the operation that leads to the next), except next and queued, which
 * belong to the list the call is parked on. */
struct client_call {
    mc_client *c;
    size_t slot; /* in mc_client.calls */
    /* Every step is an operation on io: aio_cb for an asynchronous call
     * (its callback runs the next step on nng's thread), aio_wait for a
     * synchronous one (no callback: a completion wakes the caller, who
     * runs the next step on its own thread; nng completes such an aio
     * inline, with no hand-off to its task threads). */
    nng_aio *io;
    nng_aio *aio_cb;
    nng_aio *aio_wait;
    bool sync;
    bool ended;      /* sync: the call ended; end_code and end_r hold it */
    mc_err end_code;
    Mcpb__Response *end_r;
    enum call_state state;
    bool in_start;   /* still on the starting thread: end it later */
    bool map_asked;  /* the next target may skip the refresh step */
    /* A list: the pool (next only) or the lane queue (under c->mu), or
     * the refresh's waiters (under route.mu); queued: on the queue or the
     * waiters. */
    struct client_call *next, *prev;
    bool queued;
    nng_ctx ctx[MC_CLIENT_SOCKETS_MAX]; /* per socket, opened on first use */
    /* The request. */
    uint32_t op;
    bool is_write;
    uint32_t wait_ms; /* a long poll's wait on the node */
    struct route_key rk;
    uint8_t *body; /* the request packed as given (call.c), without the
                      id and no_forward that each attempt adds */
    size_t body_len, body_cap;
    struct client_lane *lane; /* a write's request id source */
    uint64_t seq;             /* its seq, drawn at the first send; 0 before */
    int64_t deadline_ms;
    int64_t started_ms;
    struct client_done done;
    /* Progress. */
    int attempts;
    unsigned direct_fails; /* direct attempts failed in a row */
    unsigned hints;        /* NOT_LEADER hints followed */
    unsigned next_ep;      /* caller endpoint of the next forwarded attempt */
    bool unknown;          /* an attempt of a write may have applied */
    mc_result last;        /* what the last attempt said */
    struct call_target t;  /* of the attempt in flight */
    int send_wait_ms, reply_wait_ms;
};

/* The refresh of the shard map (refresh.c): at most one runs at a time,
 * as a state machine on its own aio. */
enum refresh_state { REFRESH_SEND, REFRESH_RECV };
struct client_refresh {
    nng_aio *aio;
    void *frame; /* a STATUS request, encoded at open */
    size_t frame_len;
    nng_ctx ctx[MC_CLIENT_SOCKETS_MAX];
    /* The running refresh's (route.refreshing): only its callbacks and the
     * thread that started it touch these. */
    enum refresh_state state;
    bool asked[MC_CLIENT_SOCKETS_MAX]; /* by socket: each asked once */
    bool learned;  /* a node answered with its status */
    bool complete; /* every shard has a leader the client can reach */
    size_t ep;     /* asked now */
    unsigned gen;  /* route.stale_gen when it began */
    int64_t until_ms;
};

struct mc_client {
    struct client_endpoint *eps; /* MC_CLIENT_SOCKETS_MAX, never moves */
    size_t n_eps;                /* the caller's endpoints */
    size_t n_socks;              /* all open: n_eps + members; route.mu */
    int timeout_ms;

    atomic_uint preferred_ep;   /* the caller endpoint that answered last */
    atomic_uint_fast64_t jitter; /* splitmix64 state for backoff jitter */
    atomic_bool closing;        /* mc_client_close began: nothing starts */
    struct client_route route;
    struct client_refresh refresh;

    pthread_mutex_t mu;
    struct client_lane *free_lanes; /* under mu */
    struct client_lane **lanes;     /* every lane, for close; under mu */
    size_t n_lanes;
    /* Writes waiting for a lane, first come first served (under mu). */
    struct call_list lane_queue;
    struct client_call *free_calls; /* the pool, under mu */
    size_t n_free_calls;
    struct client_call **calls;     /* every call object, for close */
    size_t n_calls, calls_cap;
    /* Calls from their start until their callback begins (or, sync, their
     * end): at most MC_CLIENT_CALLS_MAX. Raised under mu, lowered
     * anywhere. */
    atomic_uint calls_in_flight;
    unsigned busy;       /* calls started and not ended, plus a running
                            refresh; under mu */
    unsigned starters;   /* threads inside a start (call.c's call_begin),
                            which read c after its first operation began;
                            under mu */
    pthread_cond_t idle; /* busy or starters fell to 0 while closing */
};

/* ---- struct call_list, under the lock of the list ---- */

/* Append k, which is on no list. */
static inline void call_list_push(struct call_list *l, struct client_call *k)
{
    ASSERT(!k->queued);
    k->queued = true;
    k->next = NULL;
    k->prev = l->tail;
    if (l->tail != NULL) {
        l->tail->next = k;
    } else {
        l->head = k;
    }
    l->tail = k;
}

/* Take k, which is on l, off it. */
static inline void call_list_remove(struct call_list *l, struct client_call *k)
{
    ASSERT(k->queued);
    if (k->prev != NULL) {
        k->prev->next = k->next;
    } else {
        ASSERT(l->head == k);
        l->head = k->next;
    }
    if (k->next != NULL) {
        k->next->prev = k->prev;
    } else {
        ASSERT(l->tail == k);
        l->tail = k->prev;
    }
    k->next = k->prev = NULL;
    k->queued = false;
}

/* Take the first call off l; NULL when l is empty. */
static inline struct client_call *call_list_pop(struct call_list *l)
{
    struct client_call *k = l->head;
    if (k != NULL) {
        call_list_remove(l, k);
    }
    return k;
}

/* ---- client.c ---- */

/* Under mu: take a free lane, or create one while fewer than
 * MC_CLIENT_LANES_MAX exist. MC_OK with *out NULL when all of them are in
 * use: the call then waits for one (call.c). The caller gives it back with
 * client_lane_give_locked when its call is done, retries included.
 * Errors: INTERNAL (out of memory, no randomness), message in res. */
mc_err client_lane_take_locked(mc_client *c, struct client_lane **out,
                               mc_result *res);
void client_lane_give_locked(mc_client *c, struct client_lane *lane);

/* Reset res (which may be NULL) for a new call. */
void client_result_clear(mc_result *res);
/* Set code and message of res (which may be NULL); returns code. */
mc_err client_result_set(mc_result *res, mc_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The absolute deadline (base_mono_ms) of a call that starts now. */
int64_t client_deadline(const mc_client *c);

/* Random 64 bits for jitter; never blocks. */
uint64_t client_random(mc_client *c);

/* ep has a connection up now: a node is there. Without the lock. */
bool client_endpoint_connected(const struct client_endpoint *ep);

/* Open ep's req socket for ep->url and start dialing in the background.
 * On failure ep->sock_open tells whether the socket must still be closed.
 * Errors: INTERNAL (nng), INVALID_ARGUMENT (a URL nng cannot dial). */
mc_err client_endpoint_open(struct client_endpoint *ep, mc_result *res);

/* ---- call.c ---- */

/* Start req as a call: send it to the cluster, retrying transport
 * failures and the answers UNAVAILABLE, NOT_LEADER and TIMEOUT with backoff
 * until deadline_ms (base_mono_ms), then end it through done (copied).
 * A request for a shard (a key, or LIST of one shard) goes straight to the
 * shard's leader (or, serializable, to a replica) that the shard map names,
 * asking it not to forward; the other attempts go through the caller's
 * endpoints, which forward. A write (OP_PUT, OP_DELETE, OP_TXN) comes
 * without a request id: the call takes a lane and gives every attempt the
 * same (client_id, seq); the two kinds of attempt differ only in
 * no_forward. req is borrowed until this returns (it is encoded at once).
 *
 * The end: the final code, res from the answer, and when the server
 * answered its response (also for error codes). Without an answer the code
 * is UNAVAILABLE (nothing reached a node; "client closed" when
 * mc_client_close ended the call), TIMEOUT (a request may have been taken:
 * a write's outcome is unknown), or INTERNAL.
 *
 * Returns MC_OK when the call started: done->fn will run exactly once, on
 * an nng thread, never on this one. Errors (then done->fn never runs; the
 * message in res, which may be NULL): INTERNAL (out of memory),
 * UNAVAILABLE (the client is closing). */
mc_err client_call_start(mc_client *c, const Mcpb__Request *req,
                         int64_t deadline_ms, const struct client_done *done,
                         mc_result *res);

/* The synchronous call: the same steps as client_call_start's, but this
 * thread waits for each operation and runs the next step itself. Returns
 * the final code and fills res (which may be NULL). When the server
 * answered, *out is its response (also for error codes); the caller frees
 * it with mcpb__response__free_unpacked(*out, NULL); otherwise *out is
 * NULL. Errors as client_call_start's, and those of the end. Must not run
 * on an nng thread (in a callback). */
mc_err client_call(mc_client *c, const Mcpb__Request *req,
                   int64_t deadline_ms, Mcpb__Response **out,
                   mc_result *res);

/* True while a callback of the caller's (the end of an asynchronous call,
 * of any client) runs on this thread. A synchronous call or
 * mc_client_close there blocks one of nng's few threads, which the calls
 * it waits for may need, and close waits for that very callback: both
 * deadlock, so they assert against it (CLIENT_ASSERT_NOT_IN_CALLBACK). */
bool client_in_callback(void);
#define CLIENT_ASSERT_NOT_IN_CALLBACK(why)                                  \
    ASSERT(!client_in_callback() && why)

/* After starting an operation on aio of c: when c began to close, abort
 * it, so that nothing waits for its timeout. mc_client_close sets the flag
 * and then aborts every aio: its abort either finds the operation
 * registered or comes before the flag is read here. Reads nothing of the
 * call or refresh that owns aio, whose callback may own it already. */
void client_abort_if_closing(mc_client *c, nng_aio *aio);

/* Make the engine's part of a new client (the refresh's aio and frame).
 * Errors: INTERNAL. client_engine_close ends every call in flight (their
 * done functions see UNAVAILABLE "client closed", or TIMEOUT for a write
 * that may have applied), waits for them and the refresh, and frees the
 * call objects; then nothing of the engine runs. */
mc_err client_engine_init(mc_client *c, mc_result *res);
void client_engine_close(mc_client *c);

/* The backoff before retry number attempt (0-based), jitter included. */
int client_backoff_ms(mc_client *c, unsigned attempt);

/* ---- route.c: the shard map ---- */

/* Zero the map and create its mutex. Errors: INTERNAL (pthread). Call
 * fini once, after a successful init, when no call is running. */
mc_err client_route_init(struct client_route *r);
void client_route_fini(struct client_route *r);

/* True when req has a shard: a key (put, delete, get, wait, watch of a
 * key; a transaction by its first key) or LIST or a watch of a prefix in
 * one shard. Needs no map. */
bool client_route_wants(const Mcpb__Request *req);
/* What of req routes it (its wants, shard or slot, serializable). */
void client_route_key(const Mcpb__Request *req, struct route_key *out);
/* client_route_pick by a route key (for a call whose request is gone). */
bool client_route_pick_key(mc_client *c, const struct route_key *k,
                           size_t *ep, uint32_t *shard);

/* The socket for the next direct attempt of req, and req's shard: the
 * shard's leader or, for a serializable read, the first of the caller's
 * endpoints that holds a replica. Opens a socket to a member the caller did
 * not list. False when the map cannot say (no map, no leader, the node's
 * socket is suspect): the map is then marked stale. */
bool client_route_pick(mc_client *c, const Mcpb__Request *req, size_t *ep,
                       uint32_t *shard);

/* The caller's endpoint for a forwarded attempt: from *next on, the first
 * that is not suspect, or *next itself when all of them are (one must be
 * tried); *next moves past it. Without the lock. */
size_t client_route_forward_ep(mc_client *c, unsigned *next);

/* No socket: for an answer whose socket is not known. */
#define CLIENT_EP_NONE SIZE_MAX

/* Learn from st, a node's STATUS answer that came through socket ep
 * (CLIENT_EP_NONE when not known): the shard count, the members, the node behind ep, and
 * for each shard the node hosts its replicas and, by term, its leader. */
void client_route_learn_status(mc_client *c, size_t ep,
                               const Mcpb__NodeStatus *st);
/* Learn a NOT_LEADER hint: leader_id leads shard, at leader_url (may be
 * NULL) when it is not a known member. */
void client_route_learn_hint(mc_client *c, uint32_t shard, uint64_t leader_id,
                             const char *leader_url);

/* ep answered: it is not suspect. */
void client_route_answered(mc_client *c, size_t ep);
/* An attempt through ep got no answer: ep is suspect for
 * MC_CLIENT_SUSPECT_MS, and the map is stale. */
void client_route_failed(mc_client *c, size_t ep);
/* An answer said the map may be wrong (UNAVAILABLE, NOT_LEADER, ...). */
void client_route_stale(mc_client *c);

/* The leader of shard as the map says; 0 when not known. */
uint64_t client_route_leader(mc_client *c, uint32_t shard);
/* Shards in the cluster; 0 while no node has told. */
uint32_t client_route_shard_count(mc_client *c);
/* Sockets open now: attempts wait less when there is another to try. */
size_t client_route_sockets(mc_client *c);

/* Every shard has a leader whose socket is not suspect. */
bool client_route_is_complete(mc_client *c);
/* The next socket a refresh should ask, not in asked[0..
 * MC_CLIENT_SOCKETS_MAX) and not behind a node already asked: the caller's
 * endpoints from the preferred one on, then members (opening sockets),
 * suspect ones only while include_suspect. False when none is left. */
bool client_route_next_ask(mc_client *c, const bool *asked,
                           bool include_suspect, size_t *ep);

/* ---- refresh.c ---- */

/* Refresh the shard map when it is missing or stale (rate-limited, one
 * refresh at a time; other calls go on with the map they have): ask nodes
 * for STATUS, one attempt each with short waits, until every shard has a
 * leader, using at most half of the time left before deadline_ms. Best
 * effort: a failure leaves the map as it was, and calls still work through
 * forwarding. This one waits on the caller's thread for the refresh it
 * started (for watch and admin calls); not on an nng thread. */
void client_route_refresh(mc_client *c, int64_t deadline_ms);

/* The refresh step of call k's target choice (call.c), on k's thread of
 * the moment: when a refresh is due, start it and park k until it ends
 * (at most half of what is left before k's deadline, and at most
 * MC_CLIENT_REFRESH_MS_MAX); while one runs and the map knows no shard
 * count, park k for it too. Returns true when k is parked (CALL_MAP; its
 * callback runs when the refresh ends or the wait runs out); false when k
 * should go on with the map as it is. */
bool client_refresh_park(mc_client *c, struct client_call *k);

/* Set up and tear down the refresh of a new client (its aio and frame).
 * Errors: INTERNAL. */
mc_err client_refresh_init(mc_client *c, mc_result *res);
void client_refresh_fini(mc_client *c);

/* ---- status.c ---- */

/* The number of shards in the cluster, from the shard map or else from an
 * OP_STATUS call (with retries) before deadline_ms.
 * Errors: those of client_call; UNAVAILABLE when the node knows none. */
mc_err client_shard_count(mc_client *c, int64_t deadline_ms, uint32_t *out,
                          mc_result *res);
/* Ask a node again (the shard count may have changed) and learn its
 * answer into the shard map. */
mc_err client_shard_count_refresh(mc_client *c, int64_t deadline_ms,
                                  uint32_t *out, mc_result *res);

/* ---- kv.c ---- */

/* Send the write req (PUT, DELETE, TXN) under a lane's request id, the
 * same for every retry, as client_call does. When out is not NULL it
 * takes the answer, if any, which the caller frees. Errors: those of
 * client_call. */
mc_err client_write_call(mc_client *c, Mcpb__Request *req,
                         int64_t deadline_ms, Mcpb__Response **out,
                         mc_result *res);

/* Copy a wire record into r (whose storage the caller owns); the key and
 * value are new allocations (value NUL-terminated), freed by
 * client_record_fini. Errors: INTERNAL (out of memory). */
mc_err client_record_init(mc_record *r, const Mcpb__Record *w);
void client_record_fini(mc_record *r);

#endif
