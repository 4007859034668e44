/* Allocation hooks: every allocation of memcoord goes through here, so that
 * a test can make the Nth one fail and check the error path. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

static atomic_uint fail_countdown;

void base_alloc_fail_after(unsigned n)
{
    atomic_store(&fail_countdown, n);
}

static bool should_fail(void)
{
    unsigned n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &n, n - 1)) {
            return n == 1;
        }
    }
    return false;
}

void *mc_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

void *mc_calloc(size_t count, size_t n)
{
    return should_fail() ? NULL : calloc(count, n);
}

void *mc_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

char *mc_strndup(const char *s, size_t n)
{
    char *d = mc_malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *mc_strdup(const char *s)
{
    return mc_strndup(s, strlen(s));
}

void mc_free(void *p)
{
    free(p);
}
