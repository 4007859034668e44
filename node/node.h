/* node: the memcoord daemon. It owns the configuration, the loop threads,
 * the shard replicas hosted here, and the nng front end.
 *
 *   request ─ nng rep ctx ─► frontend (nng thread: decode, check, route)
 *                               │ loop queue + uv_async_send
 *                               ▼
 *            loop thread k: replicas s with s % n_loops == k
 *              write: propose ─► apply ─► reply from the apply callback
 *              read:  batched raft barrier ─► read LMDB ─► reply
 *              each turn: commit every replica's LMDB txn (uv_check)
 *              timers: expiry sweep (leaders), stats, background sync
 *
 * Invariants:
 *   (1) Only a replica's loop thread touches its raft group and store.
 *   (2) A work item is owned by exactly one of: the nng ctx (receiving or
 *       sending), a loop queue, a replica's read list, raft (a proposal).
 *   (3) nng callbacks never block; they enqueue and wake a loop.
 *
 * Shutdown: frontend_drain (new requests get UNAVAILABLE, in-flight ones
 * finish) -> loops stop (raft closed, LMDB committed) -> frontend_close. */
#ifndef MC_NODE_H
#define MC_NODE_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "base/base.h"
#include "consensus/consensus.h"
#include "proto/proto.h"
#include "replication/replication.h"
#include "shard/shard.h"

/* ---- configuration (node/config.c) ---- */

struct node_config {
    char data[MC_PATH_BYTES_MAX];
    char listen[256];
    char raft_addr[64]; /* a.b.c.d:port of the meta group; the shards of
                           loop k use port + 1 + k */
    /* Where the raft listeners bind when that is not raft_addr (the
     * address peers dial): "" = raft_addr. Parsed into raft_bind_at
     * (its raft_ip and raft_port only). */
    char raft_bind[64];
    struct meta_member raft_bind_at;
    uint64_t node_id;
    uint32_t shards;   /* the first map's (the map wins afterwards) */
    uint32_t loops;
    uint32_t contexts;
    uint32_t election_ms;
    uint32_t heartbeat_ms;
    uint32_t snapshot_threshold;
    uint32_t snapshot_trailing;
    uint64_t value_max;
    int log_level;
    uint32_t replicas; /* the first map's */
    uint32_t list_scan_max; /* records a pattern list page examines */
    uint32_t watch_ring; /* events of each shard's watch ring */
    char initial_cluster[8192]; /* ID=URL@IP:PORT,... ("" = only this node) */
    /* Parsed from initial_cluster, sorted by id; this node included: the
     * meta group's members, and the members of the first map. */
    struct meta_member members[MC_NODES_MAX];
    uint32_t n_members;
};

/* Parse argv (and the --config file it names; flags win over the file).
 * Errors: INVALID_ARGUMENT with a sentence in err; *help set for --help. */
mc_err node_config_parse(int argc, char **argv, struct node_config *cfg,
                         bool *help, char *err, size_t err_len);
void node_config_usage(FILE *out);

/* ---- work: one request in flight (node/frontend.c) ---- */
struct node_frontend;

struct node_work {
    struct node_work *next; /* loop queue or replica read list */
    struct node_frontend *fe;
    nng_aio *aio;
    nng_ctx ctx;
    int state;
    Mcpb__Request *req;
    bool counted; /* in fe->inflight until its reply is sent */
    uint32_t shard;
    /* A proposed write, or a linearizable read: the raft entry whose apply
     * answers it, appended by this node as leader in term. */
    uint64_t index;
    uint64_t term;
    /* Forwarding to the shard leader on another node. */
    nng_aio *fwd_aio;
    nng_ctx fwd_ctx;
    int fwd_state;
    uint64_t fwd_to;
    int fwd_wait_ms;          /* a forwarded watch or wait waits this long */
    atomic_bool fwd_longpoll; /* such a forward is in flight: drain cancels */
    /* A parked watch or wait (node/watch.c), on its replica's list. */
    struct node_work *park_prev, *park_next;
    int64_t park_since_ms;    /* base_mono_ms */
    int64_t park_deadline_ms;
    uint64_t park_scanned;    /* no event of it up to this revision */
};

struct node;

/* A req socket to another node, for forwarding. */
struct node_peer {
    uint64_t id;
    nng_socket sock;
    atomic_bool open; /* read by forwards on any thread, cleared at close */
};

/* A forward waits this long for a connection to the leader: a leader that
 * just died is still named by its followers until they elect another, and
 * a request that was never sent can be failed at once (it did not apply). */
#define FORWARD_SEND_MS 250
/* Then this long for the leader's answer: less than a client's default
 * call timeout, so the client can still retry elsewhere. */
#define FORWARD_TIMEOUT_MS 4000
/* Shutdown waits this long for requests in flight; a forward is the
 * longest of them. */
#define FRONTEND_DRAIN_MS (FORWARD_SEND_MS + FORWARD_TIMEOUT_MS + 500)

struct node_frontend {
    struct node *node;
    nng_socket sock;
    struct node_peer peers[MC_NODES_MAX];
    uint32_t n_peers;
    struct node_work *works;
    uint32_t n_works;
    atomic_bool draining;
    atomic_uint inflight; /* works handed to loops */
};

mc_err frontend_start(struct node_frontend *fe, struct node *n, char *err,
                      size_t err_len);
/* Answer new requests UNAVAILABLE; wait up to timeout_ms for in-flight
 * ones to finish. */
void frontend_drain(struct node_frontend *fe, int timeout_ms);
void frontend_close(struct node_frontend *fe);

/* Send resp for w and release w's request. Any thread; once per work. */
void frontend_reply(struct node_work *w, const Mcpb__Response *resp);
/* Forward w's request to node `to` (the shard leader) and relay its answer;
 * answer NOT_LEADER with the leader's address instead when the client asked
 * for no forwarding. Any thread. */
void frontend_forward(struct node_work *w, uint64_t to);
/* Reply with just a code and a printf-style message. */
void frontend_reply_err(struct node_work *w, mc_err code, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));

/* ---- a shard replica hosted here (node/replica.c) ---- */

/* Works in arrival order, linked by next. */
struct work_fifo {
    struct node_work *head, *tail;
};
struct node_loop;

struct node_replica {
    uint32_t id;
    struct node_loop *loop;
    struct shard *store;
    struct cons_group group;
    uint64_t replica_ids[MC_NODES_MAX]; /* placement: preferred leader first */
    uint32_t n_replica_ids;
    struct raft_transfer transfer;
    bool transfer_busy;
    struct node_work *transfer_work; /* an admin transfer awaiting its cb */
    int64_t transfer_tried_ms;
    bool group_ready; /* initialized: must be closed */
    /* Writes that arrived this turn; replica_turn proposes them together
     * as consecutive entries of one raft_apply. */
    struct work_fifo props;
    /* Proposed writes until their entry applies, in index order. */
    struct work_fifo writes;
    /* Linearizable reads wait for an entry of this leader appended after
     * they arrived: the last write proposed with them, or else a barrier
     * (reads_waiting until one is appended, then in reads, in index
     * order). */
    struct work_fifo reads_waiting;
    struct work_fifo reads;
    struct raft_barrier barrier;
    bool barrier_busy;
    /* Parked watches and waits, oldest first (node/watch.c). */
    struct node_work *parked_head, *parked_tail;
    uint64_t watch_seen; /* the applied index they were checked at */
    /* The expiry sweep proposes one command at a time. */
    struct raft_apply expire_req;
    bool expire_busy;
    int64_t dedupe_swept_ms;
    /* Published for STATUS, read from nng threads. */
    atomic_uint_fast64_t st_leader, st_term, st_applied, st_last;
    atomic_uint_fast64_t st_records[4];
    atomic_uint_fast64_t st_applied_entries, st_skipped_entries;
    atomic_bool st_is_leader;
};

mc_err replica_open(struct node_replica *r, struct node *n, uint32_t id,
                    struct node_loop *loop, char *err, size_t err_len);
/* On the loop thread: serve one request routed to this replica. */
void replica_handle(struct node_replica *r, struct node_work *w);
/* On the loop thread, once per turn: propose the turn's writes and give
 * the waiting reads an entry (replica_propose); then, once the raft
 * transport has sent them, commit LMDB and publish stats (replica_turn). */
void replica_propose(struct node_replica *r);
void replica_turn(struct node_replica *r);
/* On the loop thread, every MC_EXPIRE_SWEEP_MS: expiry, counts. */
void replica_sweep(struct node_replica *r);
/* Fail waiting reads and close the raft group; cb when closed. */
void replica_close(struct node_replica *r, cons_group_close_cb cb);
/* True when this replica leads its shard and can take proposals. */
bool replica_is_serving_leader(struct node_replica *r);
/* After the loop stopped: commit and close the store. */
void replica_free(struct node_replica *r);

/* ---- watches and waits (node/watch.c) ----
 *
 * Long polls of OP_WATCH and OP_WAIT, served by the shard leader after a
 * raft barrier (as linearizable reads), from the shard's event ring. One
 * that cannot be answered at once is parked on its replica's list and
 * holds its nng context: the loop is never blocked. Parked requests are
 * answered
 *   - from watch_turn, once per loop turn after the turn's LMDB commit,
 *     when a write they wait for applied;
 *   - by the loop's watch timer at their deadline (an empty watch answer,
 *     or TIMEOUT for a wait);
 *   - UNAVAILABLE when the replica stops leading or the node drains;
 *   - UNAVAILABLE early, the oldest first, when more than half of the
 *     node's contexts would be parked (the client backs off and asks
 *     again): parked requests must never starve the writes that would
 *     wake them. */

/* On the loop thread, after the barrier of w (OP_WATCH or OP_WAIT): answer
 * it now or park it. */
void watch_start(struct node_replica *r, struct node_work *w);
/* On the loop thread, after the turn's commit: answer the parked ones of r
 * that the turn's writes satisfy; all of them UNAVAILABLE when r stopped
 * leading. */
void watch_turn(struct node_replica *r);
/* Answer every parked one of r with code. */
void watch_fail_all(struct node_replica *r, mc_err code, const char *why);
/* The loop's watch timer: init with the loop, closed with its handles. */
void watch_loop_init(struct node_loop *l);
/* Any thread: have the loop answer every parked request UNAVAILABLE (the
 * node drains). */
void watch_loop_flush(struct node_loop *l);

/* ---- loop threads (node/loop.c) ---- */
struct node_loop {
    struct node *node;
    unsigned idx;
    uv_loop_t loop;
    uv_async_t wake;
    uv_check_t turn;
    uv_timer_t sweep;
    /* The raft I/O of its groups, its lane (consensus.h): the log in
     * <data>/lane-<idx>, and the transport. */
    struct cons_wal *wal;
    struct cons_mux *mux;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu; /* guards the queue and stopping */
    struct node_work *head, *tail;
    unsigned queued;
    bool stopping;
    struct node_replica *replicas[MC_SHARDS_MAX];
    unsigned n_replicas;
    unsigned n_closing;
    bool stop_begun;
    unsigned sweeps;
    uv_work_t sync_req;
    bool sync_busy; /* sync_req runs */
    bool sync_owed; /* a sync is due */
    bool sync_due;  /* sync_req syncs the shards (else it only trims) */
    /* Opening: the loop's thread opens its replicas before it runs the
     * loop (the loops open theirs side by side); node_serve waits. */
    pthread_cond_t opened_cond; /* with mu */
    bool opened;                /* under mu: open_rv and open_err are set */
    mc_err open_rv;
    char open_err[256];
    uv_timer_t watch_timer; /* the next deadline of a parked request */
    unsigned n_parked;      /* parked requests of all its replicas */
    unsigned parked_max;    /* its share of the node's parking room */
    bool watch_flush;       /* under mu: answer every parked one */
};

mc_err loop_init(struct node_loop *l, struct node *n, unsigned idx,
                 char *err, size_t err_len);
/* Start the loop's thread: it opens the replicas placed on l (each with
 * r->id set, the rest zeroed), then runs the loop. */
mc_err loop_run(struct node_loop *l, char *err, size_t err_len);
/* Wait until l's thread opened its replicas. Errors: what replica_open
 * said, with its text in err; the loop then only waits for loop_stop. */
mc_err loop_wait_open(struct node_loop *l, char *err, size_t err_len);
/* Hand w to the loop; false when the loop is stopping or full. Any thread. */
bool loop_submit(struct node_loop *l, struct node_work *w);
/* Stop and join the thread (closes the replicas' raft groups). */
void loop_stop(struct node_loop *l);
void loop_fini(struct node_loop *l);

/* ---- this node's replica of the meta group (node/meta.c) ---- */
struct node_meta {
    struct node *node;
    struct meta *state;
    uv_loop_t loop;
    uv_async_t stop_async;
    uv_timer_t tick;
    pthread_t thread;
    bool loop_ready, running, group_ready;
    bool voter; /* else a standby */
    struct cons_group group;
    struct raft_apply init_req;
    bool init_busy;
    /* Published for STATUS, read from nng threads. */
    atomic_uint_fast64_t st_leader, st_term;
};

/* Load the meta state, start the meta group's replica and its thread. On
 * error, node_meta_stop still has to be called. */
mc_err node_meta_start(struct node_meta *m, struct node *n, char *err,
                       size_t err_len);
void node_meta_stop(struct node_meta *m);

/* ---- the node (node/node.c) ---- */
struct node {
    struct node_config cfg;
    struct node_meta meta;
    /* The cluster map the shards were opened from: read-only once
     * node_serve began (membership does not change yet). */
    struct meta_map map;
    struct node_loop loops[MC_LOOPS_MAX];
    unsigned n_loops;
    struct node_replica *replicas[MC_SHARDS_MAX]; /* NULL: not hosted */
    struct node_frontend fe;
    int64_t start_ms;
};

/* Start the meta group. The node serves only after node_serve. */
mc_err node_start(struct node *n, const struct node_config *cfg, char *err,
                  size_t err_len);
/* Wait up to timeout_ms for the cluster map; true when it is known (from
 * the meta group, or from disk on a restart). */
bool node_wait_map(struct node *n, int timeout_ms);
/* Once the map is known: open the shard replicas it places here, start
 * the loops and the front end. */
mc_err node_serve(struct node *n, char *err, size_t err_len);
void node_stop(struct node *n);

/* The member with this id in the map, or NULL. */
const struct meta_member *node_member(const struct node *n, uint64_t id);

/* Fill resp->status from the replicas' published stats. Any thread; the
 * returned storage lives in *scratch and is freed by status_fini. */
struct status_scratch {
    Mcpb__NodeStatus status;
    Mcpb__ShardStatus shards[MC_SHARDS_MAX];
    Mcpb__ShardStatus *ptrs[MC_SHARDS_MAX];
    uint64_t records[MC_SHARDS_MAX][3];
    Mcpb__Member members[MC_NODES_MAX];
    Mcpb__Member *member_ptrs[MC_NODES_MAX];
    char raft_addrs[MC_NODES_MAX][24];
};
void node_status(struct node *n, struct status_scratch *s);

#endif
