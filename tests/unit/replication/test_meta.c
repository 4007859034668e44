/* The meta group's state machine (replication/meta.c) on three
 * raft/fixture.h servers in virtual time, and placement: the first map
 * proposed is applied on every replica and kept in its state file; a later
 * or invalid INIT changes nothing; a server that missed the map gets it by
 * snapshot; a damaged state file is refused. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replication/replication.h"

#define N_SERVERS 3
#define SNAPSHOT_THRESHOLD 16
#define SNAPSHOT_TRAILING 4

struct fix {
    struct raft_fixture f;
    struct meta *metas[N_SERVERS];
    char dirs[N_SERVERS][64];
    int64_t stamp;
};

static struct fix F;

static void members_make(struct meta_member *m, uint32_t n)
{
    memset(m, 0, n * sizeof *m);
    for (uint32_t i = 0; i < n; i++) {
        m[i].id = i + 1;
        snprintf(m[i].url, sizeof m[i].url, "tcp://127.0.0.1:%u", 7400 + i);
        strcpy(m[i].raft_ip, "127.0.0.1");
        m[i].raft_port = 7500 + 32 * i;
    }
}

static void setup(void)
{
    memset(&F, 0, sizeof F);
    F.stamp = 1700000000000;
    cr_assert_eq(raft_fixture_initialize(&F.f), 0);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        strcpy(F.dirs[i], "/tmp/mc-meta-XXXXXX");
        cr_assert_not_null(mkdtemp(F.dirs[i]));
        char err[256];
        cr_assert_eq(meta_open(F.dirs[i], &F.metas[i], err, sizeof err), MC_OK,
                     "%s", err);
        cr_assert_eq(raft_fixture_grow(&F.f, meta_fsm(F.metas[i], NULL)), 0);
        struct raft *r = raft_fixture_get(&F.f, i);
        meta_fsm(F.metas[i], r); /* the same fsm, now bound to its raft */
        raft_set_snapshot_threshold(r, SNAPSHOT_THRESHOLD);
        raft_set_snapshot_trailing(r, SNAPSHOT_TRAILING);
    }
    struct raft_configuration conf;
    cr_assert_eq(raft_fixture_configuration(&F.f, N_SERVERS, &conf), 0);
    cr_assert_eq(raft_fixture_bootstrap(&F.f, &conf), 0);
    raft_configuration_close(&conf);
    cr_assert_eq(raft_fixture_start(&F.f), 0);
    cr_assert(raft_fixture_step_until_has_leader(&F.f, 10000));
}

static void teardown(void)
{
    raft_fixture_close(&F.f);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        meta_close(F.metas[i]);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", F.dirs[i]);
        cr_assert_eq(system(cmd), 0);
    }
}

static unsigned leader(void)
{
    for (unsigned i = 0; i < N_SERVERS; i++) {
        if (raft_fixture_alive(&F.f, i) &&
            raft_state(raft_fixture_get(&F.f, i)) == RAFT_LEADER) {
            return i;
        }
    }
    cr_assert_fail("no leader");
    return 0;
}

/* Propose INIT of map on the leader; step until every live server applied
 * it. */
static void propose_init(const struct meta_map *map)
{
    void *frame;
    size_t len;
    cr_assert_eq(meta_init_frame(map, F.stamp++, raft_malloc, &frame, &len),
                 MC_OK);
    struct raft *r = raft_fixture_get(&F.f, leader());
    static struct raft_apply req;
    struct raft_buffer buf = {.base = frame, .len = len};
    cr_assert_eq(raft_apply(r, &req, &buf, 1, NULL), 0);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        if (raft_fixture_alive(&F.f, i)) {
            cr_assert(raft_fixture_step_until_applied(&F.f, i, req.index, 5000),
                      "entry %llu was not applied on server %u",
                      (unsigned long long)req.index, i);
        }
    }
}

static struct meta_map map_a, map_b, got;

static void maps_make(void)
{
    struct meta_member members[5];
    members_make(members, 5);
    meta_map_build(members, 5, 8, 3, &map_a);
    meta_map_build(members, 3, 4, 3, &map_b);
}

static void assert_map_is(struct meta *m, const struct meta_map *want)
{
    cr_assert(meta_map_get(m, &got), "no map");
    cr_assert_eq(got.shard_count, want->shard_count);
    cr_assert_eq(got.replicas, want->replicas);
    cr_assert_eq(got.n_members, want->n_members);
    for (uint32_t i = 0; i < want->n_members; i++) {
        cr_assert_eq(got.members[i].id, want->members[i].id);
        cr_assert_str_eq(got.members[i].url, want->members[i].url);
        cr_assert_str_eq(got.members[i].raft_ip, want->members[i].raft_ip);
        cr_assert_eq(got.members[i].raft_port, want->members[i].raft_port);
    }
    cr_assert_arr_eq(got.replica_ids, want->replica_ids,
                     sizeof got.replica_ids);
}

Test(meta_fixture, first_map_wins_everywhere_and_is_kept_on_disk,
     .init = setup, .fini = teardown)
{
    maps_make();
    for (unsigned i = 0; i < N_SERVERS; i++) {
        cr_assert_not(meta_map_get(F.metas[i], NULL));
    }
    propose_init(&map_a);
    propose_init(&map_b); /* a second proposal, e.g. a racing leader */
    for (unsigned i = 0; i < N_SERVERS; i++) {
        assert_map_is(F.metas[i], &map_a);
        cr_assert(meta_map_wait(F.metas[i], 0));
        /* What a restart reads back: the same map, without raft. */
        struct meta *again;
        char err[256];
        cr_assert_eq(meta_open(F.dirs[i], &again, err, sizeof err), MC_OK,
                     "%s", err);
        assert_map_is(again, &map_a);
        meta_close(again);
    }
}

Test(meta_fixture, invalid_map_changes_nothing, .init = setup,
     .fini = teardown)
{
    maps_make();
    struct meta_map bad = map_a;
    bad.replica_ids[3][1] = 99; /* not a member */
    propose_init(&bad);
    bad = map_a;
    bad.replica_ids[2][2] = bad.replica_ids[2][0]; /* twice in one shard */
    propose_init(&bad);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        cr_assert_not(meta_map_get(F.metas[i], NULL),
                      "server %u took an invalid map", i);
    }
    propose_init(&map_a);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        assert_map_is(F.metas[i], &map_a);
    }
}

Test(meta_fixture, server_that_missed_the_map_gets_it_by_snapshot,
     .init = setup, .fini = teardown)
{
    maps_make();
    unsigned victim = (leader() + 1) % N_SERVERS;
    raft_fixture_kill(&F.f, victim);
    propose_init(&map_a);
    /* Later proposals (ignored by apply) push the log past the snapshot
     * threshold, so the victim cannot catch up from the log. */
    for (int i = 0; i < 4 * (SNAPSHOT_THRESHOLD + SNAPSHOT_TRAILING); i++) {
        propose_init(&map_b);
    }
    raft_fixture_revive(&F.f, victim);
    raft_index last = raft_last_index(raft_fixture_get(&F.f, leader()));
    cr_assert(raft_fixture_step_until_applied(&F.f, victim, last, 20000),
              "the revived server did not catch up");
    struct raft *vr = raft_fixture_get(&F.f, victim);
    cr_assert_gt(vr->log.snapshot.last_index, 0,
                 "no snapshot was installed on the revived server");
    assert_map_is(F.metas[victim], &map_a);
}

Test(meta, damaged_state_file_is_refused)
{
    char dir[] = "/tmp/mc-meta-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[96];
    snprintf(path, sizeof path, "%s/state", dir);
    struct meta *m;
    char err[256];
    cr_assert_eq(meta_open(dir, &m, err, sizeof err), MC_OK, "%s", err);
    struct raft_fsm *fsm = meta_fsm(m, NULL);
    struct raft_buffer *bufs;
    unsigned n_bufs;
    /* A snapshot taken before the first map restores as no map. */
    cr_assert_eq(fsm->snapshot(fsm, &bufs, &n_bufs), 0);
    cr_assert_eq(fsm->restore(fsm, &bufs[0]), 0); /* restore frees base */
    raft_free(bufs);
    cr_assert_not(meta_map_get(m, NULL));
    meta_close(m);

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "not a state file", 16), 16);
    close(fd);
    cr_assert_eq(meta_open(dir, &m, err, sizeof err), MC_INVALID_ARGUMENT);
    cr_assert(strstr(err, "checksum mismatch") != NULL, "%s", err);
    unlink(path);
    rmdir(dir);
}

/* Replicas and preferred leaders spread evenly over the members. */
Test(placement, spreads_replicas_and_leaders_evenly)
{
    static const uint32_t sizes[] = {1, 2, 3, 5, 7, 64};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        uint32_t n = sizes[t];
        static struct meta_member members[MC_NODES_MAX];
        members_make(members, n);
        static struct meta_map map;
        meta_map_build(members, n, MC_SHARDS_DEFAULT, 3, &map);
        uint32_t hosted[MC_NODES_MAX] = {0}, led[MC_NODES_MAX] = {0};
        uint32_t r = n < 3 ? n : 3;
        cr_assert_eq(map.replicas, r);
        for (uint32_t s = 0; s < map.shard_count; s++) {
            led[map.replica_ids[s][0] - 1]++;
            for (uint32_t k = 0; k < r; k++) {
                cr_assert(meta_map_hosts(&map, s, map.replica_ids[s][k]));
                hosted[map.replica_ids[s][k] - 1]++;
            }
        }
        uint32_t lo = MC_SHARDS_DEFAULT * r / n;
        uint32_t hi = (MC_SHARDS_DEFAULT * r + n - 1) / n;
        for (uint32_t i = 0; i < n; i++) {
            cr_assert(hosted[i] >= lo && hosted[i] <= hi,
                      "%u nodes: node %u hosts %u (want %u..%u)", n, i + 1,
                      hosted[i], lo, hi);
            cr_assert_leq(led[i], (MC_SHARDS_DEFAULT + n - 1) / n);
        }
    }
}
