/* memcoord-bench: the load generator behind the figures in the README
 * (bench.h says how it is built). One run: open the clients, preload the
 * keys the workload reads, start --workers threads that keep --inflight
 * operations in flight, warm up, measure for --duration (or --ops
 * operations), stop, let the operations in flight end, report.
 *
 *   memcoord-bench [--endpoints URL,...] [--json] WORKLOAD [options]
 *
 * The report: ops/s, latency percentiles (exact, from every sample), and
 * error counts by code. With --json the last line of stdout is one JSON
 * object; progress goes to stderr once a second. Exit status: 0 when every
 * measured operation succeeded, 1 when some failed (the report says which
 * codes), 2 on a usage error, 3 when the run could not be made. */
#include <errno.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

static const char *const workload_names[] = {
    [WL_PUT] = "put",     [WL_GET] = "get",     [WL_CAS] = "cas",
    [WL_MIXED] = "mixed", [WL_WATCH] = "watch", [WL_LIST] = "list",
    [WL_LOAD] = "load",
};
static const char *const cas_read_names[] = {
    [CAS_READ_LINEARIZABLE] = "linearizable",
    [CAS_READ_SERIALIZABLE] = "serializable",
    [CAS_READ_CACHED] = "cached",
};

/* Operations in flight per mc_client when --clients is not given: handles
 * are cheap (one nng socket per node), but one socket per node serializes
 * sends on one TCP connection; a few connections per node spread the
 * node's receive work over nng's threads. */
#define BENCH_INFLIGHT_PER_CLIENT 16u
/* Workers when --workers is not given: they only start operations and
 * wait, the callbacks do the rest. */
#define BENCH_WORKERS_DEFAULT 1u

static void usage(FILE *out)
{
    fprintf(out,
"usage: memcoord-bench [--endpoints URL,...] [--json] WORKLOAD [options]\n"
"\n"
"workloads:\n"
"  put     unconditional puts of random keys k/00000000.. (--keys)\n"
"  get     gets of random preloaded keys (linearizable; --serializable)\n"
"  cas     read, then put with the version read, until it succeeds;\n"
"          uncontended (each worker its own keys), or contended with\n"
"          --hot-keys K (every worker on the same K keys)\n"
"  mixed   agent-like: 70%% get, 20%% put, 10%% read-then-CAS\n"
"  watch   W watchers (--watchers) on one prefix, --inflight writers;\n"
"          latency = start of a write until every watcher has its event\n"
"  list    one page (--list-limit keys) of k/ from a random key\n"
"  load    write keys 0..--keys-1 once each (bulk load; implies --ops)\n"
"\n"
"options:\n"
"  --endpoints URL,...    nodes (default $MEMCOORD_ENDPOINTS, else\n"
"                         tcp://127.0.0.1:7400)\n"
"  --inflight N           operations in flight at once (1; --workers N\n"
"                         alone: N): each starts the next from its\n"
"                         callback (list: N threads, one call each)\n"
"  --workers N            threads that start the operations and wait for\n"
"                         them (%u; at most --inflight)\n"
"  --clients N            mc_client handles the operations share (default\n"
"                         one per %u in flight)\n"
"  --duration D           measured time, e.g. 10s, 500ms, 1m (10s)\n"
"  --ops N                measure N operations instead of a duration\n"
"  --warmup D             unmeasured time first (1s; 0 with --ops)\n"
"  --keys N               key space (10000)\n"
"  --hot-keys K           cas: contended on K keys (0: uncontended)\n"
"  --cas-read MODE        linearizable (default), serializable, or cached\n"
"                         (the version of the worker's own last write)\n"
"  --value-size B         value bytes (256)\n"
"  --tier T               short, mid or long (default: the server's)\n"
"  --serializable         get, list, mixed: serializable reads\n"
"  --watchers W           watch: watchers (16)\n"
"  --list-limit N         list: keys per page (100)\n"
"  --preload MODE         auto (skip when a marker says the keys are\n"
"                         there), always, never (auto)\n"
"  --ns NS                namespace (bench)\n"
"  --space NAME           key space: keys are NAME/00000042 (default k,\n"
"                         or cas for the cas workload)\n"
"  --timeout D            per-call timeout (5s)\n"
"  --json                 the last line of stdout is one JSON object\n",
            BENCH_WORKERS_DEFAULT, BENCH_INFLIGHT_PER_CLIENT);
}

/* "10s", "500ms", "2m", "1.5s"; a bare number is seconds. */
static bool parse_duration_ms(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || v < 0) {
        return false;
    }
    double mul = 1000;
    if (strcmp(end, "ms") == 0) {
        mul = 1;
    } else if (strcmp(end, "s") == 0 || *end == '\0') {
        mul = 1000;
    } else if (strcmp(end, "m") == 0) {
        mul = 60000;
    } else {
        return false;
    }
    *out = (uint64_t)(v * mul + 0.5);
    return true;
}

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo ||
        v > hi) {
        return false;
    }
    *out = v;
    return true;
}

static int bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "memcoord-bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (--help for usage)\n");
    return 2;
}

/* Parse argv into cfg; 0, or an exit status (2: usage). */
static int parse(int argc, char **argv, struct bench_cfg *cfg)
{
    const char *env = getenv("MEMCOORD_ENDPOINTS");
    *cfg = (struct bench_cfg){
        .endpoints = env != NULL && env[0] != '\0' ? env
                                                   : "tcp://127.0.0.1:7400",
        .inflight = 1,
        .duration_ms = 10000,
        .keys = 10000,
        .value_size = 256,
        .watchers = 16,
        .list_limit = 100,
        .timeout_ms = 5000,
        .ns = "bench",
    };
    bool warmup_set = false, ops_set = false, duration_set = false;
    bool inflight_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--json") == 0) {
            cfg->json = true;
        } else if (strcmp(a, "--serializable") == 0) {
            cfg->serializable = true;
        } else if (a[0] != '-') {
            if (cfg->workload_name != NULL) {
                return bad("one workload only, not also '%s'", a);
            }
            cfg->workload_name = a;
        } else if (v == NULL) {
            return bad("%s needs a value", a);
        } else if ((i++, strcmp(a, "--endpoints") == 0)) {
            cfg->endpoints = v;
        } else if (strcmp(a, "--ns") == 0) {
            cfg->ns = v;
        } else if (strcmp(a, "--space") == 0) {
            if (v[0] == '\0' || strlen(v) > 32 || strchr(v, '/') != NULL) {
                return bad("--space: 1..32 bytes without '/', not '%s'", v);
            }
            cfg->space = v;
        } else if (strcmp(a, "--inflight") == 0) {
            if (!parse_u64(v, 1, BENCH_INFLIGHT_MAX, &n)) {
                return bad("--inflight: 1..4096, not '%s'", v);
            }
            cfg->inflight = (unsigned)n;
            inflight_set = true;
        } else if (strcmp(a, "--workers") == 0) {
            /* Up to --inflight: alone, it also sets --inflight (what it
             * meant when each operation in flight was a thread). */
            if (!parse_u64(v, 1, BENCH_INFLIGHT_MAX, &n)) {
                return bad("--workers: 1..4096, not '%s'", v);
            }
            cfg->workers = (unsigned)n;
        } else if (strcmp(a, "--clients") == 0) {
            if (!parse_u64(v, 1, BENCH_INFLIGHT_MAX, &n)) {
                return bad("--clients: 1..4096, not '%s'", v);
            }
            cfg->clients = (unsigned)n;
        } else if (strcmp(a, "--duration") == 0) {
            if (!parse_duration_ms(v, &cfg->duration_ms) ||
                cfg->duration_ms == 0) {
                return bad("--duration: e.g. 10s or 500ms, not '%s'", v);
            }
            duration_set = true;
        } else if (strcmp(a, "--warmup") == 0) {
            if (!parse_duration_ms(v, &cfg->warmup_ms)) {
                return bad("--warmup: e.g. 1s or 0, not '%s'", v);
            }
            warmup_set = true;
        } else if (strcmp(a, "--timeout") == 0) {
            uint64_t ms;
            if (!parse_duration_ms(v, &ms) || ms == 0 || ms > 3600000) {
                return bad("--timeout: e.g. 5s, not '%s'", v);
            }
            cfg->timeout_ms = (int)ms;
        } else if (strcmp(a, "--ops") == 0) {
            if (!parse_u64(v, 1, UINT64_MAX / 2, &cfg->ops)) {
                return bad("--ops: a positive count, not '%s'", v);
            }
            ops_set = true;
        } else if (strcmp(a, "--keys") == 0) {
            if (!parse_u64(v, 1, 100000000, &n)) {
                return bad("--keys: 1..100000000, not '%s'", v);
            }
            cfg->keys = (unsigned)n;
        } else if (strcmp(a, "--hot-keys") == 0) {
            if (!parse_u64(v, 0, 100000000, &n)) {
                return bad("--hot-keys: a count, not '%s'", v);
            }
            cfg->hot_keys = (unsigned)n;
        } else if (strcmp(a, "--value-size") == 0) {
            if (!parse_u64(v, 0, BENCH_VALUE_BYTES_MAX, &n)) {
                return bad("--value-size: 0..1048576, not '%s'", v);
            }
            cfg->value_size = (size_t)n;
        } else if (strcmp(a, "--tier") == 0) {
            if (!mc_tier_parse(v, &cfg->tier)) {
                return bad("--tier: short, mid or long, not '%s'", v);
            }
        } else if (strcmp(a, "--cas-read") == 0) {
            bool found = false;
            for (unsigned k = 0; k < 3; k++) {
                if (strcmp(v, cas_read_names[k]) == 0) {
                    cfg->cas_read = (bench_cas_read)k;
                    found = true;
                }
            }
            if (!found) {
                return bad("--cas-read: linearizable, serializable or "
                           "cached, not '%s'", v);
            }
        } else if (strcmp(a, "--watchers") == 0) {
            if (!parse_u64(v, 1, BENCH_WATCHERS_MAX, &n)) {
                return bad("--watchers: 1..256, not '%s'", v);
            }
            cfg->watchers = (unsigned)n;
        } else if (strcmp(a, "--list-limit") == 0) {
            if (!parse_u64(v, 1, MC_LIST_PAGE_MAX, &n)) {
                return bad("--list-limit: 1..10000, not '%s'", v);
            }
            cfg->list_limit = (unsigned)n;
        } else if (strcmp(a, "--preload") == 0) {
            if (strcmp(v, "auto") == 0) {
                cfg->preload = 0;
            } else if (strcmp(v, "always") == 0) {
                cfg->preload = 1;
            } else if (strcmp(v, "never") == 0) {
                cfg->preload = -1;
            } else {
                return bad("--preload: auto, always or never, not '%s'", v);
            }
        } else {
            return bad("unknown option '%s'", a);
        }
    }
    if (cfg->workload_name == NULL) {
        usage(stderr);
        return 2;
    }
    bool found = false;
    for (unsigned k = 0; k < sizeof workload_names / sizeof *workload_names;
         k++) {
        if (strcmp(cfg->workload_name, workload_names[k]) == 0) {
            cfg->workload = (bench_workload)k;
            found = true;
        }
    }
    if (!found) {
        return bad("unknown workload '%s': put, get, cas, mixed, watch, "
                   "list or load", cfg->workload_name);
    }
    if (cfg->workload == WL_LOAD) {
        if (duration_set) {
            return bad("%s", "load writes --keys keys: no --duration");
        }
        cfg->ops = cfg->keys;
        ops_set = true;
    }
    if (ops_set && duration_set) {
        return bad("%s", "--ops and --duration exclude each other");
    }
    if (ops_set) {
        cfg->duration_ms = 0;
        if (!warmup_set) {
            cfg->warmup_ms = 0;
        }
    } else if (!warmup_set) {
        cfg->warmup_ms = 1000;
    }
    if (!inflight_set && cfg->workers > 0) {
        cfg->inflight = cfg->workers;
    }
    if (cfg->workers == 0) {
        cfg->workers = BENCH_WORKERS_DEFAULT;
    }
    if (cfg->workers > cfg->inflight) {
        cfg->workers = cfg->inflight;
    }
    if (cfg->workers > BENCH_WORKERS_MAX) {
        cfg->workers = BENCH_WORKERS_MAX;
    }
    if (cfg->workload == WL_CAS && cfg->hot_keys == 0 &&
        cfg->keys < cfg->inflight) {
        /* Every slot owns at least one key. */
        cfg->keys = cfg->inflight;
    }
    if (cfg->clients == 0) {
        unsigned load = cfg->inflight +
                        (cfg->workload == WL_WATCH ? cfg->watchers : 0);
        cfg->clients = (load + BENCH_INFLIGHT_PER_CLIENT - 1) /
                       BENCH_INFLIGHT_PER_CLIENT;
    }
    if (cfg->clients > cfg->inflight && cfg->workload != WL_WATCH) {
        cfg->clients = cfg->inflight;
    }
    return 0;
}

/* A worker of an asynchronous workload: start its slots, then wait until
 * they all retired (bench_slot_next retires a slot when the run stops). */
static void *worker_main(void *arg)
{
    struct bench_worker *w = arg;
    struct bench_run *run = w->run;
    const struct bench_cfg *cfg = run->cfg;
    for (unsigned i = w->id; i < cfg->inflight; i += cfg->workers) {
        bench_slot_next(&run->slots[i]);
    }
    pthread_mutex_lock(&w->mu);
    while (w->active > 0) {
        pthread_cond_wait(&w->cv, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* A slot of a synchronous workload (list): a thread of its own, one call
 * at a time. */
static void *slot_main(void *arg)
{
    struct bench_slot *s = arg;
    struct bench_run *run = s->run;
    const struct bench_cfg *cfg = run->cfg;
    while (!atomic_load(&run->stop)) {
        bool measured = atomic_load(&run->measuring);
        if (measured && cfg->ops > 0 &&
            atomic_fetch_sub(&run->ops_left, 1) <= 0) {
            break;
        }
        struct bench_counts oc = {0};
        int64_t t0 = bench_now_ns();
        mc_err rv = bench_op_sync(s, &oc);
        bench_op_end(s, t0, measured, &oc, rv);
    }
    return NULL;
}

/* CPU time of this process (user + system) in µs: the client's cost. */
static int64_t cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static uint64_t done_total(const struct bench_run *run)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < run->cfg->inflight; i++) {
        n += atomic_load(&run->slots[i].done);
    }
    return n;
}

/* The threads of a run: workers (asynchronous workloads) or one per slot
 * (list). */
static bool run_async(const struct bench_run *run)
{
    return bench_workload_async(run->cfg);
}

static void threads_join(struct bench_run *run, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        pthread_join(run_async(run) ? run->workers[i].thread
                                    : run->slots[i].thread,
                     NULL);
    }
}

/* Warm up, measure, stop; progress on stderr once a second. Returns the
 * measured window in seconds, and the process's CPU time in it. */
static double run_clock(struct bench_run *run, int64_t *cpu_used_us)
{
    int64_t cpu_start = 0;
    const struct bench_cfg *cfg = run->cfg;
    int64_t t0 = bench_now_ns();
    int64_t warm_end = t0 + (int64_t)cfg->warmup_ms * 1000000;
    int64_t next_report = t0 + 1000000000;
    uint64_t last_done = 0;
    int64_t end = 0;
    for (;;) {
        int64_t now = bench_now_ns();
        if (!atomic_load(&run->measuring) && now >= warm_end) {
            cpu_start = cpu_us();
            run->measure_start_ns = now;
            atomic_store(&run->ops_left, (int_fast64_t)cfg->ops);
            atomic_store(&run->measuring, true);
            end = now + (int64_t)cfg->duration_ms * 1000000;
        }
        if (atomic_load(&run->measuring) &&
            (cfg->ops > 0 ? atomic_load(&run->ops_left) <= 0 : now >= end)) {
            break;
        }
        if (now >= next_report) {
            uint64_t done = done_total(run);
            uint64_t errs = 0;
            for (unsigned i = 0; i < cfg->inflight; i++) {
                errs += atomic_load(&run->slots[i].failed);
            }
            fprintf(stderr, "memcoord-bench: %s %5.1f s %s %8llu ops/s, "
                            "errors %llu\n",
                    cfg->workload_name, (double)(now - t0) / 1e9,
                    atomic_load(&run->measuring) ? "measuring" : "warm-up  ",
                    (unsigned long long)(done - last_done),
                    (unsigned long long)errs);
            last_done = done;
            next_report += 1000000000;
        }
        sleep_ms(20);
    }
    int64_t stop_ns = bench_now_ns();
    int64_t cpu_stop = cpu_us();
    atomic_store(&run->stop, true);
    /* The operations in flight end (each within the client's timeout);
     * by duration they are not counted, with --ops they are the last. */
    threads_join(run, run_async(run) ? cfg->workers : cfg->inflight);
    if (cfg->ops > 0) {
        stop_ns = atomic_load(&run->last_end_ns);
        cpu_stop = cpu_us();
    }
    *cpu_used_us = cpu_stop - cpu_start;
    return (double)(stop_ns - run->measure_start_ns) / 1e9;
}

struct report {
    double window_s;
    int64_t cpu_us; /* of the whole process in the window */
    struct bench_counts cnt;
    uint64_t *lat;
    size_t n_lat;
    uint64_t dropped;
    /* watch */
    bool is_watch;
    struct bench_watch_report w;
};

static void print_errors_json(const struct bench_counts *c)
{
    printf("\"errors_by_code\":{");
    bool first = true;
    for (int e = 1; e < MC_ERR_COUNT; e++) {
        if (c->errors[e] > 0) {
            printf("%s\"%s\":%llu", first ? "" : ",", mc_errname((mc_err)e),
                   (unsigned long long)c->errors[e]);
            first = false;
        }
    }
    printf("}");
}

static void report_json(const struct bench_cfg *cfg, const struct report *r)
{
    double ops_s = r->window_s > 0 ? (double)r->cnt.ops / r->window_s : 0;
    printf("{\"tool\":\"memcoord-bench\",\"workload\":\"%s\","
           "\"inflight\":%u,\"workers\":%u,\"clients\":%u,\"keys\":%u,"
           "\"hot_keys\":%u,"
           "\"value_size\":%zu,\"tier\":\"%s\",\"serializable\":%s,"
           "\"cas_read\":\"%s\",\"warmup_s\":%.3f,\"duration_s\":%.3f,"
           "\"ops\":%llu,\"ops_per_sec\":%.1f,",
           cfg->workload_name, cfg->inflight, cfg->workers, cfg->clients,
           cfg->keys, cfg->hot_keys, cfg->value_size, mc_tier_name(cfg->tier),
           cfg->serializable ? "true" : "false",
           cas_read_names[cfg->cas_read], (double)cfg->warmup_ms / 1e3,
           r->window_s, (unsigned long long)r->cnt.ops, ops_s);
    printf("\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"p999_ms\":%.3f,\"max_ms\":%.3f,",
           bench_pct_ms(r->lat, r->n_lat, 0.50),
           bench_pct_ms(r->lat, r->n_lat, 0.90),
           bench_pct_ms(r->lat, r->n_lat, 0.99),
           bench_pct_ms(r->lat, r->n_lat, 0.999),
           bench_pct_ms(r->lat, r->n_lat, 1.0));
    printf("\"errors\":%llu,", (unsigned long long)bench_counts_errors(&r->cnt));
    print_errors_json(&r->cnt);
    printf(",\"conflicts\":%llu,\"cas_ok\":%llu,\"reads\":%llu,"
           "\"writes\":%llu,\"records\":%llu,\"samples_dropped\":%llu",
           (unsigned long long)r->cnt.conflicts,
           (unsigned long long)r->cnt.cas_ok, (unsigned long long)r->cnt.reads,
           (unsigned long long)r->cnt.writes,
           (unsigned long long)r->cnt.records,
           (unsigned long long)r->dropped);
    if (!r->is_watch) {
        printf(",\"client_cpu_us_per_op\":%.1f",
               r->cnt.ops > 0 ? (double)r->cpu_us / (double)r->cnt.ops : 0);
    }
    if (r->is_watch) {
        printf(",\"watchers\":%u,\"writes_acked\":%llu,\"delivered\":%llu,"
               "\"missed\":%llu,\"events\":%llu,\"event_p50_ms\":%.3f,"
               "\"event_p99_ms\":%.3f",
               cfg->watchers, (unsigned long long)r->w.writes,
               (unsigned long long)r->w.delivered,
               (unsigned long long)r->w.missed,
               (unsigned long long)r->w.events,
               bench_pct_ms(r->w.each_ns, r->w.n_each, 0.50),
               bench_pct_ms(r->w.each_ns, r->w.n_each, 0.99));
    }
    printf("}\n");
}

static void report_text(const struct bench_cfg *cfg, const struct report *r)
{
    double ops_s = r->window_s > 0 ? (double)r->cnt.ops / r->window_s : 0;
    printf("memcoord-bench %s%s: %u in flight (%u worker%s) over %u client "
           "handle%s, %zu B values, tier %s, keys %u%s\n",
           cfg->workload_name, cfg->serializable ? " --serializable" : "",
           cfg->inflight, cfg->workers, cfg->workers == 1 ? "" : "s",
           cfg->clients, cfg->clients == 1 ? "" : "s",
           cfg->value_size, mc_tier_name(cfg->tier), cfg->keys,
           cfg->workload == WL_CAS && cfg->hot_keys ? " (contended)" : "");
    if (cfg->workload == WL_CAS) {
        printf("  cas:       %u hot keys, read %s; %llu CAS ok, %llu "
               "conflicts retried\n",
               cfg->hot_keys, cas_read_names[cfg->cas_read],
               (unsigned long long)r->cnt.cas_ok,
               (unsigned long long)r->cnt.conflicts);
    }
    if (r->is_watch) {
        printf("  watch:     %u watchers; %llu writes acknowledged, %llu "
               "reached every watcher, %llu missed, %llu events\n",
               cfg->watchers, (unsigned long long)r->w.writes,
               (unsigned long long)r->w.delivered,
               (unsigned long long)r->w.missed,
               (unsigned long long)r->w.events);
        printf("  latency:   write start -> every watcher's event; each "
               "event p50 %.3f ms, p99 %.3f ms\n",
               bench_pct_ms(r->w.each_ns, r->w.n_each, 0.50),
               bench_pct_ms(r->w.each_ns, r->w.n_each, 0.99));
    }
    printf("  measured:  %.2f s after %.1f s warm-up: %llu ops, %.0f ops/s\n",
           r->window_s, (double)cfg->warmup_ms / 1e3,
           (unsigned long long)r->cnt.ops, ops_s);
    printf("  latency:   p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms"
           "  max %.3f ms\n",
           bench_pct_ms(r->lat, r->n_lat, 0.50),
           bench_pct_ms(r->lat, r->n_lat, 0.90),
           bench_pct_ms(r->lat, r->n_lat, 0.99),
           bench_pct_ms(r->lat, r->n_lat, 0.999),
           bench_pct_ms(r->lat, r->n_lat, 1.0));
    if (!r->is_watch && r->cnt.ops > 0) {
        printf("  client:    %.1f us of CPU per operation (this process)\n",
               (double)r->cpu_us / (double)r->cnt.ops);
    }
    printf("  errors:    %llu", (unsigned long long)bench_counts_errors(&r->cnt));
    for (int e = 1; e < MC_ERR_COUNT; e++) {
        if (r->cnt.errors[e] > 0) {
            printf("  %s %llu", mc_errname((mc_err)e),
                   (unsigned long long)r->cnt.errors[e]);
        }
    }
    printf("\n");
    if (r->dropped > 0) {
        printf("  note:      %llu latency samples dropped (buffer full)\n",
               (unsigned long long)r->dropped);
    }
}

/* Run a workload other than watch: threads, clock, merge. */
static int run_threads(struct bench_run *run, struct report *r)
{
    const struct bench_cfg *cfg = run->cfg;
    bool async = run_async(run);
    unsigned n = async ? cfg->workers : cfg->inflight;
    unsigned started = 0;
    for (; started < n; started++) {
        int rc = async ? pthread_create(&run->workers[started].thread, NULL,
                                        worker_main, &run->workers[started])
                       : pthread_create(&run->slots[started].thread, NULL,
                                        slot_main, &run->slots[started]);
        if (rc != 0) {
            fprintf(stderr, "memcoord-bench: cannot start thread %u\n",
                    started);
            atomic_store(&run->stop, true);
            /* A worker not started leaves its slots: they start nothing. */
            for (unsigned i = started; async && i < n; i++) {
                run->workers[i].active = 0;
            }
            threads_join(run, started);
            return -1;
        }
    }
    r->window_s = run_clock(run, &r->cpu_us);
    struct bench_samples **parts = calloc(cfg->inflight, sizeof *parts);
    if (parts == NULL) {
        return -1;
    }
    for (unsigned i = 0; i < cfg->inflight; i++) {
        parts[i] = &run->slots[i].lat;
        bench_counts_add(&r->cnt, &run->slots[i].cnt);
        r->dropped += run->slots[i].lat.full;
    }
    r->n_lat = bench_samples_merge(parts, cfg->inflight, &r->lat);
    free(parts);
    return 0;
}

int main(int argc, char **argv)
{
    struct bench_cfg cfg;
    int rc = parse(argc, argv, &cfg);
    if (rc != 0) {
        return rc;
    }
    if (cfg.workload == WL_WATCH && !bench_watch_available()) {
        bench_watch_run(NULL, NULL); /* says why */
        return 3;
    }
    struct bench_run run = {.cfg = &cfg, .n_clients = cfg.clients};
    atomic_init(&run.measuring, false);
    atomic_init(&run.stop, false);
    atomic_init(&run.ops_left, 0);
    atomic_init(&run.last_end_ns, 0);
    atomic_init(&run.load_next, 0);
    run.clients = calloc(cfg.clients, sizeof *run.clients);
    run.slots = calloc(cfg.inflight, sizeof *run.slots);
    run.workers = calloc(cfg.workers, sizeof *run.workers);
    if (run.clients == NULL || run.slots == NULL || run.workers == NULL) {
        fprintf(stderr, "memcoord-bench: out of memory\n");
        return 3;
    }
    for (unsigned i = 0; i < cfg.workers; i++) {
        struct bench_worker *w = &run.workers[i];
        w->run = &run;
        w->id = i;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
    }
    rc = 3;
    unsigned opened = 0, inited = 0;
    mc_options opts = {.timeout_ms = cfg.timeout_ms};
    for (; opened < cfg.clients; opened++) {
        mc_result res;
        if (mc_client_open(cfg.endpoints, &opts, &run.clients[opened], &res) !=
            MC_OK) {
            fprintf(stderr, "memcoord-bench: %s: %s\n", cfg.endpoints,
                    res.message);
            goto out;
        }
    }
    uint64_t seed = (uint64_t)bench_now_ns();
    for (; inited < cfg.inflight; inited++) {
        struct bench_slot *sl = &run.slots[inited];
        sl->run = &run;
        sl->id = inited;
        sl->worker = &run.workers[inited % cfg.workers];
        sl->worker->active++;
        sl->c = run.clients[inited % cfg.clients];
        sl->rng = (seed ^ (0x9e3779b97f4a7c15ull * (inited + 1))) | 1;
        atomic_init(&sl->done, 0);
        atomic_init(&sl->failed, 0);
        if (bench_slot_init(sl) != 0) {
            fprintf(stderr, "memcoord-bench: out of memory\n");
            inited++;
            goto out;
        }
    }
    if (bench_preload(&run) != 0) {
        goto out;
    }
    fprintf(stderr, "memcoord-bench: %s, %u in flight, %u workers, %u client "
                    "handles, warm-up %.1f s, then %s\n",
            cfg.workload_name, cfg.inflight, cfg.workers, cfg.clients,
            (double)cfg.warmup_ms / 1e3,
            cfg.ops ? "a count of operations" : "a fixed duration");
    struct report r = {0};
    if (cfg.workload == WL_WATCH) {
        if (bench_watch_run(&run, &r.w) != 0) {
            goto out;
        }
        r.is_watch = true;
        r.window_s = r.w.window_s;
        r.cnt = r.w.cnt;
        r.cnt.ops = r.w.delivered;
        r.lat = r.w.all_ns;
        r.n_lat = r.w.n_all;
    } else if (run_threads(&run, &r) != 0) {
        goto out;
    }
    if (cfg.json) {
        report_json(&cfg, &r);
    } else {
        report_text(&cfg, &r);
    }
    fflush(stdout);
    rc = bench_counts_errors(&r.cnt) > 0 || r.w.missed > 0 ? 1 : 0;
    free(r.lat);
    if (r.is_watch) {
        free(r.w.each_ns);
    }
out:
    for (unsigned i = 0; i < opened; i++) {
        mc_client_close(run.clients[i]);
    }
    for (unsigned i = 0; i < inited; i++) {
        bench_slot_fini(&run.slots[i]);
    }
    for (unsigned i = 0; i < cfg.workers; i++) {
        pthread_cond_destroy(&run.workers[i].cv);
        pthread_mutex_destroy(&run.workers[i].mu);
    }
    free(run.clients);
    free(run.slots);
    free(run.workers);
    return rc;
}
