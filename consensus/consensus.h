/* consensus: raft groups over the shard state machine. It owns everything
 * of canonical/raft 0.15: the raft_fsm adapter over shard/, raft_uv setup,
 * proposals, barriers, and the translation of RAFT_* codes to mc_err. The
 * FSM adapter is separate from the group so that tests drive the real state
 * machine under raft/fixture.h.
 *
 *   INIT     -> STARTED  [cons_group_start: bootstrap on first start, then
 *                          raft_start, which restores snapshot + log]
 *   STARTED  -> CLOSING  [cons_group_close]
 *   CLOSING  -> CLOSED   [close_cb: raft, raft_uv and its transport closed]
 *
 * Thread: every call on a group runs on the thread of the uv loop it was
 * initialized with (raft is not thread-safe). */
#ifndef MC_CONSENSUS_H
#define MC_CONSENSUS_H

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "base/base.h"
#include "shard/shard.h"

/* ---- the FSM adapter ---- */

/* Called after each command entry is applied, with its index and result
 * (valid until the next shard call). raft 0.15 calls back only the first
 * entry of a multi-entry proposal: this is how the others are answered.
 * It must not call into raft. */
typedef void (*cons_applied_cb)(void *arg, uint64_t index,
                                const struct shard_result *res);

struct cons_fsm {
    struct raft_fsm fsm;  /* handed to raft; fsm.data points back here */
    struct raft *raft;    /* set once raft is initialized */
    struct shard *shard;  /* borrowed */
    cons_applied_cb applied; /* optional */
    void *applied_arg;
    struct shard_snap *snap; /* the snapshot being written (async) */
};

/* Make f->fsm apply to shard s. Set f->raft before raft applies anything. */
void cons_fsm_init(struct cons_fsm *f, struct shard *s);
/* Have raft take f's snapshots in the background (FSM version 3): the
 * loop only pins the state (shard_snapshot_begin), a worker of the io's
 * async_work writes the buffer. The io must be of version 2 or more. */
void cons_fsm_async_snapshots(struct cons_fsm *f);

/* ---- the raft_io guard (raft 0.15 workarounds; io_guard.c) ----
 *
 * raft 0.15 followers answer an AppendEntries they accept without writing
 * with their whole log's last index, so a leader can take an old-term tail
 * as matched (commit it by count, and ignore the follower's rejections for
 * good). The guard wraps a raft_io and caps such answers at the message's
 * prev_log_index + n_entries, as later raft releases do. And followers
 * reject an AppendEntries whose prev_log_index their snapshot compacted,
 * which makes a leader walk back one index per heartbeat, and crash on one
 * from prev_log_index 0 (a leader resending its whole log): the guard
 * starts such a message at the snapshot instead. A leader whose last
 * stored entry is of an older term would commit it by counting (#220):
 * the guard caps followers' answers below it, and has a new leader append
 * a no-op entry so that it can commit. And a voter refuses a
 * pre-vote from a candidate with a better log but an older term, which
 * can leave a shard without a leader for good: the guard grants it, as
 * raft means to. Give g->io to raft_init
 * (which sets g->io.data to the raft); inner (borrowed) must outlive g,
 * and g must not move. */
struct cons_io_guard {
    struct raft_io io;     /* what raft uses; io.impl points back to g */
    struct raft_io *inner; /* raft_uv, or a fixture server's io */
    raft_io_tick_cb tick_cb;
    raft_io_recv_cb recv_cb;
    raft_io_close_cb close_cb;
    bool in_append;        /* raft is handling a received AppendEntries */
    raft_id append_from;
    raft_index append_end; /* its prev_log_index + n_entries */
    uint64_t clamped;      /* answers corrected so far */
    uint64_t rebased;      /* AppendEntries moved to the snapshot */
    uint64_t held;         /* answers held below an older-term tail */
    struct raft_barrier noop; /* a new leader's no-op entry */
    bool noop_busy;
    raft_term noop_term;   /* the last term a no-op was tried in */
    uint64_t noops;        /* no-ops appended */
    bool in_prevote;       /* raft is refusing a pre-vote for its term */
    raft_id prevote_from;
    uint64_t prevotes;     /* such pre-votes granted */
};

void cons_io_guard_init(struct cons_io_guard *g, struct raft_io *inner);

/* ---- the raft I/O of a loop: a lane (mux.c, wal.c, lane_io.c) ----
 *
 * raft_uv gives every group replica a log of its own, synced on its own,
 * and a TCP port and connections of its own that take three reads a
 * message: with 8 groups a node, 24 logs flushed one by one on one disk
 * and more CPU in syscalls than in anything else the loops did (README,
 * Benchmarks). A lane serves every group of one loop thread instead:
 *   - its write-ahead log (wal.h): one write and one fdatasync per loop
 *     turn for every group's entries;
 *   - its transport, the mux (mux_wire.h): one connection per peer node,
 *     a turn's messages in one write per peer, as many frames per read as
 *     arrived.
 * Loop k of every node talks to loop k of the others: shard s is on lane
 * s % lanes of every node, so --loops must be the same on every node (a
 * connection from a node with another count is refused, with an error in
 * the log). The meta group keeps raft_uv. */
struct cons_mux;
struct cons_wal;

struct cons_mux_peer_addr {
    uint64_t id;
    char ip[16];   /* numeric IPv4 */
    uint16_t port; /* that node's port of this lane */
};

struct cons_mux_config {
    uint64_t node_id;
    uint32_t lane, lanes;
    const char *bind_ip; /* where this lane listens */
    uint16_t bind_port;
    const struct cons_mux_peer_addr *peers; /* the members; this node is
                                               skipped */
    unsigned n_peers;
    struct cons_wal *wal; /* synced by each flush, after the sends */
};

struct cons_mux_stats {
    uint64_t frames_out, frames_in;
    uint64_t bytes_out, bytes_in;
    uint64_t writes;      /* write calls: one per peer and loop turn at most */
    uint64_t connects;    /* connection attempts */
    uint64_t dropped_out; /* messages not sent: peer down or backed up */
    uint64_t dropped_in;  /* frames for no group here, or out of memory */
    unsigned peers_up;
};

/* Listen on the lane's address. On MC_OK *out is ready for groups; on
 * error nothing is left but handles closing on loop (run it until it is
 * empty). Errors: INVALID_ARGUMENT (an address), INTERNAL (a busy port,
 * with the address in err). */
mc_err cons_mux_open(uv_loop_t *loop, const struct cons_mux_config *cfg,
                     struct cons_mux **out, char *err, size_t err_len);
/* After every group on it closed: close its connections; it is freed on
 * its loop. Safe on NULL. */
void cons_mux_close(struct cons_mux *m);
void cons_mux_stats_get(const struct cons_mux *m, struct cons_mux_stats *out);
/* Send what the groups sent so far, then sync the log and run the append
 * callbacks (which may send again: their messages follow at once). The
 * mux does it before its loop polls; its loop calls it earlier too, after
 * proposing, so that followers start on the entries before the loop does
 * other work. */
void cons_mux_flush(struct cons_mux *m);

/* Open the log of a lane in dir (wal.h). */
mc_err cons_wal_open(uv_loop_t *loop, const char *dir, uint32_t lane,
                     struct cons_wal **out, char *err, size_t err_len);
/* After every group on it closed (and its mux): sync and free. */
void cons_wal_close(struct cons_wal *w);
/* True when the disk has no room for the log's next segment (asked again
 * at most once a second): leaders on this lane refuse writes
 * (QUOTA_EXCEEDED) until it has. */
bool cons_wal_space_low(struct cons_wal *w);

/* The raft_io of a group on a lane. */
struct cons_lane_io {
    struct raft_io io;   /* what io_guard wraps */
    struct cons_mux *mux;
    struct cons_wal *wal;
    struct shard *shard; /* what its state machine holds (load) */
    struct raft *raft;   /* the peers' addresses; set after raft_init */
    uint32_t shard_id;
    uv_loop_t *loop;
    uv_timer_t tick;
    raft_io_tick_cb tick_cb;
    raft_io_recv_cb recv_cb;
    raft_io_close_cb close_cb;
    unsigned closing; /* its timer, its log and its works, while they
                         close */
    unsigned works;   /* async works not done yet */
    bool started;
    uint64_t rng;
};

void cons_lane_io_init(struct cons_lane_io *io, uv_loop_t *loop,
                       struct cons_mux *mux, struct cons_wal *wal,
                       struct shard *shard, uint32_t shard_id);

/* For mux.c and lane_io.c only. */
int cons_mux_send(struct cons_mux *m, struct cons_lane_io *io,
                  struct raft_io_send *req, const struct raft_message *msg,
                  raft_io_send_cb cb);
void cons_mux_register(struct cons_mux *m, struct cons_lane_io *io);
void cons_mux_forget(struct cons_mux *m, struct cons_lane_io *io);
const char *cons_lane_io_address(const struct cons_lane_io *io, uint64_t id);

/* ---- raft's heap (heap.c) ---- */

/* Make raft_malloc give blocks of 2 MiB and more (snapshots) mappings of
 * their own in transparent huge pages, and hand them back to the OS when
 * freed; smaller ones stay glibc's. Process-wide: call once, before any
 * raft group starts. */
void cons_heap_init(void);

/* ---- errors ---- */
/* NOTLEADER -> NOT_LEADER; LEADERSHIPLOST, SHUTDOWN, IOERR, NOSPACE,
 * CANCELED, TOOMANY -> UNAVAILABLE; others -> INTERNAL. For a call that
 * raft refused outright: nothing was proposed. (A proposal whose callback
 * fails has an unknown outcome: node/ answers it TIMEOUT.) */
mc_err cons_err(int raft_rv);

/* ---- a group on raft_uv ---- */
struct cons_member {
    uint64_t id;
    char addr[64]; /* numeric IPv4 a.b.c.d:port (DEPS-NOTES.md, raft 6) */
    bool standby;  /* receives the log but does not vote */
};

struct cons_group_config {
    uint64_t node_id;
    uint32_t shard_id;
    /* The loop's lane: its transport and its log. NULL: raft_uv for both,
     * in dir (the meta group). */
    struct cons_mux *mux;
    struct cons_wal *wal;
    const char *dir;       /* raft_uv folder; created if missing */
    const char *addr;      /* this replica's a.b.c.d:port */
    const char *bind_addr; /* where it listens, when not addr; NULL: addr */
    const struct cons_member *members; /* initial configuration */
    unsigned n_members;
    unsigned election_ms;
    unsigned heartbeat_ms;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    struct raft_fsm *fsm;  /* a group whose state machine is not a shard */
};

struct cons_group;
typedef void (*cons_group_close_cb)(struct cons_group *g);

struct cons_group {
    bool on_lane;
    struct raft_uv_transport transport; /* raft_uv's */
    struct raft_io io;                  /* raft_uv */
    struct cons_lane_io lane;           /* on a lane */
    struct cons_io_guard guard; /* raft talks to io (or lane) through it */
    struct raft raft;
    struct cons_fsm fsm;
    uint32_t shard_id;
    void *data; /* the owner's */
    cons_group_close_cb close_cb;
};

/* Initialize g on loop with the state machine s (borrowed; must outlive
 * g), or, when s is NULL, with cfg->fsm, which must be ready to apply
 * entries of &g->raft. g must not move afterwards: raft keeps pointers
 * into it.
 * Errors: INTERNAL, with raft's own text in err (DEPS-NOTES.md, raft 8). */
mc_err cons_group_init(struct cons_group *g, uv_loop_t *loop,
                       const struct cons_group_config *cfg, struct shard *s,
                       char *err, size_t err_len);

/* Bootstrap (first start only) and start. Restores the local snapshot and
 * replays the log synchronously; the shard skips what LMDB already holds. */
mc_err cons_group_start(struct cons_group *g,
                        const struct cons_group_config *cfg, char *err,
                        size_t err_len);

/* Propose a framed command. frame must come from raft_malloc and its length
 * must be a multiple of 8 (proto frames are). On MC_OK raft owns frame and
 * calls cb(req, status, result) on this loop, where result is the
 * const struct shard_result * of the apply when status is 0. On error the
 * caller still owns frame. */
mc_err cons_group_propose(struct cons_group *g, struct raft_apply *req,
                          void *frame, size_t len, raft_apply_cb cb);

/* Propose n framed commands as n consecutive entries in one call: one disk
 * write and one message per follower for all of them. On MC_OK raft owns
 * every frame, the entries are at req->index .. req->index + n - 1, and cb
 * fires once: with status 0 when the first is applied (the others are
 * answered through the FSM's applied hook), or with a failure for the
 * whole proposal while none of it was applied. On error the caller still
 * owns the frames, but for TIMEOUT: memory ran out after raft took some of
 * them, which may still commit (the frames are then raft's, or lost). */
mc_err cons_group_propose_n(struct cons_group *g, struct raft_apply *req,
                            const struct raft_buffer *frames, unsigned n,
                            raft_apply_cb cb);

/* Append a barrier: cb fires once every entry before it is applied. */
mc_err cons_group_barrier(struct cons_group *g, struct raft_barrier *req,
                          raft_barrier_cb cb);

/* Hand leadership to node id (0: raft picks the most up-to-date voter).
 * cb fires on success or after an election timeout; check the leader in
 * it (DEPS-NOTES.md, raft 10). Leader only. */
mc_err cons_group_transfer(struct cons_group *g, struct raft_transfer *req,
                           uint64_t id, raft_transfer_cb cb);

/* Leader only: node id is a voter that answered within the election
 * timeout and holds every entry. A transfer to any other node would stall
 * proposals until it times out (raft 0.15 refuses them meanwhile). */
bool cons_group_peer_is_current(struct cons_group *g, uint64_t id);

bool cons_group_is_leader(struct cons_group *g);
/* Leader id (0 when unknown). */
uint64_t cons_group_leader(struct cons_group *g);
uint64_t cons_group_term(struct cons_group *g);
uint64_t cons_group_last_index(struct cons_group *g);
uint64_t cons_group_applied_index(struct cons_group *g);

/* Close raft, raft_uv and the transport; close_cb fires on the loop when
 * all are closed and g may be freed. Pending proposals get their cb with a
 * non-zero status first. */
void cons_group_close(struct cons_group *g, cons_group_close_cb close_cb);

#endif
