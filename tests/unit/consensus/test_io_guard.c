/* consensus/io_guard.c, the receive side. An AppendEntries whose
 * prev_log_index lies in the part of the follower's log its snapshot
 * compacted is moved to start at the snapshot (raft 0.15 would reject it,
 * and the leader would walk back one index per heartbeat; from
 * prev_log_index 0 it would crash). A leader whose last stored entry is
 * of an older term sees followers' answers capped below it (raft 0.15
 * would commit it by counting, #220). The first tests drive the guard's
 * receive path with a fake inner raft_io and a hand-made raft; no I/O.
 * The last ones run three real rafts on raft/fixture.h (in memory,
 * virtual time) behind guards, as test_sim.c does, through what raft 0.15
 * does without them: a crash on a resend from index 1, and Figure 8. */
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

static struct raft_message sent; /* what the guard passed on to send */
static unsigned sent_n;

static int fake_send(struct raft_io *io, struct raft_io_send *req,
                     const struct raft_message *m, raft_io_send_cb cb)
{
    (void)io, (void)req, (void)cb;
    sent = *m;
    sent_n++;
    return 0;
}

static void raft_reply_vote(struct raft_io *io, const struct raft_message *m);

/* Take the message as raft does, and free it as raft does. */
static void raft_recv(struct raft_io *io, struct raft_message *m)
{
    seen = *m;
    seen_n++;
    if (m->type == RAFT_IO_REQUEST_VOTE) {
        raft_reply_vote(io, m);
        return;
    }
    if (m->type != RAFT_IO_APPEND_ENTRIES) {
        return;
    }
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
    inner.send = fake_send;
    sent_n = 0;
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

/* ---- a leader's answers from followers ---- */

static struct raft_entry lentries[8];

/* A leader of term 5 whose log holds entries 1..4 of terms 1, 2, 2, 2,
 * all stored, committed up to 2. */
static void leader_setup(void)
{
    setup();
    memset(lentries, 0, sizeof lentries);
    r.log.offset = 0;
    r.log.snapshot.last_index = 0;
    r.log.snapshot.last_term = 0;
    r.log.entries = lentries;
    r.log.size = 8;
    r.log.front = 0;
    r.log.back = 4;
    const raft_term terms[] = {1, 2, 2, 2};
    for (unsigned i = 0; i < 4; i++) {
        lentries[i].term = terms[i];
    }
    r.state = RAFT_LEADER;
    r.current_term = 5;
    r.last_stored = 4;
    r.commit_index = 2;
    /* The raft is a mock: keep the guard from appending a new leader's
     * no-op to it (the fixture tests below cover the no-op). */
    guard.noop_term = 5;
}

static void answer(raft_index last_log_index, raft_index rejected)
{
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES_RESULT,
                             .server_id = 2,
                             .server_address = "127.0.0.1:9002"};
    m.append_entries_result.term = 5;
    m.append_entries_result.rejected = rejected;
    m.append_entries_result.last_log_index = last_log_index;
    seen_n = 0;
    guard_recv(&inner, &m);
    cr_assert_eq(seen_n, 1);
}

Test(io_guard, answer_matching_an_older_term_tail_is_held_below_it,
     .init = leader_setup)
{
    answer(4, 0); /* would commit 3 and 4, of term 2, by counting */
    cr_assert_eq(seen.append_entries_result.last_log_index, 3);
    answer(3, 0);
    cr_assert_eq(seen.append_entries_result.last_log_index, 3);
    cr_assert_eq(guard.held, 1);
}

Test(io_guard, answer_after_an_entry_of_the_leaders_term_passes,
     .init = leader_setup)
{
    lentries[4].term = 5; /* the leader stored entry 5 of term 5 */
    r.log.back = 5;
    r.last_stored = 5;
    answer(5, 0);
    cr_assert_eq(seen.append_entries_result.last_log_index, 5);
    cr_assert_eq(guard.held, 0);
}

Test(io_guard, answer_to_a_leader_with_all_committed_reaches_its_commit,
     .init = leader_setup)
{
    r.commit_index = 4; /* nothing left to commit by counting */
    answer(4, 0);
    cr_assert_eq(seen.append_entries_result.last_log_index, 4);
    /* Entry 4 was appended as a follower and its write completes only
     * after the election: held at the commit index, not at 4. */
    r.last_stored = 3;
    r.commit_index = 3;
    answer(4, 0);
    cr_assert_eq(seen.append_entries_result.last_log_index, 3);
    cr_assert_eq(guard.held, 1);
}

Test(io_guard, rejections_and_followers_are_left_alone, .init = leader_setup)
{
    answer(4, 4);
    cr_assert_eq(seen.append_entries_result.last_log_index, 4);
    r.state = RAFT_FOLLOWER;
    answer(4, 0);
    cr_assert_eq(seen.append_entries_result.last_log_index, 4);
    cr_assert_eq(guard.held, 0);
}

/* ---- pre-votes ---- */

/* What raft 0.15 answers a pre-vote from a candidate of an older term:
 * refused, with the request's own term (recvRequestVote). */
static void raft_reply_vote(struct raft_io *io, const struct raft_message *m)
{
    static struct raft_io_send req;
    struct raft_message reply = {.type = RAFT_IO_REQUEST_VOTE_RESULT,
                                 .server_id = m->server_id,
                                 .server_address = m->server_address};
    reply.request_vote_result.term = m->request_vote.term;
    reply.request_vote_result.vote_granted = false;
    reply.request_vote_result.pre_vote = m->request_vote.pre_vote
                                             ? raft_tribool_true
                                             : raft_tribool_false;
    cr_assert_eq(io->send(io, &req, &reply, NULL), 0);
}

static struct raft_server vservers[3];

/* A voter of term 7 without a leader (a candidate), in a configuration
 * of three voters, whose log holds entries 1..3 of terms 1, 2, 2. */
static void voter_setup(void)
{
    leader_setup();
    r.log.back = 3;
    r.last_stored = 3;
    r.state = RAFT_CANDIDATE;
    r.current_term = 7;
    r.id = 1;
    for (unsigned i = 0; i < 3; i++) {
        vservers[i] = (struct raft_server){.id = i + 1,
                                           .address = "127.0.0.1:9000",
                                           .role = RAFT_VOTER};
    }
    r.configuration.servers = vservers;
    r.configuration.n = 3;
    guard.noop_term = 7; /* no no-op on the mock, as above */
}

/* Deliver a pre-vote (or vote) of term 3 from server 2 whose log ends at
 * (last_index, last_term); the answer the guard sent on. */
static bool ask(bool pre_vote, raft_index last_index, raft_term last_term)
{
    struct raft_message m = {.type = RAFT_IO_REQUEST_VOTE,
                             .server_id = 2,
                             .server_address = "127.0.0.1:9002"};
    m.request_vote.term = 3;
    m.request_vote.candidate_id = 2;
    m.request_vote.last_log_index = last_index;
    m.request_vote.last_log_term = last_term;
    m.request_vote.pre_vote = pre_vote;
    sent_n = 0;
    guard_recv(&inner, &m);
    cr_assert_eq(sent_n, 1);
    cr_assert_eq(sent.type, RAFT_IO_REQUEST_VOTE_RESULT);
    cr_assert_eq(sent.request_vote_result.term, 3);
    return sent.request_vote_result.vote_granted;
}

Test(io_guard, prevote_of_an_older_term_with_a_better_log_is_granted,
     .init = voter_setup)
{
    cr_assert(ask(true, 9, 2));  /* same last term, longer */
    cr_assert(ask(true, 2, 3));  /* newer last term */
    cr_assert(ask(true, 3, 2));  /* the same log */
    cr_assert_eq(guard.prevotes, 3);
}

Test(io_guard, prevote_of_an_older_term_with_an_older_log_stays_refused,
     .init = voter_setup)
{
    cr_assert_not(ask(true, 2, 2));
    cr_assert_not(ask(true, 9, 1));
    cr_assert_eq(guard.prevotes, 0);
}

Test(io_guard, prevote_to_a_server_with_a_leader_stays_refused,
     .init = voter_setup)
{
    r.state = RAFT_FOLLOWER;
    r.follower_state.current_leader.id = 3;
    cr_assert_not(ask(true, 9, 2));
    r.state = RAFT_LEADER;
    cr_assert_not(ask(true, 9, 2));
    r.state = RAFT_FOLLOWER; /* a follower that lost its leader */
    r.follower_state.current_leader.id = 0;
    cr_assert(ask(true, 9, 2));
}

Test(io_guard, votes_and_current_prevotes_are_left_to_raft,
     .init = voter_setup)
{
    cr_assert_not(ask(false, 9, 2)); /* a real vote of an older term */
    r.current_term = 3;              /* a pre-vote of the voter's term */
    cr_assert_not(ask(true, 9, 2));  /* (raft itself would grant it) */
    r.current_term = 7;
    vservers[0].role = RAFT_STANDBY; /* not a voter */
    cr_assert_not(ask(true, 9, 2));
    cr_assert_eq(guard.prevotes, 0);
}

/* ---- on real rafts: three servers behind guards ----
 *
 * raft/fixture.h servers in virtual time with a state machine that keeps
 * nothing, each raft talking to the fixture's io through a guard. */

#define RAFTS 3u

static struct raft_fixture rf;
static struct raft_fsm rfsm[RAFTS];
static struct cons_io_guard rguard[RAFTS];

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

static void rafts_setup(void)
{
    memset(rguard, 0, sizeof rguard);
    cr_assert_eq(raft_fixture_initialize(&rf), 0);
    for (unsigned i = 0; i < RAFTS; i++) {
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
    cr_assert_eq(raft_fixture_configuration(&rf, RAFTS, &conf), 0);
    cr_assert_eq(raft_fixture_bootstrap(&rf, &conf), 0);
    raft_configuration_close(&conf);
    cr_assert_eq(raft_fixture_start(&rf), 0);
}

static void rafts_teardown(void)
{
    raft_fixture_close(&rf);
}

/* Apply one 8-byte entry on server l and step until every server in
 * [0, RAFTS) that is connected applied it. */
static raft_index rafts_apply(unsigned l, unsigned skip)
{
    static struct raft_apply req;
    struct raft_buffer buf = {.base = raft_calloc(1, 8), .len = 8};
    cr_assert_not_null(buf.base);
    cr_assert_eq(raft_apply(raft_fixture_get(&rf, l), &req, &buf, 1, NULL),
                 0);
    for (unsigned i = 0; i < RAFTS; i++) {
        if (i != skip) {
            cr_assert(raft_fixture_step_until_applied(&rf, i, req.index,
                                                      5000),
                      "server %u did not apply %llu", i,
                      (unsigned long long)req.index);
        }
    }
    return req.index;
}

/* Cut the links between servers i and j, both ways; or join them. */
static void cut(unsigned i, unsigned j)
{
    raft_fixture_disconnect(&rf, i, j);
    raft_fixture_disconnect(&rf, j, i);
}

static void join(unsigned i, unsigned j)
{
    raft_fixture_reconnect(&rf, i, j);
    raft_fixture_reconnect(&rf, j, i);
}

/* Propose one 8-byte entry on server i, which must lead; no waiting. */
static raft_index propose(unsigned i)
{
    static struct raft_apply req;
    struct raft_buffer buf = {.base = raft_calloc(1, 8), .len = 8};
    cr_assert_not_null(buf.base);
    cr_assert_eq(raft_apply(raft_fixture_get(&rf, i), &req, &buf, 1, NULL),
                 0);
    return req.index;
}

/* Step until server a or server b leads, within 60 s of virtual time;
 * which one. */
static unsigned step_until_one_leads(unsigned a, unsigned b)
{
    raft_time until = raft_fixture_time(&rf) + 60000;
    while (raft_fixture_time(&rf) < until) {
        if (raft_state(raft_fixture_get(&rf, a)) == RAFT_LEADER) {
            return a;
        }
        if (raft_state(raft_fixture_get(&rf, b)) == RAFT_LEADER) {
            return b;
        }
        raft_fixture_step(&rf);
    }
    cr_assert_fail("neither server %u (term %llu) nor %u (term %llu) was "
                   "elected in 60 s", a,
                   (unsigned long long)raft_fixture_get(&rf, a)->current_term,
                   b,
                   (unsigned long long)raft_fixture_get(&rf, b)->current_term);
    return a;
}

/* A new leader resends its whole log to a follower that compacted.
 *
 * The follower F alone compacts its log (snapshot threshold 4, trailing
 * 2). Then a new leader C is elected while its link to F is down: its
 * first AppendEntries to F fails to send, and raft 0.15's progressToProbe
 * sets F's next_index to match_index + 1 = 1. Once the link is back, C
 * sends F its whole log after prev_log_index 0. Without the guard F
 * appends those entries after its own last one, finds none at index 1 and
 * crashes in logTruncate (tests/fault/test_sim.c, seed 5146). */
Test(io_guard, new_leader_resending_from_index_1_reaches_a_compacted_follower,
     .init = rafts_setup, .fini = rafts_teardown)
{
    cr_assert(raft_fixture_step_until_has_leader(&rf, 10000));
    unsigned l = raft_fixture_leader_index(&rf);
    unsigned f = (l + 1) % RAFTS;    /* compacts its log */
    unsigned c = (l + 2) % RAFTS;    /* the next leader */
    struct raft *fr = raft_fixture_get(&rf, f);
    raft_set_snapshot_threshold(fr, 4);
    raft_set_snapshot_trailing(fr, 2);
    for (unsigned k = 0; k < 10; k++) {
        rafts_apply(l, RAFTS);
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

    raft_index last = rafts_apply(c, RAFTS);
    cr_assert_eq(raft_state(fr), RAFT_FOLLOWER);
    cr_assert_geq(raft_last_applied(fr), last);
    cr_assert_gt(rguard[f].rebased, 0,
                 "no AppendEntries from index 1 reached the follower");
}

/* Step until server i leads, within 60 s of virtual time, and cut it
 * from server j at once: the no-op it appends as it wins (the guard's)
 * stays its own. */
static void win_then_cut(unsigned i, unsigned j)
{
    cr_assert_eq(step_until_one_leads(i, i), i);
    cut(i, j);
}

/* Up to the point where O, alone, holds entry 3 of term 2 and A, alone,
 * entry 3 of a later term, while B holds 1..2: O leads term 2 (its no-op
 * is entry 2, on all three), is cut off and stores entry 3; A is elected
 * by B and cut from B as it wins (its no-op, entry 3, stays its own).
 * Which of the two others is A: the one elected; b is set to the other. */
static unsigned figure8_setup(unsigned o, unsigned *b)
{
    struct raft *ro = raft_fixture_get(&rf, o);
    /* Without pre-vote: the servers cut off run real elections, and O,
     * back, wins on a newer term without the guard's pre-vote grants
     * (stale_term_with_the_better_log_... covers those). */
    for (unsigned i = 0; i < RAFTS; i++) {
        raft_set_pre_vote(raft_fixture_get(&rf, i), false);
    }
    raft_fixture_elect(&rf, o);
    for (unsigned i = 0; i < RAFTS; i++) {
        cr_assert(raft_fixture_step_until_applied(&rf, i, 2, 5000));
    }
    cut(o, (o + 1) % RAFTS);
    cut(o, (o + 2) % RAFTS);
    cr_assert_eq(propose(o), 3);
    raft_fixture_step_until_elapsed(&rf, 100); /* stored on O alone */
    cr_assert_eq(ro->last_stored, 3);
    unsigned a = step_until_one_leads((o + 1) % RAFTS, (o + 2) % RAFTS);
    *b = 3 - o - a;
    cut(a, *b);
    struct raft *rb = raft_fixture_get(&rf, *b);
    raft_fixture_step_until_elapsed(&rf, 100);
    cr_assert_eq(rb->last_stored, 2);
    cr_assert_gt(rb->current_term, 2);
    return a;
}

/* Raft's Figure 8 (#220): a leader commits no entry of an older term by
 * counting replicas.
 *
 * After figure8_setup, O comes back to B and is elected (its log is
 * longer at the same last term): it sends B entry 3 of term 2 and its
 * no-op, entry 4. O's disk is slow, so B's answer comes while O has
 * stored nothing of its own term. raft 0.15 then commits entry 3 by
 * counting O and B; had O died then and lost its no-op, A (last term 3)
 * could be elected by O's vote and overwrite entry 3 on O and B, which
 * both take as committed. Without the guard's no-op, as in raft 0.15,
 * that is what simulation seed 8708 did: B shut down on the conflict.
 * With the guard O commits nothing before its no-op is stored. */
Test(io_guard, leader_commits_no_older_term_entry_by_counting,
     .init = rafts_setup, .fini = rafts_teardown)
{
    const unsigned o = 2;
    unsigned b;
    unsigned a = figure8_setup(o, &b);
    struct raft *ro = raft_fixture_get(&rf, o);
    raft_fixture_set_disk_latency(&rf, o, 300);
    join(o, b);
    cr_assert_eq(step_until_one_leads(o, b), o);
    raft_time until = raft_fixture_time(&rf) + 10000;
    while (ro->commit_index < 4 && raft_fixture_time(&rf) < until) {
        raft_fixture_step(&rf);
        cr_assert(ro->commit_index < 3 || ro->last_stored >= 4,
                  "the leader of term %llu committed entry 3 of term 2 by "
                  "counting before it stored an entry of its own term",
                  (unsigned long long)ro->current_term);
    }
    cr_assert_geq(ro->commit_index, 4);
    cr_assert_gt(rguard[o].held, 0);

    /* A, back, takes O's log in place of its own entry 3. */
    join(a, o);
    join(a, b);
    rafts_apply(o, RAFTS);
    cr_assert_eq(raft_state(raft_fixture_get(&rf, a)), RAFT_FOLLOWER);
}

/* A leader elected after the last write commits the tail it inherited:
 * the guard's no-op is an entry of its term (raft 0.15 appends none, and
 * the answers held below an older-term tail would hold it for good).
 * After figure8_setup, O and B elect O, and no write follows. */
Test(io_guard, new_leader_commits_its_tail_without_a_write,
     .init = rafts_setup, .fini = rafts_teardown)
{
    const unsigned o = 2;
    unsigned b;
    figure8_setup(o, &b);
    struct raft *ro = raft_fixture_get(&rf, o);
    uint64_t noops = rguard[o].noops;
    join(o, b);
    cr_assert_eq(step_until_one_leads(o, b), o);
    cr_assert_eq(rguard[o].noops, noops + 1);
    cr_assert(raft_fixture_step_until_applied(&rf, b, 4, 5000),
              "B applied %llu of O's 4",
              (unsigned long long)raft_last_applied(raft_fixture_get(&rf, b)));
    cr_assert_geq(ro->commit_index, 4);
}

/* Pre-vote on raft 0.15: a server with the better log but an older term
 * and a server with a newer term but an older log refuse each other for
 * good, the first for its term, the second for its log.
 *
 * O leads term 2 (its no-op is entry 2, on all three), is cut off and
 * stores entry 3 that nobody else gets. The two others elect Z twice
 * (terms 3 and 4), each time cut from Y as it wins, so that Y gets no
 * entry of theirs. Then Z goes for good and O comes back to Y: O's log is
 * better than Y's (longer, same last term), Y's term (4) is newer than
 * O's pre-vote's (3). Without the guard neither is ever elected
 * (tests/fault/test_sim.c seeds 14922, 16661, 16768, 18222, 19501); with
 * it Y grants O's pre-vote, refuses the real vote at term 3 with its term
 * 4, which O adopts, and elects O at term 5. */
Test(io_guard, stale_term_with_the_better_log_is_elected_with_pre_vote,
     .init = rafts_setup, .fini = rafts_teardown)
{
    const unsigned o = 2;
    struct raft *ro = raft_fixture_get(&rf, o);
    raft_fixture_elect(&rf, o);
    for (unsigned i = 0; i < RAFTS; i++) {
        cr_assert(raft_fixture_step_until_applied(&rf, i, 2, 5000));
    }
    cut(o, 0);
    cut(o, 1);
    cr_assert_eq(propose(o), 3);
    raft_fixture_step_until_elapsed(&rf, 100); /* stored on O alone */
    cr_assert_eq(ro->last_stored, 3);

    unsigned z = step_until_one_leads(0, 1);
    unsigned y = 1 - z;
    cut(z, y);
    raft_fixture_step_until_elapsed(&rf, 5000); /* Z steps down */
    join(z, y);
    win_then_cut(z, y);
    struct raft *ry = raft_fixture_get(&rf, y);
    cr_assert_eq(ry->last_stored, 2);
    cr_assert_geq(ry->current_term, ro->current_term + 2,
                  "Y's term %llu is not two past O's %llu",
                  (unsigned long long)ry->current_term,
                  (unsigned long long)ro->current_term);

    /* Z goes for good; O comes back to Y. */
    cut(z, o);
    join(o, y);
    cr_assert_eq(step_until_one_leads(o, y), o);
    cr_assert_gt(rguard[y].prevotes, 0);
    raft_index last = propose(o);
    cr_assert(raft_fixture_step_until_applied(&rf, y, last, 5000),
              "Y did not apply %llu", (unsigned long long)last);
}
