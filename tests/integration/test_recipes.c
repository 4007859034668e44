/* libmemcoord's recipes on a real node: update with retry loses no
 * increment under contention, and checkpoints move on only by CAS. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memcoord.h"
#include "tests/lib/harness.h"

#define NS "recipes"

static struct mc_node_proc node;
static mc_client *cl;

static void up(void)
{
    cr_assert_eq(harness_node_start(&node, NULL), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    mc_options o = {.timeout_ms = 10000};
    mc_result res;
    cr_assert_eq(mc_client_open(node.url, &o, &cl, &res), MC_OK, "%s",
                 res.message);
}

static void down(void)
{
    mc_client_close(cl);
    harness_fini();
}

/* fn of an increment: the decimal value + 1, into the caller's buffer. */
static mc_err increment(void *arg, const mc_record *cur, const void **value,
                        size_t *value_len)
{
    char *buf = arg;
    long n = cur != NULL ? strtol((const char *)cur->value, NULL, 10) : 0;
    *value_len = (size_t)snprintf(buf, 32, "%ld", n + 1);
    *value = buf;
    return MC_OK;
}

enum { UPDATERS = 8, INCREMENTS = 500 };

static void *updater(void *arg)
{
    (void)arg;
    char buf[32];
    for (int i = 0; i < INCREMENTS; i++) {
        mc_result res;
        mc_err rv = mc_update(cl, NS, "counter", increment, buf, NULL, &res);
        cr_assert_eq(rv, MC_OK, "%s", res.message);
    }
    return NULL;
}

Test(mc_update, concurrent_increments_all_land, .init = up, .fini = down,
     .timeout = 120)
{
    pthread_t th[UPDATERS];
    int64_t t0 = harness_now_ms();
    for (int i = 0; i < UPDATERS; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, updater, NULL), 0);
    }
    for (int i = 0; i < UPDATERS; i++) {
        pthread_join(th[i], NULL);
    }
    mc_record *rec;
    mc_result res;
    cr_assert_eq(mc_get(cl, NS, "counter", NULL, &rec, &res), MC_OK);
    cr_assert_str_eq((const char *)rec->value, "4000");
    cr_assert_eq(rec->version, UPDATERS * INCREMENTS);
    mc_record_free(rec);
    fprintf(stderr, "mc_update: %d increments by %d threads in %lld ms\n",
            UPDATERS * INCREMENTS, UPDATERS,
            (long long)(harness_now_ms() - t0));
}

static mc_err refuse(void *arg, const mc_record *cur, const void **value,
                     size_t *value_len)
{
    (void)arg, (void)cur, (void)value, (void)value_len;
    return MC_INVALID_ARGUMENT;
}

Test(mc_update, function_can_stop_it, .init = up, .fini = down)
{
    mc_result res;
    cr_assert_eq(mc_update(cl, NS, "stopped", refuse, NULL, NULL, &res),
                 MC_INVALID_ARGUMENT);
    mc_record *rec;
    cr_assert_eq(mc_get(cl, NS, "stopped", NULL, &rec, &res), MC_NOT_FOUND);
}

Test(mc_checkpoint, saves_by_cas_and_resumes, .init = up, .fini = down)
{
    mc_checkpoint a, b;
    mc_result res;
    cr_assert_eq(mc_checkpoint_load(cl, NS, "wf/1", &a, &res), MC_OK);
    cr_assert_eq(a.step, 0);
    cr_assert_null(a.state);
    cr_assert_eq(mc_checkpoint_save(cl, NS, "wf/1", &a, 1, "one", 3, &res),
                 MC_OK, "%s", res.message);
    cr_assert_eq(mc_checkpoint_save(cl, NS, "wf/1", &a, 2, "two\n\0x", 6,
                                    &res), MC_OK, "%s", res.message);
    /* A second worker resumes after step 2 with its state, bytes intact. */
    cr_assert_eq(mc_checkpoint_load(cl, NS, "wf/1", &b, &res), MC_OK);
    cr_assert_eq(b.step, 2);
    cr_assert_eq(b.state_len, 6);
    cr_assert_arr_eq(b.state, "two\n\0x", 6);
    cr_assert_eq(b.version, a.version);
    /* The two race on step 3: one saves, the other conflicts. */
    cr_assert_eq(mc_checkpoint_save(cl, NS, "wf/1", &b, 3, "b", 1, &res),
                 MC_OK);
    cr_assert_eq(mc_checkpoint_save(cl, NS, "wf/1", &a, 3, "a", 1, &res),
                 MC_CONFLICT);
    cr_assert_eq(a.step, 2, "a failed save changed the checkpoint");
    /* Steps only go forward. */
    cr_assert_eq(mc_checkpoint_save(cl, NS, "wf/1", &b, 3, "b", 1, &res),
                 MC_INVALID_ARGUMENT);
    mc_checkpoint_fini(&a);
    mc_checkpoint_fini(&b);
    /* A record that is not a checkpoint is named, not misread. */
    cr_assert_eq(mc_put(cl, NS, "wf/plain", "hello", 5, NULL, &res), MC_OK);
    cr_assert_eq(mc_checkpoint_load(cl, NS, "wf/plain", &a, &res),
                 MC_INVALID_ARGUMENT);
    cr_assert(strstr(res.message, "not a checkpoint") != NULL, "%s",
              res.message);
}

struct late_put {
    const char *key;
    int after_ms;
};

static void *put_later(void *arg)
{
    const struct late_put *p = arg;
    harness_pause_ms(p->after_ms);
    mc_result res;
    cr_assert_eq(mc_put(cl, NS, p->key, p->key, strlen(p->key), NULL, &res),
                 MC_OK, "%s", res.message);
    return NULL;
}

Test(mc_wait_all, returns_when_the_last_key_arrives, .init = up,
     .fini = down)
{
    static const char *const keys[] = {"fanin/w0", "fanin/w1", "fanin/w2"};
    struct late_put puts[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        puts[i] = (struct late_put){keys[i], 150 - 50 * i};
        cr_assert_eq(pthread_create(&th[i], NULL, put_later, &puts[i]), 0);
    }
    mc_record *recs[3];
    mc_result res;
    int64_t t0 = harness_now_ms();
    cr_assert_eq(mc_wait_all(cl, NS, keys, 3, 5000, recs, &res), MC_OK, "%s",
                 res.message);
    cr_assert_geq(harness_now_ms() - t0, 100, "returned before the last put");
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        cr_assert_str_eq(recs[i]->key, keys[i]);
        cr_assert_str_eq((const char *)recs[i]->value, keys[i]);
        mc_record_free(recs[i]);
    }
    static const char *const more[] = {"fanin/w0", "fanin/never"};
    cr_assert_eq(mc_wait_all(cl, NS, more, 2, 300, recs, &res), MC_TIMEOUT);
    cr_assert_null(recs[0], "a record was left after the timeout");
    cr_assert(strstr(res.message, "fanin/never") != NULL, "%s", res.message);
}
