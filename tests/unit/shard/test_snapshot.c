/* Unit tests of shard/snapshot.c and of restarts (shard/store.c): a
 * snapshot restored into a fresh shard gives the same state hash and the
 * same reads; an older snapshot changes nothing; corrupted, truncated or
 * cleverly malformed buffers (with a valid checksum) are refused and leave
 * the store untouched; and a shard closed and reopened keeps its records
 * and applied index, so that raft's replay of old entries is skipped. */
#include <pthread.h>

#include "tests/unit/shard/shard_test.h"

static struct tshard f; /* the source */
static struct tshard g; /* the target of restores */

static void setup(void)
{
    t_open(&f, 3, 0, 0);
    t_open(&g, 3, 0, 0);
}

static void teardown(void)
{
    t_close(&f);
    t_close(&g);
}

TestSuite(shard_snapshot, .init = setup, .fini = teardown);
TestSuite(shard_restore, .init = setup, .fini = teardown);
TestSuite(shard_open, .init = setup, .fini = teardown);

/* Records in every tier, an expiry entry, a dedupe entry, a long key. */
static void fill(struct tshard *t, const char *tag)
{
    static char long_key[800];
    memset(long_key, 'L', 700);
    snprintf(long_key + 700, 100, "/%s", tag);
    /* Client 5's seqs grow with the index, as a real client's would. */
    const uint64_t seq = t->index + 1;
    const struct tcmd cmds[] = {
        {.op = T_PUT, .key = "a", .value = tag, .tier = MC_TIER_SHORT},
        {.op = T_PUT, .key = "b", .value = tag, .tier = MC_TIER_MID},
        {.op = T_PUT, .key = "c", .value = tag, .client_id = 5, .seq = seq},
        {.op = T_PUT, .key = long_key, .value = tag},
        {.op = T_PUT, .key = "d", .value = tag, .ttl_ms = 1000},
        {.op = T_DELETE, .key = "c", .client_id = 5, .seq = seq + 1},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        cr_assert_eq(t_apply(t, &cmds[i])->code, MC_OK, "%zu", i);
    }
}

static void snapshot(struct tshard *t, uint8_t **buf, size_t *len)
{
    cr_assert_eq(shard_snapshot(t->s, malloc, (void **)buf, len), MC_OK);
}

/* ---- snapshot and restore ---- */

Test(shard_snapshot, restore_into_fresh_shard_gives_identical_state)
{
    fill(&f, "v");
    uint8_t *buf;
    size_t len;
    snapshot(&f, &buf, &len);
    cr_assert_eq(shard_restore(g.s, buf, len), MC_OK);
    free(buf);
    cr_assert_eq(shard_state_hash(g.s), shard_state_hash(f.s));
    cr_assert_eq(shard_applied_index(g.s), shard_applied_index(f.s));
    struct shard_record rec;
    cr_assert_eq(t_get(&g, T_STAMP, "b", &rec), MC_OK);
    cr_assert_eq(rec.tier, MC_TIER_MID);
    cr_assert_eq(t_get(&g, T_STAMP, "c", &rec), MC_NOT_FOUND);
    /* Both go on alike: the same next entries, the same state. */
    g.index = f.index;
    fill(&f, "w");
    fill(&g, "w");
    cr_assert_eq(shard_state_hash(g.s), shard_state_hash(f.s));
}

struct snap_writer {
    struct shard_snap *sn;
    uint8_t *buf;
    size_t len;
    mc_err rv;
};

static void *snap_write_thread(void *arg)
{
    struct snap_writer *w = arg;
    w->rv = shard_snapshot_write(w->sn, malloc, (void **)&w->buf, &w->len);
    return NULL;
}

/* raft's background snapshot: begun here, written on another thread while
 * this one commits more writes, it holds the state it began with. */
Test(shard_snapshot, written_on_another_thread_holds_the_state_it_began_with)
{
    fill(&f, "v");
    uint64_t hash_v = shard_state_hash(f.s);
    uint64_t index_v = shard_applied_index(f.s);
    struct snap_writer w = {0};
    cr_assert_eq(shard_snapshot_begin(f.s, &w.sn), MC_OK);
    fill(&f, "w");
    char err[256];
    cr_assert_eq(shard_commit(f.s, err, sizeof err), MC_OK, "%s", err);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, snap_write_thread, &w), 0);
    fill(&f, "x"); /* and more while it writes */
    cr_assert_eq(shard_commit(f.s, err, sizeof err), MC_OK, "%s", err);
    cr_assert_eq(pthread_join(th, NULL), 0);
    shard_snapshot_end(w.sn);
    cr_assert_eq(w.rv, MC_OK);
    cr_assert_neq(shard_state_hash(f.s), hash_v);
    cr_assert_eq(shard_restore(g.s, w.buf, w.len), MC_OK);
    free(w.buf);
    cr_assert_eq(shard_state_hash(g.s), hash_v);
    cr_assert_eq(shard_applied_index(g.s), index_v);
}

/* Once written, a snapshot pins no pages: the writes that go on while
 * raft stores it (a large shard's takes hundreds of ms) reuse the pages
 * they free, as they do without a snapshot, instead of growing the file.
 * Under a read txn held until _end, 300 commits that rewrite the same
 * records fill a 4 MiB map (the shard refuses writes); without it they
 * take a few pages. */
Test(shard_snapshot, once_written_pins_no_pages)
{
    struct tshard h;
    t_open(&h, 4, 0, 4u << 20);
    fill(&h, "v");
    t_commit(&h);
    struct shard_snap *sn;
    cr_assert_eq(shard_snapshot_begin(h.s, &sn), MC_OK);
    void *buf;
    size_t len;
    cr_assert_eq(shard_snapshot_write(sn, malloc, &buf, &len), MC_OK);
    free(buf);
    for (int i = 0; i < 300; i++) {
        fill(&h, i % 2 ? "w" : "x");
        t_commit(&h);
    }
    cr_assert(!shard_is_nearly_full(h.s),
              "the rewrites took fresh pages: the snapshot still pins them");
    shard_snapshot_end(sn);
    t_close(&h);
}

Test(shard_snapshot, includes_entries_not_yet_committed)
{
    fill(&f, "v");
    uint8_t *buf;
    size_t len;
    snapshot(&f, &buf, &len);
    cr_assert_eq(shard_restore(g.s, buf, len), MC_OK);
    free(buf);
    cr_assert_eq(t_count(&g, MC_TIER_SHORT), 2);
}

Test(shard_snapshot, state_hash_follows_the_state)
{
    uint64_t empty = shard_state_hash(f.s);
    cr_assert_eq(shard_state_hash(g.s), empty);
    cr_assert_eq(t_put(&f, "k", "v")->code, MC_OK);
    cr_assert_neq(shard_state_hash(f.s), empty);
    cr_assert_eq(t_put(&g, "k", "v")->code, MC_OK);
    cr_assert_eq(shard_state_hash(g.s), shard_state_hash(f.s));
    cr_assert_eq(t_put(&g, "k", "w")->code, MC_OK);
    cr_assert_neq(shard_state_hash(g.s), shard_state_hash(f.s));
}

Test(shard_restore, older_snapshot_is_a_no_op)
{
    fill(&f, "old");
    uint8_t *buf;
    size_t len;
    snapshot(&f, &buf, &len);
    fill(&g, "new");
    fill(&g, "newer");
    uint64_t before = shard_state_hash(g.s);
    cr_assert_eq(shard_restore(g.s, buf, len), MC_OK);
    cr_assert_eq(shard_state_hash(g.s), before);
    cr_assert_eq(shard_applied_index(g.s), 2 * f.index);
    /* Same index: no-op as well. */
    g.index = 0;
    t_close(&g);
    t_open(&g, 3, 0, 0);
    fill(&g, "same");
    before = shard_state_hash(g.s);
    cr_assert_eq(shard_restore(g.s, buf, len), MC_OK);
    cr_assert_eq(shard_state_hash(g.s), before);
    free(buf);
}

/* raft hands a node its own last snapshot at every start; when LMDB holds
 * it already, the FSM skips it on the header alone. */
Test(shard_restore, is_needed_only_for_a_newer_snapshot)
{
    fill(&f, "v");
    uint8_t *buf;
    size_t len;
    snapshot(&f, &buf, &len);
    cr_assert(!shard_restore_is_needed(f.s, buf, len), "its own state");
    cr_assert(shard_restore_is_needed(g.s, buf, len), "an empty store");
    fill(&g, "g");
    cr_assert(!shard_restore_is_needed(g.s, buf, len), "at the same index");
    fill(&f, "w");
    uint8_t *newer;
    size_t newer_len;
    snapshot(&f, &newer, &newer_len);
    cr_assert(shard_restore_is_needed(g.s, newer, newer_len));
    /* What the header cannot vouch for is for shard_restore to judge. */
    cr_assert(shard_restore_is_needed(g.s, buf, 16), "truncated");
    buf[0] ^= 1;
    cr_assert(shard_restore_is_needed(g.s, buf, len), "bad magic");
    buf[0] ^= 1;
    buf[12] ^= 1;
    cr_assert(shard_restore_is_needed(g.s, buf, len), "another shard's");
    free(buf);
    free(newer);
}

Test(shard_restore, newer_snapshot_replaces_everything)
{
    fill(&g, "mine");
    cr_assert_eq(t_put(&g, "only-here", "x")->code, MC_OK);
    fill(&f, "v");
    fill(&f, "v2");
    uint8_t *buf;
    size_t len;
    snapshot(&f, &buf, &len);
    cr_assert_eq(shard_restore(g.s, buf, len), MC_OK);
    free(buf);
    struct shard_record rec;
    cr_assert_eq(t_get(&g, T_STAMP, "only-here", &rec), MC_NOT_FOUND);
    cr_assert_eq(shard_state_hash(g.s), shard_state_hash(f.s));
}

/* Restore must refuse buf and leave g as it was. */
static void assert_refused(const uint8_t *buf, size_t len, const char *what)
{
    uint64_t before = shard_state_hash(g.s);
    uint64_t index = shard_applied_index(g.s);
    cr_assert_eq(shard_restore(g.s, buf, len), MC_INVALID_ARGUMENT, "%s",
                 what);
    cr_assert_eq(shard_state_hash(g.s), before, "%s", what);
    cr_assert_eq(shard_applied_index(g.s), index, "%s", what);
}

Test(shard_restore, every_single_byte_corruption_is_refused)
{
    fill(&f, "v");
    fill(&g, "mine");
    uint8_t *buf;
    size_t len;
    snapshot(&f, &buf, &len);
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x20;
        assert_refused(buf, len, "flipped byte");
        buf[i] ^= 0x20;
    }
    free(buf);
}

Test(shard_restore, every_truncation_is_refused)
{
    fill(&f, "v");
    uint8_t *buf;
    size_t len;
    snapshot(&f, &buf, &len);
    for (size_t n = 0; n < len; n++) {
        assert_refused(buf, n, "truncated");
    }
    assert_refused(NULL, 0, "empty");
    free(buf);
}

/* Rewrite the checksum after a deliberate change, as a buggy or hostile
 * peer would: the content checks must catch it. */
static void reseal(uint8_t *buf, size_t len)
{
    bytes_put_u64le(buf + len - 8, base_fnv64(BASE_FNV64_INIT, buf, len - 8));
}

/* Offsets in a snapshot of f after fill(): header 24, then the short
 * section: tag 4, count 8, first entry: key_len 4, key. */
#define OFF_SHARD_ID 12
#define OFF_SHORT_COUNT 28
#define OFF_FIRST_KEY_LEN 36
#define OFF_FIRST_KEY 40

Test(shard_restore, malformed_content_with_valid_checksum_is_refused)
{
    fill(&f, "v");
    uint8_t *buf;
    size_t len;
    snapshot(&f, &buf, &len);
    uint8_t *copy = malloc(len);
    cr_assert_eq(bytes_get_u64le(buf + OFF_SHORT_COUNT), 2);
    cr_assert_eq(buf[OFF_FIRST_KEY + 2], 'a'); /* "t\0a" */

    struct {
        size_t off;
        uint8_t value;
        const char *what;
    } const edits[] = {
        {OFF_SHARD_ID, 4, "other shard's snapshot"},
        {OFF_SHORT_COUNT, 3, "count too high"},
        {OFF_SHORT_COUNT, 1, "count too low"},
        {OFF_SHORT_COUNT + 7, 0x10, "count beyond the buffer"},
        {OFF_FIRST_KEY_LEN + 3, 0x80, "key length beyond the buffer"},
        {OFF_FIRST_KEY + 1, 'x', "record key without ns terminator"},
        {OFF_FIRST_KEY + 2, 'z', "keys out of order"},
        {OFF_FIRST_KEY + 3 + 4, 9, "record format"},
        {OFF_FIRST_KEY + 3 + 4 + 1, 2, "record in the wrong tier"},
        {0, 'X', "magic"},
        {8, 3, "unknown format"},
        {8, 1, "format 1 (no ring) with a ring section"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        memcpy(copy, buf, len);
        copy[edits[i].off] = edits[i].value;
        reseal(copy, len);
        assert_refused(copy, len, edits[i].what);
    }
    /* Trailing bytes after the last section. */
    uint8_t *longer = malloc(len + 8);
    memcpy(longer, buf, len - 8);
    memset(longer + len - 8, 0, 8);
    reseal(longer, len + 8);
    assert_refused(longer, len + 8, "trailing bytes");
    free(longer);
    /* The unchanged buffer still restores. */
    cr_assert_eq(shard_restore(g.s, buf, len), MC_OK);
    free(copy);
    free(buf);
}

/* ---- restart ---- */

Test(shard_open, reopen_keeps_records_and_applied_index)
{
    fill(&f, "v");
    t_commit(&f);
    uint64_t hash = shard_state_hash(f.s);
    uint64_t index = shard_applied_index(f.s);
    shard_close(f.s);
    t_reopen(&f);
    cr_assert_eq(shard_applied_index(f.s), index);
    cr_assert_eq(shard_state_hash(f.s), hash);
    /* Raft replays the log from the start: old entries are skipped. */
    f.index = 0;
    fill(&f, "replayed");
    cr_assert_eq(shard_skipped_entries(f.s), index);
    cr_assert_eq(shard_applied_entries(f.s), 0);
    cr_assert_eq(shard_state_hash(f.s), hash);
    /* The next new entry applies. */
    cr_assert_eq(t_put(&f, "a", "new")->version, 2);
    cr_assert_eq(shard_applied_index(f.s), index + 1);
}

Test(shard_open, close_commits_what_is_pending)
{
    cr_assert_eq(t_put(&f, "k", "v")->code, MC_OK);
    shard_close(f.s);
    t_reopen(&f);
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, "k", &rec), MC_OK);
    cr_assert_eq(shard_applied_index(f.s), 1);
}

Test(shard_open, restored_state_survives_a_restart)
{
    fill(&f, "v");
    uint8_t *buf;
    size_t len;
    snapshot(&f, &buf, &len);
    cr_assert_eq(shard_restore(g.s, buf, len), MC_OK);
    free(buf);
    shard_close(g.s);
    t_reopen(&g);
    cr_assert_eq(shard_state_hash(g.s), shard_state_hash(f.s));
    cr_assert_eq(shard_applied_index(g.s), f.index);
}

Test(shard_open, unusable_folder_is_an_error)
{
    char err[256] = "";
    struct shard *s = NULL;
    struct shard_config cfg = {.id = 1, .value_bytes_max = 16};
    cr_assert_eq(shard_open("/proc/no/such/dir", &cfg, &s, err, sizeof err),
                 MC_INTERNAL);
    cr_assert_null(s);
    cr_assert_neq(err[0], '\0');
}
