/* Loop threads: each runs one libuv loop that owns a fixed set of shard
 * replicas. Other threads reach it only through loop_submit: a locked
 * queue plus uv_async_send, whose wake-ups coalesce, so the async callback
 * drains the whole queue. A uv_check handle commits every replica's LMDB
 * transaction once per loop turn (DEPS-NOTES.md, LMDB).
 *
 *   INIT     -> OPENING   [loop_run: the thread opens its replicas]
 *   OPENING  -> RUNNING   [every replica open: the thread runs the loop]
 *   OPENING  -> FAILED    [a replica did not open: the thread waits]
 *   RUNNING  -> STOPPING  [loop_stop: sets stopping and wakes the loop]
 *   FAILED   -> STOPPING  [loop_stop]
 *   STOPPING -> STOPPED   [every raft group closed, handles closed, the
 *                          loop empty: the thread commits and exits] */
#define _GNU_SOURCE /* pthread_setname_np */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "node/node.h"

/* LMDB is synced in the background every SYNC_EVERY_SWEEPS sweeps (1 s
 * each): the raft log is the durability, and the sync bounds what the
 * disk lags behind the map and finds a disk that fails writeback. Not more
 * often: a sync writes back the pages a shard keeps rewriting (the watch
 * ring's head, the dedupe table) each time, and write-protects every page
 * it cleans, so that the loop's next write to each faults. Linux writes
 * such pages back after 30 s anyway (vm.dirty_expire_centisecs). Put at
 * 64 in flight did 6.3-6.7k ops/s with p99 41-45 ms when every 5 s, and
 * 7.2-7.6k with p99 34-36 ms now (README, Benchmarks). Loop 0 hands freed
 * memory back more often. */
#define SYNC_EVERY_SWEEPS 30u
#define TRIM_EVERY_SWEEPS 5u

static void close_handles(struct node_loop *l)
{
    cons_mux_close(l->mux);
    l->mux = NULL;
    cons_wal_close(l->wal);
    l->wal = NULL;
    uv_close((uv_handle_t *)&l->wake, NULL);
    uv_close((uv_handle_t *)&l->turn, NULL);
    uv_close((uv_handle_t *)&l->sweep, NULL);
    uv_close((uv_handle_t *)&l->watch_timer, NULL);
}

static void group_closed_cb(struct cons_group *g)
{
    struct node_replica *r = g->data;
    struct node_loop *l = r->loop;
    ASSERT(l->n_closing > 0);
    if (--l->n_closing == 0) {
        close_handles(l);
    }
}

static void begin_stop(struct node_loop *l)
{
    if (l->stop_begun) {
        return;
    }
    l->stop_begun = true;
    l->n_closing = 0;
    for (unsigned i = 0; i < l->n_replicas; i++) {
        if (l->replicas[i]->group_ready) {
            l->n_closing++;
        }
    }
    if (l->n_closing == 0) {
        close_handles(l);
        return;
    }
    for (unsigned i = 0; i < l->n_replicas; i++) {
        if (l->replicas[i]->group_ready) {
            replica_close(l->replicas[i], group_closed_cb);
        }
    }
}

static void wake_cb(uv_async_t *h)
{
    struct node_loop *l = h->data;
    pthread_mutex_lock(&l->mu);
    struct node_work *w = l->head;
    l->head = l->tail = NULL;
    l->queued = 0;
    bool stopping = l->stopping;
    bool flush = l->watch_flush;
    l->watch_flush = false;
    pthread_mutex_unlock(&l->mu);
    if (flush) {
        for (unsigned i = 0; i < l->n_replicas; i++) {
            watch_fail_all(l->replicas[i], MC_UNAVAILABLE,
                           "node is shutting down");
        }
    }
    while (w != NULL) {
        struct node_work *next = w->next;
        w->next = NULL;
        replica_handle(w->fe->node->replicas[w->shard], w);
        w = next;
    }
    if (stopping) {
        begin_stop(l);
    }
}

static void turn_cb(uv_check_t *h)
{
    struct node_loop *l = h->data;
    for (unsigned i = 0; i < l->n_replicas; i++) {
        replica_propose(l->replicas[i]);
    }
    /* The entries go to the followers before this turn's commits. */
    if (l->mux != NULL) {
        cons_mux_flush(l->mux);
    }
    for (unsigned i = 0; i < l->n_replicas; i++) {
        replica_turn(l->replicas[i]);
    }
}

static void sync_work(uv_work_t *req)
{
    struct node_loop *l = req->data;
    if (l->sync_due) {
        for (unsigned i = 0; i < l->n_replicas; i++) {
            shard_sync(l->replicas[i]->store);
        }
    }
    /* Snapshots build the whole state in one buffer and free it; glibc
     * keeps such memory in its arenas. Handing it back halved the
     * resident memory per record outside LMDB's map (145 -> 74 B in
     * make bench). Process-wide: loop 0 does it, off its loop thread. */
    if (l->idx == 0) {
        malloc_trim(0);
    }
}

static void sync_done(uv_work_t *req, int status)
{
    struct node_loop *l = req->data;
    l->sync_busy = false;
}

static void sweep_cb(uv_timer_t *h)
{
    struct node_loop *l = h->data;
    for (unsigned i = 0; i < l->n_replicas; i++) {
        replica_sweep(l->replicas[i]);
    }
    l->sweeps++;
    /* A sync due while the last work runs waits for the next sweep. */
    l->sync_owed |= l->sweeps % SYNC_EVERY_SWEEPS == 0;
    bool trim = l->idx == 0 && l->sweeps % TRIM_EVERY_SWEEPS == 0;
    if ((l->sync_owed || trim) && !l->sync_busy) {
        l->sync_due = l->sync_owed;
        l->sync_req.data = l;
        if (uv_queue_work(&l->loop, &l->sync_req, sync_work, sync_done) == 0) {
            l->sync_busy = true;
            l->sync_owed = false;
        }
    }
}

/* The loop's raft transport: lane idx, on port raft_port + 1 + idx of
 * this node's raft address (or of --raft-bind), dialling the same lane of
 * every other member. */
static mc_err mux_open(struct node_loop *l, char *err, size_t err_len)
{
    const struct node *n = l->node;
    const struct node_config *cfg = &n->cfg;
    struct cons_mux_peer_addr peers[MC_NODES_MAX];
    for (uint32_t i = 0; i < n->map.n_members; i++) {
        const struct meta_member *m = &n->map.members[i];
        peers[i] = (struct cons_mux_peer_addr){
            .id = m->id, .port = (uint16_t)(m->raft_port + 1 + l->idx)};
        snprintf(peers[i].ip, sizeof peers[i].ip, "%s", m->raft_ip);
    }
    const struct meta_member *bind = cfg->raft_bind[0] != '\0'
                                         ? &cfg->raft_bind_at
                                         : node_member(n, cfg->node_id);
    ASSERT(bind != NULL);
    struct cons_mux_config mc = {
        .node_id = cfg->node_id,
        .lane = l->idx,
        .lanes = n->n_loops,
        .bind_ip = bind->raft_ip,
        .bind_port = (uint16_t)(bind->raft_port + 1 + l->idx),
        .peers = peers,
        .n_peers = n->map.n_members,
        .wal = l->wal,
    };
    return cons_mux_open(&l->loop, &mc, &l->mux, err, err_len);
}

/* The loop's raft log, replayed: <data>/lane-<idx>. */
static mc_err wal_open(struct node_loop *l, char *err, size_t err_len)
{
    char dir[MC_PATH_BYTES_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s/lane-%u", l->node->cfg.data,
                         l->idx) >= sizeof dir) {
        base_errf(err, err_len, "data folder path is too long");
        return MC_INVALID_ARGUMENT;
    }
    return cons_wal_open(&l->loop, dir, l->idx, &l->wal, err, err_len);
}

mc_err loop_init(struct node_loop *l, struct node *n, unsigned idx, char *err,
                 size_t err_len)
{
    l->node = n;
    l->idx = idx;
    int rv = uv_loop_init(&l->loop);
    if (rv != 0) {
        base_errf(err, err_len, "uv_loop_init: %s", uv_strerror(rv));
        return MC_INTERNAL;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->opened_cond, NULL);
    uv_async_init(&l->loop, &l->wake, wake_cb);
    uv_check_init(&l->loop, &l->turn);
    uv_timer_init(&l->loop, &l->sweep);
    l->wake.data = l->turn.data = l->sweep.data = l;
    uv_check_start(&l->turn, turn_cb);
    uv_timer_start(&l->sweep, sweep_cb, MC_EXPIRE_SWEEP_MS, MC_EXPIRE_SWEEP_MS);
    watch_loop_init(l);
    mc_err mrv = wal_open(l, err, err_len);
    return mrv == MC_OK ? mux_open(l, err, err_len) : mrv;
}

/* Open the replicas placed on l, on its thread: raft_start loads each
 * group's snapshot and log (seconds for a large node), and raft_uv waits
 * ~35 ms per group in io_destroy; the loops do it side by side. Stops at
 * the first failure; the replicas after it stay unopened. */
static mc_err open_replicas(struct node_loop *l, char *err, size_t err_len)
{
    for (unsigned i = 0; i < l->n_replicas; i++) {
        struct node_replica *r = l->replicas[i];
        mc_err rv = replica_open(r, l->node, r->id, l, err, err_len);
        if (rv != MC_OK) {
            return rv;
        }
    }
    return MC_OK;
}

static void *loop_main(void *arg)
{
    struct node_loop *l = arg;
    char name[16]; /* what top -H and perf show */
    snprintf(name, sizeof name, "mc:loop%u", l->idx);
    pthread_setname_np(pthread_self(), name);
    char err[sizeof l->open_err];
    mc_err rv = open_replicas(l, err, sizeof err);
    pthread_mutex_lock(&l->mu);
    l->open_rv = rv;
    snprintf(l->open_err, sizeof l->open_err, "%s", rv == MC_OK ? "" : err);
    l->opened = true;
    pthread_cond_broadcast(&l->opened_cond);
    while (rv != MC_OK && !l->stopping) {
        pthread_cond_wait(&l->opened_cond, &l->mu); /* node_serve stops us */
    }
    pthread_mutex_unlock(&l->mu);
    if (rv != MC_OK) {
        /* Close what opened; no turn or sweep runs on replicas that did
         * not open. */
        uv_check_stop(&l->turn);
        uv_timer_stop(&l->sweep);
        begin_stop(l);
        uv_run(&l->loop, UV_RUN_DEFAULT);
        return NULL;
    }
    uv_run(&l->loop, UV_RUN_DEFAULT);
    /* Closed: commit what the last turn applied. */
    turn_cb(&l->turn);
    return NULL;
}

mc_err loop_wait_open(struct node_loop *l, char *err, size_t err_len)
{
    pthread_mutex_lock(&l->mu);
    while (!l->opened) {
        pthread_cond_wait(&l->opened_cond, &l->mu);
    }
    mc_err rv = l->open_rv;
    if (rv != MC_OK) {
        base_errf(err, err_len, "%s", l->open_err);
    }
    pthread_mutex_unlock(&l->mu);
    return rv;
}

mc_err loop_run(struct node_loop *l, char *err, size_t err_len)
{
    int rv = pthread_create(&l->thread, NULL, loop_main, l);
    if (rv != 0) {
        base_errf(err, err_len, "pthread_create: %s", strerror(rv));
        return MC_INTERNAL;
    }
    l->running = true;
    return MC_OK;
}

bool loop_submit(struct node_loop *l, struct node_work *w)
{
    pthread_mutex_lock(&l->mu);
    bool ok = !l->stopping && l->queued < MC_LOOP_QUEUE_MAX;
    if (ok) {
        w->next = NULL;
        if (l->tail != NULL) {
            l->tail->next = w;
        } else {
            l->head = w;
        }
        l->tail = w;
        l->queued++;
        /* Under the lock, so the handle cannot be closed meanwhile. */
        uv_async_send(&l->wake);
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void loop_stop(struct node_loop *l)
{
    pthread_mutex_lock(&l->mu);
    l->stopping = true;
    if (l->running) {
        uv_async_send(&l->wake);
    }
    pthread_cond_broadcast(&l->opened_cond); /* a loop that failed to open */
    pthread_mutex_unlock(&l->mu);
    if (l->running) {
        pthread_join(l->thread, NULL);
        l->running = false;
        return;
    }
    /* Never ran (start-up failed): close here, on this thread. */
    begin_stop(l);
    uv_run(&l->loop, UV_RUN_DEFAULT);
}

void loop_fini(struct node_loop *l)
{
    if (l->node == NULL) {
        return;
    }
    int rv = uv_loop_close(&l->loop);
    if (rv != 0) {
        LOG_WARN("uv_loop_close loop=%u: %s", l->idx, uv_strerror(rv));
    }
    pthread_cond_destroy(&l->opened_cond);
    pthread_mutex_destroy(&l->mu);
}
