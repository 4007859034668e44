/* proto: the messages of memcoord and their codec.
 *
 * Every message, on the wire and in the raft log, travels in one frame:
 *
 *     [u32 body_len][u32 kind][protobuf body][zero pad to a multiple of 8]
 *
 * both u32 little-endian; kind = PROTO_MAGIC << 16 | type. The length makes
 * truncation visible (protobuf-c parses some truncated buffers as valid
 * messages), the padding keeps raft 0.15 entries at a multiple of 8 bytes
 * (DEPS-NOTES.md, raft 1), and the magic rejects stray bytes early.
 *
 * This module also validates what protobuf-c does not: namespaces, keys
 * (UTF-8, no NUL), value sizes, tiers and TTLs. It does no I/O. */
#ifndef MC_PROTO_H
#define MC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "memcoord.pb-c.h"

#define PROTO_MAGIC 0x4d43u /* "MC" */
#define PROTO_FRAME_HEADER_BYTES 8u

enum proto_type {
    PROTO_REQUEST = 1,
    PROTO_RESPONSE = 2,
    PROTO_COMMAND = 3,
    PROTO_META_STATE = 4,   /* the meta group's state file and snapshot */
    PROTO_META_COMMAND = 5, /* a meta group log entry */
};

/* Bytes a frame of body_len needs: header + body, padded to 8. */
size_t proto_frame_size(size_t body_len);

/* Encode msg (a protobuf-c message) as a frame of the given type into a
 * buffer from alloc (NULL = mc_malloc). The padding is zeroed.
 * On MC_OK the caller owns *out (of *out_len bytes).
 * Errors: INTERNAL when alloc fails. */
mc_err proto_frame_encode(const ProtobufCMessage *msg, enum proto_type type,
                          void *(*alloc)(size_t), void **out, size_t *out_len);

/* Pack msg as a frame into dst, which has exactly
 * proto_frame_size(protobuf_c_message_get_packed_size(msg)) bytes: for
 * writing straight into a transport's message buffer. */
void proto_frame_pack(const ProtobufCMessage *msg, enum proto_type type,
                      uint8_t *dst, size_t dst_len);

/* Pack into dst a frame of type whose body is body[0..body_len), the
 * packed form of a message, followed by tail packed. Protobuf merges the
 * concatenated forms of two messages of one type (a field set in both
 * takes tail's value), so the frame decodes as body's message with tail's
 * fields set: a sender that packed a large message once can vary a few of
 * its fields per send without packing it again. dst has exactly
 * proto_frame_size(body_len + protobuf_c_message_get_packed_size(tail))
 * bytes. */
void proto_frame_pack_merged(const uint8_t *body, size_t body_len,
                             const ProtobufCMessage *tail,
                             enum proto_type type, uint8_t *dst,
                             size_t dst_len);

/* Check the frame in buf[0..len) and find its body.
 * Errors: INVALID_ARGUMENT with a sentence in err (bad magic, wrong type,
 * length past the end, trailing bytes, non-zero padding).
 * On MC_OK *body points into buf. */
mc_err proto_frame_open(const void *buf, size_t len, enum proto_type type,
                        const uint8_t **body, size_t *body_len, char *err,
                        size_t err_len);

/* Open and unpack in one step. On MC_OK the caller frees *out with
 * <type>__free_unpacked(*out, NULL). */
mc_err proto_request_decode(const void *buf, size_t len, Mcpb__Request **out,
                            char *err, size_t err_len);
mc_err proto_response_decode(const void *buf, size_t len,
                             Mcpb__Response **out, char *err, size_t err_len);
mc_err proto_command_decode(const void *buf, size_t len, Mcpb__Command **out,
                            char *err, size_t err_len);

/* ---- slots (DESIGN.md §4) ---- */

/* The slot of a key: CRC16 (XMODEM, as Redis Cluster) of ns '\0' key, or of
 * ns '\0' tag when the key holds a non-empty {tag}, modulo MC_SLOTS. */
uint32_t proto_slot(const uint8_t *ns, size_t ns_len, const uint8_t *key,
                    size_t key_len);
/* Slots map to shards in contiguous ranges of (nearly) equal size; shard
 * owns the slots lo..hi, both inclusive. */
uint32_t proto_shard_of_slot(uint32_t slot, uint32_t n_shards);
void proto_slot_range(uint32_t shard, uint32_t n_shards, uint32_t *lo,
                      uint32_t *hi);

/* ---- validation: each returns MC_OK or INVALID_ARGUMENT / TOO_LARGE with
 * a sentence naming the problem in err ---- */

/* [a-z0-9][a-z0-9._-]{0,63} */
mc_err proto_ns_check(const uint8_t *ns, size_t len, char *err, size_t err_len);
/* 1..MC_KEY_BYTES_MAX bytes of valid UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF) without NUL. */
mc_err proto_key_check(const uint8_t *key, size_t len, char *err,
                       size_t err_len);
/* A list prefix: like a key but may be empty. */
mc_err proto_prefix_check(const uint8_t *p, size_t len, char *err,
                          size_t err_len);
bool proto_utf8_valid(const uint8_t *s, size_t len);

/* ---- LIKE patterns of list (proto/like.c) ---- */

/* 1..MC_KEY_BYTES_MAX bytes of valid UTF-8 without NUL, not ending in a
 * lone '\'. Errors: INVALID_ARGUMENT with a sentence in err. */
mc_err proto_like_check(const uint8_t *p, size_t len, char *err,
                        size_t err_len);
/* Write into out (room for len bytes) the literal prefix of the checked
 * pattern p: its part before the first unescaped '%' or '_', escapes
 * resolved. Every key that matches starts with it. Returns its length. */
size_t proto_like_prefix(const uint8_t *p, size_t len, uint8_t *out);
/* Whether key matches the checked pattern p ('_' = one code point). */
bool proto_like_match(const uint8_t *p, size_t p_len, const uint8_t *key,
                      size_t key_len);

/* ---- transactions ---- */

/* The parts of a transaction: the namespace, 1..MC_TXN_OPS_MAX compares
 * and operations in all, each valid, their values together at most
 * value_max bytes. Requests and the commands made from them are checked
 * alike. Errors: INVALID_ARGUMENT or TOO_LARGE; err names the part
 * ("then_ops[2]: key is empty"). */
mc_err proto_txn_check(const ProtobufCBinaryData *ns,
                       Mcpb__TxnCompare *const *compares, size_t n_compares,
                       Mcpb__TxnOp *const *then_ops, size_t n_then,
                       Mcpb__TxnOp *const *else_ops, size_t n_else,
                       uint64_t value_max, char *err, size_t err_len);
/* The key req is routed by: its key, or for OP_TXN its first key (of the
 * compares, then then_ops, then else_ops). False when it has none. */
bool proto_route_key(const Mcpb__Request *req, const uint8_t **key,
                     size_t *len);
/* The shard, among n_shards, of every key of the checked OP_TXN request
 * req. Errors: INVALID_ARGUMENT when its keys span shards; err names two
 * of them and the fix (a common {tag}). */
mc_err proto_txn_shard(const Mcpb__Request *req, uint32_t n_shards,
                       uint32_t *shard, char *err, size_t err_len);

/* Check a decoded request completely: the op is known, the fields it needs
 * are present and valid, the value is at most value_max bytes, tier and ttl
 * agree (the long tier takes no TTL; ttl <= MC_TTL_MS_MAX), list limits
 * and patterns, for OP_TXN every compare and operation, at most
 * MC_TXN_OPS_MAX of them, their values together at most value_max bytes
 * and the whole request within one message; a watch names a key or a
 * prefix and its shard, a wait a known condition, and neither waits
 * longer than MC_WATCH_WAIT_MS_MAX. */
mc_err proto_request_check(const Mcpb__Request *req, uint64_t value_max,
                           char *err, size_t err_len);

#endif
