/* Unit tests of transactions in the state machine (shard/txn.c over
 * apply.c): which branch runs for each kind of compare, operations in
 * order seeing each other's writes, versions, tiers and TTLs exactly as
 * single writes give them, a failing operation leaving nothing behind
 * (not even the writes before it, nor anything else of the loop turn),
 * the operation limit re-checked at apply, and a retried transaction
 * answered from the dedupe table with its first answer, across a
 * snapshot too. Each test drives a real LMDB store through framed
 * commands, as raft would. */
#include "shard/store.h"
#include "tests/unit/shard/shard_test.h"

static struct tshard f;

static void setup(void)
{
    t_open(&f, 1, 0, 0);
}

static void teardown(void)
{
    t_close(&f);
}

TestSuite(shard_txn, .init = setup, .fini = teardown);

#define TX_MAX (MC_TXN_OPS_MAX + 1)

/* A transaction as a test builds it. */
struct tx {
    Mcpb__TxnCompare cmps[TX_MAX];
    Mcpb__TxnCompare *cmp_ptrs[TX_MAX];
    size_t n_cmps;
    Mcpb__TxnOp ops[2][TX_MAX]; /* then, else */
    Mcpb__TxnOp *op_ptrs[2][TX_MAX];
    size_t n_ops[2];
    uint64_t client_id, seq;
    int64_t stamp;
};

enum { THEN, ELSE };

static struct tx *tx_new(void)
{
    static struct tx t;
    memset(&t, 0, sizeof t);
    return &t;
}

static Mcpb__TxnCompare *tx_cmp(struct tx *t, uint32_t target,
                                const char *key)
{
    cr_assert_lt(t->n_cmps, TX_MAX);
    Mcpb__TxnCompare *c = &t->cmps[t->n_cmps];
    mcpb__txn_compare__init(c);
    c->target = target;
    c->key = t_bytes(key, 0);
    t->cmp_ptrs[t->n_cmps++] = c;
    return c;
}

static void tx_version(struct tx *t, const char *key, uint32_t cmp,
                       uint64_t version)
{
    Mcpb__TxnCompare *c = tx_cmp(t, MCPB__TXN_TARGET__TXN_TARGET_VERSION, key);
    c->has_cmp = true;
    c->cmp = cmp;
    c->has_version = true;
    c->version = version;
}

static void tx_value(struct tx *t, const char *key, uint32_t cmp,
                     const char *value)
{
    Mcpb__TxnCompare *c = tx_cmp(t, MCPB__TXN_TARGET__TXN_TARGET_VALUE, key);
    c->has_cmp = true;
    c->cmp = cmp;
    c->has_value = true;
    c->value = t_bytes(value, 0);
}

static Mcpb__TxnOp *tx_op(struct tx *t, int branch, uint32_t op,
                          const char *key, const char *value)
{
    cr_assert_lt(t->n_ops[branch], TX_MAX);
    Mcpb__TxnOp *o = &t->ops[branch][t->n_ops[branch]];
    mcpb__txn_op__init(o);
    o->op = op;
    o->key = t_bytes(key, 0);
    if (value != NULL) {
        o->has_value = true;
        o->value = t_bytes(value, strlen(value) > 0 ? 0 : 0);
        o->value.len = strlen(value);
    }
    t->op_ptrs[branch][t->n_ops[branch]++] = o;
    return o;
}

#define PUT(t, b, k, v) tx_op((t), (b), MCPB__OP__OP_PUT, (k), (v))
#define DEL(t, b, k) tx_op((t), (b), MCPB__OP__OP_DELETE, (k), NULL)
#define GET(t, b, k) tx_op((t), (b), MCPB__OP__OP_GET, (k), NULL)

static const struct shard_result *tx_apply(struct tx *t)
{
    Mcpb__Command cmd = MCPB__COMMAND__INIT;
    cmd.op = MCPB__OP__OP_TXN;
    cmd.stamp_ms = t->stamp ? t->stamp : T_STAMP;
    cmd.has_ns = true;
    cmd.ns = t_bytes(T_NS, 0);
    cmd.compares = t->cmp_ptrs;
    cmd.n_compares = t->n_cmps;
    cmd.then_ops = t->op_ptrs[THEN];
    cmd.n_then_ops = t->n_ops[THEN];
    cmd.else_ops = t->op_ptrs[ELSE];
    cmd.n_else_ops = t->n_ops[ELSE];
    cmd.has_client_id = cmd.has_seq = t->client_id != 0;
    cmd.client_id = t->client_id;
    cmd.seq = t->seq;
    void *frame;
    size_t len;
    cr_assert_eq(proto_frame_encode(&cmd.base, PROTO_COMMAND, malloc, &frame,
                                    &len),
                 MC_OK);
    const struct shard_result *res = t_apply_raw(&f, frame, len);
    free(frame);
    return res;
}

/* The transaction ran: code OK, the branch, n results. */
static const Mcpb__TxnResult *ran(const struct shard_result *r,
                                  bool succeeded, size_t n)
{
    cr_assert_eq(r->code, MC_OK, "%s: %s", mc_errname(r->code), r->message);
    cr_assert_not_null(r->txn);
    cr_assert_eq(r->txn->succeeded, succeeded, "the other branch ran");
    cr_assert_eq(r->txn->n_results, n);
    cr_assert_eq(r->txn->revision, f.index);
    cr_assert_eq(r->mod_rev, f.index);
    return r->txn;
}

static struct shard_record must_get(const char *key)
{
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, key, &rec), MC_OK, "%s is missing", key);
    return rec;
}

static void assert_value(const char *key, const char *value)
{
    struct shard_record rec = must_get(key);
    cr_assert_eq(rec.value_len, strlen(value), "%s", key);
    cr_assert_eq(memcmp(rec.value, value, rec.value_len), 0, "%s", key);
}

/* ---- branches and compares ---- */

Test(shard_txn, then_runs_when_every_compare_holds)
{
    cr_assert_eq(t_put(&f, "a", "v1")->code, MC_OK);
    struct tx *t = tx_new();
    tx_version(t, "a", MCPB__TXN_CMP__TXN_CMP_EQ, 1);
    tx_cmp(t, MCPB__TXN_TARGET__TXN_TARGET_MISSING, "b");
    PUT(t, THEN, "a", "v2");
    PUT(t, THEN, "b", "x");
    GET(t, THEN, "a");
    DEL(t, THEN, "nothing");
    PUT(t, ELSE, "a", "else");
    const Mcpb__TxnResult *r = ran(tx_apply(t), true, 4);
    cr_assert_eq(r->results[0]->code, MC_OK);
    cr_assert_eq(r->results[0]->version, 2);
    cr_assert_eq(r->results[0]->create_rev, 1);
    cr_assert_eq(r->results[0]->mod_rev, f.index);
    cr_assert_eq(r->results[1]->version, 1);
    cr_assert_eq(r->results[1]->create_rev, f.index);
    /* A get sees the writes before it in the same transaction. */
    cr_assert_eq(r->results[2]->code, MC_OK);
    cr_assert_not_null(r->results[2]->record);
    cr_assert_eq(r->results[2]->record->value.len, 2);
    cr_assert_eq(memcmp(r->results[2]->record->value.data, "v2", 2), 0);
    cr_assert_eq(r->results[2]->record->version, 2);
    cr_assert_eq(r->results[2]->record->key.len, 1);
    /* Deleting a missing key is a result, not a failure. */
    cr_assert_eq(r->results[3]->code, MC_NOT_FOUND);
    assert_value("a", "v2");
    assert_value("b", "x");
}

Test(shard_txn, else_runs_when_a_compare_fails)
{
    cr_assert_eq(t_put(&f, "a", "v1")->code, MC_OK);
    struct tx *t = tx_new();
    tx_cmp(t, MCPB__TXN_TARGET__TXN_TARGET_EXISTS, "a");
    tx_version(t, "a", MCPB__TXN_CMP__TXN_CMP_EQ, 5);
    PUT(t, THEN, "a", "then");
    GET(t, ELSE, "a");
    GET(t, ELSE, "missing");
    const Mcpb__TxnResult *r = ran(tx_apply(t), false, 2);
    cr_assert_eq(r->results[0]->code, MC_OK);
    cr_assert_eq(memcmp(r->results[0]->record->value.data, "v1", 2), 0);
    cr_assert_eq(r->results[1]->code, MC_NOT_FOUND);
    cr_assert_null(r->results[1]->record);
    assert_value("a", "v1");
}

struct cmp_case {
    uint32_t target;
    const char *key;
    uint32_t cmp;
    uint64_t version;
    const char *value;
    bool holds;
};

Test(shard_txn, every_compare_kind)
{
    cr_assert_eq(t_put(&f, "k", "v")->code, MC_OK);
    cr_assert_eq(t_put(&f, "k", "val")->code, MC_OK); /* version 2 */
    const uint32_t VER = MCPB__TXN_TARGET__TXN_TARGET_VERSION;
    const uint32_t VAL = MCPB__TXN_TARGET__TXN_TARGET_VALUE;
    const uint32_t EQ = MCPB__TXN_CMP__TXN_CMP_EQ;
    const uint32_t NE = MCPB__TXN_CMP__TXN_CMP_NE;
    const uint32_t LT = MCPB__TXN_CMP__TXN_CMP_LT;
    const uint32_t GT = MCPB__TXN_CMP__TXN_CMP_GT;
    const struct cmp_case cases[] = {
        {MCPB__TXN_TARGET__TXN_TARGET_EXISTS, "k", 0, 0, NULL, true},
        {MCPB__TXN_TARGET__TXN_TARGET_EXISTS, "none", 0, 0, NULL, false},
        {MCPB__TXN_TARGET__TXN_TARGET_MISSING, "k", 0, 0, NULL, false},
        {MCPB__TXN_TARGET__TXN_TARGET_MISSING, "none", 0, 0, NULL, true},
        {VER, "k", EQ, 2, NULL, true},
        {VER, "k", EQ, 1, NULL, false},
        {VER, "k", NE, 1, NULL, true},
        {VER, "k", NE, 2, NULL, false},
        {VER, "k", LT, 3, NULL, true},
        {VER, "k", LT, 2, NULL, false},
        {VER, "k", GT, 1, NULL, true},
        {VER, "k", GT, 2, NULL, false},
        {VER, "none", EQ, 0, NULL, true}, /* missing: version 0 */
        {VER, "none", LT, 1, NULL, true},
        {VER, "none", GT, 0, NULL, false},
        {VAL, "k", EQ, 0, "val", true},
        {VAL, "k", EQ, 0, "va", false},
        {VAL, "k", NE, 0, "v", true},
        {VAL, "k", NE, 0, "val", false},
        {VAL, "none", EQ, 0, "", false}, /* no value to compare */
        {VAL, "none", NE, 0, "x", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct cmp_case *c = &cases[i];
        struct tx *t = tx_new();
        if (c->target == VER) {
            tx_version(t, c->key, c->cmp, c->version);
        } else if (c->target == VAL) {
            tx_value(t, c->key, c->cmp, c->value);
        } else {
            tx_cmp(t, c->target, c->key);
        }
        GET(t, THEN, "k");
        const struct shard_result *r = tx_apply(t);
        cr_assert_eq(r->code, MC_OK, "case %zu: %s", i, r->message);
        cr_assert_eq(r->txn->succeeded, c->holds, "case %zu", i);
        cr_assert_eq(r->txn->n_results, c->holds ? 1 : 0, "case %zu", i);
    }
}

Test(shard_txn, an_expired_record_is_missing_by_the_stamp)
{
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = "k",
                                            .value = "v", .ttl_ms = 1000})
                     ->code,
                 MC_OK);
    struct tx *t = tx_new();
    tx_cmp(t, MCPB__TXN_TARGET__TXN_TARGET_EXISTS, "k");
    t->stamp = T_STAMP + 999;
    cr_assert(tx_apply(t)->txn->succeeded);
    t->stamp = T_STAMP + 1000;
    cr_assert_not(tx_apply(t)->txn->succeeded);
}

/* ---- writes as single writes make them ---- */

Test(shard_txn, versions_tiers_and_ttls_as_single_writes)
{
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_PUT, .key = "mid",
                                            .value = "v",
                                            .tier = MC_TIER_MID})
                     ->code,
                 MC_OK);
    cr_assert_eq(t_put(&f, "gone", "v")->code, MC_OK);
    struct tx *t = tx_new();
    PUT(t, THEN, "mid", "v2");                  /* keeps its tier */
    PUT(t, THEN, "ttl", "v")->has_ttl_ms = true; /* short, by the TTL */
    t->ops[THEN][1].ttl_ms = 5000;
    Mcpb__TxnOp *l = PUT(t, THEN, "long", "v");
    l->has_tier = true;
    l->tier = MC_TIER_LONG;
    DEL(t, THEN, "gone");
    PUT(t, THEN, "gone", "back"); /* version 1 again after a delete */
    PUT(t, THEN, "twice", "1");
    PUT(t, THEN, "twice", "2");
    const Mcpb__TxnResult *r = ran(tx_apply(t), true, 7);
    struct shard_record rec = must_get("mid");
    cr_assert_eq(rec.tier, MC_TIER_MID);
    cr_assert_eq(rec.version, 2);
    rec = must_get("ttl");
    cr_assert_eq(rec.tier, MC_TIER_SHORT);
    cr_assert_eq(rec.expires_at, T_STAMP + 5000);
    rec = must_get("long");
    cr_assert_eq(rec.tier, MC_TIER_LONG);
    cr_assert_eq(rec.expires_at, 0);
    cr_assert_eq(r->results[3]->code, MC_OK);
    cr_assert_eq(r->results[3]->version, 1, "the deleted version");
    cr_assert_eq(r->results[4]->version, 1);
    rec = must_get("gone");
    cr_assert_eq(rec.version, 1);
    cr_assert_eq(rec.create_rev, f.index);
    rec = must_get("twice");
    cr_assert_eq(rec.version, 2);
    cr_assert_eq(rec.mod_rev, f.index);
    cr_assert_eq(t_count(&f, MC_TIER_SHORT), 1);
    cr_assert_eq(t_count(&f, MC_TIER_MID), 1);
}

/* ---- all or nothing ---- */

Test(shard_txn, a_failing_operation_leaves_nothing)
{
    /* Values of 80 bytes under a limit of 100: a transaction that reads
     * two of them fails at its second get, after a put and a delete. */
    t_close(&f);
    t_open(&f, 1, 100, 0);
    static char big[81];
    memset(big, 'b', 80);
    cr_assert_eq(t_put(&f, "big1", big)->code, MC_OK);
    cr_assert_eq(t_put(&f, "big2", big)->code, MC_OK);
    cr_assert_eq(t_put(&f, "keep", "k")->code, MC_OK);
    t_commit(&f);
    cr_assert_eq(t_put(&f, "same_turn", "s")->code, MC_OK); /* uncommitted */
    uint64_t before = shard_state_hash(f.s);
    struct tx *t = tx_new();
    PUT(t, THEN, "new", "n");
    DEL(t, THEN, "keep");
    GET(t, THEN, "big1");
    GET(t, THEN, "big2");
    const struct shard_result *r = tx_apply(t);
    cr_assert_eq(r->code, MC_TOO_LARGE, "%s", mc_errname(r->code));
    cr_assert_null(r->txn);
    cr_assert(strstr(r->message, "then_ops[3]: the transaction reads more") !=
                  NULL,
              "%s", r->message);
    cr_assert_eq(shard_state_hash(f.s), before, "nothing of it stayed");
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, "new", &rec), MC_NOT_FOUND);
    assert_value("keep", "k");
    assert_value("same_turn", "s"); /* the turn's earlier entry is intact */
    cr_assert_eq(shard_applied_index(f.s), f.index, "the index advanced");
    t_commit(&f);
    shard_close(f.s); /* a restart: t_close would delete the store */
    t_reopen(&f);
    assert_value("same_turn", "s");
    cr_assert_eq(t_get(&f, T_STAMP, "new", &rec), MC_NOT_FOUND);
}

Test(shard_txn, too_many_operations_are_refused_at_apply)
{
    struct tx *t = tx_new();
    static char keys[TX_MAX][16];
    for (size_t i = 0; i < TX_MAX; i++) {
        snprintf(keys[i], sizeof keys[i], "k%zu", i);
        PUT(t, THEN, keys[i], "v");
    }
    uint64_t before = shard_state_hash(f.s);
    const struct shard_result *r = tx_apply(t);
    cr_assert_eq(r->code, MC_INVALID_ARGUMENT);
    cr_assert(strstr(r->message, "more than 128") != NULL, "%s", r->message);
    cr_assert_eq(shard_state_hash(f.s), before);
    t->n_ops[THEN] = MC_TXN_OPS_MAX;
    ran(tx_apply(t), true, MC_TXN_OPS_MAX);
    cr_assert_eq(t_count(&f, MC_TIER_LONG), MC_TXN_OPS_MAX);
}

Test(shard_txn, a_bad_key_is_refused_at_apply)
{
    struct tx *t = tx_new();
    PUT(t, THEN, "ok", "v");
    GET(t, THEN, "bad\xff");
    const struct shard_result *r = tx_apply(t);
    cr_assert_eq(r->code, MC_INVALID_ARGUMENT);
    cr_assert(strstr(r->message, "then_ops[1]") != NULL, "%s", r->message);
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, "ok", &rec), MC_NOT_FOUND);
}

/* ---- dedupe ---- */

Test(shard_txn, a_retried_txn_gets_its_first_answer)
{
    cr_assert_eq(t_put(&f, "n", "1")->code, MC_OK);
    struct tx *t = tx_new();
    t->client_id = 42;
    t->seq = 7;
    tx_version(t, "n", MCPB__TXN_CMP__TXN_CMP_EQ, 1);
    PUT(t, THEN, "n", "2");
    GET(t, THEN, "n");
    const Mcpb__TxnResult *r = ran(tx_apply(t), true, 2);
    uint64_t revision = r->revision;
    cr_assert_eq(r->results[0]->version, 2);
    /* Someone else writes; then the retry comes. */
    cr_assert_eq(t_put(&f, "n", "3")->code, MC_OK);
    uint64_t before = shard_state_hash(f.s);
    const struct shard_result *again = tx_apply(t);
    cr_assert_eq(again->code, MC_OK);
    cr_assert_not_null(again->txn);
    cr_assert(again->txn->succeeded, "the first answer, not a new compare");
    cr_assert_eq(again->txn->revision, revision);
    cr_assert_eq(again->mod_rev, revision);
    cr_assert_eq(again->txn->n_results, 2);
    cr_assert_eq(again->txn->results[0]->version, 2);
    cr_assert_eq(memcmp(again->txn->results[1]->record->value.data, "2", 1),
                 0);
    cr_assert_eq(shard_state_hash(f.s), before, "not applied twice");
    assert_value("n", "3");
    /* It survives a restart: the answer is in LMDB. */
    t_commit(&f);
    shard_close(f.s);
    t_reopen(&f);
    again = tx_apply(t);
    cr_assert_eq(again->txn->revision, revision);
    /* A later seq is a new transaction (its compare now fails). */
    t->seq = 8;
    ran(tx_apply(t), false, 0);
}

Test(shard_txn, a_retried_failure_gets_the_same_failure)
{
    t_close(&f);
    t_open(&f, 1, 10, 0);
    cr_assert_eq(t_put(&f, "a", "0123456789")->code, MC_OK);
    struct tx *t = tx_new();
    t->client_id = 5;
    t->seq = 1;
    GET(t, THEN, "a");
    GET(t, THEN, "a");
    const struct shard_result *r = tx_apply(t);
    cr_assert_eq(r->code, MC_TOO_LARGE);
    char first[sizeof r->message];
    snprintf(first, sizeof first, "%s", r->message);
    cr_assert_eq(t_put(&f, "a", "x")->code, MC_OK); /* would fit now */
    r = tx_apply(t);
    cr_assert_eq(r->code, MC_TOO_LARGE);
    cr_assert_str_eq(r->message, first);
}

Test(shard_txn, the_answer_travels_in_snapshots)
{
    cr_assert_eq(t_put(&f, "n", "1")->code, MC_OK);
    struct tx *t = tx_new();
    t->client_id = 9;
    t->seq = 1;
    GET(t, THEN, "n");
    PUT(t, THEN, "n", "2");
    uint64_t revision = ran(tx_apply(t), true, 2)->revision;
    void *snap;
    size_t len;
    cr_assert_eq(shard_snapshot(f.s, malloc, &snap, &len), MC_OK);
    struct tshard g;
    struct tshard keep = f;
    t_open(&g, 1, 0, 0);
    cr_assert_eq(shard_restore(g.s, snap, len), MC_OK);
    free(snap);
    g.index = f.index;
    f = g;
    const struct shard_result *again = tx_apply(t);
    cr_assert_eq(again->code, MC_OK);
    cr_assert_eq(again->txn->revision, revision);
    cr_assert_eq(memcmp(again->txn->results[0]->record->value.data, "1", 1),
                 0);
    t_close(&f);
    f = keep;
}

/* ---- under MDB_WRITEMAP: no nested txns ---- */

/* The store runs with MDB_WRITEMAP, where LMDB refuses nested txns: a
 * transaction runs in a txn of its own after the turn's txn is committed,
 * and is aborted when an operation fails. These check that this keeps
 * all or nothing with other entries of the same turn around it. */

struct seen_events {
    size_t n;
    char keys[16][16];
    uint64_t revs[16];
};

static void collect_event(void *arg, const struct shard_event *e)
{
    struct seen_events *s = arg;
    cr_assert_lt(s->n, 16);
    snprintf(s->keys[s->n], sizeof s->keys[s->n], "%.*s", (int)e->key_len,
             (const char *)e->key);
    s->revs[s->n++] = e->revision;
}

/* The keys of every event after after_rev, in order, joined by ','. */
static void events_after(uint64_t after_rev, char *out, size_t out_len)
{
    struct shard_watch_filter flt = {.ns = (const uint8_t *)T_NS,
                                     .ns_len = strlen(T_NS),
                                     .prefix = true};
    struct seen_events seen = {0};
    uint64_t through, compact;
    cr_assert_eq(shard_watch_scan(f.s, after_rev, &flt, 100, 1 << 20,
                                  collect_event, &seen, &through, &compact),
                 MC_OK);
    out[0] = '\0';
    for (size_t i = 0; i < seen.n; i++) {
        strncat(out, seen.keys[i], out_len - strlen(out) - 1);
        strncat(out, ",", out_len - strlen(out) - 1);
    }
}

static void assert_writemap(void)
{
    unsigned flags = 0;
    cr_assert(f.s->writemap, "the store runs without MDB_WRITEMAP");
    cr_assert_eq(mdb_env_get_flags(f.s->env, &flags), 0);
    cr_assert(flags & MDB_WRITEMAP);
}

Test(shard_txn, a_failing_txn_leaves_no_trace_under_writemap)
{
    t_close(&f);
    t_open(&f, 1, 100, 0);
    assert_writemap();
    static char big[81];
    memset(big, 'b', 80);
    cr_assert_eq(t_put(&f, "big1", big)->code, MC_OK);
    cr_assert_eq(t_put(&f, "big2", big)->code, MC_OK);
    cr_assert_eq(t_put(&f, "keep", "k")->code, MC_OK);
    cr_assert_eq(t_put(&f, "gone", "g")->code, MC_OK);
    t_commit(&f);
    uint64_t committed = f.index;
    /* One loop turn, nothing committed until its end: two entries, the
     * transaction that fails at its last operation after three writes,
     * and an entry after it. */
    cr_assert_eq(t_put(&f, "x", "1")->code, MC_OK);
    cr_assert_eq(t_apply(&f, &(struct tcmd){.op = T_DELETE, .key = "gone"})
                     ->code,
                 MC_OK);
    struct tx *t = tx_new();
    t->client_id = 7;
    t->seq = 1;
    PUT(t, THEN, "new", "n");
    DEL(t, THEN, "keep");
    PUT(t, THEN, "x", "changed");
    GET(t, THEN, "big1");
    GET(t, THEN, "big2");
    const struct shard_result *r = tx_apply(t);
    cr_assert_eq(r->code, MC_TOO_LARGE, "%s", mc_errname(r->code));
    cr_assert_null(r->txn);
    char first[sizeof r->message];
    snprintf(first, sizeof first, "%s", r->message);
    cr_assert(strstr(first, "then_ops[4]") != NULL, "%s", first);
    uint64_t txn_index = f.index;
    cr_assert_eq(shard_applied_index(f.s), txn_index);
    cr_assert_eq(t_put(&f, "after", "a")->code, MC_OK);
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, "new", &rec), MC_NOT_FOUND);
    cr_assert_eq(t_get(&f, T_STAMP, "gone", &rec), MC_NOT_FOUND);
    assert_value("keep", "k");
    assert_value("x", "1");
    assert_value("after", "a");
    char evs[256];
    events_after(committed, evs, sizeof evs);
    cr_assert_str_eq(evs, "x,gone,after,", "no event of the transaction");
    /* A retry gets the same failure, and changes nothing. */
    uint64_t with_answer = shard_state_hash(f.s);
    r = tx_apply(t);
    cr_assert_eq(r->code, MC_TOO_LARGE);
    cr_assert_str_eq(r->message, first);
    cr_assert_eq(shard_state_hash(f.s), with_answer);
    /* The same after the turn's commit and a restart. */
    t_commit(&f);
    shard_close(f.s);
    t_reopen(&f);
    assert_writemap();
    cr_assert_eq(shard_applied_index(f.s), f.index);
    cr_assert_eq(shard_state_hash(f.s), with_answer);
    cr_assert_eq(t_get(&f, T_STAMP, "new", &rec), MC_NOT_FOUND);
    assert_value("keep", "k");
    assert_value("x", "1");
    events_after(committed, evs, sizeof evs);
    cr_assert_str_eq(evs, "x,gone,after,");
}

Test(shard_txn, a_txn_between_entries_of_a_turn_keeps_them_all)
{
    assert_writemap();
    cr_assert_eq(t_put(&f, "a", "1")->code, MC_OK);
    t_commit(&f);
    uint64_t committed = f.index;
    cr_assert_eq(t_put(&f, "b", "1")->code, MC_OK); /* same turn */
    struct tx *t = tx_new();
    tx_version(t, "b", MCPB__TXN_CMP__TXN_CMP_EQ, 1);
    PUT(t, THEN, "a", "2");
    PUT(t, THEN, "c", "1");
    ran(tx_apply(t), true, 2);
    cr_assert_eq(t_put(&f, "d", "1")->code, MC_OK); /* after it */
    /* A failing one later in the turn takes only itself with it. */
    t = tx_new();
    PUT(t, THEN, "e", "1");
    GET(t, THEN, "bad\xff");
    cr_assert_eq(tx_apply(t)->code, MC_INVALID_ARGUMENT);
    cr_assert_eq(t_put(&f, "f", "1")->code, MC_OK);
    uint64_t h = shard_state_hash(f.s);
    t_commit(&f);
    shard_close(f.s);
    t_reopen(&f);
    cr_assert_eq(shard_state_hash(f.s), h);
    cr_assert_eq(shard_applied_index(f.s), f.index);
    assert_value("a", "2");
    assert_value("b", "1");
    assert_value("c", "1");
    assert_value("d", "1");
    assert_value("f", "1");
    struct shard_record rec;
    cr_assert_eq(t_get(&f, T_STAMP, "e", &rec), MC_NOT_FOUND);
    char evs[256];
    events_after(committed, evs, sizeof evs);
    cr_assert_str_eq(evs, "b,a,c,d,f,");
}
