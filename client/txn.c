/* Transactions of libmemcoord: mc_txn builds one OP_TXN request from the
 * caller's arrays of compares and operations, checks it as the node will
 * (proto_request_check), finds the shard of its keys and refuses keys of
 * several shards before sending (proto_txn_shard, the node's own words),
 * then sends it as a write: under a lane's request id, the same for every
 * retry, straight to the shard's leader (route.c routes a transaction by
 * its first key). The answer says which branch ran and carries a result
 * per operation of it, copied into an mc_txn_result the caller owns. */
#include <string.h>

#include "client/internal.h"

_Static_assert((int)MC_OP_PUT == MCPB__OP__OP_PUT &&
                   (int)MC_OP_DELETE == MCPB__OP__OP_DELETE &&
                   (int)MC_OP_GET == MCPB__OP__OP_GET,
               "mc_op_type values are the wire's");
_Static_assert((int)MC_CMP_EXISTS == MCPB__TXN_TARGET__TXN_TARGET_EXISTS &&
                   (int)MC_CMP_MISSING ==
                       MCPB__TXN_TARGET__TXN_TARGET_MISSING &&
                   (int)MC_CMP_VERSION ==
                       MCPB__TXN_TARGET__TXN_TARGET_VERSION &&
                   (int)MC_CMP_VALUE == MCPB__TXN_TARGET__TXN_TARGET_VALUE,
               "mc_cmp_target values are the wire's");
_Static_assert((int)MC_EQ == MCPB__TXN_CMP__TXN_CMP_EQ &&
                   (int)MC_NE == MCPB__TXN_CMP__TXN_CMP_NE &&
                   (int)MC_LT == MCPB__TXN_CMP__TXN_CMP_LT &&
                   (int)MC_GT == MCPB__TXN_CMP__TXN_CMP_GT,
               "mc_cmp_op values are the wire's");

void mc_txn_result_free(mc_txn_result *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n_results; i++) {
        client_record_fini(&r->results[i].record);
    }
    mc_free(r->results);
    mc_free(r);
}

/* The wire form of one request: its parts and the arrays that point at
 * them, all borrowed from the caller's arrays until the call returns. */
struct txn_wire {
    Mcpb__TxnCompare *cmps;
    Mcpb__TxnCompare **cmp_ptrs;
    Mcpb__TxnOp *ops;
    Mcpb__TxnOp **op_ptrs;
};

static void wire_fini(struct txn_wire *w)
{
    mc_free(w->cmps);
    mc_free(w->cmp_ptrs);
    mc_free(w->ops);
    mc_free(w->op_ptrs);
}

static ProtobufCBinaryData bytes_of(const void *p, size_t len)
{
    return (ProtobufCBinaryData){len, (uint8_t *)(p != NULL ? p : "")};
}

/* What protobuf cannot carry or say: NULL pointers, enums out of range. */
static mc_err cmp_to_wire(const mc_cmp *c, size_t i, Mcpb__TxnCompare *out,
                          mc_result *res)
{
    if (c->key == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "compares[%zu]: key is missing", i);
    }
    if (c->value == NULL && c->value_len > 0) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "compares[%zu]: value is NULL but value_len "
                                 "is %zu", i, c->value_len);
    }
    mcpb__txn_compare__init(out);
    out->target = (uint32_t)c->target; /* the node's check says what is bad */
    out->key = bytes_of(c->key, strlen(c->key));
    out->has_cmp = true;
    out->cmp = (uint32_t)c->op;
    if (c->target == MC_CMP_VERSION) {
        out->has_version = true;
        out->version = c->version;
    }
    if (c->target == MC_CMP_VALUE) {
        out->has_value = true;
        out->value = bytes_of(c->value, c->value_len);
    }
    return MC_OK;
}

static mc_err op_to_wire(const mc_op *o, const char *list, size_t i,
                         Mcpb__TxnOp *out, mc_result *res)
{
    if (o->key == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "%s[%zu]: key is missing", list, i);
    }
    mcpb__txn_op__init(out);
    out->op = (uint32_t)o->type;
    out->key = bytes_of(o->key, strlen(o->key));
    if (o->type != MC_OP_PUT) {
        return MC_OK;
    }
    if (o->value == NULL && o->value_len > 0) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "%s[%zu]: value is NULL but value_len is "
                                 "%zu", list, i, o->value_len);
    }
    out->has_value = true;
    out->value = bytes_of(o->value, o->value_len);
    if (o->tier != MC_TIER_DEFAULT) {
        out->has_tier = true;
        out->tier = (uint32_t)o->tier;
    }
    if (o->ttl_ms > 0) {
        out->has_ttl_ms = true;
        out->ttl_ms = o->ttl_ms;
    }
    return MC_OK;
}

static mc_err ops_to_wire(const mc_op *ops, size_t n, const char *list,
                          Mcpb__TxnOp *out, Mcpb__TxnOp **ptrs,
                          mc_result *res)
{
    if (ops == NULL && n > 0) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "%s is NULL but holds %zu operations", list,
                                 n);
    }
    for (size_t i = 0; i < n; i++) {
        mc_err rv = op_to_wire(&ops[i], list, i, &out[i], res);
        if (rv != MC_OK) {
            return rv;
        }
        ptrs[i] = &out[i];
    }
    return MC_OK;
}

/* Fill req (op, ns, parts) from t. */
static mc_err request_build(Mcpb__Request *req, const char *ns,
                            const mc_txn_req *t, struct txn_wire *w,
                            mc_result *res)
{
    size_t total = t->n_compares + t->n_then + t->n_else;
    if (total > MC_TXN_OPS_MAX || total < t->n_compares) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "transaction has %zu compares and "
                                 "operations, more than %u", total,
                                 MC_TXN_OPS_MAX);
    }
    if (t->compares == NULL && t->n_compares > 0) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "compares is NULL but holds %zu compares",
                                 t->n_compares);
    }
    size_t slots = total > 0 ? total : 1;
    w->cmps = mc_calloc(slots, sizeof *w->cmps);
    w->cmp_ptrs = mc_calloc(slots, sizeof *w->cmp_ptrs);
    w->ops = mc_calloc(slots, sizeof *w->ops);
    w->op_ptrs = mc_calloc(slots, sizeof *w->op_ptrs);
    if (w->cmps == NULL || w->cmp_ptrs == NULL || w->ops == NULL ||
        w->op_ptrs == NULL) {
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    req->op = MCPB__OP__OP_TXN;
    req->has_ns = true;
    req->ns = bytes_of(ns, strlen(ns));
    for (size_t i = 0; i < t->n_compares; i++) {
        mc_err rv = cmp_to_wire(&t->compares[i], i, &w->cmps[i], res);
        if (rv != MC_OK) {
            return rv;
        }
        w->cmp_ptrs[i] = &w->cmps[i];
    }
    req->compares = w->cmp_ptrs;
    req->n_compares = t->n_compares;
    req->then_ops = w->op_ptrs;
    req->n_then_ops = t->n_then;
    req->else_ops = w->op_ptrs + t->n_then;
    req->n_else_ops = t->n_else;
    mc_err rv = ops_to_wire(t->then_ops, t->n_then, "then_ops", w->ops,
                            w->op_ptrs, res);
    if (rv == MC_OK) {
        rv = ops_to_wire(t->else_ops, t->n_else, "else_ops",
                         w->ops + t->n_then, w->op_ptrs + t->n_then, res);
    }
    return rv;
}

/* Copy the answer of a transaction that ran into a new result. The
 * results must match the operations of the branch that ran. */
static mc_err result_new(const mc_txn_req *t, const Mcpb__TxnResult *a,
                         mc_txn_result **out, mc_result *res)
{
    const mc_op *ops = a->succeeded ? t->then_ops : t->else_ops;
    size_t n = a->succeeded ? t->n_then : t->n_else;
    if (a->n_results != n) {
        return client_result_set(res, MC_INTERNAL,
                                 "the node answered %zu results for %zu "
                                 "operations", a->n_results, n);
    }
    mc_txn_result *r = mc_calloc(1, sizeof *r);
    if (r == NULL) {
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    r->succeeded = a->succeeded;
    r->revision = a->revision;
    r->results = mc_calloc(n > 0 ? n : 1, sizeof *r->results);
    if (r->results == NULL) {
        mc_free(r);
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    for (; r->n_results < n; r->n_results++) {
        const Mcpb__TxnOpResult *w = a->results[r->n_results];
        mc_op_result *o = &r->results[r->n_results];
        o->type = ops[r->n_results].type;
        o->code = w->code < MC_ERR_COUNT ? (mc_err)w->code : MC_INTERNAL;
        o->version = w->version;
        o->create_rev = w->create_rev;
        o->mod_rev = w->mod_rev;
        if (w->record != NULL &&
            client_record_init(&o->record, w->record) != MC_OK) {
            mc_txn_result_free(r);
            return client_result_set(res, MC_INTERNAL, "out of memory");
        }
    }
    *out = r;
    return MC_OK;
}

mc_err mc_txn(mc_client *c, const char *ns, const mc_txn_req *txn,
              mc_txn_result **out, mc_result *res)
{
    ASSERT(c != NULL);
    int64_t deadline_ms = client_deadline(c);
    client_result_clear(res);
    if (out == NULL || txn == NULL || ns == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 out == NULL   ? "out is NULL"
                                 : txn == NULL ? "txn is NULL"
                                               : "namespace is missing");
    }
    *out = NULL;
    Mcpb__Request req = MCPB__REQUEST__INIT;
    struct txn_wire w = {0};
    mc_err rv = request_build(&req, ns, txn, &w, res);
    char err[sizeof res->message];
    if (rv == MC_OK) {
        rv = proto_request_check(&req, MC_VALUE_BYTES_MAX, err, sizeof err);
        if (rv != MC_OK) {
            client_result_set(res, rv, "%s", err);
        }
    }
    uint32_t n_shards, shard;
    if (rv == MC_OK) {
        rv = client_shard_count(c, deadline_ms, &n_shards, res);
    }
    if (rv == MC_OK) {
        rv = proto_txn_shard(&req, n_shards, &shard, err, sizeof err);
        if (rv != MC_OK) {
            client_result_set(res, rv, "%s", err);
        }
    }
    Mcpb__Response *r = NULL;
    if (rv == MC_OK) {
        rv = client_write_call(c, &req, deadline_ms, &r, res);
    }
    if (rv == MC_OK && r->txn == NULL) {
        rv = client_result_set(res, MC_INTERNAL,
                               "the node answered a transaction without its "
                               "result");
    } else if (rv == MC_OK) {
        rv = result_new(txn, r->txn, out, res);
    }
    if (r != NULL) {
        mcpb__response__free_unpacked(r, NULL);
    }
    wire_fini(&w);
    return rv;
}
