/* Placement and the cluster map: see replication/replication.h. */
#include <stdio.h>
#include <string.h>

#include "replication/replication.h"

void meta_map_build(const struct meta_member *members, uint32_t n_members,
                    uint32_t shard_count, uint32_t replicas,
                    struct meta_map *out)
{
    ASSERT(n_members > 0 && n_members <= MC_NODES_MAX);
    ASSERT(shard_count > 0 && shard_count <= MC_SHARDS_MAX);
    ASSERT(replicas > 0 && replicas <= MC_REPLICAS_MAX);
    memset(out, 0, sizeof *out);
    out->shard_count = shard_count;
    out->replicas = replicas < n_members ? replicas : n_members;
    out->n_members = n_members;
    memcpy(out->members, members, n_members * sizeof *members);
    uint32_t led[MC_NODES_MAX] = {0};
    for (uint32_t s = 0; s < shard_count; s++) {
        /* Replica j of the whole map (j = s * R + k) goes to member
         * j mod M: every member holds floor or ceil of S * R / M. */
        uint32_t idx[MC_REPLICAS_MAX], lead = 0;
        for (uint32_t k = 0; k < out->replicas; k++) {
            idx[k] = (s * out->replicas + k) % n_members;
            if (led[idx[k]] < led[idx[lead]]) {
                lead = k;
            }
        }
        /* The replica that leads fewest so far leads this shard. */
        led[idx[lead]]++;
        out->replica_ids[s][0] = members[idx[lead]].id;
        for (uint32_t k = 0, at = 1; k < out->replicas; k++) {
            if (k != lead) {
                out->replica_ids[s][at++] = members[idx[k]].id;
            }
        }
    }
}

const struct meta_member *meta_map_member(const struct meta_map *m,
                                          uint64_t id)
{
    for (uint32_t i = 0; i < m->n_members; i++) {
        if (m->members[i].id == id) {
            return &m->members[i];
        }
    }
    return NULL;
}

bool meta_map_hosts(const struct meta_map *m, uint32_t shard, uint64_t id)
{
    ASSERT(shard < m->shard_count);
    for (uint32_t k = 0; k < m->replicas; k++) {
        if (m->replica_ids[shard][k] == id) {
            return true;
        }
    }
    return false;
}

void meta_member_to_pb(const struct meta_member *member, Mcpb__Member *pm,
                       char *addr, size_t addr_len)
{
    mcpb__member__init(pm);
    pm->id = member->id;
    pm->url = (char *)member->url;
    meta_member_raft_addr(member, META_GROUP, addr, addr_len);
    pm->raft_addr = addr;
}

void meta_member_raft_addr(const struct meta_member *member, uint32_t group,
                           char *out, size_t out_len)
{
    uint32_t port = member->raft_port + (group == META_GROUP ? 0 : 1 + group);
    snprintf(out, out_len, "%s:%u", member->raft_ip, port & 0xffffu);
}
