/* Framing of protobuf messages: [u32 body_len][u32 kind][body][pad to 8].
 * See proto/proto.h for why each part is there. */
#include <string.h>

#include "proto/proto.h"

size_t proto_frame_size(size_t body_len)
{
    return (PROTO_FRAME_HEADER_BYTES + body_len + 7u) & ~(size_t)7u;
}

/* The header of a frame of body_len bytes in dst[0..dst_len), and its
 * padding zeroed. */
static void frame_header(enum proto_type type, size_t body_len, uint8_t *dst,
                         size_t dst_len)
{
    ASSERT(body_len <= UINT32_MAX);
    ASSERT(dst_len == proto_frame_size(body_len));
    bytes_put_u32le(dst, (uint32_t)body_len);
    bytes_put_u32le(dst + 4, PROTO_MAGIC << 16 | (uint32_t)type);
    memset(dst + PROTO_FRAME_HEADER_BYTES + body_len, 0,
           dst_len - PROTO_FRAME_HEADER_BYTES - body_len);
}

void proto_frame_pack(const ProtobufCMessage *msg, enum proto_type type,
                      uint8_t *dst, size_t dst_len)
{
    size_t body_len = protobuf_c_message_get_packed_size(msg);
    frame_header(type, body_len, dst, dst_len);
    size_t packed = protobuf_c_message_pack(msg, dst + PROTO_FRAME_HEADER_BYTES);
    ASSERT(packed == body_len);
}

void proto_frame_pack_merged(const uint8_t *body, size_t body_len,
                             const ProtobufCMessage *tail,
                             enum proto_type type, uint8_t *dst,
                             size_t dst_len)
{
    ASSERT(body != NULL || body_len == 0);
    size_t tail_len = protobuf_c_message_get_packed_size(tail);
    frame_header(type, body_len + tail_len, dst, dst_len);
    uint8_t *p = dst + PROTO_FRAME_HEADER_BYTES;
    if (body_len > 0) {
        memcpy(p, body, body_len);
    }
    size_t packed = protobuf_c_message_pack(tail, p + body_len);
    ASSERT(packed == tail_len);
}

mc_err proto_frame_encode(const ProtobufCMessage *msg, enum proto_type type,
                          void *(*alloc)(size_t), void **out, size_t *out_len)
{
    ASSERT(msg != NULL);
    ASSERT(out != NULL);
    size_t len = proto_frame_size(protobuf_c_message_get_packed_size(msg));
    uint8_t *buf = (alloc != NULL ? alloc : mc_malloc)(len);
    if (buf == NULL) {
        return MC_INTERNAL;
    }
    proto_frame_pack(msg, type, buf, len);
    *out = buf;
    *out_len = len;
    return MC_OK;
}

mc_err proto_frame_open(const void *buf, size_t len, enum proto_type type,
                        const uint8_t **body, size_t *body_len, char *err,
                        size_t err_len)
{
    const uint8_t *p = buf;
    if (len < PROTO_FRAME_HEADER_BYTES || p == NULL) {
        base_errf(err, err_len, "message of %zu bytes is shorter than a frame header", len);
        return MC_INVALID_ARGUMENT;
    }
    uint32_t n = bytes_get_u32le(p);
    uint32_t kind = bytes_get_u32le(p + 4);
    if (kind >> 16 != PROTO_MAGIC) {
        base_errf(err, err_len, "not a memcoord message (bad magic)");
        return MC_INVALID_ARGUMENT;
    }
    if ((kind & 0xffffu) != (uint32_t)type) {
        base_errf(err, err_len, "message type %u where %u was expected",
                  kind & 0xffffu, (unsigned)type);
        return MC_INVALID_ARGUMENT;
    }
    if (n > len - PROTO_FRAME_HEADER_BYTES || proto_frame_size(n) != len) {
        base_errf(err, err_len,
                  "frame says %u body bytes but the message has %zu bytes "
                  "(truncated or trailing data)", n, len);
        return MC_INVALID_ARGUMENT;
    }
    for (size_t i = PROTO_FRAME_HEADER_BYTES + n; i < len; i++) {
        if (p[i] != 0) {
            base_errf(err, err_len, "frame padding is not zero");
            return MC_INVALID_ARGUMENT;
        }
    }
    *body = p + PROTO_FRAME_HEADER_BYTES;
    *body_len = n;
    return MC_OK;
}

/* One decoder per message type, from one template: open the frame, then
 * let protobuf-c check required fields and wire types. */
#define DEFINE_DECODE(fn, Type, unpack, type)                               \
    mc_err fn(const void *buf, size_t len, Type **out, char *err,           \
              size_t err_len)                                               \
    {                                                                       \
        const uint8_t *body;                                                \
        size_t body_len;                                                    \
        mc_err rv = proto_frame_open(buf, len, type, &body, &body_len, err, \
                                     err_len);                              \
        if (rv != MC_OK) {                                                  \
            return rv;                                                      \
        }                                                                   \
        Type *m = unpack(NULL, body_len, body);                             \
        if (m == NULL) {                                                    \
            base_errf(err, err_len, "malformed protobuf body");             \
            return MC_INVALID_ARGUMENT;                                     \
        }                                                                   \
        *out = m;                                                           \
        return MC_OK;                                                       \
    }

DEFINE_DECODE(proto_request_decode, Mcpb__Request, mcpb__request__unpack,
              PROTO_REQUEST)
DEFINE_DECODE(proto_response_decode, Mcpb__Response, mcpb__response__unpack,
              PROTO_RESPONSE)
DEFINE_DECODE(proto_command_decode, Mcpb__Command, mcpb__command__unpack,
              PROTO_COMMAND)
