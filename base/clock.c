/* Clocks: the wall clock stamps commands, the monotonic clock times
 * intervals and deadlines. */
#include <time.h>

#include "base/base.h"

int64_t base_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t base_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t base_mono_ms(void)
{
    return base_mono_ns() / 1000000;
}
