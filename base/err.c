/* The error table of include/memcoord.h, its names and sentences, the tier
 * names, and the small helpers around them. */
#include <stdio.h>
#include <string.h>

#include "base/base.h"

static const char *const err_names[] = {
#define X(name, text) #name,
    MC_ERR_MAP(X)
#undef X
};

static const char *const err_texts[] = {
#define X(name, text) text,
    MC_ERR_MAP(X)
#undef X
};

_Static_assert(sizeof err_names / sizeof err_names[0] == MC_ERR_COUNT,
               "one name per code");

const char *mc_errname(mc_err code)
{
    return (unsigned)code < MC_ERR_COUNT ? err_names[code] : "UNKNOWN";
}

const char *mc_strerror(mc_err code)
{
    return (unsigned)code < MC_ERR_COUNT ? err_texts[code] : "unknown error";
}

bool mc_errparse(const char *name, mc_err *out)
{
    for (unsigned i = 0; i < MC_ERR_COUNT; i++) {
        if (strcmp(name, err_names[i]) == 0) {
            *out = (mc_err)i;
            return true;
        }
    }
    return false;
}

static const char *const tier_names[] = {"default", "short", "mid", "long"};

const char *mc_tier_name(mc_tier t)
{
    return (unsigned)t <= MC_TIER_LONG ? tier_names[t] : "invalid";
}

bool mc_tier_parse(const char *name, mc_tier *out)
{
    for (unsigned i = MC_TIER_SHORT; i <= MC_TIER_LONG; i++) {
        if (strcmp(name, tier_names[i]) == 0) {
            *out = (mc_tier)i;
            return true;
        }
    }
    return false;
}

void base_errf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}
