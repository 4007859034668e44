/* Static placement: see replication/replication.h. */
#include "replication/replication.h"

uint32_t repl_placement(const uint64_t *ids, uint32_t n_members,
                        uint32_t shard, uint32_t replicas, uint64_t *out)
{
    ASSERT(n_members > 0);
    ASSERT(replicas > 0);
    uint32_t n = replicas < n_members ? replicas : n_members;
    for (uint32_t k = 0; k < n; k++) {
        out[k] = ids[(shard + k) % n_members];
    }
    return n;
}

bool repl_hosts(const uint64_t *ids, uint32_t n_members, uint32_t shard,
                uint32_t replicas, uint64_t id)
{
    uint64_t out[MC_NODES_MAX];
    uint32_t n = repl_placement(ids, n_members, shard, replicas, out);
    for (uint32_t k = 0; k < n; k++) {
        if (out[k] == id) {
            return true;
        }
    }
    return false;
}
