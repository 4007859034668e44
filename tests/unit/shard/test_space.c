/* Unit tests of the store on a full disk (shard/space.c). Under
 * MDB_WRITEMAP LMDB writes its pages through a shared map of a sparse
 * data file, and a page written in a hole of a full filesystem is a
 * SIGBUS: the store keeps the file allocated ahead of LMDB instead. Each
 * test mounts a small tmpfs of its own (size=, as root) and fills it for
 * real: the leader's check refuses writes first (shard_is_nearly_full, the
 * node answers QUOTA_EXCEEDED), a replica that goes on applying stops
 * with UNAVAILABLE and a BROKEN shard, never a signal, and every entry
 * committed before is there after a restart. Without root or tmpfs the
 * tests are skipped, and say so loudly. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include "shard/store.h"
#include "tests/unit/shard/shard_test.h"

/* The filesystem: room for a few MiB of records beyond what the store
 * allocates ahead (about 1.3 MiB per entry's room with 64 KiB values). */
#define FS_SIZE "12m"
#define VALUE_MAX (64u * 1024u)
#define VALUE_BYTES (60u * 1024u)
#define KEYS_MAX 4096u

static char mnt[T_PATH_BYTES / 2];
static bool mounted;

static void setup(void)
{
    snprintf(mnt, sizeof mnt, "/tmp/mc-space-test-XXXXXX");
    cr_assert_not_null(mkdtemp(mnt));
    mounted = mount("tmpfs", mnt, "tmpfs", 0, "size=" FS_SIZE) == 0;
    if (!mounted) {
        fprintf(stderr, "\n*** SKIPPED: test_space needs to mount a tmpfs "
                        "(root): %s. The full-disk behaviour of the store "
                        "is NOT tested. ***\n\n", strerror(errno));
        rmdir(mnt);
        cr_skip_test("cannot mount a tmpfs at %s", mnt);
    }
}

static void teardown(void)
{
    if (mounted) {
        umount2(mnt, MNT_DETACH);
        mounted = false;
    }
    rmdir(mnt);
}

TestSuite(shard_space, .init = setup, .fini = teardown);

/* A shard in mnt/name with 64 KiB values at most. */
static void open_in(struct tshard *t, const char *name)
{
    memset(t, 0, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "%s/%s", mnt, name);
    t->cfg.id = 1;
    t->cfg.value_bytes_max = VALUE_MAX;
    t_reopen(t);
}

/* The value of key i: its own bytes, so that a page of another key read
 * back would show. */
static void value_of(unsigned i, char *v)
{
    for (unsigned j = 0; j < VALUE_BYTES; j++) {
        v[j] = (char)('a' + (i * 7 + j) % 26);
    }
}

static void key_of(unsigned i, char *k, size_t len)
{
    snprintf(k, len, "k%05u", i);
}

/* Put key i; the apply's return code. */
static mc_err put_one(struct tshard *t, unsigned i)
{
    static char v[VALUE_BYTES];
    char k[16];
    value_of(i, v);
    key_of(i, k, sizeof k);
    void *frame;
    size_t len;
    t_frame(&(struct tcmd){.op = T_PUT, .key = k, .value = v,
                           .value_len = VALUE_BYTES},
            &frame, &len);
    const struct shard_result *r;
    mc_err rv = shard_apply(t->s, t->index + 1, frame, len, &r);
    free(frame);
    if (rv == MC_OK) {
        t->index++;
        cr_assert_eq(r->code, MC_OK, "%s", r->message);
    } else {
        cr_assert_eq(r->code, MC_UNAVAILABLE);
    }
    return rv;
}

static void assert_keys(struct tshard *t, unsigned n)
{
    static char v[VALUE_BYTES];
    for (unsigned i = 0; i < n; i++) {
        char k[16];
        key_of(i, k, sizeof k);
        value_of(i, v);
        struct shard_record rec;
        cr_assert_eq(t_get(t, T_STAMP, k, &rec), MC_OK, "%s is lost", k);
        cr_assert_eq(rec.value_len, VALUE_BYTES, "%s", k);
        cr_assert_eq(memcmp(rec.value, v, VALUE_BYTES), 0, "%s", k);
    }
}

static uint64_t fs_free_bytes(void)
{
    struct statvfs st;
    cr_assert_eq(statvfs(mnt, &st), 0);
    return (uint64_t)st.f_bavail * st.f_frsize;
}

/* Fill t as a leader does: ask shard_is_nearly_full before every write,
 * commit every few entries (a loop turn). Returns the entries acknowledged
 * (applied and committed) when the leader refused the next one. */
static unsigned fill_as_leader(struct tshard *t)
{
    unsigned n = 0;
    while (!shard_is_nearly_full(t->s)) {
        cr_assert_lt(n, KEYS_MAX, "the disk never filled up");
        cr_assert_eq(put_one(t, n), MC_OK, "apply failed before the leader "
                     "refused: the room ahead was too small");
        n++;
        if (n % 4 == 0) {
            t_commit(t);
        }
    }
    t_commit(t);
    return n;
}

Test(shard_space, the_leader_refuses_writes_before_the_disk_is_full)
{
    struct tshard t;
    open_in(&t, "s");
    cr_assert(t.s->writemap, "the store runs without MDB_WRITEMAP");
    unsigned acked = fill_as_leader(&t);
    cr_assert_gt(acked, 16u, "only %u entries fit in %s", acked, FS_SIZE);
    cr_assert_lt(fs_free_bytes(), 4u << 20, "the refusal came with the "
                 "disk far from full");
    assert_keys(&t, acked);
    /* Still refused, and still readable, after a restart. */
    uint64_t h = shard_state_hash(t.s);
    shard_close(t.s);
    t_reopen(&t);
    cr_assert_eq(shard_applied_index(t.s), t.index);
    cr_assert_eq(shard_state_hash(t.s), h);
    cr_assert(shard_is_nearly_full(t.s));
    assert_keys(&t, acked);
    shard_close(t.s);
}

Test(shard_space, a_replica_that_cannot_allocate_stops_cleanly)
{
    struct tshard t;
    open_in(&t, "s");
    unsigned acked = fill_as_leader(&t);
    /* A replica applies what its leader committed, without asking: it
     * must stop with an error when the disk is full, not with SIGBUS. */
    unsigned n = acked;
    mc_err rv = MC_OK;
    while (rv == MC_OK) {
        cr_assert_lt(n, KEYS_MAX, "the disk never filled up");
        rv = put_one(&t, n);
        if (rv == MC_OK) {
            n++;
            t_commit(&t); /* acknowledged */
        }
    }
    cr_assert_eq(rv, MC_UNAVAILABLE);
    unsigned committed = n;
    struct shard_record rec;
    cr_assert_eq(t_get(&t, T_STAMP, "k00000", &rec), MC_UNAVAILABLE,
                 "the shard is BROKEN");
    char err[256];
    cr_assert_eq(shard_commit(t.s, err, sizeof err), MC_UNAVAILABLE);
    shard_close(t.s);
    /* Nothing committed is lost; the entry that failed is not there. */
    t_reopen(&t);
    cr_assert_eq(shard_applied_index(t.s), t.index);
    assert_keys(&t, committed);
    char k[16];
    key_of(committed, k, sizeof k);
    cr_assert_eq(t_get(&t, T_STAMP, k, &rec), MC_NOT_FOUND);
    shard_close(t.s);
}

/* What the store guards against: writing through a shared map into a hole
 * of the full filesystem kills the writer with SIGBUS. */
Test(shard_space, a_hole_written_through_a_map_on_a_full_disk_is_sigbus)
{
    struct tshard t;
    open_in(&t, "s");
    fill_as_leader(&t);
    shard_close(t.s);
    /* Take what is left, then write into a hole. */
    char path[T_PATH_BYTES + 16];
    snprintf(path, sizeof path, "%s/filler", mnt);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    static char block[64 * 1024];
    while (write(fd, block, sizeof block) > 0) {
    }
    snprintf(path, sizeof path, "%s/sparse", mnt);
    int sfd = open(path, O_RDWR | O_CREAT, 0644);
    cr_assert_geq(sfd, 0);
    cr_assert_eq(ftruncate(sfd, 1 << 20), 0);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGBUS, SIG_DFL); /* not a sanitizer's report: the signal */
        char *map = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED,
                         sfd, 0);
        if (map == MAP_FAILED) {
            _exit(2);
        }
        map[4096] = 'x';
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
              "status %d: the filesystem was not full", status);
    close(sfd);
    close(fd);
}
