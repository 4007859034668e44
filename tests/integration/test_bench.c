/* A smoke test of memcoord-bench against a real node: each workload runs
 * a few hundred operations and must end with exit 0 and one JSON object
 * on the last line of stdout that carries the fields the issue names, with
 * the operation count asked for and no errors. Performance is not checked
 * here (make bench and bench/compare-etcd.sh measure it); only that the
 * instrument works. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/lib/harness.h"

#define OUT_BYTES_MAX 65536u

static struct mc_node_proc node;

static void up(void)
{
    cr_assert_eq(harness_node_start(&node, NULL), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
}

#define NODE_TEST(suite, name) \
    Test(suite, name, .init = up, .fini = harness_fini, .timeout = 120)

static const char *bench_bin(void)
{
    const char *b = getenv("MEMCOORD_BENCH_BIN");
    cr_assert(b != NULL, "MEMCOORD_BENCH_BIN is not set (run through make)");
    return b;
}

/* Run memcoord-bench --endpoints URL ARGS (stderr dropped); the last line
 * of stdout goes into last. Returns the exit status. */
static int run_bench(const char *args, char *last, size_t last_len)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "timeout 90 '%s' --endpoints %s %s 2>/dev/null",
             bench_bin(), node.url, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    char *out = calloc(1, OUT_BYTES_MAX);
    cr_assert(out != NULL);
    size_t n = fread(out, 1, OUT_BYTES_MAX - 1, p);
    int st = pclose(p);
    while (n > 0 && out[n - 1] == '\n') {
        out[--n] = '\0';
    }
    const char *nl = strrchr(out, '\n');
    snprintf(last, last_len, "%s", nl != NULL ? nl + 1 : out);
    free(out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The value of "name": in a flat JSON object, as a number. */
static double json_num(const char *json, const char *name)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *at = strstr(json, pat);
    cr_assert(at != NULL, "no %s in %s", name, json);
    return strtod(at + strlen(pat), NULL);
}

static void check_run(const char *args, double ops)
{
    char last[4096];
    int st = run_bench(args, last, sizeof last);
    cr_assert_eq(st, 0, "memcoord-bench %s exited %d: %s", args, st, last);
    cr_assert(last[0] == '{', "the last line is not JSON: %s", last);
    cr_assert_eq(json_num(last, "ops"), ops, "%s", last);
    cr_assert(json_num(last, "ops_per_sec") > 0, "%s", last);
    cr_assert_eq(json_num(last, "errors"), 0, "%s", last);
    double p50 = json_num(last, "p50_ms"), p90 = json_num(last, "p90_ms");
    double p99 = json_num(last, "p99_ms"), p999 = json_num(last, "p999_ms");
    cr_assert(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= p999, "%s", last);
    cr_assert(strstr(last, "\"errors_by_code\":{}") != NULL, "%s", last);
}

NODE_TEST(bench, every_workload_reports_json)
{
    check_run("--json put --ops 300 --inflight 4", 300);
    check_run("--json get --ops 300 --inflight 4 --keys 200", 300);
    check_run("--json get --ops 200 --serializable --keys 200", 200);
    check_run("--json cas --ops 200 --inflight 4 --keys 64", 200);
    check_run("--json cas --ops 200 --inflight 4 --hot-keys 2", 200);
    check_run("--json mixed --ops 300 --inflight 4 --keys 200", 300);
    check_run("--json list --ops 50 --keys 200 --list-limit 20", 50);
    check_run("--json load --keys 100 --space smoke --tier mid "
              "--value-size 100 --inflight 4",
              100);
}

NODE_TEST(bench, duration_and_text_report)
{
    char last[4096];
    cr_assert_eq(run_bench("put --duration 300ms --warmup 100ms --inflight 2",
                           last, sizeof last),
                 0);
    cr_assert(strstr(last, "errors:    0") != NULL, "%s", last);
}

Test(bench, usage_errors_exit_2, .timeout = 30)
{
    char cmd[1024];
    const char *bad[] = {"", "nosuch", "put --inflight 0",
                         "put --duration 1s --ops 5", "put --tier huge",
                         "put --value-size -1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>&1", bench_bin(),
                 bad[i]);
        int st = system(cmd);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "'%s' gave %d",
                  bad[i], st);
    }
}

/* watch needs libmemcoord's watch API: with it, a short run delivers every
 * write to every watcher; without it, the workload says so and exits 3. */
NODE_TEST(bench, watch_runs_or_says_unavailable)
{
    char cmd[1024], out[OUT_BYTES_MAX];
    snprintf(cmd, sizeof cmd,
             "timeout 90 '%s' --endpoints %s --json watch --ops 50 "
             "--watchers 2 2>&1",
             bench_bin(), node.url);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st));
    if (WEXITSTATUS(st) == 3) {
        cr_assert(strstr(out, "not available in this build") != NULL, "%s",
                  out);
        return;
    }
    cr_assert_eq(WEXITSTATUS(st), 0, "%s", out);
    cr_assert(strstr(out, "\"missed\":0") != NULL, "%s", out);
    cr_assert(strstr(out, "\"delivered\":50") != NULL, "%s", out);
}
