/* The frames of the raft transport (mux.c): how a raft message of one
 * group travels on a connection that carries the messages of every group
 * of a loop. Private to consensus/ (and its tests).
 *
 * A connection starts with a hello from the dialer, then carries frames
 * one after the other, every integer little-endian:
 *
 *   hello  [u64 MUX_MAGIC][u64 sender node id][u32 lane][u32 lanes]
 *          [u64 0]                                             32 bytes
 *   frame  [u64 len of what follows][u32 shard][u16 raft type][u16 0]
 *          [the type's fixed fields][its variable part]
 *
 * The sender id sits at bytes 8..15 of the hello as in raft_uv's, which is
 * where the fault suite's proxy (tests/fault/proxy.c) reads it.
 *
 *   APPEND_ENTRIES         term, prev_log_index, prev_log_term,
 *                          leader_commit (u64 each), n (u32), 0 (u32),
 *                          n x [term u64][type u16][0 u16][len u32],
 *                          then each entry's data padded to 8 bytes
 *   APPEND_ENTRIES_RESULT  term, rejected, last_log_index
 *   REQUEST_VOTE           term, candidate_id, last_log_index,
 *                          last_log_term, [disrupt_leader u8][pre_vote u8]
 *                          [0 x6]
 *   REQUEST_VOTE_RESULT    term, [vote_granted u8][pre_vote u8][0 x6]
 *   INSTALL_SNAPSHOT       term, last_index, last_term, conf_index,
 *                          servers (u32), 0 (u32), servers x [id u64]
 *                          [role u32][address length u32][address padded
 *                          to 8], data length (u64), data
 *   TIMEOUT_NOW            term, last_log_index, last_log_term
 *
 * Decoding trusts nothing: every length is checked against the frame, and
 * a frame that does not decode is an error (the connection is dropped),
 * never a crash. */
#ifndef MC_CONSENSUS_MUX_WIRE_H
#define MC_CONSENSUS_MUX_WIRE_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The bytes "MCMUX01" and the version byte 1, read little-endian. */
#define MUX_MAGIC 0x01313058554d434dull
#define MUX_HELLO_BYTES 32u
/* The u64 length that starts a frame. */
#define MUX_LEN_BYTES 8u
#define MUX_FRAME_HEAD_BYTES 8u /* shard, type, 0 */
/* The largest frame accepted: a snapshot is one message (DEPS-NOTES.md,
 * raft 5) of at most a shard's LMDB map. */
#define MUX_FRAME_MAX (4ull << 30)
/* Addresses in a snapshot's configuration. */
#define MUX_ADDRESS_MAX 255u

/* A growable byte buffer. */
struct mux_buf {
    uint8_t *data;
    size_t len, cap;
};

void mux_buf_free(struct mux_buf *b);
/* Room for n more bytes; false when out of memory. */
bool mux_buf_reserve(struct mux_buf *b, size_t n);

struct mux_hello {
    uint64_t node_id;
    uint32_t lane, lanes;
};

void mux_hello_encode(const struct mux_hello *h, uint8_t out[MUX_HELLO_BYTES]);
/* False when the bytes are not a hello. */
bool mux_hello_decode(const uint8_t in[MUX_HELLO_BYTES], struct mux_hello *h);

/* Append the frame of m (a message of group shard) to out. Returns 0,
 * RAFT_NOMEM, or RAFT_MALFORMED for a message that cannot be framed (an
 * unknown type, an address over MUX_ADDRESS_MAX). On failure out is as it
 * was. */
int mux_frame_encode(uint32_t shard, const struct raft_message *m,
                     struct mux_buf *out);

/* Decode the frame body at p[0..len) (what follows its u64 length) into
 * *shard and *m. On 0 the caller owns what raft takes ownership of at
 * recv: the entries array and their one batch of an AppendEntries, the
 * data and the configuration of an InstallSnapshot; m->server_id and
 * m->server_address are left for the caller. Returns RAFT_MALFORMED or
 * RAFT_NOMEM, with nothing allocated. */
int mux_frame_decode(const uint8_t *p, size_t len, uint32_t *shard,
                     struct raft_message *m);

/* Free what a decoded message owns, when raft never got it. */
void mux_message_discard(struct raft_message *m);

#endif
