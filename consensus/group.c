/* A raft group on raft_uv: one TCP port and one folder per group replica.
 * Settings follow DEPS-NOTES.md: numeric addresses, pre-vote on, a large
 * snapshot threshold (raft_uv stalls its loop per closed segment), and a
 * short connect retry delay so a restarted peer is found quickly. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "consensus/consensus.h"

/* raft_uv's default is 1 s; a restarted peer should be reached sooner. */
#define CONNECT_RETRY_MS 100u

/* How long a leader waits for the answer to an InstallSnapshot before it
 * sends again, in election timeouts. raft 0.15's default is a fixed 30 s,
 * and until then it sends the follower nothing but heartbeats, which the
 * follower rejects: a snapshot lost with a connection that raft_uv
 * dropped after its write had completed kept a follower behind for 30 s
 * after a partition healed (tests/fault/test_fault.c). A snapshot is one
 * message of one modest shard (DEPS-NOTES.md, raft 5); one that takes
 * longer is answered anyway, and the leader only sends it once more. */
#define INSTALL_SNAPSHOT_ELECTIONS 10u

static mc_err raft_fail(struct cons_group *g, const char *what, int rv,
                        char *err, size_t err_len)
{
    /* raft_strerror has no text for some codes and an empty message for a
     * busy port (DEPS-NOTES.md, raft 8): give both texts and the code. */
    base_errf(err, err_len, "shard %u: %s: %s (code %d; %s)", g->shard_id, what,
              raft_strerror(rv), rv, raft_errmsg(&g->raft));
    return MC_INTERNAL;
}

/* raft_uv for the log and the messages: the meta group. */
static mc_err uv_io_init(struct cons_group *g, uv_loop_t *loop,
                         const struct cons_group_config *cfg, char *err,
                         size_t err_len)
{
    if (mkdir(cfg->dir, 0755) != 0 && errno != EEXIST) {
        base_errf(err, err_len, "mkdir %s: %s", cfg->dir, strerror(errno));
        return MC_INTERNAL;
    }
    int rv = raft_uv_tcp_init(&g->transport, loop);
    if (rv != 0) {
        base_errf(err, err_len, "raft_uv_tcp_init: %s", raft_strerror(rv));
        return MC_INTERNAL;
    }
    if (cfg->bind_addr != NULL) {
        rv = raft_uv_tcp_set_bind_address(&g->transport, cfg->bind_addr);
        if (rv != 0) {
            base_errf(err, err_len, "raft bind address %s: %s",
                      cfg->bind_addr, raft_strerror(rv));
            raft_uv_tcp_close(&g->transport);
            return MC_INTERNAL;
        }
    }
    rv = raft_uv_init(&g->io, loop, cfg->dir, &g->transport);
    if (rv != 0) {
        base_errf(err, err_len, "raft_uv_init %s: %s (%s)", cfg->dir,
                  raft_strerror(rv), g->io.errmsg);
        raft_uv_tcp_close(&g->transport);
        return MC_INTERNAL;
    }
    raft_uv_set_connect_retry_delay(&g->io, CONNECT_RETRY_MS);
    cons_io_guard_init(&g->guard, &g->io);
    return MC_OK;
}

mc_err cons_group_init(struct cons_group *g, uv_loop_t *loop,
                       const struct cons_group_config *cfg, struct shard *s,
                       char *err, size_t err_len)
{
    ASSERT(g != NULL);
    ASSERT(cfg->addr != NULL);
    ASSERT((cfg->mux == NULL) == (cfg->wal == NULL));
    g->shard_id = cfg->shard_id;
    g->on_lane = cfg->mux != NULL;
    if (g->on_lane) {
        cons_lane_io_init(&g->lane, loop, cfg->mux, cfg->wal, s,
                          cfg->shard_id);
        cons_io_guard_init(&g->guard, &g->lane.io);
    } else {
        ASSERT(cfg->dir != NULL);
        mc_err rv = uv_io_init(g, loop, cfg, err, err_len);
        if (rv != MC_OK) {
            return rv;
        }
    }
    struct raft_fsm *fsm = cfg->fsm;
    if (s != NULL) {
        cons_fsm_init(&g->fsm, s);
        if (g->on_lane) {
            cons_fsm_async_snapshots(&g->fsm);
        }
        fsm = &g->fsm.fsm;
    }
    ASSERT(fsm != NULL);
    int rv = raft_init(&g->raft, &g->guard.io, fsm, cfg->node_id, cfg->addr);
    if (rv != 0) {
        base_errf(err, err_len, "raft_init of shard %u: %s (%s)",
                  cfg->shard_id, raft_strerror(rv), raft_errmsg(&g->raft));
        if (g->on_lane) {
            uv_close((uv_handle_t *)&g->lane.tick, NULL);
        } else {
            raft_uv_close(&g->io);
            raft_uv_tcp_close(&g->transport);
        }
        return MC_INTERNAL;
    }
    g->lane.raft = &g->raft;
    g->fsm.raft = &g->raft;
    g->raft.data = g;
    raft_set_election_timeout(&g->raft, cfg->election_ms);
    raft_set_heartbeat_timeout(&g->raft, cfg->heartbeat_ms);
    raft_set_pre_vote(&g->raft, true);
    raft_set_snapshot_threshold(&g->raft, cfg->snapshot_threshold);
    raft_set_snapshot_trailing(&g->raft, cfg->snapshot_trailing);
    raft_set_install_snapshot_timeout(
        &g->raft, INSTALL_SNAPSHOT_ELECTIONS * cfg->election_ms);
    return MC_OK;
}

mc_err cons_group_start(struct cons_group *g,
                        const struct cons_group_config *cfg, char *err,
                        size_t err_len)
{
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int rv = 0;
    for (unsigned i = 0; i < cfg->n_members && rv == 0; i++) {
        rv = raft_configuration_add(&conf, cfg->members[i].id,
                                    cfg->members[i].addr,
                                    cfg->members[i].standby ? RAFT_STANDBY
                                                            : RAFT_VOTER);
    }
    if (rv == 0) {
        rv = raft_bootstrap(&g->raft, &conf);
        /* CANTBOOTSTRAP: the folder holds state already (a restart). */
        if (rv == RAFT_CANTBOOTSTRAP) {
            rv = 0;
        }
    }
    raft_configuration_close(&conf);
    if (rv != 0) {
        return raft_fail(g, "bootstrap", rv, err, err_len);
    }
    rv = raft_start(&g->raft);
    if (rv != 0) {
        /* A busy port shows only as an I/O error: name the address. */
        char what[96];
        snprintf(what, sizeof what, "start on %s",
                 cfg->bind_addr != NULL ? cfg->bind_addr : cfg->addr);
        return raft_fail(g, what, rv, err, err_len);
    }
    return MC_OK;
}

mc_err cons_group_propose(struct cons_group *g, struct raft_apply *req,
                          void *frame, size_t len, raft_apply_cb cb)
{
    ASSERT(len % 8 == 0); /* DEPS-NOTES.md, raft 1 */
    struct raft_buffer buf = {.base = frame, .len = len};
    return cons_err(raft_apply(&g->raft, req, &buf, 1, cb));
}

mc_err cons_group_propose_n(struct cons_group *g, struct raft_apply *req,
                            const struct raft_buffer *frames, unsigned n,
                            raft_apply_cb cb)
{
    ASSERT(n > 0);
    for (unsigned i = 0; i < n; i++) {
        ASSERT(frames[i].len % 8 == 0); /* DEPS-NOTES.md, raft 1 */
    }
    raft_index last = raft_last_index(&g->raft);
    int rv = raft_apply(&g->raft, req, frames, n, cb);
    if (rv != 0 && raft_last_index(&g->raft) != last) {
        /* raft 0.15 appends the entries one by one and, when memory runs
         * out part way, keeps those appended in its log: they may still
         * be replicated, and they hold their frames. */
        return MC_TIMEOUT;
    }
    return cons_err(rv);
}

mc_err cons_group_barrier(struct cons_group *g, struct raft_barrier *req,
                          raft_barrier_cb cb)
{
    return cons_err(raft_barrier(&g->raft, req, cb));
}

mc_err cons_group_transfer(struct cons_group *g, struct raft_transfer *req,
                           uint64_t id, raft_transfer_cb cb)
{
    return cons_err(raft_transfer(&g->raft, req, id, cb));
}

bool cons_group_peer_is_current(struct cons_group *g, uint64_t id)
{
    struct raft *r = &g->raft;
    if (raft_state(r) != RAFT_LEADER) {
        return false;
    }
    for (unsigned i = 0; i < r->configuration.n; i++) {
        const struct raft_server *srv = &r->configuration.servers[i];
        if (srv->id == id) {
            const struct raft_progress *p = &r->leader_state.progress[i];
            return srv->role == RAFT_VOTER && p->recent_recv &&
                   p->match_index >= raft_last_index(r);
        }
    }
    return false;
}

bool cons_group_is_leader(struct cons_group *g)
{
    return raft_state(&g->raft) == RAFT_LEADER;
}

uint64_t cons_group_leader(struct cons_group *g)
{
    raft_id id;
    const char *addr;
    raft_leader(&g->raft, &id, &addr);
    return id;
}

uint64_t cons_group_term(struct cons_group *g)
{
    return g->raft.current_term;
}

uint64_t cons_group_last_index(struct cons_group *g)
{
    return raft_last_index(&g->raft);
}

uint64_t cons_group_applied_index(struct cons_group *g)
{
    return raft_last_applied(&g->raft);
}

static void group_closed_cb(struct raft *r)
{
    struct cons_group *g = r->data;
    if (!g->on_lane) {
        raft_uv_close(&g->io);
        raft_uv_tcp_close(&g->transport);
    }
    /* raft_uv and the transport finish closing their handles in later
     * iterations of the loop; the owner runs the loop until it is empty
     * before freeing g. */
    if (g->close_cb != NULL) {
        g->close_cb(g);
    }
}

void cons_group_close(struct cons_group *g, cons_group_close_cb close_cb)
{
    g->close_cb = close_cb;
    raft_close(&g->raft, group_closed_cb);
}
