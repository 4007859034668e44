/* consensus/io_guard.c: an AppendEntries whose prev_log_index lies in the
 * part of the follower's log its snapshot compacted is moved to start at
 * the snapshot (raft 0.15 would reject it, and the leader would walk back
 * one index per heartbeat; from prev_log_index 0 it would crash). Drives
 * the guard's receive path with a fake inner raft_io and a raft whose log
 * has a snapshot; no I/O. The last test runs three real rafts on
 * raft/fixture.h (in memory, virtual time) behind guards, as test_sim.c
 * does, through the crash a resend from index 1 causes without them. */
#include <criterion/criterion.h>
#include <raft/fixture.h>
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

/* A leader that has matched nothing of a follower (a send failed, so
 * progressToProbe set next_index to match_index + 1 = 1) sends its whole
 * log after prev_log_index 0. raft 0.15 skips its log matching check at
 * index 0 and, in deleteConflictingEntries, takes the compacted indexes
 * (logTermOf answers 0) for missing ones: it appends the leader's entries
 * 1.. after its own last entry, finds none at index 1 and crashes undoing
 * that (seed 5146 of tests/fault/test_sim.c). The guard starts it at the
 * snapshot, as for any other prev_log_index the snapshot compacted. */
Test(io_guard, append_from_the_start_starts_at_the_snapshot, .init = setup)
{
    deliver(0, 125); /* entries 1..125: 1..120 are in the snapshot */
    cr_assert_eq(seen.append_entries.prev_log_index, 120);
    cr_assert_eq(seen.append_entries.prev_log_term, 3);
    cr_assert_eq(seen.append_entries.n_entries, 5);
    cr_assert_eq(seen_first, 121);
    cr_assert_eq(seen_last, 125);
    cr_assert_eq(guard.rebased, 1);
}

Test(io_guard, heartbeat_from_the_start_starts_at_the_snapshot,
     .init = setup)
{
    deliver(0, 0);
    cr_assert_eq(seen.append_entries.prev_log_index, 120);
    cr_assert_eq(seen.append_entries.prev_log_term, 3);
    cr_assert_eq(seen.append_entries.n_entries, 0);
    cr_assert_eq(guard.rebased, 1);
}

/* A snapshot that compacted nothing yet (its trailing entries reach back
 * to index 1): raft finds every index itself. */
Test(io_guard, append_from_the_start_of_a_whole_log_is_left_alone,
     .init = setup)
{
    r.log.offset = 0;
    deliver(0, 125);
    cr_assert_eq(seen.append_entries.prev_log_index, 0);
    cr_assert_eq(seen.append_entries.n_entries, 125);
    cr_assert_eq(guard.rebased, 0);
}

/* ---- on real rafts: a new leader resends its whole log ----
 *
 * Three servers behind guards, a state machine that keeps nothing. The
 * follower F alone compacts its log (snapshot threshold 4, trailing 2).
 * Then a new leader C is elected while its link to F is down: its first
 * AppendEntries to F fails to send, and raft 0.15's progressToProbe sets
 * F's next_index to match_index + 1 = 1. Once the link is back, C sends
 * F its whole log after prev_log_index 0. Without the guard F appends
 * those entries after its own last one, finds none at index 1 and
 * crashes in logTruncate (tests/fault/test_sim.c, seed 5146). */

#define RESEND_SERVERS 3u

static struct raft_fixture rf;
static struct raft_fsm rfsm[RESEND_SERVERS];
static struct cons_io_guard rguard[RESEND_SERVERS];

static int nop_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result)
{
    (void)fsm, (void)buf;
    *result = NULL;
    return 0;
}

/* Version 1: raft frees the buffers it is given. */
static int nop_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
    (void)fsm;
    *bufs = raft_malloc(sizeof **bufs);
    cr_assert_not_null(*bufs);
    (*bufs)[0].len = 8;
    (*bufs)[0].base = raft_calloc(1, 8);
    cr_assert_not_null((*bufs)[0].base);
    *n_bufs = 1;
    return 0;
}

static int nop_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    raft_free(buf->base);
    return 0;
}

static void resend_setup(void)
{
    memset(rguard, 0, sizeof rguard);
    cr_assert_eq(raft_fixture_initialize(&rf), 0);
    for (unsigned i = 0; i < RESEND_SERVERS; i++) {
        rfsm[i] = (struct raft_fsm){.version = 1,
                                    .apply = nop_apply,
                                    .snapshot = nop_snapshot,
                                    .restore = nop_restore};
        cr_assert_eq(raft_fixture_grow(&rf, &rfsm[i]), 0);
        /* As consensus/group.c sets it: the cut-off follower then keeps
         * its term, and takes the new leader's messages. */
        raft_set_pre_vote(raft_fixture_get(&rf, i), true);
        /* Slip a guard between raft and the fixture's io, as test_sim.c
         * does: the fixture calls back with its own io, whose data leads
         * to the guard. */
        struct raft *ri = raft_fixture_get(&rf, i);
        struct raft_io *fio = ri->io;
        cons_io_guard_init(&rguard[i], fio);
        rguard[i].io.data = ri;
        ri->io = &rguard[i].io;
        fio->data = &rguard[i];
    }
    struct raft_configuration conf;
    cr_assert_eq(raft_fixture_configuration(&rf, RESEND_SERVERS, &conf), 0);
    cr_assert_eq(raft_fixture_bootstrap(&rf, &conf), 0);
    raft_configuration_close(&conf);
    cr_assert_eq(raft_fixture_start(&rf), 0);
}

static void resend_teardown(void)
{
    raft_fixture_close(&rf);
}

/* Apply one 8-byte entry on server l and step until every server in
 * [0, RESEND_SERVERS) that is connected applied it. */
static raft_index resend_apply(unsigned l, unsigned skip)
{
    static struct raft_apply req;
    struct raft_buffer buf = {.base = raft_calloc(1, 8), .len = 8};
    cr_assert_not_null(buf.base);
    cr_assert_eq(raft_apply(raft_fixture_get(&rf, l), &req, &buf, 1, NULL),
                 0);
    for (unsigned i = 0; i < RESEND_SERVERS; i++) {
        if (i != skip) {
            cr_assert(raft_fixture_step_until_applied(&rf, i, req.index,
                                                      5000),
                      "server %u did not apply %llu", i,
                      (unsigned long long)req.index);
        }
    }
    return req.index;
}

Test(io_guard, new_leader_resending_from_index_1_reaches_a_compacted_follower,
     .init = resend_setup, .fini = resend_teardown)
{
    cr_assert(raft_fixture_step_until_has_leader(&rf, 10000));
    unsigned l = raft_fixture_leader_index(&rf);
    unsigned f = (l + 1) % RESEND_SERVERS;    /* compacts its log */
    unsigned c = (l + 2) % RESEND_SERVERS;    /* the next leader */
    struct raft *fr = raft_fixture_get(&rf, f);
    raft_set_snapshot_threshold(fr, 4);
    raft_set_snapshot_trailing(fr, 2);
    for (unsigned k = 0; k < 10; k++) {
        resend_apply(l, RESEND_SERVERS);
    }
    raft_fixture_step_until_elapsed(&rf, 200); /* the snapshot completes */
    cr_assert_gt(fr->log.offset, 0, "the follower compacted nothing");
    cr_assert_eq(raft_fixture_get(&rf, c)->log.offset, 0);

    raft_fixture_disconnect(&rf, c, f);
    raft_fixture_disconnect(&rf, f, c);
    raft_fixture_depose(&rf);
    raft_fixture_elect(&rf, c);
    raft_fixture_step_until_elapsed(&rf, 300); /* a send to f fails */
    raft_fixture_reconnect(&rf, c, f);
    raft_fixture_reconnect(&rf, f, c);

    raft_index last = resend_apply(c, RESEND_SERVERS);
    cr_assert_eq(raft_state(fr), RAFT_FOLLOWER);
    cr_assert_geq(raft_last_applied(fr), last);
    cr_assert_gt(rguard[f].rebased, 0,
                 "no AppendEntries from index 1 reached the follower");
}
