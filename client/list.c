/* list of libmemcoord: one sorted page of a namespace across all shards,
 * by prefix or by LIKE pattern.
 *
 * Keys are spread over the shards by hash, so one page asks every shard
 * for up to `limit` keys after the cursor and merges the answers. Taking
 * the first `limit` keys of the merge is exact: a key a shard held back is
 * greater than the `limit` keys that shard returned, so at least `limit`
 * keys of the merge sort before it and it cannot belong in this page. The
 * next page starts after the last key returned, so keys cut from this
 * merge are asked for again. A shard that holds keys back vouches only up
 * to some key (page_bound), and the page ends at the smallest such key.
 *
 * A pattern list may hold keys back without returning any: a shard that
 * examined its scan budget without finding the page's matches says where
 * it stopped (scanned_to). The page then ends there, possibly empty but
 * with more set and that key as its cursor, and the next page asks every
 * shard again from it: no key is skipped, and the cursor always moves.
 *
 * The shard count is the cluster's, from the shard map (route.c), which a
 * node's status fills. A node that answers INVALID_ARGUMENT may have been
 * asked for a shard it does not have (the count changed): the count is
 * asked again, and when it did change, the page is fetched again. Shards
 * are asked one after another, each straight at its leader (or, for a
 * serializable list, at a replica the caller listed; call.c); with the
 * default 8 shards that costs a few round trips of ~0.1 ms each. */
#include <stdlib.h>
#include <string.h>

#include "client/internal.h"

void mc_page_free(mc_page *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        client_record_fini(&p->records[i]);
    }
    mc_free(p->records);
    mc_free(p->next_cursor);
    mc_free(p);
}

/* Byte-wise order, a shorter key before its extensions: the order of the
 * shards' stores. */
static int key_cmp(const void *a, const void *b)
{
    const Mcpb__Record *x = *(const Mcpb__Record *const *)a;
    const Mcpb__Record *y = *(const Mcpb__Record *const *)b;
    size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int d = n > 0 ? memcmp(x->key.data, y->key.data, n) : 0;
    if (d != 0) {
        return d;
    }
    return (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

struct shard_answers {
    Mcpb__Response **r; /* one answer per shard */
    uint32_t n;
};

static void answers_fini(struct shard_answers *a)
{
    for (uint32_t i = 0; i < a->n; i++) {
        if (a->r[i] != NULL) {
            mcpb__response__free_unpacked(a->r[i], NULL);
        }
    }
    mc_free(a->r);
}

/* Ask every one of n_shards shards for its part of the page. */
static mc_err answers_fetch(mc_client *c, Mcpb__Request *req,
                            uint32_t n_shards, int64_t deadline_ms,
                            struct shard_answers *a, mc_result *res)
{
    a->n = 0;
    a->r = mc_calloc(n_shards, sizeof *a->r);
    if (a->r == NULL) {
        return client_result_set(res, MC_INTERNAL, "out of memory");
    }
    a->n = n_shards;
    for (uint32_t s = 0; s < n_shards; s++) {
        req->has_shard = true;
        req->shard = s;
        mc_err rv = client_call(c, req, deadline_ms, &a->r[s], res);
        if (rv != MC_OK) {
            return rv;
        }
    }
    return MC_OK;
}

static int bytes_order(const ProtobufCBinaryData *x,
                       const ProtobufCBinaryData *y)
{
    size_t n = x->len < y->len ? x->len : y->len;
    int d = n > 0 ? memcmp(x->data, y->data, n) : 0;
    if (d != 0) {
        return d;
    }
    return (x->len > y->len) - (x->len < y->len);
}

/* The key up to which an answer that holds keys back (more) vouches for
 * its shard: every key of the shard up to it that belongs in the page was
 * returned. That is where a pattern list stopped scanning (scanned_to, at
 * or after its last record), else its last record: a shard may stop
 * before its limit (a reply is cut at a size bound). NULL when the answer
 * vouches for nothing, which no node sends. */
static const ProtobufCBinaryData *answer_vouches_to(const Mcpb__Response *r)
{
    if (r->has_scanned_to) {
        return &r->scanned_to;
    }
    if (r->n_records > 0) {
        return &r->records[r->n_records - 1]->key;
    }
    return NULL;
}

/* The smallest key any answer that holds keys back vouches to: merged
 * keys past it may have neighbours not fetched yet, so the page ends
 * there. *bound = NULL when no answer holds keys back. */
static mc_err page_bound(const struct shard_answers *a,
                         const ProtobufCBinaryData **bound, mc_result *res)
{
    *bound = NULL;
    for (uint32_t s = 0; s < a->n; s++) {
        const Mcpb__Response *r = a->r[s];
        if (!r->more) {
            continue;
        }
        const ProtobufCBinaryData *v = answer_vouches_to(r);
        if (v == NULL) {
            return client_result_set(res, MC_INTERNAL,
                                     "shard %u answered more keys without "
                                     "saying where they start", s);
        }
        if (*bound == NULL || bytes_order(v, *bound) < 0) {
            *bound = v;
        }
    }
    return MC_OK;
}

/* Merge the answers into a new page of at most limit records: the merged
 * keys up to the bound (page_bound). The next page starts after the last
 * of them when the limit cut the page, else after the bound itself, which
 * may be a key that no shard returned (where a pattern list stopped):
 * then a page may even be empty and still say more. after is the cursor
 * of this page (NULL for the first): a next cursor must be past it, or a
 * caller's paging loop would never end. */
static mc_err page_merge(const struct shard_answers *a, uint32_t limit,
                         const char *after, mc_page **out, mc_result *res)
{
    const ProtobufCBinaryData *bound;
    mc_err rv = page_bound(a, &bound, res);
    if (rv != MC_OK) {
        return rv;
    }
    size_t total = 0;
    for (uint32_t s = 0; s < a->n; s++) {
        total += a->r[s]->n_records;
    }
    rv = MC_INTERNAL;
    const Mcpb__Record **all = mc_malloc((total > 0 ? total : 1) * sizeof *all);
    if (all == NULL) {
        goto err;
    }
    size_t k = 0;
    for (uint32_t s = 0; s < a->n; s++) {
        for (size_t i = 0; i < a->r[s]->n_records; i++) {
            all[k++] = a->r[s]->records[i];
        }
    }
    ASSERT(k == total);
    qsort(all, total, sizeof *all, key_cmp);
    size_t within = total; /* merged keys up to the bound */
    while (bound != NULL && within > 0 &&
           bytes_order(&all[within - 1]->key, bound) > 0) {
        within--;
    }
    size_t n = within < limit ? within : limit;
    mc_page *p = mc_calloc(1, sizeof *p);
    if (p == NULL) {
        goto err_after_all;
    }
    p->records = mc_calloc(n > 0 ? n : 1, sizeof *p->records);
    if (p->records == NULL) {
        goto err_after_page;
    }
    for (; p->n < n; p->n++) {
        if (client_record_init(&p->records[p->n], all[p->n]) != MC_OK) {
            goto err_after_page;
        }
    }
    const ProtobufCBinaryData *next = NULL;
    if (n < within) {
        next = &all[n - 1]->key;
    } else if (bound != NULL) {
        next = bound;
    }
    p->more = next != NULL;
    if (p->more) {
        p->next_cursor = mc_strndup(next->len > 0 ? (const char *)next->data
                                                  : "",
                                    next->len);
        if (p->next_cursor == NULL) {
            goto err_after_page;
        }
        if (after != NULL && strcmp(p->next_cursor, after) <= 0) {
            mc_page_free(p);
            mc_free(all);
            return client_result_set(res, MC_INTERNAL,
                                     "list page did not move past its "
                                     "cursor");
        }
    }
    mc_free(all);
    *out = p;
    return MC_OK;

err_after_page:
    mc_page_free(p);
err_after_all:
    mc_free(all);
err:
    ASSERT(rv != MC_OK);
    return client_result_set(res, rv, "out of memory");
}

static mc_err list_request(Mcpb__Request *req, const char *ns,
                           const char *prefix, const mc_list_opts *opts,
                           mc_result *res)
{
    if (ns == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT,
                                 "namespace is missing");
    }
    req->op = MCPB__OP__OP_LIST;
    req->has_ns = true;
    req->ns.data = (uint8_t *)ns;
    req->ns.len = strlen(ns);
    req->has_prefix = true;
    req->prefix.data = (uint8_t *)(prefix != NULL ? prefix : "");
    req->prefix.len = prefix != NULL ? strlen(prefix) : 0;
    if (opts->pattern != NULL) {
        req->has_pattern = true;
        req->pattern.data = (uint8_t *)opts->pattern;
        req->pattern.len = strlen(opts->pattern);
    }
    if (opts->start_after != NULL) {
        req->has_start_after = true;
        req->start_after.data = (uint8_t *)opts->start_after;
        req->start_after.len = strlen(opts->start_after);
    }
    req->has_limit = true;
    req->limit = opts->limit > 0 ? opts->limit : MC_CLIENT_LIST_LIMIT_DEFAULT;
    if (opts->keys_only) {
        req->has_keys_only = true;
        req->keys_only = true;
    }
    if (opts->serializable) {
        req->has_serializable = true;
        req->serializable = true;
    }
    char err[sizeof res->message];
    mc_err rv = proto_request_check(req, MC_VALUE_BYTES_MAX, err, sizeof err);
    if (rv != MC_OK) {
        return client_result_set(res, rv, "%s", err);
    }
    return MC_OK;
}

mc_err mc_list(mc_client *c, const char *ns, const char *prefix,
               const mc_list_opts *opts, mc_page **out, mc_result *res)
{
    ASSERT(c != NULL);
    int64_t deadline_ms = client_deadline(c);
    client_result_clear(res);
    if (out == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT, "out is NULL");
    }
    *out = NULL;
    static const mc_list_opts defaults = {0};
    if (opts == NULL) {
        opts = &defaults;
    }
    Mcpb__Request req = MCPB__REQUEST__INIT;
    mc_err rv = list_request(&req, ns, prefix, opts, res);
    if (rv != MC_OK) {
        return rv;
    }
    uint32_t n_shards;
    rv = client_shard_count(c, deadline_ms, &n_shards, res);
    if (rv != MC_OK) {
        return rv;
    }
    for (unsigned round = 0;; round++) {
        struct shard_answers a;
        rv = answers_fetch(c, &req, n_shards, deadline_ms, &a, res);
        if (rv == MC_OK) {
            rv = page_merge(&a, req.limit, opts->start_after, out, res);
        }
        answers_fini(&a);
        if (rv != MC_INVALID_ARGUMENT || round == MC_CLIENT_SHARD_REFRESH_MAX) {
            return rv;
        }
        uint32_t n_now;
        mc_result ignored;
        if (client_shard_count_refresh(c, deadline_ms, &n_now, &ignored) !=
                MC_OK ||
            n_now == n_shards) {
            return rv; /* the shard count was not the problem */
        }
        n_shards = n_now;
    }
}
