/* Validation of what protobuf-c leaves unchecked: namespaces, keys, UTF-8,
 * sizes, tiers and TTLs. Each failure names the problem in a sentence. */
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"

mc_err proto_ns_check(const uint8_t *ns, size_t len, char *err, size_t err_len)
{
    if (len == 0) {
        base_errf(err, err_len, "namespace is empty");
        return MC_INVALID_ARGUMENT;
    }
    if (len > MC_NS_BYTES_MAX) {
        base_errf(err, err_len, "namespace is %zu bytes, more than %u", len,
                  MC_NS_BYTES_MAX);
        return MC_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t c = ns[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (i > 0 && (c == '.' || c == '_' || c == '-'));
        if (!ok) {
            base_errf(err, err_len,
                      "namespace has an invalid character at byte %zu "
                      "(allowed: [a-z0-9][a-z0-9._-]{0,63})", i);
            return MC_INVALID_ARGUMENT;
        }
    }
    return MC_OK;
}

/* Length of the UTF-8 sequence at s[0..len), or 0 when it is invalid:
 * overlong forms, surrogates and code points above U+10FFFF are invalid. */
static size_t utf8_seq(const uint8_t *s, size_t len)
{
    uint8_t c = s[0];
    if (c < 0x80) {
        return 1;
    }
    size_t n;
    uint32_t cp;
    uint32_t min;
    if ((c & 0xe0) == 0xc0) {
        n = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n > len) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

bool proto_utf8_valid(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(s + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

bool mc_utf8_valid(const void *s, size_t len)
{
    return proto_utf8_valid(s, len);
}

size_t mc_utf8_seq_len(const void *s, size_t len)
{
    return len == 0 ? 0 : utf8_seq(s, len);
}

static mc_err text_check(const char *what, const uint8_t *s, size_t len,
                         char *err, size_t err_len)
{
    if (len > MC_KEY_BYTES_MAX) {
        base_errf(err, err_len, "%s is %zu bytes, more than %u", what, len,
                  MC_KEY_BYTES_MAX);
        return MC_INVALID_ARGUMENT;
    }
    if (len > 0 && memchr(s, 0, len) != NULL) {
        base_errf(err, err_len, "%s contains a NUL byte", what);
        return MC_INVALID_ARGUMENT;
    }
    if (!proto_utf8_valid(s, len)) {
        base_errf(err, err_len, "%s is not valid UTF-8", what);
        return MC_INVALID_ARGUMENT;
    }
    return MC_OK;
}

mc_err proto_key_check(const uint8_t *key, size_t len, char *err,
                       size_t err_len)
{
    if (len == 0) {
        base_errf(err, err_len, "key is empty");
        return MC_INVALID_ARGUMENT;
    }
    return text_check("key", key, len, err, err_len);
}

mc_err proto_prefix_check(const uint8_t *p, size_t len, char *err,
                          size_t err_len)
{
    return text_check("prefix", p, len, err, err_len);
}

static mc_err ns_key_check(const Mcpb__Request *req, char *err, size_t err_len)
{
    if (!req->has_ns) {
        base_errf(err, err_len, "namespace is missing");
        return MC_INVALID_ARGUMENT;
    }
    mc_err rv = proto_ns_check(req->ns.data, req->ns.len, err, err_len);
    if (rv != MC_OK) {
        return rv;
    }
    if (!req->has_key) {
        base_errf(err, err_len, "key is missing");
        return MC_INVALID_ARGUMENT;
    }
    return proto_key_check(req->key.data, req->key.len, err, err_len);
}

/* A put's tier and TTL (shared by PUT requests and TXN puts). */
static mc_err placement_check(bool has_tier, uint32_t tier, bool has_ttl_ms,
                              uint64_t ttl_ms, char *err, size_t err_len)
{
    if (has_tier && tier > MC_TIER_LONG) {
        base_errf(err, err_len, "tier %u is not short (1), mid (2) or long (3)",
                  tier);
        return MC_INVALID_ARGUMENT;
    }
    if (has_ttl_ms && ttl_ms > MC_TTL_MS_MAX) {
        base_errf(err, err_len, "ttl of %llu ms is longer than ten years",
                  (unsigned long long)ttl_ms);
        return MC_INVALID_ARGUMENT;
    }
    if (has_tier && tier == MC_TIER_LONG && ttl_ms > 0) {
        base_errf(err, err_len, "the long tier keeps records without a TTL");
        return MC_INVALID_ARGUMENT;
    }
    return MC_OK;
}

static mc_err put_check(const Mcpb__Request *req, uint64_t value_max,
                        char *err, size_t err_len)
{
    if (req->value.len > value_max) {
        base_errf(err, err_len, "value is %zu bytes, more than the limit of %llu",
                  req->value.len, (unsigned long long)value_max);
        return MC_TOO_LARGE;
    }
    return placement_check(req->has_tier, req->tier, req->has_ttl_ms,
                           req->ttl_ms, err, err_len);
}

static mc_err expect_check(const Mcpb__Request *req, char *err, size_t err_len)
{
    if (req->has_expect_version && req->expect_version < 0) {
        base_errf(err, err_len, "expected version %lld is negative",
                  (long long)req->expect_version);
        return MC_INVALID_ARGUMENT;
    }
    return MC_OK;
}

static mc_err list_check(const Mcpb__Request *req, char *err, size_t err_len)
{
    if (!req->has_ns) {
        base_errf(err, err_len, "namespace is missing");
        return MC_INVALID_ARGUMENT;
    }
    mc_err rv = proto_ns_check(req->ns.data, req->ns.len, err, err_len);
    if (rv == MC_OK) {
        rv = proto_prefix_check(req->prefix.data, req->prefix.len, err, err_len);
    }
    if (rv == MC_OK && req->has_pattern) {
        rv = proto_like_check(req->pattern.data, req->pattern.len, err,
                              err_len);
        if (rv == MC_OK && req->prefix.len > 0) {
            base_errf(err, err_len, "give a prefix or a pattern, not both");
            rv = MC_INVALID_ARGUMENT;
        }
    }
    if (rv == MC_OK) {
        rv = text_check("cursor", req->start_after.data, req->start_after.len,
                        err, err_len);
    }
    if (rv == MC_OK && req->limit > MC_LIST_PAGE_MAX) {
        base_errf(err, err_len, "list limit %u is more than %u", req->limit,
                  MC_LIST_PAGE_MAX);
        rv = MC_INVALID_ARGUMENT;
    }
    return rv;
}

/* Prefix err with the place of a compare or operation: "then_ops[3]: ". */
static mc_err txn_fail(mc_err rv, const char *list, size_t i, char *err,
                       size_t err_len)
{
    char why[256];
    snprintf(why, sizeof why, "%s", err);
    base_errf(err, err_len, "%s[%zu]: %s", list, i, why);
    return rv;
}

static mc_err compare_check(const Mcpb__TxnCompare *c, char *err,
                            size_t err_len)
{
    mc_err rv = proto_key_check(c->key.data, c->key.len, err, err_len);
    if (rv != MC_OK) {
        return rv;
    }
    uint32_t cmp = c->has_cmp ? c->cmp : MCPB__TXN_CMP__TXN_CMP_EQ;
    switch (c->target) {
    case MCPB__TXN_TARGET__TXN_TARGET_EXISTS:
    case MCPB__TXN_TARGET__TXN_TARGET_MISSING:
        return MC_OK;
    case MCPB__TXN_TARGET__TXN_TARGET_VERSION:
        if (cmp > MCPB__TXN_CMP__TXN_CMP_GT) {
            base_errf(err, err_len, "comparison %u is not =, !=, < or >", cmp);
            return MC_INVALID_ARGUMENT;
        }
        return MC_OK;
    case MCPB__TXN_TARGET__TXN_TARGET_VALUE:
        if (cmp > MCPB__TXN_CMP__TXN_CMP_NE) {
            base_errf(err, err_len, "a value compares only by = or !=");
            return MC_INVALID_ARGUMENT;
        }
        return MC_OK;
    default:
        base_errf(err, err_len, "compare target %u is not exists, missing, "
                  "version or value", c->target);
        return MC_INVALID_ARGUMENT;
    }
}

static mc_err txn_op_check(const Mcpb__TxnOp *op, char *err, size_t err_len)
{
    mc_err rv = proto_key_check(op->key.data, op->key.len, err, err_len);
    if (rv != MC_OK) {
        return rv;
    }
    switch (op->op) {
    case MCPB__OP__OP_PUT:
        return placement_check(op->has_tier, op->tier, op->has_ttl_ms,
                               op->ttl_ms, err, err_len);
    case MCPB__OP__OP_DELETE:
    case MCPB__OP__OP_GET:
        return MC_OK;
    default:
        base_errf(err, err_len, "operation %u is not put, delete or get",
                  op->op);
        return MC_INVALID_ARGUMENT;
    }
}

static mc_err txn_ops_check(const char *list, Mcpb__TxnOp *const *ops,
                            size_t n, uint64_t *value_bytes, char *err,
                            size_t err_len)
{
    for (size_t i = 0; i < n; i++) {
        mc_err rv = txn_op_check(ops[i], err, err_len);
        if (rv != MC_OK) {
            return txn_fail(rv, list, i, err, err_len);
        }
        *value_bytes += ops[i]->value.len;
    }
    return MC_OK;
}

mc_err proto_txn_check(const ProtobufCBinaryData *ns,
                       Mcpb__TxnCompare *const *compares, size_t n_compares,
                       Mcpb__TxnOp *const *then_ops, size_t n_then,
                       Mcpb__TxnOp *const *else_ops, size_t n_else,
                       uint64_t value_max, char *err, size_t err_len)
{
    mc_err rv = proto_ns_check(ns->data, ns->len, err, err_len);
    if (rv != MC_OK) {
        return rv;
    }
    size_t total = n_compares + n_then + n_else;
    if (total == 0) {
        base_errf(err, err_len, "transaction has no compare and no operation");
        return MC_INVALID_ARGUMENT;
    }
    if (total > MC_TXN_OPS_MAX) {
        base_errf(err, err_len, "transaction has %zu compares and operations, "
                  "more than %u", total, MC_TXN_OPS_MAX);
        return MC_INVALID_ARGUMENT;
    }
    uint64_t value_bytes = 0;
    for (size_t i = 0; i < n_compares; i++) {
        rv = compare_check(compares[i], err, err_len);
        if (rv != MC_OK) {
            return txn_fail(rv, "compares", i, err, err_len);
        }
        value_bytes += compares[i]->value.len;
    }
    rv = txn_ops_check("then_ops", then_ops, n_then, &value_bytes, err,
                       err_len);
    if (rv == MC_OK) {
        rv = txn_ops_check("else_ops", else_ops, n_else, &value_bytes, err,
                           err_len);
    }
    if (rv != MC_OK) {
        return rv;
    }
    if (value_bytes > value_max) {
        base_errf(err, err_len, "transaction values are %llu bytes together, "
                  "more than the limit of %llu",
                  (unsigned long long)value_bytes,
                  (unsigned long long)value_max);
        return MC_TOO_LARGE;
    }
    return MC_OK;
}

/* OP_TXN: its parts (proto_txn_check), and the size of the whole
 * request: a transaction travels as one message and one raft entry. */
static mc_err txn_check(const Mcpb__Request *req, uint64_t value_max,
                        char *err, size_t err_len)
{
    if (!req->has_ns) {
        base_errf(err, err_len, "namespace is missing");
        return MC_INVALID_ARGUMENT;
    }
    mc_err rv = proto_txn_check(&req->ns, req->compares, req->n_compares,
                                req->then_ops, req->n_then_ops, req->else_ops,
                                req->n_else_ops, value_max, err, err_len);
    if (rv != MC_OK) {
        return rv;
    }
    size_t size = protobuf_c_message_get_packed_size(&req->base);
    if (size > value_max + MC_HEADER_BYTES_MAX) {
        base_errf(err, err_len, "transaction is %zu bytes, more than one "
                  "message carries (%llu); use fewer or shorter keys", size,
                  (unsigned long long)(value_max + MC_HEADER_BYTES_MAX));
        return MC_TOO_LARGE;
    }
    return MC_OK;
}

bool proto_route_key(const Mcpb__Request *req, const uint8_t **key,
                     size_t *len)
{
    const ProtobufCBinaryData *k = NULL;
    if (req->op != MCPB__OP__OP_TXN) {
        k = req->has_key ? &req->key : NULL;
    } else if (req->n_compares > 0) {
        k = &req->compares[0]->key;
    } else if (req->n_then_ops > 0) {
        k = &req->then_ops[0]->key;
    } else if (req->n_else_ops > 0) {
        k = &req->else_ops[0]->key;
    }
    if (k == NULL) {
        return false;
    }
    *key = k->data;
    *len = k->len;
    return true;
}

/* Bytes of a key quoted in the span message. */
#define SPAN_KEY_BYTES_MAX 40

/* Compare the shard of key with the first key's; false (err set) when
 * they differ. */
static bool same_shard(const Mcpb__Request *req, uint32_t n_shards,
                       const ProtobufCBinaryData *first, uint32_t shard,
                       const ProtobufCBinaryData *key, char *err,
                       size_t err_len)
{
    uint32_t s = proto_shard_of_slot(
        proto_slot(req->ns.data, req->ns.len, key->data, key->len), n_shards);
    if (s == shard) {
        return true;
    }
    int a_len = (int)(first->len < SPAN_KEY_BYTES_MAX ? first->len
                                                      : SPAN_KEY_BYTES_MAX);
    int b_len = (int)(key->len < SPAN_KEY_BYTES_MAX ? key->len
                                                    : SPAN_KEY_BYTES_MAX);
    base_errf(err, err_len,
              "transaction keys span shards %u (\"%.*s%s\") and %u "
              "(\"%.*s%s\"); put a common {tag} in the keys, e.g. "
              "{job42}/a and {job42}/b",
              shard, a_len, (const char *)first->data,
              (size_t)a_len < first->len ? "..." : "", s, b_len,
              (const char *)key->data, (size_t)b_len < key->len ? "..." : "");
    return false;
}

mc_err proto_txn_shard(const Mcpb__Request *req, uint32_t n_shards,
                       uint32_t *shard, char *err, size_t err_len)
{
    ASSERT(req->op == MCPB__OP__OP_TXN);
    ASSERT(n_shards > 0);
    const uint8_t *k;
    size_t k_len;
    bool has = proto_route_key(req, &k, &k_len);
    ASSERT(has); /* checked: a transaction has a key */
    const ProtobufCBinaryData first = {k_len, (uint8_t *)k};
    *shard = proto_shard_of_slot(proto_slot(req->ns.data, req->ns.len, k,
                                            k_len),
                                 n_shards);
    for (size_t i = 0; i < req->n_compares; i++) {
        if (!same_shard(req, n_shards, &first, *shard, &req->compares[i]->key,
                        err, err_len)) {
            return MC_INVALID_ARGUMENT;
        }
    }
    Mcpb__TxnOp *const *lists[2] = {req->then_ops, req->else_ops};
    size_t counts[2] = {req->n_then_ops, req->n_else_ops};
    for (size_t l = 0; l < 2; l++) {
        for (size_t i = 0; i < counts[l]; i++) {
            if (!same_shard(req, n_shards, &first, *shard, &lists[l][i]->key,
                            err, err_len)) {
                return MC_INVALID_ARGUMENT;
            }
        }
    }
    return MC_OK;
}

static mc_err wait_ms_check(const Mcpb__Request *req, char *err,
                            size_t err_len)
{
    if (req->wait_ms > MC_WATCH_WAIT_MS_MAX) {
        base_errf(err, err_len, "wait of %u ms is longer than the limit of "
                  "%u ms", req->wait_ms, (unsigned)MC_WATCH_WAIT_MS_MAX);
        return MC_INVALID_ARGUMENT;
    }
    return MC_OK;
}

/* A watch names a key, or a prefix (which may be empty) and a shard. */
static mc_err watch_check(const Mcpb__Request *req, char *err, size_t err_len)
{
    if (req->has_key == req->has_prefix) {
        base_errf(err, err_len, "a watch names either a key or a prefix");
        return MC_INVALID_ARGUMENT;
    }
    if (req->has_key) {
        mc_err rv = ns_key_check(req, err, err_len);
        return rv == MC_OK ? wait_ms_check(req, err, err_len) : rv;
    }
    if (!req->has_shard) {
        base_errf(err, err_len, "a watch of a prefix names its shard");
        return MC_INVALID_ARGUMENT;
    }
    if (!req->has_ns) {
        base_errf(err, err_len, "namespace is missing");
        return MC_INVALID_ARGUMENT;
    }
    mc_err rv = proto_ns_check(req->ns.data, req->ns.len, err, err_len);
    if (rv == MC_OK) {
        rv = proto_prefix_check(req->prefix.data, req->prefix.len, err,
                                err_len);
    }
    return rv == MC_OK ? wait_ms_check(req, err, err_len) : rv;
}

static mc_err wait_check(const Mcpb__Request *req, uint64_t value_max,
                         char *err, size_t err_len)
{
    mc_err rv = ns_key_check(req, err, err_len);
    if (rv != MC_OK) {
        return rv;
    }
    switch (req->wait_for) {
    case MC_WAIT_EXISTS:
        break;
    case MC_WAIT_EQUALS:
        if (!req->has_value) {
            base_errf(err, err_len, "a wait for a value names the value");
            return MC_INVALID_ARGUMENT;
        }
        if (req->value.len > value_max) {
            base_errf(err, err_len, "value is %zu bytes, more than the limit "
                      "of %llu", req->value.len,
                      (unsigned long long)value_max);
            return MC_TOO_LARGE;
        }
        break;
    case MC_WAIT_VERSION:
        if (req->min_version == 0) {
            base_errf(err, err_len, "a wait for a version names a version "
                      "of at least 1");
            return MC_INVALID_ARGUMENT;
        }
        break;
    default:
        base_errf(err, err_len, "wait condition %u is not exists (1), "
                  "equals (2) or version (3)", req->wait_for);
        return MC_INVALID_ARGUMENT;
    }
    return wait_ms_check(req, err, err_len);
}

mc_err proto_request_check(const Mcpb__Request *req, uint64_t value_max,
                           char *err, size_t err_len)
{
    ASSERT(req != NULL);
    mc_err rv;
    switch (req->op) {
    case MCPB__OP__OP_PUT:
        rv = ns_key_check(req, err, err_len);
        if (rv == MC_OK) {
            rv = expect_check(req, err, err_len);
        }
        return rv == MC_OK ? put_check(req, value_max, err, err_len) : rv;
    case MCPB__OP__OP_DELETE:
        rv = ns_key_check(req, err, err_len);
        return rv == MC_OK ? expect_check(req, err, err_len) : rv;
    case MCPB__OP__OP_GET:
        return ns_key_check(req, err, err_len);
    case MCPB__OP__OP_LIST:
        return list_check(req, err, err_len);
    case MCPB__OP__OP_TXN:
        return txn_check(req, value_max, err, err_len);
    case MCPB__OP__OP_STATUS:
        return MC_OK;
    case MCPB__OP__OP_WATCH:
        return watch_check(req, err, err_len);
    case MCPB__OP__OP_WAIT:
        return wait_check(req, value_max, err, err_len);
    case MCPB__OP__OP_TRANSFER:
    case MCPB__OP__OP_HASH:
        if (!req->has_shard) {
            base_errf(err, err_len, "request names no shard");
            return MC_INVALID_ARGUMENT;
        }
        return MC_OK;
    default:
        base_errf(err, err_len, "unknown operation %u", req->op);
        return MC_INVALID_ARGUMENT;
    }
}
