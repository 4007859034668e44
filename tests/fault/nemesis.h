/* nemesis: the faults of a run on real nodes, each a whole cycle of
 * inject, hold, heal and check:
 *
 *   kill-one        kill -9 of a random node, restart after a while;
 *   kill-leader     kill -9 of the node that leads a random shard; a
 *                   probe writes to that shard through the other nodes
 *                   until one is accepted (the failover time), then the
 *                   node restarts;
 *   kill-all        kill -9 of every node at once, then all restart;
 *   pause-leader    SIGSTOP of a shard leader for several election
 *                   timeouts, then SIGCONT;
 *   isolate-one     a random node cut from everyone, the client too
 *                   (its veth down; through the proxy: its raft links);
 *   isolate-leader  a shard leader cut from the other nodes; the client
 *                   still reaches it and asks it;
 *   split           1|2: a random node cut from the two others, which
 *                   the client still reaches (with 3 nodes the same
 *                   partition as isolate-leader, its victim drawn
 *                   otherwise);
 *   bridge          only the link between two nodes cut: the third
 *                   reaches both.
 *
 * After each heal every node must be ready again (a leader for every
 * shard), and, with the workload held, every replica of every shard must
 * reach the same applied index and state hash within
 * NEMESIS_CONVERGE_MS of the heal. Nodes that exit while nobody killed
 * them are counted as crashes. */
#ifndef MC_TESTS_FAULT_NEMESIS_H
#define MC_TESTS_FAULT_NEMESIS_H

#include <stdbool.h>
#include <stdint.h>

#include "tests/fault/workload.h"
#include "tests/lib/harness.h"

/* Pass criteria (README, issue 5). */
#define NEMESIS_CONVERGE_MS 10000
#define NEMESIS_FAILOVER_MS_MAX 3000
/* The probe of a failover gives up after this. */
#define NEMESIS_PROBE_MS 15000

enum nemesis_kind {
    NEMESIS_KILL_ONE,
    NEMESIS_KILL_LEADER,
    NEMESIS_KILL_ALL,
    NEMESIS_PAUSE_LEADER,
    NEMESIS_ISOLATE_ONE,
    NEMESIS_ISOLATE_LEADER,
    NEMESIS_SPLIT,
    NEMESIS_BRIDGE,
    NEMESIS_KINDS
};

const char *nemesis_name(enum nemesis_kind k);

/* How partitions are made: by net.h in namespaces, or by proxy.h. */
struct nemesis_links {
    void *ctx;
    int (*cut)(void *ctx, unsigned a, unsigned b);
    int (*isolate)(void *ctx, unsigned a);
    int (*heal)(void *ctx);
};

struct nemesis {
    /* The cluster: nodes[i] has node id i + 1. */
    struct mc_node_proc *nodes;
    unsigned n;
    uint32_t n_shards;
    const char *ns;
    struct nemesis_links links; /* ctx NULL: no partitions */
    struct workload *w;         /* held while replicas are compared */
    unsigned seed;
    /* What happened. */
    unsigned count[NEMESIS_KINDS];
    unsigned faults;
    unsigned failovers;
    int64_t failover_ms_max;
    unsigned heals;
    int64_t converge_ms_max;
    unsigned diverged; /* heals after which replicas did not converge */
    unsigned crashes;  /* nodes that exited unasked */
    unsigned errors;   /* a step that could not be done (not ready, ...) */
};

/* One whole cycle of fault k. Returns 0, or -1 when a step of the
 * harness failed (counted in m->errors and printed). */
int nemesis_run(struct nemesis *m, enum nemesis_kind k);

/* Count (and print, with the log's tail) nodes that exited though nobody
 * stopped them; returns how many were found this time. */
unsigned nemesis_check_alive(struct nemesis *m);

/* Wait until every node is ready, then, with the workload held, until
 * every replica agrees, by since_ms + NEMESIS_CONVERGE_MS. Returns the
 * time it took from since_ms, or -1 (why printed). */
int64_t nemesis_converge(struct nemesis *m, int64_t since_ms);

/* The node index that leads shard, or -1 when no running node knows. */
int nemesis_leader_of(struct nemesis *m, uint32_t shard);

#endif
