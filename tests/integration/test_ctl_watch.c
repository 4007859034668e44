/* Integration tests of memcoordctl watch and wait against a real node.
 *
 * Each test starts its own node (tests/lib harness). wait runs to its end
 * like any command; watch runs in the background (its stdout and stderr
 * in files), the test writes, reads the lines it printed, then sends
 * SIGINT, after which watch must exit 0. Watches start from a known
 * revision (--rev) so that no write can slip in before the watch began. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memcoord.h"
#include "tests/lib/harness.h"

static struct mc_node_proc node;

static void up(void)
{
    cr_assert_eq(harness_node_start(&node, NULL), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
}

#define NODE_TEST(suite, name) \
    Test(suite, name, .init = up, .fini = harness_fini, .timeout = 60)

#define CTL(in, out, err, ...) \
    harness_run_ctl(&node, (in), (out), (err), __VA_ARGS__, NULL)

static void assert_has(const char *hay, const char *needle)
{
    cr_assert(strstr(hay, needle) != NULL, "'%s' not in: %s", needle, hay);
}

static unsigned lines(const char *s)
{
    unsigned n = 0;
    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

/* The mod_rev of a put through memcoordctl ("OK version=N create_rev=N
 * mod_rev=N"). */
static unsigned long long put_rev(const char *key, const char *value)
{
    char *out = NULL, *err = NULL;
    cr_assert_eq(CTL(NULL, &out, &err, "put", key, value), 0, "%s", err);
    const char *p = strstr(out, "mod_rev=");
    cr_assert_not_null(p, "%s", out);
    unsigned long long rev = strtoull(p + 8, NULL, 10);
    free(out);
    free(err);
    return rev;
}

/* ---- memcoordctl in the background ---- */

struct bg {
    pid_t pid;
    char out_path[64];
    char err_path[64];
};

static void bg_start(struct bg *b, const char *const *args)
{
    const char *bin = getenv("MEMCOORDCTL_BIN");
    cr_assert_not_null(bin, "MEMCOORDCTL_BIN is not set");
    snprintf(b->out_path, sizeof b->out_path, "/tmp/mc-ctl-out-XXXXXX");
    snprintf(b->err_path, sizeof b->err_path, "/tmp/mc-ctl-err-XXXXXX");
    int out = mkstemp(b->out_path);
    int err = mkstemp(b->err_path);
    cr_assert(out >= 0 && err >= 0);
    const char *argv[32] = {bin, "--endpoints", node.url};
    size_t k = 3;
    for (size_t i = 0; args[i] != NULL && k < 31; i++) {
        argv[k++] = args[i];
    }
    argv[k] = NULL;
    b->pid = fork();
    cr_assert_geq(b->pid, 0);
    if (b->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        unsetenv("MEMCOORD_ENDPOINTS");
        int in = open("/dev/null", O_RDONLY);
        dup2(in, STDIN_FILENO);
        dup2(out, STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(out);
    close(err);
}

static char *file_read(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Poll b's stdout until it has want lines or timeout_ms passed. */
static char *bg_wait_lines(struct bg *b, unsigned want, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        char *out = file_read(b->out_path);
        if (lines(out) >= want || harness_now_ms() >= deadline) {
            return out;
        }
        free(out);
        harness_pause_ms(20);
    }
}

/* Wait up to timeout_ms for b to exit: its exit status, 128 + signal, or
 * -1 (then it is killed). */
static int bg_wait_exit(struct bg *b, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(b->pid, &st, WNOHANG);
        if (r == b->pid) {
            b->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (harness_now_ms() >= deadline) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &st, 0);
            b->pid = 0;
            return -1;
        }
        harness_pause_ms(10);
    }
}

static void bg_fini(struct bg *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, NULL, 0);
        b->pid = 0;
    }
    unlink(b->out_path);
    unlink(b->err_path);
}

/* ---- watch ---- */

NODE_TEST(ctl_watch, prints_each_change_until_sigint)
{
    unsigned long long rev = put_rev("swarm/w", "v1");
    char rev_s[32];
    snprintf(rev_s, sizeof rev_s, "%llu", rev);
    struct bg b;
    bg_start(&b, (const char *const[]){"watch", "swarm/w", "--rev", rev_s,
                                       NULL});
    unsigned long long r2 = put_rev("swarm/w", "two\tparts");
    put_rev("swarm/other", "not watched");
    char *err = NULL;
    cr_assert_eq(CTL(NULL, NULL, &err, "del", "swarm/w"), 0, "%s", err);
    free(err);
    char *out = bg_wait_lines(&b, 2, 10000);
    cr_assert_eq(lines(out), 2, "%s", out);
    char want[128];
    snprintf(want, sizeof want, "put\tswarm/w\t2\t%llu\tlong\ttwo\\tparts\n",
             r2);
    cr_assert_eq(strncmp(out, want, strlen(want)), 0, "%s", out);
    assert_has(out, "\ndelete\tswarm/w\t2\t");
    free(out);
    kill(b.pid, SIGINT);
    cr_assert_eq(bg_wait_exit(&b, 5000), 0, "watch ends with exit 0");
    err = file_read(b.err_path);
    cr_assert_str_eq(err, "");
    free(err);
    bg_fini(&b);
}

NODE_TEST(ctl_watch, prefix_as_json_from_revision_0)
{
    put_rev("agents/a", "1");
    put_rev("agents/b", "{\"x\": 2}");
    put_rev("other/c", "3");
    struct bg b;
    bg_start(&b, (const char *const[]){"-o", "json", "watch", "agents/",
                                       "--prefix", "--rev", "0", NULL});
    char *out = bg_wait_lines(&b, 2, 10000);
    cr_assert_eq(lines(out), 2, "%s", out);
    assert_has(out, "{\"type\":\"put\",\"key\":\"agents/a\",\"value\":\"1\","
                    "\"version\":1,\"revision\":");
    assert_has(out, "\"key\":\"agents/b\",\"value\":\"{\\\"x\\\": 2}\"");
    assert_has(out, "\"shard\":");
    assert_has(out, "\"tier\":\"long\"");
    cr_assert(strstr(out, "other/c") == NULL, "%s", out);
    free(out);
    kill(b.pid, SIGINT);
    cr_assert_eq(bg_wait_exit(&b, 5000), 0);
    bg_fini(&b);
}

NODE_TEST(ctl_watch, usage_errors)
{
    char *err = NULL;
    cr_assert_eq(CTL(NULL, NULL, &err, "watch"), 2);
    free(err);
    cr_assert_eq(CTL(NULL, NULL, &err, "watch", "k", "--equals", "v"), 2);
    assert_has(err, "does not apply");
    free(err);
    cr_assert_eq(CTL(NULL, NULL, &err, "watch", "k", "--rev", "x"), 2);
    free(err);
    cr_assert_eq(CTL(NULL, NULL, &err, "-n", "Bad", "watch", "k"), 1);
    assert_has(err, "error: INVALID_ARGUMENT:");
    free(err);
}

/* ---- wait ---- */

NODE_TEST(ctl_wait, prints_the_value_once_it_exists)
{
    put_rev("ready/x", "go");
    char *out = NULL, *err = NULL;
    cr_assert_eq(CTL(NULL, &out, &err, "wait", "ready/x"), 0, "%s", err);
    cr_assert_str_eq(out, "go\n");
    free(out);
    free(err);
    struct bg b;
    bg_start(&b, (const char *const[]){"wait", "gate", "--equals", "open",
                                       "--timeout", "20s", "--meta", NULL});
    put_rev("gate", "closed");
    put_rev("gate", "open");
    cr_assert_eq(bg_wait_exit(&b, 20000), 0);
    out = file_read(b.out_path);
    cr_assert_eq(strncmp(out, "open\n", 5), 0, "%s", out);
    assert_has(out, "\nversion=");
    free(out);
    bg_fini(&b);
    bg_start(&b, (const char *const[]){"-o", "json", "wait", "gate",
                                       "--version", "3", NULL});
    put_rev("gate", "third");
    cr_assert_eq(bg_wait_exit(&b, 20000), 0);
    out = file_read(b.out_path);
    assert_has(out, "\"value\":\"third\",\"version\":3,");
    free(out);
    bg_fini(&b);
}

NODE_TEST(ctl_wait, timeout_exits_1_with_timeout)
{
    char *out = NULL, *err = NULL;
    int64_t t0 = harness_now_ms();
    cr_assert_eq(CTL(NULL, &out, &err, "wait", "nope", "--timeout", "300ms"),
                 1);
    cr_assert_geq(harness_now_ms() - t0, 300);
    cr_assert_str_eq(out, "");
    cr_assert_str_eq(err, "error: TIMEOUT: nope did not exist within 300 ms\n");
    free(out);
    free(err);
    put_rev("nope", "now it does");
    cr_assert_eq(CTL(NULL, &out, &err, "wait", "nope", "--equals", "x",
                     "--timeout", "200ms"),
                 1);
    cr_assert_str_eq(err, "error: TIMEOUT: nope did not take the value waited "
                          "for within 200 ms (it is at version 1)\n");
    free(out);
    free(err);
    cr_assert_eq(CTL(NULL, &out, &err, "wait", "nope", "--equals", "x",
                     "--version", "2"),
                 2);
    assert_has(err, "not both");
    free(out);
    free(err);
}
