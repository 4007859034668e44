/* The history recorder (history.c) against the checker that reads it.
 *
 * Client threads record operations on an in-process model of the store: a
 * versioned register per key behind a mutex, each operation taking effect
 * between its invoke and its completion, some of them answered TIMEOUT
 * (outcome unknown: applied or not, at random). Such a history is
 * linearizable, so checker.py must pass it; the same history with one
 * stale read added after everything returned must fail. That also pins
 * the line format to the one checker.py reads. The answer table
 * (history_outcome_of) is checked on its own. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fault/history.h"

#define THREADS 4
#define OPS_PER_THREAD 400
#define KEYS 3

Test(history_outcome_of, follows_the_table)
{
    bool odd;
    cr_assert_eq(history_outcome_of(true, MC_OK, &odd), HISTORY_OK);
    cr_assert_not(odd);
    cr_assert_eq(history_outcome_of(true, MC_CONFLICT, &odd), HISTORY_OK);
    cr_assert_not(odd);
    cr_assert_eq(history_outcome_of(false, MC_NOT_FOUND, &odd), HISTORY_OK);
    cr_assert_eq(history_outcome_of(true, MC_TIMEOUT, &odd), HISTORY_INFO);
    cr_assert_not(odd);
    cr_assert_eq(history_outcome_of(false, MC_TIMEOUT, &odd), HISTORY_FAIL);
    cr_assert_eq(history_outcome_of(true, MC_UNAVAILABLE, &odd), HISTORY_FAIL);
    cr_assert_not(odd);
    cr_assert_eq(history_outcome_of(true, MC_INVALID_ARGUMENT, &odd),
                 HISTORY_FAIL);
    cr_assert_eq(history_outcome_of(true, MC_NOT_LEADER, &odd), HISTORY_FAIL);
    /* An answer no put gives: unknown outcome, and flagged. */
    cr_assert_eq(history_outcome_of(true, MC_INTERNAL, &odd), HISTORY_INFO);
    cr_assert(odd);
    cr_assert_eq(history_outcome_of(false, MC_INTERNAL, &odd), HISTORY_FAIL);
    cr_assert(odd);
}

/* ---- a model store ---- */

struct model {
    pthread_mutex_t mu;
    char value[KEYS][32];
    uint64_t version[KEYS];
};

static struct model M = {.mu = PTHREAD_MUTEX_INITIALIZER};

struct worker {
    pthread_t thread;
    struct history *h;
    unsigned idx;
};

/* One operation of worker w on the model, recorded around its effect. */
static void model_op(struct worker *w, uint64_t *proc, unsigned *seed,
                     unsigned n)
{
    unsigned k = (unsigned)rand_r(seed) % KEYS;
    char key[16], value[32];
    snprintf(key, sizeof key, "k/%u", k);
    snprintf(value, sizeof value, "%u.%u", w->idx, n);
    unsigned r = (unsigned)rand_r(seed) % 10;
    struct history_op op = {.w = "register", .key = key, .expect = -1};
    op.f = r < 4 ? "get" : r < 7 ? "put" : "cas";
    if (r >= 4) {
        op.value = value;
    }
    pthread_mutex_lock(&M.mu);
    uint64_t now = M.version[k];
    pthread_mutex_unlock(&M.mu);
    if (r >= 7) {
        bool stale = now > 0 && (unsigned)rand_r(seed) % 3 == 0;
        op.expect = (int64_t)(now - stale);
    }
    uint64_t id = history_invoke(w->h, *proc, &op);
    bool timeout = r >= 4 && (unsigned)rand_r(seed) % 12 == 0;
    bool applies = !timeout || rand_r(seed) % 2 == 0;
    char seen[32] = "";
    mc_err rv = MC_OK;
    pthread_mutex_lock(&M.mu);
    uint64_t ver = M.version[k];
    if (r < 4) {
        rv = ver == 0 ? MC_NOT_FOUND : MC_OK;
        snprintf(seen, sizeof seen, "%s", M.value[k]);
    } else if (r < 7 || (uint64_t)op.expect == ver) {
        if (applies) {
            snprintf(M.value[k], sizeof M.value[k], "%s", value);
            ver = ++M.version[k];
        }
    } else {
        rv = MC_CONFLICT;
    }
    pthread_mutex_unlock(&M.mu);
    if (timeout) {
        rv = MC_TIMEOUT;
    }
    enum history_outcome o =
        history_complete(w->h, id, *proc, &op, rv, seen, ver);
    if (o == HISTORY_INFO) {
        *proc = history_proc(w->h);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t proc = history_proc(w->h);
    unsigned seed = w->idx * 7919u + 1;
    for (unsigned n = 0; n < OPS_PER_THREAD; n++) {
        model_op(w, &proc, &seed, n);
    }
    return NULL;
}

static void record_run(const char *path, bool stale_read_at_end)
{
    memset(M.value, 0, sizeof M.value);
    memset(M.version, 0, sizeof M.version);
    struct history *h = history_open(path);
    cr_assert_not_null(h);
    struct worker ws[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        ws[i] = (struct worker){.h = h, .idx = i};
        cr_assert_eq(pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]),
                     0);
    }
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(ws[i].thread, NULL);
    }
    /* A final read of every key, after everything returned. */
    for (unsigned k = 0; k < KEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "k/%u", k);
        struct history_op op = {.w = "register", .f = "get", .key = key,
                                .expect = -1};
        uint64_t proc = history_proc(h);
        uint64_t id = history_invoke(h, proc, &op);
        uint64_t ver = M.version[k];
        const char *val = M.value[k];
        if (stale_read_at_end && k == 0) {
            cr_assert_gt(ver, 1, "key 0 was written fewer than 2 times");
            ver = 0; /* as if the key had never been written */
        }
        history_complete(h, id, proc, &op, ver ? MC_OK : MC_NOT_FOUND, val,
                         ver);
    }
    struct history_counts c;
    history_counts_get(h, &c);
    cr_assert_eq(c.ops, THREADS * OPS_PER_THREAD + KEYS);
    cr_assert_eq(c.ok + c.fail + c.info, c.ops);
    cr_assert_gt(c.info, 0, "no unknown outcome was recorded");
    cr_assert_eq(c.unexpected, 0);
    cr_assert_eq(history_close(h), 0);
}

static void temp_path(char *buf, size_t len, const char *name)
{
    const char *dir = getenv("MEMCOORD_TEST_DIR");
    snprintf(buf, len, "%s/%s-%d.jsonl", dir != NULL ? dir : "/tmp", name,
             (int)getpid());
}

Test(history, linearizable_run_passes_the_checker, .timeout = 120)
{
    char path[512], summary[256];
    temp_path(path, sizeof path, "history-ok");
    record_run(path, false);
    /* Every operation is two lines. */
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    unsigned lines = 0;
    for (int ch; (ch = fgetc(f)) != EOF;) {
        lines += ch == '\n';
    }
    fclose(f);
    cr_assert_eq(lines, 2 * (THREADS * OPS_PER_THREAD + KEYS));
    const char *paths[] = {path};
    int rv = history_check(NULL, paths, 1, 30, 100, summary, sizeof summary);
    cr_assert_eq(rv, 0, "checker said %d: %s", rv, summary);
    cr_assert(strstr(summary, "illegal=0 unknown=0") != NULL, "%s", summary);
    unlink(path);
}

Test(history, stale_final_read_fails_the_checker, .timeout = 120)
{
    char path[512], summary[256];
    temp_path(path, sizeof path, "history-stale");
    record_run(path, true);
    const char *paths[] = {path};
    /* The search of an illegal history explores everything: the version
     * check flags it first, and a short budget keeps the test short. */
    int rv = history_check(NULL, paths, 1, 3, 100, summary, sizeof summary);
    cr_assert_eq(rv, 1, "checker said %d: %s", rv, summary);
    cr_assert(strstr(summary, "illegal=1") != NULL, "%s", summary);
    unlink(path);
}
