/* Integers in byte buffers: fixed-width little-endian for frames, values
 * stored in LMDB and snapshots, big-endian for key parts that must sort by
 * number (expiry times, client ids), and varints where small numbers
 * should take little room (record headers). Always through byte shifts, so that no
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

/* Unsigned LEB128 varints: 7 bits a byte, low bits first, the high bit
 * set on every byte but the last. A u64 takes 1 to BYTES_VARINT_MAX
 * bytes. */
#define BYTES_VARINT_MAX 10u

static inline size_t bytes_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Write v at p (room for bytes_varint_len(v) bytes); returns its length. */
static inline size_t bytes_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Read a varint from p[0..len) into *v; returns its length, or 0 when it
 * runs past len, is longer than BYTES_VARINT_MAX or overflows a u64. */
static inline size_t bytes_get_varint(const uint8_t *p, size_t len,
                                      uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < len && i < BYTES_VARINT_MAX; i++) {
        uint64_t b = p[i] & 0x7f;
        if (i == BYTES_VARINT_MAX - 1 && b > 1) {
            return 0; /* a 10th byte holds the 64th bit only */
        }
        x |= b << (7 * i);
        if ((p[i] & 0x80) == 0) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

/* Zigzag: signed numbers as unsigned ones that are small when the signed
 * one is near 0 (0, -1, 1, -2, ... as 0, 1, 2, 3, ...), for varints. */
static inline uint64_t bytes_zigzag(int64_t v)
{
    return (uint64_t)v << 1 ^ (uint64_t)(v >> 63);
}

static inline int64_t bytes_unzigzag(uint64_t z)
{
    return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
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
