/* memcoord: the node daemon. `memcoord --data DIR` alone starts a
 * single-node cluster on the embedded default. SIGTERM or SIGINT stop it
 * cleanly: no new requests, in-flight ones finished, raft closed, LMDB
 * committed, exit 0. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "node/node.h"

/* Before the cluster map is known: how often signals are checked, and how
 * often the node says what it waits for. */
#define MAP_WAIT_TICK_MS 50
#define MAP_WAIT_LOG_MS 5000

/* Large blocks from glibc in mappings of their own, given back when freed,
 * and the free top of every arena given back beyond a few MiB.
 * Setting these turns off glibc's dynamic thresholds, which rose with the
 * first multi-MiB block freed (a snapshot, compressed or read by raft_uv
 * on its thread pool) and then kept each such block, once freed, in the
 * freeing thread's arena: the pool's arenas grew with the shards, 48 B of
 * resident memory per record in make bench, and malloc_trim does not
 * trim another thread's arena's top. */
#define MALLOC_MMAP_BYTES (1 << 20)
#define MALLOC_TRIM_BYTES (2 << 20)

static void malloc_policy(void)
{
    if (mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_BYTES) != 1 ||
        mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_BYTES) != 1) {
        LOG_WARN("mallopt refused; freed memory may stay in glibc's arenas");
    }
}

int main(int argc, char **argv)
{
    struct node_config cfg;
    bool help;
    char err[512];
    if (node_config_parse(argc, argv, &cfg, &help, err, sizeof err) != MC_OK) {
        fprintf(stderr, "memcoord: %s\n", err);
        node_config_usage(stderr);
        return 2;
    }
    if (help) {
        node_config_usage(stdout);
        return 0;
    }
    base_log_level = cfg.log_level;
    malloc_policy();
    cons_heap_init(); /* before any raft group: snapshots in huge pages */

    /* Every thread inherits this mask; only sigwait below sees the
     * signals, so no handler runs on a loop or nng thread. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    static struct node node; /* large: keep it off the stack */
    if (node_start(&node, &cfg, err, sizeof err) != MC_OK) {
        LOG_ERROR("start failed: %s", err);
        return 1;
    }
    /* A new cluster has a map once a quorum of the meta group is up; a
     * restarted node has one on disk. Signals still stop the wait. */
    int sig = 0;
    for (int64_t since = base_mono_ms(); !node_wait_map(&node, 0);) {
        const struct timespec tick = {0, MAP_WAIT_TICK_MS * 1000000L};
        sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig > 0) {
            LOG_INFO("stopping before serving signal=%s",
                     sig == SIGTERM ? "TERM" : "INT");
            node_stop(&node);
            return 0;
        }
        if (base_mono_ms() - since >= MAP_WAIT_LOG_MS) {
            LOG_INFO("waiting for the meta group to agree on the cluster map "
                     "(a quorum of its first %u members must be up)",
                     META_VOTERS_MAX);
            since = base_mono_ms();
        }
    }
    if (node_serve(&node, err, sizeof err) != MC_OK) {
        LOG_ERROR("start failed: %s", err);
        node_stop(&node);
        return 1;
    }
    LOG_INFO("serving node=%llu listen=%s raft=%s shards=%u loops=%u data=%s",
             (unsigned long long)cfg.node_id, cfg.listen, cfg.raft_addr,
             node.cfg.shards, node.n_loops, cfg.data);
    sigwait(&sigs, &sig);
    LOG_INFO("stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
    node_stop(&node);
    LOG_INFO("stopped");
    return 0;
}
