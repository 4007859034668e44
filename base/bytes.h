/* Fixed-width integers in byte buffers: little-endian for frames, values
 * stored in LMDB and snapshots, big-endian for key parts that must sort by
 * number (expiry times, client ids). Always through byte shifts, so that no
 * struct is ever cast onto LMDB, wire or peer memory and alignment never
 * matters. Included through base/base.h. */
#ifndef MC_BASE_BYTES_H
#define MC_BASE_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void bytes_put_u16le(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline uint16_t bytes_get_u16le(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline void bytes_put_u32le(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint32_t bytes_get_u32le(const uint8_t *p)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < 4; i++) {
        v |= (uint32_t)p[i] << (8 * i);
    }
    return v;
}

static inline void bytes_put_u64le(uint8_t *p, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint64_t bytes_get_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static inline void bytes_put_u64be(uint8_t *p, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * (7 - i)));
    }
}

static inline uint64_t bytes_get_u64be(const uint8_t *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* Byte-wise order, shorter first on a common prefix: LMDB's default key
 * order, and the order callers of shard_list see. */
static inline int bytes_cmp(const uint8_t *a, size_t a_len, const uint8_t *b,
                            size_t b_len)
{
    size_t n = a_len < b_len ? a_len : b_len;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return a_len < b_len ? -1 : (a_len > b_len ? 1 : 0);
}

static inline bool bytes_has_prefix(const uint8_t *s, size_t s_len,
                                    const uint8_t *prefix, size_t prefix_len)
{
    return s_len >= prefix_len &&
           (prefix_len == 0 || memcmp(s, prefix, prefix_len) == 0);
}

#endif
