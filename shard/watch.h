/* The watch event ring of a shard, private to shard/: how events are
 * written by apply, trimmed, validated in snapshots, and read by watches.
 * The public half (what a watch reads) is in shard.h.
 *
 * events[u64 BE revision][u16 BE seq] = format 2 (WATCH_EVENT_FORMAT):
 *   u8     format      2
 *   u8     type        mc_event_type
 *   u8     tier        MC_TIER_SHORT..MC_TIER_LONG
 *   u8     ns_len      1..MC_NS_BYTES_MAX
 *   varint key_len     1..MC_KEY_BYTES_MAX
 *   varint version
 *   varint created     zigzag(revision - create_rev)
 *   varint updated_at
 *   varint expires     0 = never; else zigzag(expires_at - updated_at) + 1
 *   ns, key, value     value: the rest (put and promote only)
 * (varints as in record.h: a header of 14 to 19 bytes where format 1's
 * was 40, in a ring of 100 000 events per shard). Format 1, of earlier
 * builds, is still read, little-endian: u8 format (1), u8 type, u8 tier,
 * u8 ns_len, u16 key_len, u16 zero, u64 version, u64 create_rev, i64
 * expires_at, i64 updated_at, ns, key, value.
 *
 * The control entry sits under revision 0, seq 0 (no raft entry has index
 * 0, so no event does), and rides in snapshots and the state hash with the
 * events:
 *
 * events[0 x 10] = u64 compact_rev, u64 count, u64 bytes (little-endian)
 *
 * count and bytes are the events (keys + values) the ring holds now, so
 * that trimming needs no scan. */
#ifndef MC_SHARD_WATCH_H
#define MC_SHARD_WATCH_H

#include "shard/record.h"

#define WATCH_EVENT_FORMAT 2u
#define WATCH_EVENT_FORMAT_FIXED 1u
#define WATCH_EVENT_FIXED_HEADER_BYTES 40u
/* The longest format 2 header: four bytes and five varints. */
#define WATCH_EVENT_HEADER_BYTES_MAX (4u + 5u * BYTES_VARINT_MAX)
#define WATCH_KEY_BYTES 10u
#define WATCH_CONTROL_BYTES 24u

/* One entry writes at most this many events: seq is a u16. An expire
 * command of MC_EXPIRE_BATCH_MAX items is the largest today. */
#define WATCH_SEQ_MAX UINT16_MAX
_Static_assert(MC_EXPIRE_BATCH_MAX < WATCH_SEQ_MAX, "seq fits a u16");
_Static_assert(MC_NS_BYTES_MAX <= UINT8_MAX, "ns_len is a u8");
_Static_assert(MC_KEY_BYTES_MAX <= UINT16_MAX, "key_len is a u16");

/* Write the event of a change of record r (rkey is ns '\0' key; value is
 * read for put and promote only) at revision rev, with the next seq of
 * rev, in the write txn; then drop the oldest events beyond the ring's
 * bounds. Deterministic: the same state and calls give the same ring.
 * Errors: UNAVAILABLE. */
mc_err watch_emit(struct shard *s, uint64_t rev, uint8_t type,
                  const struct record *r);

/* Whether k/v may be an entry of the events DB (snapshot checks). */
bool watch_entry_valid(const uint8_t *k, size_t k_len, const uint8_t *v,
                       size_t v_len);

/* A snapshot's events section, added up entry by entry (each one valid
 * by watch_entry_valid), to check the control entry against the events. */
struct watch_tally {
    bool has_control;
    uint64_t control_compact_rev, control_count, control_bytes;
    uint64_t count, bytes, min_rev, max_rev;
};
void watch_tally_add(struct watch_tally *t, const uint8_t *k, size_t k_len,
                     const uint8_t *v, size_t v_len);
/* The control entry says what the events are, and no revision is past the
 * snapshot's applied index; every event left is at or above the
 * compaction point (events are dropped oldest first). */
bool watch_tally_ok(const struct watch_tally *t, uint64_t index);

/* Write the control entry of an empty ring whose history up to
 * compact_rev is unknown (a snapshot of a format without a ring). In the
 * write txn. Errors: UNAVAILABLE. */
mc_err watch_ring_reset(struct shard *s, uint64_t compact_rev);

#endif
