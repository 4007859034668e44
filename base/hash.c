/* FNV-1a 64: the state hash of a shard and snapshot checksums. Not for
 * anything an attacker picks (the slot hash is in shard/). */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "base/base.h"

uint64_t base_fnv64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* CRC-32C (Castagnoli), reflected, table-driven: the checksum of raft log
 * records (consensus/wal.c), where it tells a torn write from a record. */
static uint32_t crc32c_table[256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        }
        crc32c_table[i] = c;
    }
}

static bool crc32c_hw;

static uint32_t crc32c_sw(uint32_t crc, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        crc = crc32c_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    }
    return crc;
}

#if defined(__x86_64__)
/* SSE 4.2 has the CRC-32C step as an instruction: 8 bytes at a time,
 * some 20 times the table's speed (a restart replays the raft logs). */
__attribute__((target("sse4.2"))) static uint32_t
crc32c_x86(uint32_t crc, const unsigned char *p, size_t len)
{
    uint64_t c = crc;
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    crc = (uint32_t)c;
    for (; len > 0; len--, p++) {
        crc = __builtin_ia32_crc32qi(crc, *p);
    }
    return crc;
}
#endif

static void crc32c_setup(void)
{
    crc32c_init();
#if defined(__x86_64__)
    crc32c_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t base_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc32c_once, crc32c_setup);
    crc = ~crc;
#if defined(__x86_64__)
    if (crc32c_hw) {
        return ~crc32c_x86(crc, data, len);
    }
#endif
    return ~crc32c_sw(crc, data, len);
}

uint32_t base_crc32c_portable(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc32c_once, crc32c_setup);
    return ~crc32c_sw(~crc, data, len);
}
