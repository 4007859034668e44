/* Unit tests of proto/validate.c: namespaces, keys, prefixes, UTF-8 and
 * whole requests, each as a table of inputs and the verdict expected.
 * Every rejection must also say why in err. */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/proto.h"

struct text_case {
    const char *bytes;
    size_t len; /* 0 = strlen(bytes) */
    mc_err want;
};

#define LEN(c) ((c)->len > 0 ? (c)->len : strlen((c)->bytes))

static void check_table(const char *what,
                        mc_err (*fn)(const uint8_t *, size_t, char *, size_t),
                        const struct text_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct text_case *c = &cases[i];
        char err[160] = "";
        mc_err got = fn((const uint8_t *)c->bytes, LEN(c), err, sizeof err);
        cr_expect_eq(got, c->want, "%s case %zu: got %s, want %s (%s)", what,
                     i, mc_errname(got), mc_errname(c->want), err);
        if (c->want != MC_OK) {
            cr_expect_neq(err[0], '\0', "%s case %zu has no reason", what, i);
        }
    }
}

static char ns_64[65], ns_65[66], key_1024[1025], key_1025[1026];

static void fill(char *s, size_t n, char c)
{
    memset(s, c, n);
    s[n] = '\0';
}

static void setup(void)
{
    fill(ns_64, 64, 'a');
    fill(ns_65, 65, 'a');
    fill(key_1024, 1024, 'k');
    fill(key_1025, 1025, 'k');
}

Test(proto_ns_check, table, .init = setup)
{
    const struct text_case cases[] = {
        {"a", 0, MC_OK},
        {"default", 0, MC_OK},
        {"team-1.agents_x", 0, MC_OK},
        {"0abc", 0, MC_OK},
        {ns_64, 0, MC_OK},
        {ns_65, 0, MC_INVALID_ARGUMENT},
        {"", 0, MC_INVALID_ARGUMENT},
        {"Default", 0, MC_INVALID_ARGUMENT},
        {"-a", 0, MC_INVALID_ARGUMENT},
        {".a", 0, MC_INVALID_ARGUMENT},
        {"_a", 0, MC_INVALID_ARGUMENT},
        {"a/b", 0, MC_INVALID_ARGUMENT},
        {"a b", 0, MC_INVALID_ARGUMENT},
        {"caf\xc3\xa9", 0, MC_INVALID_ARGUMENT},
        {"a\0b", 3, MC_INVALID_ARGUMENT},
    };
    check_table("ns", proto_ns_check, cases, sizeof cases / sizeof cases[0]);
}

Test(proto_key_check, table, .init = setup)
{
    const struct text_case cases[] = {
        {"a", 0, MC_OK},
        {"swarm/researcher/status", 0, MC_OK},
        {"caf\xc3\xa9", 0, MC_OK},                 /* 2-byte é */
        {"\xe2\x82\xac", 0, MC_OK},                /* 3-byte € */
        {"\xf0\x9f\x98\x80", 0, MC_OK},            /* 4-byte emoji */
        {"\xf4\x8f\xbf\xbf", 0, MC_OK},            /* U+10FFFF */
        {"\xef\xbf\xbf", 0, MC_OK},                /* U+FFFF */
        {"a b\tc", 0, MC_OK},                      /* controls but NUL ok */
        {key_1024, 0, MC_OK},
        {key_1025, 0, MC_INVALID_ARGUMENT},
        {"", 0, MC_INVALID_ARGUMENT},
        {"a\0b", 3, MC_INVALID_ARGUMENT},          /* NUL inside */
        {"\0", 1, MC_INVALID_ARGUMENT},
        {"\xc0\xaf", 0, MC_INVALID_ARGUMENT},      /* overlong '/' */
        {"\xc1\xbf", 0, MC_INVALID_ARGUMENT},      /* overlong 2-byte */
        {"\xe0\x80\xaf", 0, MC_INVALID_ARGUMENT},  /* overlong 3-byte */
        {"\xf0\x80\x80\xaf", 0, MC_INVALID_ARGUMENT}, /* overlong 4-byte */
        {"\xed\xa0\x80", 0, MC_INVALID_ARGUMENT},  /* surrogate D800 */
        {"\xed\xbf\xbf", 0, MC_INVALID_ARGUMENT},  /* surrogate DFFF */
        {"\xf4\x90\x80\x80", 0, MC_INVALID_ARGUMENT}, /* above U+10FFFF */
        {"\xf8\x88\x80\x80\x80", 0, MC_INVALID_ARGUMENT}, /* 5-byte form */
        {"\xff", 0, MC_INVALID_ARGUMENT},
        {"\x80", 0, MC_INVALID_ARGUMENT},          /* lone continuation */
        {"a\xe2\x82", 0, MC_INVALID_ARGUMENT},     /* truncated at the end */
        {"\xe2\x28\xa1", 0, MC_INVALID_ARGUMENT},  /* bad continuation */
    };
    check_table("key", proto_key_check, cases, sizeof cases / sizeof cases[0]);
}

Test(proto_prefix_check, table, .init = setup)
{
    const struct text_case cases[] = {
        {"", 0, MC_OK},
        {"swarm/", 0, MC_OK},
        {key_1024, 0, MC_OK},
        {key_1025, 0, MC_INVALID_ARGUMENT},
        {"a\0", 2, MC_INVALID_ARGUMENT},
        {"\xc0\xaf", 0, MC_INVALID_ARGUMENT},
    };
    check_table("prefix", proto_prefix_check, cases,
                sizeof cases / sizeof cases[0]);
}

Test(proto_utf8_valid, boundaries)
{
    cr_assert(proto_utf8_valid((const uint8_t *)"", 0));
    cr_assert(proto_utf8_valid((const uint8_t *)"\x7f", 1));
    cr_assert(proto_utf8_valid((const uint8_t *)"\xc2\x80", 2));
    cr_assert(proto_utf8_valid((const uint8_t *)"\xe0\xa0\x80", 3));
    cr_assert(proto_utf8_valid((const uint8_t *)"\xf0\x90\x80\x80", 4));
    cr_assert(proto_utf8_valid((const uint8_t *)"\xed\x9f\xbf", 3));
    cr_assert(proto_utf8_valid((const uint8_t *)"\xee\x80\x80", 3));
    cr_assert_not(proto_utf8_valid((const uint8_t *)"\xc2", 1));
    cr_assert_not(proto_utf8_valid((const uint8_t *)"\xf0\x90\x80", 3));
}

/* ---- proto_request_check ---- */

#define VALUE_MAX 100u

static uint8_t big[VALUE_MAX + 1];

static Mcpb__Request base_request(uint32_t op)
{
    Mcpb__Request r = MCPB__REQUEST__INIT;
    r.op = op;
    r.has_ns = true;
    r.ns.data = (uint8_t *)"default";
    r.ns.len = 7;
    r.has_key = true;
    r.key.data = (uint8_t *)"swarm/x";
    r.key.len = 7;
    return r;
}

struct req_case {
    const char *name;
    Mcpb__Request req;
    mc_err want;
};

static size_t request_cases(struct req_case *c)
{
    size_t n = 0;
    c[n++] = (struct req_case){"put", base_request(MCPB__OP__OP_PUT), MC_OK};
    c[n] = (struct req_case){"put no ns", base_request(MCPB__OP__OP_PUT),
                             MC_INVALID_ARGUMENT};
    c[n++].req.has_ns = false;
    c[n] = (struct req_case){"put no key", base_request(MCPB__OP__OP_PUT),
                             MC_INVALID_ARGUMENT};
    c[n++].req.has_key = false;
    c[n] = (struct req_case){"put bad ns", base_request(MCPB__OP__OP_PUT),
                             MC_INVALID_ARGUMENT};
    c[n++].req.ns.data = (uint8_t *)"DEFAULT";
    c[n] = (struct req_case){"put value at max",
                             base_request(MCPB__OP__OP_PUT), MC_OK};
    c[n].req.has_value = true;
    c[n].req.value.data = big;
    c[n++].req.value.len = VALUE_MAX;
    c[n] = (struct req_case){"put value over max",
                             base_request(MCPB__OP__OP_PUT), MC_TOO_LARGE};
    c[n].req.has_value = true;
    c[n].req.value.data = big;
    c[n++].req.value.len = VALUE_MAX + 1;
    c[n] = (struct req_case){"put tier 4", base_request(MCPB__OP__OP_PUT),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_tier = true;
    c[n++].req.tier = 4;
    c[n] = (struct req_case){"put long with ttl",
                             base_request(MCPB__OP__OP_PUT),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_tier = true;
    c[n].req.tier = MC_TIER_LONG;
    c[n].req.has_ttl_ms = true;
    c[n++].req.ttl_ms = 1000;
    c[n] = (struct req_case){"put short with ttl",
                             base_request(MCPB__OP__OP_PUT), MC_OK};
    c[n].req.has_tier = true;
    c[n].req.tier = MC_TIER_SHORT;
    c[n].req.has_ttl_ms = true;
    c[n++].req.ttl_ms = 1000;
    c[n] = (struct req_case){"put ttl too long",
                             base_request(MCPB__OP__OP_PUT),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_ttl_ms = true;
    c[n++].req.ttl_ms = MC_TTL_MS_MAX + 1;
    c[n] = (struct req_case){"put expect -1", base_request(MCPB__OP__OP_PUT),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_expect_version = true;
    c[n++].req.expect_version = -1;
    c[n] = (struct req_case){"put expect 0", base_request(MCPB__OP__OP_PUT),
                             MC_OK};
    c[n].req.has_expect_version = true;
    c[n++].req.expect_version = 0;
    c[n++] = (struct req_case){"delete", base_request(MCPB__OP__OP_DELETE),
                               MC_OK};
    c[n] = (struct req_case){"delete expect -5",
                             base_request(MCPB__OP__OP_DELETE),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_expect_version = true;
    c[n++].req.expect_version = -5;
    c[n++] = (struct req_case){"get", base_request(MCPB__OP__OP_GET), MC_OK};
    c[n] = (struct req_case){"get NUL key", base_request(MCPB__OP__OP_GET),
                             MC_INVALID_ARGUMENT};
    c[n].req.key.data = (uint8_t *)"a\0b";
    c[n++].req.key.len = 3;
    c[n] = (struct req_case){"get empty key", base_request(MCPB__OP__OP_GET),
                             MC_INVALID_ARGUMENT};
    c[n++].req.key.len = 0;
    c[n++] = (struct req_case){"list", base_request(MCPB__OP__OP_LIST),
                               MC_OK};
    c[n] = (struct req_case){"list no ns", base_request(MCPB__OP__OP_LIST),
                             MC_INVALID_ARGUMENT};
    c[n++].req.has_ns = false;
    c[n] = (struct req_case){"list limit at max",
                             base_request(MCPB__OP__OP_LIST), MC_OK};
    c[n].req.has_limit = true;
    c[n++].req.limit = MC_LIST_PAGE_MAX;
    c[n] = (struct req_case){"list limit over max",
                             base_request(MCPB__OP__OP_LIST),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_limit = true;
    c[n++].req.limit = MC_LIST_PAGE_MAX + 1;
    c[n] = (struct req_case){"list bad prefix",
                             base_request(MCPB__OP__OP_LIST),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_prefix = true;
    c[n].req.prefix.data = (uint8_t *)"\xc0\xaf";
    c[n++].req.prefix.len = 2;
    c[n] = (struct req_case){"list bad cursor",
                             base_request(MCPB__OP__OP_LIST),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_start_after = true;
    c[n].req.start_after.data = (uint8_t *)"\xed\xa0\x80";
    c[n++].req.start_after.len = 3;
    c[n++] = (struct req_case){"status", base_request(MCPB__OP__OP_STATUS),
                               MC_OK};
    c[n++] = (struct req_case){"op none", base_request(MCPB__OP__OP_NONE),
                               MC_INVALID_ARGUMENT};
    c[n++] = (struct req_case){"expire from a client",
                               base_request(MCPB__OP__OP_EXPIRE),
                               MC_INVALID_ARGUMENT};
    c[n++] = (struct req_case){"op 99", base_request(99),
                               MC_INVALID_ARGUMENT};
    return n;
}

Test(proto_request_check, table)
{
    struct req_case cases[64];
    size_t n = request_cases(cases);
    cr_assert_lt(n, sizeof cases / sizeof cases[0]);
    for (size_t i = 0; i < n; i++) {
        char err[160] = "";
        mc_err got = proto_request_check(&cases[i].req, VALUE_MAX, err,
                                         sizeof err);
        cr_expect_eq(got, cases[i].want, "%s: got %s, want %s (%s)",
                     cases[i].name, mc_errname(got),
                     mc_errname(cases[i].want), err);
        if (cases[i].want != MC_OK) {
            cr_expect_neq(err[0], '\0', "%s has no reason", cases[i].name);
        }
    }
}
