/* base: what every module uses and that uses nothing: the error table
 * (from include/memcoord.h), limits, logging, assertions, allocation and the
 * clock. It owns no state but the log level and the allocation hooks. */
#ifndef MC_BASE_H
#define MC_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"
#include "base/limits.h"
#include "memcoord.h"

/* ---- logging: one line per event, key=value pairs, to stderr ---- */
enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

extern int base_log_level;

/* Parse "error", "warn", "info", "debug". */
bool base_log_level_parse(const char *name, int *out);
void base_log(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The level is checked before the arguments are evaluated (redis). */
#define LOG_AT(level, ...)                                                  \
    do {                                                                    \
        if ((level) <= base_log_level) {                                    \
            base_log((level), __FILE__, __LINE__, __VA_ARGS__);             \
        }                                                                   \
    } while (0)
#define LOG_ERROR(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)
#define LOG_WARN(...) LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_INFO(...) LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* ---- assertions: on in release builds; for programmer errors only ---- */
__attribute__((noreturn)) void base_assert_fail(const char *expr,
                                                const char *file, int line);
#define ASSERT(x)                                                           \
    do {                                                                    \
        if (__builtin_expect(!(x), 0)) {                                    \
            base_assert_fail(#x, __FILE__, __LINE__);                       \
        }                                                                   \
    } while (0)

/* ---- allocation: through hooks so a test can fail the Nth one ---- */
void *mc_malloc(size_t n);
void *mc_calloc(size_t count, size_t n);
void *mc_realloc(void *p, size_t n);
char *mc_strdup(const char *s);
char *mc_strndup(const char *s, size_t n);
void mc_free(void *p);

/* A test sets fail_after to N: the Nth allocation from now returns NULL.
 * 0 disables. */
void base_alloc_fail_after(unsigned n);

/* ---- clock ---- */
/* Wall clock in ms since the epoch: the leader's stamp of a command. */
int64_t base_wall_ms(void);
/* Monotonic clock in ms and ns: intervals and deadlines. */
int64_t base_mono_ms(void);
int64_t base_mono_ns(void);

/* ---- errors ---- */
/* Copy printf-style text into an mc_result-style message buffer. */
void base_errf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- hashing ---- */
/* FNV-1a 64, for state hashes: chained by passing the previous value. */
#define BASE_FNV64_INIT 0xcbf29ce484222325ull
uint64_t base_fnv64(uint64_t h, const void *data, size_t len);
/* CRC-32C, chained by passing the previous value (0 to start); the
 * CPU's instruction where there is one. _portable: the table, always
 * (tests compare the two). */
uint32_t base_crc32c(uint32_t crc, const void *data, size_t len);
uint32_t base_crc32c_portable(uint32_t crc, const void *data, size_t len);

#endif
