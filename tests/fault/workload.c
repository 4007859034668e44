/* workload: register and append clients of a fault run. See workload.h. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fault/workload.h"
#include "tests/lib/harness.h"

#define KEY_BYTES 96u
#define VALUE_BYTES 48u
#define VERIFY_PAUSE_MS 100
/* One mc_watch_next wait, and the pause between failed opens. */
#define WATCH_NEXT_MS 500
#define WATCH_OPEN_PAUSE_MS 100
#define WATCH_OPEN_FIRST_MS 20000

/* One key: a generation of a slot. */
struct key_gen {
    char key[KEY_BYTES];
    uint64_t acked_version;           /* highest an OK write made */
    uint64_t watch_version;           /* highest put the watch saw */
    char acked_value[VALUE_BYTES];    /* register: the value of it */
    char *elems; /* append: acknowledged elements, each followed by ',' */
    size_t elems_len, elems_cap;
};

struct slot {
    pthread_mutex_t mu;
    bool append;
    uint32_t shard;
    unsigned idx;
    unsigned ops; /* on the newest generation */
    struct key_gen *gens;
    unsigned n_gens;
};

struct wthread {
    pthread_t thread;
    struct workload *w;
    unsigned idx;
    bool append;
    bool started;
    mc_client *c;
    uint64_t proc;
    unsigned seed;
    uint64_t n; /* writes made: the values' counter */
    /* The version this thread last saw of each slot's newest key. */
    uint64_t seen[WORKLOAD_SLOTS_MAX];
    unsigned seen_gen[WORKLOAD_SLOTS_MAX];
};

struct workload {
    struct workload_config cfg;
    struct history *h;
    pthread_mutex_t mu;
    pthread_cond_t gate;  /* paused turned false, or stop */
    pthread_cond_t idle;  /* busy reached 0 */
    bool paused, stop;
    unsigned busy;
    struct slot slots[WORKLOAD_SLOTS_MAX];
    unsigned n_slots;
    unsigned first_append; /* slots [first_append, n_slots) are append's */
    struct wthread threads[WORKLOAD_THREADS_MAX];
    unsigned n_threads;
    uint64_t ops, acked; /* under mu */
    /* The watch: its thread, client and counters (counters under mu). */
    struct {
        pthread_t thread;
        bool started;
        bool drain;   /* under mu: the writers stopped, catch up and stop */
        mc_client *c;
        mc_watch *wt;
        uint64_t proc;
        uint64_t events, reopens, compacted, errors, behind;
    } watch;
};

/* ---- keys ---- */

static void gen_add(struct workload *w, struct slot *s)
{
    if (s->n_gens % 16 == 0) {
        s->gens = realloc(s->gens, (s->n_gens + 16) * sizeof *s->gens);
    }
    struct key_gen *g = &s->gens[s->n_gens];
    memset(g, 0, sizeof *g);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%ss%u/k%u/g%u",
             s->append ? "app/" : WORKLOAD_REGISTER_PREFIX, s->shard, s->idx,
             s->n_gens);
    harness_key_in_shard(w->cfg.ns, w->cfg.n_shards, prefix, s->shard, g->key,
                         sizeof g->key);
    s->n_gens++;
    s->ops = 0;
}

/* The key of slot s to use now (copied into key); *gen its generation. */
static void slot_take(struct workload *w, struct slot *s, char *key,
                      unsigned *gen)
{
    pthread_mutex_lock(&s->mu);
    if (s->ops >= w->cfg.ops_per_key) {
        gen_add(w, s);
    }
    s->ops++;
    *gen = s->n_gens - 1;
    memcpy(key, s->gens[*gen].key, KEY_BYTES);
    pthread_mutex_unlock(&s->mu);
}

/* An acknowledged write of version to generation gen of s. */
static void slot_acked(struct slot *s, unsigned gen, uint64_t version,
                       const char *value, const char *elem)
{
    pthread_mutex_lock(&s->mu);
    struct key_gen *g = &s->gens[gen];
    if (version > g->acked_version) {
        g->acked_version = version;
        snprintf(g->acked_value, sizeof g->acked_value, "%s",
                 elem == NULL ? value : "");
    }
    if (elem != NULL) {
        size_t need = g->elems_len + strlen(elem) + 2;
        if (need > g->elems_cap) {
            g->elems_cap = need * 2;
            g->elems = realloc(g->elems, g->elems_cap);
        }
        g->elems_len += (size_t)sprintf(g->elems + g->elems_len, "%s,", elem);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- the gate: pause and stop ---- */

static bool gate_enter(struct workload *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->paused && !w->stop) {
        pthread_cond_wait(&w->gate, &w->mu);
    }
    bool go = !w->stop;
    if (go) {
        w->busy++;
        w->ops++;
    }
    pthread_mutex_unlock(&w->mu);
    return go;
}

static void gate_leave(struct workload *w, bool acked)
{
    pthread_mutex_lock(&w->mu);
    w->busy--;
    w->acked += acked;
    if (w->busy == 0) {
        pthread_cond_broadcast(&w->idle);
    }
    pthread_mutex_unlock(&w->mu);
}

/* ---- operations ---- */

/* Record the completion and move to a new process after an unknown. */
static void complete(struct wthread *t, uint64_t id,
                     const struct history_op *op, mc_err rv,
                     const char *value_read, uint64_t version)
{
    if (history_complete(t->w->h, id, t->proc, op, rv, value_read, version) ==
        HISTORY_INFO) {
        t->proc = history_proc(t->w->h);
    }
}

/* get: on MC_OK *value (malloc'd, NUL-terminated) and *version. */
static mc_err do_get(struct wthread *t, const char *key, const char *wname,
                     const char *f, char **value, uint64_t *version)
{
    struct history_op op = {.w = wname, .f = f, .key = key, .expect = -1};
    uint64_t id = history_invoke(t->w->h, t->proc, &op);
    mc_record *rec = NULL;
    mc_result res;
    mc_err rv = mc_get(t->c, t->w->cfg.ns, key, NULL, &rec, &res);
    *value = NULL;
    *version = 0;
    if (rv == MC_OK) {
        *value = strndup((const char *)rec->value, rec->value_len);
        *version = rec->version;
        mc_record_free(rec);
    }
    complete(t, id, &op, rv, *value, *version);
    return rv;
}

static mc_err do_put(struct wthread *t, struct slot *s, unsigned gen,
                     const char *key, const char *f, const char *value,
                     int64_t expect, const char *elem, uint64_t *version)
{
    struct history_op op = {.w = s->append ? "append" : "register",
                            .f = f,
                            .key = key,
                            .value = value,
                            .expect = expect,
                            .elem = elem};
    uint64_t id = history_invoke(t->w->h, t->proc, &op);
    mc_put_opts po = MC_PUT_OPTS_INIT;
    po.expect_version = expect >= 0 ? expect : MC_VERSION_ANY;
    mc_result res;
    mc_err rv = mc_put(t->c, t->w->cfg.ns, key, value, strlen(value), &po,
                       &res);
    complete(t, id, &op, rv, NULL, res.version);
    *version = res.version;
    if (rv == MC_OK) {
        slot_acked(s, gen, res.version, value, elem);
    }
    return rv;
}

static bool register_op(struct wthread *t)
{
    struct workload *w = t->w;
    unsigned si = (unsigned)rand_r(&t->seed) % w->first_append;
    struct slot *s = &w->slots[si];
    char key[KEY_BYTES];
    unsigned gen;
    slot_take(w, s, key, &gen);
    if (t->seen_gen[si] != gen) {
        t->seen_gen[si] = gen;
        t->seen[si] = 0;
    }
    unsigned r = (unsigned)rand_r(&t->seed) % 10;
    if (r < 4) {
        char *value;
        uint64_t version;
        mc_err rv = do_get(t, key, "register", "get", &value, &version);
        if (rv == MC_OK || rv == MC_NOT_FOUND) {
            t->seen[si] = version;
        }
        free(value);
        return false;
    }
    char value[VALUE_BYTES];
    snprintf(value, sizeof value, "r%u.%" PRIu64, t->idx, ++t->n);
    bool cas = r >= 7;
    uint64_t version;
    mc_err rv = do_put(t, s, gen, key, cas ? "cas" : "put", value,
                       cas ? (int64_t)t->seen[si] : -1, NULL, &version);
    if (rv == MC_OK || rv == MC_CONFLICT) {
        t->seen[si] = version;
    }
    return rv == MC_OK;
}

static bool append_op(struct wthread *t)
{
    struct workload *w = t->w;
    unsigned si = w->first_append +
                  (unsigned)rand_r(&t->seed) % (w->n_slots - w->first_append);
    struct slot *s = &w->slots[si];
    char key[KEY_BYTES];
    unsigned gen;
    slot_take(w, s, key, &gen);
    char *list;
    uint64_t version;
    mc_err rv = do_get(t, key, "append", "read", &list, &version);
    if (rv != MC_OK && rv != MC_NOT_FOUND) {
        free(list);
        return false;
    }
    char elem[VALUE_BYTES];
    snprintf(elem, sizeof elem, "a%u.%" PRIu64, t->idx, ++t->n);
    size_t len = (list != NULL ? strlen(list) + 1 : 0) + strlen(elem) + 1;
    char *next = malloc(len);
    snprintf(next, len, "%s%s%s", list != NULL ? list : "",
             list != NULL ? "," : "", elem);
    free(list);
    uint64_t seen;
    rv = do_put(t, s, gen, key, "append", next, (int64_t)version, elem, &seen);
    free(next);
    return rv == MC_OK;
}

static void *thread_main(void *arg)
{
    struct wthread *t = arg;
    while (gate_enter(t->w)) {
        bool acked = t->append ? append_op(t) : register_op(t);
        gate_leave(t->w, acked);
    }
    return NULL;
}

/* ---- the watch ---- */

/* The register key gen that key names, or NULL (its slot's lock taken
 * when not NULL: the caller unlocks *sp). */
static struct key_gen *watch_gen_of(struct workload *w, const char *key,
                                    struct slot **sp)
{
    unsigned sh, k, g;
    if (sscanf(key, WORKLOAD_REGISTER_PREFIX "s%u/k%u/g%u/", &sh, &k, &g) !=
            3 ||
        sh >= w->cfg.n_shards || k >= w->cfg.register_slots_per_shard) {
        return NULL;
    }
    unsigned si = sh * w->cfg.register_slots_per_shard + k;
    if (si >= w->first_append) {
        return NULL;
    }
    struct slot *s = &w->slots[si];
    pthread_mutex_lock(&s->mu);
    if (g >= s->n_gens) {
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    *sp = s;
    return &s->gens[g];
}

/* Acknowledged register writes the watch has not seen yet. */
static uint64_t watch_behind(struct workload *w)
{
    uint64_t behind = 0;
    for (unsigned i = 0; i < w->first_append; i++) {
        struct slot *s = &w->slots[i];
        pthread_mutex_lock(&s->mu);
        for (unsigned g = 0; g < s->n_gens; g++) {
            behind += s->gens[g].watch_version < s->gens[g].acked_version;
        }
        pthread_mutex_unlock(&s->mu);
    }
    return behind;
}

/* Open the watch (from token when not NULL), retrying until deadline_ms.
 * Other answers than UNAVAILABLE and TIMEOUT are recorded as errors. */
static bool watch_open(struct workload *w, const char *token,
                       int64_t deadline_ms)
{
    for (;;) {
        mc_watch_opts o = MC_WATCH_OPTS_INIT;
        o.prefix = true;
        o.resume_token = token;
        mc_result res;
        mc_err rv = mc_watch_open(w->watch.c, w->cfg.ns,
                                  WORKLOAD_REGISTER_PREFIX, &o, &w->watch.wt,
                                  &res);
        if (rv == MC_OK) {
            history_watch_open(w->h, w->watch.proc, WORKLOAD_REGISTER_PREFIX,
                               token != NULL);
            return true;
        }
        w->watch.wt = NULL;
        if (rv != MC_UNAVAILABLE && rv != MC_TIMEOUT) {
            history_watch_note(w->h, w->watch.proc, "error", "open", rv, 0);
            fprintf(stderr, "workload: watch open: %s: %s\n", mc_errname(rv),
                    res.message);
            pthread_mutex_lock(&w->mu);
            w->watch.errors++;
            pthread_mutex_unlock(&w->mu);
        }
        pthread_mutex_lock(&w->mu);
        if (w->watch.drain && deadline_ms == INT64_MAX) {
            deadline_ms = harness_now_ms() + WORKLOAD_WATCH_DRAIN_MS;
        }
        pthread_mutex_unlock(&w->mu);
        if (harness_now_ms() >= deadline_ms) {
            fprintf(stderr, "workload: watch open: %s: %s (giving up)\n",
                    mc_errname(rv), res.message);
            return false;
        }
        harness_pause_ms(WATCH_OPEN_PAUSE_MS);
    }
}

/* Close the watch and reopen it from its token. */
static bool watch_reopen(struct workload *w, const char *why,
                         int64_t deadline_ms)
{
    char *token = strdup(mc_watch_token(w->watch.wt));
    history_watch_note(w->h, w->watch.proc, "close", why, MC_OK, 0);
    mc_watch_close(w->watch.wt);
    w->watch.wt = NULL;
    bool ok = watch_open(w, token, deadline_ms);
    free(token);
    pthread_mutex_lock(&w->mu);
    w->watch.reopens += ok;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

static void watch_record(struct workload *w, const mc_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const mc_event *e = &ev[i];
        history_watch_event(w->h, w->watch.proc, e);
        struct slot *s;
        struct key_gen *g = watch_gen_of(w, e->record.key, &s);
        if (g != NULL) {
            if ((e->type == MC_EVENT_PUT || e->type == MC_EVENT_PROMOTE) &&
                e->record.version > g->watch_version) {
                g->watch_version = e->record.version;
            }
            pthread_mutex_unlock(&s->mu);
        }
    }
    pthread_mutex_lock(&w->mu);
    w->watch.events += n;
    pthread_mutex_unlock(&w->mu);
}

static void *watch_main(void *arg)
{
    struct workload *w = arg;
    int64_t opened_ms = harness_now_ms();
    int64_t drain_end = INT64_MAX;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        bool drain = w->watch.drain;
        pthread_mutex_unlock(&w->mu);
        int64_t now = harness_now_ms();
        if (drain && drain_end == INT64_MAX) {
            drain_end = now + WORKLOAD_WATCH_DRAIN_MS;
        }
        if (drain && (watch_behind(w) == 0 || now >= drain_end)) {
            break;
        }
        if (w->watch.wt == NULL) {
            break; /* a reopen gave up: the checker says what is missing */
        }
        if (now - opened_ms >= w->cfg.watch_reopen_ms) {
            if (!watch_reopen(w, "periodic", drain ? drain_end : INT64_MAX)) {
                break;
            }
            opened_ms = harness_now_ms();
            continue;
        }
        mc_event *ev;
        size_t n;
        mc_result res;
        mc_err rv = mc_watch_next(w->watch.wt, WATCH_NEXT_MS, &ev, &n, &res);
        if (rv == MC_OK) {
            watch_record(w, ev, n);
            mc_events_free(ev, n);
        } else if (rv == MC_COMPACTED) {
            /* The watch moved that shard on: events were lost to it. */
            history_watch_note(w->h, w->watch.proc, "compacted", NULL, rv,
                               res.mod_rev);
            fprintf(stderr, "workload: watch COMPACTED (now at revision %"
                            PRIu64 "): %s\n", res.mod_rev, res.message);
            pthread_mutex_lock(&w->mu);
            w->watch.compacted++;
            pthread_mutex_unlock(&w->mu);
        } else if (rv != MC_UNAVAILABLE) {
            history_watch_note(w->h, w->watch.proc, "error", "next", rv, 0);
            fprintf(stderr, "workload: watch next: %s: %s\n", mc_errname(rv),
                    res.message);
            pthread_mutex_lock(&w->mu);
            w->watch.errors++;
            pthread_mutex_unlock(&w->mu);
            if (!watch_reopen(w, mc_errname(rv),
                              drain ? drain_end : INT64_MAX)) {
                break;
            }
            opened_ms = harness_now_ms();
        }
    }
    uint64_t behind = watch_behind(w);
    pthread_mutex_lock(&w->mu);
    w->watch.behind = behind;
    pthread_mutex_unlock(&w->mu);
    if (behind > 0) {
        fprintf(stderr, "workload: the watch did not see %" PRIu64
                        " keys' last acknowledged writes\n", behind);
    }
    mc_watch_close(w->watch.wt);
    w->watch.wt = NULL;
    return NULL;
}

/* Open the watch before any write, and start its thread. */
static bool watch_start(struct workload *w)
{
    mc_options o = {.timeout_ms = w->cfg.timeout_ms};
    mc_result res;
    if (mc_client_open(w->cfg.endpoints, &o, &w->watch.c, &res) != MC_OK) {
        fprintf(stderr, "workload: watch client: %s\n", res.message);
        return false;
    }
    w->watch.proc = history_proc(w->h);
    if (!watch_open(w, NULL, harness_now_ms() + WATCH_OPEN_FIRST_MS)) {
        return false;
    }
    w->watch.started =
        pthread_create(&w->watch.thread, NULL, watch_main, w) == 0;
    return w->watch.started;
}

/* ---- start, pause, stop ---- */

static void slots_make(struct workload *w)
{
    const struct workload_config *c = &w->cfg;
    for (int append = 0; append < 2; append++) {
        if (append) {
            w->first_append = w->n_slots;
        }
        unsigned per = append ? c->append_slots_per_shard
                              : c->register_slots_per_shard;
        for (uint32_t sh = 0; sh < c->n_shards; sh++) {
            for (unsigned i = 0; i < per && w->n_slots < WORKLOAD_SLOTS_MAX;
                 i++) {
                struct slot *s = &w->slots[w->n_slots++];
                pthread_mutex_init(&s->mu, NULL);
                s->append = append;
                s->shard = sh;
                s->idx = i;
                gen_add(w, s);
            }
        }
    }
}

struct workload *workload_start(const struct workload_config *cfg,
                                struct history *h)
{
    unsigned threads = cfg->register_threads + cfg->append_threads;
    bool reg = cfg->register_threads > 0, app = cfg->append_threads > 0;
    if (threads > WORKLOAD_THREADS_MAX || cfg->n_shards == 0 ||
        (reg && cfg->register_slots_per_shard == 0) ||
        (app && cfg->append_slots_per_shard == 0) ||
        (cfg->watch && (!reg || cfg->watch_reopen_ms <= 0)) ||
        cfg->n_shards * (cfg->register_slots_per_shard +
                         cfg->append_slots_per_shard) > WORKLOAD_SLOTS_MAX) {
        fprintf(stderr, "workload: bad configuration\n");
        return NULL;
    }
    struct workload *w = calloc(1, sizeof *w);
    w->cfg = *cfg;
    w->h = h;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->gate, NULL);
    pthread_cond_init(&w->idle, NULL);
    slots_make(w);
    if (cfg->watch && !watch_start(w)) {
        workload_free(w);
        return NULL;
    }
    for (unsigned i = 0; i < threads; i++) {
        struct wthread *t = &w->threads[i];
        t->w = w;
        t->idx = i;
        t->append = i >= cfg->register_threads;
        t->seed = 0x9e3779b9u * (i + 1) ^ (unsigned)harness_now_ms();
        t->proc = history_proc(h);
        mc_options o = {.timeout_ms = cfg->timeout_ms};
        mc_result res;
        if (mc_client_open(cfg->endpoints, &o, &t->c, &res) != MC_OK) {
            fprintf(stderr, "workload: client: %s\n", res.message);
            break;
        }
        w->n_threads++;
    }
    for (unsigned i = 0; i < w->n_threads; i++) {
        struct wthread *t = &w->threads[i];
        t->started =
            pthread_create(&t->thread, NULL, thread_main, t) == 0;
    }
    if (w->n_threads < threads) {
        workload_stop(w);
        workload_free(w);
        return NULL;
    }
    return w;
}

void workload_pause(struct workload *w)
{
    pthread_mutex_lock(&w->mu);
    w->paused = true;
    while (w->busy > 0) {
        pthread_cond_wait(&w->idle, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
}

void workload_resume(struct workload *w)
{
    pthread_mutex_lock(&w->mu);
    w->paused = false;
    pthread_cond_broadcast(&w->gate);
    pthread_mutex_unlock(&w->mu);
}

void workload_stop(struct workload *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->gate);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->n_threads; i++) {
        if (w->threads[i].started) {
            pthread_join(w->threads[i].thread, NULL);
            w->threads[i].started = false;
        }
    }
    /* Every write has returned: the watch catches up, then stops. */
    if (w->watch.started) {
        pthread_mutex_lock(&w->mu);
        w->watch.drain = true;
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->watch.thread, NULL);
        w->watch.started = false;
    }
}

void workload_counts_get(struct workload *w, struct workload_counts *out)
{
    pthread_mutex_lock(&w->mu);
    out->ops = w->ops;
    out->acked_writes = w->acked;
    out->keys = 0;
    out->watch_events = w->watch.events;
    out->watch_reopens = w->watch.reopens;
    out->watch_compacted = w->watch.compacted;
    out->watch_errors = w->watch.errors;
    out->watch_behind = w->watch.behind;
    for (unsigned i = 0; i < w->n_slots; i++) {
        out->keys += w->slots[i].n_gens;
    }
    pthread_mutex_unlock(&w->mu);
}

/* ---- the final account ---- */

/* Is elem one of the comma-separated elements of list? */
static bool list_has(const char *list, const char *elem)
{
    size_t n = strlen(elem);
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, elem, n) == 0) {
            return true;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return false;
}

/* What one key lost: compare the final read with the acknowledged. */
static uint64_t key_lost(const struct slot *s, const struct key_gen *g,
                         const char *value, uint64_t version)
{
    uint64_t lost = 0;
    if (version < g->acked_version) {
        fprintf(stderr, "workload: %s is at version %" PRIu64 " but version "
                        "%" PRIu64 " was acknowledged\n",
                g->key, version, g->acked_version);
        lost++;
    } else if (!s->append && g->acked_version > 0 &&
               version == g->acked_version &&
               (value == NULL || strcmp(value, g->acked_value) != 0)) {
        fprintf(stderr, "workload: %s version %" PRIu64 " holds %s, but %s "
                        "was acknowledged as that version\n",
                g->key, version, value != NULL ? value : "nothing",
                g->acked_value);
        lost++;
    }
    for (char *p = g->elems; s->append && p != NULL && *p != '\0';) {
        char *end = strchr(p, ',');
        *end = '\0';
        if (value == NULL || !list_has(value, p)) {
            fprintf(stderr, "workload: %s lost acknowledged element %s\n",
                    g->key, p);
            lost++;
        }
        *end = ',';
        p = end + 1;
    }
    return lost;
}

uint64_t workload_verify(struct workload *w, int64_t deadline_ms,
                         uint64_t *unread)
{
    struct wthread t = {.w = w, .proc = history_proc(w->h)};
    mc_options o = {.timeout_ms = w->cfg.timeout_ms};
    mc_result res;
    *unread = 0;
    if (mc_client_open(w->cfg.endpoints, &o, &t.c, &res) != MC_OK) {
        fprintf(stderr, "workload: client: %s\n", res.message);
        *unread = 1;
        return 0;
    }
    uint64_t lost = 0;
    for (unsigned i = 0; i < w->n_slots; i++) {
        struct slot *s = &w->slots[i];
        for (unsigned gi = 0; gi < s->n_gens; gi++) {
            struct key_gen *g = &s->gens[gi];
            char *value = NULL;
            uint64_t version = 0;
            mc_err rv;
            while ((rv = do_get(&t, g->key, s->append ? "append" : "register",
                                s->append ? "read" : "get", &value,
                                &version)) != MC_OK &&
                   rv != MC_NOT_FOUND && harness_now_ms() < deadline_ms) {
                harness_pause_ms(VERIFY_PAUSE_MS);
            }
            if (rv == MC_OK || rv == MC_NOT_FOUND) {
                lost += key_lost(s, g, value, version);
            } else {
                fprintf(stderr, "workload: final read of %s: %s\n", g->key,
                        mc_errname(rv));
                (*unread)++;
            }
            free(value);
        }
    }
    mc_client_close(t.c);
    return lost;
}

void workload_free(struct workload *w)
{
    if (w == NULL) {
        return;
    }
    if (w->watch.started) {
        workload_stop(w);
    }
    for (unsigned i = 0; i < w->n_threads; i++) {
        mc_client_close(w->threads[i].c);
    }
    mc_watch_close(w->watch.wt);
    mc_client_close(w->watch.c);
    for (unsigned i = 0; i < w->n_slots; i++) {
        struct slot *s = &w->slots[i];
        for (unsigned g = 0; g < s->n_gens; g++) {
            free(s->gens[g].elems);
        }
        free(s->gens);
        pthread_mutex_destroy(&s->mu);
    }
    pthread_cond_destroy(&w->idle);
    pthread_cond_destroy(&w->gate);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
