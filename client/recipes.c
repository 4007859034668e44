/* Recipes of libmemcoord: update with retry and checkpoints, built on the
 * public calls only (see memcoord.h). A checkpoint record's value is
 * "mccp STEP\n" followed by the state bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/internal.h"

#define UPDATE_CONFLICTS_DEFAULT 1000u
#define UPDATE_BACKOFF_MS_DEFAULT 2
#define UPDATE_BACKOFF_GROWTH_MAX 64
#define CHECKPOINT_MAGIC "mccp "

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

mc_err mc_update(mc_client *c, const char *ns, const char *key,
                 mc_update_fn fn, void *arg, const mc_update_opts *opts,
                 mc_result *res)
{
    ASSERT(c != NULL);
    ASSERT(fn != NULL);
    mc_update_opts o = opts != NULL ? *opts : (mc_update_opts){0};
    unsigned max_conflicts =
        o.max_conflicts ? o.max_conflicts : UPDATE_CONFLICTS_DEFAULT;
    int backoff = o.backoff_ms > 0 ? o.backoff_ms : UPDATE_BACKOFF_MS_DEFAULT;
    int backoff_max = backoff * UPDATE_BACKOFF_GROWTH_MAX;
    unsigned seed = (unsigned)(uintptr_t)&o ^ (unsigned)base_mono_ms();
    for (unsigned conflicts = 0;; conflicts++) {
        mc_record *cur = NULL;
        mc_err rv = mc_get(c, ns, key, NULL, &cur, res);
        if (rv != MC_OK && rv != MC_NOT_FOUND) {
            return rv;
        }
        const void *value = NULL;
        size_t value_len = 0;
        rv = fn(arg, cur, &value, &value_len);
        mc_put_opts po = {.expect_version = cur ? (int64_t)cur->version : 0,
                          .tier = o.tier,
                          .ttl_ms = o.ttl_ms};
        mc_record_free(cur);
        if (rv != MC_OK) {
            return client_result_set(res, rv, "the update function "
                                     "stopped with %s", mc_errname(rv));
        }
        rv = mc_put(c, ns, key, value, value_len, &po, res);
        if (rv != MC_CONFLICT) {
            return rv;
        }
        if (conflicts + 1 >= max_conflicts) {
            return client_result_set(res, MC_CONFLICT, "%s: still contended "
                                     "after %u conflicts", key, conflicts + 1);
        }
        pause_ms((int)(rand_r(&seed) % (unsigned)backoff) + 1);
        backoff = backoff * 2 < backoff_max ? backoff * 2 : backoff_max;
    }
}

mc_err mc_wait_all(mc_client *c, const char *ns, const char *const *keys,
                   size_t n, int timeout_ms, mc_record **out, mc_result *res)
{
    ASSERT(c != NULL);
    ASSERT(keys != NULL || n == 0);
    client_result_clear(res);
    if (timeout_ms < 0 || timeout_ms > MC_WATCH_WAIT_MS_MAX) {
        return client_result_set(res, MC_INVALID_ARGUMENT, "timeout_ms %d is "
                                 "not in 0..%d", timeout_ms,
                                 MC_WATCH_WAIT_MS_MAX);
    }
    int64_t deadline =
        base_mono_ms() + (timeout_ms ? timeout_ms : MC_WAIT_TIMEOUT_MS_DEFAULT);
    if (out != NULL) {
        for (size_t k = 0; k < n; k++) {
            out[k] = NULL;
        }
    }
    mc_err rv = MC_OK;
    for (size_t i = 0; i < n && rv == MC_OK; i++) {
        int64_t left = deadline - base_mono_ms();
        if (left <= 0) {
            rv = client_result_set(res, MC_TIMEOUT, "%s did not arrive in "
                                   "time", keys[i]);
            break;
        }
        mc_wait_opts wo = MC_WAIT_OPTS_INIT;
        wo.timeout_ms = (int)left;
        rv = mc_wait(c, ns, keys[i], &wo, out != NULL ? &out[i] : NULL, res);
    }
    if (rv != MC_OK && out != NULL) {
        for (size_t k = 0; k < n; k++) {
            mc_record_free(out[k]);
            out[k] = NULL;
        }
    }
    return rv;
}

void mc_checkpoint_fini(mc_checkpoint *cp)
{
    if (cp != NULL) {
        mc_free(cp->state);
        *cp = (mc_checkpoint){0};
    }
}

mc_err mc_checkpoint_load(mc_client *c, const char *ns, const char *key,
                          mc_checkpoint *cp, mc_result *res)
{
    ASSERT(cp != NULL);
    *cp = (mc_checkpoint){0};
    mc_record *rec = NULL;
    mc_err rv = mc_get(c, ns, key, NULL, &rec, res);
    if (rv == MC_NOT_FOUND) {
        client_result_clear(res);
        return MC_OK;
    }
    if (rv != MC_OK) {
        return rv;
    }
    const char *v = (const char *)rec->value;
    const char *nl = memchr(v, '\n', rec->value_len);
    char *end = NULL;
    size_t magic = sizeof CHECKPOINT_MAGIC - 1;
    unsigned long long step = 0;
    if (nl != NULL && rec->value_len > magic &&
        memcmp(v, CHECKPOINT_MAGIC, magic) == 0) {
        step = strtoull(v + magic, &end, 10);
    }
    if (nl == NULL || end != nl || end == v + magic) {
        mc_record_free(rec);
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "%s is not a checkpoint", key);
    }
    size_t len = rec->value_len - (size_t)(nl + 1 - v);
    cp->state = len > 0 ? mc_malloc(len) : NULL;
    if (len > 0 && cp->state == NULL) {
        mc_record_free(rec);
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    if (len > 0) {
        memcpy(cp->state, nl + 1, len);
    }
    cp->state_len = len;
    cp->step = step;
    cp->version = rec->version;
    mc_record_free(rec);
    return MC_OK;
}

mc_err mc_checkpoint_save(mc_client *c, const char *ns, const char *key,
                          mc_checkpoint *cp, uint64_t step,
                          const void *state, size_t state_len,
                          mc_result *res)
{
    ASSERT(cp != NULL);
    client_result_clear(res);
    if (step <= cp->step) {
        return client_result_set(res, MC_INVALID_ARGUMENT, "step %llu is not "
                                 "after the saved step %llu",
                                 (unsigned long long)step,
                                 (unsigned long long)cp->step);
    }
    char head[48];
    int head_len = snprintf(head, sizeof head, CHECKPOINT_MAGIC "%llu\n",
                            (unsigned long long)step);
    size_t len = (size_t)head_len + state_len;
    uint8_t *value = mc_malloc(len);
    uint8_t *copy = state_len > 0 ? mc_malloc(state_len) : NULL;
    if (value == NULL || (state_len > 0 && copy == NULL)) {
        mc_free(value);
        mc_free(copy);
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    memcpy(value, head, (size_t)head_len);
    if (state_len > 0) {
        memcpy(value + head_len, state, state_len);
        memcpy(copy, state, state_len);
    }
    mc_put_opts po = {.expect_version = (int64_t)cp->version,
                      .tier = MC_TIER_LONG};
    mc_err rv = mc_put(c, ns, key, value, len, &po, res);
    mc_free(value);
    if (rv != MC_OK) {
        mc_free(copy);
        return rv;
    }
    mc_free(cp->state);
    /* The put was at exactly cp->version: it made the next one. */
    *cp = (mc_checkpoint){.step = step, .state = copy, .state_len = state_len,
                          .version = cp->version + 1};
    return MC_OK;
}
