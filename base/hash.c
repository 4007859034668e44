/* FNV-1a 64: the state hash of a shard and snapshot checksums. Not for
 * anything an attacker picks (the slot hash is in shard/). */
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
