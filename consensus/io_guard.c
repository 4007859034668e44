/* A raft_io wrapper that works around four raft 0.15 bugs.
 *
 * 1. Over-reporting followers. A follower answers
 * an AppendEntries it accepts without writing anything (a heartbeat, or
 * entries it already holds) with last_log_index = its whole stored log,
 * not the last index the message covered. When that follower holds an
 * uncommitted tail of an older term past the message's range, the leader
 * takes that tail as matched: it may count the follower towards the
 * commit of entries the follower does not have (a safety hole: an
 * acknowledged write could be lost if that leader dies), and, when the
 * tail is longer than the leader's log, the leader ignores every later
 * rejection from the follower as stale, so the follower never catches up
 * (found by tests/fault/test_sim.c: a follower stuck at applied 47 of 60
 * for good; test guard_keeps_a_follower_with_an_old_tail_catching_up). Later raft releases answer prev_log_index +
 * n_entries, capped by what is stored; this guard does the same.
 *
 * How: raft 0.15 answers such an AppendEntries synchronously, from inside
 * the recv callback. The guard notes the message's range while raft's
 * recv callback runs, and caps the last_log_index of a successful answer
 * sent in that window to prev_log_index + n_entries. An answer sent later
 * (after a disk write) follows a truncation to the leader's entries and
 * is left alone. Reporting less than is matched is always safe: the leader
 * learns the rest from later answers.
 *
 * 2. Rejections inside a follower's snapshot. A follower rejects an
 * AppendEntries whose prev_log_index its snapshot has compacted away ("no
 * entry at index", logTermOf answers 0 there), although every entry a
 * snapshot covers is committed and so matches any leader's. A leader
 * probing a follower from an old next_index (its answers were lost to a
 * partition while it took a snapshot) then steps back one index per
 * heartbeat until it passes below its own log and sends a snapshot: the
 * follower stayed behind for over 10 s after the partition healed
 * (tests/fault/test_fault.c through the proxy; test_io_guard.c). Entries
 * up to the follower's snapshot index are committed, so the guard drops
 * those the message carries and moves prev_log_index and prev_log_term to
 * the snapshot's before raft sees it, which raft then accepts.
 *
 * The same goes for prev_log_index 0, a leader sending its whole log (a
 * new leader whose first send to the follower failed: progressToProbe
 * sets next_index to match_index + 1 = 1). raft accepts index 0 without a
 * check, then in deleteConflictingEntries takes the first compacted index
 * (logTermOf answers 0) for one it lacks: it appends the leader's entries
 * 1.. after its own last entry, logAcquire finds none at index 1, and the
 * error path's logTruncate(1) removes more entries than the log holds and
 * reads NULL (replication.c, replicationAppend; log.c, removeSuffix and
 * refsDecr). That crashed the follower (tests/fault/test_sim.c seed
 * 5146; test_io_guard.c
 * new_leader_resending_from_index_1_reaches_a_compacted_follower).
 *
 * 3. Commits of older terms by counting (raft 0.15 #220). A leader checks
 * only its last stored index for a commit (replicationQuorum, called with
 * r->last_stored) and counts the replicas that match it whatever its term,
 * against Raft's rule (section 5.4.2, Figure 8) that a leader commits
 * only entries of its own term by counting. A leader elected with an
 * uncommitted tail of an older term, and no entry of its own yet stored,
 * so committed that tail on a follower's answer; a server holding other
 * entries at those indexes in a newer term could still be elected by the
 * follower's vote (its last term is older), overwrote the committed
 * entries and made that follower shut down ("conflicting terms ... for
 * entry 7 (commit index 7)"; tests/fault/test_sim.c seed 8708). raft
 * 0.17.1 refuses such commits (commit 524f735). While a leader's last
 * stored entry is of an older term, the guard caps what a follower's
 * success answer reports at last_stored - 1 (at commit_index once that
 * is reached), so the count can never reach it; once the leader stores
 * an entry of its own term, answers pass untouched and count as Raft
 * says. So that such an entry comes without waiting for a write, the
 * guard has a new leader append a no-op (a raft_barrier) once per term,
 * as raft 0.17.1 does (commit 29bb302); without it a leader elected after
 * the last write never committed the tail it inherited (seeds 77023 and
 * 92082: every server stuck below the leader's last index).
 *
 * 4. Pre-votes refused for a stale term. raft 0.15 means to grant a
 * pre-vote whatever the candidate's term, when the voter has no leader
 * and the candidate's log is at least as up-to-date (election.c,
 * electionVote, after Raft's dissertation 9.6), but recvRequestVote
 * rejects it first when the candidate's term is lower than the voter's
 * ("local term is higher"), and answers with the candidate's own term
 * (a pre-vote answer mirrors the request's term), which a candidate in
 * its pre-vote phase would not adopt anyway. So a server with the most
 * up-to-date log but a stale term (an old leader cut off with a tail
 * while the others moved on) and a server with a newer term but an older
 * log refuse each other for good: the one for its log, the other for
 * its term. With the third server down a shard has no leader again
 * (tests/fault/test_sim.c seeds 14922, 16661, 16768, 18222, 19501,
 * stuck for the 600 s of virtual time after healing). The guard grants
 * such a pre-vote as electionVote would: the candidate then starts a
 * real election at a term still below the voter's, the voter refuses it
 * with its own term, which a real candidate adopts, and its next
 * pre-vote, at a newer term, is granted as usual. Pre-votes change no
 * state: safety rests on the real vote, which raft still decides.
 *
 * Every other call passes straight to the inner raft_io. */
#include <string.h>

#include "consensus/consensus.h"

static struct cons_io_guard *guard_of(struct raft_io *io)
{
    return io->impl;
}

/* Copy the inner error text where raft reads it (raft_errmsg). */
static int pass_rv(struct cons_io_guard *g, int rv)
{
    if (rv != 0) {
        memcpy(g->io.errmsg, g->inner->errmsg, sizeof g->io.errmsg);
    }
    return rv;
}

static void noop_cb(struct raft_barrier *req, int status)
{
    struct cons_io_guard *g = req->data;
    /* A no-op that failed (leadership lost, shutdown) needs nothing more:
     * the next leader appends its own. Never call raft from here: raft
     * 0.15 fails barriers while it steps down (node/replica.c). */
    (void)status;
    g->noop_busy = false;
}

/* Bug 3, liveness: a leader that has just won appends a no-op entry of
 * its term, so that it can commit what its log holds without waiting for
 * a write (raft 0.17.1 does this in convertToLeader, commit 29bb302).
 * Called after raft's tick and recv callbacks return, where an election
 * is won, once per term. */
static void noop_maybe(struct cons_io_guard *g)
{
    struct raft *r = g->io.data;
    if (r == NULL || r->state != RAFT_LEADER ||
        g->noop_term == r->current_term || g->noop_busy) {
        return;
    }
    g->noop_term = r->current_term;
    unsigned voters = 0;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        voters += r->configuration.servers[i].role == RAFT_VOTER;
    }
    if (voters < 2) {
        return; /* a lone voter commits all it stores as it wins */
    }
    g->noop.data = g;
    if (raft_barrier(r, &g->noop, noop_cb) == 0) {
        g->noop_busy = true;
        g->noops++;
    }
}

static void tick_cb(struct raft_io *inner)
{
    struct cons_io_guard *g = inner->data;
    g->tick_cb(&g->io);
    noop_maybe(g);
}

/* Bug 2: an AppendEntries that reaches into the compacted part of r's log,
 * below its snapshot's index, starts at the snapshot instead. The first
 * index raft looks up is prev_log_index, or 1 when that is 0 (raft skips
 * the check at 0 and compares the entries from index 1 on). */
static void append_rebase(struct cons_io_guard *g, const struct raft *r,
                          struct raft_append_entries *a)
{
    raft_index snap = r->log.snapshot.last_index;
    raft_index first = a->prev_log_index > 0 ? a->prev_log_index : 1;
    if (snap == 0 || a->prev_log_index >= snap || first > r->log.offset) {
        return; /* raft finds every term it needs itself */
    }
    raft_index covered = snap - a->prev_log_index;
    if (covered >= a->n_entries) {
        /* raft frees the batch only of a message with entries: every
         * entry shares the one batch (raft_uv and the fixture both). */
        if (a->n_entries > 0 && a->entries[0].batch != NULL) {
            raft_free(a->entries[0].batch);
        }
        a->n_entries = 0;
    } else {
        memmove(a->entries, a->entries + covered,
                (a->n_entries - covered) * sizeof *a->entries);
        a->n_entries -= (unsigned)covered;
    }
    a->prev_log_index = snap;
    a->prev_log_term = r->log.snapshot.last_term;
    g->rebased++;
}

/* Entries in r's in-memory log (raft's circular buffer). */
static size_t log_n_entries(const struct raft_log *l)
{
    return l->front <= l->back ? l->back - l->front
                               : l->size - l->front + l->back;
}

/* The term raft's logTermOf answers for index: the snapshot's at its
 * index, an entry's while the log holds it, else 0. */
static raft_term log_term_of(const struct raft_log *l, raft_index index)
{
    if (index == 0) {
        return 0;
    }
    if (index == l->snapshot.last_index) {
        return l->snapshot.last_term;
    }
    size_t n = log_n_entries(l);
    if (index <= l->offset || index > l->offset + n) {
        return 0;
    }
    size_t pos = (l->front + (size_t)(index - 1 - l->offset)) % l->size;
    return l->entries[pos].term;
}

/* Bug 3: a leader whose last stored entry is of an older term must not
 * learn that a majority matches it. */
static void result_hold(struct cons_io_guard *g, const struct raft *r,
                        struct raft_append_entries_result *res)
{
    if (r->state != RAFT_LEADER || res->rejected != 0 ||
        log_term_of(&r->log, r->last_stored) == r->current_term) {
        return;
    }
    raft_index cap = r->last_stored > r->commit_index ? r->last_stored - 1
                                                      : r->commit_index;
    if (res->last_log_index > cap) {
        res->last_log_index = cap;
        g->held++;
    }
}

/* Bug 4: whether raft would grant the pre-vote v but for its stale term:
 * the checks of recvRequestVote and electionVote bar the term's. */
static bool prevote_stale_but_eligible(const struct raft *r,
                                       const struct raft_request_vote *v)
{
    if (!v->pre_vote || v->term >= r->current_term) {
        return false; /* raft decides the rest itself */
    }
    bool has_leader =
        r->state == RAFT_LEADER ||
        (r->state == RAFT_FOLLOWER &&
         r->follower_state.current_leader.id != 0);
    if (has_leader && !v->disrupt_leader) {
        return false;
    }
    bool voter = false;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        const struct raft_server *srv = &r->configuration.servers[i];
        if (srv->id == r->id) {
            voter = srv->role == RAFT_VOTER;
        }
    }
    if (!voter) {
        return false;
    }
    raft_index last = r->log.offset + log_n_entries(&r->log);
    if (last == 0) {
        return true;
    }
    raft_term last_term = log_term_of(&r->log, last);
    if (v->last_log_term != last_term) {
        return v->last_log_term > last_term;
    }
    return v->last_log_index >= last;
}

static void recv_cb(struct raft_io *inner, struct raft_message *m)
{
    struct cons_io_guard *g = inner->data;
    if (m->type == RAFT_IO_REQUEST_VOTE && g->io.data != NULL &&
        prevote_stale_but_eligible(g->io.data, &m->request_vote)) {
        g->in_prevote = true;
        g->prevote_from = m->server_id;
    }
    bool append = m->type == RAFT_IO_APPEND_ENTRIES;
    if (append && g->io.data != NULL) {
        append_rebase(g, g->io.data, &m->append_entries);
    }
    if (m->type == RAFT_IO_APPEND_ENTRIES_RESULT && g->io.data != NULL) {
        result_hold(g, g->io.data, &m->append_entries_result);
    }
    if (append) {
        g->in_append = true;
        g->append_from = m->server_id;
        g->append_end = m->append_entries.prev_log_index +
                        m->append_entries.n_entries;
    }
    g->recv_cb(&g->io, m);
    if (append) {
        g->in_append = false;
    }
    g->in_prevote = false;
    noop_maybe(g);
}

static void close_cb(struct raft_io *inner)
{
    struct cons_io_guard *g = inner->data;
    if (g->close_cb != NULL) {
        g->close_cb(&g->io);
    }
}

static int g_init(struct raft_io *io, raft_id id, const char *address)
{
    struct cons_io_guard *g = guard_of(io);
    return pass_rv(g, g->inner->init(g->inner, id, address));
}

static void g_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct cons_io_guard *g = guard_of(io);
    g->close_cb = cb;
    g->inner->data = g;
    g->inner->close(g->inner, close_cb);
}

static int g_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                  struct raft_snapshot **snapshot, raft_index *start_index,
                  struct raft_entry *entries[], size_t *n_entries)
{
    struct cons_io_guard *g = guard_of(io);
    return pass_rv(g, g->inner->load(g->inner, term, voted_for, snapshot,
                                     start_index, entries, n_entries));
}

static int g_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                   raft_io_recv_cb recv)
{
    struct cons_io_guard *g = guard_of(io);
    g->tick_cb = tick;
    g->recv_cb = recv;
    g->inner->data = g;
    return pass_rv(g, g->inner->start(g->inner, msecs, tick_cb, recv_cb));
}

static int g_bootstrap(struct raft_io *io,
                       const struct raft_configuration *conf)
{
    struct cons_io_guard *g = guard_of(io);
    return pass_rv(g, g->inner->bootstrap(g->inner, conf));
}

static int g_recover(struct raft_io *io, const struct raft_configuration *conf)
{
    struct cons_io_guard *g = guard_of(io);
    return pass_rv(g, g->inner->recover(g->inner, conf));
}

static int g_set_term(struct raft_io *io, raft_term term)
{
    struct cons_io_guard *g = guard_of(io);
    return pass_rv(g, g->inner->set_term(g->inner, term));
}

static int g_set_vote(struct raft_io *io, raft_id server_id)
{
    struct cons_io_guard *g = guard_of(io);
    return pass_rv(g, g->inner->set_vote(g->inner, server_id));
}

static int g_send(struct raft_io *io, struct raft_io_send *req,
                  const struct raft_message *m, raft_io_send_cb cb)
{
    struct cons_io_guard *g = guard_of(io);
    if (g->in_append && m->type == RAFT_IO_APPEND_ENTRIES_RESULT &&
        m->server_id == g->append_from &&
        m->append_entries_result.rejected == 0 &&
        m->append_entries_result.last_log_index > g->append_end) {
        /* Both raft_uv and the fixture copy or encode the message before
         * send returns, so a corrected copy on the stack will do. */
        struct raft_message fixed = *m;
        fixed.append_entries_result.last_log_index = g->append_end;
        g->clamped++;
        return pass_rv(g, g->inner->send(g->inner, req, &fixed, cb));
    }
    if (g->in_prevote && m->type == RAFT_IO_REQUEST_VOTE_RESULT &&
        m->server_id == g->prevote_from &&
        !m->request_vote_result.vote_granted) {
        /* raft 0.15 answers a RequestVote synchronously, from inside the
         * recv callback: this is the refusal of bug 4. */
        struct raft_message fixed = *m;
        fixed.request_vote_result.vote_granted = true;
        g->prevotes++;
        return pass_rv(g, g->inner->send(g->inner, req, &fixed, cb));
    }
    return pass_rv(g, g->inner->send(g->inner, req, m, cb));
}

static int g_append(struct raft_io *io, struct raft_io_append *req,
                    const struct raft_entry entries[], unsigned n,
                    raft_io_append_cb cb)
{
    struct cons_io_guard *g = guard_of(io);
    return pass_rv(g, g->inner->append(g->inner, req, entries, n, cb));
}

static int g_truncate(struct raft_io *io, raft_index index)
{
    struct cons_io_guard *g = guard_of(io);
    return pass_rv(g, g->inner->truncate(g->inner, index));
}

static int g_snapshot_put(struct raft_io *io, unsigned trailing,
                          struct raft_io_snapshot_put *req,
                          const struct raft_snapshot *snapshot,
                          raft_io_snapshot_put_cb cb)
{
    struct cons_io_guard *g = guard_of(io);
    return pass_rv(g, g->inner->snapshot_put(g->inner, trailing, req,
                                             snapshot, cb));
}

static int g_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                          raft_io_snapshot_get_cb cb)
{
    struct cons_io_guard *g = guard_of(io);
    return pass_rv(g, g->inner->snapshot_get(g->inner, req, cb));
}

static raft_time g_time(struct raft_io *io)
{
    struct cons_io_guard *g = guard_of(io);
    return g->inner->time(g->inner);
}

static int g_random(struct raft_io *io, int min, int max)
{
    struct cons_io_guard *g = guard_of(io);
    return g->inner->random(g->inner, min, max);
}

static int g_async_work(struct raft_io *io, struct raft_io_async_work *req,
                        raft_io_async_work_cb cb)
{
    struct cons_io_guard *g = guard_of(io);
    return pass_rv(g, g->inner->async_work(g->inner, req, cb));
}

void cons_io_guard_init(struct cons_io_guard *g, struct raft_io *inner)
{
    ASSERT(g != NULL);
    ASSERT(inner != NULL);
    memset(g, 0, sizeof *g);
    g->inner = inner;
    g->io.version = inner->version;
    g->io.impl = g;
    g->io.init = g_init;
    g->io.close = g_close;
    g->io.load = g_load;
    g->io.start = g_start;
    g->io.bootstrap = g_bootstrap;
    g->io.recover = g_recover;
    g->io.set_term = g_set_term;
    g->io.set_vote = g_set_vote;
    g->io.send = g_send;
    g->io.append = g_append;
    g->io.truncate = g_truncate;
    g->io.snapshot_put = g_snapshot_put;
    g->io.snapshot_get = g_snapshot_get;
    g->io.time = g_time;
    g->io.random = g_random;
    g->io.async_work = inner->version >= 2 ? g_async_work : NULL;
}
