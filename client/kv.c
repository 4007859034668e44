/* put, delete and get of libmemcoord, synchronous and asynchronous, and
 * the records they return.
 *
 * Each call builds its request, checks it with the same validation the
 * node runs (proto_request_check), so that a bad key or an oversized value
 * fails without a round trip, then hands it to the engine (call.c): the
 * synchronous call waits for the end there (client_call), the asynchronous
 * one starts it (client_call_start) and turns its end into the caller's
 * callback. One builder per operation serves both, so they cannot differ.
 * The node stays authoritative: it checks again. Writes get a lane for
 * their request id from the engine (internal.h, invariant 1). */
#include <string.h>

#include "client/internal.h"

/* Point req at ns and key (borrowed until the call returns). */
static mc_err request_target(Mcpb__Request *req, const char *ns,
                             const char *key, mc_result *res)
{
    if (ns == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "namespace is missing");
    }
    if (key == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT, "key is missing");
    }
    req->has_ns = true;
    req->ns.data = (uint8_t *)ns;
    req->ns.len = strlen(ns);
    req->has_key = true;
    req->key.data = (uint8_t *)key;
    req->key.len = strlen(key);
    return MC_OK;
}

/* The node's own checks, run before sending. */
static mc_err request_check(const Mcpb__Request *req, mc_result *res)
{
    char err[sizeof res->message];
    mc_err rv = proto_request_check(req, MC_VALUE_BYTES_MAX, err, sizeof err);
    if (rv != MC_OK) {
        return client_result_set(res, rv, "%s", err);
    }
    return MC_OK;
}

static mc_err expect_set(Mcpb__Request *req, int64_t expect_version,
                         mc_result *res)
{
    if (expect_version == MC_VERSION_ANY) {
        return MC_OK;
    }
    if (expect_version < 0) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "expected version %lld is neither "
                                 "MC_VERSION_ANY, 0 nor positive",
                                 (long long)expect_version);
    }
    req->has_expect_version = true;
    req->expect_version = expect_version;
    return MC_OK;
}

mc_err client_write_call(mc_client *c, Mcpb__Request *req,
                         int64_t deadline_ms, Mcpb__Response **out,
                         mc_result *res)
{
    Mcpb__Response *r;
    mc_err rv = client_call(c, req, deadline_ms, &r, res);
    if (out != NULL) {
        *out = r;
    } else if (r != NULL) {
        mcpb__response__free_unpacked(r, NULL);
    }
    return rv;
}

/* The request of a put, checked. Borrows ns, key and value. */
static mc_err put_request(Mcpb__Request *req, const char *ns,
                          const char *key, const void *value,
                          size_t value_len, const mc_put_opts *opts,
                          mc_result *res)
{
    static const mc_put_opts defaults = MC_PUT_OPTS_INIT;
    if (opts == NULL) {
        opts = &defaults;
    }
    if (value == NULL && value_len > 0) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "value is NULL but value_len is %zu",
                                 value_len);
    }
    if ((unsigned)opts->tier > MC_TIER_LONG) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "tier %d is not short, mid or long",
                                 (int)opts->tier);
    }
    mcpb__request__init(req);
    req->op = MCPB__OP__OP_PUT;
    mc_err rv = request_target(req, ns, key, res);
    if (rv == MC_OK) {
        rv = expect_set(req, opts->expect_version, res);
    }
    if (rv != MC_OK) {
        return rv;
    }
    req->has_value = true;
    req->value.data = (uint8_t *)(value != NULL ? value : "");
    req->value.len = value_len;
    if (opts->tier != MC_TIER_DEFAULT) {
        req->has_tier = true;
        req->tier = (uint32_t)opts->tier;
    }
    if (opts->ttl_ms > 0) {
        req->has_ttl_ms = true;
        req->ttl_ms = opts->ttl_ms;
    }
    return request_check(req, res);
}

/* The request of a delete, checked. */
static mc_err delete_request(Mcpb__Request *req, const char *ns,
                             const char *key, int64_t expect_version,
                             mc_result *res)
{
    mcpb__request__init(req);
    req->op = MCPB__OP__OP_DELETE;
    mc_err rv = request_target(req, ns, key, res);
    if (rv == MC_OK) {
        rv = expect_set(req, expect_version, res);
    }
    if (rv == MC_OK) {
        rv = request_check(req, res);
    }
    return rv;
}

/* The request of a get, checked. */
static mc_err get_request(Mcpb__Request *req, const char *ns,
                          const char *key, const mc_read_opts *opts,
                          mc_result *res)
{
    mcpb__request__init(req);
    req->op = MCPB__OP__OP_GET;
    mc_err rv = request_target(req, ns, key, res);
    if (rv == MC_OK) {
        rv = request_check(req, res);
    }
    if (rv == MC_OK && opts != NULL && opts->serializable) {
        req->has_serializable = true;
        req->serializable = true;
    }
    return rv;
}

mc_err mc_put(mc_client *c, const char *ns, const char *key,
              const void *value, size_t value_len, const mc_put_opts *opts,
              mc_result *res)
{
    ASSERT(c != NULL);
    int64_t deadline_ms = client_deadline(c);
    client_result_clear(res);
    Mcpb__Request req;
    mc_err rv = put_request(&req, ns, key, value, value_len, opts, res);
    if (rv != MC_OK) {
        return rv;
    }
    return client_write_call(c, &req, deadline_ms, NULL, res);
}

mc_err mc_delete(mc_client *c, const char *ns, const char *key,
                 int64_t expect_version, mc_result *res)
{
    ASSERT(c != NULL);
    int64_t deadline_ms = client_deadline(c);
    client_result_clear(res);
    Mcpb__Request req;
    mc_err rv = delete_request(&req, ns, key, expect_version, res);
    if (rv != MC_OK) {
        return rv;
    }
    return client_write_call(c, &req, deadline_ms, NULL, res);
}

mc_err client_record_init(mc_record *r, const Mcpb__Record *w)
{
    ASSERT(r != NULL);
    ASSERT(w != NULL);
    memset(r, 0, sizeof *r);
    /* protobuf-c leaves data NULL for an empty field, and memcpy must not
     * see NULL even for 0 bytes. */
    const char *key = w->key.len > 0 ? (const char *)w->key.data : "";
    r->key = mc_strndup(key, w->key.len);
    if (r->key == NULL) {
        return MC_INTERNAL;
    }
    r->key_len = w->key.len;
    r->value = mc_malloc(w->value.len + 1);
    if (r->value == NULL) {
        mc_free(r->key);
        r->key = NULL;
        return MC_INTERNAL;
    }
    if (w->value.len > 0) {
        memcpy(r->value, w->value.data, w->value.len);
    }
    r->value[w->value.len] = '\0';
    r->value_len = w->value.len;
    r->version = w->version;
    r->create_rev = w->create_rev;
    r->mod_rev = w->mod_rev;
    r->tier = (mc_tier)w->tier;
    r->expires_at_ms = w->expires_at;
    r->updated_at_ms = w->updated_at;
    return MC_OK;
}

void client_record_fini(mc_record *r)
{
    if (r != NULL) {
        mc_free(r->key);
        mc_free(r->value);
        memset(r, 0, sizeof *r);
    }
}

void mc_record_free(mc_record *r)
{
    if (r != NULL) {
        client_record_fini(r);
        mc_free(r);
    }
}

static mc_err record_new(const Mcpb__Record *w, mc_record **out,
                         mc_result *res)
{
    mc_record *r = mc_malloc(sizeof *r);
    if (r == NULL) {
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    if (client_record_init(r, w) != MC_OK) {
        mc_free(r);
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    *out = r;
    return MC_OK;
}

/* The record of a get's answer r (which may be NULL when code is not
 * MC_OK) into *out; code, or the error of the copy into res. */
static mc_err get_record(mc_err code, const Mcpb__Response *r,
                         mc_record **out, mc_result *res)
{
    *out = NULL;
    if (code != MC_OK) {
        return code;
    }
    if (r->record == NULL) {
        return client_result_set(res, MC_INTERNAL,
                                 "the node answered a get without a record");
    }
    return record_new(r->record, out, res);
}

mc_err mc_get(mc_client *c, const char *ns, const char *key,
              const mc_read_opts *opts, mc_record **out, mc_result *res)
{
    ASSERT(c != NULL);
    int64_t deadline_ms = client_deadline(c);
    client_result_clear(res);
    if (out == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT, "out is NULL");
    }
    *out = NULL;
    Mcpb__Request req;
    mc_err rv = get_request(&req, ns, key, opts, res);
    if (rv != MC_OK) {
        return rv;
    }
    Mcpb__Response *r;
    rv = client_call(c, &req, deadline_ms, &r, res);
    rv = get_record(rv, r, out, res);
    if (r != NULL) {
        mcpb__response__free_unpacked(r, NULL);
    }
    return rv;
}

/* ---- asynchronous: the engine's end, handed to the caller's callback ---- */

/* The end of a put or delete. */
static void write_done(const struct client_done *d, mc_err code,
                       Mcpb__Response *r, const mc_result *res)
{
    if (r != NULL) {
        mcpb__response__free_unpacked(r, NULL);
    }
    d->user.done(d->user_arg, code, res);
}

/* The end of a get: the answer's record copied for the callback. */
static void get_done(const struct client_done *d, mc_err code,
                     Mcpb__Response *r, const mc_result *res)
{
    mc_result copy = *res;
    mc_record *rec;
    code = get_record(code, r, &rec, &copy);
    if (r != NULL) {
        mcpb__response__free_unpacked(r, NULL);
    }
    d->user.get(d->user_arg, code, rec, &copy);
}

mc_err mc_put_async(mc_client *c, const char *ns, const char *key,
                    const void *value, size_t value_len,
                    const mc_put_opts *opts, mc_result *res, mc_done_cb cb,
                    void *arg)
{
    ASSERT(c != NULL);
    ASSERT(cb != NULL);
    int64_t deadline_ms = client_deadline(c);
    client_result_clear(res);
    Mcpb__Request req;
    mc_err rv = put_request(&req, ns, key, value, value_len, opts, res);
    if (rv != MC_OK) {
        return rv;
    }
    struct client_done d = {.fn = write_done, .user.done = cb,
                            .user_arg = arg};
    return client_call_start(c, &req, deadline_ms, &d, res);
}

mc_err mc_delete_async(mc_client *c, const char *ns, const char *key,
                       int64_t expect_version, mc_result *res, mc_done_cb cb,
                       void *arg)
{
    ASSERT(c != NULL);
    ASSERT(cb != NULL);
    int64_t deadline_ms = client_deadline(c);
    client_result_clear(res);
    Mcpb__Request req;
    mc_err rv = delete_request(&req, ns, key, expect_version, res);
    if (rv != MC_OK) {
        return rv;
    }
    struct client_done d = {.fn = write_done, .user.done = cb,
                            .user_arg = arg};
    return client_call_start(c, &req, deadline_ms, &d, res);
}

mc_err mc_get_async(mc_client *c, const char *ns, const char *key,
                    const mc_read_opts *opts, mc_result *res, mc_get_cb cb,
                    void *arg)
{
    ASSERT(c != NULL);
    ASSERT(cb != NULL);
    int64_t deadline_ms = client_deadline(c);
    client_result_clear(res);
    Mcpb__Request req;
    mc_err rv = get_request(&req, ns, key, opts, res);
    if (rv != MC_OK) {
        return rv;
    }
    struct client_done d = {.fn = get_done, .user.get = cb, .user_arg = arg};
    return client_call_start(c, &req, deadline_ms, &d, res);
}
