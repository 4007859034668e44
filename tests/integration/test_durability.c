/* Durability of a real node: kill -9 in the middle of writes and restart;
 * every acknowledged write of every tier must be there, and no write may
 * appear applied twice. Each write puts a fresh key exactly once, so a
 * duplicate apply would show as version 2. A clean SIGTERM must exit 0,
 * keep everything, and the restart must skip what LMDB already holds
 * instead of replaying the whole log. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "memcoord.h"
#include "tests/lib/harness.h"

#define WRITERS 4
#define WRITES_PER_WRITER_MAX 5000
#define ACKED_BEFORE_KILL 600

enum outcome { NOT_SENT, ACKED, UNKNOWN, FAILED };

struct writer {
    pthread_t thread;
    mc_client *c;
    unsigned id;
    atomic_bool *stop;
    atomic_uint *acked_total;
    enum outcome outcomes[WRITES_PER_WRITER_MAX];
    unsigned n;
};

static struct mc_node_proc node;
static struct writer writers[WRITERS];

static void key_of(unsigned w, unsigned i, char *key, size_t len)
{
    snprintf(key, len, "dur/w%u/%05u", w, i);
}

static mc_tier tier_of(unsigned i)
{
    return (mc_tier)(MC_TIER_SHORT + i % 3);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char key[64], value[64];
    for (unsigned i = 0; i < WRITES_PER_WRITER_MAX && !atomic_load(w->stop); i++) {
        key_of(w->id, i, key, sizeof key);
        snprintf(value, sizeof value, "value-%u-%u", w->id, i);
        mc_put_opts po = MC_PUT_OPTS_INIT;
        po.tier = tier_of(i);
        mc_result res;
        mc_err rv = mc_put(w->c, "durability", key, value, strlen(value), &po, &res);
        w->outcomes[i] = rv == MC_OK ? ACKED
                         : (rv == MC_TIMEOUT || rv == MC_UNAVAILABLE) ? UNKNOWN
                                                                      : FAILED;
        cr_assert_neq(w->outcomes[i], FAILED, "put %s: %s %s", key,
                      mc_errname(rv), res.message);
        w->n = i + 1;
        if (rv == MC_OK) {
            atomic_fetch_add(w->acked_total, 1);
        }
    }
    return NULL;
}

static void wait_for(atomic_uint *counter, unsigned target, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    while (atomic_load(counter) < target) {
        cr_assert_lt(harness_now_ms(), deadline,
                     "only %u of %u writes acknowledged in time",
                     atomic_load(counter), target);
        harness_pause_ms(2);
    }
}

static mc_client *open_client(int timeout_ms)
{
    mc_options o = {.timeout_ms = timeout_ms};
    mc_client *c;
    mc_result res;
    cr_assert_eq(mc_client_open(node.url, &o, &c, &res), MC_OK, "%s",
                 res.message);
    return c;
}

Test(durability, kill9_keeps_every_acknowledged_write, .fini = harness_fini,
     .timeout = 120)
{
    cr_assert_eq(harness_node_start(&node, NULL), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    atomic_bool stop = false;
    atomic_uint acked = 0;
    for (unsigned t = 0; t < WRITERS; t++) {
        writers[t] = (struct writer){.id = t, .stop = &stop, .acked_total = &acked};
        writers[t].c = open_client(1500);
        cr_assert_eq(pthread_create(&writers[t].thread, NULL, writer_main,
                                    &writers[t]), 0);
    }
    wait_for(&acked, ACKED_BEFORE_KILL, 60000);
    cr_assert_eq(harness_node_stop(&node, SIGKILL), 128 + SIGKILL);
    atomic_store(&stop, true);
    for (unsigned t = 0; t < WRITERS; t++) {
        pthread_join(writers[t].thread, NULL);
        mc_client_close(writers[t].c);
    }

    cr_assert_eq(harness_node_restart(&node), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    mc_client *c = open_client(5000);
    unsigned checked = 0, unknown_present = 0;
    for (unsigned t = 0; t < WRITERS; t++) {
        for (unsigned i = 0; i < writers[t].n; i++) {
            char key[64], value[64];
            key_of(t, i, key, sizeof key);
            snprintf(value, sizeof value, "value-%u-%u", t, i);
            mc_record *rec = NULL;
            mc_result res;
            mc_err rv = mc_get(c, "durability", key, NULL, &rec, &res);
            if (writers[t].outcomes[i] == ACKED) {
                cr_assert_eq(rv, MC_OK, "acknowledged %s lost: %s %s", key,
                             mc_errname(rv), res.message);
                checked++;
            } else {
                cr_assert(rv == MC_OK || rv == MC_NOT_FOUND, "%s: %s", key,
                          mc_errname(rv));
                unknown_present += rv == MC_OK;
            }
            if (rv == MC_OK) {
                cr_assert_eq(rec->version, 1, "%s applied %llu times", key,
                             (unsigned long long)rec->version);
                cr_assert_eq(rec->value_len, strlen(value));
                cr_assert_eq(memcmp(rec->value, value, rec->value_len), 0);
                cr_assert_eq(rec->tier, tier_of(i), "%s changed tier", key);
                mc_record_free(rec);
            }
        }
    }
    cr_assert_geq(checked, ACKED_BEFORE_KILL);
    fprintf(stderr, "durability: %u acknowledged writes checked after kill -9, "
                    "%u writes of unknown outcome present\n",
            checked, unknown_present);
    mc_client_close(c);
}

static void status_sums(mc_client *c, uint64_t *applied, uint64_t *skipped)
{
    mc_status *st;
    mc_result res;
    cr_assert_eq(mc_status_get(c, &st, &res), MC_OK, "%s", res.message);
    *applied = *skipped = 0;
    for (size_t i = 0; i < st->n_shards; i++) {
        *applied += st->shards[i].applied_entries;
        *skipped += st->shards[i].skipped_entries;
    }
    mc_status_free(st);
}

Test(durability, sigterm_exits_zero_and_restart_skips_stored_entries,
     .fini = harness_fini, .timeout = 60)
{
    const unsigned n = 400;
    cr_assert_eq(harness_node_start(&node, NULL), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    mc_client *c = open_client(5000);
    for (unsigned i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "term/%04u", i);
        mc_put_opts po = MC_PUT_OPTS_INIT;
        po.tier = tier_of(i);
        mc_result res;
        cr_assert_eq(mc_put(c, "durability", key, key, strlen(key), &po, &res),
                     MC_OK, "%s", res.message);
    }
    mc_client_close(c);
    cr_assert_eq(harness_node_stop(&node, SIGTERM), 0, "SIGTERM must exit 0");

    cr_assert_eq(harness_node_restart(&node), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    c = open_client(5000);
    uint64_t applied, skipped;
    status_sums(c, &applied, &skipped);
    /* Every write was already in LMDB: raft replays its log, the shards
     * skip it. Only the few commands proposed since the restart (expiry
     * sweeps) are applied. */
    cr_assert_geq(skipped, n, "only %llu entries skipped",
                  (unsigned long long)skipped);
    cr_assert_lt(applied, n / 10, "%llu entries applied again on restart",
                 (unsigned long long)applied);
    mc_page *page;
    mc_list_opts lo = {.limit = MC_LIST_PAGE_MAX, .keys_only = true};
    mc_result res;
    cr_assert_eq(mc_list(c, "durability", "term/", &lo, &page, &res), MC_OK);
    cr_assert_eq(page->n, n);
    cr_assert_eq(page->more, false);
    mc_page_free(page);
    mc_client_close(c);
}

static void put_keys(mc_client *c, const char *prefix, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s/%04u", prefix, i);
        mc_result res;
        cr_assert_eq(mc_put(c, "durability", key, key, strlen(key), NULL, &res),
                     MC_OK, "put %s: %s %s", key, mc_errname(res.code),
                     res.message);
    }
}

static void state_dirs(const char *op)
{
    char cmd[HARNESS_PATH_BYTES_MAX * 2 + 128];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && for s in shard-*; do %s; done", node.dir, op);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* After a kill -9 the LMDB store is behind the raft log and raft_start
 * applies the missing entries on the thread that starts the node. Made
 * deterministic here by putting back an older copy of every store. A write
 * txn left open across threads used to hang the first write after such a
 * restart forever. */
Test(durability, store_behind_the_log_catches_up_and_serves,
     .fini = harness_fini, .timeout = 60)
{
    const unsigned n = 100;
    cr_assert_eq(harness_node_start(&node, NULL), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    mc_client *c = open_client(5000);
    put_keys(c, "old", n);
    mc_client_close(c);
    cr_assert_eq(harness_node_stop(&node, SIGTERM), 0);
    state_dirs("cp -a $s/state $s/state-old");

    cr_assert_eq(harness_node_restart(&node), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    c = open_client(5000);
    put_keys(c, "new", n);
    mc_client_close(c);
    cr_assert_eq(harness_node_stop(&node, SIGTERM), 0);
    state_dirs("rm -rf $s/state && mv $s/state-old $s/state");

    cr_assert_eq(harness_node_restart(&node), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    c = open_client(5000);
    uint64_t applied, skipped;
    status_sums(c, &applied, &skipped);
    cr_assert_geq(applied, n, "the %u writes missing from the stores were "
                  "not applied from the log (%llu applied)", n,
                  (unsigned long long)applied);
    put_keys(c, "after", n); /* hung here before the fix */
    mc_page *page;
    mc_list_opts lo = {.limit = MC_LIST_PAGE_MAX, .keys_only = true};
    mc_result res;
    cr_assert_eq(mc_list(c, "durability", "", &lo, &page, &res), MC_OK);
    cr_assert_eq(page->n, 3 * n, "%zu keys after the catch-up", page->n);
    mc_page_free(page);
    mc_client_close(c);
}

/* Start the node, write n keys under prefix, stop it cleanly. */
static void start_put_keys_stop(const char *prefix, unsigned n)
{
    cr_assert_eq(harness_node_start(&node, NULL), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    mc_client *c = open_client(5000);
    put_keys(c, prefix, n);
    mc_client_close(c);
    cr_assert_eq(harness_node_stop(&node, SIGTERM), 0);
}

/* Start the node again, find n keys under prefix, stop it cleanly. */
static void restart_expect_keys(const char *prefix, size_t n)
{
    cr_assert_eq(harness_node_restart(&node), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    mc_client *c = open_client(5000);
    mc_page *page;
    mc_list_opts lo = {.limit = MC_LIST_PAGE_MAX, .keys_only = true};
    mc_result res;
    cr_assert_eq(mc_list(c, "durability", prefix, &lo, &page, &res), MC_OK);
    cr_assert_eq(page->n, n, "%zu keys under %s", page->n, prefix);
    mc_page_free(page);
    mc_client_close(c);
    cr_assert_eq(harness_node_stop(&node, SIGTERM), 0);
}

/* The loop threads open their shards side by side at start. One that
 * cannot open its shard (here: its LMDB file cannot be opened) must stop
 * the node with an error naming it, exit 1 and not hang; mended, the next
 * start serves everything. */
Test(durability, a_shard_that_cannot_open_stops_the_start,
     .fini = harness_fini, .timeout = 60)
{
    start_put_keys_stop("open", 50);

    /* Shard 3's LMDB file cannot be opened: a folder stands where the
     * file was. */
    char file[HARNESS_PATH_BYTES_MAX + 64], moved[HARNESS_PATH_BYTES_MAX + 80];
    snprintf(file, sizeof file, "%s/shard-3/state/data.mdb", node.dir);
    snprintf(moved, sizeof moved, "%s.moved", file);
    cr_assert_eq(rename(file, moved), 0, "%s: %s", file, strerror(errno));
    cr_assert_eq(mkdir(file, 0755), 0);
    cr_assert_eq(harness_node_restart(&node), 0);
    int status = harness_node_wait_exit(&node, 20000);
    cr_assert_eq(status, 1, "exit status %d (a hang is -1)", status);
    char cmd[HARNESS_PATH_BYTES_MAX + 128];
    snprintf(cmd, sizeof cmd, "grep -q 'opening LMDB in .*shard-3' '%s'",
             node.log);
    cr_assert_eq(system(cmd), 0, "the log does not name shard 3's store");
    cr_assert_eq(rmdir(file), 0);
    cr_assert_eq(rename(moved, file), 0);

    restart_expect_keys("open/", 50);
}

/* The raft port of the second loop's lane is taken by another process:
 * the node stops with an error naming the address, exits 1 and does not
 * hang; freed, the next start serves everything. */
Test(durability, a_busy_raft_lane_port_stops_the_start,
     .fini = harness_fini, .timeout = 60)
{
    start_put_keys_stop("lane", 20);

    int port = node.raft_port + 1 + 1; /* loop 1's lane */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0,
                 "port %d: %s", port, strerror(errno));
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(harness_node_restart(&node), 0);
    int status = harness_node_wait_exit(&node, 20000);
    cr_assert_eq(status, 1, "exit status %d (a hang is -1)", status);
    char cmd[HARNESS_PATH_BYTES_MAX + 64];
    snprintf(cmd, sizeof cmd, "grep -q 'listen on 127.0.0.1:%d' '%s'", port,
             node.log);
    cr_assert_eq(system(cmd), 0, "the log does not name port %d", port);
    close(fd);

    restart_expect_keys("lane/", 20);
}
