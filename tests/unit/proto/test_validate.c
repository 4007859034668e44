/* Unit tests of proto/validate.c: namespaces, keys, prefixes, UTF-8 and
 * whole requests, each as a table of inputs and the verdict expected.
 * Every rejection must also say why in err. */
#include <criterion/criterion.h>
#include <stdio.h>
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
    c[n] = (struct req_case){"list pattern", base_request(MCPB__OP__OP_LIST),
                             MC_OK};
    c[n].req.has_pattern = true;
    c[n].req.pattern.data = (uint8_t *)"swarm/%/status";
    c[n++].req.pattern.len = 14;
    c[n] = (struct req_case){"list pattern ending in a lone backslash",
                             base_request(MCPB__OP__OP_LIST),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_pattern = true;
    c[n].req.pattern.data = (uint8_t *)"swarm/%\\";
    c[n++].req.pattern.len = 8;
    c[n] = (struct req_case){"list pattern not UTF-8",
                             base_request(MCPB__OP__OP_LIST),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_pattern = true;
    c[n].req.pattern.data = (uint8_t *)"a\xff%";
    c[n++].req.pattern.len = 3;
    c[n] = (struct req_case){"list pattern empty",
                             base_request(MCPB__OP__OP_LIST),
                             MC_INVALID_ARGUMENT};
    c[n++].req.has_pattern = true;
    c[n] = (struct req_case){"list pattern and prefix",
                             base_request(MCPB__OP__OP_LIST),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_pattern = true;
    c[n].req.pattern.data = (uint8_t *)"a%";
    c[n].req.pattern.len = 2;
    c[n].req.has_prefix = true;
    c[n].req.prefix.data = (uint8_t *)"a";
    c[n++].req.prefix.len = 1;
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

/* ---- transactions ---- */

static Mcpb__TxnCompare t_cmps[MC_TXN_OPS_MAX + 1];
static Mcpb__TxnCompare *t_cmp_ptrs[MC_TXN_OPS_MAX + 1];
static Mcpb__TxnOp t_ops[MC_TXN_OPS_MAX + 1];
static Mcpb__TxnOp *t_op_ptrs[MC_TXN_OPS_MAX + 1];

static void key_set(ProtobufCBinaryData *b, const char *key)
{
    b->data = (uint8_t *)key;
    b->len = strlen(key);
}

/* A transaction of n_cmp version compares and n_then puts, on keys
 * {t}/0, {t}/1, ... (all in one slot). */
static Mcpb__Request txn_request(size_t n_cmp, size_t n_then)
{
    static char keys[MC_TXN_OPS_MAX + 1][16];
    Mcpb__Request r = base_request(MCPB__OP__OP_TXN);
    r.has_key = false;
    for (size_t i = 0; i <= MC_TXN_OPS_MAX; i++) {
        snprintf(keys[i], sizeof keys[i], "{t}/%zu", i);
        mcpb__txn_compare__init(&t_cmps[i]);
        t_cmps[i].target = MCPB__TXN_TARGET__TXN_TARGET_VERSION;
        key_set(&t_cmps[i].key, keys[i]);
        t_cmps[i].has_version = true;
        t_cmps[i].version = 3;
        t_cmp_ptrs[i] = &t_cmps[i];
        mcpb__txn_op__init(&t_ops[i]);
        t_ops[i].op = MCPB__OP__OP_PUT;
        key_set(&t_ops[i].key, keys[i]);
        t_ops[i].has_value = true;
        key_set(&t_ops[i].value, "v");
        t_op_ptrs[i] = &t_ops[i];
    }
    r.compares = t_cmp_ptrs;
    r.n_compares = n_cmp;
    r.then_ops = t_op_ptrs;
    r.n_then_ops = n_then;
    return r;
}

static mc_err txn_verdict(const Mcpb__Request *r, char *err, size_t len)
{
    err[0] = '\0';
    return proto_request_check(r, VALUE_MAX, err, len);
}

Test(proto_request_check, txn_counts_every_compare_and_operation)
{
    char err[256];
    Mcpb__Request r = txn_request(1, 2);
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_OK, "%s", err);
    r = txn_request(64, 64);
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_OK, "%s", err);
    r = txn_request(65, 64);
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_INVALID_ARGUMENT);
    cr_expect(strstr(err, "129") != NULL && strstr(err, "128") != NULL, "%s",
              err);
    r = txn_request(0, MC_TXN_OPS_MAX + 1);
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_INVALID_ARGUMENT);
    r = txn_request(0, 0);
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_INVALID_ARGUMENT);
    cr_expect_neq(err[0], '\0');
    r = txn_request(1, 0); /* compares alone are a transaction */
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_OK, "%s", err);
}

Test(proto_request_check, txn_names_the_bad_part)
{
    char err[256];
    Mcpb__Request r = txn_request(2, 3);
    t_ops[1].key.len = 0;
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_INVALID_ARGUMENT);
    cr_expect(strstr(err, "then_ops[1]: key is empty") != NULL, "%s", err);

    r = txn_request(2, 3);
    t_cmps[1].has_cmp = true;
    t_cmps[1].cmp = MCPB__TXN_CMP__TXN_CMP_LT;
    t_cmps[1].target = MCPB__TXN_TARGET__TXN_TARGET_VALUE;
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_INVALID_ARGUMENT);
    cr_expect(strstr(err, "compares[1]") != NULL, "%s", err);

    r = txn_request(1, 1);
    t_cmps[0].target = 9;
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_INVALID_ARGUMENT);

    r = txn_request(1, 1);
    t_cmps[0].has_cmp = true;
    t_cmps[0].cmp = 7;
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_INVALID_ARGUMENT);

    r = txn_request(0, 2);
    r.else_ops = &t_op_ptrs[1];
    r.n_else_ops = 1;
    t_ops[1].has_tier = true;
    t_ops[1].tier = MC_TIER_LONG;
    t_ops[1].has_ttl_ms = true;
    t_ops[1].ttl_ms = 5000;
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_INVALID_ARGUMENT);
    cr_expect(strstr(err, "long tier") != NULL, "%s", err);

    r = txn_request(0, 1);
    t_ops[0].op = MCPB__OP__OP_LIST;
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_INVALID_ARGUMENT);
    cr_expect(strstr(err, "then_ops[0]") != NULL, "%s", err);

    r = txn_request(0, 1);
    r.ns.data = (uint8_t *)"BAD";
    r.ns.len = 3;
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_INVALID_ARGUMENT);
}

Test(proto_request_check, txn_values_together_within_the_value_limit)
{
    char err[256];
    Mcpb__Request r = txn_request(1, 2);
    t_ops[0].value.data = big;
    t_ops[0].value.len = VALUE_MAX / 2;
    t_ops[1].value.data = big;
    t_ops[1].value.len = VALUE_MAX / 2;
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_OK, "%s", err);
    t_cmps[0].target = MCPB__TXN_TARGET__TXN_TARGET_VALUE;
    t_cmps[0].has_value = true;
    t_cmps[0].value.data = big;
    t_cmps[0].value.len = 1;
    cr_expect_eq(txn_verdict(&r, err, sizeof err), MC_TOO_LARGE);
    cr_expect(strstr(err, "together") != NULL, "%s", err);
}

Test(proto_txn_shard, one_shard_or_the_tag_advice)
{
    char err[256] = "";
    Mcpb__Request r = txn_request(3, 3);
    uint32_t shard;
    cr_assert_eq(txn_verdict(&r, err, sizeof err), MC_OK, "%s", err);
    cr_expect_eq(proto_txn_shard(&r, 8, &shard, err, sizeof err), MC_OK,
                 "%s", err);
    uint32_t want = proto_shard_of_slot(
        proto_slot(r.ns.data, r.ns.len, (const uint8_t *)"t", 1), 8);
    cr_expect_eq(shard, want, "{t} keys hash by their tag");
    const uint8_t *k;
    size_t k_len;
    cr_assert(proto_route_key(&r, &k, &k_len));
    cr_expect_eq(k, t_cmps[0].key.data, "routed by the first key");

    /* Two keys without a tag that land in different shards. */
    static char a[16], b[16];
    snprintf(a, sizeof a, "job/a");
    uint32_t sa = proto_shard_of_slot(
        proto_slot(r.ns.data, r.ns.len, (const uint8_t *)a, strlen(a)), 8);
    for (unsigned i = 0;; i++) {
        snprintf(b, sizeof b, "job/b%u", i);
        if (proto_shard_of_slot(proto_slot(r.ns.data, r.ns.len,
                                           (const uint8_t *)b, strlen(b)),
                                8) != sa) {
            break;
        }
    }
    r = txn_request(1, 1);
    key_set(&t_cmps[0].key, a);
    key_set(&t_ops[0].key, b);
    cr_expect_eq(proto_txn_shard(&r, 8, &shard, err, sizeof err),
                 MC_INVALID_ARGUMENT);
    cr_expect(strstr(err, "transaction keys span shards") != NULL, "%s", err);
    cr_expect(strstr(err, "{tag}") != NULL, "%s", err);
    cr_expect(strstr(err, a) != NULL && strstr(err, b) != NULL, "%s", err);
    /* With one shard, everything is together. */
    cr_expect_eq(proto_txn_shard(&r, 1, &shard, err, sizeof err), MC_OK);
    cr_expect_eq(shard, 0);
}

/* Watch names a key, or a prefix and its shard; wait a known condition;
 * neither may wait longer than MC_WATCH_WAIT_MS_MAX. */
static size_t watch_cases(struct req_case *c)
{
    size_t n = 0;
    c[n++] = (struct req_case){"watch key", base_request(MCPB__OP__OP_WATCH),
                               MC_OK};
    c[n] = (struct req_case){"watch prefix",
                             base_request(MCPB__OP__OP_WATCH), MC_OK};
    c[n].req.has_key = false;
    c[n].req.has_prefix = true;
    c[n].req.prefix.data = (uint8_t *)"swarm/";
    c[n].req.prefix.len = 6;
    c[n].req.has_shard = true;
    c[n++].req.shard = 3;
    c[n] = (struct req_case){"watch empty prefix",
                             base_request(MCPB__OP__OP_WATCH), MC_OK};
    c[n].req.has_key = false;
    c[n].req.has_prefix = true;
    c[n++].req.has_shard = true;
    c[n] = (struct req_case){"watch prefix without shard",
                             base_request(MCPB__OP__OP_WATCH),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_key = false;
    c[n++].req.has_prefix = true;
    c[n] = (struct req_case){"watch key and prefix",
                             base_request(MCPB__OP__OP_WATCH),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_prefix = true;
    c[n++].req.has_shard = true;
    c[n] = (struct req_case){"watch neither",
                             base_request(MCPB__OP__OP_WATCH),
                             MC_INVALID_ARGUMENT};
    c[n++].req.has_key = false;
    c[n] = (struct req_case){"watch bad prefix",
                             base_request(MCPB__OP__OP_WATCH),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_key = false;
    c[n].req.has_prefix = true;
    c[n].req.prefix.data = (uint8_t *)"a\0b";
    c[n].req.prefix.len = 3;
    c[n++].req.has_shard = true;
    c[n] = (struct req_case){"watch prefix no ns",
                             base_request(MCPB__OP__OP_WATCH),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_key = false;
    c[n].req.has_ns = false;
    c[n].req.has_prefix = true;
    c[n++].req.has_shard = true;
    c[n] = (struct req_case){"watch wait at max",
                             base_request(MCPB__OP__OP_WATCH), MC_OK};
    c[n].req.has_wait_ms = true;
    c[n++].req.wait_ms = MC_WATCH_WAIT_MS_MAX;
    c[n] = (struct req_case){"watch wait over max",
                             base_request(MCPB__OP__OP_WATCH),
                             MC_INVALID_ARGUMENT};
    c[n].req.has_wait_ms = true;
    c[n++].req.wait_ms = MC_WATCH_WAIT_MS_MAX + 1;
    c[n] = (struct req_case){"wait exists", base_request(MCPB__OP__OP_WAIT),
                             MC_OK};
    c[n++].req.wait_for = MC_WAIT_EXISTS;
    c[n] = (struct req_case){"wait no condition",
                             base_request(MCPB__OP__OP_WAIT),
                             MC_INVALID_ARGUMENT};
    c[n++].req.wait_for = 0;
    c[n] = (struct req_case){"wait condition 4",
                             base_request(MCPB__OP__OP_WAIT),
                             MC_INVALID_ARGUMENT};
    c[n++].req.wait_for = 4;
    c[n] = (struct req_case){"wait equals", base_request(MCPB__OP__OP_WAIT),
                             MC_OK};
    c[n].req.wait_for = MC_WAIT_EQUALS;
    c[n].req.has_value = true;
    c[n].req.value.data = big;
    c[n++].req.value.len = VALUE_MAX;
    c[n] = (struct req_case){"wait equals no value",
                             base_request(MCPB__OP__OP_WAIT),
                             MC_INVALID_ARGUMENT};
    c[n++].req.wait_for = MC_WAIT_EQUALS;
    c[n] = (struct req_case){"wait equals value over max",
                             base_request(MCPB__OP__OP_WAIT), MC_TOO_LARGE};
    c[n].req.wait_for = MC_WAIT_EQUALS;
    c[n].req.has_value = true;
    c[n].req.value.data = big;
    c[n++].req.value.len = VALUE_MAX + 1;
    c[n] = (struct req_case){"wait version", base_request(MCPB__OP__OP_WAIT),
                             MC_OK};
    c[n].req.wait_for = MC_WAIT_VERSION;
    c[n].req.has_min_version = true;
    c[n++].req.min_version = 3;
    c[n] = (struct req_case){"wait version 0",
                             base_request(MCPB__OP__OP_WAIT),
                             MC_INVALID_ARGUMENT};
    c[n++].req.wait_for = MC_WAIT_VERSION;
    c[n] = (struct req_case){"wait no key", base_request(MCPB__OP__OP_WAIT),
                             MC_INVALID_ARGUMENT};
    c[n].req.wait_for = MC_WAIT_EXISTS;
    c[n++].req.has_key = false;
    c[n] = (struct req_case){"wait over max",
                             base_request(MCPB__OP__OP_WAIT),
                             MC_INVALID_ARGUMENT};
    c[n].req.wait_for = MC_WAIT_EXISTS;
    c[n].req.has_wait_ms = true;
    c[n++].req.wait_ms = MC_WATCH_WAIT_MS_MAX + 1;
    return n;
}

Test(proto_request_check, watch_and_wait)
{
    struct req_case cases[32];
    size_t n = watch_cases(cases);
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
