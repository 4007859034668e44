/* The meta group on real processes: it agrees on one cluster map, every
 * node (voter or standby) holds it, shards are opened from it, a restarted
 * node opens its shards from the map on its own disk, and a damaged map
 * file stops the node with a clear message instead of a guess. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memcoord.h"
#include "tests/lib/harness.h"

#define NS "meta"
#define SHARDS 8

static mc_client *client_of(const char *endpoints, int timeout_ms)
{
    mc_options o = {.timeout_ms = timeout_ms};
    mc_client *c;
    mc_result res;
    cr_assert_eq(mc_client_open(endpoints, &o, &c, &res), MC_OK, "%s",
                 res.message);
    return c;
}

static mc_status *status_of(const struct mc_node_proc *n)
{
    mc_client *c = client_of(n->url, 3000);
    mc_status *st = NULL;
    mc_result res;
    cr_assert_eq(mc_status_get(c, &st, &res), MC_OK, "status of %s: %s",
                 n->url, res.message);
    mc_client_close(c);
    return st;
}

/* Six nodes: the meta group votes on the first five; node 6 is a standby
 * that still learns the map and the meta leader. Each node hosts exactly
 * the shards the map places on it, and serves every shard. */
Test(meta, six_nodes_share_one_map_with_a_standby, .fini = harness_fini,
     .timeout = 120)
{
    enum { N = 6 };
    static struct mc_node_proc nodes[N];
    cr_assert_eq(harness_cluster_start(nodes, N, "--replicas", "3", NULL), 0);
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(harness_node_wait_ready(&nodes[i], HARNESS_READY_MS), 0,
                     "node %u not ready", i + 1);
    }
    uint64_t meta_leader = 0;
    /* Per shard: its replica list as the map says (from the first node
     * that hosts it) and the nodes that host it. */
    uint64_t replicas[SHARDS][MC_REPLICAS_MAX] = {{0}};
    uint64_t hosted_by[SHARDS] = {0}; /* bit id - 1 */
    unsigned hosted[N + 1] = {0}, preferred[N + 1] = {0};
    for (unsigned i = 0; i < N; i++) {
        mc_status *st = status_of(&nodes[i]);
        cr_assert_eq(st->shard_count, SHARDS);
        cr_assert_eq(st->n_members, N, "node %u sees %zu members", i + 1,
                     st->n_members);
        cr_assert_eq(st->meta_voter, i < 5, "node %u: meta voter %d", i + 1,
                     st->meta_voter);
        /* Every node, the standby too, follows the same meta leader. */
        for (int64_t deadline = harness_now_ms() + 5000;
             st->meta_leader_id == 0 && harness_now_ms() < deadline;) {
            mc_status_free(st);
            harness_pause_ms(50);
            st = status_of(&nodes[i]);
        }
        cr_assert_neq(st->meta_leader_id, 0, "node %u knows no meta leader",
                      i + 1);
        cr_assert_leq(st->meta_leader_id, 5, "a standby leads the meta group");
        if (meta_leader == 0) {
            meta_leader = st->meta_leader_id;
        }
        cr_assert_eq(st->meta_leader_id, meta_leader,
                     "node %u follows meta leader %llu, node 1 %llu", i + 1,
                     (unsigned long long)st->meta_leader_id,
                     (unsigned long long)meta_leader);
        for (size_t k = 0; k < st->n_shards; k++) {
            const mc_shard_status *ss = &st->shards[k];
            cr_assert_lt(ss->id, SHARDS);
            cr_assert_eq(ss->n_replicas, 3);
            if (hosted_by[ss->id] == 0) {
                memcpy(replicas[ss->id], ss->replicas, sizeof replicas[0]);
                preferred[ss->replicas[0]]++;
            }
            cr_assert_arr_eq(replicas[ss->id], ss->replicas,
                             sizeof replicas[0],
                             "node %u has another map of shard %u", i + 1,
                             ss->id);
            hosted_by[ss->id] |= 1ull << i;
            hosted[i + 1]++;
        }
        mc_status_free(st);
    }
    /* The shards are where the map puts them, spread evenly: 8 shards x 3
     * replicas over 6 nodes is 4 each, and at most 2 preferred leaders. */
    for (uint32_t s = 0; s < SHARDS; s++) {
        uint64_t want = 0;
        for (unsigned k = 0; k < 3; k++) {
            want |= 1ull << (replicas[s][k] - 1);
        }
        cr_assert_eq(hosted_by[s], want, "shard %u is hosted by %llx, the "
                     "map says %llx", s, (unsigned long long)hosted_by[s],
                     (unsigned long long)want);
    }
    for (unsigned id = 1; id <= N; id++) {
        cr_assert_eq(hosted[id], 4, "node %u hosts %u replicas", id,
                     hosted[id]);
        cr_assert_leq(preferred[id], 2, "node %u is preferred for %u shards",
                      id, preferred[id]);
    }
    /* The standby takes requests for every shard, none of them its own. */
    mc_client *c = client_of(nodes[5].url, 5000);
    for (uint32_t s = 0; s < SHARDS; s++) {
        char key[64];
        harness_key_in_shard(NS, SHARDS, "standby", s, key, sizeof key);
        mc_result res;
        cr_assert_eq(mc_put(c, NS, key, key, strlen(key), NULL, &res), MC_OK,
                     "shard %u via node 6: %s", s, res.message);
    }
    mc_client_close(c);
}

/* After the whole cluster stops, one node alone comes back and serves its
 * status from the map on its disk: it needs no meta quorum to know which
 * shards it holds. */
Test(meta, restarted_node_opens_its_shards_from_disk, .fini = harness_fini,
     .timeout = 90)
{
    enum { N = 3 };
    static struct mc_node_proc nodes[N];
    cr_assert_eq(harness_cluster_start(nodes, N, NULL), 0);
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(harness_node_wait_ready(&nodes[i], HARNESS_READY_MS), 0);
    }
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(harness_node_stop(&nodes[i], SIGTERM), 0);
    }
    cr_assert_eq(harness_node_restart(&nodes[0]), 0);
    mc_options o = {.timeout_ms = 500};
    mc_client *c;
    mc_result res;
    cr_assert_eq(mc_client_open(nodes[0].url, &o, &c, &res), MC_OK);
    mc_status *st = NULL;
    for (int64_t deadline = harness_now_ms() + 10000;
         mc_status_get(c, &st, &res) != MC_OK;) {
        cr_assert_lt(harness_now_ms(), deadline,
                     "node 1 alone does not serve: %s", res.message);
        harness_pause_ms(50);
    }
    cr_assert_eq(st->shard_count, SHARDS);
    cr_assert_eq(st->n_members, N);
    cr_assert_eq(st->n_shards, SHARDS, "node 1 hosts %zu shards",
                 st->n_shards);
    mc_status_free(st);
    mc_client_close(c);
    /* The others return; the cluster serves writes again. */
    for (unsigned i = 1; i < N; i++) {
        cr_assert_eq(harness_node_restart(&nodes[i]), 0);
    }
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(harness_node_wait_ready(&nodes[i], HARNESS_READY_MS), 0);
    }
    c = client_of(nodes[0].url, 5000);
    cr_assert_eq(mc_put(c, NS, "after", "x", 1, NULL, &res), MC_OK, "%s",
                 res.message);
    mc_client_close(c);
}

/* A map file that does not check out stops the node at start, naming the
 * file; the node never guesses a map. */
Test(meta, damaged_map_file_stops_the_node, .fini = harness_fini,
     .timeout = 60)
{
    static struct mc_node_proc n; /* the harness keeps a pointer */
    cr_assert_eq(harness_node_start(&n, NULL), 0);
    cr_assert_eq(harness_node_wait_ready(&n, HARNESS_READY_MS), 0);
    cr_assert_eq(harness_node_stop(&n, SIGTERM), 0);
    char path[HARNESS_PATH_BYTES_MAX + 32];
    snprintf(path, sizeof path, "%s/meta/state", n.dir);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0, "%s", path);
    off_t size = lseek(fd, 0, SEEK_END);
    cr_assert_gt(size, 16);
    unsigned char b;
    cr_assert_eq(pread(fd, &b, 1, size / 2), 1);
    b ^= 0x40;
    cr_assert_eq(pwrite(fd, &b, 1, size / 2), 1);
    close(fd);
    cr_assert_eq(harness_node_restart(&n), 0);
    int status = harness_node_wait_exit(&n, 10000);
    cr_assert_eq(status, 1, "the node did not stop with status 1 (%d)",
                 status);
    FILE *f = fopen(n.log, "r");
    cr_assert_not_null(f);
    static char log[256 * 1024];
    log[fread(log, 1, sizeof log - 1, f)] = '\0';
    fclose(f);
    cr_assert(strstr(log, "meta/state: checksum mismatch") != NULL,
              "the log does not say why");
}
