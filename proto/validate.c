/* Validation of what protobuf-c leaves unchecked: namespaces, keys, UTF-8,
 * sizes, tiers and TTLs. Each failure names the problem in a sentence. */
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

static mc_err put_check(const Mcpb__Request *req, uint64_t value_max,
                        char *err, size_t err_len)
{
    if (req->value.len > value_max) {
        base_errf(err, err_len, "value is %zu bytes, more than the limit of %llu",
                  req->value.len, (unsigned long long)value_max);
        return MC_TOO_LARGE;
    }
    if (req->has_tier && req->tier > MC_TIER_LONG) {
        base_errf(err, err_len, "tier %u is not short (1), mid (2) or long (3)",
                  req->tier);
        return MC_INVALID_ARGUMENT;
    }
    if (req->has_ttl_ms && req->ttl_ms > MC_TTL_MS_MAX) {
        base_errf(err, err_len, "ttl of %llu ms is longer than ten years",
                  (unsigned long long)req->ttl_ms);
        return MC_INVALID_ARGUMENT;
    }
    if (req->has_tier && req->tier == MC_TIER_LONG && req->ttl_ms > 0) {
        base_errf(err, err_len, "the long tier keeps records without a TTL");
        return MC_INVALID_ARGUMENT;
    }
    return MC_OK;
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
    case MCPB__OP__OP_STATUS:
        return MC_OK;
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
