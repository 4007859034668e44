/* replication: where shard replicas live and who should lead them.
 *
 * This first version places statically: every node computes the same map
 * from the same member list, so no agreement is needed to bootstrap. With
 * members sorted by id as m[0..M-1], shard s has replicas
 * m[(s + k) mod M] for k = 0..R-1, and its preferred leader is the first of
 * them, so replicas and leaders spread evenly. Moving replicas when members
 * change (through the meta group) comes later. */
#ifndef MC_REPLICATION_H
#define MC_REPLICATION_H

#include <stdint.h>

#include "base/base.h"

/* Node ids of shard's replicas into out[0..min(replicas, n_members)), the
 * preferred leader first. ids must be sorted ascending and distinct.
 * Returns the number written. */
uint32_t repl_placement(const uint64_t *ids, uint32_t n_members,
                        uint32_t shard, uint32_t replicas, uint64_t *out);

/* True when node id holds a replica of shard. */
bool repl_hosts(const uint64_t *ids, uint32_t n_members, uint32_t shard,
                uint32_t replicas, uint64_t id);

#endif
