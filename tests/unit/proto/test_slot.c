/* Unit tests of shard/slot.c: the slot of a key is CRC16-XMODEM of
 * ns '\0' key, or of ns '\0' tag for a key with a non-empty {tag}
 * (checked against a reference CRC written here and pinned by the
 * standard check value), and slots map to shards in contiguous ranges that
 * cover all MC_SLOTS slots. Pure functions: no store is opened. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"

/* Reference CRC16-XMODEM, bit by bit, straight from its definition. */
static uint16_t ref_crc16(const uint8_t *p, size_t len)
{
    uint32_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 7; bit >= 0; bit--) {
            uint32_t in = (p[i] >> bit) & 1u;
            uint32_t top = (crc >> 15) & 1u;
            crc = (crc << 1) & 0xffffu;
            if (top ^ in) {
                crc ^= 0x1021u;
            }
        }
    }
    return (uint16_t)crc;
}

/* The slot of ns '\0' hashed, by the reference CRC. */
static uint32_t ref_slot(const char *ns, const char *hashed)
{
    uint8_t buf[256];
    size_t ns_len = strlen(ns);
    size_t len = strlen(hashed);
    memcpy(buf, ns, ns_len);
    buf[ns_len] = '\0';
    memcpy(buf + ns_len + 1, hashed, len);
    return ref_crc16(buf, ns_len + 1 + len) % MC_SLOTS;
}

static uint32_t slot(const char *ns, const char *key)
{
    return proto_slot((const uint8_t *)ns, strlen(ns), (const uint8_t *)key,
                      strlen(key));
}

Test(proto_slot, reference_crc_matches_the_check_value)
{
    /* The standard check value of CRC16-XMODEM (Redis uses it too). */
    cr_assert_eq(ref_crc16((const uint8_t *)"123456789", 9), 0x31c3);
}

Test(proto_slot, plain_key_hashes_ns_and_key)
{
    cr_assert_eq(slot("swarm", "agent/1/status"),
                 ref_slot("swarm", "agent/1/status"));
    cr_assert_eq(slot("a", "x"), ref_slot("a", "x"));
}

Test(proto_slot, keys_with_the_same_tag_share_a_slot)
{
    cr_assert_eq(slot("ns", "{user1}.a"), slot("ns", "{user1}.b"));
    cr_assert_eq(slot("ns", "{user1}.a"), ref_slot("ns", "user1"));
    cr_assert_eq(slot("ns", "pre{user1}post"), ref_slot("ns", "user1"));
}

Test(proto_slot, namespace_is_part_of_the_hash)
{
    cr_assert_eq(slot("one", "{t}a"), ref_slot("one", "t"));
    cr_assert_eq(slot("two", "{t}a"), ref_slot("two", "t"));
    cr_assert_neq(ref_slot("one", "t"), ref_slot("two", "t"));
}

Test(proto_slot, empty_or_unclosed_braces_hash_the_whole_key)
{
    cr_assert_eq(slot("ns", "{}.a"), ref_slot("ns", "{}.a"));
    cr_assert_eq(slot("ns", "{}{x}"), ref_slot("ns", "{}{x}"));
    cr_assert_eq(slot("ns", "a{b"), ref_slot("ns", "a{b"));
    cr_assert_eq(slot("ns", "a}b"), ref_slot("ns", "a}b"));
    cr_assert_eq(slot("ns", "{"), ref_slot("ns", "{"));
}

Test(proto_slot, only_the_first_tag_counts)
{
    cr_assert_eq(slot("ns", "{a}{b}"), ref_slot("ns", "a"));
    cr_assert_eq(slot("ns", "x}{a}"), ref_slot("ns", "a"));
    cr_assert_eq(slot("ns", "{a{b}c}"), ref_slot("ns", "a{b"));
}

Test(proto_slot, slots_are_in_range)
{
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cr_assert_lt(slot("ns", key), MC_SLOTS);
    }
}

Test(proto_slot_range, ranges_cover_every_slot_contiguously)
{
    static const uint32_t counts[] = {1, 2, 3, 5, 7, 8, 16, 100, 255,
                                      MC_SHARDS_MAX};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        uint32_t n = counts[c];
        uint32_t next = 0;
        uint32_t min_size = MC_SLOTS, max_size = 0;
        for (uint32_t shard = 0; shard < n; shard++) {
            uint32_t lo, hi;
            proto_slot_range(shard, n, &lo, &hi);
            cr_assert_eq(lo, next, "n=%u shard=%u", n, shard);
            cr_assert_geq(hi, lo, "n=%u shard=%u", n, shard);
            uint32_t size = hi - lo + 1;
            min_size = size < min_size ? size : min_size;
            max_size = size > max_size ? size : max_size;
            next = hi + 1;
        }
        cr_assert_eq(next, MC_SLOTS, "n=%u", n);
        cr_assert_leq(max_size - min_size, 1, "n=%u", n);
    }
}

Test(proto_shard_of_slot, agrees_with_the_ranges)
{
    static const uint32_t counts[] = {1, 3, 7, 8, 100, MC_SHARDS_MAX};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        uint32_t n = counts[c];
        for (uint32_t s = 0; s < MC_SLOTS; s++) {
            uint32_t shard = proto_shard_of_slot(s, n);
            uint32_t lo, hi;
            proto_slot_range(shard, n, &lo, &hi);
            cr_assert(lo <= s && s <= hi, "n=%u slot=%u", n, s);
        }
    }
}
