/* consensus/lane_io.c: the async work raft runs its snapshots through
 * (FSM version 3). A work's answer reaches raft on the loop; a close waits
 * for works still running and answers them RAFT_CANCELED before raft
 * hears of the close, so that raft never goes on to store a snapshot
 * through a closing io. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <ftw.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "consensus/consensus.h"

#define DEADLINE_MS 5000

static uv_loop_t loop;
static uv_timer_t tick; /* keeps uv_run(ONCE) from blocking for long */
static char dir[] = "/tmp/mc-lane-io-XXXXXX";
static struct cons_wal *wal;
static struct cons_mux *mux;
static struct cons_lane_io lane;
static sem_t work_release; /* lets the test's work return */

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, tick_cb, 10, 10);
    char err[256];
    cr_assert_eq(cons_wal_open(&loop, dir, 0, &wal, err, sizeof err), MC_OK,
                 "%s", err);
    struct cons_mux_peer_addr self = {.id = 1, .ip = "127.0.0.1"};
    struct cons_mux_config cfg = {.node_id = 1, .lane = 0, .lanes = 1,
                                  .bind_ip = "127.0.0.1", .bind_port = 0,
                                  .peers = &self, .n_peers = 1, .wal = wal};
    cr_assert_eq(cons_mux_open(&loop, &cfg, &mux, err, sizeof err), MC_OK,
                 "%s", err);
    cons_lane_io_init(&lane, &loop, mux, wal, NULL, 0);
    cr_assert_eq(sem_init(&work_release, 0, 0), 0);
}

static void teardown(void)
{
    cons_mux_close(mux);
    cons_wal_close(wal);
    uv_close((uv_handle_t *)&tick, NULL);
    while (uv_run(&loop, UV_RUN_DEFAULT) != 0) {
    }
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle left open");
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(lane_io, .init = setup, .fini = teardown);

/* The work: runs on a worker until released (or for DEADLINE_MS at
 * most), then returns 7. */
static atomic_bool work_started;

static int work_fn(struct raft_io_async_work *req)
{
    (void)req;
    atomic_store(&work_started, true);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DEADLINE_MS / 1000;
    (void)sem_timedwait(&work_release, &until);
    return 7;
}

static int work_status = -1;
static bool work_answered, io_closed, answered_before_close;

static void work_cb(struct raft_io_async_work *req, int status)
{
    (void)req;
    work_answered = true;
    work_status = status;
}

static void io_close_cb(struct raft_io *io)
{
    (void)io;
    answered_before_close = work_answered;
    io_closed = true;
}

static void run_until(const bool *flag)
{
    int64_t deadline = base_mono_ms() + DEADLINE_MS;
    while (!*flag && base_mono_ms() < deadline) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    cr_assert(*flag, "not within %d ms", DEADLINE_MS);
}

static void close_lane(void)
{
    if (!io_closed) {
        lane.io.close(&lane.io, io_close_cb);
        run_until(&io_closed);
    }
}

Test(lane_io, a_work_runs_off_the_loop_and_answers_on_it)
{
    cr_assert_geq(lane.io.version, 2);
    struct raft_io_async_work req = {.work = work_fn};
    sem_post(&work_release);
    cr_assert_eq(lane.io.async_work(&lane.io, &req, work_cb), 0);
    run_until(&work_answered);
    cr_assert_eq(work_status, 7);
    close_lane();
}

Test(lane_io, a_close_waits_for_a_running_work_and_cancels_it)
{
    struct raft_io_async_work req = {.work = work_fn};
    cr_assert_eq(lane.io.async_work(&lane.io, &req, work_cb), 0);
    int64_t deadline = base_mono_ms() + DEADLINE_MS;
    while (!atomic_load(&work_started) && base_mono_ms() < deadline) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    cr_assert(atomic_load(&work_started));
    lane.io.close(&lane.io, io_close_cb);
    /* The timer and the log close at once; the work holds the close. */
    for (int i = 0; i < 20; i++) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    cr_assert(!io_closed, "closed while a work still ran");
    cr_assert(!work_answered);
    sem_post(&work_release);
    run_until(&io_closed);
    cr_assert(answered_before_close, "raft heard of the close first");
    cr_assert_eq(work_status, RAFT_CANCELED);
}
