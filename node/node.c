/* The node: starts its replica of the meta group, waits for the cluster
 * map, spreads the shard replicas the map places here (a single-node
 * cluster hosts them all) over the loop threads, which open them side by
 * side, then starts the front end. Stops in the reverse order. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/node.h"

/* raft_uv takes about 8 descriptors per replica (DEPS-NOTES.md, raft 12):
 * ask for as many as the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            LOG_WARN("could not raise the descriptor limit");
        }
    }
}

/* mkdir -p: the data folder and any missing parents, as etcd does. */
static mc_err mkdir_p(const char *path, char *err, size_t err_len)
{
    char p[MC_PATH_BYTES_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *c = p + 1;; c++) {
        bool end = *c == '\0';
        if (*c == '/' || end) {
            *c = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                base_errf(err, err_len, "mkdir %s: %s", p, strerror(errno));
                return MC_INTERNAL;
            }
            if (end) {
                return MC_OK;
            }
            *c = '/';
        }
    }
}

static void node_free_replicas(struct node *n)
{
    for (uint32_t s = 0; s < MC_SHARDS_MAX; s++) {
        if (n->replicas[s] != NULL) {
            replica_free(n->replicas[s]);
            n->replicas[s] = NULL;
        }
    }
}

/* Place the replicas the map gives this node on the loops, unopened: each
 * loop's thread opens its own (loop_run). */
static mc_err place_replicas(struct node *n, char *err, size_t err_len)
{
    for (uint32_t s = 0; s < n->map.shard_count; s++) {
        if (!meta_map_hosts(&n->map, s, n->cfg.node_id)) {
            continue;
        }
        /* Shard s on loop s % loops of every node: the loops' raft
         * transports pair lane k with lane k (consensus.h). */
        struct node_loop *l = &n->loops[s % n->n_loops];
        struct node_replica *r = mc_calloc(1, sizeof *r);
        if (r == NULL) {
            base_errf(err, err_len, "out of memory");
            return MC_INTERNAL;
        }
        r->id = s;
        n->replicas[s] = r;
        l->replicas[l->n_replicas++] = r;
    }
    return MC_OK;
}

mc_err node_start(struct node *n, const struct node_config *cfg, char *err,
                  size_t err_len)
{
    memset(n, 0, sizeof *n);
    n->cfg = *cfg;
    n->start_ms = base_mono_ms();
    raise_fd_limit();
    if (mkdir_p(cfg->data, err, err_len) != MC_OK) {
        return MC_INTERNAL;
    }
    mc_err rv = node_meta_start(&n->meta, n, err, err_len);
    if (rv != MC_OK) {
        node_meta_stop(&n->meta);
    }
    return rv;
}

bool node_wait_map(struct node *n, int timeout_ms)
{
    return meta_map_wait(n->meta.state, timeout_ms);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* <data>/lanes: the number of loops the data folder was made with, in
 * decimal, written once before any raft log (tmp, fsync, rename). */
static mc_err lanes_file(const char *data, unsigned *lanes, bool write,
                         char *err, size_t err_len)
{
    char path[MC_PATH_BYTES_MAX + 16], tmp[MC_PATH_BYTES_MAX + 16];
    snprintf(path, sizeof path, "%s/lanes", data);
    if (!write) {
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            *lanes = 0;
            return MC_OK;
        }
        int got = fscanf(f, "%u", lanes);
        fclose(f);
        if (got != 1 || *lanes == 0 || *lanes > MC_LOOPS_MAX) {
            base_errf(err, err_len, "%s is damaged", path);
            return MC_INTERNAL;
        }
        return MC_OK;
    }
    snprintf(tmp, sizeof tmp, "%s/lanes.tmp", data);
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL && fprintf(f, "%u\n", *lanes) > 0 && fflush(f) == 0 &&
              fsync(fileno(f)) == 0;
    if (f != NULL) {
        ok = fclose(f) == 0 && ok;
    }
    if (!ok || rename(tmp, path) != 0) {
        base_errf(err, err_len, "write %s: %s", path, strerror(errno));
        return MC_INTERNAL;
    }
    return MC_OK;
}

/* How many loops: --loops for a new data folder; afterwards the number it
 * was made with, since shard s keeps its raft log in lane s % loops
 * (consensus.h). A folder of a memcoord from before the lanes (a raft_uv
 * log per shard) is refused rather than bootstrapped again. */
static mc_err lanes_choose(struct node *n, char *err, size_t err_len)
{
    const struct node_config *cfg = &n->cfg;
    unsigned have;
    mc_err rv = lanes_file(cfg->data, &have, false, err, err_len);
    if (rv != MC_OK) {
        return rv;
    }
    char old[MC_PATH_BYTES_MAX + 32];
    snprintf(old, sizeof old, "%s/shard-0/raft", cfg->data);
    if (have == 0 && is_dir(old)) {
        base_errf(err, err_len, "%s holds the raft logs of an older memcoord "
                  "(one per shard, raft_uv); this version keeps one per "
                  "loop: start this node on an empty data folder and let it "
                  "catch up from the others", cfg->data);
        return MC_INVALID_ARGUMENT;
    }
    unsigned want = cfg->loops < cfg->shards ? cfg->loops : cfg->shards;
    if (have == 0) {
        have = want;
        rv = lanes_file(cfg->data, &have, true, err, err_len);
    } else if (have != want) {
        LOG_WARN("%s was made with %u loops; --loops %u applies only to a new "
                 "data folder", cfg->data, have, cfg->loops);
    }
    n->n_loops = have;
    return rv;
}

mc_err node_serve(struct node *n, char *err, size_t err_len)
{
    struct node_config *cfg = &n->cfg;
    bool has = meta_map_get(n->meta.state, &n->map);
    ASSERT(has);
    if (node_member(n, cfg->node_id) == NULL) {
        base_errf(err, err_len, "node %llu is not a member of the cluster "
                  "map in %s/meta", (unsigned long long)cfg->node_id,
                  cfg->data);
        return MC_INVALID_ARGUMENT;
    }
    uint32_t replicas = cfg->replicas < n->map.n_members ? cfg->replicas
                                                         : n->map.n_members;
    if (cfg->shards != n->map.shard_count || replicas != n->map.replicas) {
        LOG_WARN("the cluster map has %u shards of %u replicas; --shards %u "
                 "and --replicas %u apply only to a new cluster",
                 n->map.shard_count, n->map.replicas, cfg->shards,
                 cfg->replicas);
    }
    cfg->shards = n->map.shard_count;
    cfg->replicas = n->map.replicas;
    mc_err rv = lanes_choose(n, err, err_len);
    for (unsigned i = 0; i < n->n_loops && rv == MC_OK; i++) {
        rv = loop_init(&n->loops[i], n, i, err, err_len);
    }
    if (rv == MC_OK) {
        rv = place_replicas(n, err, err_len);
    }
    unsigned started = 0;
    while (started < n->n_loops && rv == MC_OK) {
        rv = loop_run(&n->loops[started], err, err_len);
        started += rv == MC_OK;
    }
    /* Every started loop is waited for, so that none still opens when
     * node_stop frees the replicas. */
    for (unsigned i = 0; i < started; i++) {
        char why[sizeof n->loops[i].open_err];
        mc_err orv = loop_wait_open(&n->loops[i], why, sizeof why);
        if (orv != MC_OK && rv == MC_OK) {
            rv = orv;
            base_errf(err, err_len, "%s", why);
        }
    }
    if (rv == MC_OK) {
        rv = frontend_start(&n->fe, n, err, err_len);
    }
    return rv;
}

const struct meta_member *node_member(const struct node *n, uint64_t id)
{
    return meta_map_member(&n->map, id);
}

void node_stop(struct node *n)
{
    /* Let in-flight requests finish while raft still runs. */
    if (n->fe.works != NULL) {
        frontend_drain(&n->fe, FRONTEND_DRAIN_MS);
    }
    for (unsigned i = 0; i < n->n_loops; i++) {
        if (n->loops[i].node != NULL) {
            loop_stop(&n->loops[i]);
        }
    }
    frontend_close(&n->fe);
    node_free_replicas(n);
    for (unsigned i = 0; i < n->n_loops; i++) {
        loop_fini(&n->loops[i]);
    }
    node_meta_stop(&n->meta);
}

void node_status(struct node *n, struct status_scratch *s)
{
    mcpb__node_status__init(&s->status);
    s->status.has_node_id = s->status.has_uptime_ms = true;
    s->status.node_id = n->cfg.node_id;
    s->status.version = (char *)MC_VERSION;
    s->status.listen = n->cfg.listen;
    s->status.uptime_ms = (uint64_t)(base_mono_ms() - n->start_ms);
    s->status.has_meta_leader = s->status.has_meta_term = true;
    s->status.has_meta_voter = true;
    s->status.meta_leader = atomic_load(&n->meta.st_leader);
    s->status.meta_term = atomic_load(&n->meta.st_term);
    s->status.meta_voter = n->meta.voter;
    size_t k = 0;
    for (uint32_t id = 0; id < n->map.shard_count; id++) {
        struct node_replica *r = n->replicas[id];
        if (r == NULL) {
            continue;
        }
        Mcpb__ShardStatus *ss = &s->shards[k];
        mcpb__shard_status__init(ss);
        ss->id = id;
        uint32_t lo, hi;
        proto_slot_range(id, n->map.shard_count, &lo, &hi);
        ss->has_slot_lo = ss->has_slot_hi = true;
        ss->slot_lo = lo;
        ss->slot_hi = hi;
        ss->has_leader_id = ss->has_term = ss->has_applied_index = true;
        ss->leader_id = atomic_load(&r->st_leader);
        ss->term = atomic_load(&r->st_term);
        ss->applied_index = atomic_load(&r->st_applied);
        ss->has_last_index = ss->has_is_leader = true;
        ss->last_index = atomic_load(&r->st_last);
        ss->is_leader = atomic_load(&r->st_is_leader);
        ss->has_applied_entries = ss->has_skipped_entries = true;
        ss->applied_entries = atomic_load(&r->st_applied_entries);
        ss->skipped_entries = atomic_load(&r->st_skipped_entries);
        for (int t = 0; t < 3; t++) {
            s->records[k][t] = atomic_load(&r->st_records[t + 1]);
        }
        ss->records = s->records[k];
        ss->n_records = 3;
        ss->replicas = r->replica_ids;
        ss->n_replicas = r->n_replica_ids;
        s->ptrs[k] = ss;
        k++;
    }
    s->status.shards = s->ptrs;
    s->status.n_shards = k;
    s->status.has_shard_count = true;
    s->status.shard_count = n->map.shard_count;
    for (uint32_t i = 0; i < n->map.n_members; i++) {
        meta_member_to_pb(&n->map.members[i], &s->members[i],
                          s->raft_addrs[i], sizeof s->raft_addrs[i]);
        s->member_ptrs[i] = &s->members[i];
    }
    s->status.members = s->member_ptrs;
    s->status.n_members = n->map.n_members;
}
