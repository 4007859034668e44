/* FNV-1a 64: the state hash of a shard and snapshot checksums. Not for
 * anything an attacker picks (the slot hash is in shard/). */
#include <pthread.h>

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

uint32_t base_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc = crc32c_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}
