/* This node's replica of the meta group (replication/replication.h), on a
 * loop thread of its own: it must run before the shard loops exist,
 * because they are made from the map it holds.
 *
 * Every member is in the group: the first META_VOTERS_MAX by id vote, the
 * others are standbys. While the group has no map, its leader proposes the
 * one placed from --initial-cluster, --shards and --replicas; a proposal
 * that loses the race to another is ignored by apply.
 *
 *   INIT    -> RUNNING  [node_meta_start: state loaded, raft started,
 *                        thread running]
 *   RUNNING -> STOPPED  [node_meta_stop: raft closed, thread joined] */
#define _GNU_SOURCE /* pthread_setname_np */
#include <stdio.h>
#include <string.h>

#include "node/node.h"

/* The leader checks this often whether the map still has to be proposed;
 * the first check comes as soon as it is elected. */
#define META_TICK_MS 50u

static bool leads(struct node_meta *m)
{
    return cons_group_is_leader(&m->group) &&
           cons_group_leader(&m->group) == m->node->cfg.node_id;
}

static void init_cb(struct raft_apply *req, int status, void *result)
{
    struct node_meta *m = req->data;
    m->init_busy = false;
    if (status != 0) {
        LOG_WARN("meta: map proposal failed: %s", raft_strerror(status));
    }
}

/* Propose the first map, once per leadership, until one is applied. */
static void propose_map(struct node_meta *m)
{
    const struct node_config *cfg = &m->node->cfg;
    struct meta_map *map = mc_malloc(sizeof *map);
    if (map == NULL) {
        return;
    }
    meta_map_build(cfg->members, cfg->n_members, cfg->shards, cfg->replicas,
                   map);
    void *frame;
    size_t len;
    if (meta_init_frame(map, base_wall_ms(), raft_malloc, &frame, &len) ==
        MC_OK) {
        m->init_req.data = m;
        mc_err rv = cons_group_propose(&m->group, &m->init_req, frame, len,
                                       init_cb);
        if (rv == MC_OK) {
            m->init_busy = true;
            LOG_INFO("meta: proposing the map of %u shards on %u nodes",
                     map->shard_count, map->n_members);
        } else {
            raft_free(frame);
        }
    }
    mc_free(map);
}

static void tick_cb(uv_timer_t *h)
{
    struct node_meta *m = h->data;
    atomic_store(&m->st_leader, cons_group_leader(&m->group));
    atomic_store(&m->st_term, cons_group_term(&m->group));
    if (!m->init_busy && leads(m) && !meta_map_get(m->state, NULL)) {
        propose_map(m);
    }
}

static void async_closed_cb(uv_handle_t *h)
{
    (void)h;
}

static void group_closed_cb(struct cons_group *g)
{
    struct node_meta *m = g->data;
    uv_close((uv_handle_t *)&m->stop_async, async_closed_cb);
}

static void stop_cb(uv_async_t *h)
{
    struct node_meta *m = h->data;
    uv_close((uv_handle_t *)&m->tick, NULL);
    if (m->group_ready) {
        cons_group_close(&m->group, group_closed_cb);
    } else {
        uv_close((uv_handle_t *)&m->stop_async, async_closed_cb);
    }
}

static void *meta_main(void *arg)
{
    struct node_meta *m = arg;
    pthread_setname_np(pthread_self(), "mc:meta");
    uv_run(&m->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* The group's configuration: every member, the first META_VOTERS_MAX by
 * id as voters. */
static mc_err group_open(struct node_meta *m, const char *raft_dir,
                         char *err, size_t err_len)
{
    const struct node_config *cfg = &m->node->cfg;
    static struct cons_member members[MC_NODES_MAX]; /* main thread only */
    char self_addr[64] = "";
    for (uint32_t i = 0; i < cfg->n_members; i++) {
        members[i].id = cfg->members[i].id;
        members[i].standby = i >= META_VOTERS_MAX;
        meta_member_raft_addr(&cfg->members[i], META_GROUP, members[i].addr,
                              sizeof members[i].addr);
        if (members[i].id == cfg->node_id) {
            strcpy(self_addr, members[i].addr);
            m->voter = !members[i].standby;
        }
    }
    ASSERT(self_addr[0] != '\0'); /* config checks that it is a member */
    char bind[24];
    meta_member_raft_addr(&cfg->raft_bind_at, META_GROUP, bind, sizeof bind);
    struct cons_group_config gcfg = {
        .node_id = cfg->node_id,
        .dir = raft_dir,
        .addr = self_addr,
        .bind_addr = cfg->raft_bind[0] != '\0' ? bind : NULL,
        .members = members,
        .n_members = cfg->n_members,
        .election_ms = cfg->election_ms,
        .heartbeat_ms = cfg->heartbeat_ms,
        .snapshot_threshold = cfg->snapshot_threshold,
        .snapshot_trailing = cfg->snapshot_trailing,
        .fsm = meta_fsm(m->state, &m->group.raft),
    };
    mc_err rv = cons_group_init(&m->group, &m->loop, &gcfg, NULL, err, err_len);
    if (rv != MC_OK) {
        return rv;
    }
    m->group.shard_id = META_GROUP;
    m->group.data = m;
    m->group_ready = true;
    return cons_group_start(&m->group, &gcfg, err, err_len);
}

mc_err node_meta_start(struct node_meta *m, struct node *n, char *err,
                       size_t err_len)
{
    memset(m, 0, sizeof *m);
    m->node = n;
    char dir[MC_PATH_BYTES_MAX], raft_dir[MC_PATH_BYTES_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s/meta", n->cfg.data) >=
            sizeof dir ||
        (size_t)snprintf(raft_dir, sizeof raft_dir, "%s/raft", dir) >=
            sizeof raft_dir) {
        base_errf(err, err_len, "data folder path is too long");
        return MC_INVALID_ARGUMENT;
    }
    mc_err rv = meta_open(dir, &m->state, err, err_len);
    if (rv != MC_OK) {
        return rv;
    }
    int uv = uv_loop_init(&m->loop);
    if (uv != 0) {
        base_errf(err, err_len, "uv_loop_init: %s", uv_strerror(uv));
        return MC_INTERNAL;
    }
    m->loop_ready = true;
    uv_async_init(&m->loop, &m->stop_async, stop_cb);
    uv_timer_init(&m->loop, &m->tick);
    m->stop_async.data = m->tick.data = m;
    rv = group_open(m, raft_dir, err, err_len);
    if (rv != MC_OK) {
        return rv; /* node_meta_stop closes what was opened */
    }
    uv_timer_start(&m->tick, tick_cb, 0, META_TICK_MS);
    int prv = pthread_create(&m->thread, NULL, meta_main, m);
    if (prv != 0) {
        base_errf(err, err_len, "pthread_create: %s", strerror(prv));
        return MC_INTERNAL;
    }
    m->running = true;
    return MC_OK;
}

void node_meta_stop(struct node_meta *m)
{
    if (!m->loop_ready) {
        meta_close(m->state);
        m->state = NULL;
        return;
    }
    uv_async_send(&m->stop_async);
    if (m->running) {
        pthread_join(m->thread, NULL);
        m->running = false;
    } else {
        uv_run(&m->loop, UV_RUN_DEFAULT); /* never ran: close here */
    }
    int rv = uv_loop_close(&m->loop);
    if (rv != 0) {
        LOG_WARN("meta: uv_loop_close: %s", uv_strerror(rv));
    }
    m->loop_ready = false;
    meta_close(m->state);
    m->state = NULL;
}
