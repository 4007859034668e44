/* consensus/wal.c: the raft log of a lane. Entries, votes, truncations and
 * snapshots of several groups survive a reopen exactly; a torn write at
 * the end is dropped and damage elsewhere refused; old segments go once
 * their live entries were copied forward; a restart gets a placeholder for
 * a snapshot the state machine holds. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "consensus/consensus.h"
#include "consensus/wal.h"

static char dir[64];
static uv_loop_t loop;

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/mc-wal-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(uv_loop_init(&loop), 0);
}

static void teardown(void)
{
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(wal, .init = setup, .fini = teardown);

static struct cons_wal *wal_open(void)
{
    struct cons_wal *w;
    char err[256] = "";
    mc_err rv = cons_wal_open(&loop, dir, 0, &w, err, sizeof err);
    cr_assert_eq(rv, MC_OK, "open: %s", err);
    return w;
}

static unsigned appended;

static void append_cb(struct raft_io_append *req, int status)
{
    cr_assert_eq(status, 0);
    appended++;
    free(req);
}

/* Entry i of a test: 8..64 bytes that say which group and index. */
static struct raft_entry entry_of(uint32_t shard, uint64_t index,
                                  uint64_t term, char *buf)
{
    size_t len = 8 + (size_t)(index * 8 % 64);
    memset(buf, 0, len);
    snprintf(buf, len, "%u:%llu", shard, (unsigned long long)index);
    return (struct raft_entry){.term = term, .type = RAFT_COMMAND,
                               .buf = {buf, len}};
}

static void append_n(struct cons_wal *w, uint32_t shard, uint64_t first,
                     unsigned n, uint64_t term)
{
    for (unsigned i = 0; i < n; i++) {
        char buf[64];
        struct raft_entry e = entry_of(shard, first + i, term, buf);
        struct raft_io_append *req = calloc(1, sizeof *req);
        cr_assert_eq(wal_append(w, shard, req, &e, 1, append_cb), 0);
    }
}

/* What wal_load gives. */
struct loaded {
    raft_term term;
    raft_id vote;
    struct raft_snapshot *snap;
    raft_index start;
    struct raft_entry *es;
    size_t n;
    char msg[256];
};

/* wal_load of shard into l, the store holding have; returns its code. */
static int load(struct cons_wal *w, uint32_t shard, uint64_t have,
                struct loaded *l)
{
    *l = (struct loaded){0};
    return wal_load(w, shard, have, &l->term, &l->vote, &l->snap, &l->start,
                    &l->es, &l->n, l->msg, sizeof l->msg);
}

static void loaded_free(struct loaded *l)
{
    if (l->snap != NULL) {
        raft_configuration_close(&l->snap->configuration);
        raft_free(l->snap->bufs[0].base);
        raft_free(l->snap->bufs);
        raft_free(l->snap);
    }
    if (l->n > 0) {
        raft_free(l->es[0].batch);
        raft_free(l->es);
    }
}

/* Load shard and check term, vote, and entries first..last with term. */
static void expect_log(struct cons_wal *w, uint32_t shard, uint64_t term,
                       uint64_t vote, uint64_t first, uint64_t last,
                       uint64_t entry_term)
{
    struct loaded l;
    cr_assert_eq(load(w, shard, 0, &l), 0, "load: %s", l.msg);
    cr_assert_eq(l.term, term);
    cr_assert_eq(l.vote, vote);
    cr_assert_eq(l.n, last + 1 - first, "shard %u: %zu entries", shard, l.n);
    if (l.n > 0) {
        cr_assert_eq(l.start, first);
    }
    for (size_t i = 0; i < l.n; i++) {
        char want[64];
        struct raft_entry e = entry_of(shard, first + i, entry_term, want);
        cr_assert_eq(l.es[i].term, entry_term);
        cr_assert_eq(l.es[i].buf.len, e.buf.len, "entry %zu", first + i);
        cr_assert_eq(memcmp(l.es[i].buf.base, want, e.buf.len), 0,
                     "entry %llu of shard %u", (unsigned long long)first + i,
                     shard);
    }
    loaded_free(&l);
}

Test(wal, entries_votes_and_truncations_survive_a_reopen)
{
    struct cons_wal *w = wal_open();
    appended = 0;
    cr_assert_eq(wal_set_term(w, 3, 5), 0);
    cr_assert_eq(wal_set_vote(w, 3, 2), 0);
    append_n(w, 3, 1, 10, 5);
    append_n(w, 7, 1, 4, 1);
    cr_assert_eq(appended, 0, "no callback before the sync");
    cons_wal_sync(w);
    cr_assert_eq(appended, 14);
    /* A conflict: entries from 6 on are replaced by a later term's. */
    cr_assert_eq(wal_truncate(w, 3, 6), 0);
    append_n(w, 3, 6, 3, 5);
    cons_wal_sync(w);
    cons_wal_close(w);

    w = wal_open();
    expect_log(w, 3, 5, 2, 1, 8, 5);
    expect_log(w, 7, 0, 0, 1, 4, 1);
    expect_log(w, 9, 0, 0, 1, 0, 0);
    /* Appends go on after what was loaded. */
    append_n(w, 7, 5, 2, 1);
    cons_wal_sync(w);
    cons_wal_close(w);
    w = wal_open();
    expect_log(w, 7, 0, 0, 1, 6, 1);
    cons_wal_close(w);
}

Test(wal, bootstrap_once)
{
    struct cons_wal *w = wal_open();
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    cr_assert_eq(raft_configuration_add(&conf, 1, "127.0.0.1:1", RAFT_VOTER),
                 0);
    cr_assert_eq(wal_bootstrap(w, 0, &conf), 0);
    cr_assert_eq(wal_bootstrap(w, 0, &conf), RAFT_CANTBOOTSTRAP);
    cons_wal_close(w);
    w = wal_open();
    cr_assert_eq(wal_bootstrap(w, 0, &conf), RAFT_CANTBOOTSTRAP);
    struct loaded l;
    cr_assert_eq(load(w, 0, 0, &l), 0);
    cr_assert_eq(l.term, 1);
    cr_assert_eq(l.n, 1);
    cr_assert_eq(l.start, 1);
    cr_assert_eq(l.es[0].type, RAFT_CHANGE);
    loaded_free(&l);
    raft_configuration_close(&conf);
    cons_wal_close(w);
}

static char seg1[128];

static off_t seg_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return st.st_size;
}

Test(wal, a_torn_last_write_is_dropped)
{
    struct cons_wal *w = wal_open();
    append_n(w, 1, 1, 5, 2);
    cons_wal_sync(w);
    /* The next write is cut short: only part of a record reaches the
     * disk, as when the machine dies while writing. */
    struct cons_wal_stats st;
    cons_wal_stats_get(w, &st);
    append_n(w, 1, 6, 1, 2);
    cons_wal_sync(w);
    cons_wal_close(w);
    snprintf(seg1, sizeof seg1, "%s/wal-%016x", dir, 1);
    int fd = open(seg1, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t junk[16];
    memset(junk, 0x5a, sizeof junk);
    /* Garble the middle of the last record (its data). */
    cr_assert_eq(pwrite(fd, junk, sizeof junk,
                        (off_t)(32 + st.bytes + 40)), (ssize_t)sizeof junk);
    close(fd);
    w = wal_open();
    expect_log(w, 1, 0, 0, 1, 5, 2);
    /* The log goes on where it was cut, and the garbage is gone. */
    append_n(w, 1, 6, 2, 2);
    cons_wal_sync(w);
    cons_wal_close(w);
    w = wal_open();
    expect_log(w, 1, 0, 0, 1, 7, 2);
    cons_wal_close(w);
    cr_assert_gt(seg_size(seg1), 0);
}

Test(wal, damage_before_the_end_is_refused)
{
    struct cons_wal *w = wal_open();
    wal_set_segment_bytes(w, 4096);
    append_n(w, 1, 1, 200, 2); /* several segments */
    cons_wal_sync(w);
    for (int i = 0; i < 4; i++) {
        append_n(w, 1, 201 + (uint64_t)i * 50, 50, 2);
        cons_wal_sync(w);
    }
    struct cons_wal_stats st;
    cons_wal_stats_get(w, &st);
    cr_assert_geq(st.segments, 2);
    cons_wal_close(w);
    /* Flip a byte in the first record of the oldest segment. */
    char oldest[128] = "";
    for (unsigned seq = 1; seq < 100 && oldest[0] == '\0'; seq++) {
        char p[128];
        snprintf(p, sizeof p, "%s/wal-%016x", dir, seq);
        if (access(p, F_OK) == 0) {
            snprintf(oldest, sizeof oldest, "%s", p);
        }
    }
    cr_assert_neq(oldest[0], '\0');
    int fd = open(oldest, O_RDWR);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, 32 + 20), 1);
    b ^= 0xff;
    cr_assert_eq(pwrite(fd, &b, 1, 32 + 20), 1);
    close(fd);
    struct cons_wal *w2;
    char err[256] = "";
    cr_assert_eq(cons_wal_open(&loop, dir, 0, &w2, err, sizeof err),
                 MC_INTERNAL);
    cr_assert_not_null(strstr(err, "damaged"), "%s", err);
}

Test(wal, old_segments_go_and_idle_groups_keep_their_entries)
{
    struct cons_wal *w = wal_open();
    wal_set_segment_bytes(w, 8192);
    snprintf(seg1, sizeof seg1, "%s/wal-%016x", dir, 1);
    cr_assert_eq(access(seg1, F_OK), 0);
    cr_assert_eq(wal_set_term(w, 2, 7), 0);
    append_n(w, 2, 1, 3, 7); /* then idle: pinned in the first segment */
    cons_wal_sync(w);
    uint64_t next = 1;
    for (int round = 0; round < 40; round++) {
        append_n(w, 5, next, 20, 1);
        next += 20;
        cons_wal_sync(w);
    }
    struct cons_wal_stats st;
    cons_wal_stats_get(w, &st);
    cr_assert_gt(st.removed, 3, "removed %llu",
                 (unsigned long long)st.removed);
    cr_assert_leq(st.segments, 3);
    cr_assert_gt(st.copied, 0);
    cr_assert_eq(access(seg1, F_OK), -1, "the first segment is gone");
    cons_wal_close(w);
    w = wal_open();
    expect_log(w, 2, 7, 0, 1, 3, 7);
    expect_log(w, 5, 0, 0, 1, next - 1, 1);
    cons_wal_close(w);
}

static int put_status = -1;

static void put_cb(struct raft_io_snapshot_put *req, int status)
{
    (void)req;
    put_status = status;
}

static struct raft_snapshot *snapshot_make(uint64_t index, uint64_t term,
                                           const char *data)
{
    struct raft_snapshot *s = calloc(1, sizeof *s);
    s->index = index;
    s->term = term;
    s->configuration_index = 1;
    raft_configuration_init(&s->configuration);
    cr_assert_eq(raft_configuration_add(&s->configuration, 1, "127.0.0.1:1",
                                        RAFT_VOTER),
                 0);
    cr_assert_eq(raft_configuration_add(&s->configuration, 2, "127.0.0.1:2",
                                        RAFT_STANDBY),
                 0);
    s->bufs = calloc(1, sizeof *s->bufs);
    s->bufs[0].base = strdup(data);
    s->bufs[0].len = strlen(data);
    s->n_bufs = 1;
    return s;
}

static void snapshot_free(struct raft_snapshot *s)
{
    raft_configuration_close(&s->configuration);
    free(s->bufs[0].base);
    free(s->bufs);
    free(s);
}

static void snapshot_put(struct cons_wal *w, uint32_t shard,
                         unsigned trailing, struct raft_snapshot *s)
{
    struct raft_io_snapshot_put req;
    put_status = -1;
    cr_assert_eq(wal_snapshot_put(w, shard, trailing, &req, s, put_cb), 0);
    while (put_status == -1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    cr_assert_eq(put_status, 0);
    cons_wal_sync(w);
}

Test(wal, snapshots_compact_and_a_restart_gets_a_placeholder)
{
    struct cons_wal *w = wal_open();
    append_n(w, 4, 1, 100, 3);
    cons_wal_sync(w);
    struct raft_snapshot *s = snapshot_make(90, 3, "state as of 90");
    snapshot_put(w, 4, 20, s); /* keep 20 entries before it: 71.. */
    snapshot_free(s);
    /* An installed snapshot wipes another group's log. */
    append_n(w, 6, 1, 10, 1);
    cons_wal_sync(w);
    s = snapshot_make(500, 4, "state as of 500");
    snapshot_put(w, 6, 0, s);
    snapshot_free(s);
    append_n(w, 6, 501, 2, 4);
    cons_wal_sync(w);
    cons_wal_close(w);

    w = wal_open();
    struct loaded l;
    /* The store is behind the snapshot: it comes whole. */
    cr_assert_eq(load(w, 4, 10, &l), 0, "%s", l.msg);
    cr_assert_not_null(l.snap);
    cr_assert_eq(l.snap->index, 90);
    cr_assert_eq(l.snap->term, 3);
    cr_assert_eq(l.snap->configuration.n, 2);
    cr_assert_eq(l.snap->configuration.servers[1].role, RAFT_STANDBY);
    cr_assert_str_eq(l.snap->configuration.servers[1].address, "127.0.0.1:2");
    cr_assert_eq(l.snap->bufs[0].len, strlen("state as of 90"));
    cr_assert_eq(memcmp(l.snap->bufs[0].base, "state as of 90", 14), 0);
    cr_assert_eq(wal_placeholder_index(&l.snap->bufs[0]), 0);
    cr_assert_eq(l.start, 71);
    cr_assert_eq(l.n, 30);
    loaded_free(&l);
    /* The store holds it: a placeholder, no data read. */
    cr_assert_eq(load(w, 6, 500, &l), 0, "%s", l.msg);
    cr_assert_eq(l.snap->index, 500);
    cr_assert_eq(wal_placeholder_index(&l.snap->bufs[0]), 500);
    cr_assert_eq(l.start, 501);
    cr_assert_eq(l.n, 2);
    cr_assert_eq(l.es[0].term, 4);
    loaded_free(&l);
    cons_wal_close(w);
}

Test(wal, a_damaged_snapshot_file_is_refused)
{
    struct cons_wal *w = wal_open();
    append_n(w, 4, 1, 10, 3);
    cons_wal_sync(w);
    struct raft_snapshot *s = snapshot_make(10, 3, "the state at ten");
    snapshot_put(w, 4, 2, s);
    snapshot_free(s);
    cons_wal_close(w);
    char path[128];
    snprintf(path, sizeof path, "%s/snap-0004-%016x", dir, 10);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    off_t end = seg_size(path);
    uint8_t b = 'X';
    cr_assert_eq(pwrite(fd, &b, 1, end - 3), 1);
    close(fd);
    w = wal_open();
    struct loaded l;
    cr_assert_eq(load(w, 4, 0, &l), RAFT_CORRUPT);
    cr_assert_not_null(strstr(l.msg, "damaged"), "%s", l.msg);
    cons_wal_close(w);
}

/* The next segment is made once the newest is half full. A crash then
 * leaves it empty as the newest file, with a torn write at the end of the
 * one before: that write is dropped (and wiped, so that it never reads as
 * damage once the empty one fills), and the log goes on. */
Test(wal, a_torn_write_before_a_segment_made_ahead)
{
    struct cons_wal *w = wal_open();
    wal_set_segment_bytes(w, 64u << 20); /* as made at open */
    /* Fill past half of the first segment: big entries. */
    static char big[1 << 20];
    memset(big, 'b', sizeof big);
    uint64_t next = 1;
    for (int i = 0; i < 33; i++) {
        struct raft_entry e = {.term = 1, .type = RAFT_COMMAND,
                               .buf = {big, sizeof big}};
        struct raft_io_append *req = calloc(1, sizeof *req);
        cr_assert_eq(wal_append(w, 1, req, &e, 1, append_cb), 0);
        next++;
        cons_wal_sync(w);
    }
    char seg2[128];
    snprintf(seg2, sizeof seg2, "%s/wal-%016x", dir, 2);
    cr_assert_eq(access(seg2, F_OK), 0, "the next segment is made ahead");
    cr_assert(!cons_wal_space_low(w));
    struct cons_wal_stats st;
    cons_wal_stats_get(w, &st);
    append_n(w, 1, next, 1, 1); /* the write that will be torn */
    cons_wal_sync(w);
    cons_wal_close(w);
    snprintf(seg1, sizeof seg1, "%s/wal-%016x", dir, 1);
    int fd = open(seg1, O_RDWR);
    uint8_t junk[16];
    memset(junk, 0x77, sizeof junk);
    cr_assert_eq(pwrite(fd, junk, sizeof junk,
                        (off_t)(32 + st.bytes + 40)), (ssize_t)sizeof junk);
    close(fd);

    w = wal_open();
    struct loaded l;
    cr_assert_eq(load(w, 1, 0, &l), 0, "%s", l.msg);
    cr_assert_eq(l.n, next - 1, "the torn entry is gone, the others stay");
    loaded_free(&l);
    append_n(w, 1, next, 3, 1); /* into the empty newest segment */
    cons_wal_sync(w);
    cons_wal_close(w);
    w = wal_open(); /* the first segment is not the newest any more */
    cr_assert_eq(load(w, 1, 0, &l), 0, "%s", l.msg);
    cr_assert_eq(l.n, next + 2);
    loaded_free(&l);
    cons_wal_close(w);
}

/* A disk without room for the next segment: the log says so (space_low,
 * which makes leaders refuse writes) while it still has room in the
 * newest, instead of failing at the sync that would need the next one.
 * Needs root to mount a small tmpfs; skipped loudly otherwise. */
Test(wal, no_room_for_the_next_segment_is_told_ahead)
{
    char mnt[sizeof dir + 8];
    snprintf(mnt, sizeof mnt, "%s/small", dir);
    cr_assert_eq(mkdir(mnt, 0755), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=96m") != 0) {
        fprintf(stderr, "\n*** SKIPPED: mounting a tmpfs needs root (%s): a "
                        "raft log on a full disk is NOT tested ***\n\n",
                strerror(errno));
        cr_skip_test("cannot mount a tmpfs");
    }
    struct cons_wal *w;
    char err[256] = "";
    cr_assert_eq(cons_wal_open(&loop, mnt, 0, &w, err, sizeof err), MC_OK,
                 "%s", err);
    static char big[1 << 20];
    memset(big, 'b', sizeof big);
    appended = 0;
    for (int i = 0; i < 40; i++) { /* past half of the 64 MiB segment */
        struct raft_entry e = {.term = 1, .type = RAFT_COMMAND,
                               .buf = {big, sizeof big}};
        struct raft_io_append *req = calloc(1, sizeof *req);
        cr_assert_eq(wal_append(w, 1, req, &e, 1, append_cb), 0);
        cons_wal_sync(w);
    }
    cr_assert_eq(appended, 40, "the newest segment still takes writes");
    cr_assert(cons_wal_space_low(w), "told before the segment is full");
    cons_wal_close(w);
    umount2(mnt, MNT_DETACH);
}
