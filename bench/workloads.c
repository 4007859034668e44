/* The workloads of memcoord-bench: one operation of each, the preload of
 * the keys they read, and the watch workload, which runs its own way.
 *
 * Key spaces (namespace cfg->ns, "bench" by default):
 *   k/00000000 ..   put, get, list, mixed: --keys keys, chosen at random
 *   cas/00000000 .. cas: uncontended, worker w owns the keys i with
 *                   i % inflight == w; contended, every worker picks among
 *                   the first --hot-keys keys
 *   w<run>/...      watch: a fresh prefix per run
 *   (--space)       load: keys 0..--keys-1 of the space once each, in
 *                   order; the other workloads may be pointed elsewhere
 *
 * A CAS is "read, then put with the version read" (optimistic locking as
 * an agent does it); a conflict is retried with a fresh read, and the
 * operation's latency covers every try. Conflicts are counted, not errors:
 * under contention they are the expected outcome. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

void bench_key(char *buf, size_t len, const char *space, uint64_t i)
{
    snprintf(buf, len, "%s/%08llu", space, (unsigned long long)i);
}

static void count_err(struct bench_counts *oc, mc_err rv)
{
    oc->errors[(unsigned)rv < MC_ERR_COUNT ? rv : MC_INTERNAL]++;
}

/* The key space a workload reads, and how many keys it holds. */
static const char *space_of(const struct bench_cfg *cfg, unsigned *n)
{
    *n = cfg->keys;
    if (cfg->workload == WL_CAS && cfg->hot_keys > 0) {
        *n = cfg->hot_keys;
    }
    if (cfg->space != NULL) {
        return cfg->space;
    }
    return cfg->workload == WL_CAS ? "cas" : "k";
}

/* ---- one operation ---- */

static mc_err op_put(struct bench_worker *w, const char *space, uint64_t i,
                     struct bench_counts *oc)
{
    const struct bench_cfg *cfg = w->run->cfg;
    char key[BENCH_KEY_BYTES_MAX];
    bench_key(key, sizeof key, space, i);
    mc_put_opts po = MC_PUT_OPTS_INIT;
    po.tier = cfg->tier;
    mc_result res;
    mc_err rv = mc_put(w->c, cfg->ns, key, w->value, cfg->value_size, &po,
                       &res);
    oc->writes++;
    return rv;
}

static mc_err op_get(struct bench_worker *w, const char *key,
                     bool serializable, uint64_t *version,
                     struct bench_counts *oc)
{
    mc_read_opts ro = {.serializable = serializable};
    mc_record *rec = NULL;
    mc_result res;
    mc_err rv = mc_get(w->c, w->run->cfg->ns, key, &ro, &rec, &res);
    oc->reads++;
    if (rv == MC_OK && version != NULL) {
        *version = rec->version;
    }
    mc_record_free(rec);
    return rv;
}

/* Read-then-CAS of key until it succeeds. *cached (may be NULL) is the
 * version the worker believes the key has (0: unknown); it is used instead
 * of a read in CAS_READ_CACHED mode and kept up to date. */
static mc_err op_cas(struct bench_worker *w, const char *key,
                     uint64_t *cached, struct bench_counts *oc)
{
    const struct bench_cfg *cfg = w->run->cfg;
    mc_put_opts po = MC_PUT_OPTS_INIT;
    po.tier = cfg->tier;
    for (unsigned tries = 0; tries < BENCH_CAS_TRIES_MAX; tries++) {
        uint64_t expect = 0;
        if (cfg->cas_read == CAS_READ_CACHED && cached != NULL &&
            *cached != 0) {
            expect = *cached;
        } else {
            mc_err rv = op_get(w, key,
                               cfg->cas_read != CAS_READ_LINEARIZABLE,
                               &expect, oc);
            if (rv == MC_NOT_FOUND) {
                expect = 0; /* create it */
            } else if (rv != MC_OK) {
                return rv;
            }
        }
        po.expect_version = (int64_t)expect;
        mc_result res;
        mc_err rv = mc_put(w->c, cfg->ns, key, w->value, cfg->value_size, &po,
                           &res);
        oc->writes++;
        if (rv == MC_OK) {
            oc->cas_ok++;
            if (cached != NULL) {
                *cached = res.version;
            }
            return MC_OK;
        }
        if (rv != MC_CONFLICT) {
            return rv;
        }
        oc->conflicts++;
        if (cached != NULL) {
            /* The answer names the current version (0: deleted). */
            *cached = res.version;
        }
    }
    return MC_CONFLICT;
}

static mc_err op_list(struct bench_worker *w, struct bench_counts *oc)
{
    const struct bench_cfg *cfg = w->run->cfg;
    unsigned n;
    const char *space = space_of(cfg, &n);
    char after[BENCH_KEY_BYTES_MAX], prefix[BENCH_KEY_BYTES_MAX];
    bench_key(after, sizeof after, space, bench_rand(&w->rng) % n);
    snprintf(prefix, sizeof prefix, "%s/", space);
    mc_list_opts lo = {.start_after = after,
                       .limit = cfg->list_limit,
                       .serializable = cfg->serializable};
    mc_page *page = NULL;
    mc_result res;
    mc_err rv = mc_list(w->c, cfg->ns, prefix, &lo, &page, &res);
    oc->reads++;
    if (rv == MC_OK) {
        oc->records += page->n;
    }
    mc_page_free(page);
    return rv;
}

static mc_err op_cas_workload(struct bench_worker *w, struct bench_counts *oc)
{
    const struct bench_cfg *cfg = w->run->cfg;
    uint64_t i;
    uint64_t *cached = NULL;
    if (cfg->hot_keys > 0) {
        i = bench_rand(&w->rng) % cfg->hot_keys;
    } else {
        /* Worker w owns keys w, w + inflight, w + 2 inflight, ... */
        uint64_t owned = cfg->keys / cfg->inflight;
        uint64_t j = bench_rand(&w->rng) % owned;
        i = w->id + j * cfg->inflight;
        cached = &w->versions[j];
    }
    unsigned n;
    char key[BENCH_KEY_BYTES_MAX];
    bench_key(key, sizeof key, space_of(cfg, &n), i);
    return op_cas(w, key, cached, oc);
}

/* Agent-like: 70% get, 20% put, 10% read-then-CAS, over the k/ keys. */
static mc_err op_mixed(struct bench_worker *w, struct bench_counts *oc)
{
    const struct bench_cfg *cfg = w->run->cfg;
    uint64_t r = bench_rand(&w->rng);
    uint64_t i = (r >> 8) % cfg->keys;
    unsigned pick = (unsigned)(r % 100);
    unsigned n;
    const char *space = space_of(cfg, &n);
    char key[BENCH_KEY_BYTES_MAX];
    bench_key(key, sizeof key, space, i);
    if (pick < 70) {
        return op_get(w, key, cfg->serializable, NULL, oc);
    }
    if (pick < 90) {
        return op_put(w, space, i, oc);
    }
    return op_cas(w, key, NULL, oc);
}

mc_err bench_op(struct bench_worker *w, struct bench_counts *oc)
{
    const struct bench_cfg *cfg = w->run->cfg;
    unsigned n;
    const char *space = space_of(cfg, &n);
    mc_err rv;
    switch (cfg->workload) {
    case WL_PUT:
        rv = op_put(w, space, bench_rand(&w->rng) % n, oc);
        break;
    case WL_LOAD:
        rv = op_put(w, space, atomic_fetch_add(&w->run->load_next, 1) % n,
                    oc);
        break;
    case WL_GET: {
        char key[BENCH_KEY_BYTES_MAX];
        bench_key(key, sizeof key, space, bench_rand(&w->rng) % n);
        rv = op_get(w, key, cfg->serializable, NULL, oc);
        break;
    }
    case WL_CAS:
        rv = op_cas_workload(w, oc);
        break;
    case WL_MIXED:
        rv = op_mixed(w, oc);
        break;
    case WL_LIST:
        rv = op_list(w, oc);
        break;
    default:
        rv = MC_INVALID_ARGUMENT;
    }
    if (rv != MC_OK) {
        count_err(oc, rv);
    }
    return rv;
}

int bench_worker_init(struct bench_worker *w)
{
    const struct bench_cfg *cfg = w->run->cfg;
    w->value = malloc(cfg->value_size + 1);
    if (w->value == NULL) {
        return -1;
    }
    /* Printable bytes that differ per worker, so values are not all
     * alike (nothing here compresses, but a reader can tell them apart). */
    for (size_t i = 0; i < cfg->value_size; i++) {
        w->value[i] = (char)('a' + (w->id + i) % 26);
    }
    w->value[cfg->value_size] = '\0';
    if (cfg->workload == WL_CAS && cfg->hot_keys == 0) {
        w->versions = calloc(cfg->keys / cfg->inflight + 1,
                             sizeof *w->versions);
        if (w->versions == NULL) {
            return -1;
        }
    }
    return 0;
}

void bench_worker_fini(struct bench_worker *w)
{
    free(w->value);
    free(w->versions);
    bench_samples_free(&w->lat);
}

/* ---- preload ---- */

struct preload {
    struct bench_run *run;
    const char *space;
    unsigned n;
    atomic_uint next;
    atomic_uint done;
    atomic_uint failed;
    mc_err first_err;
    char first_msg[256];
    pthread_mutex_t mu;
};

struct preload_thread {
    pthread_t thread;
    struct preload *p;
    mc_client *c;
    char *value;
};

static void *preload_main(void *arg)
{
    struct preload_thread *t = arg;
    struct preload *p = t->p;
    const struct bench_cfg *cfg = p->run->cfg;
    mc_put_opts po = MC_PUT_OPTS_INIT;
    po.tier = cfg->tier;
    for (;;) {
        unsigned i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n || atomic_load(&p->failed) > 0) {
            break;
        }
        char key[BENCH_KEY_BYTES_MAX];
        bench_key(key, sizeof key, p->space, i);
        mc_result res;
        mc_err rv = mc_put(t->c, cfg->ns, key, t->value, cfg->value_size,
                           &po, &res);
        if (rv != MC_OK) {
            pthread_mutex_lock(&p->mu);
            if (atomic_fetch_add(&p->failed, 1) == 0) {
                p->first_err = rv;
                snprintf(p->first_msg, sizeof p->first_msg, "%s", res.message);
            }
            pthread_mutex_unlock(&p->mu);
            break;
        }
        atomic_fetch_add(&p->done, 1);
    }
    return NULL;
}

/* Threads that write the preload: enough to fill a 3-node cluster's
 * pipeline, few enough not to matter. */
#define PRELOAD_THREADS 64u

int bench_preload(struct bench_run *run)
{
    const struct bench_cfg *cfg = run->cfg;
    if (cfg->workload == WL_PUT || cfg->workload == WL_WATCH ||
        cfg->workload == WL_LOAD || cfg->preload < 0) {
        return 0;
    }
    unsigned n;
    const char *space = space_of(cfg, &n);
    /* A marker says which keys a previous run left, so that rounds of the
     * same workload do not write them again. */
    char marker_key[BENCH_KEY_BYTES_MAX], marker[128];
    snprintf(marker_key, sizeof marker_key, "preloaded/%s", space);
    snprintf(marker, sizeof marker, "keys=%u value=%zu tier=%s", n,
             cfg->value_size, mc_tier_name(cfg->tier));
    if (cfg->preload == 0) {
        mc_record *rec = NULL;
        mc_result res;
        if (mc_get(run->clients[0], cfg->ns, marker_key, NULL, &rec, &res) ==
                MC_OK &&
            strcmp((const char *)rec->value, marker) == 0) {
            mc_record_free(rec);
            fprintf(stderr, "memcoord-bench: %s/ already holds %u keys of "
                            "%zu B (preload skipped)\n",
                    space, n, cfg->value_size);
            return 0;
        }
        mc_record_free(rec);
    }
    struct preload p = {.run = run, .space = space, .n = n};
    pthread_mutex_init(&p.mu, NULL);
    unsigned n_threads = n < PRELOAD_THREADS ? n : PRELOAD_THREADS;
    struct preload_thread *ts = calloc(n_threads, sizeof *ts);
    char *value = malloc(cfg->value_size + 1);
    if (ts == NULL || value == NULL) {
        fprintf(stderr, "memcoord-bench: out of memory\n");
        free(ts);
        free(value);
        return -1;
    }
    memset(value, 'p', cfg->value_size);
    int64_t t0 = bench_now_ns();
    fprintf(stderr, "memcoord-bench: preloading %u keys %s/... of %zu B\n", n,
            space, cfg->value_size);
    unsigned started = 0;
    for (; started < n_threads; started++) {
        ts[started] = (struct preload_thread){
            .p = &p, .c = run->clients[started % run->n_clients],
            .value = value};
        if (pthread_create(&ts[started].thread, NULL, preload_main,
                           &ts[started]) != 0) {
            break;
        }
    }
    /* Progress once a second until every thread has run out of keys. */
    for (unsigned tick = 1;; tick++) {
        struct timespec ts1 = {0, 100 * 1000 * 1000};
        if (atomic_load(&p.done) >= n || atomic_load(&p.failed) > 0 ||
            atomic_load(&p.next) >= n + started) {
            break;
        }
        nanosleep(&ts1, NULL);
        if (tick % 10 == 0) {
            fprintf(stderr, "memcoord-bench: preload %u/%u\n",
                    atomic_load(&p.done), n);
        }
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(ts[i].thread, NULL);
    }
    free(ts);
    free(value);
    pthread_mutex_destroy(&p.mu);
    if (atomic_load(&p.failed) > 0 || started == 0) {
        fprintf(stderr, "memcoord-bench: preload failed: %s: %s\n",
                mc_errname(p.first_err), p.first_msg);
        return -1;
    }
    mc_result res;
    if (mc_put(run->clients[0], cfg->ns, marker_key, marker, strlen(marker),
               NULL, &res) != MC_OK) {
        fprintf(stderr, "memcoord-bench: preload marker: %s\n", res.message);
        return -1;
    }
    fprintf(stderr, "memcoord-bench: preloaded %u keys in %.1f s\n", n,
            (double)(bench_now_ns() - t0) / 1e9);
    return 0;
}
