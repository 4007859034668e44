/* replication: where shard replicas live and who should lead them, and
 * the meta group's state machine that records it.
 *
 * Placement: with members sorted by id as m[0..M-1], shard s has replicas
 * m[(s * R + k) mod M] for k = 0..R-1, so every member holds the floor or
 * the ceiling of S * R / M replicas; its preferred leader, listed first, is
 * the one of them that leads fewest shards so far, so leaders spread as
 * evenly (at most the ceiling of S / M each).
 *
 * The meta group is a raft group over every node: the first
 * META_VOTERS_MAX members by id vote, the others are standbys (they
 * receive the log but are not part of any quorum), so every node holds the
 * map without asking for it. Its state is the cluster map: the members,
 * the shard count and each shard's replicas. The first meta leader
 * proposes the map placed from --initial-cluster (META_OP_INIT); every node
 * bootstraps its shard groups from the map once it is applied. The state is
 * kept in one small file, rewritten on every change, so a restarted node
 * opens its shards from its own disk without waiting for a meta quorum.
 *
 *   NO MAP -> MAPPED   [META_OP_INIT applied, or a snapshot with a map
 *                       restored]; a later INIT is answered, not applied
 *
 * Thread: meta_fsm's callbacks run on the meta group's loop thread;
 * meta_map_get and meta_map_wait on any thread. */
#ifndef MC_REPLICATION_H
#define MC_REPLICATION_H

#include <stdint.h>

#include <raft.h>

#include "base/base.h"
#include "proto/proto.h"

/* ---- the cluster map ---- */

/* The meta group votes on at most this many nodes, as etcd recommends:
 * more voters make every change slower and add no safety worth having. */
#define META_VOTERS_MAX 5u

/* A MetaCommand's op. */
enum { META_OP_INIT = 1 };

struct meta_member {
    uint64_t id;
    char url[256];      /* client address */
    char raft_ip[16];   /* numeric IPv4 */
    uint32_t raft_port; /* the meta group's; the shards of loop k use
                           raft_port + 1 + k */
};

struct meta_map {
    uint32_t shard_count; /* 0: no map yet */
    uint32_t replicas;    /* per shard, capped at n_members */
    uint32_t n_members;
    struct meta_member members[MC_NODES_MAX]; /* sorted by id */
    uint64_t replica_ids[MC_SHARDS_MAX][MC_REPLICAS_MAX]; /* leader first */
};

/* Place shard_count shards of replicas each over members (sorted by id,
 * distinct) into *out. */
void meta_map_build(const struct meta_member *members, uint32_t n_members,
                    uint32_t shard_count, uint32_t replicas,
                    struct meta_map *out);

/* The member with this id, or NULL. */
const struct meta_member *meta_map_member(const struct meta_map *m,
                                          uint64_t id);

/* True when node id holds a replica of shard. */
bool meta_map_hosts(const struct meta_map *m, uint32_t shard, uint64_t id);

/* The raft address a.b.c.d:port of member's replica of group: shard s, or
 * META_GROUP for the meta group. */
#define META_GROUP UINT32_MAX
void meta_member_raft_addr(const struct meta_member *member, uint32_t group,
                           char *out, size_t out_len);

/* The wire form of member (its meta group raft address) into *pm, whose
 * strings point into member and addr (at least 24 bytes). */
void meta_member_to_pb(const struct meta_member *member, Mcpb__Member *pm,
                       char *addr, size_t addr_len);

/* ---- the meta group's state machine ---- */
struct meta;

/* Open (creating the folder if needed) the state kept in dir.
 * Errors: INTERNAL (I/O, memory) or INVALID_ARGUMENT (a damaged state
 * file), with a sentence in err. */
mc_err meta_open(const char *dir, struct meta **out, char *err,
                 size_t err_len);
void meta_close(struct meta *m);

/* The raft_fsm of m, for the raft whose entries it applies. raft must stay
 * valid while m is used; raft keeps a pointer to the returned fsm. */
struct raft_fsm *meta_fsm(struct meta *m, struct raft *raft);

/* Copy the map into *out (unless out is NULL); false, and *out untouched,
 * when there is none. */
bool meta_map_get(struct meta *m, struct meta_map *out);

/* Wait up to timeout_ms for a map; true when there is one. */
bool meta_map_wait(struct meta *m, int timeout_ms);

/* Frame META_OP_INIT of map, stamped stamp_ms, into a buffer from alloc.
 * Errors: INTERNAL (memory). */
mc_err meta_init_frame(const struct meta_map *map, int64_t stamp_ms,
                       void *(*alloc)(size_t), void **frame, size_t *len);

#endif
