/* consensus/group.c: the raft settings a group gets. A leader waits for
 * the answer to an InstallSnapshot a few election timeouts, not raft
 * 0.15's fixed 30 s: a snapshot lost with a dropped connection kept a
 * follower 30 s behind after a partition healed (tests/fault). Opens a
 * raft_uv group in a temporary folder, without starting it. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include "consensus/consensus.h"

static bool closed;

static void close_cb(struct cons_group *g)
{
    (void)g;
    closed = true;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int noop_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                      void **result)
{
    (void)fsm, (void)buf;
    *result = NULL;
    return 0;
}

Test(cons_group_init, snapshot_answer_wait_is_ten_elections)
{
    char dir[] = "/tmp/mc-group-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char raft_dir[64];
    snprintf(raft_dir, sizeof raft_dir, "%s/raft", dir);
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    struct raft_fsm fsm = {.version = 1, .apply = noop_apply};
    struct cons_member m = {.id = 1};
    snprintf(m.addr, sizeof m.addr, "127.0.0.1:9");
    struct cons_group_config cfg = {.node_id = 1,
                                    .dir = raft_dir,
                                    .addr = m.addr,
                                    .members = &m,
                                    .n_members = 1,
                                    .election_ms = 300,
                                    .heartbeat_ms = 30,
                                    .snapshot_threshold = 1024,
                                    .snapshot_trailing = 128,
                                    .fsm = &fsm};
    struct cons_group *g = calloc(1, sizeof *g);
    char err[256];
    cr_assert_eq(cons_group_init(g, &loop, &cfg, NULL, err, sizeof err), MC_OK,
                 "%s", err);
    cr_assert_eq(g->raft.install_snapshot_timeout, 3000u);
    cons_group_close(g, close_cb);
    while (!closed) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    cr_assert_eq(uv_loop_close(&loop), 0);
    free(g);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}
