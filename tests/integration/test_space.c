/* A real node on a full disk. The node's data folder is a small tmpfs
 * that the test mounts itself (size=, as root; without root the test is
 * skipped and says so loudly). A writer puts fresh keys with 60 KiB
 * values until the disk is full: the node must answer QUOTA_EXCEEDED (the
 * leader's checks that the shard's store can still be allocated ahead,
 * shard/space.c, and that the raft log has room for its next segment,
 * consensus/wal.c: the disk is sized so that the log runs out first),
 * never crash (LMDB writes through a shared map, where a
 * full disk would be a SIGBUS), keep serving reads, and keep every
 * acknowledged write across a kill -9 and a restart on the full disk. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memcoord.h"
#include "tests/lib/harness.h"

#define FS_SIZE "192m"
#define VALUE_MAX "65536"
#define VALUE_BYTES (60u * 1024u)
#define KEYS_MAX 4000u
/* Refusals in a row that show the node means it. */
#define REFUSED_IN_A_ROW 20u

static struct mc_node_proc node;
static char mnt[256];
static bool mounted;

static void setup(void)
{
    snprintf(mnt, sizeof mnt, "/tmp/mc-space-node-XXXXXX");
    cr_assert_not_null(mkdtemp(mnt));
    mounted = mount("tmpfs", mnt, "tmpfs", 0, "size=" FS_SIZE) == 0;
    if (!mounted) {
        fprintf(stderr, "\n*** SKIPPED: test_space needs to mount a tmpfs "
                        "(root): %s. A node on a full disk is NOT tested. "
                        "***\n\n", strerror(errno));
        rmdir(mnt);
        cr_skip_test("cannot mount a tmpfs at %s", mnt);
    }
    setenv("MEMCOORD_TEST_DIR", mnt, 1);
}

static void teardown(void)
{
    harness_fini();
    if (mounted) {
        umount2(mnt, MNT_DETACH);
        mounted = false;
    }
    rmdir(mnt);
}

static void key_of(unsigned i, char *k, size_t len)
{
    snprintf(k, len, "fill/%05u", i);
}

static void value_of(unsigned i, char *v)
{
    for (unsigned j = 0; j < VALUE_BYTES; j++) {
        v[j] = (char)('a' + (i * 7 + j) % 26);
    }
}

static mc_client *open_client(void)
{
    mc_options o = {.timeout_ms = 3000};
    mc_client *c;
    mc_result res;
    cr_assert_eq(mc_client_open(node.url, &o, &c, &res), MC_OK, "%s",
                 res.message);
    return c;
}

/* Every acknowledged key reads back whole. */
static void check_acked(const bool *acked, unsigned n)
{
    mc_client *c = open_client();
    static char v[VALUE_BYTES];
    for (unsigned i = 0; i < n; i++) {
        if (!acked[i]) {
            continue;
        }
        char k[32];
        key_of(i, k, sizeof k);
        value_of(i, v);
        mc_record *rec = NULL;
        mc_result res;
        mc_err rv = mc_get(c, "space", k, NULL, &rec, &res);
        cr_assert_eq(rv, MC_OK, "acknowledged %s lost: %s %s", k,
                     mc_errname(rv), res.message);
        cr_assert_eq(rec->value_len, VALUE_BYTES, "%s", k);
        cr_assert_eq(memcmp(rec->value, v, VALUE_BYTES), 0, "%s", k);
        mc_record_free(rec);
    }
    mc_client_close(c);
}

static bool acked[KEYS_MAX];
static unsigned n_sent;

/* Put fresh keys until the node refuses REFUSED_IN_A_ROW of them with
 * QUOTA_EXCEEDED. Returns the writes acknowledged. */
static unsigned fill(void)
{
    mc_client *c = open_client();
    static char v[VALUE_BYTES];
    unsigned n_acked = 0, refused = 0;
    while (refused < REFUSED_IN_A_ROW) {
        cr_assert_lt(n_sent, KEYS_MAX, "the disk never filled up");
        char k[32];
        key_of(n_sent, k, sizeof k);
        value_of(n_sent, v);
        mc_result res;
        mc_err rv = mc_put(c, "space", k, v, VALUE_BYTES, NULL, &res);
        n_sent++;
        if (rv == MC_QUOTA_EXCEEDED) {
            refused++;
            continue;
        }
        cr_assert_eq(rv, MC_OK, "put %s: %s %s", k, mc_errname(rv),
                     res.message);
        cr_assert_eq(refused, 0, "a write was accepted after a refusal");
        acked[n_sent - 1] = true;
        n_acked++;
    }
    mc_client_close(c);
    return n_acked;
}

Test(space, a_full_disk_refuses_writes_and_loses_nothing, .init = setup,
     .fini = teardown, .timeout = 120)
{
    cr_assert_eq(harness_node_start(&node, "--shards", "1", "--value-max",
                                    VALUE_MAX, NULL),
                 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    unsigned first = fill();
    fprintf(stderr, "space: %u writes of 60 KiB acknowledged on a %s disk, "
                    "then QUOTA_EXCEEDED\n", first, FS_SIZE);
    cr_assert_gt(first, 100u);
    /* The node lives, serves reads, and lost nothing. */
    check_acked(acked, n_sent);
    /* A crash and a restart on the full disk (raft frees the segments it
     * had prepared, so a few writes may fit again). */
    cr_assert_eq(harness_node_stop(&node, SIGKILL), 128 + SIGKILL);
    cr_assert_eq(harness_node_restart(&node), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    check_acked(acked, n_sent);
    unsigned again = fill();
    check_acked(acked, n_sent);
    fprintf(stderr, "space: after kill -9 and a restart, every acknowledged "
                    "write read back; %u more fit\n", again);
    cr_assert_eq(harness_node_stop(&node, SIGTERM), 0, "a clean exit");
}
