/* Unit tests of proto/codec.c: the frame [u32 len][u32 kind][body][pad].
 *
 * Round trips of each message type, then every way a frame can be wrong:
 * truncated at each byte, trailing bytes, bad magic, wrong type, length
 * past the end, non-zero padding; and random bytes and bit flips, which
 * must give INVALID_ARGUMENT or a message, never a crash. Random inputs
 * come from a fixed seed so that a failure repeats. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void wr_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* xorshift64: a fixed, portable stream for the random cases. */
static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A PUT with every field of a write set, framed. */
static void sample_put(uint8_t **buf, size_t *len)
{
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_PUT;
    req.has_client_id = true;
    req.client_id = 0x1122334455667788ull;
    req.has_seq = true;
    req.seq = 42;
    req.has_ns = true;
    req.ns.data = (uint8_t *)"default";
    req.ns.len = 7;
    req.has_key = true;
    req.key.data = (uint8_t *)"swarm/x";
    req.key.len = 7;
    req.has_value = true;
    req.value.data = (uint8_t *)"v\0alue";
    req.value.len = 6;
    req.has_expect_version = true;
    req.expect_version = 3;
    req.has_tier = true;
    req.tier = MC_TIER_SHORT;
    req.has_ttl_ms = true;
    req.ttl_ms = 30000;
    void *out;
    cr_assert_eq(proto_frame_encode(&req.base, PROTO_REQUEST, NULL, &out, len),
                 MC_OK);
    *buf = out;
}

Test(proto_frame_size, pads_header_and_body_to_eight)
{
    cr_assert_eq(proto_frame_size(0), 8);
    cr_assert_eq(proto_frame_size(1), 16);
    cr_assert_eq(proto_frame_size(8), 16);
    cr_assert_eq(proto_frame_size(9), 24);
    cr_assert_eq(proto_frame_size(1000), 1008);
}

Test(proto_frame_encode, request_round_trip)
{
    uint8_t *buf;
    size_t len;
    sample_put(&buf, &len);
    cr_assert_eq(len % 8, 0);
    cr_assert_eq(rd_u32(buf + 4), PROTO_MAGIC << 16 | PROTO_REQUEST);
    uint32_t body = rd_u32(buf);
    cr_assert_eq(proto_frame_size(body), len);
    for (size_t i = PROTO_FRAME_HEADER_BYTES + body; i < len; i++) {
        cr_assert_eq(buf[i], 0, "padding byte %zu is not zero", i);
    }

    Mcpb__Request *r;
    char err[128];
    cr_assert_eq(proto_request_decode(buf, len, &r, err, sizeof err), MC_OK);
    cr_assert_eq(r->op, MCPB__OP__OP_PUT);
    cr_assert_eq(r->client_id, 0x1122334455667788ull);
    cr_assert_eq(r->seq, 42);
    cr_assert_eq(r->ns.len, 7);
    cr_assert_arr_eq(r->ns.data, "default", 7);
    cr_assert_arr_eq(r->key.data, "swarm/x", 7);
    cr_assert_eq(r->value.len, 6);
    cr_assert_arr_eq(r->value.data, "v\0alue", 6);
    cr_assert(r->has_expect_version);
    cr_assert_eq(r->expect_version, 3);
    cr_assert_eq(r->tier, MC_TIER_SHORT);
    cr_assert_eq(r->ttl_ms, 30000);
    mcpb__request__free_unpacked(r, NULL);
    mc_free(buf);
}

/* A request packed once without its id and no_forward, and a tail with
 * them: the frame decodes as the one request with every field, the tail's
 * fields after the body's (out of tag order) included. */
Test(proto_frame_pack_merged, decodes_as_body_with_the_tail_fields_set)
{
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_PUT;
    req.has_ns = req.has_key = req.has_value = true;
    req.ns.data = (uint8_t *)"default";
    req.ns.len = 7;
    req.key.data = (uint8_t *)"swarm/x";
    req.key.len = 7;
    req.value.data = (uint8_t *)"v\0alue";
    req.value.len = 6;
    req.has_ttl_ms = true;
    req.ttl_ms = 30000;
    size_t body_len = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *body = mc_malloc(body_len);
    cr_assert_eq(protobuf_c_message_pack(&req.base, body), body_len);

    Mcpb__Request tail = MCPB__REQUEST__INIT;
    tail.op = MCPB__OP__OP_PUT; /* required: packed always, the same */
    tail.has_client_id = tail.has_seq = tail.has_no_forward = true;
    tail.client_id = 0x1122334455667788ull;
    tail.seq = 42;
    tail.no_forward = true;
    size_t len = proto_frame_size(
        body_len + protobuf_c_message_get_packed_size(&tail.base));
    uint8_t *buf = mc_malloc(len);
    memset(buf, 0xff, len); /* the padding must come out zeroed */
    proto_frame_pack_merged(body, body_len, &tail.base, PROTO_REQUEST, buf,
                            len);

    Mcpb__Request *r;
    char err[128];
    cr_assert_eq(proto_request_decode(buf, len, &r, err, sizeof err), MC_OK,
                 "%s", err);
    cr_assert_eq(r->op, MCPB__OP__OP_PUT);
    cr_assert(r->has_client_id);
    cr_assert_eq(r->client_id, 0x1122334455667788ull);
    cr_assert_eq(r->seq, 42);
    cr_assert(r->has_no_forward);
    cr_assert(r->no_forward);
    cr_assert_arr_eq(r->ns.data, "default", 7);
    cr_assert_arr_eq(r->key.data, "swarm/x", 7);
    cr_assert_eq(r->value.len, 6);
    cr_assert_arr_eq(r->value.data, "v\0alue", 6);
    cr_assert_eq(r->ttl_ms, 30000);
    mcpb__request__free_unpacked(r, NULL);

    /* An empty tail but for op: the body alone. */
    tail = (Mcpb__Request)MCPB__REQUEST__INIT;
    tail.op = MCPB__OP__OP_PUT;
    size_t len2 = proto_frame_size(
        body_len + protobuf_c_message_get_packed_size(&tail.base));
    cr_assert_leq(len2, len);
    proto_frame_pack_merged(body, body_len, &tail.base, PROTO_REQUEST, buf,
                            len2);
    cr_assert_eq(proto_request_decode(buf, len2, &r, err, sizeof err), MC_OK,
                 "%s", err);
    cr_assert_not(r->has_client_id);
    cr_assert_not(r->has_no_forward);
    cr_assert_eq(r->ttl_ms, 30000);
    mcpb__request__free_unpacked(r, NULL);
    mc_free(buf);
    mc_free(body);
}

Test(proto_frame_encode, response_round_trip_with_records_and_status)
{
    Mcpb__Record rec[2] = {MCPB__RECORD__INIT, MCPB__RECORD__INIT};
    Mcpb__Record *recs[2] = {&rec[0], &rec[1]};
    const char *keys[2] = {"a/1", "a/2"};
    for (int i = 0; i < 2; i++) {
        rec[i].has_key = true;
        rec[i].key.data = (uint8_t *)keys[i];
        rec[i].key.len = 3;
        rec[i].has_version = true;
        rec[i].version = (uint64_t)i + 1;
        rec[i].has_expires_at = true;
        rec[i].expires_at = 1700000000000ll;
    }
    uint64_t counts[3] = {1, 2, 3};
    Mcpb__ShardStatus sh = MCPB__SHARD_STATUS__INIT;
    Mcpb__ShardStatus *shs[1] = {&sh};
    sh.id = 5;
    sh.n_records = 3;
    sh.records = counts;
    Mcpb__NodeStatus st = MCPB__NODE_STATUS__INIT;
    st.version = "0.1.0";
    st.n_shards = 1;
    st.shards = shs;
    Mcpb__Response resp = MCPB__RESPONSE__INIT;
    resp.code = MC_CONFLICT;
    resp.message = "swarm/x is at version 4, expected 3";
    resp.has_version = true;
    resp.version = 4;
    resp.n_records = 2;
    resp.records = recs;
    resp.has_more = true;
    resp.more = true;
    resp.status = &st;

    void *buf;
    size_t len;
    cr_assert_eq(proto_frame_encode(&resp.base, PROTO_RESPONSE, NULL, &buf,
                                    &len),
                 MC_OK);
    Mcpb__Response *r;
    char err[128];
    cr_assert_eq(proto_response_decode(buf, len, &r, err, sizeof err), MC_OK);
    cr_assert_eq(r->code, MC_CONFLICT);
    cr_assert_str_eq(r->message, "swarm/x is at version 4, expected 3");
    cr_assert_eq(r->version, 4);
    cr_assert_eq(r->n_records, 2);
    cr_assert_arr_eq(r->records[1]->key.data, "a/2", 3);
    cr_assert_eq(r->records[1]->version, 2);
    cr_assert_eq(r->records[0]->expires_at, 1700000000000ll);
    cr_assert(r->more);
    cr_assert_eq(r->status->shards[0]->id, 5);
    cr_assert_eq(r->status->shards[0]->n_records, 3);
    cr_assert_eq(r->status->shards[0]->records[2], 3);
    mcpb__response__free_unpacked(r, NULL);
    mc_free(buf);
}

Test(proto_frame_encode, empty_message_is_a_bare_header)
{
    Mcpb__Request req = MCPB__REQUEST__INIT; /* op 0 packs as one field */
    req.op = MCPB__OP__OP_STATUS;
    void *buf;
    size_t len;
    cr_assert_eq(proto_frame_encode(&req.base, PROTO_REQUEST, NULL, &buf, &len),
                 MC_OK);
    cr_assert_eq(len, 16);
    Mcpb__Request *r;
    char err[128];
    cr_assert_eq(proto_request_decode(buf, len, &r, err, sizeof err), MC_OK);
    cr_assert_eq(r->op, MCPB__OP__OP_STATUS);
    mcpb__request__free_unpacked(r, NULL);
    mc_free(buf);
}

static void *failing_alloc(size_t n)
{
    return NULL;
}

Test(proto_frame_encode, failed_allocation_is_internal)
{
    Mcpb__Request req = MCPB__REQUEST__INIT;
    void *buf = (void *)1;
    size_t len = 0;
    cr_assert_eq(proto_frame_encode(&req.base, PROTO_REQUEST, failing_alloc,
                                    &buf, &len),
                 MC_INTERNAL);
}

Test(proto_frame_open, every_truncation_is_rejected)
{
    uint8_t *buf;
    size_t len;
    sample_put(&buf, &len);
    for (size_t cut = 0; cut < len; cut++) {
        /* A copy of exactly cut bytes, so ASan sees any read past it. */
        uint8_t *part = malloc(cut > 0 ? cut : 1);
        memcpy(part, buf, cut);
        Mcpb__Request *r = NULL;
        char err[128] = "";
        mc_err rv = proto_request_decode(part, cut, &r, err, sizeof err);
        cr_assert_eq(rv, MC_INVALID_ARGUMENT, "cut at %zu gave %s", cut,
                     mc_errname(rv));
        cr_assert_null(r);
        cr_assert_neq(err[0], '\0', "cut at %zu has no reason", cut);
        free(part);
    }
    mc_free(buf);
}

Test(proto_frame_open, trailing_bytes_are_rejected)
{
    uint8_t *buf;
    size_t len;
    sample_put(&buf, &len);
    uint8_t *longer = calloc(1, len + 8);
    memcpy(longer, buf, len);
    Mcpb__Request *r;
    char err[128];
    cr_assert_eq(proto_request_decode(longer, len + 8, &r, err, sizeof err),
                 MC_INVALID_ARGUMENT);
    free(longer);
    mc_free(buf);
}

Test(proto_frame_open, bad_magic_is_rejected)
{
    uint8_t *buf;
    size_t len;
    sample_put(&buf, &len);
    wr_u32(buf + 4, 0x4e430000u | PROTO_REQUEST);
    Mcpb__Request *r;
    char err[128];
    cr_assert_eq(proto_request_decode(buf, len, &r, err, sizeof err),
                 MC_INVALID_ARGUMENT);
    cr_assert(strstr(err, "magic") != NULL, "reason: %s", err);
    mc_free(buf);
}

Test(proto_frame_open, wrong_type_is_rejected)
{
    uint8_t *buf;
    size_t len;
    sample_put(&buf, &len);
    Mcpb__Response *r;
    Mcpb__Command *cmd;
    char err[128];
    cr_assert_eq(proto_response_decode(buf, len, &r, err, sizeof err),
                 MC_INVALID_ARGUMENT);
    cr_assert_eq(proto_command_decode(buf, len, &cmd, err, sizeof err),
                 MC_INVALID_ARGUMENT);
    mc_free(buf);
}

Test(proto_frame_open, length_past_the_end_is_rejected)
{
    uint8_t *buf;
    size_t len;
    sample_put(&buf, &len);
    const uint32_t lies[] = {(uint32_t)len, (uint32_t)len - 7, 0xfffffff8u,
                             0xffffffffu};
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        wr_u32(buf, lies[i]);
        const uint8_t *body;
        size_t body_len;
        char err[128];
        cr_assert_eq(proto_frame_open(buf, len, PROTO_REQUEST, &body,
                                      &body_len, err, sizeof err),
                     MC_INVALID_ARGUMENT, "length %u accepted", lies[i]);
    }
    mc_free(buf);
}

Test(proto_frame_open, nonzero_padding_is_rejected)
{
    /* A STATUS request packs to 2 bytes: 6 bytes of padding follow. */
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_STATUS;
    void *out;
    size_t len;
    cr_assert_eq(proto_frame_encode(&req.base, PROTO_REQUEST, NULL, &out, &len),
                 MC_OK);
    uint8_t *buf = out;
    uint32_t body = rd_u32(buf);
    cr_assert_lt(PROTO_FRAME_HEADER_BYTES + body, len,
                 "the sample must have padding");
    for (size_t i = PROTO_FRAME_HEADER_BYTES + body; i < len; i++) {
        buf[i] = 0x80;
        Mcpb__Request *r;
        char err[128];
        cr_assert_eq(proto_request_decode(buf, len, &r, err, sizeof err),
                     MC_INVALID_ARGUMENT, "byte %zu of padding", i);
        cr_assert(strstr(err, "padding") != NULL, "reason: %s", err);
        buf[i] = 0;
    }
    mc_free(buf);
}

Test(proto_frame_open, null_buffer_is_rejected)
{
    const uint8_t *body;
    size_t body_len;
    char err[128];
    cr_assert_eq(proto_frame_open(NULL, 0, PROTO_REQUEST, &body, &body_len,
                                  err, sizeof err),
                 MC_INVALID_ARGUMENT);
}

/* Decode must answer for any bytes; when it accepts them, the message must
 * be usable and freeable. */
static void decode_any(const uint8_t *p, size_t len)
{
    Mcpb__Request *r = NULL;
    char err[128];
    mc_err rv = proto_request_decode(p, len, &r, err, sizeof err);
    cr_assert(rv == MC_OK || rv == MC_INVALID_ARGUMENT);
    if (rv == MC_OK) {
        (void)proto_request_check(r, MC_VALUE_BYTES_MAX, err, sizeof err);
        mcpb__request__free_unpacked(r, NULL);
    } else {
        cr_assert_null(r);
    }
}

Test(proto_request_decode, random_bytes_never_crash)
{
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(rnd() % 256);
        uint8_t *p = malloc(len > 0 ? len : 1);
        for (size_t k = 0; k < len; k++) {
            p[k] = (uint8_t)rnd();
        }
        /* Half of them get a valid header, so the body parser runs too. */
        if (i % 2 == 0 && len >= PROTO_FRAME_HEADER_BYTES) {
            len &= ~(size_t)7;
            wr_u32(p, (uint32_t)(len - PROTO_FRAME_HEADER_BYTES));
            wr_u32(p + 4, PROTO_MAGIC << 16 | PROTO_REQUEST);
        }
        decode_any(p, len);
        free(p);
    }
}

Test(proto_request_decode, bit_flips_never_crash)
{
    uint8_t *buf;
    size_t len;
    sample_put(&buf, &len);
    uint8_t *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, buf, len);
            copy[i] ^= (uint8_t)(1u << bit);
            decode_any(copy, len);
        }
    }
    free(copy);
    mc_free(buf);
}
