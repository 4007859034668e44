/* consensus/io_guard.c: an AppendEntries whose prev_log_index lies in the
 * part of the follower's log its snapshot compacted is moved to start at
 * the snapshot (raft 0.15 would reject it, and the leader would walk back
 * one index per heartbeat). Drives the guard's receive path with a fake
 * inner raft_io and a raft whose log has a snapshot; no I/O. */
#include <criterion/criterion.h>
#include <string.h>

#include "consensus/consensus.h"

static raft_io_recv_cb guard_recv; /* what the guard gave the inner io */
static struct raft_message seen;   /* what raft would have received */
static unsigned seen_n;
static raft_term seen_first, seen_last; /* terms of its first, last entry */

static int fake_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                      raft_io_recv_cb recv)
{
    (void)io, (void)msecs, (void)tick;
    guard_recv = recv;
    return 0;
}

/* Take the message as raft does, and free it as raft does. */
static void raft_recv(struct raft_io *io, struct raft_message *m)
{
    (void)io;
    seen = *m;
    seen_n++;
    struct raft_append_entries *a = &m->append_entries;
    seen_first = a->n_entries > 0 ? a->entries[0].term : 0;
    seen_last = a->n_entries > 0 ? a->entries[a->n_entries - 1].term : 0;
    if (a->n_entries > 0 && a->entries[0].batch != NULL) {
        raft_free(a->entries[0].batch);
    }
    raft_free(a->entries);
}

static struct raft_io inner;
static struct cons_io_guard guard;
static struct raft r;

/* A follower whose log starts after index 100, with a snapshot at 120
 * (term 3): it holds entries 101..130. */
static void setup(void)
{
    memset(&inner, 0, sizeof inner);
    memset(&r, 0, sizeof r);
    inner.version = 2;
    inner.start = fake_start;
    cons_io_guard_init(&guard, &inner);
    guard.io.data = &r; /* as raft_init does */
    r.log.offset = 100;
    r.log.snapshot.last_index = 120;
    r.log.snapshot.last_term = 3;
    cr_assert_eq(guard.io.start(&guard.io, 100, NULL, raft_recv), 0);
    cr_assert_not_null(guard_recv);
    seen_n = 0;
}

/* AppendEntries of n entries after prev; entry prev + 1 + i has term
 * prev + 1 + i (so a test can tell them apart), in one batch. */
static void deliver(raft_index prev, unsigned n)
{
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES,
                             .server_id = 1,
                             .server_address = "127.0.0.1:9001"};
    struct raft_append_entries *a = &m.append_entries;
    a->term = 4;
    a->prev_log_index = prev;
    a->prev_log_term = 2;
    a->n_entries = n;
    if (n > 0) {
        a->entries = raft_calloc(n, sizeof *a->entries);
        uint8_t *batch = raft_malloc(8 * n);
        for (unsigned i = 0; i < n; i++) {
            a->entries[i].term = prev + 1 + i;
            a->entries[i].type = RAFT_COMMAND;
            a->entries[i].buf = (struct raft_buffer){batch + 8 * i, 8};
            a->entries[i].batch = batch;
        }
    }
    guard_recv(&inner, &m);
    cr_assert_eq(seen_n, 1);
}

Test(io_guard, append_inside_the_snapshot_starts_at_it, .init = setup)
{
    deliver(90, 40); /* entries 91..130: 91..120 are in the snapshot */
    cr_assert_eq(seen.append_entries.prev_log_index, 120);
    cr_assert_eq(seen.append_entries.prev_log_term, 3);
    cr_assert_eq(seen.append_entries.n_entries, 10);
    cr_assert_eq(seen_first, 121);
    cr_assert_eq(seen_last, 130);
    cr_assert_eq(guard.rebased, 1);
}

Test(io_guard, append_wholly_inside_the_snapshot_is_a_heartbeat,
     .init = setup)
{
    deliver(90, 20); /* entries 91..110 */
    cr_assert_eq(seen.append_entries.prev_log_index, 120);
    cr_assert_eq(seen.append_entries.prev_log_term, 3);
    cr_assert_eq(seen.append_entries.n_entries, 0);
    seen_n = 0;
    deliver(50, 0); /* a heartbeat probing index 50 */
    cr_assert_eq(seen.append_entries.prev_log_index, 120);
    cr_assert_eq(seen.append_entries.n_entries, 0);
    cr_assert_eq(guard.rebased, 2);
}

Test(io_guard, append_the_log_still_holds_is_left_alone, .init = setup)
{
    deliver(110, 5); /* 110 is in the log (after offset 100) */
    cr_assert_eq(seen.append_entries.prev_log_index, 110);
    cr_assert_eq(seen.append_entries.prev_log_term, 2);
    cr_assert_eq(seen.append_entries.n_entries, 5);
    cr_assert_eq(guard.rebased, 0);
}

Test(io_guard, append_without_a_snapshot_is_left_alone, .init = setup)
{
    r.log.snapshot.last_index = 0;
    r.log.snapshot.last_term = 0;
    r.log.offset = 0;
    deliver(0, 3);
    cr_assert_eq(seen.append_entries.prev_log_index, 0);
    cr_assert_eq(seen.append_entries.n_entries, 3);
    cr_assert_eq(guard.rebased, 0);
}
