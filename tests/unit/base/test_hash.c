/* base/hash.c: CRC-32C against its check value, chained, and the CPU's
 * instruction against the table on every length and alignment. */
#include <criterion/criterion.h>
#include <string.h>

#include "base/base.h"

Test(crc32c, check_value_and_chaining)
{
    /* The check value of CRC-32C (RFC 3720, appendix B.4). */
    cr_assert_eq(base_crc32c(0, "123456789", 9), 0xe3069283u);
    cr_assert_eq(base_crc32c_portable(0, "123456789", 9), 0xe3069283u);
    cr_assert_eq(base_crc32c(base_crc32c(0, "1234", 4), "56789", 5),
                 0xe3069283u);
    cr_assert_eq(base_crc32c(0, "", 0), 0);
    uint8_t zeros[32] = {0};
    cr_assert_eq(base_crc32c(0, zeros, 32), 0x8a9136aau); /* RFC 3720 */
}

Test(crc32c, instruction_equals_table)
{
    static uint8_t buf[4096 + 16];
    uint64_t x = 0x243f6a8885a308d3ull;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    for (size_t off = 0; off < 16; off++) {
        for (size_t len = 0; len <= 300; len++) {
            cr_assert_eq(base_crc32c(7, buf + off, len),
                         base_crc32c_portable(7, buf + off, len),
                         "offset %zu length %zu", off, len);
        }
        cr_assert_eq(base_crc32c(0, buf + off, 4096),
                     base_crc32c_portable(0, buf + off, 4096));
    }
}
