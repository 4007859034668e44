/* Integration test of list by SQL LIKE pattern on a real 3-node cluster
 * (8 shards of 3 replicas) whose nodes examine at most 7 records per shard
 * and page (--list-scan-max 7), so that most pages stop at the scan budget
 * and many come back empty but with more: the library's merge must then
 * move its cursor to where the shards stopped, without gaps or loops.
 *
 * A few thousand random keys from a small alphabet that holds '/', '-',
 * and the pattern characters '_' and '%' themselves (so escapes matter),
 * and a two-byte character (so '_' must take a code point, not a byte),
 * are written in transactions of up to 128 puts per shard. Then, for
 * fixed and random patterns and several page sizes, the pages are checked
 * against a brute-force filter of the keys written: the same keys, in
 * order, each once. Bad patterns are refused by the node itself. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memcoord.h"
#include "proto/proto.h"
#include "tests/lib/harness.h"
#include "tests/lib/like_ref.h"

#define NODES 3
#define SHARDS 8
#define NS "pattern"
#define KEYS 3000
#define KEY_BYTES 64

static struct mc_node_proc nodes[NODES];
static char keys[KEYS][KEY_BYTES];
static const char *sorted[KEYS]; /* the distinct keys, in byte order */
static size_t n_sorted;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *const key_pieces[] = {"a", "b", "/", "-", "_", "%",
                                         "\xc3\xa9"};
#define N_PIECES (sizeof key_pieces / sizeof key_pieces[0])

static void make_keys(void)
{
    srand(20261121);
    for (int i = 0; i < KEYS; i++) {
        /* Half under "p/" (patterns with a literal prefix), half not. */
        strcpy(keys[i], i % 2 ? "p/" : "");
        int len = 2 + rand() % 10;
        for (int k = 0; k < len; k++) {
            strcat(keys[i], key_pieces[rand() % (int)N_PIECES]);
        }
        sorted[i] = keys[i];
    }
    qsort(sorted, KEYS, sizeof sorted[0], cmp_str);
    n_sorted = 0;
    for (size_t i = 0; i < KEYS; i++) {
        if (n_sorted == 0 || strcmp(sorted[n_sorted - 1], sorted[i]) != 0) {
            sorted[n_sorted++] = sorted[i];
        }
    }
}

/* Write every distinct key, in transactions of the keys of one shard. */
static void write_keys(mc_client *c)
{
    static mc_op ops[MC_TXN_OPS_MAX];
    for (uint32_t s = 0; s < SHARDS; s++) {
        size_t n = 0;
        for (size_t i = 0; i <= n_sorted; i++) {
            bool in = i < n_sorted &&
                      proto_shard_of_slot(
                          proto_slot((const uint8_t *)NS, strlen(NS),
                                     (const uint8_t *)sorted[i],
                                     strlen(sorted[i])),
                          SHARDS) == s;
            if (in) {
                ops[n++] = (mc_op){.type = MC_OP_PUT, .key = sorted[i],
                                   .value = "v", .value_len = 1};
            }
            if (n == MC_TXN_OPS_MAX || (i == n_sorted && n > 0)) {
                mc_txn_req t = {.then_ops = ops, .n_then = n};
                mc_txn_result *r;
                mc_result res;
                cr_assert_eq(mc_txn(c, NS, &t, &r, &res), MC_OK, "%s",
                             res.message);
                cr_assert(r->succeeded);
                mc_txn_result_free(r);
                n = 0;
            }
        }
    }
}

struct listing {
    unsigned pages;
    unsigned empty_pages; /* no records, but more */
};

/* Page through pattern with pages of limit and compare with the
 * brute-force filter. */
static void check_pattern(mc_client *c, const char *pattern, uint32_t limit,
                          struct listing *st)
{
    char cursor[KEY_BYTES * 2] = "";
    bool has_cursor = false;
    size_t want = 0; /* index in sorted of the next expected match */
    size_t got = 0;
    for (unsigned pages = 0;; pages++) {
        cr_assert_lt(pages, 5 * KEYS, "'%s': paging does not end", pattern);
        mc_list_opts o = {.start_after = has_cursor ? cursor : NULL,
                          .limit = limit, .keys_only = true,
                          .pattern = pattern};
        mc_page *p;
        mc_result res;
        cr_assert_eq(mc_list(c, NS, NULL, &o, &p, &res), MC_OK, "'%s': %s",
                     pattern, res.message);
        st->pages++;
        st->empty_pages += p->n == 0 && p->more;
        cr_assert_leq(p->n, limit);
        for (size_t i = 0; i < p->n; i++, got++) {
            while (want < n_sorted &&
                   !like_ref_match(pattern, strlen(pattern), sorted[want],
                                   strlen(sorted[want]))) {
                want++;
            }
            cr_assert_lt(want, n_sorted, "'%s': %s matches nothing written",
                         pattern, p->records[i].key);
            cr_assert_str_eq(p->records[i].key, sorted[want],
                             "'%s' limit %u: a gap or a wrong key", pattern,
                             limit);
            want++;
        }
        bool more = p->more;
        if (more) {
            cr_assert(!has_cursor || strcmp(p->next_cursor, cursor) > 0,
                      "'%s': the cursor did not move", pattern);
            cr_assert_lt(strlen(p->next_cursor), sizeof cursor);
            strcpy(cursor, p->next_cursor);
            has_cursor = true;
        }
        mc_page_free(p);
        if (!more) {
            break;
        }
    }
    size_t n_want = 0;
    for (size_t i = 0; i < n_sorted; i++) {
        n_want += like_ref_match(pattern, strlen(pattern), sorted[i],
                                 strlen(sorted[i]));
    }
    cr_assert_eq(got, n_want, "'%s' limit %u: listed %zu of %zu", pattern,
                 limit, got, n_want);
}

static const char *const pattern_pieces[] = {
    "a", "b", "/", "-", "%", "_", "%", "_", "\\%", "\\_", "\xc3\xa9"};
#define N_PATTERN_PIECES (sizeof pattern_pieces / sizeof pattern_pieces[0])

Test(list_pattern, pages_equal_a_brute_force_filter, .fini = harness_fini,
     .timeout = 240)
{
    make_keys();
    cr_assert_eq(harness_cluster_start(nodes, NODES, "--list-scan-max", "7",
                                       NULL),
                 0);
    for (unsigned i = 0; i < NODES; i++) {
        cr_assert_eq(harness_node_wait_ready(&nodes[i], HARNESS_READY_MS), 0);
    }
    char endpoints[3 * HARNESS_URL_BYTES_MAX + 3] = "";
    for (unsigned i = 0; i < NODES; i++) {
        strcat(endpoints, i > 0 ? "," : "");
        strcat(endpoints, nodes[i].url);
    }
    mc_options opts = {.timeout_ms = 10000};
    mc_client *c;
    mc_result res;
    cr_assert_eq(mc_client_open(endpoints, &opts, &c, &res), MC_OK);
    write_keys(c);

    static const char *const fixed[] = {
        "%",       "p/%",     "p/a%",    "p/%/%",   "%/%",     "_",
        "p/__",    "%\\%%",   "%\\_%",   "p/\\_%",  "p/\\%%",  "%-",
        "%\xc3\xa9", "p/_\xc3\xa9%", "a%b", "%a_b%", "p/%%a",  "zzz%",
    };
    struct listing st = {0};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        check_pattern(c, fixed[i], 1000, &st);
    }
    check_pattern(c, "p/a%", 3, &st);
    check_pattern(c, "%a%", 50, &st);
    srand(7);
    for (int i = 0; i < 12; i++) {
        char pat[64] = "";
        if (i % 2) {
            strcat(pat, "p/");
        }
        int n = 1 + rand() % 5;
        for (int k = 0; k < n; k++) {
            strcat(pat, pattern_pieces[rand() % (int)N_PATTERN_PIECES]);
        }
        check_pattern(c, pat, i % 3 ? 1000 : 4, &st);
    }
    fprintf(stderr, "list_pattern: %zu keys, %u pages, %u of them empty "
            "with more\n", n_sorted, st.pages, st.empty_pages);
    cr_assert_gt(st.empty_pages, 0, "the scan budget made no empty page");

    /* A prefix list still lists everything under it. */
    mc_list_opts lo = {.limit = MC_LIST_PAGE_MAX, .keys_only = true};
    mc_page *p;
    cr_assert_eq(mc_list(c, NS, "p/", &lo, &p, &res), MC_OK);
    size_t under = 0;
    for (size_t i = 0; i < n_sorted; i++) {
        under += strncmp(sorted[i], "p/", 2) == 0;
    }
    cr_assert_eq(p->n, under);
    mc_page_free(p);
    mc_client_close(c);
}

Test(list_pattern, bad_patterns_are_refused_by_the_node, .fini = harness_fini,
     .timeout = 60)
{
    struct mc_node_proc *n = &nodes[0];
    cr_assert_eq(harness_node_start(n, NULL), 0);
    cr_assert_eq(harness_node_wait_ready(n, HARNESS_READY_MS), 0);
    static const struct {
        const char *pattern;
        size_t len;
        const char *why;
    } bad[] = {
        {"swarm/%\\", 0, "lone '\\'"},
        {"swarm/\xff%", 0, "UTF-8"},
        {"", 0, "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Mcpb__Request req = MCPB__REQUEST__INIT;
        req.op = MCPB__OP__OP_LIST;
        req.has_ns = true;
        req.ns.data = (uint8_t *)NS;
        req.ns.len = strlen(NS);
        req.has_shard = true;
        req.shard = 0;
        req.has_pattern = true;
        req.pattern.data = (uint8_t *)bad[i].pattern;
        req.pattern.len = strlen(bad[i].pattern);
        Mcpb__Response *r;
        cr_assert_eq(harness_raw_request(n->url, &req, 5000, &r), 0);
        cr_assert_eq(r->code, MC_INVALID_ARGUMENT, "case %zu", i);
        cr_assert(strstr(r->message, bad[i].why) != NULL, "case %zu: %s", i,
                  r->message);
        mcpb__response__free_unpacked(r, NULL);
    }
}
