/* Latency samples and counters of memcoord-bench. Every thread keeps its
 * own samples (no sharing on the hot path); they are merged and sorted once
 * at the end, so percentiles are exact, not bucketed. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool bench_samples_add(struct bench_samples *s, uint64_t ns)
{
    if (s->n == s->cap) {
        if (s->full || s->cap >= BENCH_SAMPLES_MAX) {
            s->full = true;
            return false;
        }
        size_t cap = s->cap ? s->cap * 2 : 4096;
        uint64_t *grown = realloc(s->ns, cap * sizeof *grown);
        if (grown == NULL) {
            s->full = true;
            return false;
        }
        s->ns = grown;
        s->cap = cap;
    }
    s->ns[s->n++] = ns;
    return true;
}

void bench_samples_free(struct bench_samples *s)
{
    free(s->ns);
    memset(s, 0, sizeof *s);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

size_t bench_samples_merge(struct bench_samples *const *parts, size_t n_parts,
                           uint64_t **out)
{
    size_t n = 0;
    for (size_t i = 0; i < n_parts; i++) {
        n += parts[i]->n;
    }
    *out = malloc((n ? n : 1) * sizeof **out);
    if (*out == NULL) {
        return 0;
    }
    size_t at = 0;
    for (size_t i = 0; i < n_parts; i++) {
        if (parts[i]->n == 0) {
            continue; /* ns may be NULL: memcpy must not see it */
        }
        memcpy(*out + at, parts[i]->ns, parts[i]->n * sizeof **out);
        at += parts[i]->n;
    }
    qsort(*out, n, sizeof **out, cmp_u64);
    return n;
}

double bench_pct_ms(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    /* Nearest rank: the smallest sample with at least p of them at or
     * below it. */
    size_t rank = (size_t)(p * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return (double)sorted[rank - 1] / 1e6;
}

void bench_counts_add(struct bench_counts *into, const struct bench_counts *c)
{
    into->ops += c->ops;
    for (int e = 0; e < MC_ERR_COUNT; e++) {
        into->errors[e] += c->errors[e];
    }
    into->conflicts += c->conflicts;
    into->cas_ok += c->cas_ok;
    into->reads += c->reads;
    into->writes += c->writes;
    into->not_found += c->not_found;
    into->records += c->records;
}

uint64_t bench_counts_errors(const struct bench_counts *c)
{
    uint64_t n = 0;
    for (int e = 0; e < MC_ERR_COUNT; e++) {
        n += c->errors[e];
    }
    return n;
}
