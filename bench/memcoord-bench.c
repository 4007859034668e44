/* memcoord-bench: the load generator behind the figures in the README. It
 * uses only the public API of include/memcoord.h. This first version runs
 * one workload with W worker threads, each doing one call at a time, and
 * prints throughput and latency percentiles; issue 6 grows it into the
 * full suite.
 *
 *   memcoord-bench [--endpoints URL,...] [--workers N] [--ops N]
 *                  [--value-size B] [--tier T] [--serializable] put|get */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memcoord.h"

#define WORKERS_MAX 256
#define KEYS_PER_WORKER 1000

struct cfg {
    const char *endpoints;
    const char *workload;
    unsigned workers;
    unsigned ops;         /* per worker */
    size_t value_size;
    mc_tier tier;
    bool serializable;
};

struct worker {
    pthread_t thread;
    const struct cfg *cfg;
    mc_client *c;
    unsigned id;
    double *lat_ms;       /* ops entries */
    unsigned errors[MC_ERR_COUNT];
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct cfg *cfg = w->cfg;
    char *value = malloc(cfg->value_size + 1);
    memset(value, 'v', cfg->value_size);
    bool is_put = strcmp(cfg->workload, "put") == 0;
    mc_put_opts po = MC_PUT_OPTS_INIT;
    po.tier = cfg->tier;
    mc_read_opts ro = {.serializable = cfg->serializable};
    for (unsigned i = 0; i < cfg->ops; i++) {
        char key[64];
        snprintf(key, sizeof key, "bench/w%u/k%u", w->id, i % KEYS_PER_WORKER);
        mc_result res;
        double t0 = now_ms();
        mc_err rv;
        if (is_put) {
            rv = mc_put(w->c, "bench", key, value, cfg->value_size, &po, &res);
        } else {
            mc_record *rec = NULL;
            rv = mc_get(w->c, "bench", key, &ro, &rec, &res);
            mc_record_free(rec);
        }
        w->lat_ms[i] = now_ms() - t0;
        if (rv != MC_OK) {
            w->errors[rv < MC_ERR_COUNT ? rv : MC_INTERNAL]++;
        }
    }
    free(value);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void preload(const struct cfg *cfg, mc_client *c)
{
    char *value = calloc(1, cfg->value_size + 1);
    memset(value, 'v', cfg->value_size);
    for (unsigned w = 0; w < cfg->workers; w++) {
        for (unsigned k = 0; k < KEYS_PER_WORKER && k < cfg->ops; k++) {
            char key[64];
            snprintf(key, sizeof key, "bench/w%u/k%u", w, k);
            mc_result res;
            mc_put(c, "bench", key, value, cfg->value_size, NULL, &res);
        }
    }
    free(value);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: memcoord-bench [--endpoints URL,...] [--workers N] "
            "[--ops N] [--value-size B] [--tier short|mid|long] "
            "[--serializable] put|get\n");
    return 2;
}

static int parse(int argc, char **argv, struct cfg *cfg)
{
    const char *env = getenv("MEMCOORD_ENDPOINTS");
    *cfg = (struct cfg){.endpoints = env ? env : "tcp://127.0.0.1:7400",
                        .workers = 1, .ops = 10000, .value_size = 256};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--serializable") == 0) {
            cfg->serializable = true;
        } else if (a[0] == '-' && v == NULL) {
            return -1;
        } else if (strcmp(a, "--endpoints") == 0) {
            cfg->endpoints = v, i++;
        } else if (strcmp(a, "--workers") == 0) {
            cfg->workers = (unsigned)atoi(v), i++;
        } else if (strcmp(a, "--ops") == 0) {
            cfg->ops = (unsigned)atoi(v), i++;
        } else if (strcmp(a, "--value-size") == 0) {
            cfg->value_size = (size_t)atol(v), i++;
        } else if (strcmp(a, "--tier") == 0) {
            if (!mc_tier_parse(v, &cfg->tier)) {
                return -1;
            }
            i++;
        } else if (a[0] != '-' && cfg->workload == NULL) {
            cfg->workload = a;
        } else {
            return -1;
        }
    }
    if (cfg->workload == NULL || cfg->workers == 0 ||
        cfg->workers > WORKERS_MAX || cfg->ops == 0 ||
        (strcmp(cfg->workload, "put") != 0 && strcmp(cfg->workload, "get") != 0)) {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cfg cfg;
    if (parse(argc, argv, &cfg) != 0) {
        return usage();
    }
    static struct worker workers[WORKERS_MAX];
    mc_result res;
    for (unsigned w = 0; w < cfg.workers; w++) {
        workers[w] = (struct worker){.cfg = &cfg, .id = w};
        workers[w].lat_ms = calloc(cfg.ops, sizeof(double));
        if (mc_client_open(cfg.endpoints, NULL, &workers[w].c, &res) != MC_OK) {
            fprintf(stderr, "error: %s\n", res.message);
            return 1;
        }
    }
    if (strcmp(cfg.workload, "get") == 0) {
        preload(&cfg, workers[0].c);
    }
    double t0 = now_ms();
    for (unsigned w = 0; w < cfg.workers; w++) {
        pthread_create(&workers[w].thread, NULL, worker_main, &workers[w]);
    }
    for (unsigned w = 0; w < cfg.workers; w++) {
        pthread_join(workers[w].thread, NULL);
    }
    double elapsed_ms = now_ms() - t0;
    size_t n = (size_t)cfg.workers * cfg.ops;
    double *all = malloc(n * sizeof *all);
    unsigned errors = 0;
    for (unsigned w = 0; w < cfg.workers; w++) {
        memcpy(all + (size_t)w * cfg.ops, workers[w].lat_ms,
               cfg.ops * sizeof(double));
        for (int e = 0; e < MC_ERR_COUNT; e++) {
            errors += workers[w].errors[e];
            if (workers[w].errors[e] > 0) {
                fprintf(stderr, "worker %u: %u x %s\n", w,
                        workers[w].errors[e], mc_errname((mc_err)e));
            }
        }
        mc_client_close(workers[w].c);
        free(workers[w].lat_ms);
    }
    qsort(all, n, sizeof *all, cmp_double);
    printf("%s%s workers=%u ops=%zu value=%zuB: %.0f ops/s  p50 %.3f ms  "
           "p90 %.3f ms  p99 %.3f ms  max %.3f ms  errors %u\n",
           cfg.workload, cfg.serializable ? " (serializable)" : "",
           cfg.workers, n, cfg.value_size, n / (elapsed_ms / 1e3),
           all[n / 2], all[n * 90 / 100], all[n * 99 / 100], all[n - 1],
           errors);
    free(all);
    return errors > 0 ? 1 : 0;
}
