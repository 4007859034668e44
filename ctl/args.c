/* Arguments of memcoordctl: durations, numbers, and values from stdin. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

struct unit {
    const char *name;
    uint64_t ms;
};

/* Longest names first, so that "ms" is not read as "m" then "s". */
static const struct unit units[] = {
    {"ms", 1},
    {"s", 1000},
    {"m", 60ull * 1000},
    {"h", 3600ull * 1000},
    {"d", 24ull * 3600 * 1000},
};

static const struct unit *unit_at(const char *s, size_t *len)
{
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t n = strlen(units[i].name);
        if (strncmp(s, units[i].name, n) == 0) {
            *len = n;
            return &units[i];
        }
    }
    return NULL;
}

bool ctl_parse_duration_ms(const char *s, uint64_t *out)
{
    uint64_t total = 0;
    if (*s == '\0') {
        return false;
    }
    while (*s != '\0') {
        if (*s < '0' || *s > '9') {
            return false;
        }
        uint64_t n = 0;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (n > (UINT64_MAX - 9) / 10) {
                return false;
            }
            n = n * 10 + (uint64_t)(*s - '0');
        }
        size_t len;
        const struct unit *u = unit_at(s, &len);
        if (u == NULL) {
            return false; /* a bare number: seconds or ms? say which */
        }
        s += len;
        if (n > (UINT64_MAX - total) / u->ms) {
            return false;
        }
        total += n * u->ms;
    }
    *out = total;
    return true;
}

bool ctl_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (*s < '0' || *s > '9') {
        return false; /* strtoull would take a sign or spaces */
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max) {
        return false;
    }
    *out = v;
    return true;
}

mc_err ctl_read_stdin(size_t max, uint8_t **out, size_t *len, char *msg,
                      size_t msg_len)
{
    size_t cap = 4096;
    size_t n = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        snprintf(msg, msg_len, "out of memory");
        return MC_INTERNAL;
    }
    for (;;) {
        if (n == cap) {
            /* One byte past max is enough to know the value is too big. */
            if (cap > max) {
                free(buf);
                snprintf(msg, msg_len,
                         "value from stdin is more than %zu bytes", max);
                return MC_TOO_LARGE;
            }
            cap *= 2;
            uint8_t *grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                snprintf(msg, msg_len, "out of memory");
                return MC_INTERNAL;
            }
            buf = grown;
        }
        ssize_t got = read(STDIN_FILENO, buf + n, cap - n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            snprintf(msg, msg_len, "cannot read stdin: %s", strerror(errno));
            free(buf);
            return MC_INTERNAL;
        }
        if (got == 0) {
            break;
        }
        n += (size_t)got;
    }
    if (n > max) {
        free(buf);
        snprintf(msg, msg_len, "value from stdin is more than %zu bytes", max);
        return MC_TOO_LARGE;
    }
    if (n == cap) {
        uint8_t *grown = realloc(buf, cap + 1);
        if (grown == NULL) {
            free(buf);
            snprintf(msg, msg_len, "out of memory");
            return MC_INTERNAL;
        }
        buf = grown;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return MC_OK;
}
