/* A shard replica hosted on this node: its store, its raft group, and the
 * serving of requests routed to it. Everything here runs on the replica's
 * loop thread.
 *
 * Writes and transactions become framed commands stamped with the leader's
 * wall clock and are answered from the apply callback. Linearizable reads wait for a raft
 * barrier issued after they arrived (never lease reads: raft 0.15 #220);
 * reads that arrive while a barrier is in flight share the next one, so a
 * burst of reads costs one barrier. Serializable reads read the store at
 * once. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "node/node.h"

/* Empty expire commands are proposed this often, so that idle dedupe
 * entries are dropped even when nothing expires. */
#define DEDUPE_SWEEP_MS (60u * 1000u)

/* The list default page when the client asks for none. */
#define LIST_LIMIT_DEFAULT 1000u

/* List replies stop adding records past this size (more = true). */
#define LIST_REPLY_BYTES_MAX (8u << 20)

static void replica_applied(void *arg, uint64_t index,
                            const struct shard_result *res);

mc_err replica_open(struct node_replica *r, struct node *n, uint32_t id,
                    struct node_loop *loop, char *err, size_t err_len)
{
    const struct node_config *cfg = &n->cfg;
    r->id = id;
    r->loop = loop;
    char dir[MC_PATH_BYTES_MAX], state[MC_PATH_BYTES_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s/shard-%u", cfg->data, id) >=
            sizeof dir ||
        (size_t)snprintf(state, sizeof state, "%s/state", dir) >=
            sizeof state) {
        base_errf(err, err_len, "data folder path is too long");
        return MC_INVALID_ARGUMENT;
    }
    if ((mkdir(dir, 0755) != 0 && errno != EEXIST) ||
        (mkdir(state, 0755) != 0 && errno != EEXIST)) {
        base_errf(err, err_len, "mkdir %s: %s", dir, strerror(errno));
        return MC_INTERNAL;
    }
    struct shard_config scfg = {.id = id,
                                .value_bytes_max = cfg->value_max,
                                .watch_ring_events = cfg->watch_ring};
    mc_err rv = shard_open(state, &scfg, &r->store, err, err_len);
    if (rv != MC_OK) {
        return rv;
    }
    /* The group's initial configuration: the shard's replicas in the
     * cluster map. */
    r->n_replica_ids = n->map.replicas;
    memcpy(r->replica_ids, n->map.replica_ids[id],
           r->n_replica_ids * sizeof r->replica_ids[0]);
    struct cons_member members[MC_REPLICAS_MAX];
    const char *self_addr = NULL;
    for (uint32_t k = 0; k < r->n_replica_ids; k++) {
        const struct meta_member *m = node_member(n, r->replica_ids[k]);
        members[k] = (struct cons_member){.id = m->id};
        meta_member_raft_addr(m, id, members[k].addr, sizeof members[k].addr);
        if (m->id == cfg->node_id) {
            self_addr = members[k].addr;
        }
    }
    ASSERT(self_addr != NULL); /* only hosted shards are opened */
    struct cons_group_config gcfg = {
        .node_id = cfg->node_id,
        .shard_id = id,
        .mux = loop->mux,
        .wal = loop->wal,
        .addr = self_addr,
        .members = members,
        .n_members = r->n_replica_ids,
        .election_ms = cfg->election_ms,
        .heartbeat_ms = cfg->heartbeat_ms,
        .snapshot_threshold = cfg->snapshot_threshold,
        .snapshot_trailing = cfg->snapshot_trailing,
    };
    rv = cons_group_init(&r->group, &loop->loop, &gcfg, r->store, err, err_len);
    if (rv != MC_OK) {
        goto err_after_shard;
    }
    r->group.shard_id = id;
    r->group.data = r;
    r->group.fsm.applied = replica_applied;
    r->group.fsm.applied_arg = r;
    r->group_ready = true;
    rv = cons_group_start(&r->group, &gcfg, err, err_len);
    if (rv != MC_OK) {
        return rv; /* the group is closed with the loop */
    }
    /* raft_start applies the entries LMDB lacks (after a kill -9) on this
     * thread. An LMDB write txn must end on the thread that began it: its
     * writer mutex belongs to that thread, so a commit from the loop
     * thread would leave it locked and hang the next write. */
    rv = shard_commit(r->store, err, err_len);
    if (rv != MC_OK) {
        return rv;
    }
    r->barrier.data = r;
    r->expire_req.data = r;
    return MC_OK;

err_after_shard:
    shard_close(r->store);
    r->store = NULL;
    return rv;
}

/* ---- work lists ---- */

static void fifo_push(struct work_fifo *f, struct node_work *w)
{
    w->next = NULL;
    if (f->tail != NULL) {
        f->tail->next = w;
    } else {
        f->head = w;
    }
    f->tail = w;
}

static struct node_work *fifo_pop(struct work_fifo *f)
{
    struct node_work *w = f->head;
    if (w != NULL) {
        f->head = w->next;
        if (f->head == NULL) {
            f->tail = NULL;
        }
        w->next = NULL;
    }
    return w;
}

/* Empty f; returns its chain, linked by next. */
static struct node_work *fifo_take(struct work_fifo *f)
{
    struct node_work *list = f->head;
    f->head = f->tail = NULL;
    return list;
}

static void reads_fail(struct node_work *list, mc_err code, const char *why)
{
    while (list != NULL) {
        struct node_work *next = list->next;
        frontend_reply_err(list, code, "%s", why);
        list = next;
    }
}

/* ---- writes ----
 *
 * A write that arrives is checked and queued (props); at the end of the
 * loop turn replica_turn proposes the turn's writes as consecutive entries
 * of one raft_apply: raft 0.15 starts a disk write and a message to every
 * follower per call, so one call per write cost as many of each as there
 * were writes. raft calls back only the first entry of such a call; every
 * entry is answered from the FSM's applied hook instead (replica_applied),
 * which finds its write at the head of the proposed ones (writes), in
 * index order. */

/* Entries of one raft_apply, and their bytes: a batch is one disk write
 * and one message per follower. */
#define PROPOSE_ENTRIES_MAX 256u
#define PROPOSE_BYTES_MAX (4u << 20)

/* One raft_apply of a turn's writes, until raft calls it back. */
struct propose_batch {
    struct raft_apply req;
    struct node_replica *r;
};

/* True when this node still leads in term: entries it appended in term
 * are its own, and any it applies as such a leader are committed. */
static bool leads_in(struct node_replica *r, uint64_t term)
{
    return cons_group_is_leader(&r->group) &&
           cons_group_term(&r->group) == term;
}

static void answer_write(struct node_work *w, const struct shard_result *res)
{
    Mcpb__Response resp = MCPB__RESPONSE__INIT;
    resp.code = res->code;
    resp.message = (char *)res->message;
    resp.has_version = resp.has_create_rev = resp.has_mod_rev = true;
    resp.version = res->version;
    resp.create_rev = res->create_rev;
    resp.mod_rev = res->mod_rev;
    resp.txn = (Mcpb__TxnResult *)res->txn; /* packing only reads it */
    frontend_reply(w, &resp);
}

/* Answer every proposed write TIMEOUT. raft took their entries: with
 * leadership lost, at shutdown or after a disk error they stay in other
 * logs, where they may still commit. The outcome is unknown, which the
 * client must hear as TIMEOUT, not as a failure (it retries with the same
 * request id, which the dedupe table answers). */
static void writes_fail(struct node_replica *r, const char *why)
{
    struct node_work *w = fifo_take(&r->writes);
    while (w != NULL) {
        struct node_work *next = w->next;
        frontend_reply_err(w, MC_TIMEOUT, "shard %u: outcome unknown (%s); "
                           "retry with the same request id", w->shard, why);
        w = next;
    }
}

static void batch_cb(struct raft_apply *req, int status, void *result)
{
    struct propose_batch *b = req->data;
    struct node_replica *r = b->r;
    mc_free(b);
    if (status != 0) {
        /* None of this batch applied here; later ones cannot either. */
        writes_fail(r, raft_strerror(status));
        reads_fail(fifo_take(&r->reads), MC_UNAVAILABLE,
                   raft_strerror(status));
    }
}

static void reads_serve(struct node_replica *r, uint64_t upto);

/* The FSM's hook: entry index applied with res. */
static void replica_applied(void *arg, uint64_t index,
                            const struct shard_result *res)
{
    struct node_replica *r = arg;
    struct node_work *w = r->writes.head;
    if (w != NULL && w->index <= index && !leads_in(r, w->term)) {
        writes_fail(r, "leadership lost");
    }
    /* Entries apply in order and a leader's own entries stay, so the head
     * is this entry; one below it went by unanswered, which must not
     * happen: its outcome is unknown to us. */
    while ((w = r->writes.head) != NULL && w->index < index) {
        LOG_ERROR("shard %u: entry %llu applied without its answer", r->id,
                  (unsigned long long)w->index);
        fifo_pop(&r->writes);
        frontend_reply_err(w, MC_TIMEOUT, "shard %u: outcome unknown; retry "
                           "with the same request id", r->id);
    }
    if (w != NULL && w->index == index) {
        fifo_pop(&r->writes);
        if (res->skipped) {
            frontend_reply_err(w, MC_TIMEOUT, "shard %u: entry %llu was "
                               "applied before; retry with the same request "
                               "id", r->id, (unsigned long long)index);
        } else {
            answer_write(w, res);
        }
    }
    /* After the write's answer: a read is a shard call, which ends res. */
    reads_serve(r, index);
}

/* raft 0.15 refuses proposals while a leadership transfer is pending, and
 * then names no leader (raft_leader gives 0) though its state is still
 * LEADER. */
bool replica_is_serving_leader(struct node_replica *r)
{
    return cons_group_is_leader(&r->group) &&
           cons_group_leader(&r->group) == r->loop->node->cfg.node_id;
}

/* Answer w for a replica that cannot serve it as leader: forward it to the
 * leader, or UNAVAILABLE during an election or a transfer. */
static void not_leading(struct node_replica *r, struct node_work *w)
{
    uint64_t leader = cons_group_leader(&r->group);
    if (leader != 0) {
        frontend_forward(w, leader);
    } else if (cons_group_is_leader(&r->group)) {
        frontend_reply_err(w, MC_UNAVAILABLE,
                           "shard %u: leadership transfer in progress", r->id);
    } else {
        frontend_reply_err(w, MC_UNAVAILABLE,
                           "shard %u has no leader yet (election)", r->id);
    }
}

static void not_leading_all(struct node_replica *r, struct node_work *list)
{
    while (list != NULL) {
        struct node_work *next = list->next;
        not_leading(r, list);
        list = next;
    }
}

/* True when this replica serves w as leader; else w is answered. */
static bool leads(struct node_replica *r, struct node_work *w)
{
    if (replica_is_serving_leader(r)) {
        return true;
    }
    not_leading(r, w);
    return false;
}

static void replica_write(struct node_replica *r, struct node_work *w)
{
    if (!leads(r, w)) {
        return;
    }
    if (shard_is_nearly_full(r->store)) {
        frontend_reply_err(w, MC_QUOTA_EXCEEDED, "shard %u storage is full",
                           r->id);
        return;
    }
    if (cons_wal_space_low(r->loop->wal)) {
        frontend_reply_err(w, MC_QUOTA_EXCEEDED, "shard %u: the disk has no "
                           "room for the raft log", r->id);
        return;
    }
    fifo_push(&r->props, w);
}

/* w's request as a framed command stamped stamp_ms, from raft_malloc. */
static mc_err write_frame(const struct node_work *w, int64_t stamp_ms,
                          struct raft_buffer *out)
{
    const Mcpb__Request *req = w->req;
    Mcpb__Command cmd = MCPB__COMMAND__INIT;
    cmd.op = req->op;
    cmd.stamp_ms = stamp_ms;
    cmd.has_client_id = req->has_client_id;
    cmd.client_id = req->client_id;
    cmd.has_seq = req->has_seq;
    cmd.seq = req->seq;
    cmd.has_ns = true;
    cmd.ns = req->ns;
    cmd.has_key = req->op != MCPB__OP__OP_TXN;
    cmd.key = req->key;
    /* A transaction's parts go into the command as they came. */
    cmd.compares = req->compares;
    cmd.n_compares = req->n_compares;
    cmd.then_ops = req->then_ops;
    cmd.n_then_ops = req->n_then_ops;
    cmd.else_ops = req->else_ops;
    cmd.n_else_ops = req->n_else_ops;
    cmd.has_value = req->has_value;
    cmd.value = req->value;
    cmd.has_expect_version = req->has_expect_version;
    cmd.expect_version = req->expect_version;
    cmd.has_tier = req->has_tier && req->tier != MC_TIER_DEFAULT;
    cmd.tier = req->tier;
    cmd.has_ttl_ms = req->has_ttl_ms;
    cmd.ttl_ms = req->ttl_ms;
    void *frame;
    size_t len;
    mc_err rv = proto_frame_encode(&cmd.base, PROTO_COMMAND, raft_malloc,
                                   &frame, &len);
    *out = (struct raft_buffer){.base = frame, .len = len};
    return rv;
}

/* Propose up to PROPOSE_ENTRIES_MAX of the queued writes in one raft_apply.
 * Returns false when nothing could be proposed (each write is answered). */
static bool propose_some(struct node_replica *r, int64_t stamp_ms)
{
    struct raft_buffer frames[PROPOSE_ENTRIES_MAX];
    struct node_work *ws[PROPOSE_ENTRIES_MAX];
    unsigned n = 0;
    size_t bytes = 0;
    struct node_work *w;
    while (n < PROPOSE_ENTRIES_MAX && bytes < PROPOSE_BYTES_MAX &&
           (w = fifo_pop(&r->props)) != NULL) {
        if (write_frame(w, stamp_ms, &frames[n]) != MC_OK) {
            frontend_reply_err(w, MC_INTERNAL, "out of memory");
            continue;
        }
        bytes += frames[n].len;
        ws[n++] = w;
    }
    if (n == 0) {
        return false;
    }
    struct propose_batch *b = mc_malloc(sizeof *b);
    mc_err rv = MC_INTERNAL;
    if (b != NULL) {
        b->req.data = b;
        b->r = r;
        rv = cons_group_propose_n(&r->group, &b->req, frames, n, batch_cb);
    }
    if (rv != MC_OK) {
        mc_free(b);
        for (unsigned i = 0; i < n; i++) {
            if (rv != MC_TIMEOUT) {
                raft_free(frames[i].base);
            }
            frontend_reply_err(ws[i], rv, "shard %u: could not propose the "
                               "write", r->id);
        }
        return false;
    }
    uint64_t term = cons_group_term(&r->group);
    for (unsigned i = 0; i < n; i++) {
        ws[i]->index = b->req.index + i;
        ws[i]->term = term;
        fifo_push(&r->writes, ws[i]);
    }
    return true;
}

/* Propose the writes of this turn. Reads waiting for an entry take the
 * last of them: it was appended after they arrived. */
static void props_flush(struct node_replica *r)
{
    if (r->props.head == NULL) {
        return;
    }
    if (!replica_is_serving_leader(r)) {
        not_leading_all(r, fifo_take(&r->props));
        return;
    }
    int64_t stamp_ms = base_wall_ms();
    bool proposed = false;
    while (r->props.head != NULL) {
        proposed = propose_some(r, stamp_ms) || proposed;
    }
    struct node_work *last = r->writes.tail;
    if (!proposed || last == NULL || !leads_in(r, last->term)) {
        return;
    }
    struct node_work *w;
    while ((w = fifo_pop(&r->reads_waiting)) != NULL) {
        w->index = last->index;
        w->term = last->term;
        fifo_push(&r->reads, w);
    }
}

/* ---- reads ---- */

static void record_to_pb(const struct shard_record *rec, Mcpb__Record *pb,
                         bool with_value)
{
    mcpb__record__init(pb);
    pb->has_key = true;
    pb->key.data = (uint8_t *)rec->key;
    pb->key.len = rec->key_len;
    if (with_value) {
        pb->has_value = true;
        pb->value.data = (uint8_t *)rec->value;
        pb->value.len = rec->value_len;
    }
    pb->has_version = pb->has_create_rev = pb->has_mod_rev = true;
    pb->version = rec->version;
    pb->create_rev = rec->create_rev;
    pb->mod_rev = rec->mod_rev;
    pb->has_tier = pb->has_expires_at = pb->has_updated_at = true;
    pb->tier = rec->tier;
    pb->expires_at = rec->expires_at;
    pb->updated_at = rec->updated_at;
}

static void read_get(struct node_replica *r, struct node_work *w)
{
    const Mcpb__Request *req = w->req;
    struct shard_record rec;
    mc_err rv = shard_get(r->store, base_wall_ms(), req->ns.data, req->ns.len,
                          req->key.data, req->key.len, &rec);
    if (rv == MC_NOT_FOUND) {
        Mcpb__Response resp = MCPB__RESPONSE__INIT;
        char msg[MC_KEY_BYTES_MAX + 32];
        snprintf(msg, sizeof msg, "%.*s does not exist", (int)req->key.len,
                 (const char *)req->key.data);
        resp.code = MC_NOT_FOUND;
        resp.message = msg;
        resp.has_version = true;
        resp.version = 0;
        frontend_reply(w, &resp);
        return;
    }
    if (rv != MC_OK) {
        frontend_reply_err(w, rv, "shard %u: read failed", r->id);
        return;
    }
    Mcpb__Record pb;
    record_to_pb(&rec, &pb, true);
    Mcpb__Response resp = MCPB__RESPONSE__INIT;
    resp.code = MC_OK;
    resp.record = &pb;
    resp.has_version = resp.has_create_rev = resp.has_mod_rev = true;
    resp.version = rec.version;
    resp.create_rev = rec.create_rev;
    resp.mod_rev = rec.mod_rev;
    frontend_reply(w, &resp); /* before any other shard call: rec borrows */
}

struct list_acc {
    Mcpb__Record *recs;
    Mcpb__Record **ptrs;
    size_t n;
    size_t bytes;
    bool keys_only;
    bool cut; /* stopped at LIST_REPLY_BYTES_MAX */
};

static void list_cb(void *arg, const struct shard_record *rec)
{
    struct list_acc *a = arg;
    if (a->cut) {
        return;
    }
    size_t size = rec->key_len + (a->keys_only ? 0 : rec->value_len) + 64;
    if (a->n > 0 && a->bytes + size > LIST_REPLY_BYTES_MAX) {
        a->cut = true;
        return;
    }
    a->bytes += size;
    record_to_pb(rec, &a->recs[a->n], !a->keys_only);
    a->ptrs[a->n] = &a->recs[a->n];
    a->n++;
}

static void read_list(struct node_replica *r, struct node_work *w)
{
    const Mcpb__Request *req = w->req;
    uint32_t limit = req->limit ? req->limit : LIST_LIMIT_DEFAULT;
    struct list_acc a = {.keys_only = req->keys_only};
    a.recs = mc_calloc(limit, sizeof *a.recs);
    a.ptrs = mc_calloc(limit, sizeof *a.ptrs);
    struct shard_list_end end;
    mc_err rv = MC_INTERNAL;
    if (a.recs != NULL && a.ptrs != NULL) {
        struct shard_list_query q = {
            .ns = req->ns.data,
            .ns_len = req->ns.len,
            .prefix = req->prefix.data,
            .prefix_len = req->prefix.len,
            .pattern = req->has_pattern ? req->pattern.data : NULL,
            .pattern_len = req->has_pattern ? req->pattern.len : 0,
            .start_after = req->start_after.data,
            .start_after_len = req->start_after.len,
            .limit = limit,
            .scan_max = r->loop->node->cfg.list_scan_max,
            .keys_only = req->keys_only,
        };
        rv = shard_list(r->store, base_wall_ms(), &q, list_cb, &a, &end);
    }
    if (rv != MC_OK) {
        frontend_reply_err(w, rv, "shard %u: list failed", r->id);
    } else {
        Mcpb__Response resp = MCPB__RESPONSE__INIT;
        resp.code = MC_OK;
        resp.records = a.ptrs;
        resp.n_records = a.n;
        resp.has_more = true;
        resp.more = end.more || a.cut;
        /* A reply cut at its size bound vouches only for its last record;
         * otherwise a pattern list that stopped at its scan budget vouches
         * for every key up to the one it stopped at. */
        if (!a.cut && end.scanned_to != NULL) {
            resp.has_scanned_to = true;
            resp.scanned_to.data = (uint8_t *)end.scanned_to;
            resp.scanned_to.len = end.scanned_to_len;
        }
        frontend_reply(w, &resp); /* before any other shard call: borrows */
    }
    mc_free(a.recs);
    mc_free(a.ptrs);
}

static void read_now(struct node_replica *r, struct node_work *w)
{
    switch (w->req->op) {
    case MCPB__OP__OP_GET:
        read_get(r, w);
        return;
    case MCPB__OP__OP_WATCH:
    case MCPB__OP__OP_WAIT:
        watch_start(r, w);
        return;
    default:
        read_list(r, w);
    }
}

/* Serve the reads whose entry is applied: index upto is. */
static void reads_serve(struct node_replica *r, uint64_t upto)
{
    struct node_work *w;
    while ((w = r->reads.head) != NULL && w->index <= upto) {
        if (!leads_in(r, w->term)) {
            reads_fail(fifo_take(&r->reads), MC_UNAVAILABLE,
                       "leadership lost");
            return;
        }
        fifo_pop(&r->reads);
        read_now(r, w);
    }
}

/* Never calls into raft: raft 0.15 fails pending barriers while stepping
 * down with its state still LEADER and its leader state already freed, so
 * a raft_barrier from here crashed the node. The next barrier for the reads
 * that wait is issued by replica_turn, later in the same loop iteration. */
static void barrier_cb(struct raft_barrier *req, int status)
{
    struct node_replica *r = req->data;
    r->barrier_busy = false;
    if (status != 0) {
        reads_fail(fifo_take(&r->reads), cons_err(status),
                   raft_strerror(status));
        return;
    }
    reads_serve(r, req->index);
}

/* Reads that no write of this turn covered wait for a barrier: an empty
 * entry, one at a time. */
static void reads_kick(struct node_replica *r)
{
    if (r->barrier_busy || r->reads_waiting.head == NULL) {
        return;
    }
    if (!replica_is_serving_leader(r)) {
        not_leading_all(r, fifo_take(&r->reads_waiting));
        return;
    }
    mc_err rv = cons_group_barrier(&r->group, &r->barrier, barrier_cb);
    if (rv != MC_OK) {
        reads_fail(fifo_take(&r->reads_waiting), rv,
                   "could not append a read barrier");
        return;
    }
    r->barrier_busy = true;
    uint64_t term = cons_group_term(&r->group);
    struct node_work *w;
    while ((w = fifo_pop(&r->reads_waiting)) != NULL) {
        w->index = r->barrier.index;
        w->term = term;
        fifo_push(&r->reads, w);
    }
}

static void replica_transfer(struct node_replica *r, struct node_work *w);

void replica_handle(struct node_replica *r, struct node_work *w)
{
    switch (w->req->op) {
    case MCPB__OP__OP_PUT:
    case MCPB__OP__OP_DELETE:
    case MCPB__OP__OP_TXN: /* reads included: one raft entry, linearizable */
        replica_write(r, w);
        return;
    case MCPB__OP__OP_TRANSFER:
        if (leads(r, w)) {
            replica_transfer(r, w);
        }
        return;
    case MCPB__OP__OP_HASH: {
        /* This replica's own state, whoever leads: how tests and operators
         * check that replicas agree. O(records) on the loop: admin only. */
        Mcpb__Response resp = MCPB__RESPONSE__INIT;
        resp.code = MC_OK;
        resp.has_state_hash = resp.has_applied_index = true;
        resp.applied_index = shard_applied_index(r->store);
        resp.state_hash = shard_state_hash(r->store);
        frontend_reply(w, &resp);
        return;
    }
    default:
        /* Watches and waits always pass a barrier: they start from the
         * leader's state, which holds every acknowledged write. */
        if (w->req->serializable && w->req->op != MCPB__OP__OP_WATCH &&
            w->req->op != MCPB__OP__OP_WAIT) {
            read_now(r, w);
            return;
        }
        if (!leads(r, w)) {
            return;
        }
        /* replica_turn gives it an entry at the end of this turn. */
        fifo_push(&r->reads_waiting, w);
    }
}

/* ---- turns and sweeps ---- */

static void publish_counts(struct node_replica *r)
{
    uint64_t counts[4];
    shard_counts(r->store, counts); /* O(1): LMDB keeps the totals */
    for (int t = 0; t < 4; t++) {
        atomic_store(&r->st_records[t], counts[t]);
    }
}

void replica_propose(struct node_replica *r)
{
    /* Answers wait for entries this node appended as leader in a term: a
     * leader that lost its term will not apply them as its own. */
    if (r->writes.head != NULL && !leads_in(r, r->writes.head->term)) {
        writes_fail(r, "leadership lost");
    }
    if (r->reads.head != NULL && !leads_in(r, r->reads.head->term)) {
        reads_fail(fifo_take(&r->reads), MC_UNAVAILABLE, "leadership lost");
    }
    props_flush(r);
    reads_kick(r);
}

void replica_turn(struct node_replica *r)
{
    char err[256];
    if (shard_commit(r->store, err, sizeof err) != MC_OK) {
        LOG_ERROR("commit failed shard=%u err=%s", r->id, err);
    }
    watch_turn(r); /* the writes of this turn are visible now */
    uint64_t entries = shard_applied_entries(r->store);
    if (entries != atomic_load(&r->st_applied_entries)) {
        publish_counts(r);
    }
    atomic_store(&r->st_is_leader, cons_group_is_leader(&r->group));
    atomic_store(&r->st_leader, cons_group_leader(&r->group));
    atomic_store(&r->st_term, cons_group_term(&r->group));
    atomic_store(&r->st_applied, cons_group_applied_index(&r->group));
    atomic_store(&r->st_last, cons_group_last_index(&r->group));
    atomic_store(&r->st_applied_entries, entries);
    atomic_store(&r->st_skipped_entries, shard_skipped_entries(r->store));
}

struct expire_acc {
    Mcpb__ExpireItem items[MC_EXPIRE_BATCH_MAX];
    Mcpb__ExpireItem *ptrs[MC_EXPIRE_BATCH_MAX];
    size_t n;
};

static void expired_cb(void *arg, uint8_t tier, const uint8_t *ns,
                       size_t ns_len, const uint8_t *key, size_t key_len)
{
    struct expire_acc *a = arg;
    ASSERT(a->n < MC_EXPIRE_BATCH_MAX);
    Mcpb__ExpireItem *it = &a->items[a->n];
    mcpb__expire_item__init(it);
    it->tier = tier;
    it->ns.data = (uint8_t *)ns;
    it->ns.len = ns_len;
    it->key.data = (uint8_t *)key;
    it->key.len = key_len;
    a->ptrs[a->n++] = it;
}

static void expire_cb(struct raft_apply *req, int status, void *result)
{
    struct node_replica *r = req->data;
    r->expire_busy = false;
    if (status != 0) {
        LOG_DEBUG("expire not applied shard=%u err=%s", r->id,
                  raft_strerror(status));
    }
}

static void transfer_cb(struct raft_transfer *req)
{
    struct node_replica *r = req->data;
    r->transfer_busy = false;
    uint64_t leader = cons_group_leader(&r->group);
    LOG_INFO("leader transfer shard=%u leader=%llu", r->id,
             (unsigned long long)leader);
    struct node_work *w = r->transfer_work;
    if (w == NULL) {
        return;
    }
    r->transfer_work = NULL;
    /* The callback fires on success and on timeout alike: look. */
    uint64_t self = r->loop->node->cfg.node_id;
    uint64_t to = w->req->to_node;
    if (leader != 0 && leader != self && (to == 0 || leader == to)) {
        Mcpb__Response resp = MCPB__RESPONSE__INIT;
        char msg[96];
        snprintf(msg, sizeof msg, "shard %u is now led by node %llu", r->id,
                 (unsigned long long)leader);
        resp.code = MC_OK;
        resp.message = msg;
        resp.has_leader_id = true;
        resp.leader_id = leader;
        frontend_reply(w, &resp);
    } else {
        frontend_reply_err(w, MC_UNAVAILABLE,
                           "shard %u: the transfer did not complete (leader "
                           "%llu); the target may be behind or down",
                           r->id, (unsigned long long)leader);
    }
}

/* memcoordctl shard transfer-leader: on the leader (leads() forwarded it
 * here). */
static void replica_transfer(struct node_replica *r, struct node_work *w)
{
    uint64_t to = w->req->to_node;
    uint64_t self = r->loop->node->cfg.node_id;
    bool member = to == 0;
    for (uint32_t k = 0; k < r->n_replica_ids; k++) {
        member = member || r->replica_ids[k] == to;
    }
    if (!member) {
        frontend_reply_err(w, MC_INVALID_ARGUMENT,
                           "node %llu holds no replica of shard %u",
                           (unsigned long long)to, r->id);
    } else if (to == self || (to == 0 && w->req->has_from_node &&
                              w->req->from_node != self)) {
        /* Done already: a retry of a transfer that completed. */
        Mcpb__Response resp = MCPB__RESPONSE__INIT;
        resp.code = MC_OK;
        resp.message = "already the leader";
        resp.has_leader_id = true;
        resp.leader_id = self;
        frontend_reply(w, &resp);
    } else if (r->transfer_busy) {
        frontend_reply_err(w, MC_UNAVAILABLE,
                           "shard %u: a transfer is in progress", r->id);
    } else if (to != 0 && !cons_group_peer_is_current(&r->group, to)) {
        /* raft refuses proposals while a transfer is pending: do not start
         * one that would stall the shard until it times out. */
        frontend_reply_err(w, MC_UNAVAILABLE, "shard %u: node %llu is behind "
                           "or unreachable", r->id, (unsigned long long)to);
    } else {
        r->transfer.data = r;
        mc_err rv = cons_group_transfer(&r->group, &r->transfer, to,
                                        transfer_cb);
        if (rv != MC_OK) {
            frontend_reply_err(w, rv, "shard %u: transfer refused", r->id);
            return;
        }
        r->transfer_busy = true;
        r->transfer_work = w;
    }
}

/* Leaders spread over nodes: the leader of a shard hands leadership to the
 * shard's preferred leader (replication/), at start-up and when that node
 * comes back. Tried at most every SPREAD_RETRY_MS: the target may be down
 * or behind. */
#define SPREAD_RETRY_MS 5000
static void spread_leadership(struct node_replica *r, int64_t now)
{
    uint64_t preferred = r->replica_ids[0];
    uint64_t self = r->loop->node->cfg.node_id;
    if (preferred == self || r->transfer_busy ||
        now - r->transfer_tried_ms < SPREAD_RETRY_MS ||
        !cons_group_peer_is_current(&r->group, preferred)) {
        return;
    }
    r->transfer_tried_ms = now;
    r->transfer.data = r;
    if (cons_group_transfer(&r->group, &r->transfer, preferred, transfer_cb) ==
        MC_OK) {
        r->transfer_busy = true;
    }
}

void replica_sweep(struct node_replica *r)
{
    publish_counts(r); /* also after a snapshot install, which applies no entry */
    if (!cons_group_is_leader(&r->group)) {
        return;
    }
    spread_leadership(r, base_mono_ms());
    if (r->expire_busy) {
        return;
    }
    int64_t now = base_wall_ms();
    struct expire_acc *a = mc_malloc(sizeof *a);
    if (a == NULL) {
        return; /* try again at the next sweep */
    }
    a->n = 0;
    mc_err rv = shard_expired_scan(r->store, now, MC_EXPIRE_BATCH_MAX,
                                   expired_cb, a);
    if (rv != MC_OK ||
        (a->n == 0 && now - r->dedupe_swept_ms < DEDUPE_SWEEP_MS)) {
        mc_free(a);
        return;
    }
    Mcpb__Command cmd = MCPB__COMMAND__INIT;
    cmd.op = MCPB__OP__OP_EXPIRE;
    cmd.stamp_ms = now;
    cmd.expire = a->ptrs;
    cmd.n_expire = a->n;
    void *frame;
    size_t len;
    rv = proto_frame_encode(&cmd.base, PROTO_COMMAND, raft_malloc, &frame, &len);
    mc_free(a);
    if (rv != MC_OK) {
        return;
    }
    r->dedupe_swept_ms = now;
    if (cons_group_propose(&r->group, &r->expire_req, frame, len, expire_cb) !=
        MC_OK) {
        raft_free(frame);
        return;
    }
    r->expire_busy = true;
}

void replica_close(struct node_replica *r, cons_group_close_cb cb)
{
    reads_fail(fifo_take(&r->props), MC_UNAVAILABLE, "node is shutting down");
    writes_fail(r, "node is shutting down");
    reads_fail(fifo_take(&r->reads_waiting), MC_UNAVAILABLE,
               "node is shutting down");
    reads_fail(fifo_take(&r->reads), MC_UNAVAILABLE, "node is shutting down");
    watch_fail_all(r, MC_UNAVAILABLE, "node is shutting down");
    if (r->transfer_work != NULL) {
        reads_fail(r->transfer_work, MC_UNAVAILABLE, "node is shutting down");
        r->transfer_work = NULL;
    }
    /* Batches, barriers and the expire command get their callbacks from
     * raft_close with a non-zero status. */
    cons_group_close(&r->group, cb);
}

void replica_free(struct node_replica *r)
{
    shard_close(r->store);
    mc_free(r);
}
