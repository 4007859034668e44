/* The raft_io of a group on a lane (consensus.h): its log in the lane's
 * write-ahead log (wal.h), its messages over the lane's mux, its ticks
 * from a timer of its own.
 *
 * Close: the mux forgets the group (its send callbacks fire), the log
 * fails its waiting appends and lets its snapshot work finish, the timer
 * closes, the async works (snapshots being written) finish and are
 * answered RAFT_CANCELED; raft hears of the close once all of that is
 * done. */
#include <string.h>
#include <sys/random.h>

#include "consensus/consensus.h"
#include "consensus/wal.h"

static struct cons_lane_io *lane_of(struct raft_io *io)
{
    return io->impl;
}

const char *cons_lane_io_address(const struct cons_lane_io *l, uint64_t id)
{
    if (l->raft != NULL) {
        const struct raft_configuration *c = &l->raft->configuration;
        for (unsigned i = 0; i < c->n; i++) {
            if (c->servers[i].id == id) {
                return c->servers[i].address;
            }
        }
    }
    return "";
}

static void tick_timer_cb(uv_timer_t *t)
{
    struct cons_lane_io *l = t->data;
    if (l->tick_cb != NULL) {
        l->tick_cb(&l->io);
    }
}

static void part_closed(struct cons_lane_io *l)
{
    ASSERT(l->closing > 0);
    if (--l->closing == 0 && l->close_cb != NULL) {
        l->close_cb(&l->io);
    }
}

static void timer_closed_cb(uv_handle_t *h)
{
    part_closed(h->data);
}

static void wal_closed_cb(void *arg)
{
    part_closed(arg);
}

static int l_init(struct raft_io *io, raft_id id, const char *address)
{
    return 0; /* the lane is open already */
}

static void l_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct cons_lane_io *l = lane_of(io);
    l->close_cb = cb;
    l->tick_cb = NULL;
    l->closing = 2 + l->works;
    if (l->started) {
        cons_mux_forget(l->mux, l);
        l->started = false;
    }
    uv_close((uv_handle_t *)&l->tick, timer_closed_cb);
    wal_group_close(l->wal, l->shard_id, wal_closed_cb, l);
}

struct lane_work {
    uv_work_t work;
    struct cons_lane_io *l;
    struct raft_io_async_work *req;
    raft_io_async_work_cb cb;
    int status;
};

static void work_run(uv_work_t *w)
{
    struct lane_work *k = w->data;
    k->status = k->req->work(k->req);
}

static void work_done(uv_work_t *w, int status)
{
    struct lane_work *k = w->data;
    struct cons_lane_io *l = k->l;
    struct raft_io_async_work *req = k->req;
    raft_io_async_work_cb cb = k->cb;
    bool closing = l->closing > 0;
    int rv = status != 0 || closing ? RAFT_CANCELED : k->status;
    mc_free(k);
    ASSERT(l->works > 0);
    l->works--;
    cb(req, rv); /* closing: raft must not go on to store the snapshot */
    if (closing) {
        part_closed(l);
    }
}

static int l_async_work(struct raft_io *io, struct raft_io_async_work *req,
                        raft_io_async_work_cb cb)
{
    struct cons_lane_io *l = lane_of(io);
    ASSERT(l->closing == 0);
    struct lane_work *k = mc_calloc(1, sizeof *k);
    if (k == NULL) {
        return RAFT_NOMEM;
    }
    *k = (struct lane_work){.l = l, .req = req, .cb = cb};
    k->work.data = k;
    if (uv_queue_work(l->loop, &k->work, work_run, work_done) != 0) {
        mc_free(k);
        return RAFT_IOERR;
    }
    l->works++;
    return 0;
}

static int l_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                  struct raft_snapshot **snapshot, raft_index *start_index,
                  struct raft_entry *entries[], size_t *n_entries)
{
    struct cons_lane_io *l = lane_of(io);
    uint64_t have = l->shard != NULL ? shard_applied_index(l->shard) : 0;
    return wal_load(l->wal, l->shard_id, have, term, voted_for, snapshot,
                    start_index, entries, n_entries, l->io.errmsg,
                    sizeof l->io.errmsg);
}

static int l_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                   raft_io_recv_cb recv)
{
    struct cons_lane_io *l = lane_of(io);
    ASSERT(!l->started);
    l->tick_cb = tick;
    l->recv_cb = recv;
    l->started = true;
    cons_mux_register(l->mux, l);
    uv_timer_start(&l->tick, tick_timer_cb, msecs, msecs);
    return 0;
}

static int l_bootstrap(struct raft_io *io,
                       const struct raft_configuration *conf)
{
    struct cons_lane_io *l = lane_of(io);
    return wal_bootstrap(l->wal, l->shard_id, conf);
}

static int l_recover(struct raft_io *io, const struct raft_configuration *conf)
{
    struct cons_lane_io *l = lane_of(io);
    base_errf(l->io.errmsg, sizeof l->io.errmsg,
              "recovering a configuration is not supported");
    return RAFT_INVALID;
}

static int l_set_term(struct raft_io *io, raft_term term)
{
    struct cons_lane_io *l = lane_of(io);
    return wal_set_term(l->wal, l->shard_id, term);
}

static int l_set_vote(struct raft_io *io, raft_id server_id)
{
    struct cons_lane_io *l = lane_of(io);
    return wal_set_vote(l->wal, l->shard_id, server_id);
}

static int l_send(struct raft_io *io, struct raft_io_send *req,
                  const struct raft_message *msg, raft_io_send_cb cb)
{
    struct cons_lane_io *l = lane_of(io);
    if (!l->started) {
        return RAFT_CANCELED;
    }
    return cons_mux_send(l->mux, l, req, msg, cb);
}

static int l_append(struct raft_io *io, struct raft_io_append *req,
                    const struct raft_entry entries[], unsigned n,
                    raft_io_append_cb cb)
{
    struct cons_lane_io *l = lane_of(io);
    return wal_append(l->wal, l->shard_id, req, entries, n, cb);
}

static int l_truncate(struct raft_io *io, raft_index index)
{
    struct cons_lane_io *l = lane_of(io);
    return wal_truncate(l->wal, l->shard_id, index);
}

static int l_snapshot_put(struct raft_io *io, unsigned trailing,
                          struct raft_io_snapshot_put *req,
                          const struct raft_snapshot *snapshot,
                          raft_io_snapshot_put_cb cb)
{
    struct cons_lane_io *l = lane_of(io);
    return wal_snapshot_put(l->wal, l->shard_id, trailing, req, snapshot, cb);
}

static int l_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                          raft_io_snapshot_get_cb cb)
{
    struct cons_lane_io *l = lane_of(io);
    return wal_snapshot_get(l->wal, l->shard_id, req, cb);
}

static raft_time l_time(struct raft_io *io)
{
    struct cons_lane_io *l = lane_of(io);
    return uv_now(l->loop);
}

/* xorshift64*: election timeouts only need to differ between replicas. */
static int l_random(struct raft_io *io, int min, int max)
{
    struct cons_lane_io *l = lane_of(io);
    uint64_t x = l->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    l->rng = x;
    if (max <= min) {
        return min;
    }
    return min + (int)((x * 0x2545F4914F6CDD1Dull) %
                       (uint64_t)(max - min));
}

void cons_lane_io_init(struct cons_lane_io *l, uv_loop_t *loop,
                       struct cons_mux *mux, struct cons_wal *wal,
                       struct shard *shard, uint32_t shard_id)
{
    memset(l, 0, sizeof *l);
    l->loop = loop;
    l->mux = mux;
    l->wal = wal;
    l->shard = shard;
    l->shard_id = shard_id;
    if (getrandom(&l->rng, sizeof l->rng, 0) != (ssize_t)sizeof l->rng ||
        l->rng == 0) {
        l->rng = (uint64_t)base_mono_ns() | 1;
    }
    uv_timer_init(loop, &l->tick);
    l->tick.data = l;
    l->io.version = 2; /* async_work */
    l->io.impl = l;
    l->io.init = l_init;
    l->io.close = l_close;
    l->io.load = l_load;
    l->io.start = l_start;
    l->io.bootstrap = l_bootstrap;
    l->io.recover = l_recover;
    l->io.set_term = l_set_term;
    l->io.set_vote = l_set_vote;
    l->io.send = l_send;
    l->io.append = l_append;
    l->io.truncate = l_truncate;
    l->io.snapshot_put = l_snapshot_put;
    l->io.snapshot_get = l_snapshot_get;
    l->io.time = l_time;
    l->io.random = l_random;
    l->io.async_work = l_async_work;
}
