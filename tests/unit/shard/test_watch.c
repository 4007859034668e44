/* Unit tests of the watch event ring (shard/watch.c, fed by apply.c):
 * which changes make which events (put, delete, expire, promote; none for
 * a refused or repeated write), their order by (revision, seq), filters by
 * key and prefix, answers cut only between revisions, trimming to the
 * ring's bounds (events and bytes) with the compaction point and the
 * COMPACTED answer, and the ring carried through snapshots (also from a
 * snapshot of format 1, which had no ring) and restarts; every field of
 * an event kept by its encoding, and events of format 1 still read. Each
 * test drives
 * a real LMDB store in a temporary folder through framed commands. A
 * transaction's writes make their events in its one revision; one that
 * fails leaves none. */
#include "shard/watch.h"
#include "tests/unit/shard/shard_test.h"

static struct tshard f;
static struct tshard g;

static void setup(void)
{
    t_open(&f, 2, 0, 0);
    t_open(&g, 2, 0, 0);
}

static void teardown(void)
{
    t_close(&f);
    t_close(&g);
}

TestSuite(shard_watch, .init = setup, .fini = teardown);

/* ---- reading the ring into copies ---- */

#define EVENTS_MAX 64

struct ev {
    uint64_t revision;
    uint16_t seq;
    uint8_t type;
    uint8_t tier;
    uint64_t version;
    uint64_t create_rev;
    int64_t updated_at;
    int64_t expires_at;
    char key[64];
    char value[64];
};

struct evs {
    struct ev e[EVENTS_MAX];
    size_t n;
};

static void collect(void *arg, const struct shard_event *e)
{
    struct evs *a = arg;
    cr_assert_lt(a->n, EVENTS_MAX);
    struct ev *c = &a->e[a->n++];
    c->revision = e->revision;
    c->seq = e->seq;
    c->type = e->type;
    c->tier = e->tier;
    c->version = e->version;
    c->create_rev = e->create_rev;
    c->updated_at = e->updated_at;
    c->expires_at = e->expires_at;
    snprintf(c->key, sizeof c->key, "%.*s", (int)e->key_len,
             (const char *)e->key);
    snprintf(c->value, sizeof c->value, "%.*s", (int)e->value_len,
             (const char *)e->value);
}

/* Scan t's ring after after_rev for key (or prefix) of ns T_NS. */
static mc_err scan_ns(struct tshard *t, const char *ns, const char *key,
                      bool prefix, uint64_t after_rev, uint32_t max_events,
                      struct evs *out, uint64_t *through, uint64_t *compact)
{
    memset(out, 0, sizeof *out);
    struct shard_watch_filter flt = {
        .ns = (const uint8_t *)ns,
        .ns_len = strlen(ns),
        .key = (const uint8_t *)key,
        .key_len = strlen(key),
        .prefix = prefix,
    };
    return shard_watch_scan(t->s, after_rev, &flt, max_events,
                            MC_WATCH_REPLY_BYTES_MAX, collect, out, through,
                            compact);
}

static void scan_all(struct tshard *t, uint64_t after_rev, struct evs *out)
{
    uint64_t through, compact;
    cr_assert_eq(scan_ns(t, T_NS, "", true, after_rev, EVENTS_MAX, out,
                         &through, &compact),
                 MC_OK);
    cr_assert_eq(through, shard_applied_index(t->s));
}

static void assert_event(const struct ev *e, uint8_t type, const char *key,
                         uint64_t version, const char *value)
{
    cr_assert_eq(e->type, type, "type %u, want %u (key %s)", e->type, type,
                 e->key);
    cr_assert_str_eq(e->key, key);
    cr_assert_eq(e->version, version, "%s version %llu, want %llu", key,
                 (unsigned long long)e->version,
                 (unsigned long long)version);
    cr_assert_str_eq(e->value, value);
}

/* ---- which changes make which events ---- */

Test(shard_watch, put_and_delete_make_events_at_their_revision)
{
    cr_assert_eq(t_put(&f, "a", "v1")->code, MC_OK);
    cr_assert_eq(t_put(&f, "a", "v2")->code, MC_OK);
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_DELETE, .key = "a",
                                            .stamp = T_STAMP + 5})
                     ->code,
                 MC_OK);
    struct evs a;
    scan_all(&f, 0, &a);
    cr_assert_eq(a.n, 3);
    assert_event(&a.e[0], MC_EVENT_PUT, "a", 1, "v1");
    assert_event(&a.e[1], MC_EVENT_PUT, "a", 2, "v2");
    assert_event(&a.e[2], MC_EVENT_DELETE, "a", 2, "");
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(a.e[i].revision, i + 1, "the raft index of the write");
        cr_assert_eq(a.e[i].seq, 0);
        cr_assert_eq(a.e[i].create_rev, 1);
        cr_assert_eq(a.e[i].tier, MC_TIER_LONG);
    }
    cr_assert_eq(a.e[2].updated_at, T_STAMP + 5, "the delete's stamp");
}

Test(shard_watch, refused_and_repeated_writes_make_no_event)
{
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = "a",
                                            .value = "v", .client_id = 7,
                                            .seq = 1})
                     ->code,
                 MC_OK);
    /* The same request again (a retry): answered, not applied. */
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = "a",
                                            .value = "v", .client_id = 7,
                                            .seq = 1})
                     ->code,
                 MC_OK);
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = "a",
                                            .value = "w", .has_expect = true,
                                            .expect = 5})
                     ->code,
                 MC_CONFLICT);
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_DELETE, .key = "none"})
                     ->code,
                 MC_NOT_FOUND);
    struct evs a;
    scan_all(&f, 0, &a);
    cr_assert_eq(a.n, 1);
    assert_event(&a.e[0], MC_EVENT_PUT, "a", 1, "v");
}

Test(shard_watch, expiry_makes_expire_events_in_one_revision)
{
    const uint32_t tiers[] = {MC_TIER_SHORT, MC_TIER_SHORT};
    const char *const keys[] = {"a", "b"};
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = keys[i],
                                                .value = keys[i],
                                                .ttl_ms = 1000})
                         ->code,
                     MC_OK);
    }
    cr_assert_eq(t_expire(&f, T_STAMP + 2000, tiers, keys, 2)->code, MC_OK);
    struct evs a;
    scan_all(&f, 2, &a);
    cr_assert_eq(a.n, 2);
    assert_event(&a.e[0], MC_EVENT_EXPIRE, "a", 1, "");
    assert_event(&a.e[1], MC_EVENT_EXPIRE, "b", 1, "");
    cr_assert_eq(a.e[0].revision, 3);
    cr_assert_eq(a.e[1].revision, 3);
    cr_assert_eq(a.e[0].seq, 0);
    cr_assert_eq(a.e[1].seq, 1);
    cr_assert_eq(a.e[0].tier, MC_TIER_SHORT);
}

Test(shard_watch, put_over_an_expired_record_reports_both)
{
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = "a",
                                            .value = "old", .ttl_ms = 1000})
                     ->code,
                 MC_OK);
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = "a",
                                            .value = "new",
                                            .stamp = T_STAMP + 5000})
                     ->code,
                 MC_OK);
    struct evs a;
    scan_all(&f, 1, &a);
    cr_assert_eq(a.n, 2);
    assert_event(&a.e[0], MC_EVENT_EXPIRE, "a", 1, "");
    assert_event(&a.e[1], MC_EVENT_PUT, "a", 1, "new");
    cr_assert_eq(a.e[1].revision, 2);
    cr_assert_eq(a.e[1].seq, 1);
}

Test(shard_watch, same_value_to_a_higher_tier_is_a_promote)
{
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = "a",
                                            .value = "v",
                                            .tier = MC_TIER_SHORT})
                     ->code,
                 MC_OK);
    const struct tcmd steps[] = {
        {.op = T_PUT, .key = "a", .value = "v", .tier = MC_TIER_MID},
        {.op = T_PUT, .key = "a", .value = "v", .tier = MC_TIER_MID},
        {.op = T_PUT, .key = "a", .value = "w", .tier = MC_TIER_LONG},
        {.op = T_PUT, .key = "a", .value = "w", .tier = MC_TIER_SHORT},
        {.op = T_PUT, .key = "a", .value = "w", .tier = MC_TIER_LONG},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        cr_assert_eq(t_apply(&f, &steps[i])->code, MC_OK, "step %zu", i);
    }
    struct evs a;
    scan_all(&f, 0, &a);
    cr_assert_eq(a.n, 6);
    assert_event(&a.e[0], MC_EVENT_PUT, "a", 1, "v");
    assert_event(&a.e[1], MC_EVENT_PROMOTE, "a", 2, "v");
    cr_assert_eq(a.e[1].tier, MC_TIER_MID);
    assert_event(&a.e[2], MC_EVENT_PUT, "a", 3, "v");   /* same tier */
    assert_event(&a.e[3], MC_EVENT_PUT, "a", 4, "w");   /* new value */
    assert_event(&a.e[4], MC_EVENT_PUT, "a", 5, "w");   /* a demotion */
    assert_event(&a.e[5], MC_EVENT_PROMOTE, "a", 6, "w");
}

/* A transaction of puts and deletes (no compares): its then list. */
static const struct shard_result *t_txn(struct tshard *t,
                                        const uint32_t *ops,
                                        const char *const *keys,
                                        const char *const *values, size_t n)
{
    Mcpb__TxnOp items[8];
    Mcpb__TxnOp *ptrs[8];
    cr_assert_leq(n, 8);
    for (size_t i = 0; i < n; i++) {
        mcpb__txn_op__init(&items[i]);
        items[i].op = ops[i];
        items[i].key = t_bytes(keys[i], 0);
        items[i].has_value = values[i] != NULL;
        items[i].value = t_bytes(values[i], 0);
        ptrs[i] = &items[i];
    }
    Mcpb__Command cmd = MCPB__COMMAND__INIT;
    cmd.op = MCPB__OP__OP_TXN;
    cmd.stamp_ms = T_STAMP;
    cmd.has_ns = true;
    cmd.ns = t_bytes(T_NS, 0);
    cmd.then_ops = ptrs;
    cmd.n_then_ops = n;
    void *frame;
    size_t len;
    cr_assert_eq(proto_frame_encode(&cmd.base, PROTO_COMMAND, malloc, &frame,
                                    &len),
                 MC_OK);
    const struct shard_result *res = t_apply_raw(t, frame, len);
    free(frame);
    return res;
}

Test(shard_watch, a_transaction_makes_its_events_and_a_failed_one_none)
{
    t_close(&f);
    t_open(&f, 2, 100, 0); /* values of at most 100 bytes */
    static char big[81];
    memset(big, 'b', 80);
    cr_assert_eq(t_put(&f, "a", "v1")->code, MC_OK);
    const uint32_t ops[] = {T_PUT, T_PUT, T_DELETE};
    const char *const keys[] = {"a", "b", "a"};
    const char *const values[] = {"v2", "x", NULL};
    cr_assert_eq(t_txn(&f, ops, keys, values, 3)->code, MC_OK);
    struct evs a;
    scan_all(&f, 1, &a);
    cr_assert_eq(a.n, 3, "one event per write of the transaction");
    assert_event(&a.e[0], MC_EVENT_PUT, "a", 2, "v2");
    assert_event(&a.e[1], MC_EVENT_PUT, "b", 1, "x");
    assert_event(&a.e[2], MC_EVENT_DELETE, "a", 2, "");
    for (uint16_t i = 0; i < 3; i++) {
        cr_assert_eq(a.e[i].revision, 2, "the transaction's one revision");
        cr_assert_eq(a.e[i].seq, i);
    }
    /* A transaction that fails (its second get reads past the limit)
     * after a put and a delete leaves no event, as it leaves no write. */
    cr_assert_eq(t_put(&f, "big1", big)->code, MC_OK);
    cr_assert_eq(t_put(&f, "big2", big)->code, MC_OK);
    struct shard_watch_ring before, after;
    cr_assert_eq(shard_watch_ring(f.s, &before), MC_OK);
    const uint32_t fail_ops[] = {T_PUT, T_DELETE, MCPB__OP__OP_GET,
                                 MCPB__OP__OP_GET};
    const char *const fail_keys[] = {"new", "b", "big1", "big2"};
    const char *const fail_values[] = {"n", NULL, NULL, NULL};
    cr_assert_eq(t_txn(&f, fail_ops, fail_keys, fail_values, 4)->code,
                 MC_TOO_LARGE);
    cr_assert_eq(shard_watch_ring(f.s, &after), MC_OK);
    cr_assert_eq(after.events, before.events);
    cr_assert_eq(after.bytes, before.bytes);
    scan_all(&f, 4, &a);
    cr_assert_eq(a.n, 0, "%s", a.n ? a.e[0].key : "");
    /* The next entry's events come as usual. */
    cr_assert_eq(t_put(&f, "c", "1")->code, MC_OK);
    scan_all(&f, 4, &a);
    cr_assert_eq(a.n, 1);
    cr_assert_eq(a.e[0].revision, 6);
    cr_assert_eq(a.e[0].seq, 0);
}

/* ---- reading ---- */

Test(shard_watch, filters_by_key_prefix_and_namespace)
{
    cr_assert_eq(t_put(&f, "swarm/a", "1")->code, MC_OK);
    cr_assert_eq(t_put(&f, "swarm/b", "2")->code, MC_OK);
    cr_assert_eq(t_put(&f, "swarmx", "3")->code, MC_OK);
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .ns = "other",
                                            .key = "swarm/a", .value = "4"})
                     ->code,
                 MC_OK);
    struct evs a;
    uint64_t through, compact;
    cr_assert_eq(scan_ns(&f, T_NS, "swarm/a", false, 0, EVENTS_MAX, &a,
                         &through, &compact),
                 MC_OK);
    cr_assert_eq(a.n, 1);
    assert_event(&a.e[0], MC_EVENT_PUT, "swarm/a", 1, "1");
    cr_assert_eq(through, 4, "no match up to the applied index");
    cr_assert_eq(compact, 0);
    cr_assert_eq(scan_ns(&f, T_NS, "swarm/", true, 0, EVENTS_MAX, &a,
                         &through, &compact),
                 MC_OK);
    cr_assert_eq(a.n, 2);
    cr_assert_eq(scan_ns(&f, T_NS, "swarm", true, 0, EVENTS_MAX, &a,
                         &through, &compact),
                 MC_OK);
    cr_assert_eq(a.n, 3);
    cr_assert_eq(scan_ns(&f, "other", "", true, 0, EVENTS_MAX, &a, &through,
                         &compact),
                 MC_OK);
    cr_assert_eq(a.n, 1);
    assert_event(&a.e[0], MC_EVENT_PUT, "swarm/a", 1, "4");
    /* After the last write: nothing, and through is where it was asked. */
    cr_assert_eq(scan_ns(&f, T_NS, "", true, 4, EVENTS_MAX, &a, &through,
                         &compact),
                 MC_OK);
    cr_assert_eq(a.n, 0);
    cr_assert_eq(through, 4);
    cr_assert_eq(scan_ns(&f, T_NS, "", true, 9, EVENTS_MAX, &a, &through,
                         &compact),
                 MC_OK);
    cr_assert_eq(through, 9, "a resume point is never moved back");
}

Test(shard_watch, answers_are_cut_between_revisions_only)
{
    cr_assert_eq(t_put(&f, "x", "1")->code, MC_OK);
    const char *const keys[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = keys[i],
                                                .value = "v",
                                                .tier = MC_TIER_SHORT,
                                                .ttl_ms = 10})
                         ->code,
                     MC_OK);
    }
    /* Revision 5 expires three keys at once. */
    const uint32_t short_tiers[] = {MC_TIER_SHORT, MC_TIER_SHORT,
                                    MC_TIER_SHORT};
    cr_assert_eq(t_expire(&f, T_STAMP + 100, short_tiers, keys, 3)->code,
                 MC_OK);
    cr_assert_eq(t_put(&f, "y", "2")->code, MC_OK); /* revision 6 */
    struct evs a;
    uint64_t through, compact;
    /* At most 2 events, after revision 4: all three of revision 5. */
    cr_assert_eq(scan_ns(&f, T_NS, "", true, 4, 2, &a, &through, &compact),
                 MC_OK);
    cr_assert_eq(a.n, 3);
    cr_assert_eq(through, 5);
    cr_assert_eq(scan_ns(&f, T_NS, "", true, through, 2, &a, &through,
                         &compact),
                 MC_OK);
    cr_assert_eq(a.n, 1);
    assert_event(&a.e[0], MC_EVENT_PUT, "y", 1, "2");
    cr_assert_eq(through, 6);
    /* One event at a time from the start: each answer a revision. */
    uint64_t at = 0;
    size_t answers = 0, events = 0;
    do {
        cr_assert_eq(scan_ns(&f, T_NS, "", true, at, 1, &a, &at, &compact),
                     MC_OK);
        events += a.n;
        answers++;
    } while (a.n > 0);
    cr_assert_eq(events, 1 + 3 + 3 + 1);
    cr_assert_eq(answers, 7, "six revisions, then an empty answer");
}

/* ---- bounds ---- */

Test(shard_watch, trims_to_its_bound_and_answers_compacted_below_it)
{
    t_close(&f);
    t_open(&f, 2, 0, 0);
    shard_close(f.s);
    f.cfg.watch_ring_events = 3;
    t_reopen(&f);
    for (int i = 1; i <= 5; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        cr_assert_eq(t_put(&f, "k", v)->code, MC_OK);
    }
    struct shard_watch_ring ring;
    cr_assert_eq(shard_watch_ring(f.s, &ring), MC_OK);
    cr_assert_eq(ring.events, 3);
    cr_assert_eq(ring.compact_rev, 2, "the revisions 1 and 2 went");
    struct evs a;
    uint64_t through, compact;
    cr_assert_eq(scan_ns(&f, T_NS, "k", false, 1, EVENTS_MAX, &a, &through,
                         &compact),
                 MC_COMPACTED);
    cr_assert_eq(a.n, 0);
    cr_assert_eq(compact, 2);
    cr_assert_eq(through, 5, "the current revision");
    cr_assert_eq(scan_ns(&f, T_NS, "k", false, 2, EVENTS_MAX, &a, &through,
                         &compact),
                 MC_OK);
    cr_assert_eq(a.n, 3);
    assert_event(&a.e[0], MC_EVENT_PUT, "k", 3, "v3");
    assert_event(&a.e[2], MC_EVENT_PUT, "k", 5, "v5");
    /* A bound of one keeps the newest event only. */
    shard_close(f.s);
    f.cfg.watch_ring_events = 1;
    t_reopen(&f);
    cr_assert_eq(t_put(&f, "k", "v6")->code, MC_OK);
    cr_assert_eq(shard_watch_ring(f.s, &ring), MC_OK);
    cr_assert_eq(ring.events, 1);
    cr_assert_eq(ring.compact_rev, 5);
    cr_assert_eq(scan_ns(&f, T_NS, "k", false, 5, EVENTS_MAX, &a, &through,
                         &compact),
                 MC_OK);
    cr_assert_eq(a.n, 1);
    assert_event(&a.e[0], MC_EVENT_PUT, "k", 6, "v6");
}

Test(shard_watch, bytes_bound_holds_for_large_values)
{
    size_t big = MC_VALUE_BYTES_MAX;
    char *value = malloc(big + 1);
    memset(value, 'b', big);
    value[big] = '\0';
    unsigned puts = (unsigned)(MC_WATCH_RING_BYTES_MAX / big) + 4;
    for (unsigned i = 0; i < puts; i++) {
        cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = "big",
                                                .value = value,
                                                .value_len = big})
                         ->code,
                     MC_OK);
        t_commit(&f);
    }
    free(value);
    struct shard_watch_ring ring;
    cr_assert_eq(shard_watch_ring(f.s, &ring), MC_OK);
    cr_assert_leq(ring.bytes, MC_WATCH_RING_BYTES_MAX);
    cr_assert_lt(ring.events, puts);
    cr_assert_gt(ring.events, puts - 8);
    cr_assert_eq(ring.compact_rev, puts - ring.events);
    /* The oldest kept is the one after the compaction point. */
    struct evs a;
    uint64_t through, compact;
    cr_assert_eq(scan_ns(&f, T_NS, "big", false, ring.compact_rev, 1, &a,
                         &through, &compact),
                 MC_OK);
    cr_assert_eq(a.n, 1);
    cr_assert_eq(a.e[0].revision, ring.compact_rev + 1);
}

/* ---- replicas, snapshots, restarts ---- */

static void fill(struct tshard *t)
{
    cr_assert_eq(t_put(t, "a", "1")->code, MC_OK);
    cr_assert_eq(t_apply(t, &(struct tcmd){.op = T_PUT, .key = "b",
                                           .value = "2", .ttl_ms = 100})
                     ->code,
                 MC_OK);
    cr_assert_eq(t_apply(t, &(struct tcmd){.op = T_DELETE, .key = "a"})->code,
                 MC_OK);
    const uint32_t tiers[] = {MC_TIER_SHORT};
    const char *const keys[] = {"b"};
    cr_assert_eq(t_expire(t, T_STAMP + 1000, tiers, keys, 1)->code, MC_OK);
    cr_assert_eq(t_put(t, "c", "3")->code, MC_OK);
}

static void assert_same_ring(struct tshard *x, struct tshard *y)
{
    struct shard_watch_ring rx, ry;
    cr_assert_eq(shard_watch_ring(x->s, &rx), MC_OK);
    cr_assert_eq(shard_watch_ring(y->s, &ry), MC_OK);
    cr_assert_eq(rx.events, ry.events);
    cr_assert_eq(rx.bytes, ry.bytes);
    cr_assert_eq(rx.compact_rev, ry.compact_rev);
    struct evs a, b;
    scan_all(x, rx.compact_rev, &a);
    scan_all(y, ry.compact_rev, &b);
    cr_assert_eq(a.n, rx.events);
    cr_assert_eq(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        cr_assert_eq(a.e[i].revision, b.e[i].revision);
        cr_assert_eq(a.e[i].seq, b.e[i].seq);
        cr_assert_eq(a.e[i].type, b.e[i].type);
        cr_assert_str_eq(a.e[i].key, b.e[i].key);
        cr_assert_str_eq(a.e[i].value, b.e[i].value);
    }
    cr_assert_eq(shard_state_hash(x->s), shard_state_hash(y->s));
}

Test(shard_watch, replicas_applying_the_same_entries_hold_the_same_ring)
{
    fill(&f);
    fill(&g);
    assert_same_ring(&f, &g);
    struct evs a;
    scan_all(&f, 0, &a);
    cr_assert_eq(a.n, 5);
    /* The hash sees the ring: a different event, a different hash. */
    uint64_t h = shard_state_hash(g.s);
    cr_assert_eq(t_put(&f, "d", "4")->code, MC_OK);
    cr_assert_eq(t_put(&g, "d", "5")->code, MC_OK);
    cr_assert_neq(shard_state_hash(g.s), h);
    cr_assert_neq(shard_state_hash(f.s), shard_state_hash(g.s));
}

Test(shard_watch, snapshot_round_trip_keeps_ring_and_compaction_point)
{
    shard_close(f.s);
    f.cfg.watch_ring_events = 4;
    t_reopen(&f);
    shard_close(g.s);
    g.cfg.watch_ring_events = 4;
    t_reopen(&g);
    fill(&f);
    fill(&f);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(shard_snapshot(f.s, malloc, (void **)&buf, &len), MC_OK);
    cr_assert_eq(shard_restore(g.s, buf, len), MC_OK);
    free(buf);
    assert_same_ring(&f, &g);
    struct shard_watch_ring ring;
    cr_assert_eq(shard_watch_ring(g.s, &ring), MC_OK);
    cr_assert_eq(ring.events, 4);
    cr_assert_gt(ring.compact_rev, 0);
    /* Both go on alike, trimming included. */
    g.index = f.index;
    fill(&f);
    fill(&g);
    assert_same_ring(&f, &g);
}

/* Offsets of a snapshot's sections (snapshot.c): a 24-byte header, then
 * per section u32 tag, u64 count, entries of u32 len, key, u32 len, value. */
static size_t section_at(const uint8_t *buf, size_t len, uint32_t tag,
                         size_t *section_len)
{
    size_t p = 24;
    while (p + 12 <= len - 8) {
        uint32_t t = bytes_get_u32le(buf + p);
        uint64_t count = bytes_get_u64le(buf + p + 4);
        size_t q = p + 12;
        for (uint64_t i = 0; i < count; i++) {
            q += 4 + bytes_get_u32le(buf + q);
            q += 4 + bytes_get_u32le(buf + q);
        }
        if (t == tag) {
            *section_len = q - p;
            return p;
        }
        p = q;
    }
    cr_assert_fail("no section %u", tag);
    return 0;
}

static void reseal(uint8_t *buf, size_t len)
{
    bytes_put_u64le(buf + len - 8, base_fnv64(BASE_FNV64_INIT, buf, len - 8));
}

/* The events section is the sixth (after short, mid, long, expiry,
 * dedupe); its tag is its store_db + 1. */
#define EVENTS_TAG 6u

Test(shard_watch, snapshot_of_format_1_restores_with_an_empty_ring)
{
    fill(&f);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(shard_snapshot(f.s, malloc, (void **)&buf, &len), MC_OK);
    size_t cut;
    size_t at = section_at(buf, len, EVENTS_TAG, &cut);
    memmove(buf + at, buf + at + cut, len - at - cut);
    len -= cut;
    bytes_put_u32le(buf + 8, 1);
    reseal(buf, len);
    cr_assert_eq(shard_restore(g.s, buf, len), MC_OK);
    free(buf);
    struct shard_record rec;
    cr_assert_eq(t_get(&g, T_STAMP, "c", &rec), MC_OK, "the state came");
    struct shard_watch_ring ring;
    cr_assert_eq(shard_watch_ring(g.s, &ring), MC_OK);
    cr_assert_eq(ring.events, 0);
    cr_assert_eq(ring.compact_rev, f.index, "nothing known before it");
    struct evs a;
    uint64_t through, compact;
    cr_assert_eq(scan_ns(&g, T_NS, "", true, 0, EVENTS_MAX, &a, &through,
                         &compact),
                 MC_COMPACTED);
    cr_assert_eq(scan_ns(&g, T_NS, "", true, f.index, EVENTS_MAX, &a,
                         &through, &compact),
                 MC_OK);
    g.index = f.index;
    cr_assert_eq(t_put(&g, "d", "4")->code, MC_OK);
    cr_assert_eq(scan_ns(&g, T_NS, "", true, f.index, EVENTS_MAX, &a,
                         &through, &compact),
                 MC_OK);
    cr_assert_eq(a.n, 1);
}

Test(shard_watch, snapshot_with_a_ring_that_does_not_add_up_is_refused)
{
    fill(&f);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(shard_snapshot(f.s, malloc, (void **)&buf, &len), MC_OK);
    size_t section_len;
    size_t at = section_at(buf, len, EVENTS_TAG, &section_len);
    /* The first entry is the control entry: key 10 zero bytes, value
     * compact_rev, count, bytes. */
    size_t value = at + 12 + 4 + 10 + 4;
    cr_assert_eq(bytes_get_u32le(buf + at + 12), 10);
    cr_assert_eq(bytes_get_u64le(buf + value + 8), 5, "five events");
    uint8_t *copy = malloc(len);
    const size_t offsets[] = {value + 8, value + 16, value};
    const uint64_t bad[] = {4, 1, f.index + 1};
    for (size_t i = 0; i < 3; i++) {
        memcpy(copy, buf, len);
        bytes_put_u64le(copy + offsets[i], bad[i]);
        reseal(copy, len);
        uint64_t before = shard_state_hash(g.s);
        cr_assert_eq(shard_restore(g.s, copy, len), MC_INVALID_ARGUMENT,
                     "edit %zu", i);
        cr_assert_eq(shard_state_hash(g.s), before);
    }
    free(copy);
    cr_assert_eq(shard_restore(g.s, buf, len), MC_OK);
    free(buf);
}

Test(shard_watch, restart_keeps_the_ring_and_replay_adds_nothing)
{
    fill(&f);
    t_commit(&f);
    struct evs before, after;
    scan_all(&f, 0, &before);
    shard_close(f.s);
    t_reopen(&f);
    f.index = 0;
    fill(&f); /* raft replays the log: every entry is skipped */
    scan_all(&f, 0, &after);
    cr_assert_eq(after.n, before.n);
    cr_assert_eq(shard_skipped_entries(f.s), 5);
}

/* ---- the event encoding ---- */

Test(shard_watch, events_keep_every_field)
{
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = "k",
                                            .value = "v1",
                                            .tier = MC_TIER_MID,
                                            .ttl_ms = 5000})
                     ->code,
                 MC_OK);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(t_put(&f, "other", "x")->code, MC_OK);
    }
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = "k",
                                            .value = "v2",
                                            .stamp = T_STAMP + 7})
                     ->code,
                 MC_OK);
    struct evs a;
    scan_all(&f, 0, &a);
    cr_assert_eq(a.n, 5);
    struct ev *e = &a.e[4];
    assert_event(e, MC_EVENT_PUT, "k", 2, "v2");
    cr_assert_eq(e->revision, 5);
    cr_assert_eq(e->create_rev, 1, "created four revisions before");
    cr_assert_eq(e->tier, MC_TIER_MID);
    cr_assert_eq(e->updated_at, T_STAMP + 7);
    cr_assert_eq(e->expires_at, T_STAMP + 7 + MC_TTL_MID_MS);
    cr_assert_eq(a.e[0].expires_at, T_STAMP + 5000);
    cr_assert_eq(a.e[1].expires_at, 0, "the long tier never expires");
}

/* A ring written by an earlier build holds events of format 1 (watch.h):
 * they are read, and travel in snapshots, as they are. */
Test(shard_watch, events_of_format_1_still_read)
{
    cr_assert_eq(t_put(&f, "new", "n")->code, MC_OK);
    t_commit(&f);
    /* Revision 9, seq 0: an event of format 1 after the ring's last. */
    uint8_t k[WATCH_KEY_BYTES] = {0};
    bytes_put_u64be(k, 9);
    uint8_t v[64];
    memset(v, 0, sizeof v);
    v[0] = WATCH_EVENT_FORMAT_FIXED;
    v[1] = MC_EVENT_PUT;
    v[2] = MC_TIER_SHORT;
    v[3] = 1;                        /* ns "t" */
    bytes_put_u16le(v + 4, 3);       /* key "old" */
    bytes_put_u64le(v + 8, 4);       /* version */
    bytes_put_u64le(v + 16, 2);      /* create_rev */
    bytes_put_u64le(v + 24, T_STAMP + 60000);
    bytes_put_u64le(v + 32, T_STAMP);
    memcpy(v + 40, "told", 4);       /* ns, key */
    memcpy(v + 44, "value", 5);
    size_t v_len = 49;
    /* ... and the control entry that counts it. */
    uint8_t control_key[WATCH_KEY_BYTES] = {0};
    cr_assert_eq(store_write_begin(f.s), MC_OK);
    MDB_val c;
    bool found;
    cr_assert_eq(store_get(f.s, f.s->txn, STORE_DB_EVENTS, control_key,
                           sizeof control_key, &c, &found),
                 MC_OK);
    cr_assert(found);
    uint8_t ctl[WATCH_CONTROL_BYTES];
    memcpy(ctl, c.mv_data, sizeof ctl);
    bytes_put_u64le(ctl + 8, bytes_get_u64le(ctl + 8) + 1);
    bytes_put_u64le(ctl + 16, bytes_get_u64le(ctl + 16) + sizeof k + v_len);
    cr_assert_eq(store_put(f.s, STORE_DB_EVENTS, k, sizeof k, v, v_len),
                 MC_OK);
    cr_assert_eq(store_put(f.s, STORE_DB_EVENTS, control_key,
                           sizeof control_key, ctl, sizeof ctl),
                 MC_OK);
    f.index = 9;
    cr_assert_eq(t_put(&f, "after", "a")->code, MC_OK); /* index 10 */
    struct evs a;
    scan_all(&f, 1, &a);
    cr_assert_eq(a.n, 2);
    assert_event(&a.e[0], MC_EVENT_PUT, "old", 4, "value");
    cr_assert_eq(a.e[0].revision, 9);
    cr_assert_eq(a.e[0].create_rev, 2);
    cr_assert_eq(a.e[0].expires_at, T_STAMP + 60000);
    assert_event(&a.e[1], MC_EVENT_PUT, "after", 1, "a");
    /* A snapshot carries both formats. */
    void *snap;
    size_t len;
    cr_assert_eq(shard_snapshot(f.s, malloc, &snap, &len), MC_OK);
    cr_assert_eq(shard_restore(g.s, snap, len), MC_OK);
    free(snap);
    cr_assert_eq(shard_state_hash(g.s), shard_state_hash(f.s));
    scan_all(&g, 1, &a);
    cr_assert_eq(a.n, 2);
    assert_event(&a.e[0], MC_EVENT_PUT, "old", 4, "value");
}
