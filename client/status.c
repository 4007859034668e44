/* status of libmemcoord: a node's view of itself and its shards, and the
 * shard count that list needs. Every status that passes through here also
 * feeds the shard map (route.c). */
#include <string.h>

#include "client/internal.h"

void mc_status_free(mc_status *s)
{
    if (s != NULL) {
        mc_free(s->version);
        mc_free(s->listen);
        mc_free(s->shards);
        for (size_t i = 0; i < s->n_members; i++) {
            mc_free(s->members[i].url);
            mc_free(s->members[i].raft_addr);
        }
        mc_free(s->members);
        mc_free(s);
    }
}

static void shard_copy(mc_shard_status *d, const Mcpb__ShardStatus *w)
{
    memset(d, 0, sizeof *d);
    d->id = w->id;
    d->slot_lo = w->slot_lo;
    d->slot_hi = w->slot_hi;
    d->leader_id = w->leader_id;
    d->term = w->term;
    d->applied_index = w->applied_index;
    d->last_index = w->last_index;
    /* The wire lists short, mid, long; the API indexes by mc_tier. */
    for (size_t t = 0; t < w->n_records && t < MC_TIER_LONG; t++) {
        d->records[MC_TIER_SHORT + t] = w->records[t];
    }
    d->applied_entries = w->applied_entries;
    d->skipped_entries = w->skipped_entries;
    d->is_leader = w->is_leader;
    for (size_t k = 0; k < w->n_replicas && k < MC_REPLICAS_MAX; k++) {
        d->replicas[d->n_replicas++] = w->replicas[k];
    }
}

/* Shards in the cluster: list fans out over all of them, not only over
 * those the answering node hosts. */
static uint32_t status_shard_count(const Mcpb__NodeStatus *w)
{
    return w->has_shard_count ? w->shard_count : (uint32_t)w->n_shards;
}

static mc_err members_copy(const Mcpb__NodeStatus *w, mc_status *s)
{
    s->members = mc_calloc(w->n_members > 0 ? w->n_members : 1,
                           sizeof *s->members);
    if (s->members == NULL) {
        return MC_INTERNAL;
    }
    for (size_t i = 0; i < w->n_members; i++) {
        const Mcpb__Member *m = w->members[i];
        mc_member *d = &s->members[s->n_members++];
        d->id = m->id;
        d->url = mc_strdup(m->url != NULL ? m->url : "");
        d->raft_addr = mc_strdup(m->raft_addr != NULL ? m->raft_addr : "");
        if (d->url == NULL || d->raft_addr == NULL) {
            return MC_INTERNAL;
        }
    }
    return MC_OK;
}

static mc_err status_copy(const Mcpb__NodeStatus *w, mc_status **out)
{
    if (w->n_shards > MC_SHARDS_MAX) {
        return MC_INTERNAL;
    }
    mc_status *s = mc_calloc(1, sizeof *s);
    if (s == NULL) {
        return MC_INTERNAL;
    }
    s->node_id = w->node_id;
    s->uptime_ms = w->uptime_ms;
    s->meta_leader_id = w->meta_leader;
    s->meta_term = w->meta_term;
    s->meta_voter = w->meta_voter;
    s->version = mc_strdup(w->version != NULL ? w->version : "");
    s->listen = mc_strdup(w->listen != NULL ? w->listen : "");
    s->n_shards = w->n_shards;
    s->shards = mc_calloc(w->n_shards > 0 ? w->n_shards : 1,
                          sizeof *s->shards);
    if (s->version == NULL || s->listen == NULL || s->shards == NULL) {
        mc_status_free(s);
        return MC_INTERNAL;
    }
    for (size_t i = 0; i < w->n_shards; i++) {
        shard_copy(&s->shards[i], w->shards[i]);
    }
    s->shard_count = status_shard_count(w);
    if (w->n_members > MC_NODES_MAX || members_copy(w, s) != MC_OK) {
        mc_status_free(s);
        return MC_INTERNAL;
    }
    *out = s;
    return MC_OK;
}

static mc_err status_call(mc_client *c, int64_t deadline_ms,
                          Mcpb__Response **out, mc_result *res)
{
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_STATUS;
    mc_err rv = client_call(c, &req, deadline_ms, out, res);
    if (rv == MC_OK && (*out)->status == NULL) {
        rv = client_result_set(res, MC_INTERNAL,
                               "the node answered status without a status");
    }
    if (rv == MC_OK && (*out)->status->n_shards > MC_SHARDS_MAX) {
        rv = client_result_set(res, MC_INTERNAL,
                               "the node reports %zu shards, more than %u",
                               (*out)->status->n_shards, MC_SHARDS_MAX);
    }
    if (rv != MC_OK && *out != NULL) {
        mcpb__response__free_unpacked(*out, NULL);
        *out = NULL;
    }
    return rv;
}

mc_err mc_status_get(mc_client *c, mc_status **out, mc_result *res)
{
    ASSERT(c != NULL);
    int64_t deadline_ms = client_deadline(c);
    client_result_clear(res);
    if (out == NULL) {
        return client_result_set(res, MC_INVALID_ARGUMENT, "out is NULL");
    }
    *out = NULL;
    Mcpb__Response *r;
    mc_err rv = status_call(c, deadline_ms, &r, res);
    if (rv != MC_OK) {
        return rv;
    }
    client_route_learn_status(c, CLIENT_EP_NONE, r->status);
    rv = status_copy(r->status, out);
    mcpb__response__free_unpacked(r, NULL);
    if (rv != MC_OK) {
        return client_result_set(res, rv, "out of memory");
    }
    return MC_OK;
}

mc_err client_shard_count_refresh(mc_client *c, int64_t deadline_ms,
                                  uint32_t *out, mc_result *res)
{
    Mcpb__Response *r;
    mc_err rv = status_call(c, deadline_ms, &r, res);
    if (rv != MC_OK) {
        return rv;
    }
    uint32_t n = status_shard_count(r->status);
    client_route_learn_status(c, CLIENT_EP_NONE, r->status);
    mcpb__response__free_unpacked(r, NULL);
    if (n == 0) {
        /* A node that is still starting knows no shards yet. */
        return client_result_set(res, MC_UNAVAILABLE,
                                 "the node reports no shards yet");
    }
    *out = n;
    return MC_OK;
}

mc_err client_shard_count(mc_client *c, int64_t deadline_ms, uint32_t *out,
                          mc_result *res)
{
    uint32_t n = client_route_shard_count(c);
    if (n > 0) {
        *out = n;
        return MC_OK;
    }
    return client_shard_count_refresh(c, deadline_ms, out, res);
}
