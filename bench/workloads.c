/* The workloads of memcoord-bench: one operation of each, the preload of
 * the keys they read. (The watch workload runs its own way, in watch.c.)
 *
 * An operation runs in a slot (bench.h) as a chain of asynchronous calls:
 * put and get are one call; a read-then-CAS is a get, then a conditional
 * put from the get's callback, and again from the put's callback on a
 * conflict. The callback of the chain's last call counts the operation
 * and starts the slot's next one (bench_slot_next). list, which has no
 * asynchronous call, runs synchronously on the slot's own thread.
 *
 * Key spaces (namespace cfg->ns, "bench" by default):
 *   k/00000000 ..   put, get, list, mixed: --keys keys, chosen at random
 *   cas/00000000 .. cas: uncontended, slot w owns the keys i with
 *                   i % inflight == w; contended, every slot picks among
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

/* A broken invariant of the tool itself: say where, and stop. */
#define ASSERT_SLOTS(x)                                                     \
    do {                                                                    \
        if (!(x)) {                                                         \
            fprintf(stderr, "memcoord-bench: %s:%d: %s\n", __FILE__,        \
                    __LINE__, #x);                                          \
            abort();                                                        \
        }                                                                   \
    } while (0)

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

/* ---- the end of an operation ---- */

void bench_op_end(struct bench_slot *s, int64_t t0_ns, bool measured,
                  struct bench_counts *oc, mc_err rv)
{
    struct bench_run *run = s->run;
    const struct bench_cfg *cfg = run->cfg;
    int64_t t1 = bench_now_ns();
    if (rv != MC_OK) {
        count_err(oc, rv);
    }
    atomic_fetch_add(&s->done, 1);
    /* Counted: started after the warm-up, and (by duration) ended before
     * the window closed. */
    if (!measured || (cfg->ops == 0 && atomic_load(&run->stop))) {
        return;
    }
    oc->ops = 1;
    bench_counts_add(&s->cnt, oc);
    if (rv != MC_OK) {
        atomic_fetch_add(&s->failed, 1);
    }
    bench_samples_add(&s->lat, (uint64_t)(t1 - t0_ns));
    if (cfg->ops > 0) {
        int64_t last = atomic_load(&run->last_end_ns);
        while (last < t1 &&
               !atomic_compare_exchange_weak(&run->last_end_ns, &last, t1)) {
        }
    }
}

/* The operation in flight in s ended with rv (from a callback): count it
 * and start the next. */
static void slot_op_done(struct bench_slot *s, mc_err rv)
{
    bench_op_end(s, s->t0_ns, s->measured, &s->oc, rv);
    bench_slot_next(s);
}

/* ---- asynchronous operations: each returns MC_OK when its first call
 * started (a callback then ends it), or the code of a call that could not
 * start ---- */

static void put_cb(void *arg, mc_err code, const mc_result *res)
{
    struct bench_slot *s = arg;
    s->oc.writes++;
    slot_op_done(s, code);
}

static mc_err op_put(struct bench_slot *s, const char *space, uint64_t i)
{
    const struct bench_cfg *cfg = s->run->cfg;
    bench_key(s->key, sizeof s->key, space, i);
    mc_put_opts po = MC_PUT_OPTS_INIT;
    po.tier = cfg->tier;
    s->op = SLOT_PUT;
    mc_result res;
    mc_err rv = mc_put_async(s->c, cfg->ns, s->key, s->value, cfg->value_size,
                             &po, &res, put_cb, s);
    if (rv != MC_OK) {
        s->oc.writes++;
    }
    return rv;
}

static void get_cb(void *arg, mc_err code, mc_record *rec,
                   const mc_result *res)
{
    struct bench_slot *s = arg;
    s->oc.reads++;
    mc_record_free(rec);
    slot_op_done(s, code);
}

static mc_err op_get(struct bench_slot *s, bool serializable)
{
    mc_read_opts ro = {.serializable = serializable};
    s->op = SLOT_GET;
    mc_result res;
    mc_err rv = mc_get_async(s->c, s->run->cfg->ns, s->key, &ro, &res,
                             get_cb, s);
    if (rv != MC_OK) {
        s->oc.reads++;
    }
    return rv;
}

static mc_err cas_try(struct bench_slot *s);

/* The conditional put of a read-then-CAS ended. */
static void cas_put_cb(void *arg, mc_err code, const mc_result *res)
{
    struct bench_slot *s = arg;
    s->oc.writes++;
    if (code == MC_OK) {
        s->oc.cas_ok++;
        if (s->cached != NULL) {
            *s->cached = res->version;
        }
        slot_op_done(s, MC_OK);
        return;
    }
    if (code != MC_CONFLICT) {
        slot_op_done(s, code);
        return;
    }
    s->oc.conflicts++;
    if (s->cached != NULL) {
        /* The answer names the current version (0: deleted). */
        *s->cached = res->version;
    }
    s->tries++;
    mc_err rv = cas_try(s); /* a fresh read, then the put again */
    if (rv != MC_OK) {
        slot_op_done(s, rv);
    }
}

static mc_err cas_put(struct bench_slot *s)
{
    const struct bench_cfg *cfg = s->run->cfg;
    mc_put_opts po = MC_PUT_OPTS_INIT;
    po.tier = cfg->tier;
    po.expect_version = (int64_t)s->expect;
    s->op = SLOT_CAS_PUT;
    mc_result res;
    mc_err rv = mc_put_async(s->c, cfg->ns, s->key, s->value, cfg->value_size,
                             &po, &res, cas_put_cb, s);
    if (rv != MC_OK) {
        s->oc.writes++;
    }
    return rv;
}

/* The read of a read-then-CAS ended: put with the version read (0 when
 * missing: create it). */
static void cas_get_cb(void *arg, mc_err code, mc_record *rec,
                       const mc_result *res)
{
    struct bench_slot *s = arg;
    s->oc.reads++;
    if (code == MC_OK) {
        s->expect = rec->version;
    } else if (code == MC_NOT_FOUND) {
        s->expect = 0;
    }
    mc_record_free(rec);
    if (code != MC_OK && code != MC_NOT_FOUND) {
        slot_op_done(s, code);
        return;
    }
    mc_err rv = cas_put(s);
    if (rv != MC_OK) {
        slot_op_done(s, rv);
    }
}

/* One try of the read-then-CAS of s->key: the read (or, in
 * CAS_READ_CACHED mode, the version the slot believes), then the put. */
static mc_err cas_try(struct bench_slot *s)
{
    const struct bench_cfg *cfg = s->run->cfg;
    if (s->tries >= BENCH_CAS_TRIES_MAX) {
        return MC_CONFLICT;
    }
    if (cfg->cas_read == CAS_READ_CACHED && s->cached != NULL &&
        *s->cached != 0) {
        s->expect = *s->cached;
        return cas_put(s);
    }
    mc_read_opts ro = {.serializable = cfg->cas_read != CAS_READ_LINEARIZABLE};
    s->op = SLOT_CAS_GET;
    mc_result res;
    mc_err rv = mc_get_async(s->c, cfg->ns, s->key, &ro, &res, cas_get_cb, s);
    if (rv != MC_OK) {
        s->oc.reads++;
    }
    return rv;
}

/* Read-then-CAS of s->key until it succeeds. s->cached (may be NULL) is
 * the version the slot believes the key has (0: unknown); it is used
 * instead of a read in CAS_READ_CACHED mode and kept up to date. */
static mc_err op_cas(struct bench_slot *s, uint64_t *cached)
{
    s->cached = cached;
    s->tries = 0;
    return cas_try(s);
}

static mc_err op_cas_workload(struct bench_slot *s)
{
    const struct bench_cfg *cfg = s->run->cfg;
    uint64_t i;
    uint64_t *cached = NULL;
    if (cfg->hot_keys > 0) {
        i = bench_rand(&s->rng) % cfg->hot_keys;
    } else {
        /* Slot w owns keys w, w + inflight, w + 2 inflight, ... */
        uint64_t owned = cfg->keys / cfg->inflight;
        uint64_t j = bench_rand(&s->rng) % owned;
        i = s->id + j * cfg->inflight;
        cached = &s->versions[j];
    }
    unsigned n;
    bench_key(s->key, sizeof s->key, space_of(cfg, &n), i);
    return op_cas(s, cached);
}

/* Agent-like: 70% get, 20% put, 10% read-then-CAS, over the k/ keys. */
static mc_err op_mixed(struct bench_slot *s)
{
    const struct bench_cfg *cfg = s->run->cfg;
    uint64_t r = bench_rand(&s->rng);
    uint64_t i = (r >> 8) % cfg->keys;
    unsigned pick = (unsigned)(r % 100);
    unsigned n;
    const char *space = space_of(cfg, &n);
    bench_key(s->key, sizeof s->key, space, i);
    if (pick < 70) {
        return op_get(s, cfg->serializable);
    }
    if (pick < 90) {
        return op_put(s, space, i);
    }
    return op_cas(s, NULL);
}

/* Start one operation of the run's workload in s. */
static mc_err op_start(struct bench_slot *s)
{
    const struct bench_cfg *cfg = s->run->cfg;
    unsigned n;
    const char *space = space_of(cfg, &n);
    switch (cfg->workload) {
    case WL_PUT:
        return op_put(s, space, bench_rand(&s->rng) % n);
    case WL_LOAD:
        return op_put(s, space,
                      atomic_fetch_add(&s->run->load_next, 1) % n);
    case WL_GET:
        bench_key(s->key, sizeof s->key, space, bench_rand(&s->rng) % n);
        return op_get(s, cfg->serializable);
    case WL_CAS:
        return op_cas_workload(s);
    case WL_MIXED:
        return op_mixed(s);
    default:
        return MC_INVALID_ARGUMENT;
    }
}

bool bench_workload_async(const struct bench_cfg *cfg)
{
    return cfg->workload != WL_LIST && cfg->workload != WL_WATCH;
}

/* s starts nothing more: tell its worker. */
static void slot_retire(struct bench_slot *s)
{
    struct bench_worker *w = s->worker;
    pthread_mutex_lock(&w->mu);
    ASSERT_SLOTS(w->active > 0);
    if (--w->active == 0) {
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

void bench_slot_next(struct bench_slot *s)
{
    struct bench_run *run = s->run;
    const struct bench_cfg *cfg = run->cfg;
    /* A start that fails at once ends its operation here; the loop then
     * starts the next, so no failure recurses. */
    for (;;) {
        if (atomic_load(&run->stop)) {
            slot_retire(s);
            return;
        }
        bool measured = atomic_load(&run->measuring);
        if (measured && cfg->ops > 0 &&
            atomic_fetch_sub(&run->ops_left, 1) <= 0) {
            slot_retire(s);
            return;
        }
        memset(&s->oc, 0, sizeof s->oc);
        s->measured = measured;
        s->t0_ns = bench_now_ns();
        mc_err rv = op_start(s);
        if (rv == MC_OK) {
            return; /* its callback goes on */
        }
        bench_op_end(s, s->t0_ns, s->measured, &s->oc, rv);
    }
}

/* ---- synchronous operations (list) ---- */

static mc_err op_list(struct bench_slot *s, struct bench_counts *oc)
{
    const struct bench_cfg *cfg = s->run->cfg;
    unsigned n;
    const char *space = space_of(cfg, &n);
    char after[BENCH_KEY_BYTES_MAX], prefix[BENCH_KEY_BYTES_MAX];
    bench_key(after, sizeof after, space, bench_rand(&s->rng) % n);
    snprintf(prefix, sizeof prefix, "%s/", space);
    mc_list_opts lo = {.start_after = after,
                       .limit = cfg->list_limit,
                       .serializable = cfg->serializable};
    mc_page *page = NULL;
    mc_result res;
    mc_err rv = mc_list(s->c, cfg->ns, prefix, &lo, &page, &res);
    oc->reads++;
    if (rv == MC_OK) {
        oc->records += page->n;
    }
    mc_page_free(page);
    return rv;
}

mc_err bench_op_sync(struct bench_slot *s, struct bench_counts *oc)
{
    mc_err rv = s->run->cfg->workload == WL_LIST ? op_list(s, oc)
                                                 : MC_INVALID_ARGUMENT;
    return rv;
}

int bench_slot_init(struct bench_slot *s)
{
    const struct bench_cfg *cfg = s->run->cfg;
    s->value = malloc(cfg->value_size + 1);
    if (s->value == NULL) {
        return -1;
    }
    /* Printable bytes that differ per slot, so values are not all
     * alike (nothing here compresses, but a reader can tell them apart). */
    for (size_t i = 0; i < cfg->value_size; i++) {
        s->value[i] = (char)('a' + (s->id + i) % 26);
    }
    s->value[cfg->value_size] = '\0';
    if (cfg->workload == WL_CAS && cfg->hot_keys == 0) {
        s->versions = calloc(cfg->keys / cfg->inflight + 1,
                             sizeof *s->versions);
        if (s->versions == NULL) {
            return -1;
        }
    }
    return 0;
}

void bench_slot_fini(struct bench_slot *s)
{
    free(s->value);
    free(s->versions);
    bench_samples_free(&s->lat);
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
