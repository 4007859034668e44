/* The watch workload of memcoord-bench: W watchers on one prefix, and
 * --inflight writers putting keys under it (a thread each, with the
 * synchronous mc_put: the writers are few and the figure is the fan-out).
 * Each value carries the
 * writer's clock (CLOCK_MONOTONIC, same host) at the start of the put and
 * the write's number, so each watcher knows how long the event took; the
 * figure that matters is the time from the start of a write until the
 * last of the W watchers has its event ("fan-out time"), and its
 * throughput is the writes per second that reached every watcher.
 *
 * Watchers open their watches before the writers start, and after the
 * writers stop they drain for up to DRAIN_MS: a write whose event some
 * watcher never got is counted as missed.
 *
 * It needs the watch API of libmemcoord (mc_watch_open): when this build's
 * memcoord.h lacks it, the workload says so and fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#ifdef MC_WATCH_OPTS_INIT

/* Writes tracked in one run (3 x 8 bytes each, allocated up front). */
#define WATCH_WRITES_MAX (1u << 21)
/* How long watchers keep receiving after the writers stopped. */
#define DRAIN_MS 3000
/* One mc_watch_next waits at most this long, so watchers see the stop. */
#define NEXT_WAIT_MS 200
/* Value bytes the workload needs: start time and write number. */
#define WATCH_VALUE_BYTES_MIN 16u

struct watch_state {
    struct bench_run *run;
    char prefix[16]; /* "w" and 8 hex digits */
    atomic_uint_fast64_t next_write;
    int64_t *start_ns;            /* per write: put started */
    atomic_int_fast64_t *last_ns; /* per write: latest watcher event */
    atomic_uint *seen;            /* per write: watchers that got it */
    uint8_t *measured;            /* per write: in the measured window */
    atomic_bool writers_done;
    atomic_bool watchers_stop;
    atomic_uint ready;            /* watchers whose watch is open */
    atomic_uint open_failed;
};

struct watcher {
    pthread_t thread;
    struct watch_state *st;
    mc_client *c;
    mc_watch *w;
    struct bench_samples lat;
    struct bench_counts cnt;
};

static void *watcher_main(void *arg)
{
    struct watcher *wt = arg;
    struct watch_state *st = wt->st;
    const struct bench_cfg *cfg = st->run->cfg;
    while (!atomic_load(&st->watchers_stop)) {
        mc_event *ev = NULL;
        size_t n = 0;
        mc_result res;
        mc_err rv = mc_watch_next(wt->w, NEXT_WAIT_MS, &ev, &n, &res);
        int64_t now = bench_now_ns();
        if (rv != MC_OK) {
            wt->cnt.errors[(unsigned)rv < MC_ERR_COUNT ? rv : MC_INTERNAL]++;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            const mc_record *r = &ev[i].record;
            if (ev[i].type != MC_EVENT_PUT ||
                r->value_len < WATCH_VALUE_BYTES_MIN) {
                continue;
            }
            uint64_t g;
            memcpy(&g, r->value + 8, sizeof g);
            if (g >= WATCH_WRITES_MAX) {
                continue;
            }
            wt->cnt.records++;
            int64_t t0 = st->start_ns[g];
            if (st->measured[g] && now > t0) {
                bench_samples_add(&wt->lat, (uint64_t)(now - t0));
            }
            int64_t prev = atomic_load(&st->last_ns[g]);
            while (prev < now &&
                   !atomic_compare_exchange_weak(&st->last_ns[g], &prev, now)) {
            }
            atomic_fetch_add(&st->seen[g], 1);
        }
        mc_events_free(ev, n);
    }
    (void)cfg;
    return NULL;
}

struct writer {
    pthread_t thread;
    struct watch_state *st;
    struct bench_slot *w;
};

static void *writer_main(void *arg)
{
    struct writer *wr = arg;
    struct watch_state *st = wr->st;
    struct bench_run *run = st->run;
    const struct bench_cfg *cfg = run->cfg;
    struct bench_slot *w = wr->w;
    mc_put_opts po = MC_PUT_OPTS_INIT;
    po.tier = cfg->tier;
    while (!atomic_load(&run->stop)) {
        bool measuring = atomic_load(&run->measuring);
        if (measuring && cfg->ops > 0 &&
            atomic_fetch_sub(&run->ops_left, 1) <= 0) {
            break;
        }
        uint64_t g = atomic_fetch_add(&st->next_write, 1);
        if (g >= WATCH_WRITES_MAX) {
            break;
        }
        char key[BENCH_KEY_BYTES_MAX];
        snprintf(key, sizeof key, "%s/k%llu", st->prefix,
                 (unsigned long long)(g % cfg->keys));
        int64_t t0 = bench_now_ns();
        st->start_ns[g] = t0;
        st->measured[g] = measuring;
        memcpy(w->value, &t0, 8);
        memcpy(w->value + 8, &g, 8);
        mc_result res;
        mc_err rv = mc_put(w->c, cfg->ns, key, w->value, cfg->value_size, &po,
                           &res);
        int64_t t1 = bench_now_ns();
        bool counted = measuring && (cfg->ops > 0 || !atomic_load(&run->stop));
        if (!counted) {
            st->measured[g] = 0;
            continue;
        }
        w->cnt.ops++;
        w->cnt.writes++;
        if (rv != MC_OK) {
            st->measured[g] = 0; /* not acknowledged: no event expected */
            w->cnt.errors[(unsigned)rv < MC_ERR_COUNT ? rv : MC_INTERNAL]++;
        }
        int64_t last = atomic_load(&run->last_end_ns);
        while (last < t1 &&
               !atomic_compare_exchange_weak(&run->last_end_ns, &last, t1)) {
        }
        atomic_fetch_add(&w->done, 1);
    }
    return NULL;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

bool bench_watch_available(void)
{
    return true;
}

int bench_watch_run(struct bench_run *run, struct bench_watch_report *rep)
{
    const struct bench_cfg *cfg = run->cfg;
    if (cfg->value_size < WATCH_VALUE_BYTES_MIN) {
        fprintf(stderr, "memcoord-bench: watch needs --value-size >= %u\n",
                WATCH_VALUE_BYTES_MIN);
        return -1;
    }
    struct watch_state st = {.run = run};
    uint64_t tag = (uint64_t)bench_now_ns() ^ ((uint64_t)getpid() << 32);
    snprintf(st.prefix, sizeof st.prefix, "w%08llx",
             (unsigned long long)(tag & 0xffffffffu));
    st.start_ns = calloc(WATCH_WRITES_MAX, sizeof *st.start_ns);
    st.last_ns = calloc(WATCH_WRITES_MAX, sizeof *st.last_ns);
    st.seen = calloc(WATCH_WRITES_MAX, sizeof *st.seen);
    st.measured = calloc(WATCH_WRITES_MAX, 1);
    struct watcher *ws = calloc(cfg->watchers, sizeof *ws);
    struct writer *wrs = calloc(cfg->inflight, sizeof *wrs);
    int rc = -1;
    unsigned n_watchers = 0, n_writers = 0;
    if (st.start_ns == NULL || st.last_ns == NULL || st.seen == NULL ||
        st.measured == NULL || ws == NULL || wrs == NULL) {
        fprintf(stderr, "memcoord-bench: out of memory\n");
        goto out;
    }
    char watch_prefix[sizeof st.prefix + 1];
    snprintf(watch_prefix, sizeof watch_prefix, "%s/", st.prefix);
    for (; n_watchers < cfg->watchers; n_watchers++) {
        struct watcher *wt = &ws[n_watchers];
        wt->st = &st;
        wt->c = run->clients[n_watchers % run->n_clients];
        mc_watch_opts wo = MC_WATCH_OPTS_INIT;
        wo.prefix = true;
        mc_result res;
        mc_err rv = mc_watch_open(wt->c, cfg->ns, watch_prefix, &wo, &wt->w,
                                  &res);
        if (rv != MC_OK) {
            fprintf(stderr, "memcoord-bench: watch %u: %s: %s\n", n_watchers,
                    mc_errname(rv), res.message);
            goto out;
        }
        if (pthread_create(&wt->thread, NULL, watcher_main, wt) != 0) {
            mc_watch_close(wt->w);
            fprintf(stderr, "memcoord-bench: cannot start a watcher\n");
            goto out;
        }
    }
    fprintf(stderr, "memcoord-bench: %u watchers on %s/%s\n", n_watchers,
            cfg->ns, watch_prefix);
    for (; n_writers < cfg->inflight; n_writers++) {
        wrs[n_writers] = (struct writer){.st = &st,
                                         .w = &run->slots[n_writers]};
        if (pthread_create(&wrs[n_writers].thread, NULL, writer_main,
                           &wrs[n_writers]) != 0) {
            fprintf(stderr, "memcoord-bench: cannot start a writer\n");
            atomic_store(&run->stop, true);
            goto out;
        }
    }
    /* The run's clock: warm-up, then the measured window. */
    sleep_ms((int64_t)cfg->warmup_ms);
    run->measure_start_ns = bench_now_ns();
    atomic_store(&run->ops_left, (int_fast64_t)cfg->ops);
    atomic_store(&run->measuring, true);
    int64_t end_ns = run->measure_start_ns + (int64_t)cfg->duration_ms * 1000000;
    while (cfg->ops == 0 ? bench_now_ns() < end_ns
                         : atomic_load(&run->ops_left) > 0) {
        sleep_ms(100);
    }
    int64_t stop_ns = bench_now_ns();
    atomic_store(&run->stop, true);
    for (unsigned i = 0; i < n_writers; i++) {
        pthread_join(wrs[i].thread, NULL);
    }
    n_writers = 0;
    if (cfg->ops > 0) {
        stop_ns = atomic_load(&run->last_end_ns);
    }
    /* Drain: every acknowledged write should reach every watcher. */
    uint64_t total = atomic_load(&st.next_write);
    if (total > WATCH_WRITES_MAX) {
        total = WATCH_WRITES_MAX;
    }
    int64_t drain_end = bench_now_ns() + (int64_t)DRAIN_MS * 1000000;
    for (;;) {
        uint64_t pending = 0;
        for (uint64_t g = 0; g < total; g++) {
            pending += st.measured[g] && atomic_load(&st.seen[g]) < n_watchers;
        }
        if (pending == 0 || bench_now_ns() > drain_end) {
            break;
        }
        sleep_ms(50);
    }
    atomic_store(&st.watchers_stop, true);
    for (unsigned i = 0; i < n_watchers; i++) {
        pthread_join(ws[i].thread, NULL);
        mc_watch_close(ws[i].w);
    }
    struct bench_samples all = {0};
    memset(rep, 0, sizeof *rep);
    for (uint64_t g = 0; g < total; g++) {
        if (!st.measured[g]) {
            continue;
        }
        if (atomic_load(&st.seen[g]) >= n_watchers) {
            rep->delivered++;
            bench_samples_add(&all, (uint64_t)(atomic_load(&st.last_ns[g]) -
                                               st.start_ns[g]));
        } else {
            rep->missed++;
        }
    }
    struct bench_samples **parts = calloc(n_watchers + 1, sizeof *parts);
    if (parts == NULL) {
        bench_samples_free(&all);
        goto out_joined;
    }
    for (unsigned i = 0; i < n_watchers; i++) {
        parts[i] = &ws[i].lat;
        bench_counts_add(&rep->cnt, &ws[i].cnt);
        rep->events += ws[i].cnt.records;
    }
    rep->cnt.records = 0;
    for (unsigned i = 0; i < cfg->inflight; i++) {
        bench_counts_add(&rep->cnt, &run->slots[i].cnt);
    }
    rep->writes = rep->cnt.writes;
    rep->n_each = bench_samples_merge(parts, n_watchers, &rep->each_ns);
    struct bench_samples *ap = &all;
    rep->n_all = bench_samples_merge(&ap, 1, &rep->all_ns);
    bench_samples_free(&all);
    free(parts);
    rep->window_s = (double)(stop_ns - run->measure_start_ns) / 1e9;
    rc = 0;
out_joined:
    n_watchers = 0;
out:
    atomic_store(&run->stop, true);
    for (unsigned i = 0; i < n_writers; i++) {
        pthread_join(wrs[i].thread, NULL);
    }
    atomic_store(&st.watchers_stop, true);
    for (unsigned i = 0; i < n_watchers; i++) {
        pthread_join(ws[i].thread, NULL);
        mc_watch_close(ws[i].w);
    }
    for (unsigned i = 0; i < cfg->watchers && ws != NULL; i++) {
        bench_samples_free(&ws[i].lat);
    }
    free(ws);
    free(wrs);
    free(st.start_ns);
    free(st.last_ns);
    free(st.seen);
    free(st.measured);
    return rc;
}

#else /* no watch API in this build's memcoord.h */

bool bench_watch_available(void)
{
    return false;
}

int bench_watch_run(struct bench_run *run, struct bench_watch_report *rep)
{
    (void)run;
    (void)rep;
    fprintf(stderr, "memcoord-bench: the watch workload is not available in "
                    "this build: libmemcoord has no watch API (mc_watch_open) "
                    "yet\n");
    return -1;
}

#endif
