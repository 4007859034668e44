/* memcoord-bench: the load generator behind every performance figure. It
 * uses only the public API of include/memcoord.h (DESIGN.md §8), so what it
 * measures is what an agent linked with libmemcoord gets.
 *
 *   memcoord-bench.c  the command line, the run (warm-up, measure, stop),
 *                     the progress line, the text and JSON reports
 *   workloads.c       one operation of each workload, and the preload
 *   watch.c           the watch workload: watchers, writers, fan-out time
 *   stats.c           latency samples, percentiles, error counts
 *
 * "In flight N" is N threads, each doing one synchronous call at a time
 * (libmemcoord is synchronous and thread-safe); the threads share
 * --clients mc_client handles, round robin. */
#ifndef MC_BENCH_H
#define MC_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "memcoord.h"

/* Threads of one run: each is a request in flight. A node takes 256
 * requests in flight by default (--contexts), a 3-node cluster 768. */
#define BENCH_INFLIGHT_MAX 4096u
/* Watchers of the watch workload: each holds a long poll per shard. */
#define BENCH_WATCHERS_MAX 256u
/* A read-then-CAS gives up after this many conflicts in a row; the
 * give-up is counted as an error (CONFLICT). */
#define BENCH_CAS_TRIES_MAX 1000u
/* Samples kept per thread (8 bytes each): 16M samples is far beyond a
 * 10 s run at any rate this machine reaches. */
#define BENCH_SAMPLES_MAX (16u << 20)
/* Largest value the tool writes: the library's own limit. */
#define BENCH_VALUE_BYTES_MAX MC_VALUE_BYTES_MAX
/* Longest key the tool builds ("watch/<run>/k00000000" and the like). */
#define BENCH_KEY_BYTES_MAX 64u

typedef enum {
    WL_PUT,
    WL_GET,
    WL_CAS,
    WL_MIXED,
    WL_WATCH,
    WL_LIST,
    WL_LOAD,
} bench_workload;

/* How a CAS learns the version it expects. */
typedef enum {
    CAS_READ_LINEARIZABLE, /* a linearizable get before each CAS */
    CAS_READ_SERIALIZABLE, /* a serializable get (a replica's state) */
    CAS_READ_CACHED,       /* the version of the worker's last write to the
                              key; a get only at first and after a conflict */
} bench_cas_read;

struct bench_cfg {
    const char *endpoints;
    bench_workload workload;
    const char *workload_name;
    unsigned inflight;  /* threads, one call each */
    unsigned clients;   /* mc_client handles; 0 = the default rule */
    uint64_t duration_ms; /* 0 when ops is given */
    uint64_t ops;         /* total measured ops; 0 = by duration */
    uint64_t warmup_ms;
    unsigned keys;
    unsigned hot_keys; /* cas: 0 = uncontended (each worker its keys) */
    size_t value_size;
    mc_tier tier;
    bool serializable;
    bench_cas_read cas_read;
    unsigned watchers;
    unsigned list_limit;
    int preload; /* -1 never, 0 auto (skip when present), 1 always */
    int timeout_ms;
    bool json;
    const char *ns;
    const char *space; /* key space; NULL = the workload's own */
};

/* Latency samples of one thread, in ns. */
struct bench_samples {
    uint64_t *ns;
    size_t n, cap;
    bool full; /* BENCH_SAMPLES_MAX reached: later samples dropped */
};

/* Counters of one thread, merged at the end. */
struct bench_counts {
    uint64_t ops;                  /* measured operations */
    uint64_t errors[MC_ERR_COUNT]; /* by code; [MC_OK] stays 0 */
    uint64_t conflicts; /* CAS conflicts that were retried (not errors) */
    uint64_t cas_ok;    /* CAS that succeeded */
    uint64_t reads, writes;
    uint64_t not_found; /* gets of keys that were missing (not errors) */
    uint64_t records;   /* list: records returned */
};

struct bench_run;

/* One thread of the run. */
struct bench_worker {
    pthread_t thread;
    struct bench_run *run;
    unsigned id;
    mc_client *c; /* shared with other workers */
    uint64_t rng;
    char *value; /* value_size bytes */
    uint64_t *versions; /* cas cached: version per owned key (0 = unknown) */
    struct bench_samples lat;
    struct bench_counts cnt;
    atomic_uint_fast64_t done; /* every op, warm-up too: progress line */
};

struct bench_run {
    const struct bench_cfg *cfg;
    mc_client **clients;
    unsigned n_clients;
    struct bench_worker *workers;
    atomic_bool measuring;  /* the warm-up is over */
    atomic_bool stop;
    atomic_int_fast64_t ops_left; /* --ops: measured ops still to start */
    int64_t measure_start_ns;     /* set before measuring becomes true */
    atomic_int_fast64_t last_end_ns; /* --ops: the last op's end */
    atomic_uint_fast64_t load_next;  /* load: the next key to write */
};

/* ---- stats.c ---- */
int64_t bench_now_ns(void);
/* Keep one sample; false when the thread's buffer is full or out of
 * memory (counted, never fatal). */
bool bench_samples_add(struct bench_samples *s, uint64_t ns);
void bench_samples_free(struct bench_samples *s);
/* The samples of all of them, sorted; caller frees *out. */
size_t bench_samples_merge(struct bench_samples *const *parts, size_t n_parts,
                           uint64_t **out);
/* Nearest-rank percentile of sorted samples, in ms; 0 for none. */
double bench_pct_ms(const uint64_t *sorted, size_t n, double p);
void bench_counts_add(struct bench_counts *into, const struct bench_counts *c);
uint64_t bench_counts_errors(const struct bench_counts *c);

/* ---- workloads.c ---- */

/* Prepare the keys a workload reads or compares (get, list, mixed, cas):
 * write them all, with cfg->inflight threads, unless cfg->preload says
 * otherwise. Progress on stderr. Returns 0, or -1 with the reason on
 * stderr. */
int bench_preload(struct bench_run *run);

/* Per-worker set-up before the threads start (cached versions). */
int bench_worker_init(struct bench_worker *w);
void bench_worker_fini(struct bench_worker *w);

/* One operation of the run's workload by w; counts what it did into oc
 * (all but ops). The returned code is the operation's outcome: MC_OK, or
 * the error counted in oc. */
mc_err bench_op(struct bench_worker *w, struct bench_counts *oc);

/* ---- watch.c ---- */

/* The watch workload runs its own way (watchers and writers). Returns 0
 * and fills the report fields, or -1 (not available in this build, or a
 * set-up failure) with the reason on stderr. */
struct bench_watch_report {
    uint64_t writes;      /* acknowledged writes in the measured window */
    uint64_t delivered;   /* writes whose event reached every watcher */
    uint64_t missed;      /* writes some watcher never saw */
    uint64_t events;      /* events received, all watchers */
    double window_s;
    uint64_t *all_ns;     /* sorted: write start -> last watcher's event */
    size_t n_all;
    uint64_t *each_ns;    /* sorted: write start -> each watcher's event */
    size_t n_each;
    struct bench_counts cnt;
};
int bench_watch_run(struct bench_run *run, struct bench_watch_report *rep);
/* Whether this build has the watch API. */
bool bench_watch_available(void);

/* Key i of the shared key space ("k/00000042"). */
void bench_key(char *buf, size_t len, const char *space, uint64_t i);

/* xorshift64*: per-thread, never 0. */
static inline uint64_t bench_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif
