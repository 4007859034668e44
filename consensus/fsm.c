/* The raft_fsm adapter: raft 0.15's apply has no index argument, so the
 * entry's index is raft->last_applied + 1 (DEPS-NOTES.md, raft 2). Apply
 * never fails for a business reason; only a broken store stops it. */
#include "consensus/consensus.h"
#include "consensus/wal.h"

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result)
{
    struct cons_fsm *f = fsm->data;
    ASSERT(f->raft != NULL);
    uint64_t index = raft_last_applied(f->raft) + 1;
    const struct shard_result *res;
    mc_err rv = shard_apply(f->shard, index, buf->base, buf->len, &res);
    if (rv != MC_OK) {
        /* The store is broken (disk full, I/O error): raft retries this
         * entry on the next commit; the node answers UNAVAILABLE. */
        LOG_ERROR("apply failed index=%llu err=%s",
                  (unsigned long long)index, mc_errname(rv));
        return RAFT_IOERR;
    }
    if (f->applied != NULL) {
        f->applied(f->applied_arg, index, res);
    }
    *result = (void *)res;
    return 0;
}

/* FSM version 3: raft calls begin on the loop, write through io's
 * async_work on a worker (the loop applies on meanwhile), and finalize on
 * the loop once the snapshot is stored, or failed, or was given up. */
static int fsm_snapshot_begin(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                              unsigned *n_bufs)
{
    struct cons_fsm *f = fsm->data;
    ASSERT(f->snap == NULL); /* raft takes one at a time */
    mc_err rv = shard_snapshot_begin(f->shard, &f->snap);
    if (rv != MC_OK) {
        return rv == MC_INTERNAL ? RAFT_NOMEM : RAFT_IOERR;
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_snapshot_write(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                              unsigned *n_bufs)
{
    struct cons_fsm *f = fsm->data;
    struct raft_buffer *b = raft_malloc(sizeof *b);
    if (b == NULL) {
        return RAFT_NOMEM;
    }
    void *data;
    size_t len;
    mc_err rv = shard_snapshot_write(f->snap, raft_malloc, &data, &len);
    if (rv != MC_OK) {
        raft_free(b);
        return rv == MC_INTERNAL ? RAFT_NOMEM : RAFT_IOERR;
    }
    *b = (struct raft_buffer){.base = data, .len = len};
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm,
                                 struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cons_fsm *f = fsm->data;
    if (*bufs != NULL) {
        for (unsigned i = 0; i < *n_bufs; i++) {
            raft_free((*bufs)[i].base);
        }
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    shard_snapshot_end(f->snap);
    f->snap = NULL;
    return 0;
}

/* FSM version 2, for an io without async work (raft_fixture's reports
 * version 0): the same steps at once. With snapshot_finalize NULL, raft
 * frees the buffers. */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
    struct cons_fsm *f = fsm->data;
    int rv = fsm_snapshot_begin(fsm, bufs, n_bufs);
    if (rv == 0) {
        rv = fsm_snapshot_write(fsm, bufs, n_bufs);
        shard_snapshot_end(f->snap);
        f->snap = NULL;
    }
    return rv;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct cons_fsm *f = fsm->data;
    uint64_t held = wal_placeholder_index(buf);
    if (held != 0) {
        /* A restart: the log gave the snapshot's place, not its data, as
         * the store holds it already (wal_load). */
        if (shard_applied_index(f->shard) < held) {
            LOG_ERROR("restore: the store is at %llu, behind the snapshot "
                      "at %llu", (unsigned long long)shard_applied_index(
                                     f->shard),
                      (unsigned long long)held);
            return RAFT_CORRUPT;
        }
        raft_free(buf->base);
        return 0;
    }
    if (!shard_restore_is_needed(f->shard, buf->base, buf->len)) {
        /* A snapshot LMDB has already (raft_uv's own at a start). */
        raft_free(buf->base);
        return 0;
    }
    mc_err rv = shard_restore(f->shard, buf->base, buf->len);
    if (rv != MC_OK) {
        LOG_ERROR("restore failed err=%s", mc_errname(rv));
        return RAFT_CORRUPT;
    }
    raft_free(buf->base); /* restore owns the buffer on success */
    return 0;
}

void cons_fsm_init(struct cons_fsm *f, struct shard *s)
{
    ASSERT(f != NULL);
    ASSERT(s != NULL);
    *f = (struct cons_fsm){
        .fsm = {.version = 2,
                .apply = fsm_apply,
                .snapshot = fsm_snapshot,
                .restore = fsm_restore,
                .snapshot_finalize = NULL},
        .shard = s,
    };
    f->fsm.data = f;
}

void cons_fsm_async_snapshots(struct cons_fsm *f)
{
    f->fsm.version = 3;
    f->fsm.snapshot = fsm_snapshot_begin;
    f->fsm.snapshot_async = fsm_snapshot_write;
    f->fsm.snapshot_finalize = fsm_snapshot_finalize;
}

mc_err cons_err(int raft_rv)
{
    switch (raft_rv) {
    case 0:
        return MC_OK;
    case RAFT_NOTLEADER:
        return MC_NOT_LEADER;
    case RAFT_NOTFOUND: /* transfer: no such voter */
    case RAFT_BADID:
        return MC_INVALID_ARGUMENT;
    case RAFT_LEADERSHIPLOST:
    case RAFT_SHUTDOWN:
    case RAFT_IOERR:
    case RAFT_NOSPACE:
    case RAFT_CANCELED:
    case RAFT_TOOMANY:
    case RAFT_NOCONNECTION:
        return MC_UNAVAILABLE;
    default:
        return MC_INTERNAL;
    }
}
