/* Slot hashing (DESIGN.md §4): which of the MC_SLOTS hash slots a key
 * belongs to, and which shard owns a slot. The hash is CRC16-XMODEM, as in
 * Redis Cluster, over ns '\0' key, or over ns '\0' tag when the key holds a
 * Redis-style {tag}, so that keys sharing a tag share a shard and can be
 * written together. Slots map to shards in contiguous ranges of nearly
 * equal size. Nothing here touches a store. */
#include <string.h>

#include "proto/proto.h"

/* CRC16-XMODEM: polynomial x^16 + x^12 + x^5 + 1, initial value 0. */
#define CRC16_POLY 0x1021u
#define CRC16_TOP_BIT 0x8000u

static uint16_t crc16(uint16_t crc, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (unsigned bit = 0; bit < 8; bit++) {
            crc = (crc & CRC16_TOP_BIT) ? (uint16_t)(crc << 1 ^ CRC16_POLY)
                                        : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

/* The part of key that is hashed: the content of the first {...} when it
 * is not empty, else the whole key (Redis Cluster's rule). */
static void hashed_part(const uint8_t *key, size_t key_len,
                        const uint8_t **part, size_t *part_len)
{
    *part = key;
    *part_len = key_len;
    const uint8_t *open = key_len > 0 ? memchr(key, '{', key_len) : NULL;
    if (open == NULL) {
        return;
    }
    size_t after = (size_t)(open - key) + 1;
    const uint8_t *close = memchr(open + 1, '}', key_len - after);
    if (close == NULL || close == open + 1) {
        return;
    }
    *part = open + 1;
    *part_len = (size_t)(close - open - 1);
}

uint32_t proto_slot(const uint8_t *ns, size_t ns_len, const uint8_t *key,
                    size_t key_len)
{
    ASSERT(ns != NULL || ns_len == 0);
    ASSERT(key != NULL || key_len == 0);
    const uint8_t *part;
    size_t part_len;
    hashed_part(key, key_len, &part, &part_len);
    static const uint8_t nul = '\0';
    uint16_t crc = crc16(0, ns, ns_len);
    crc = crc16(crc, &nul, 1);
    crc = crc16(crc, part, part_len);
    return crc % MC_SLOTS;
}

uint32_t proto_shard_of_slot(uint32_t slot, uint32_t n_shards)
{
    ASSERT(slot < MC_SLOTS);
    ASSERT(n_shards > 0);
    ASSERT(n_shards <= MC_SHARDS_MAX);
    return (uint32_t)((uint64_t)slot * n_shards / MC_SLOTS);
}

void proto_slot_range(uint32_t shard, uint32_t n_shards, uint32_t *lo,
                      uint32_t *hi)
{
    ASSERT(n_shards > 0);
    ASSERT(n_shards <= MC_SHARDS_MAX);
    ASSERT(shard < n_shards);
    ASSERT(lo != NULL);
    ASSERT(hi != NULL);
    /* proto_shard_of_slot(s) == k  <=>  k * MC_SLOTS <= s * n < (k + 1) * MC_SLOTS
     * <=>  ceil(k * MC_SLOTS / n) <= s < ceil((k + 1) * MC_SLOTS / n). */
    uint64_t first = ((uint64_t)shard * MC_SLOTS + n_shards - 1) / n_shards;
    uint64_t end =
        ((uint64_t)(shard + 1) * MC_SLOTS + n_shards - 1) / n_shards;
    *lo = (uint32_t)first;
    *hi = (uint32_t)(end - 1);
    ASSERT(proto_shard_of_slot(*lo, n_shards) == shard);
    ASSERT(proto_shard_of_slot(*hi, n_shards) == shard);
}
