/* Limits of memcoord, each with its reason and unit (DESIGN.md §7). Public
 * limits are in include/memcoord.h; this file adds the internal ones and the
 * compile-time checks that tie them together. Every queue and every loop over
 * outside input takes its bound from here. */
#ifndef MC_BASE_LIMITS_H
#define MC_BASE_LIMITS_H

#include "memcoord.h"

/* Room in one message for everything that is not the value: the request
 * header, the key, the namespace and protobuf tags. */
#define MC_HEADER_BYTES_MAX (64u * 1024u)

/* nng's NNG_OPT_RECVMAXSZ: a larger message resets the connection. The
 * server answers TOO_LARGE for values over the configured limit before this
 * bites, as long as the configured limit is not above the default. */
#define MC_MESSAGE_BYTES_MAX (MC_VALUE_BYTES_MAX + MC_HEADER_BYTES_MAX)

/* Hash slots (DESIGN.md §4), the same count as Redis Cluster. */
#define MC_SLOTS 16384u

/* Shard groups a node may host; the default is 8. */
#define MC_SHARDS_MAX 256u
#define MC_SHARDS_DEFAULT 8u

/* Nodes in one cluster (issue 3: 1..64), and replicas of a shard. */
#define MC_NODES_MAX 64u
#define MC_REPLICAS_DEFAULT 3u

/* A request forwarded between nodes more often than this is answered
 * UNAVAILABLE: leadership is moving faster than requests. */
#define MC_FORWARD_HOPS_MAX 3u

/* Loop threads a node may run. */
#define MC_LOOPS_MAX 16u

/* nng contexts of the front end: the number of requests in flight at once. */
#define MC_FRONTEND_CTX_DEFAULT 256u
#define MC_FRONTEND_CTX_MAX 4096u

/* Requests queued on one loop before the node answers UNAVAILABLE. */
#define MC_LOOP_QUEUE_MAX 65536u

/* Records a list with a LIKE pattern examines in one shard for one page
 * before it answers with the matches it found so far (more = true, and the
 * key where it stopped): a rare pattern must not hold a loop thread, and
 * the raft heartbeats it sends, for a whole namespace. About 10 ms of
 * LMDB reads on these machines. The node's --list-scan-max. */
#define MC_LIST_SCAN_DEFAULT 50000u
#define MC_LIST_SCAN_MAX (1u << 24)

/* Records in one expire command: bounds the work of one apply. */
#define MC_EXPIRE_BATCH_MAX 512u

/* Interval of the leader's expiry sweep. */
#define MC_EXPIRE_SWEEP_MS 1000u

/* Dedupe entries idle for longer than this are dropped by the sweep. A
 * client retries for at most its call timeout, far less than this. */
#define MC_DEDUPE_IDLE_MS (24ull * 3600 * 1000)

/* Default TTLs of the tiers (DESIGN.md §1). */
#define MC_TTL_SHORT_MS (3600ull * 1000)
#define MC_TTL_MID_MS (7ull * 24 * 3600 * 1000)

/* Longest TTL a request may ask for: ten years, so that stamp + ttl never
 * overflows an int64 of milliseconds. */
#define MC_TTL_MS_MAX (10ull * 365 * 24 * 3600 * 1000)

/* The watch event ring of a shard (shard.h): the events kept, by default,
 * before the oldest are dropped. A watcher may fall this many events of its
 * shard behind before it gets COMPACTED; 100k events of a few hundred bytes
 * are tens of MiB, which every snapshot carries. `--watch-ring N` changes
 * it (the same on every node, or replicas keep rings of different length
 * and their state hashes differ). */
#define MC_WATCH_RING_EVENTS_DEFAULT 100000u
#define MC_WATCH_RING_EVENTS_MAX 10000000u
/* ... and the bytes they may take (keys and values), whichever bound comes
 * first: values may be 1 MiB each, and raft holds a snapshot in memory and
 * sends it in one message (DEPS-NOTES.md, raft 5). */
#define MC_WATCH_RING_BYTES_MAX (32ull << 20)

/* One watch answer carries at most this many events and bytes of keys and
 * values, plus the rest of the last revision it started (the events of one
 * raft entry travel together, so a resume point is always a revision):
 * far below the front end's reply limit. */
#define MC_WATCH_REPLY_EVENTS_MAX 1000u
#define MC_WATCH_REPLY_BYTES_MAX (4u << 20)

/* LMDB map size of one shard: address space, not disk. */
#define MC_SHARD_MAP_BYTES (4ull << 30)

/* Raft: log entries between snapshots. Small thresholds stall the loop in
 * raft_uv's io_destroy (DEPS-NOTES.md, raft 4). */
#define MC_SNAPSHOT_THRESHOLD_DEFAULT 16384u
#define MC_SNAPSHOT_TRAILING_DEFAULT 2048u

/* Length of a path the node builds under its data folder. */
#define MC_PATH_BYTES_MAX 1024u

_Static_assert(MC_VALUE_BYTES_MAX + MC_HEADER_BYTES_MAX <= MC_MESSAGE_BYTES_MAX,
               "a maximal value must fit in one message");
_Static_assert(MC_KEY_BYTES_MAX + MC_NS_BYTES_MAX < MC_HEADER_BYTES_MAX / 2,
               "key and namespace must fit in the header room");
_Static_assert(MC_SHARDS_MAX <= MC_SLOTS, "every shard needs a slot");
_Static_assert(MC_WATCH_RING_EVENTS_DEFAULT <= MC_WATCH_RING_EVENTS_MAX,
               "the default ring is a valid ring");
_Static_assert(MC_WATCH_RING_BYTES_MAX < MC_SHARD_MAP_BYTES / 8,
               "the ring is a small part of a shard's store");
_Static_assert(MC_LIST_PAGE_MAX * (MC_KEY_BYTES_MAX + 64u) <
                   64u * MC_MESSAGE_BYTES_MAX,
               "a keys-only page of maximal keys stays bounded");

#endif
