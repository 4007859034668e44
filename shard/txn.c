/* Transactions: an OP_TXN command holds compares and two operation lists.
 * Apply evaluates every compare against the state before the transaction;
 * when all hold, the then_ops run, else the else_ops, in list order, each
 * seeing the writes of the ones before it. All of it happens in an LMDB
 * txn of its own: the turn's write txn is committed first, with the
 * entries before this one (store_txn_isolate; LMDB has no nested txns
 * under MDB_WRITEMAP). When an operation fails (a put refused for its
 * size or its key), that txn is aborted, so nothing of the transaction
 * stays and everything before it does, and the failure's answer (dedupe
 * entry, applied index) is written in a fresh txn; otherwise the txn goes
 * on as the turn's, committed with the entries after it.
 *
 * Puts and deletes go through apply_key_write, the code of single writes,
 * so versions, tiers, TTLs and everything that hooks a write of a key are
 * the same. Reads (compares and gets) judge expiry by the command's stamp,
 * as writes do, so every replica answers alike (invariant 3 of shard.h).
 *
 * The answer (branch and a result per operation, records read included)
 * is packed once: that packed form goes to the dedupe table, so a retried
 * transaction gets the first answer again, and it is unpacked into
 * s->txn_answer, which the caller sends. The records a get reads are
 * copied first: LMDB memory they point at dies at the next write. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "shard/apply.h"
#include "shard/dedupe.h"
#include "shard/record.h"

/* One transaction while it is applied. */
struct txn_run {
    struct shard *s;
    const Mcpb__Command *cmd;
    uint64_t index;
    bool failed; /* an operation failed: s->result says why */
    Mcpb__TxnResult answer;
    Mcpb__TxnOpResult results[MC_TXN_OPS_MAX];
    Mcpb__TxnOpResult *result_ptrs[MC_TXN_OPS_MAX];
    Mcpb__Record records[MC_TXN_OPS_MAX];
    uint8_t *copies[MC_TXN_OPS_MAX]; /* key and value of each get */
    size_t n_copies;
    uint64_t read_bytes; /* values the gets read so far */
};

__attribute__((format(printf, 3, 4))) static void
txn_fail(struct shard *s, mc_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    apply_vfail(&s->result, code, 0, fmt, ap);
    va_end(ap);
}

void txn_answer_free(struct shard *s)
{
    if (s->txn_answer != NULL) {
        struct apply_heap heap;
        apply_heap_init(&heap);
        mcpb__txn_result__free_unpacked(s->txn_answer, &heap.a);
        s->txn_answer = NULL;
    }
    s->result.txn = NULL;
}

mc_err txn_answer_load(struct shard *s, const uint8_t *txn, size_t txn_len)
{
    txn_answer_free(s);
    if (txn_len == 0) {
        return MC_OK;
    }
    struct apply_heap heap;
    apply_heap_init(&heap);
    s->txn_answer = mcpb__txn_result__unpack(&heap.a, txn_len, txn);
    if (s->txn_answer == NULL && heap.failed) {
        LOG_WARN("out of memory loading a txn answer shard=%u", s->cfg.id);
        return MC_UNAVAILABLE;
    }
    if (s->txn_answer == NULL) {
        return store_fail(s, "txn answer decode", MDB_CORRUPTED);
    }
    s->result.txn = s->txn_answer;
    return MC_OK;
}

/* Read key as the transaction sees it now: *live says whether it holds a
 * record that has not expired by the command's stamp. r borrows LMDB
 * memory until the next write. Errors: UNAVAILABLE. */
static mc_err txn_read(struct txn_run *t, const ProtobufCBinaryData *key,
                       struct record *r, bool *live)
{
    const Mcpb__Command *cmd = t->cmd;
    struct record_key k;
    struct record_dbkey dk;
    record_key_make(cmd->ns.data, cmd->ns.len, key->data, key->len, &k);
    record_dbkey_make(k.bytes, k.len, &dk);
    bool found;
    mc_err rv = record_find_any(t->s, t->s->txn, &k, &dk, r, &found);
    *live = rv == MC_OK && found && record_is_live(r, cmd->stamp_ms);
    return rv;
}

static bool version_holds(uint32_t cmp, uint64_t have, uint64_t want)
{
    switch (cmp) {
    case MCPB__TXN_CMP__TXN_CMP_NE:
        return have != want;
    case MCPB__TXN_CMP__TXN_CMP_LT:
        return have < want;
    case MCPB__TXN_CMP__TXN_CMP_GT:
        return have > want;
    default:
        return have == want;
    }
}

/* Whether compare c holds. A missing key has version 0, and no value: a
 * value compare on it fails, = and != alike. */
static mc_err compare_holds(struct txn_run *t, const Mcpb__TxnCompare *c,
                            bool *holds)
{
    struct record r;
    bool live;
    mc_err rv = txn_read(t, &c->key, &r, &live);
    if (rv != MC_OK) {
        return rv;
    }
    uint32_t cmp = c->has_cmp ? c->cmp : MCPB__TXN_CMP__TXN_CMP_EQ;
    switch (c->target) {
    case MCPB__TXN_TARGET__TXN_TARGET_EXISTS:
        *holds = live;
        break;
    case MCPB__TXN_TARGET__TXN_TARGET_MISSING:
        *holds = !live;
        break;
    case MCPB__TXN_TARGET__TXN_TARGET_VERSION:
        *holds = version_holds(cmp, live ? r.version : 0, c->version);
        break;
    default: {
        ASSERT(c->target == MCPB__TXN_TARGET__TXN_TARGET_VALUE);
        bool equal = live && r.value_len == c->value.len &&
                     (r.value_len == 0 ||
                      memcmp(r.value, c->value.data, r.value_len) == 0);
        *holds = live && (cmp == MCPB__TXN_CMP__TXN_CMP_EQ ? equal : !equal);
        break;
    }
    }
    return MC_OK;
}

/* GET: the record, copied, or NOT_FOUND. The values a transaction reads
 * together are bounded like one value, so that its answer fits one
 * message. Errors: UNAVAILABLE (storage; memory: nothing applies). */
static mc_err op_get(struct txn_run *t, const char *list, size_t i,
                     const Mcpb__TxnOp *op, Mcpb__TxnOpResult *out)
{
    struct record r;
    bool live;
    mc_err rv = txn_read(t, &op->key, &r, &live);
    if (rv != MC_OK) {
        return rv;
    }
    out->code = live ? MC_OK : MC_NOT_FOUND;
    if (!live) {
        return MC_OK;
    }
    t->read_bytes += r.value_len;
    uint64_t max = t->s->cfg.value_bytes_max;
    if (t->read_bytes > max) {
        t->failed = true;
        txn_fail(t->s, MC_TOO_LARGE, "%s[%zu]: the transaction reads more "
                 "than %" PRIu64 " value bytes; get large values alone",
                 list, i, max);
        return MC_OK;
    }
    uint8_t *copy = mc_malloc(op->key.len + r.value_len + 1);
    if (copy == NULL) {
        LOG_WARN("out of memory in a txn shard=%u", t->s->cfg.id);
        return MC_UNAVAILABLE;
    }
    t->copies[t->n_copies++] = copy;
    memcpy(copy, op->key.data, op->key.len);
    if (r.value_len > 0) {
        memcpy(copy + op->key.len, r.value, r.value_len);
    }
    Mcpb__Record *pb = &t->records[i];
    mcpb__record__init(pb);
    pb->has_key = pb->has_value = true;
    pb->key = (ProtobufCBinaryData){op->key.len, copy};
    pb->value = (ProtobufCBinaryData){r.value_len, copy + op->key.len};
    pb->has_version = pb->has_create_rev = pb->has_mod_rev = true;
    pb->version = r.version;
    pb->create_rev = r.create_rev;
    pb->mod_rev = r.mod_rev;
    pb->has_tier = pb->has_expires_at = pb->has_updated_at = true;
    pb->tier = r.tier;
    pb->expires_at = r.expires_at;
    pb->updated_at = r.updated_at;
    out->record = pb;
    out->has_version = out->has_create_rev = out->has_mod_rev = true;
    out->version = r.version;
    out->create_rev = r.create_rev;
    out->mod_rev = r.mod_rev;
    return MC_OK;
}

/* PUT or DELETE, through the code of single writes. A delete of a missing
 * key is NOT_FOUND in its result; any other failure fails the whole
 * transaction. Errors: UNAVAILABLE (storage). */
static mc_err op_write(struct txn_run *t, const char *list, size_t i,
                       const Mcpb__TxnOp *op, Mcpb__TxnOpResult *out)
{
    struct shard *s = t->s;
    Mcpb__Command one = MCPB__COMMAND__INIT;
    one.op = op->op;
    one.stamp_ms = t->cmd->stamp_ms;
    one.has_ns = one.has_key = true;
    one.ns = t->cmd->ns;
    one.key = op->key;
    if (op->op == MCPB__OP__OP_PUT) {
        one.has_value = true;
        one.value = op->value;
        one.has_tier = op->has_tier && op->tier != MC_TIER_DEFAULT;
        one.tier = op->tier;
        one.has_ttl_ms = op->has_ttl_ms;
        one.ttl_ms = op->ttl_ms;
    }
    memset(&s->result, 0, sizeof s->result);
    mc_err rv = apply_key_write(s, t->index, &one);
    if (rv != MC_OK) {
        return rv;
    }
    const struct shard_result *res = &s->result;
    if (res->code == MC_NOT_FOUND && op->op == MCPB__OP__OP_DELETE) {
        out->code = MC_NOT_FOUND;
        return MC_OK;
    }
    if (res->code != MC_OK) {
        char why[sizeof s->result.message];
        snprintf(why, sizeof why, "%s", res->message);
        t->failed = true;
        txn_fail(s, res->code, "%s[%zu]: %s", list, i, why);
        return MC_OK;
    }
    out->code = MC_OK;
    out->has_version = out->has_create_rev = out->has_mod_rev = true;
    out->version = res->version;
    out->create_rev = res->create_rev;
    out->mod_rev = res->mod_rev;
    return MC_OK;
}

/* Evaluate the compares, then run the chosen list until it ends or an
 * operation fails. Errors: UNAVAILABLE. */
static mc_err txn_run(struct txn_run *t)
{
    const Mcpb__Command *cmd = t->cmd;
    bool holds = true;
    for (size_t i = 0; holds && i < cmd->n_compares; i++) {
        mc_err rv = compare_holds(t, cmd->compares[i], &holds);
        if (rv != MC_OK) {
            return rv;
        }
    }
    Mcpb__TxnOp *const *ops = holds ? cmd->then_ops : cmd->else_ops;
    size_t n = holds ? cmd->n_then_ops : cmd->n_else_ops;
    const char *list = holds ? "then_ops" : "else_ops";
    mcpb__txn_result__init(&t->answer);
    t->answer.succeeded = holds;
    t->answer.has_revision = true;
    t->answer.revision = t->index;
    t->answer.results = t->result_ptrs;
    t->answer.n_results = n;
    for (size_t i = 0; i < n && !t->failed; i++) {
        Mcpb__TxnOpResult *out = &t->results[i];
        mcpb__txn_op_result__init(out);
        t->result_ptrs[i] = out;
        mc_err rv = ops[i]->op == MCPB__OP__OP_GET
                        ? op_get(t, list, i, ops[i], out)
                        : op_write(t, list, i, ops[i], out);
        if (rv != MC_OK) {
            return rv;
        }
    }
    return MC_OK;
}

/* Pack the answer of a transaction that ran into *packed (the caller
 * frees it) and load it as s->txn_answer. Errors: UNAVAILABLE (memory). */
static mc_err answer_make(struct txn_run *t, uint8_t **packed, size_t *len)
{
    *len = mcpb__txn_result__get_packed_size(&t->answer);
    *packed = mc_malloc(*len);
    if (*packed == NULL) {
        LOG_WARN("out of memory packing a txn answer shard=%u",
                 t->s->cfg.id);
        return MC_UNAVAILABLE;
    }
    size_t n = mcpb__txn_result__pack(&t->answer, *packed);
    ASSERT(n == *len);
    mc_err rv = txn_answer_load(t->s, *packed, *len);
    if (rv != MC_OK) {
        mc_free(*packed);
        *packed = NULL;
    }
    return rv;
}

/* Run t in a write txn of its own and keep all of it or none. On MC_OK
 * s->result (and, when it ran, *packed) say what happened, and s->txn is
 * open for what comes after: the transaction's txn, or a fresh one. */
static mc_err txn_isolated(struct txn_run *t, uint8_t **packed, size_t *len)
{
    struct shard *s = t->s;
    mc_err rv = store_txn_isolate(s);
    if (rv != MC_OK) {
        return rv;
    }
    rv = txn_run(t);
    if (rv == MC_OK && !t->failed) {
        rv = answer_make(t, packed, len);
    }
    if (rv != MC_OK || t->failed) {
        /* Nothing stays: an operation failed, or storage or memory did
         * (then the entry is not applied at all, and the next try begins
         * a txn of its own). */
        store_txn_abort(s);
        return rv == MC_OK ? store_write_begin(s) : rv;
    }
    memset(&s->result, 0, sizeof s->result);
    s->result.code = MC_OK;
    s->result.mod_rev = t->index;
    s->result.txn = s->txn_answer;
    return MC_OK;
}

mc_err txn_apply(struct shard *s, uint64_t index, const Mcpb__Command *cmd)
{
    ASSERT(cmd->op == MCPB__OP__OP_TXN);
    char why[sizeof s->result.message];
    mc_err code = proto_txn_check(&cmd->ns, cmd->compares, cmd->n_compares,
                                  cmd->then_ops, cmd->n_then_ops,
                                  cmd->else_ops, cmd->n_else_ops,
                                  s->cfg.value_bytes_max, why, sizeof why);
    if (code != MC_OK) {
        txn_fail(s, code, "%s", why);
        return MC_OK;
    }
    bool answered;
    mc_err rv = apply_dedupe(s, cmd, &answered);
    if (rv != MC_OK || answered) {
        return rv;
    }
    struct txn_run *t = mc_calloc(1, sizeof *t);
    if (t == NULL) {
        LOG_WARN("out of memory in a txn shard=%u", s->cfg.id);
        return MC_UNAVAILABLE;
    }
    t->s = s;
    t->cmd = cmd;
    t->index = index;
    uint8_t *packed = NULL;
    size_t packed_len = 0;
    rv = txn_isolated(t, &packed, &packed_len);
    for (size_t i = 0; i < t->n_copies; i++) {
        mc_free(t->copies[i]);
    }
    mc_free(t);
    if (rv == MC_OK && cmd->has_client_id && cmd->client_id != 0) {
        rv = dedupe_store(s, cmd->client_id, cmd->has_seq ? cmd->seq : 0,
                          cmd->stamp_ms, &s->result, packed, packed_len);
    }
    mc_free(packed);
    return rv;
}
