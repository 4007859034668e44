/* Administration calls of libmemcoord: moving a shard's leadership and
 * reading one replica's state hash. */
#include "client/internal.h"

mc_err mc_shard_transfer_leader(mc_client *c, uint32_t shard,
                                uint64_t to_node, uint64_t *new_leader,
                                mc_result *res)
{
    ASSERT(c != NULL);
    int64_t deadline_ms = client_deadline(c);
    client_result_clear(res);
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_TRANSFER;
    req.has_shard = true;
    req.shard = shard;
    req.has_to_node = to_node != 0;
    req.to_node = to_node;
    /* A transfer to any node is not idempotent: name the leader it moves
     * away from, so that a retry of one that completed answers OK instead
     * of moving the leadership again. (To a named node it is idempotent.)
     * The leader comes from a fresh map: at most MC_CLIENT_REFRESH_MS_MIN
     * old. Without one, the transfer goes without the guard. */
    if (to_node == 0) {
        client_route_stale(c);
        client_route_refresh(c, deadline_ms);
        req.from_node = client_route_leader(c, shard);
        req.has_from_node = req.from_node != 0;
    }
    Mcpb__Response *r;
    mc_err rv = client_call(c, &req, deadline_ms, &r, res);
    if (rv == MC_OK && new_leader != NULL) {
        *new_leader = r->leader_id;
    }
    if (r != NULL) { /* an answer, an error code included */
        mcpb__response__free_unpacked(r, NULL);
    }
    return rv;
}

mc_err mc_shard_hash(mc_client *c, uint32_t shard, uint64_t *applied_index,
                     uint64_t *state_hash, mc_result *res)
{
    ASSERT(c != NULL);
    int64_t deadline_ms = client_deadline(c);
    client_result_clear(res);
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_HASH;
    req.has_shard = true;
    req.shard = shard;
    Mcpb__Response *r;
    mc_err rv = client_call(c, &req, deadline_ms, &r, res);
    if (rv == MC_OK) {
        *applied_index = r->applied_index;
        *state_hash = r->state_hash;
    }
    if (r != NULL) { /* an answer, an error code included */
        mcpb__response__free_unpacked(r, NULL);
    }
    return rv;
}
