/* memcoord: the public client API (libmemcoord).
 *
 * A client talks to one or more memcoord nodes over nng req/rep with
 * protobuf messages. Every call is thread-safe: many threads may share one
 * mc_client. Calls are synchronous, and put, get and delete also come
 * asynchronous (mc_put_async and friends, below): they return at once and
 * report through a callback, so one thread can keep many requests in
 * flight. The library never logs; every call returns an mc_err and, when
 * the caller passes an mc_result, the message and the version the server
 * saw.
 *
 * Ownership: strings and buffers passed in are borrowed for the duration of
 * the call (of the start, for an asynchronous one). Records and pages
 * returned through out-parameters belong to the caller, who frees them with
 * mc_record_free / mc_page_free / mc_status_free.
 */
#ifndef MEMCOORD_H
#define MEMCOORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The one table of error codes (DESIGN.md §6): the same names on the wire,
 * in the library and in memcoordctl. The numeric values are wire values:
 * append only. */
#define MC_ERR_MAP(X)                                                      \
    X(OK, "success")                                                       \
    X(NOT_FOUND, "no such key")                                            \
    X(CONFLICT, "version does not match the expected version")             \
    X(INVALID_ARGUMENT, "invalid argument")                                \
    X(TOO_LARGE, "message or value exceeds its limit")                     \
    X(UNAUTHENTICATED, "no valid credentials")                             \
    X(PERMISSION_DENIED, "not allowed")                                    \
    X(QUOTA_EXCEEDED, "quota exceeded")                                    \
    X(NOT_LEADER, "this node does not lead the shard")                     \
    X(UNAVAILABLE, "service unavailable, try again")                       \
    X(TIMEOUT, "timed out; the outcome of a write is unknown")             \
    X(COMPACTED, "revision is older than the retained history")            \
    X(INTERNAL, "internal error")

typedef enum {
#define X(name, text) MC_##name,
    MC_ERR_MAP(X)
#undef X
        MC_ERR_COUNT
} mc_err;

/* "CONFLICT", or "UNKNOWN" for a value outside the table. */
const char *mc_errname(mc_err code);
/* A short sentence for the code. */
const char *mc_strerror(mc_err code);
/* Parse a name such as "CONFLICT"; returns false when it is not one. */
bool mc_errparse(const char *name, mc_err *out);

/* UTF-8 as the server checks keys: no overlong forms, no surrogates,
 * nothing above U+10FFFF. mc_utf8_seq_len gives the length of the valid
 * sequence at s[0..len), or 0 when there is none. */
bool mc_utf8_valid(const void *s, size_t len);
size_t mc_utf8_seq_len(const void *s, size_t len);

/* Whether s holds an unescaped '%' or '_': a SQL LIKE pattern of list
 * rather than a plain prefix ('\' escapes the character after it). */
bool mc_like_has_wildcard(const char *s);

/* Public limits (DESIGN.md §7). Servers check them; the library checks them
 * before sending so a caller gets the error without a round trip. */
#define MC_NS_BYTES_MAX 64u        /* namespace: [a-z0-9][a-z0-9._-]{0,63} */
#define MC_KEY_BYTES_MAX 1024u     /* key: valid UTF-8, no NUL */
#define MC_VALUE_BYTES_MAX (1u << 20) /* default value limit, 1 MiB */
#define MC_LIST_PAGE_MAX 10000u    /* keys in one list page */
#define MC_TXN_OPS_MAX 128u        /* compares + operations of one mc_txn */

/* Memory tiers (DESIGN.md §1). MC_TIER_DEFAULT lets the server choose:
 * short when a TTL is given, else the existing record's tier, else long. */
typedef enum {
    MC_TIER_DEFAULT = 0,
    MC_TIER_SHORT = 1, /* working memory: default TTL 1 h */
    MC_TIER_MID = 2,   /* episodic memory: default TTL 7 d */
    MC_TIER_LONG = 3,  /* permanent knowledge: no TTL */
} mc_tier;

const char *mc_tier_name(mc_tier t); /* "short", "mid", "long", "default" */
bool mc_tier_parse(const char *name, mc_tier *out);

/* Expected version for put/delete: any version (unconditional). 0 means the
 * key must not exist; n > 0 means it must be at exactly version n. */
#define MC_VERSION_ANY (-1)

typedef struct mc_client mc_client;

/* Calls in flight on one client at once, synchronous and asynchronous
 * together: as many as the most requests one node serves at once (its
 * front end's contexts, at most 4096); calls beyond that would only wait
 * in queues, where each holds memory (about 2 KiB and its request) and
 * its deadline runs out. A start beyond the limit fails at once (see the
 * asynchronous calls). */
#define MC_CLIENT_CALLS_MAX 4096u

/* What the server said about one call. */
typedef struct mc_result {
    mc_err code;
    uint64_t version;    /* the version seen (after a write, the new one) */
    uint64_t create_rev; /* for writes that succeed */
    uint64_t mod_rev;
    char message[256];   /* NUL-terminated; empty on success */
} mc_result;

typedef struct mc_record {
    char *key; /* NUL-terminated */
    size_t key_len;
    uint8_t *value; /* NUL-terminated for convenience; value_len excludes it */
    size_t value_len;
    uint64_t version;
    uint64_t create_rev;
    uint64_t mod_rev;
    mc_tier tier;
    int64_t expires_at_ms; /* ms since the epoch; 0 = never */
    int64_t updated_at_ms;
} mc_record;

typedef struct mc_page {
    mc_record *records;
    size_t n;
    bool more;         /* more keys may follow: pass next_cursor as
                          start_after and ask again */
    char *next_cursor; /* where the next page starts; NULL when !more.
                          Usually the last key of this page; a pattern list
                          may stop at a key that does not match, and then
                          a page may even be empty with more set */
} mc_page;

typedef struct mc_options {
    int timeout_ms; /* whole call, retries included; 0 = 5000 */
} mc_options;

/* Open a client on a comma-separated list of endpoints
 * ("tcp://127.0.0.1:7400,tcp://127.0.0.1:7401"). Connects lazily: a node
 * that is down now is tried again on each call. opts may be NULL.
 * Errors: INVALID_ARGUMENT (no or bad endpoint), INTERNAL (out of memory,
 * nng failure); res->message says which. */
mc_err mc_client_open(const char *endpoints, const mc_options *opts,
                      mc_client **out, mc_result *res);
/* Close c and free it. Safe on NULL. Asynchronous calls still in flight
 * are ended: each one's callback runs, with UNAVAILABLE "client closed"
 * (TIMEOUT when a write was sent and may have applied), before
 * mc_client_close returns; calls that those callbacks try to start are
 * refused (UNAVAILABLE).
 *
 * Threads. While mc_client_close runs, other threads (and the callbacks of
 * c's calls) may start asynchronous calls on c: such a start is either
 * refused (UNAVAILABLE "client closed"; its callback never runs) or starts
 * and is ended with the others; close waits for every start in progress to
 * return. Not allowed at the same time: synchronous calls on c (mc_put,
 * mc_get, mc_list, mc_txn, mc_wait, mc_status_get, ...: they must have
 * returned), watches of c (close them first), and a second
 * mc_client_close of c. Nothing may use c once mc_client_close returned,
 * since c is freed: the caller must know that its other threads are done
 * with c (joined, say), not merely that their calls would be refused. Not
 * from a callback of an asynchronous call: close waits for the callbacks,
 * that one included (the library asserts, and aborts). */
void mc_client_close(mc_client *c);

typedef struct mc_put_opts {
    int64_t expect_version; /* MC_VERSION_ANY, 0, or n */
    mc_tier tier;
    uint64_t ttl_ms; /* 0 = the tier's default */
} mc_put_opts;
#define MC_PUT_OPTS_INIT {MC_VERSION_ANY, MC_TIER_DEFAULT, 0}

/* Store a value. A retried put (after UNAVAILABLE or a lost connection) is
 * sent with the same request id, so it is applied at most once.
 * Errors: CONFLICT (res->version is the current version, 0 if missing),
 * INVALID_ARGUMENT, TOO_LARGE, UNAVAILABLE, TIMEOUT (outcome unknown). */
mc_err mc_put(mc_client *c, const char *ns, const char *key,
              const void *value, size_t value_len, const mc_put_opts *opts,
              mc_result *res);

/* Delete a key; expect_version as for put. NOT_FOUND when missing. */
mc_err mc_delete(mc_client *c, const char *ns, const char *key,
                 int64_t expect_version, mc_result *res);

typedef struct mc_read_opts {
    bool serializable; /* read a replica's state without a raft barrier */
} mc_read_opts;

/* Read a key. On MC_OK *out is a record the caller frees. */
mc_err mc_get(mc_client *c, const char *ns, const char *key,
              const mc_read_opts *opts, mc_record **out, mc_result *res);
void mc_record_free(mc_record *r);

/* ---- asynchronous put, get and delete ----
 *
 * Each one starts the call and returns at once: MC_OK when it started, and
 * then cb runs exactly once, later, with the outcome; or the error of a
 * call that could not start, and then cb never runs. The call is the
 * synchronous one in every respect but the wait: the same checks (a bad
 * key or an oversized value is refused at the start, before anything is
 * sent), routing straight to the shard's leader and following its hints,
 * retries with backoff under the same request id for a write, the
 * client's timeout as the deadline, and the same codes: cb sees what the
 * synchronous call would have returned, TIMEOUT included when a write's
 * outcome is unknown. In cb, res (never NULL) holds the message and the
 * versions as mc_result does for the synchronous call; it is borrowed for
 * the duration of cb.
 *
 * Ownership: ns, key, value and opts are borrowed only until the start
 * returns (the request is encoded at once): the caller may reuse them. A
 * get's record belongs to cb, which frees it with mc_record_free (NULL
 * unless the code is MC_OK).
 *
 * Threads: cb runs on one of the library's threads (nng's), never on the
 * thread that started the call; callbacks of different calls may run at
 * the same time on different threads. cb must not block: no synchronous
 * calls of libmemcoord and no mc_client_close in it (they would deadlock:
 * the library asserts, and aborts), and no long work. It may start further
 * asynchronous calls (the usual way to keep a number of requests in
 * flight). Writes beyond the client's 1024 request ids wait for one,
 * within their deadline.
 *
 * At most MC_CLIENT_CALLS_MAX calls may be in flight on one client; a call
 * counts from its start until its callback begins (a callback may start
 * the next call in its place). A start beyond the limit fails at once with
 * UNAVAILABLE "too many calls in flight (4096)", rather than wait: a start
 * never blocks, so that a callback may start calls, and a caller that
 * keeps N calls in flight learns from each callback when to start the
 * next. A synchronous call beyond the limit fails the same way.
 *
 * Errors at the start (res, which may be NULL, has the message):
 * INVALID_ARGUMENT, TOO_LARGE (as for the synchronous call), INTERNAL (out
 * of memory), UNAVAILABLE (the client is closing, or MC_CLIENT_CALLS_MAX
 * calls are in flight). */

/* The end of an asynchronous put or delete: code and res as mc_put or
 * mc_delete would return them. */
typedef void (*mc_done_cb)(void *arg, mc_err code, const mc_result *res);
/* The end of an asynchronous get: on MC_OK rec is the record, which the
 * callback owns; otherwise NULL. */
typedef void (*mc_get_cb)(void *arg, mc_err code, mc_record *rec,
                          const mc_result *res);

/* mc_put, asynchronously: a CAS when opts->expect_version is set. */
mc_err mc_put_async(mc_client *c, const char *ns, const char *key,
                    const void *value, size_t value_len,
                    const mc_put_opts *opts, mc_result *res, mc_done_cb cb,
                    void *arg);
/* mc_get, asynchronously (linearizable, or serializable by opts). */
mc_err mc_get_async(mc_client *c, const char *ns, const char *key,
                    const mc_read_opts *opts, mc_result *res, mc_get_cb cb,
                    void *arg);
/* mc_delete, asynchronously. */
mc_err mc_delete_async(mc_client *c, const char *ns, const char *key,
                       int64_t expect_version, mc_result *res, mc_done_cb cb,
                       void *arg);

typedef struct mc_list_opts {
    const char *start_after; /* cursor: list keys greater than this */
    uint32_t limit;          /* 0 = 1000; at most MC_LIST_PAGE_MAX */
    bool keys_only;
    bool serializable;
    const char *pattern;     /* NULL, or a SQL LIKE pattern (see mc_list) */
} mc_list_opts;

/* List keys of ns starting with prefix ("" = all), sorted, across all
 * shards, one page at a time. Page until more is false: with a pattern a
 * page may be empty and still have more.
 *
 * With opts->pattern (prefix then NULL or ""), list the keys that match a
 * SQL LIKE pattern instead: '%' matches any run of characters (the empty
 * one too), '_' exactly one character (one UTF-8 code point), '\' makes
 * the next character literal ('\%', '\_', '\\'); everything else
 * matches itself, case included. "swarm/%/status", "swarm/shared/%-contract".
 * Only the keys under the pattern's literal prefix (its part before the
 * first unescaped '%' or '_') are read, so "swarm/%" is as cheap as the
 * prefix "swarm/" and "%/status" reads the whole namespace.
 * Errors: INVALID_ARGUMENT for a pattern that is empty, not UTF-8, ends in
 * a lone '\', or comes with a prefix. */
mc_err mc_list(mc_client *c, const char *ns, const char *prefix,
               const mc_list_opts *opts, mc_page **out, mc_result *res);
void mc_page_free(mc_page *p);

/* ---- watch and wait (DESIGN.md §5) ----
 *
 * Every shard keeps a bounded ring of its recent events, replicated with
 * its state. An event is identified by (shard, revision, seq): revision is
 * the shard's raft index of the write (a put's mod_rev), seq orders the
 * events of one write. Revisions of different shards are unrelated. Both
 * calls are long polls: the node parks the request and answers it the
 * moment a matching write applies, so nothing polls. */

/* Longest wait of one watch or wait request (DESIGN.md §7): a parked
 * request holds one of a node's request contexts for that long. */
#define MC_WATCH_WAIT_MS_MAX (5 * 60 * 1000)

typedef enum {
    MC_EVENT_PUT = 1,     /* a put stored a value */
    MC_EVENT_DELETE = 2,  /* a delete removed the key */
    MC_EVENT_EXPIRE = 3,  /* the key's TTL ran out and it was removed */
    MC_EVENT_PROMOTE = 4, /* a put that kept the value byte for byte and
                             moved it to a higher tier (short -> mid ->
                             long); its version grows as for any put */
} mc_event_type;

/* "put", "delete", "expire", "promote", or "unknown". */
const char *mc_event_type_name(mc_event_type t);

typedef struct mc_event {
    mc_event_type type;
    uint32_t shard;
    uint64_t revision; /* the shard's raft index of the write */
    uint32_t seq;      /* order among the events of one revision */
    /* key; value (put, promote; empty for delete and expire); version
     * (after the put, or the version removed); create_rev; mod_rev (=
     * revision); tier; expires_at_ms; updated_at_ms (the write's stamp). */
    mc_record record;
} mc_event;

/* Watch from the shards' current revisions (the default). */
#define MC_WATCH_NOW (-1)

typedef struct mc_watch_opts {
    bool prefix; /* key is a prefix ("" = the whole namespace): watch every
                    key that starts with it, in every shard */
    /* MC_WATCH_NOW: events of writes that apply after mc_watch_open; n >= 0:
     * events with revision > n, in every shard watched (revisions are per
     * shard, so a number is mostly useful for a single key). */
    int64_t after_rev;
    /* A token from mc_watch_token of an earlier watch of the same key or
     * prefix: go on exactly after the last event it had delivered (no event
     * missed, none twice). Wins over after_rev. NULL: none. */
    const char *resume_token;
} mc_watch_opts;
#define MC_WATCH_OPTS_INIT {false, MC_WATCH_NOW, NULL}

typedef struct mc_watch mc_watch;

/* Start watching key (or, with opts->prefix, every key under it) in ns.
 * Resolves "now" at once: a write acknowledged before this returns is not
 * reported, every later one is. opts may be NULL (MC_WATCH_OPTS_INIT).
 * On MC_OK the caller owns *out and closes it with mc_watch_close.
 * Errors: INVALID_ARGUMENT (bad key, prefix or token, or a token of a
 * cluster with another shard count), UNAVAILABLE or TIMEOUT (a shard did
 * not tell its revision within the client's timeout). */
mc_err mc_watch_open(mc_client *c, const char *ns, const char *key,
                     const mc_watch_opts *opts, mc_watch **out,
                     mc_result *res);

/* Wait up to timeout_ms (0..MC_WATCH_WAIT_MS_MAX) for events. On MC_OK
 * *events is an array of *n events (0 when the time ran out) that the
 * caller frees with mc_events_free; each shard's events come in revision
 * and seq order (shards are independent: a prefix watch gives no order
 * between them). The watch keeps one long poll per shard in flight between
 * calls, so events are not missed while the caller works.
 * Errors (then *events is NULL, *n 0, and the watch is still usable):
 *   UNAVAILABLE  a shard could not be reached during this call; the watch
 *                keeps trying (failover, a node down): call again;
 *   COMPACTED    a shard's ring no longer holds the events after the
 *                watch's position (the watcher fell too far behind):
 *                res->mod_rev is that shard's current revision, and the
 *                watch has moved that shard there; re-read the keys (get,
 *                list), then call again to get what follows;
 *   INVALID_ARGUMENT, INTERNAL.
 * One thread at a time per mc_watch. */
mc_err mc_watch_next(mc_watch *w, int timeout_ms, mc_event **events,
                     size_t *n, mc_result *res);
void mc_events_free(mc_event *events, size_t n);

/* The resume token of w: every event it names has been returned by
 * mc_watch_next, and none after. An opaque NUL-terminated string, valid
 * until the next call on w: copy it to keep it. */
const char *mc_watch_token(const mc_watch *w);

/* Stop watching and free w. Safe on NULL. Polls still parked on nodes are
 * dropped (a node answers them into the void when they time out). */
void mc_watch_close(mc_watch *w);

typedef enum {
    MC_WAIT_EXISTS = 1,  /* the key exists */
    MC_WAIT_EQUALS = 2,  /* the key exists with exactly value */
    MC_WAIT_VERSION = 3, /* the key exists at a version >= version */
} mc_wait_cond;

typedef struct mc_wait_opts {
    mc_wait_cond cond;
    const void *value; /* MC_WAIT_EQUALS */
    size_t value_len;
    uint64_t version;  /* MC_WAIT_VERSION, at least 1 */
    int timeout_ms;    /* 1..MC_WATCH_WAIT_MS_MAX; 0 = 30 s */
} mc_wait_opts;
#define MC_WAIT_OPTS_INIT {MC_WAIT_EXISTS, NULL, 0, 0, 0}
#define MC_WAIT_TIMEOUT_MS_DEFAULT 30000

/* Wait until the condition holds for ns/key, up to opts->timeout_ms (the
 * client's own timeout does not apply). The node checks at once, then
 * answers from the apply of the first write that makes the condition true.
 * On MC_OK *out (when out is not NULL) is the record as it was at that
 * moment, which the caller frees; res->mod_rev is its revision.
 * Errors: TIMEOUT (the condition did not hold in time: res->message says
 * which), INVALID_ARGUMENT, TOO_LARGE, UNAVAILABLE. */
mc_err mc_wait(mc_client *c, const char *ns, const char *key,
               const mc_wait_opts *opts, mc_record **out, mc_result *res);

/* ---- recipes (client/recipes.c): agent coordination on the calls above
 *
 * A hand-off is mc_put by the producer and mc_wait (MC_WAIT_EXISTS) by the
 * consumer; a gate is mc_wait (MC_WAIT_EQUALS) on the key the gatekeeper
 * writes. The recipes below need more than one call. */

/* Fan-in barrier: wait until every key of keys[0..n) exists, within
 * timeout_ms for all of them (0 = MC_WAIT_TIMEOUT_MS_DEFAULT). On MC_OK,
 * when out is not NULL, out[i] is the record of keys[i] as its wait saw
 * it (each freed by the caller with mc_record_free). Errors: those of
 * mc_wait; TIMEOUT names the first key that did not arrive; then no
 * record is returned. */
mc_err mc_wait_all(mc_client *c, const char *ns, const char *const *keys,
                   size_t n, int timeout_ms, mc_record **out, mc_result *res);

/* Compute the new value of a key from its current record (NULL when the
 * key is missing). Set *value / *value_len to the new value, which must
 * stay valid until fn is called again or mc_update returns (a buffer in
 * arg, say). Return MC_OK, or any other code to stop: mc_update returns
 * it. fn may run several times (once per conflict): no side effects. */
typedef mc_err (*mc_update_fn)(void *arg, const mc_record *current,
                               const void **value, size_t *value_len);

typedef struct mc_update_opts {
    mc_tier tier;          /* of the new value, as mc_put */
    uint64_t ttl_ms;
    unsigned max_conflicts; /* 0 = 1000 */
    int backoff_ms;         /* first backoff, doubled per conflict up to
                               64 x; jittered; 0 = 2 */
} mc_update_opts;

/* Update with retry: read key, fn, then put with the version read as the
 * expected version (0 when missing); on CONFLICT sleep a jittered backoff
 * and start over. On MC_OK res holds the put's result (res->version is
 * the new version). Errors: those of mc_get (but NOT_FOUND) and mc_put;
 * CONFLICT after max_conflicts conflicts; TIMEOUT means the last put's
 * outcome is unknown; fn's own code. opts may be NULL. */
mc_err mc_update(mc_client *c, const char *ns, const char *key,
                 mc_update_fn fn, void *arg, const mc_update_opts *opts,
                 mc_result *res);

/* A checkpointed workflow: one record (key) holds how many steps are done
 * and the state after them, and moves on only by compare-and-swap, so a
 * worker that restarts resumes after the last step that was saved, and of
 * two workers racing on one step, one saves and the other gets CONFLICT. */
typedef struct mc_checkpoint {
    uint64_t step;    /* steps completed; 0 for a new workflow */
    uint8_t *state;   /* the state saved with step (NULL when none) */
    size_t state_len;
    uint64_t version; /* of the record: what the next save expects */
} mc_checkpoint;

/* Read the checkpoint at key into *cp (step 0 and no state when missing).
 * Free it with mc_checkpoint_fini. Errors: those of mc_get but NOT_FOUND;
 * INVALID_ARGUMENT when the record is not a checkpoint. */
mc_err mc_checkpoint_load(mc_client *c, const char *ns, const char *key,
                          mc_checkpoint *cp, mc_result *res);
/* Save step (> cp->step) with its state, if nobody saved since cp was
 * loaded or saved; on MC_OK cp is the new checkpoint. Errors: CONFLICT
 * (another worker moved it: load again), those of mc_put. */
mc_err mc_checkpoint_save(mc_client *c, const char *ns, const char *key,
                          mc_checkpoint *cp, uint64_t step,
                          const void *state, size_t state_len,
                          mc_result *res);
void mc_checkpoint_fini(mc_checkpoint *cp);

/* ---- transactions ----
 *
 * A transaction is compares and two lists of operations on keys of one
 * shard, applied atomically: when every compare holds, then_ops run, else
 * else_ops, in order, each seeing the writes before it, all of them or
 * none. Every key must be in the same shard: give keys a common {tag}
 * ("{job42}/a", "{job42}/b": only "job42" is hashed). At most
 * MC_TXN_OPS_MAX compares and operations in all; the values of the puts
 * and compares together, and those the gets read, at most the value limit
 * (MC_VALUE_BYTES_MAX by default) each way. */

typedef enum {
    MC_CMP_EXISTS = 1,  /* the key exists */
    MC_CMP_MISSING = 2, /* the key does not exist */
    MC_CMP_VERSION = 3, /* its version (0 when missing) `op` version */
    MC_CMP_VALUE = 4,   /* its value `op` value (MC_EQ or MC_NE); false
                           when the key is missing, either way */
} mc_cmp_target;

typedef enum { MC_EQ = 0, MC_NE = 1, MC_LT = 2, MC_GT = 3 } mc_cmp_op;

/* One compare, e.g. {.target = MC_CMP_VERSION, .key = "k", .op = MC_EQ,
 * .version = 3}. */
typedef struct mc_cmp {
    mc_cmp_target target;
    const char *key;
    mc_cmp_op op;       /* MC_CMP_VERSION, MC_CMP_VALUE; else ignored */
    uint64_t version;   /* MC_CMP_VERSION */
    const void *value;  /* MC_CMP_VALUE */
    size_t value_len;
} mc_cmp;

typedef enum { MC_OP_PUT = 1, MC_OP_DELETE = 2, MC_OP_GET = 3 } mc_op_type;

/* One operation, e.g. {.type = MC_OP_PUT, .key = "k", .value = "v",
 * .value_len = 1}. A put takes a tier and a TTL as mc_put does (and no
 * expected version: that is what compares are for). */
typedef struct mc_op {
    mc_op_type type;
    const char *key;
    const void *value; /* MC_OP_PUT */
    size_t value_len;
    mc_tier tier;      /* MC_OP_PUT: MC_TIER_DEFAULT = as mc_put */
    uint64_t ttl_ms;   /* MC_OP_PUT: 0 = the tier's default */
} mc_op;

typedef struct mc_txn_req {
    const mc_cmp *compares;
    size_t n_compares;
    const mc_op *then_ops; /* when every compare holds (none: they hold) */
    size_t n_then;
    const mc_op *else_ops; /* otherwise */
    size_t n_else;
} mc_txn_req;

/* The result of one operation of the branch that ran. */
typedef struct mc_op_result {
    mc_op_type type;
    mc_err code;         /* MC_OK; MC_NOT_FOUND: get or delete of a
                            missing key */
    uint64_t version;    /* put: the new version; delete: the deleted one;
                            get: the record's */
    uint64_t create_rev;
    uint64_t mod_rev;    /* put, delete: the transaction's revision */
    mc_record record;    /* get that found the key; zeroed otherwise */
} mc_op_result;

typedef struct mc_txn_result {
    bool succeeded;        /* the compares held: then_ops ran; else
                              else_ops did */
    uint64_t revision;     /* the transaction's revision (its writes'
                              mod_rev) */
    mc_op_result *results; /* one per operation of the branch that ran */
    size_t n_results;
} mc_txn_result;

/* Run a transaction on keys of ns. On MC_OK it ran (either branch: see
 * succeeded) and *out is its result, which the caller frees with
 * mc_txn_result_free. Retried like a put, with the same request id: it is
 * applied at most once, and a retry gets the first answer.
 * Errors: INVALID_ARGUMENT (a bad part, which the message names, e.g.
 * "then_ops[2]: key is empty"; more than MC_TXN_OPS_MAX compares and
 * operations; keys in different shards, checked before sending: the
 * message says which and suggests a {tag}), TOO_LARGE (values over the
 * limit, together; or the put or get of a value the node refuses: then
 * nothing of the transaction was applied), UNAVAILABLE, TIMEOUT (outcome
 * unknown). */
mc_err mc_txn(mc_client *c, const char *ns, const mc_txn_req *txn,
              mc_txn_result **out, mc_result *res);
void mc_txn_result_free(mc_txn_result *r);

/* Replicas of one shard: a Raft group of more than 7 voters buys no
 * safety worth its write cost. */
#define MC_REPLICAS_MAX 7u

typedef struct mc_shard_status {
    uint32_t id;
    uint32_t slot_lo, slot_hi; /* inclusive slot range */
    uint64_t leader_id;
    uint64_t term;
    uint64_t applied_index;
    uint64_t last_index;
    uint64_t records[4]; /* by tier, [MC_TIER_SHORT..MC_TIER_LONG] */
    uint64_t applied_entries; /* entries applied since start */
    uint64_t skipped_entries; /* entries skipped at start: already in LMDB */
    bool is_leader;
    uint64_t replicas[MC_REPLICAS_MAX]; /* node ids, preferred leader first */
    uint32_t n_replicas;
} mc_shard_status;

typedef struct mc_member {
    uint64_t id;
    char *url;       /* client address */
    char *raft_addr; /* raft address of its meta group replica; shard s
                        is on the port after it + s */
} mc_member;

/* One node's view: itself, the shards it hosts, and the cluster's members.
 * mc_cluster_status in memcoordctl asks every member for the whole view. */
typedef struct mc_status {
    uint64_t node_id;
    char *version;
    char *listen;
    uint64_t uptime_ms;
    uint32_t shard_count; /* shards in the cluster */
    mc_shard_status *shards; /* the shards this node hosts */
    size_t n_shards;
    mc_member *members;
    size_t n_members;
    /* The meta group (members and shard map) as this node sees it. */
    uint64_t meta_leader_id; /* 0: unknown */
    uint64_t meta_term;
    bool meta_voter;         /* false: a standby (receives, does not vote) */
} mc_status;

mc_err mc_status_get(mc_client *c, mc_status **out, mc_result *res);

/* Move the leadership of shard to node to_node (0: the most up-to-date
 * replica). On MC_OK *new_leader (if not NULL) is the shard's new leader.
 * Errors: INVALID_ARGUMENT (no such shard, or to_node holds no replica),
 * UNAVAILABLE (the transfer did not complete: the target is behind or
 * down; or one is already in progress). */
mc_err mc_shard_transfer_leader(mc_client *c, uint32_t shard,
                                uint64_t to_node, uint64_t *new_leader,
                                mc_result *res);

/* The applied index and state hash of the replica of shard held by the
 * first node that answers (open the client on one node to ask that node).
 * Replicas that applied the same entries have equal hashes.
 * Errors: NOT_FOUND (that node holds no replica of the shard). */
mc_err mc_shard_hash(mc_client *c, uint32_t shard, uint64_t *applied_index,
                     uint64_t *state_hash, mc_result *res);
void mc_status_free(mc_status *s);

#ifdef __cplusplus
}
#endif
#endif /* MEMCOORD_H */
