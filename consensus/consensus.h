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
};

/* Make f->fsm apply to shard s. Set f->raft before raft applies anything. */
void cons_fsm_init(struct cons_fsm *f, struct shard *s);

/* ---- the raft_io guard (raft 0.15 workarounds; io_guard.c) ----
 *
 * raft 0.15 followers answer an AppendEntries they accept without writing
 * with their whole log's last index, so a leader can take an old-term tail
 * as matched (commit it by count, and ignore the follower's rejections for
 * good). The guard wraps a raft_io and caps such answers at the message's
 * prev_log_index + n_entries, as later raft releases do. And followers
 * reject an AppendEntries whose prev_log_index their snapshot compacted,
 * which makes a leader walk back one index per heartbeat: the guard starts
 * such a message at the snapshot instead. Give g->io to raft_init (which
 * sets g->io.data to the raft); inner (borrowed) must outlive g, and g
 * must not move. */
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
};

void cons_io_guard_init(struct cons_io_guard *g, struct raft_io *inner);

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
    struct raft_uv_transport transport;
    struct raft_io io;
    struct cons_io_guard guard; /* raft talks to io through it */
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
