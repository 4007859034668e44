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
 * "In flight N" is N operations outstanding at once, each one a "slot"
 * that starts its next operation from the callback of the last one, with
 * libmemcoord's asynchronous calls (mc_put_async, mc_get_async): --workers
 * W threads start them (slot i belongs to worker i % W) and wait for them
 * to drain, and the library's threads run the callbacks. A read-then-CAS
 * is a chain of calls in one slot. list has no asynchronous call: there
 * each slot is a thread of its own doing one synchronous call at a time,
 * as are the watch workload's writers. Slots share --clients mc_client
 * handles, round robin. */
#ifndef MC_BENCH_H
#define MC_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "memcoord.h"

/* Operations in flight in one run. A node takes 256 requests in flight by
 * default (--contexts), a 3-node cluster 768. */
#define BENCH_INFLIGHT_MAX 4096u
/* Threads that drive the slots (--workers): each only starts its slots
 * and waits for them, so a few are plenty. */
#define BENCH_WORKERS_MAX 64u
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
    unsigned inflight;  /* operations in flight: slots */
    unsigned workers;   /* threads that drive the slots */
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
struct bench_worker;

/* Operations of a slot's chain (workloads.c). */
typedef enum {
    SLOT_PUT,     /* a put */
    SLOT_GET,     /* a get */
    SLOT_CAS_GET, /* the read of a read-then-CAS */
    SLOT_CAS_PUT, /* its conditional put */
} bench_slot_op;

/* One operation in flight: its chain of calls, one at a time, so only the
 * callback of its current call touches it (the library orders each start
 * before its callback). */
struct bench_slot {
    struct bench_run *run;
    struct bench_worker *worker;
    unsigned id;
    mc_client *c; /* shared with other slots */
    uint64_t rng;
    char *value; /* value_size bytes */
    uint64_t *versions; /* cas cached: version per owned key (0 = unknown) */
    struct bench_samples lat;
    struct bench_counts cnt;
    atomic_uint_fast64_t done; /* every op, warm-up too: progress line */
    atomic_uint_fast64_t failed; /* measured ops that failed: progress */
    /* The operation in flight. */
    int64_t t0_ns;          /* its start */
    bool measured;          /* it started after the warm-up */
    struct bench_counts oc; /* what it did so far (all but ops) */
    bench_slot_op op;
    char key[BENCH_KEY_BYTES_MAX];
    uint64_t *cached; /* cas: the version the slot believes (NULL: none) */
    uint64_t expect;  /* cas: the version the put expects */
    unsigned tries;   /* cas: conflicts so far */
    pthread_t thread; /* the synchronous workloads: the slot's thread */
};

/* A thread that drives slots: it starts each of its slots' first
 * operation, then waits until they all retired. */
struct bench_worker {
    pthread_t thread;
    struct bench_run *run;
    unsigned id;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned active; /* its slots not retired yet; under mu */
};

struct bench_run {
    const struct bench_cfg *cfg;
    mc_client **clients;
    unsigned n_clients;
    struct bench_slot *slots;     /* cfg->inflight */
    struct bench_worker *workers; /* cfg->workers */
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

/* Per-slot set-up before the run starts (value, cached versions). */
int bench_slot_init(struct bench_slot *s);
void bench_slot_fini(struct bench_slot *s);

/* Whether the run's workload has asynchronous operations (all but list
 * and watch). */
bool bench_workload_async(const struct bench_cfg *cfg);

/* Start slot s's next operation of the run's workload, asynchronously; or
 * retire s (tell its worker) when the run stops or --ops are all started.
 * Called by the worker for the first one, then from the callback of each
 * operation's last call. An operation's latency runs from its start to
 * that callback. */
void bench_slot_next(struct bench_slot *s);

/* One operation of the run's workload by s, synchronously (list); counts
 * what it did into oc (all but ops). The returned code is the operation's
 * outcome: MC_OK, or the error counted in oc. */
mc_err bench_op_sync(struct bench_slot *s, struct bench_counts *oc);

/* Count the end of an operation of s (started at t0_ns, measured or not,
 * with what it did in oc) into s's samples and counters. */
void bench_op_end(struct bench_slot *s, int64_t t0_ns, bool measured,
                  struct bench_counts *oc, mc_err rv);

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
