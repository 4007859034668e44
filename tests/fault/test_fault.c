/* The fault suite on real nodes: a 3-node cluster (8 shards of 3
 * replicas), each node in a network namespace of its own on a private
 * bridge, under the register and append workloads (workload.h, every
 * operation recorded by history.h), through kills, pauses and partitions
 * (nemesis.h). Where namespaces cannot be made (not root, no iproute2)
 * the run says so loudly and makes its partitions with a user-space TCP
 * proxy between the nodes' raft ports instead (proxy.h).
 *
 * A run passes when (README, "The fault suite"):
 *   - at least FAULTS_MIN faults were injected and OPS_MIN operations made
 *     (the CI run; a soak run has its own length);
 *   - no acknowledged write is lost (final reads against what was
 *     acknowledged) and checker.py finds every key linearizable (an
 *     unknown verdict fails);
 *   - after every heal, replicas agree within NEMESIS_CONVERGE_MS;
 *   - after every leader kill, writes are accepted again within
 *     NEMESIS_FAILOVER_MS_MAX;
 *   - the watch (workload.h) received events, was never answered
 *     COMPACTED, saw every acknowledged register write by the end, and
 *     checker.py's watch check finds no event missing, repeated, out of
 *     order or invented;
 *   - no node exits unasked, every node exits 0 on SIGTERM at the end, and
 *     no node log holds an assertion or a sanitizer report.
 * It prints one summary line, "fault: ...".
 *
 * fault/ci runs each nemesis once in a fixed order (make test-fault);
 * fault/soak runs random ones for $MEMCOORD_SOAK_MINUTES (make soak).
 * Everything started is stopped by pid; namespaces, links and the bridge
 * are removed by the test's .fini, and leftovers of a crashed run (by
 * their name prefix and dead owner) at the start of the next and after
 * the whole suite. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memcoord.h"
#include "tests/fault/history.h"
#include "tests/fault/nemesis.h"
#include "tests/fault/net.h"
#include "tests/fault/proxy.h"
#include "tests/fault/workload.h"
#include "tests/lib/harness.h"

#define NODES 3
#define SHARDS 8
#define NS "fault"
#define FAULTS_MIN 6
#define OPS_MIN 6000
/* Load between faults, and before the first. */
#define CALM_MS 1500
/* The watch is reopened from its resume token this often. */
#define WATCH_REOPEN_MS 5000
#define WARMUP_MS 2000
#define VERIFY_MS 60000
/* The checker's search budget per key, and its whole run. */
#define CHECK_BUDGET_S 60
#define CHECK_TIMEOUT_S 600

static struct mc_node_proc nodes[NODES];
static struct net net;
static struct proxy *proxy;

static void cleanup(void)
{
    harness_fini();
    proxy_stop(proxy);
    proxy = NULL;
    net_teardown(&net);
}

static void fault_init(void)
{
    net_sweep(); /* leftovers of a run that crashed */
    atexit(cleanup);
}

static void fault_fini(void)
{
    cleanup();
}

/* After the whole suite, in the runner: what workers that crashed left. */
ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    net_sweep();
}

/* ---- partitions through net.h or proxy.h ---- */

static int net_cut_cb(void *ctx, unsigned a, unsigned b)
{
    return net_cut(ctx, a, b);
}
static int net_isolate_cb(void *ctx, unsigned a)
{
    return net_isolate(ctx, a);
}
static int net_heal_cb(void *ctx)
{
    return net_heal(ctx);
}
static int proxy_cut_cb(void *ctx, unsigned a, unsigned b)
{
    return proxy_cut(ctx, a, b);
}
static int proxy_isolate_cb(void *ctx, unsigned a)
{
    int rv = 0;
    for (unsigned i = 0; i < NODES; i++) {
        rv |= i != a ? proxy_cut(ctx, a, i) : 0;
    }
    return rv;
}
static int proxy_heal_cb(void *ctx)
{
    return proxy_heal(ctx);
}

/* Start the cluster in namespaces, or on loopback behind the proxy. */
static const char *cluster_start(struct nemesis_links *links)
{
    static const char *const extra[] = {"--snapshot-threshold", "512",
                                        "--snapshot-trailing", "128"};
    char why[256] = "MEMCOORD_FAULT_PROXY is set";
    struct harness_place places[NODES] = {{0}};
    if (getenv("MEMCOORD_FAULT_PROXY") == NULL &&
        net_setup(&net, NODES, why, sizeof why) == 0) {
        for (unsigned i = 0; i < NODES; i++) {
            places[i] = (struct harness_place){.netns = net.ns[i],
                                               .ip = net.ip[i]};
        }
        cr_assert_eq(harness_cluster_start_at(nodes, NODES, places, extra[0],
                                              extra[1], extra[2], extra[3],
                                              NULL),
                     0);
        *links = (struct nemesis_links){&net, net_cut_cb, net_isolate_cb,
                                        net_heal_cb};
        return "netns";
    }
    fprintf(stderr,
            "\n"
            "**********************************************************\n"
            "fault: NO NETWORK NAMESPACES: %s.\n"
            "fault: partitions go through a user-space TCP proxy between\n"
            "fault: the nodes' raft ports instead: they cut raft links,\n"
            "fault: not client traffic or forwarding.\n"
            "**********************************************************\n\n",
            why);
    for (unsigned i = 0; i < NODES; i++) {
        places[i] = (struct harness_place){.raft_bind_apart = true};
    }
    cr_assert_eq(harness_cluster_start_at(nodes, NODES, places, extra[0],
                                          extra[1], extra[2], extra[3], NULL),
                 0);
    int from[NODES], to[NODES];
    for (unsigned i = 0; i < NODES; i++) {
        from[i] = nodes[i].raft_port;
        to[i] = nodes[i].raft_bind_port;
    }
    proxy = proxy_start(NODES, SHARDS + 1, from, to);
    cr_assert_not_null(proxy, "the proxy did not start");
    *links = (struct nemesis_links){proxy, proxy_cut_cb, proxy_isolate_cb,
                                    proxy_heal_cb};
    return "proxy";
}

/* Lines of node logs that name an assertion or a sanitizer report. */
static unsigned log_reports(void)
{
    static const char *const needles[] = {"ssertion", "AddressSanitizer",
                                          "LeakSanitizer", "runtime error:"};
    unsigned found = 0;
    for (unsigned i = 0; i < NODES; i++) {
        FILE *f = fopen(nodes[i].log, "r");
        if (f == NULL) {
            continue;
        }
        char line[4096];
        while (fgets(line, sizeof line, f) != NULL) {
            for (size_t k = 0; k < sizeof needles / sizeof needles[0]; k++) {
                if (strstr(line, needles[k]) != NULL) {
                    fprintf(stderr, "fault: node %u log: %s", i + 1, line);
                    found++;
                    break;
                }
            }
        }
        fclose(f);
    }
    return found;
}

struct plan {
    const char *name;
    const enum nemesis_kind *kinds; /* in order; NULL: random */
    size_t n_kinds;
    int64_t minutes; /* random plans: how long */
    unsigned faults_min;
    uint64_t ops_min;
};

static bool plan_more(const struct plan *p, unsigned done, int64_t end_ms)
{
    return p->kinds != NULL ? done < p->n_kinds : harness_now_ms() < end_ms;
}

static void run(const struct plan *p)
{
    int64_t t0 = harness_now_ms();
    struct nemesis_links links;
    const char *mode = cluster_start(&links);
    for (unsigned i = 0; i < NODES; i++) {
        cr_assert_eq(harness_node_wait_ready(&nodes[i], HARNESS_READY_MS), 0,
                     "node %u not ready", i + 1);
    }
    char endpoints[NODES * (HARNESS_URL_BYTES_MAX + 1)] = "";
    for (unsigned i = 0; i < NODES; i++) {
        strcat(endpoints, i > 0 ? "," : "");
        strcat(endpoints, nodes[i].url);
    }
    const char *dir = getenv("MEMCOORD_TEST_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/fault-%s-%d.jsonl",
             dir != NULL ? dir : "/tmp", p->name, (int)getpid());
    struct history *h = history_open(path);
    cr_assert_not_null(h);
    struct workload_config wc = {
        .endpoints = endpoints,
        .ns = NS,
        .n_shards = SHARDS,
        .register_threads = 4,
        .append_threads = 2,
        .register_slots_per_shard = 2,
        .append_slots_per_shard = 1,
        .ops_per_key = 200,
        .timeout_ms = 2000,
        .watch = true,
        .watch_reopen_ms = WATCH_REOPEN_MS,
    };
    struct workload *w = workload_start(&wc, h);
    cr_assert_not_null(w);
    struct nemesis m = {.nodes = nodes,
                        .n = NODES,
                        .n_shards = SHARDS,
                        .ns = NS,
                        .links = links,
                        .w = w,
                        .seed = getenv("MEMCOORD_FAULT_SEED") != NULL
                                    ? (unsigned)atoi(getenv("MEMCOORD_FAULT_SEED"))
                                    : (unsigned)getpid() ^ (unsigned)t0};
    fprintf(stderr, "fault: %s run, mode %s, nemesis seed %u, history %s\n",
            p->name, mode, m.seed, path);
    harness_pause_ms(WARMUP_MS);
    int64_t end_ms = t0 + p->minutes * 60000;
    for (unsigned done = 0; plan_more(p, done, end_ms); done++) {
        enum nemesis_kind k = p->kinds != NULL
                                  ? p->kinds[done]
                                  : (enum nemesis_kind)(
                                        (unsigned)rand_r(&m.seed) %
                                        NEMESIS_KINDS);
        if (nemesis_run(&m, k) != 0 && m.crashes == 0 && m.errors > 3) {
            break; /* the harness itself is failing: stop and report */
        }
        harness_pause_ms(CALM_MS);
    }
    /* The end: everything healed and up, the workload stopped, every key
     * read once more. */
    links.heal(links.ctx);
    nemesis_check_alive(&m);
    workload_stop(w);
    uint64_t unread;
    uint64_t lost = workload_verify(w, harness_now_ms() + VERIFY_MS, &unread);
    m.w = NULL;
    int64_t converge = nemesis_converge(&m, harness_now_ms());
    nemesis_check_alive(&m);
    unsigned bad_exits = 0;
    for (unsigned i = 0; i < NODES; i++) {
        int code = harness_node_stop(&nodes[i], SIGTERM);
        if (code != 0) {
            fprintf(stderr, "fault: node %u exited %d on SIGTERM\n", i + 1,
                    code);
            harness_node_log_tail(&nodes[i], 30);
            bad_exits++;
        }
    }
    unsigned reports = log_reports();
    struct workload_counts wcount;
    workload_counts_get(w, &wcount);
    struct history_counts hc;
    history_counts_get(h, &hc);
    workload_free(w);
    cr_assert_eq(history_close(h), 0);

    char verdict[256] = "";
    const char *paths[] = {path};
    int check = history_check(NULL, paths, 1, CHECK_BUDGET_S, CHECK_TIMEOUT_S,
                              verdict, sizeof verdict);
    char kinds[256] = "";
    for (unsigned k = 0; k < NEMESIS_KINDS; k++) {
        if (m.count[k] > 0) {
            size_t used = strlen(kinds);
            snprintf(kinds + used, sizeof kinds - used, "%s%s %u",
                     used > 0 ? ", " : "", nemesis_name((enum nemesis_kind)k),
                     m.count[k]);
        }
    }
    const char *cv = strstr(verdict, "keys=");
    fprintf(stderr,
            "fault: %s mode=%s %llds faults=%u (%s) ops=%" PRIu64
            " ok=%" PRIu64 " fail=%" PRIu64 " info=%" PRIu64
            " acked-writes=%" PRIu64 " lost=%" PRIu64 " unread=%" PRIu64
            " %s checker-exit=%d failover-max=%lldms/%u "
            "converged=%u/%u (max %lldms) crashes=%u bad-exits=%u "
            "log-reports=%u unexpected=%" PRIu64 " harness-errors=%u "
            "watch-received=%" PRIu64 " watch-reopens=%" PRIu64
            " watch-compacted=%" PRIu64 " watch-errors=%" PRIu64
            " watch-behind=%" PRIu64 "\n",
            p->name, mode, (long long)(harness_now_ms() - t0) / 1000, m.faults,
            kinds, hc.ops, hc.ok, hc.fail, hc.info, wcount.acked_writes, lost,
            unread, cv != NULL ? cv : "keys=? (no checker verdict)", check,
            (long long)m.failover_ms_max, m.failovers, m.heals - m.diverged,
            m.heals, (long long)m.converge_ms_max, m.crashes, bad_exits,
            reports, hc.unexpected, m.errors, wcount.watch_events,
            wcount.watch_reopens, wcount.watch_compacted,
            wcount.watch_errors, wcount.watch_behind);

    cr_expect_geq(m.faults, p->faults_min, "only %u faults", m.faults);
    cr_expect_geq(hc.ops, p->ops_min, "only %" PRIu64 " operations", hc.ops);
    cr_expect_eq(lost, 0, "%" PRIu64 " acknowledged writes lost", lost);
    cr_expect_eq(unread, 0, "%" PRIu64 " keys could not be read at the end",
                 unread);
    cr_expect_eq(check, 0, "checker: %s", verdict);
    cr_expect_eq(m.diverged, 0, "replicas did not converge after %u heals",
                 m.diverged);
    cr_expect_geq(converge, 0, "replicas differ at the end");
    cr_expect_leq(m.failover_ms_max, NEMESIS_FAILOVER_MS_MAX,
                  "a failover took %lld ms", (long long)m.failover_ms_max);
    cr_expect_eq(m.crashes, 0, "%u nodes crashed", m.crashes);
    cr_expect_eq(bad_exits, 0);
    cr_expect_eq(reports, 0, "assertions or sanitizer reports in node logs");
    cr_expect_eq(hc.unexpected, 0, "answers no call should give");
    cr_expect_eq(m.errors, 0, "steps of the run failed");
    cr_expect_gt(wcount.watch_events, 0, "the watch received no event");
    cr_expect_eq(wcount.watch_compacted, 0,
                 "the watch was answered COMPACTED: the watch check would "
                 "be vacuous");
    cr_expect_eq(wcount.watch_behind, 0,
                 "the watch never saw %" PRIu64 " keys' last acknowledged "
                 "writes", wcount.watch_behind);
    bool passed = m.faults >= p->faults_min && hc.ops >= p->ops_min &&
                  lost == 0 && unread == 0 && check == 0 && m.diverged == 0 &&
                  converge >= 0 &&
                  m.failover_ms_max <= NEMESIS_FAILOVER_MS_MAX &&
                  m.crashes == 0 && bad_exits == 0 && reports == 0 &&
                  hc.unexpected == 0 && m.errors == 0 &&
                  wcount.watch_events > 0 && wcount.watch_compacted == 0 &&
                  wcount.watch_behind == 0;
    if (passed && getenv("MEMCOORD_TEST_KEEP") == NULL) {
        unlink(path); /* a failed run keeps its history as evidence */
    }
}

static const enum nemesis_kind ci_kinds[] = {
    NEMESIS_KILL_LEADER,    NEMESIS_PAUSE_LEADER, NEMESIS_ISOLATE_LEADER,
    NEMESIS_KILL_ONE,       NEMESIS_SPLIT,        NEMESIS_ISOLATE_ONE,
    NEMESIS_BRIDGE,         NEMESIS_KILL_LEADER,  NEMESIS_KILL_ALL,
};

/* $MEMCOORD_FAULT_PLAN ("kill-leader,bridge,...") in place of ci_kinds:
 * to replay one kind of fault over and over. */
static size_t plan_from_env(enum nemesis_kind *kinds, size_t max)
{
    const char *env = getenv("MEMCOORD_FAULT_PLAN");
    size_t n = 0;
    for (const char *p = env; p != NULL && *p != '\0' && n < max;) {
        size_t len = strcspn(p, ",");
        unsigned k = 0;
        while (k < NEMESIS_KINDS &&
               (strlen(nemesis_name((enum nemesis_kind)k)) != len ||
                strncmp(p, nemesis_name((enum nemesis_kind)k), len) != 0)) {
            k++;
        }
        cr_assert_lt(k, NEMESIS_KINDS, "MEMCOORD_FAULT_PLAN: no fault %.*s",
                     (int)len, p);
        kinds[n++] = (enum nemesis_kind)k;
        p += len + (p[len] == ',');
    }
    return n;
}

Test(fault, ci, .init = fault_init, .fini = fault_fini, .timeout = 480)
{
    enum nemesis_kind kinds[64];
    size_t n = plan_from_env(kinds, sizeof kinds / sizeof kinds[0]);
    struct plan p = {.name = "ci",
                     .kinds = n > 0 ? kinds : ci_kinds,
                     .n_kinds = n > 0 ? n : sizeof ci_kinds / sizeof ci_kinds[0],
                     .faults_min = n > 0 ? 0 : FAULTS_MIN,
                     .ops_min = n > 0 ? 0 : OPS_MIN};
    run(&p);
}

Test(fault, soak, .init = fault_init, .fini = fault_fini, .timeout = 14400)
{
    const char *env = getenv("MEMCOORD_SOAK_MINUTES");
    if (env == NULL || atoi(env) <= 0) {
        cr_skip_test("MEMCOORD_SOAK_MINUTES is not set (make soak sets it)");
    }
    struct plan p = {.name = "soak",
                     .minutes = atoi(env),
                     .faults_min = FAULTS_MIN,
                     .ops_min = OPS_MIN};
    run(&p);
}
