/* Watches and waits of a node: long polls answered from a shard's event
 * ring by the shard's leader (node.h says when). Everything here runs on
 * the loop thread of the replica.
 *
 *   request -> barrier -> watch_start --(answer now)--> reply
 *                              | (nothing yet)
 *                              v
 *                           PARKED --[watch_turn: a write applied]--> reply
 *                              |----[watch timer: deadline]---------> reply
 *                              |----[watch_fail_all, eviction]------> reply
 *
 * Why the leader after a barrier: the barrier makes the leader's state
 * hold every acknowledged write (never lease reads, raft 0.15 #220), so
 * "from now" means after every write acknowledged before the watch, and a
 * wait sees the latest state. Afterwards the leader applies only committed
 * entries, so every event it reports is final; a watcher that resumes at
 * another leader from the revision it was given misses nothing and sees
 * nothing twice, because every replica holds the same ring.
 *
 * Invariants:
 *   (1) A parked work is on exactly one replica's list and counted in its
 *       loop's n_parked; it is taken off before it is answered, because an
 *       answered work goes back to nng and may be parked again by another
 *       loop at once.
 *   (2) park_scanned only grows: no event of a parked request's key or
 *       prefix has a revision in (its start, park_scanned].
 *   (3) Answers are built and sent before the next shard call: their
 *       events borrow LMDB memory. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "node/node.h"

/* Keys quoted in messages are cut at this many bytes. */
#define WATCH_KEY_SHOWN_MAX 200

/* ---- the parked lists ---- */

static void park_link(struct node_replica *r, struct node_work *w)
{
    w->park_next = NULL;
    w->park_prev = r->parked_tail;
    if (r->parked_tail != NULL) {
        r->parked_tail->park_next = w;
    } else {
        r->parked_head = w;
    }
    r->parked_tail = w;
    r->loop->n_parked++;
}

static void park_unlink(struct node_replica *r, struct node_work *w)
{
    if (w->park_prev != NULL) {
        w->park_prev->park_next = w->park_next;
    } else {
        r->parked_head = w->park_next;
    }
    if (w->park_next != NULL) {
        w->park_next->park_prev = w->park_prev;
    } else {
        r->parked_tail = w->park_prev;
    }
    w->park_prev = w->park_next = NULL;
    ASSERT(r->loop->n_parked > 0);
    r->loop->n_parked--;
}

/* Take every parked work of r off its list: the caller answers or parks
 * each again. Returns the chain, linked by park_next. */
static struct node_work *park_take_all(struct node_replica *r)
{
    struct node_work *list = r->parked_head;
    for (struct node_work *w = list; w != NULL; w = w->park_next) {
        ASSERT(r->loop->n_parked > 0);
        r->loop->n_parked--;
    }
    r->parked_head = r->parked_tail = NULL;
    return list;
}

static void timer_cb(uv_timer_t *t);

/* Run the loop's timer for the earliest deadline of its parked works. */
static void timer_arm(struct node_loop *l)
{
    int64_t due = 0;
    for (unsigned i = 0; i < l->n_replicas; i++) {
        for (struct node_work *w = l->replicas[i]->parked_head; w != NULL;
             w = w->park_next) {
            if (due == 0 || w->park_deadline_ms < due) {
                due = w->park_deadline_ms;
            }
        }
    }
    if (due == 0) {
        uv_timer_stop(&l->watch_timer);
        return;
    }
    int64_t in = due - base_mono_ms();
    uv_timer_start(&l->watch_timer, timer_cb, in > 0 ? (uint64_t)in : 0, 0);
}

/* ---- watch answers ---- */

struct pb_event {
    Mcpb__WatchEvent ev;
    Mcpb__Record rec;
};

/* The events of one answer: their protobuf messages borrow the events'
 * LMDB memory (invariant 3). */
struct event_acc {
    struct pb_event *items;
    size_t n;
    size_t cap;
    bool oom;
};

static void event_acc_cb(void *arg, const struct shard_event *e)
{
    struct event_acc *a = arg;
    if (a->oom) {
        return;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap == 0 ? 16 : 2 * a->cap;
        struct pb_event *grown = mc_realloc(a->items, cap * sizeof *grown);
        if (grown == NULL) {
            a->oom = true;
            return;
        }
        a->items = grown;
        a->cap = cap;
    }
    struct pb_event *p = &a->items[a->n++];
    mcpb__watch_event__init(&p->ev);
    p->ev.type = e->type;
    p->ev.revision = e->revision;
    p->ev.has_seq = true;
    p->ev.seq = e->seq;
    Mcpb__Record *pb = &p->rec;
    mcpb__record__init(pb);
    pb->has_key = pb->has_value = true;
    pb->key.data = (uint8_t *)e->key;
    pb->key.len = e->key_len;
    pb->value.data = (uint8_t *)e->value;
    pb->value.len = e->value_len;
    pb->has_version = pb->has_create_rev = pb->has_mod_rev = true;
    pb->version = e->version;
    pb->create_rev = e->create_rev;
    pb->mod_rev = e->revision;
    pb->has_tier = pb->has_expires_at = pb->has_updated_at = true;
    pb->tier = e->tier;
    pb->expires_at = e->expires_at;
    pb->updated_at = e->updated_at;
}

static void watch_filter(const Mcpb__Request *req,
                         struct shard_watch_filter *f)
{
    f->ns = req->ns.data;
    f->ns_len = req->ns.len;
    f->prefix = req->has_prefix;
    f->key = f->prefix ? req->prefix.data : req->key.data;
    f->key_len = f->prefix ? req->prefix.len : req->key.len;
}

static void reply_events(struct node_work *w, struct event_acc *a,
                         uint64_t through)
{
    Mcpb__WatchEvent **ptrs = NULL;
    if (a->n > 0) {
        ptrs = mc_malloc(a->n * sizeof *ptrs);
        if (ptrs == NULL) {
            frontend_reply_err(w, MC_UNAVAILABLE, "out of memory");
            return;
        }
    }
    for (size_t i = 0; i < a->n; i++) {
        a->items[i].ev.record = &a->items[i].rec;
        ptrs[i] = &a->items[i].ev;
    }
    Mcpb__Response resp = MCPB__RESPONSE__INIT;
    resp.code = MC_OK;
    resp.events = ptrs;
    resp.n_events = a->n;
    resp.has_revision = true;
    resp.revision = through;
    frontend_reply(w, &resp);
    mc_free(ptrs);
}

/* Scan the ring for watch w after park_scanned. Answers w and returns true
 * when there are events, at_deadline, or on an error; otherwise moves
 * park_scanned on (invariant 2) and returns false. w is off every list. */
static bool watch_try(struct node_replica *r, struct node_work *w,
                      bool at_deadline)
{
    struct shard_watch_filter f;
    watch_filter(w->req, &f);
    struct event_acc a = {0};
    uint64_t through, compact;
    mc_err rv = shard_watch_scan(r->store, w->park_scanned, &f,
                                 MC_WATCH_REPLY_EVENTS_MAX,
                                 MC_WATCH_REPLY_BYTES_MAX, event_acc_cb, &a,
                                 &through, &compact);
    bool answered = true;
    if (rv == MC_COMPACTED) {
        Mcpb__Response resp = MCPB__RESPONSE__INIT;
        char msg[256];
        snprintf(msg, sizeof msg, "shard %u keeps events after revision "
                 "%" PRIu64 " only, not after %" PRIu64 ": re-read, then "
                 "watch from revision %" PRIu64, r->id, compact,
                 w->park_scanned, through);
        resp.code = MC_COMPACTED;
        resp.message = msg;
        resp.has_revision = resp.has_compact_rev = true;
        resp.revision = through;
        resp.compact_rev = compact;
        frontend_reply(w, &resp);
    } else if (rv != MC_OK) {
        frontend_reply_err(w, rv, "shard %u: reading its events failed",
                           r->id);
    } else if (a.oom) {
        frontend_reply_err(w, MC_UNAVAILABLE, "out of memory");
    } else if (a.n > 0 || at_deadline) {
        reply_events(w, &a, through);
    } else {
        w->park_scanned = through;
        answered = false;
    }
    mc_free(a.items);
    return answered;
}

/* ---- wait answers ---- */

static bool cond_holds(const Mcpb__Request *req, const uint8_t *value,
                       size_t value_len, uint64_t version)
{
    switch (req->wait_for) {
    case MC_WAIT_EXISTS:
        return true;
    case MC_WAIT_EQUALS:
        return value_len == req->value.len &&
               (value_len == 0 || memcmp(value, req->value.data, value_len) == 0);
    case MC_WAIT_VERSION:
        return version >= req->min_version;
    default:
        return false; /* proto_request_check let no other through */
    }
}

static void reply_record(struct node_work *w, Mcpb__Record *rec)
{
    Mcpb__Response resp = MCPB__RESPONSE__INIT;
    resp.code = MC_OK;
    resp.record = rec;
    resp.has_version = resp.has_create_rev = resp.has_mod_rev = true;
    resp.version = rec->version;
    resp.create_rev = rec->create_rev;
    resp.mod_rev = rec->mod_rev;
    frontend_reply(w, &resp);
}

/* The condition of w did not hold up to revision through; version is the
 * key's version now (0: missing). The client goes on from through. */
static void reply_wait_timeout(struct node_work *w, uint64_t through,
                               uint64_t version)
{
    const Mcpb__Request *req = w->req;
    int shown = req->key.len > WATCH_KEY_SHOWN_MAX ? WATCH_KEY_SHOWN_MAX
                                                   : (int)req->key.len;
    const char *key = (const char *)req->key.data;
    char now[64] = "it does not exist";
    if (version > 0) {
        snprintf(now, sizeof now, "it is at version %" PRIu64, version);
    }
    char msg[WATCH_KEY_SHOWN_MAX + 160];
    switch (req->wait_for) {
    case MC_WAIT_EXISTS:
        snprintf(msg, sizeof msg, "%.*s did not exist within %u ms", shown,
                 key, req->wait_ms);
        break;
    case MC_WAIT_EQUALS:
        snprintf(msg, sizeof msg, "%.*s did not take the value waited for "
                 "within %u ms (%s)", shown, key, req->wait_ms, now);
        break;
    default:
        snprintf(msg, sizeof msg, "%.*s did not reach version %" PRIu64
                 " within %u ms (%s)", shown, key, req->min_version,
                 req->wait_ms, now);
    }
    Mcpb__Response resp = MCPB__RESPONSE__INIT;
    resp.code = MC_TIMEOUT;
    resp.message = msg;
    resp.has_version = resp.has_revision = true;
    resp.version = version;
    resp.revision = through;
    frontend_reply(w, &resp);
}

/* Check wait w against the state now, which holds every event up to
 * revision through. Answers it and returns true when the condition holds,
 * when at_deadline (TIMEOUT), or on an error. */
static bool wait_check_now(struct node_replica *r, struct node_work *w,
                           uint64_t through, bool at_deadline)
{
    const Mcpb__Request *req = w->req;
    struct shard_record rec;
    mc_err rv = shard_get(r->store, base_wall_ms(), req->ns.data, req->ns.len,
                          req->key.data, req->key.len, &rec);
    if (rv != MC_OK && rv != MC_NOT_FOUND) {
        frontend_reply_err(w, rv, "shard %u: read failed", r->id);
        return true;
    }
    bool exists = rv == MC_OK;
    if (exists && cond_holds(req, rec.value, rec.value_len, rec.version)) {
        Mcpb__Record pb = MCPB__RECORD__INIT;
        pb.has_key = pb.has_value = true;
        pb.key.data = (uint8_t *)rec.key;
        pb.key.len = rec.key_len;
        pb.value.data = (uint8_t *)rec.value;
        pb.value.len = rec.value_len;
        pb.has_version = pb.has_create_rev = pb.has_mod_rev = true;
        pb.version = rec.version;
        pb.create_rev = rec.create_rev;
        pb.mod_rev = rec.mod_rev;
        pb.has_tier = pb.has_expires_at = pb.has_updated_at = true;
        pb.tier = rec.tier;
        pb.expires_at = rec.expires_at;
        pb.updated_at = rec.updated_at;
        reply_record(w, &pb); /* before any other shard call: rec borrows */
        return true;
    }
    if (at_deadline) {
        reply_wait_timeout(w, through, exists ? rec.version : 0);
        return true;
    }
    return false;
}

/* The first event of a wait's key that makes its condition true. */
struct wait_acc {
    const Mcpb__Request *req;
    bool found;
    struct event_acc one; /* the event, as a watch answer would carry it */
};

static void wait_acc_cb(void *arg, const struct shard_event *e)
{
    struct wait_acc *a = arg;
    bool exists = e->type == MC_EVENT_PUT || e->type == MC_EVENT_PROMOTE;
    if (a->found || !exists ||
        !cond_holds(a->req, e->value, e->value_len, e->version)) {
        return;
    }
    event_acc_cb(&a->one, e);
    a->found = !a->one.oom;
}

/* Check wait w against the events after park_scanned, in order, so that a
 * value that held only for a moment is seen. Answers w and returns true
 * when one satisfies it, at_deadline (TIMEOUT unless the state now
 * satisfies it), or on an error; otherwise moves park_scanned on. */
static bool wait_try(struct node_replica *r, struct node_work *w,
                     bool at_deadline)
{
    struct shard_watch_filter f = {
        .ns = w->req->ns.data,
        .ns_len = w->req->ns.len,
        .key = w->req->key.data,
        .key_len = w->req->key.len,
        .prefix = false,
    };
    struct wait_acc a = {.req = w->req};
    uint64_t through, compact;
    mc_err rv = shard_watch_scan(r->store, w->park_scanned, &f, UINT32_MAX,
                                 SIZE_MAX, wait_acc_cb, &a, &through,
                                 &compact);
    bool answered = true;
    if (rv == MC_OK && a.found) {
        reply_record(w, &a.one.items[0].rec);
    } else if (rv == MC_OK && !at_deadline) {
        w->park_scanned = through;
        answered = false;
    } else if (rv == MC_OK) {
        /* No event made it true: TIMEOUT (the state agrees). */
        answered = wait_check_now(r, w, through, true);
    } else if (rv == MC_COMPACTED) {
        /* The ring no longer holds what came since the last look (a burst
         * of writes, or an old revision from the client): the state now
         * is all there is to judge by. */
        answered = wait_check_now(r, w, through, at_deadline);
        w->park_scanned = answered ? w->park_scanned : through;
    } else {
        frontend_reply_err(w, rv, "shard %u: reading its events failed",
                           r->id);
    }
    mc_free(a.one.items);
    return answered;
}

/* ---- parking ---- */

static bool try_answer(struct node_replica *r, struct node_work *w,
                       bool at_deadline)
{
    return w->req->op == MCPB__OP__OP_WATCH ? watch_try(r, w, at_deadline)
                                            : wait_try(r, w, at_deadline);
}

/* Answer the parked work that waited longest, to make room. False when
 * nothing is parked. */
static bool evict_oldest(struct node_loop *l)
{
    struct node_replica *owner = NULL;
    struct node_work *oldest = NULL;
    for (unsigned i = 0; i < l->n_replicas; i++) {
        for (struct node_work *w = l->replicas[i]->parked_head; w != NULL;
             w = w->park_next) {
            if (oldest == NULL || w->park_since_ms < oldest->park_since_ms) {
                oldest = w;
                owner = l->replicas[i];
            }
        }
    }
    if (oldest == NULL) {
        return false;
    }
    park_unlink(owner, oldest);
    LOG_DEBUG("parked request answered early shard=%u parked=%u", owner->id,
              l->n_parked);
    /* UNAVAILABLE, not an empty answer: the client backs off before it
     * asks again, so a node over its room does not turn into a storm of
     * polls evicting each other. */
    frontend_reply_err(oldest, MC_UNAVAILABLE, "shard %u: too many watches "
                       "and waits parked on this node; try again", owner->id);
    return true;
}

static void park(struct node_replica *r, struct node_work *w)
{
    struct node_loop *l = r->loop;
    if (atomic_load(&l->node->fe.draining)) {
        frontend_reply_err(w, MC_UNAVAILABLE, "node is shutting down");
        return;
    }
    while (l->n_parked >= l->parked_max && evict_oldest(l)) {
    }
    int64_t now = base_mono_ms();
    w->park_since_ms = now;
    w->park_deadline_ms = now + (int64_t)w->req->wait_ms;
    park_link(r, w);
    timer_arm(l);
}

void watch_start(struct node_replica *r, struct node_work *w)
{
    const Mcpb__Request *req = w->req;
    ASSERT(req->op == MCPB__OP__OP_WATCH || req->op == MCPB__OP__OP_WAIT);
    if (!replica_is_serving_leader(r)) {
        frontend_reply_err(w, MC_UNAVAILABLE, "shard %u: leadership moved",
                           r->id);
        return;
    }
    bool at_once = req->wait_ms == 0;
    w->park_prev = w->park_next = NULL;
    uint64_t applied = shard_applied_index(r->store);
    if (req->op == MCPB__OP__OP_WATCH) {
        w->park_scanned = req->has_after_rev ? req->after_rev : applied;
        if (watch_try(r, w, at_once)) {
            return;
        }
    } else if (req->has_after_rev) {
        /* A wait that goes on from an earlier one: the events since. */
        w->park_scanned = req->after_rev;
        if (wait_try(r, w, at_once)) {
            return;
        }
    } else {
        if (wait_check_now(r, w, applied, at_once)) {
            return;
        }
        w->park_scanned = applied;
    }
    park(r, w);
}

void watch_turn(struct node_replica *r)
{
    if (r->parked_head == NULL) {
        return;
    }
    if (!replica_is_serving_leader(r)) {
        char why[64];
        snprintf(why, sizeof why, "shard %u: this node no longer leads it",
                 r->id);
        watch_fail_all(r, MC_UNAVAILABLE, why);
        return;
    }
    uint64_t applied = shard_applied_index(r->store);
    if (applied == r->watch_seen) {
        return;
    }
    r->watch_seen = applied;
    struct node_work *list = park_take_all(r);
    while (list != NULL) {
        struct node_work *w = list;
        list = w->park_next;
        w->park_prev = w->park_next = NULL;
        if (!try_answer(r, w, false)) {
            park_link(r, w);
        }
    }
}

void watch_fail_all(struct node_replica *r, mc_err code, const char *why)
{
    struct node_work *list = park_take_all(r);
    while (list != NULL) {
        struct node_work *w = list;
        list = w->park_next;
        w->park_prev = w->park_next = NULL;
        frontend_reply_err(w, code, "%s", why);
    }
}

static void timer_cb(uv_timer_t *t)
{
    struct node_loop *l = t->data;
    int64_t now = base_mono_ms();
    for (unsigned i = 0; i < l->n_replicas; i++) {
        struct node_replica *r = l->replicas[i];
        struct node_work *w = r->parked_head;
        while (w != NULL) {
            struct node_work *next = w->park_next;
            if (w->park_deadline_ms <= now) {
                park_unlink(r, w);
                try_answer(r, w, true);
            }
            w = next;
        }
    }
    timer_arm(l);
}

void watch_loop_init(struct node_loop *l)
{
    const struct node_config *cfg = &l->node->cfg;
    unsigned loops = l->node->n_loops > 0 ? l->node->n_loops : 1;
    /* Half of the node's contexts may be parked, shared by the loops. */
    l->parked_max = cfg->contexts / 2 / loops;
    if (l->parked_max == 0) {
        l->parked_max = 1;
    }
    uv_timer_init(&l->loop, &l->watch_timer);
    l->watch_timer.data = l;
}

void watch_loop_flush(struct node_loop *l)
{
    pthread_mutex_lock(&l->mu);
    l->watch_flush = true;
    if (l->running) {
        uv_async_send(&l->wake);
    }
    pthread_mutex_unlock(&l->mu);
}
