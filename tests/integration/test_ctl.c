/* Integration tests of memcoordctl against a real memcoord node.
 *
 * Each test starts its own node (tests/lib harness) and runs the built
 * memcoordctl as a process, capturing its stdout, stderr and exit status:
 * 0 on success, 1 on an error with "error: CODE: message" on stderr, 2 on a
 * usage error with the usage text. JSON output is checked field by field
 * (names of the issue, escaping, value_b64 for bytes that are not UTF-8);
 * values from stdin ('-') must arrive byte for byte. ls tells LIKE patterns
 * from prefixes (and --prefix, --like force either); txn reads its text
 * blocks or JSON from stdin and exits 0 whichever branch ran, 1 with the
 * line at fault or the {tag} advice otherwise. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Run memcoordctl --endpoints URL ARGS..., stdin from a string. */
#define CTL(in, out, err, ...) \
    harness_run_ctl(&node, (in), (out), (err), __VA_ARGS__, NULL)

/* Run it and require exit 0; returns stdout, which the caller frees. */
static char *ctl_ok(const char *const *args, const void *in, size_t in_len)
{
    const char *full[32] = {"--endpoints", node.url};
    size_t k = 2;
    for (size_t i = 0; args[i] != NULL; i++) {
        full[k++] = args[i];
    }
    full[k] = NULL;
    struct harness_ctl_out r;
    harness_ctl_exec(full, NULL, in, in_len, &r);
    cr_assert_eq(r.status, 0, "%s exited %d: %s", args[0], r.status, r.err);
    cr_assert_eq(r.err_len, 0, "stderr: %s", r.err);
    char *out = r.out;
    r.out = NULL;
    harness_ctl_out_fini(&r);
    return out;
}

#define OK(...) ctl_ok((const char *const[]){__VA_ARGS__, NULL}, NULL, 0)

static unsigned lines(const char *s)
{
    unsigned n = 0;
    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

static void assert_has(const char *hay, const char *needle)
{
    cr_assert(strstr(hay, needle) != NULL, "'%s' not in: %s", needle, hay);
}

/* ---- text ---- */

NODE_TEST(ctl_put, put_get_text)
{
    char *out = OK("put", "swarm/x", "hello");
    cr_assert_eq(strncmp(out, "OK version=1 ", 13), 0, "%s", out);
    free(out);
    out = OK("get", "swarm/x");
    cr_assert_str_eq(out, "hello\n", "get prints the value and a newline");
    free(out);
    out = OK("put", "swarm/x", "again");
    cr_assert_eq(strncmp(out, "OK version=2 ", 13), 0, "%s", out);
    free(out);
}

NODE_TEST(ctl_get, meta_prints_value_then_metadata)
{
    free(OK("put", "swarm/m", "hello", "--tier", "short", "--ttl", "5m"));
    char *out = OK("get", "swarm/m", "--meta");
    cr_assert_eq(strncmp(out, "hello\n", 6), 0, "%s", out);
    assert_has(out, "\nkey=swarm/m\n");
    assert_has(out, "\nversion=1\n");
    assert_has(out, "\ntier=short\n");
    assert_has(out, "\ncreate_rev=");
    assert_has(out, "\nmod_rev=");
    assert_has(out, "\nexpires_at=20"); /* a date, not never */
    assert_has(out, "\nupdated_at=20");
    free(out);
    free(OK("put", "swarm/l", "x", "--tier", "long"));
    out = OK("get", "swarm/l", "--meta", "--serializable");
    assert_has(out, "\ntier=long\n");
    assert_has(out, "\nexpires_at=never\n");
    free(out);
}

NODE_TEST(ctl_put, conflict_message_and_exit_code)
{
    free(OK("put", "swarm/x", "v1"));
    char *out, *err;
    int rc = CTL(NULL, &out, &err, "put", "swarm/x", "v2",
                 "--expect-version", "3");
    cr_assert_eq(rc, 1);
    cr_assert_str_eq(err, "error: CONFLICT: swarm/x is at version 1, "
                          "expected 3\n");
    cr_assert_str_eq(out, "");
    free(out);
    free(err);
    out = OK("put", "swarm/x", "v2", "--expect-version", "1");
    cr_assert_eq(strncmp(out, "OK version=2 ", 13), 0, "%s", out);
    free(out);
    rc = CTL(NULL, NULL, &err, "put", "swarm/new", "v", "--expect-version",
             "0");
    cr_assert_eq(rc, 0, "%s", err);
    free(err);
    rc = CTL(NULL, NULL, &err, "put", "swarm/new", "v", "--expect-version",
             "0");
    cr_assert_eq(rc, 1);
    cr_assert_eq(strncmp(err, "error: CONFLICT: ", 17), 0, "%s", err);
    free(err);
}

NODE_TEST(ctl_del, delete_with_and_without_version)
{
    free(OK("put", "d/1", "v"));
    free(OK("put", "d/1", "v"));
    char *err;
    cr_assert_eq(CTL(NULL, NULL, &err, "del", "d/1", "--expect-version", "1"),
                 1);
    cr_assert_eq(strncmp(err, "error: CONFLICT: ", 17), 0, "%s", err);
    free(err);
    free(OK("del", "d/1", "--expect-version", "2"));
    cr_assert_eq(CTL(NULL, NULL, &err, "get", "d/1"), 1);
    cr_assert_eq(strncmp(err, "error: NOT_FOUND: ", 18), 0, "%s", err);
    free(err);
    cr_assert_eq(CTL(NULL, NULL, &err, "del", "d/1"), 1);
    cr_assert_eq(strncmp(err, "error: NOT_FOUND: ", 18), 0, "%s", err);
    free(err);
}

NODE_TEST(ctl_put, stdin_is_binary_safe)
{
    static const uint8_t bin[] = {'a', 0, 'b', 0xff, '\n', 0xfe, 0};
    char *out = ctl_ok((const char *const[]){"put", "bin", "-", NULL}, bin,
                       sizeof bin);
    free(out);
    const char *args[] = {"--endpoints", node.url, "get", "bin", NULL};
    struct harness_ctl_out r;
    cr_assert_eq(harness_ctl_exec(args, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.out_len, sizeof bin + 1);
    cr_assert_arr_eq(r.out, bin, sizeof bin);
    cr_assert_eq(r.out[sizeof bin], '\n');
    harness_ctl_out_fini(&r);

    /* a text value with no trailing newline keeps none */
    free(ctl_ok((const char *const[]){"put", "txt", "-", NULL}, "line1\nline2",
                11));
    out = OK("get", "txt");
    cr_assert_str_eq(out, "line1\nline2\n");
    free(out);
}

NODE_TEST(ctl_put, too_large_and_invalid_input)
{
    size_t len = MC_VALUE_BYTES_MAX + 1;
    char *big = malloc(len);
    memset(big, 'x', len);
    const char *args[] = {"--endpoints", node.url, "put", "big", "-", NULL};
    struct harness_ctl_out r;
    cr_assert_eq(harness_ctl_exec(args, NULL, big, len, &r), 1);
    cr_assert_eq(strncmp(r.err, "error: TOO_LARGE: ", 18), 0, "%s", r.err);
    harness_ctl_out_fini(&r);
    free(big);

    char *err;
    cr_assert_eq(CTL(NULL, NULL, &err, "put", "", "v"), 1);
    cr_assert_eq(strncmp(err, "error: INVALID_ARGUMENT: ", 25), 0, "%s", err);
    free(err);
    cr_assert_eq(CTL(NULL, NULL, &err, "put", "\xc0\xaf", "v"), 1);
    cr_assert_eq(strncmp(err, "error: INVALID_ARGUMENT: ", 25), 0, "%s", err);
    free(err);
    cr_assert_eq(CTL(NULL, NULL, &err, "-n", "Bad_NS", "get", "k"), 1);
    cr_assert_eq(strncmp(err, "error: INVALID_ARGUMENT: ", 25), 0, "%s", err);
    free(err);
    cr_assert_eq(CTL(NULL, NULL, &err, "put", "k", "v", "--tier", "long",
                     "--ttl", "1h"),
                 1);
    cr_assert_eq(strncmp(err, "error: INVALID_ARGUMENT: ", 25), 0, "%s", err);
    free(err);
}

NODE_TEST(ctl_put, namespaces)
{
    free(OK("-n", "team1", "put", "k", "in team1"));
    char *err;
    cr_assert_eq(CTL(NULL, NULL, &err, "get", "k"), 1, "default is separate");
    free(err);
    char *out = OK("get", "k", "--namespace", "team1");
    cr_assert_str_eq(out, "in team1\n");
    free(out);
    out = OK("--namespace=team1", "ls", "--keys-only");
    cr_assert_str_eq(out, "k\n");
    free(out);
}

/* ---- usage ---- */

static void assert_usage(const char *const *args)
{
    const char *full[16] = {"--endpoints", node.url};
    size_t k = 2;
    for (size_t i = 0; args[i] != NULL; i++) {
        full[k++] = args[i];
    }
    full[k] = NULL;
    struct harness_ctl_out r;
    harness_ctl_exec(full, NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 2, "'%s ...' exited %d: %s", args[0] ? args[0] : "",
                 r.status, r.err);
    assert_has(r.err, "usage: memcoordctl");
    cr_assert_eq(r.out_len, 0);
    harness_ctl_out_fini(&r);
}

#define USAGE(...) assert_usage((const char *const[]){__VA_ARGS__, NULL})

NODE_TEST(ctl_main, usage_errors_exit_2)
{
    assert_usage((const char *const[]){NULL});
    USAGE("frobnicate");
    USAGE("get");
    USAGE("get", "a", "b");
    USAGE("put", "k");
    USAGE("put", "k", "v", "extra");
    USAGE("status", "x");
    USAGE("get", "k", "--bogus");
    USAGE("put", "k", "v", "--ttl", "5");
    USAGE("put", "k", "v", "--ttl", "5x");
    USAGE("put", "k", "v", "--ttl");
    USAGE("put", "k", "v", "--tier", "medium");
    USAGE("put", "k", "v", "--expect-version", "-1");
    USAGE("put", "k", "v", "--expect-version", "abc");
    USAGE("ls", "--limit", "0");
    USAGE("-o", "yaml", "status");
    USAGE("get", "k", "--ttl", "5s");
    USAGE("del", "k", "--keys-only");
    USAGE("--timeout", "never", "status");

    const char *help[] = {"--help", NULL};
    struct harness_ctl_out r;
    cr_assert_eq(harness_ctl_exec(help, NULL, NULL, 0, &r), 0);
    assert_has(r.out, "usage: memcoordctl");
    assert_has(r.out, "--expect-version");
    harness_ctl_out_fini(&r);
}

NODE_TEST(ctl_main, endpoints_from_the_environment)
{
    char env[128];
    snprintf(env, sizeof env, "MEMCOORD_ENDPOINTS=%s", node.url);
    const char *envs[] = {env, NULL};
    const char *args[] = {"put", "e", "v", NULL};
    struct harness_ctl_out r;
    cr_assert_eq(harness_ctl_exec(args, envs, NULL, 0, &r), 0, "%s", r.err);
    harness_ctl_out_fini(&r);

    /* --endpoints wins over the environment; a dead node is UNAVAILABLE */
    const char *dead[] = {"--endpoints", "tcp://127.0.0.1:1", "--timeout",
                          "300ms", "get", "e", NULL};
    cr_assert_eq(harness_ctl_exec(dead, envs, NULL, 0, &r), 1);
    cr_assert_eq(strncmp(r.err, "error: UNAVAILABLE: ", 20), 0, "%s", r.err);
    harness_ctl_out_fini(&r);
}

/* ---- JSON ---- */

NODE_TEST(ctl_output, json_field_names)
{
    char *out = OK("-o", "json", "put", "swarm/j", "hello");
    cr_assert_eq(out[0], '{');
    assert_has(out, "\"key\":\"swarm/j\"");
    assert_has(out, "\"version\":1,");
    assert_has(out, "\"create_rev\":");
    assert_has(out, "\"mod_rev\":");
    cr_assert_eq(lines(out), 1);
    free(out);

    out = OK("-o", "json", "get", "swarm/j");
    cr_assert_eq(lines(out), 1);
    cr_assert_eq(strncmp(out, "{\"key\":\"swarm/j\",\"value\":\"hello\",", 33),
                 0, "%s", out);
    assert_has(out, "\"version\":1,");
    assert_has(out, "\"create_rev\":");
    assert_has(out, "\"mod_rev\":");
    assert_has(out, "\"tier\":\"long\"");
    assert_has(out, "\"expires_at\":0,");
    assert_has(out, "\"updated_at\":1");
    cr_assert_eq(strcmp(out + strlen(out) - 2, "}\n"), 0, "%s", out);
    free(out);

    free(OK("put", "swarm/s", "v", "--ttl", "30s"));
    out = OK("get", "swarm/s", "-o", "json");
    assert_has(out, "\"tier\":\"short\"");
    cr_assert_null(strstr(out, "\"expires_at\":0,"), "%s", out);
    free(out);
}

NODE_TEST(ctl_output, json_escapes_and_value_b64)
{
    const char tricky[] = "q\"b\\s\n\t\x01\x1f\xc3\xa9";
    free(ctl_ok((const char *const[]){"put", "esc", "-", NULL}, tricky,
                sizeof tricky - 1));
    char *out = OK("get", "esc", "-o", "json");
    assert_has(out, "\"value\":\"q\\\"b\\\\s\\u000a\\u0009\\u0001\\u001f"
                    "\xc3\xa9\"");
    free(out);

    static const uint8_t bin[] = {0xff, 0xfe, 0x00, 0x01};
    free(ctl_ok((const char *const[]){"put", "bin", "-", NULL}, bin,
                sizeof bin));
    out = OK("get", "bin", "-o", "json");
    assert_has(out, "\"value_b64\":\"//4AAQ==\"");
    cr_assert_null(strstr(out, "\"value\":"), "%s", out);
    free(out);
}

NODE_TEST(ctl_output, json_errors_on_stderr)
{
    free(OK("put", "swarm/x", "v"));
    free(OK("put", "swarm/x", "v"));
    free(OK("put", "swarm/x", "v"));
    free(OK("put", "swarm/x", "v"));
    char *out, *err;
    cr_assert_eq(CTL(NULL, &out, &err, "-o", "json", "put", "swarm/x", "v",
                     "--expect-version", "3"),
                 1);
    cr_assert_str_eq(out, "");
    cr_assert_str_eq(err, "{\"error\":\"CONFLICT\",\"message\":\"swarm/x is "
                          "at version 4, expected 3\",\"version\":4}\n");
    free(out);
    free(err);
}

/* ---- ls ---- */

NODE_TEST(ctl_ls, text_json_prefix_and_limit)
{
    free(OK("put", "b/2", "two"));
    free(OK("put", "a/1", "one\tand\nnewline"));
    free(OK("put", "b/1", "one", "--tier", "mid"));
    free(OK("put", "c", "\xff"));
    char *out = OK("ls");
    cr_assert_str_eq(out, "a/1\t1\tlong\tone\\tand\\nnewline\n"
                          "b/1\t1\tmid\tone\n"
                          "b/2\t1\tlong\ttwo\n"
                          "c\t1\tlong\t\\xff\n");
    free(out);
    out = OK("ls", "b/", "--keys-only");
    cr_assert_str_eq(out, "b/1\nb/2\n");
    free(out);
    out = OK("ls", "--limit", "3", "--keys-only", "--serializable");
    cr_assert_str_eq(out, "a/1\nb/1\nb/2\n");
    free(out);
    out = OK("-o", "json", "ls", "b/");
    cr_assert_eq(lines(out), 2);
    cr_assert_eq(strncmp(out, "{\"key\":\"b/1\",\"value\":\"one\",", 27), 0,
                 "%s", out);
    assert_has(out, "\"tier\":\"mid\"");
    free(out);
    out = OK("-o", "json", "ls", "--keys-only");
    cr_assert_eq(lines(out), 4);
    cr_assert_null(strstr(out, "\"value"), "%s", out);
    free(out);
    out = OK("ls", "zzz");
    cr_assert_str_eq(out, "");
    free(out);
}

NODE_TEST(ctl_ls, pages_past_one_thousand_keys)
{
    mc_client *c;
    mc_result res;
    cr_assert_eq(mc_client_open(node.url, NULL, &c, &res), MC_OK);
    enum { N = 1105 };
    for (int i = 0; i < N; i++) {
        char k[32];
        snprintf(k, sizeof k, "many/%05d", i);
        cr_assert_eq(mc_put(c, "default", k, "v", 1, NULL, &res), MC_OK,
                     "%s", res.message);
    }
    mc_client_close(c);
    char *out = OK("ls", "many/", "--keys-only");
    cr_assert_eq(lines(out), N);
    char *line = out;
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "many/%05d\n", i);
        cr_assert_eq(strncmp(line, want, strlen(want)), 0, "line %d", i);
        line += strlen(want);
    }
    free(out);
    out = OK("ls", "many/", "--keys-only", "--limit", "1001");
    cr_assert_eq(lines(out), 1001);
    free(out);
}

NODE_TEST(ctl_ls, like_patterns_and_forced_modes)
{
    free(OK("put", "swarm/a/status", "1"));
    free(OK("put", "swarm/b/status", "2"));
    free(OK("put", "swarm/b/notes", "3"));
    free(OK("put", "swarm/a_b", "4"));
    free(OK("put", "swarm/axb", "5"));
    free(OK("put", "swarm/a_bc", "6"));
    free(OK("put", "swarm/shared/api-contract", "7"));
    char *out = OK("ls", "swarm/%/status", "--keys-only");
    cr_assert_str_eq(out, "swarm/a/status\nswarm/b/status\n");
    free(out);
    out = OK("ls", "swarm/shared/%-contract");
    cr_assert_str_eq(out, "swarm/shared/api-contract\t1\tlong\t7\n");
    free(out);
    /* An unescaped '_' makes a pattern: one character, exactly. */
    out = OK("ls", "swarm/a_b", "--keys-only");
    cr_assert_str_eq(out, "swarm/a_b\nswarm/axb\n");
    free(out);
    /* --prefix takes it literally, as a prefix. */
    out = OK("ls", "swarm/a_b", "--prefix", "--keys-only");
    cr_assert_str_eq(out, "swarm/a_b\nswarm/a_bc\n");
    free(out);
    /* No wildcard: a prefix; --like makes it an exact pattern. */
    out = OK("ls", "swarm/ax", "--keys-only");
    cr_assert_str_eq(out, "swarm/axb\n");
    free(out);
    out = OK("ls", "swarm/ax", "--like", "--keys-only");
    cr_assert_str_eq(out, "");
    free(out);
    out = OK("ls", "swarm/a\\_b%", "--keys-only");
    cr_assert_str_eq(out, "swarm/a_b\nswarm/a_bc\n");
    free(out);
    out = OK("-o", "json", "ls", "swarm/%/status", "--limit", "1");
    cr_assert_eq(lines(out), 1);
    assert_has(out, "{\"key\":\"swarm/a/status\",\"value\":\"1\"");
    free(out);
    char *err;
    cr_assert_eq(CTL(NULL, NULL, &err, "ls", "swarm/%\\"), 1);
    cr_assert_str_eq(err, "error: INVALID_ARGUMENT: pattern ends in a lone "
                          "'\\' (escape it as '\\\\')\n");
    free(err);
    USAGE("ls", "x", "--prefix", "--like");
    USAGE("get", "x", "--like");
}

/* ---- txn ---- */

/* memcoordctl txn with stdin in; *out and *err as CTL gives them. */
static int txn_run(const char *in, char **out, char **err, const char *opt1,
                   const char *opt2)
{
    const char *args[8] = {"--endpoints", node.url};
    size_t k = 2;
    if (opt1 != NULL) {
        args[k++] = opt1;
    }
    if (opt2 != NULL) {
        args[k++] = opt2;
    }
    args[k++] = "txn";
    args[k] = NULL;
    struct harness_ctl_out r;
    int rc = harness_ctl_exec(args, NULL, in, strlen(in), &r);
    *out = r.out;
    *err = r.err;
    r.out = r.err = NULL;
    harness_ctl_out_fini(&r);
    return rc;
}

NODE_TEST(ctl_txn, text_blocks_then_and_else)
{
    static const char claim[] =
        "# claim the job if nobody holds it\n"
        "version(\"{job}/x\") = 0\n"
        "missing(\"{job}/lock\")\n"
        "\n"
        "put {job}/x \"hello world\" --tier short --ttl 5m\n"
        "put {job}/lock agent-7\n"
        "get {job}/x\n"
        "del {job}/nothing\n"
        "\n"
        "get {job}/lock\n";
    char *out, *err;
    cr_assert_eq(txn_run(claim, &out, &err, NULL, NULL), 0, "%s", err);
    cr_assert_str_eq(err, "");
    cr_assert_eq(strncmp(out, "THEN revision=", 14), 0, "%s", out);
    cr_assert_eq(lines(out), 5, "%s", out);
    assert_has(out, "\nput {job}/x OK version=1 create_rev=");
    assert_has(out, "\nput {job}/lock OK version=1 ");
    assert_has(out, "\nget {job}/x OK version=1 tier=short value=hello "
                    "world\n");
    assert_has(out, "\ndel {job}/nothing NOT_FOUND\n");
    free(out);
    free(err);
    /* Again: the compares fail, the else operations run; still exit 0. */
    cr_assert_eq(txn_run(claim, &out, &err, NULL, NULL), 0, "%s", err);
    cr_assert_eq(strncmp(out, "ELSE revision=", 14), 0, "%s", out);
    assert_has(out, "\nget {job}/lock OK version=1 tier=long value=agent-7\n");
    cr_assert_eq(lines(out), 2);
    free(out);
    free(err);
    char *v = OK("get", "{job}/x", "--meta");
    assert_has(v, "hello world\n");
    assert_has(v, "\ntier=short\n");
    free(v);
    /* value compares, no compares at all, escapes in quoted strings */
    cr_assert_eq(txn_run("value(\"{job}/x\") != \"hello world\"\n\nput "
                         "{job}/y a\n\nput {job}/y \"b\\tc\\x21\"\n",
                         &out, &err, NULL, NULL),
                 0, "%s", err);
    cr_assert_eq(strncmp(out, "ELSE ", 5), 0, "%s", out);
    free(out);
    free(err);
    v = OK("get", "{job}/y");
    cr_assert_str_eq(v, "b\tc!\n");
    free(v);
    cr_assert_eq(txn_run("\nget {job}/y\n", &out, &err, NULL, NULL), 0, "%s",
                 err);
    cr_assert_eq(strncmp(out, "THEN ", 5), 0, "%s", out);
    assert_has(out, "get {job}/y OK version=1 tier=long value=b\\tc!\n");
    free(out);
    free(err);
}

NODE_TEST(ctl_txn, json_in_and_out)
{
    free(OK("put", "{j}/n", "5"));
    static const char in[] =
        "{\"compare\": [{\"key\": \"{j}/n\", \"target\": \"version\", "
        "\"op\": \"=\", \"version\": 1},\n"
        "  {\"key\": \"{j}/n\", \"target\": \"value\", \"op\": \"=\", "
        "\"value\": \"5\"}],\n"
        " \"then\": [{\"op\": \"put\", \"key\": \"{j}/n\", \"value\": "
        "\"6\"}, {\"op\": \"put\", \"key\": \"{j}/bin\", \"value_b64\": "
        "\"AP8=\"}, {\"op\": \"get\", \"key\": \"{j}/n\"}],\n"
        " \"else\": [{\"op\": \"get\", \"key\": \"{j}/n\"}]}\n";
    char *out, *err;
    cr_assert_eq(txn_run(in, &out, &err, "-o", "json"), 0, "%s", err);
    cr_assert_eq(lines(out), 1, "%s", out);
    cr_assert_eq(strncmp(out, "{\"succeeded\":true,\"branch\":\"then\","
                              "\"revision\":", 44),
                 0, "%s", out);
    assert_has(out, "\"results\":[{\"op\":\"put\",\"key\":\"{j}/n\","
                    "\"code\":\"OK\",\"version\":2,");
    assert_has(out, "{\"op\":\"get\",\"key\":\"{j}/n\",\"code\":\"OK\","
                    "\"record\":{\"key\":\"{j}/n\",\"value\":\"6\",");
    free(out);
    free(err);
    const char *args[] = {"--endpoints", node.url, "get", "{j}/bin", NULL};
    struct harness_ctl_out r;
    cr_assert_eq(harness_ctl_exec(args, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.out_len, 3);
    cr_assert_eq((uint8_t)r.out[0], 0x00);
    cr_assert_eq((uint8_t)r.out[1], 0xff);
    harness_ctl_out_fini(&r);
    /* --json takes JSON that does not start with '{' right away */
    cr_assert_eq(txn_run("  \n{\"then\": [{\"op\": \"del\", \"key\": "
                         "\"{j}/n\"}]}",
                         &out, &err, "--json", NULL),
                 0, "%s", err);
    assert_has(out, "THEN revision=");
    assert_has(out, "\ndel {j}/n OK version=2 ");
    free(out);
    free(err);
}

NODE_TEST(ctl_txn, errors_exit_1_and_say_where)
{
    char *out, *err;
    cr_assert_eq(txn_run("version(\"k\") = 1\n\nfrob k\n", &out, &err, NULL,
                         NULL),
                 1);
    cr_assert_str_eq(out, "");
    cr_assert_str_eq(err, "error: INVALID_ARGUMENT: line 3: 'frob' is not "
                          "put, del or get (a compare belongs in the first "
                          "block)\n");
    free(out);
    free(err);
    cr_assert_eq(txn_run("get k\n", &out, &err, NULL, NULL), 1);
    assert_has(err, "line 1: 'get' is an operation");
    free(out);
    free(err);
    cr_assert_eq(txn_run("exists(\"k\")\n\nput k \"open\n", &out, &err, NULL,
                         NULL),
                 1);
    assert_has(err, "line 3: value: no closing quote");
    free(out);
    free(err);
    cr_assert_eq(txn_run("", &out, &err, NULL, NULL), 1);
    assert_has(err, "empty");
    free(out);
    free(err);
    cr_assert_eq(txn_run("{\"then\": [{\"op\": \"put\", \"key\": \"k\"}]}",
                         &out, &err, NULL, NULL),
                 1);
    assert_has(err, "JSON: then[0]: a put needs a \"value\"");
    free(out);
    free(err);
    /* Keys of two shards: the library says so before sending. */
    char a[64], b[64];
    harness_key_in_shard("default", 8, "x", 1, a, sizeof a);
    harness_key_in_shard("default", 8, "x", 6, b, sizeof b);
    char in[256];
    snprintf(in, sizeof in, "\nput %s 1\nput %s 2\n", a, b);
    cr_assert_eq(txn_run(in, &out, &err, NULL, NULL), 1);
    assert_has(err, "error: INVALID_ARGUMENT: transaction keys span shards 1");
    assert_has(err, "put a common {tag} in the keys");
    free(out);
    free(err);
    cr_assert_eq(txn_run(in, &out, &err, "-o", "json"), 1);
    cr_assert_eq(strncmp(err, "{\"error\":\"INVALID_ARGUMENT\",\"message\":"
                              "\"transaction keys span shards",
                         67),
                 0, "%s", err);
    free(out);
    free(err);
    USAGE("txn", "extra");
    USAGE("ls", "--json");
}

/* ---- status ---- */

NODE_TEST(ctl_status, text_and_json)
{
    char *out = OK("status");
    cr_assert_eq(strncmp(out, "node ", 5), 0, "%s", out);
    assert_has(out, "uptime");
    assert_has(out, "SHARD");
    assert_has(out, "LEADER");
    cr_assert_geq(lines(out), 2 + 8, "%s", out);
    free(out);
    out = OK("status", "-o", "json");
    cr_assert_eq(lines(out), 1);
    assert_has(out, "\"node_id\":");
    assert_has(out, "\"uptime_ms\":");
    assert_has(out, "\"shards\":[{\"id\":0,");
    assert_has(out, "\"slot_hi\":16383");
    assert_has(out, "\"is_leader\":true");
    assert_has(out, "\"records\":{\"short\":");
    free(out);
}
