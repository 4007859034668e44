/* Integration tests of transactions (mc_txn) against real memcoord nodes.
 *
 * On a 3-node cluster (8 shards of 3 replicas): movers in several threads
 * move units between two keys of one shard by transactions guarded by
 * version compares, through different nodes (so forwarding is on the
 * path), while a checker reads both keys in one transaction and asserts
 * their sum never changes: no transaction is ever seen half applied. At
 * the end the sum is intact and a move counter equals the moves the
 * movers saw succeed: none was applied twice.
 *
 * On a single node: both branches with their results, keys of different
 * shards refused with the {tag} advice by the library and by the node
 * itself (a raw request), the 128-operation limit (129 refused by both),
 * and a raw transaction sent twice with the same (client_id, seq), which
 * must apply once and get the same answer twice. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memcoord.h"
#include "proto/proto.h"
#include "tests/lib/harness.h"

#define NS "txn"
#define SHARDS 8

static mc_client *client_for(const char *endpoints, int timeout_ms)
{
    mc_options opts = {.timeout_ms = timeout_ms};
    mc_client *c;
    mc_result res;
    cr_assert_eq(mc_client_open(endpoints, &opts, &c, &res), MC_OK, "%s",
                 res.message);
    return c;
}

static mc_txn_result *txn_ok(mc_client *c, const mc_txn_req *t)
{
    mc_txn_result *r;
    mc_result res;
    mc_err rv = mc_txn(c, NS, t, &r, &res);
    cr_assert_eq(rv, MC_OK, "txn: %s: %s", mc_errname(rv), res.message);
    return r;
}

static uint64_t value_u64(const mc_record *r)
{
    return strtoull((const char *)r->value, NULL, 10);
}

/* ---- atomic under concurrent writers, on a cluster ---- */

#define NODES 3
#define MOVERS 4
#define MOVES_EACH 60
#define TOTAL 1000u

static struct mc_node_proc nodes[NODES];

struct bank {
    mc_client *c[NODES];
    atomic_uint moved;   /* moves the movers saw succeed */
    atomic_uint retries; /* moves whose compare failed: tried again */
    atomic_uint checks;
    atomic_bool stop;
    atomic_bool torn;    /* a checker saw a sum other than TOTAL */
    char torn_msg[160];
};

static struct bank B;

/* Read a, b and the move counter in one transaction. */
static void bank_read(mc_client *c, uint64_t v[3], uint64_t ver[3])
{
    static const mc_op gets[] = {{.type = MC_OP_GET, .key = "{acct}/a"},
                                 {.type = MC_OP_GET, .key = "{acct}/b"},
                                 {.type = MC_OP_GET, .key = "{acct}/moves"}};
    mc_txn_req t = {.then_ops = gets, .n_then = 3};
    mc_txn_result *r = txn_ok(c, &t);
    cr_assert(r->succeeded);
    cr_assert_eq(r->n_results, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r->results[i].code, MC_OK);
        v[i] = value_u64(&r->results[i].record);
        ver[i] = r->results[i].record.version;
    }
    mc_txn_result_free(r);
}

struct mover {
    unsigned id;
    pthread_t thread;
};

/* Move one unit from one key to the other, guarded by the versions read;
 * a failed compare (someone moved first) means read again and retry. */
static void *mover_main(void *arg)
{
    const struct mover *m = arg;
    mc_client *c = B.c[m->id % NODES];
    unsigned seed = m->id * 7919u + 1;
    for (unsigned done = 0; done < MOVES_EACH;) {
        uint64_t v[3], ver[3];
        bank_read(c, v, ver);
        seed = seed * 1103515245u + 12345u;
        bool a_to_b = (seed >> 16) % 2 == 0 ? v[0] > 0 : v[1] == 0;
        char na[24], nb[24], nm[24];
        snprintf(na, sizeof na, "%llu",
                 (unsigned long long)(a_to_b ? v[0] - 1 : v[0] + 1));
        snprintf(nb, sizeof nb, "%llu",
                 (unsigned long long)(a_to_b ? v[1] + 1 : v[1] - 1));
        snprintf(nm, sizeof nm, "%llu", (unsigned long long)(v[2] + 1));
        const mc_cmp cmps[] = {
            {.target = MC_CMP_VERSION, .key = "{acct}/a", .op = MC_EQ,
             .version = ver[0]},
            {.target = MC_CMP_VERSION, .key = "{acct}/b", .op = MC_EQ,
             .version = ver[1]},
            {.target = MC_CMP_VERSION, .key = "{acct}/moves", .op = MC_EQ,
             .version = ver[2]},
        };
        const mc_op puts[] = {
            {.type = MC_OP_PUT, .key = "{acct}/a", .value = na,
             .value_len = strlen(na)},
            {.type = MC_OP_PUT, .key = "{acct}/b", .value = nb,
             .value_len = strlen(nb)},
            {.type = MC_OP_PUT, .key = "{acct}/moves", .value = nm,
             .value_len = strlen(nm)},
        };
        mc_txn_req t = {cmps, 3, puts, 3, NULL, 0};
        mc_txn_result *r = txn_ok(c, &t);
        if (r->succeeded) {
            cr_assert_eq(r->n_results, 3);
            cr_assert_eq(r->results[0].version, ver[0] + 1);
            atomic_fetch_add(&B.moved, 1);
            done++;
        } else {
            cr_assert_eq(r->n_results, 0);
            atomic_fetch_add(&B.retries, 1);
        }
        mc_txn_result_free(r);
    }
    return NULL;
}

static void *checker_main(void *arg)
{
    mc_client *c = B.c[(uintptr_t)arg % NODES];
    while (!atomic_load(&B.stop)) {
        uint64_t v[3], ver[3];
        bank_read(c, v, ver);
        if (v[0] + v[1] != TOTAL && !atomic_exchange(&B.torn, true)) {
            snprintf(B.torn_msg, sizeof B.torn_msg,
                     "a=%llu b=%llu (moves %llu): a half-applied move",
                     (unsigned long long)v[0], (unsigned long long)v[1],
                     (unsigned long long)v[2]);
        }
        atomic_fetch_add(&B.checks, 1);
    }
    return NULL;
}

Test(txn_cluster, concurrent_moves_keep_the_sum, .fini = harness_fini,
     .timeout = 120)
{
    cr_assert_eq(harness_cluster_start(nodes, NODES, NULL), 0);
    for (unsigned i = 0; i < NODES; i++) {
        cr_assert_eq(harness_node_wait_ready(&nodes[i], HARNESS_READY_MS), 0);
    }
    /* Each client knows one node only: requests to shards that node does
     * not lead go through forwarding. */
    for (unsigned i = 0; i < NODES; i++) {
        B.c[i] = client_for(nodes[i].url, 10000);
    }
    char total[16];
    snprintf(total, sizeof total, "%u", TOTAL);
    const mc_op init[] = {
        {.type = MC_OP_PUT, .key = "{acct}/a", .value = total,
         .value_len = strlen(total)},
        {.type = MC_OP_PUT, .key = "{acct}/b", .value = "0", .value_len = 1},
        {.type = MC_OP_PUT, .key = "{acct}/moves", .value = "0",
         .value_len = 1},
    };
    mc_txn_req t = {.then_ops = init, .n_then = 3};
    mc_txn_result_free(txn_ok(B.c[0], &t));

    pthread_t checkers[2];
    for (uintptr_t i = 0; i < 2; i++) {
        cr_assert_eq(pthread_create(&checkers[i], NULL, checker_main,
                                    (void *)(i + 1)),
                     0);
    }
    struct mover movers[MOVERS];
    for (unsigned i = 0; i < MOVERS; i++) {
        movers[i].id = i;
        cr_assert_eq(pthread_create(&movers[i].thread, NULL, mover_main,
                                    &movers[i]),
                     0);
    }
    for (unsigned i = 0; i < MOVERS; i++) {
        pthread_join(movers[i].thread, NULL);
    }
    atomic_store(&B.stop, true);
    for (unsigned i = 0; i < 2; i++) {
        pthread_join(checkers[i], NULL);
    }
    cr_assert_not(atomic_load(&B.torn), "%s", B.torn_msg);
    uint64_t v[3], ver[3];
    bank_read(B.c[2], v, ver);
    cr_assert_eq(v[0] + v[1], TOTAL);
    cr_assert_eq(atomic_load(&B.moved), MOVERS * MOVES_EACH);
    cr_assert_eq(v[2], MOVERS * MOVES_EACH,
                 "moves applied %llu, acknowledged %u",
                 (unsigned long long)v[2], MOVERS * MOVES_EACH);
    cr_assert_eq(ver[2], MOVERS * MOVES_EACH + 1);
    cr_assert_gt(atomic_load(&B.checks), 10);
    fprintf(stderr, "txn: %u moves, %u retried after a failed compare, %u "
            "checks\n", atomic_load(&B.moved), atomic_load(&B.retries),
            atomic_load(&B.checks));
    for (unsigned i = 0; i < NODES; i++) {
        mc_client_close(B.c[i]);
    }
}

/* ---- on one node ---- */

static struct mc_node_proc node;
static mc_client *cl;

static void up(void)
{
    cr_assert_eq(harness_node_start(&node, NULL), 0);
    cr_assert_eq(harness_node_wait_ready(&node, HARNESS_READY_MS), 0);
    cl = client_for(node.url, 5000);
}

static void down(void)
{
    if (cl != NULL) {
        mc_client_close(cl);
        cl = NULL;
    }
    harness_fini();
}

#define NODE_TEST(name) \
    Test(txn, name, .init = up, .fini = down, .timeout = 60)

NODE_TEST(then_and_else_with_their_results)
{
    mc_result res;
    cr_assert_eq(mc_put(cl, NS, "{job}/state", "ready", 5, NULL, &res), MC_OK);
    const mc_cmp ready[] = {
        {.target = MC_CMP_VALUE, .key = "{job}/state", .op = MC_EQ,
         .value = "ready", .value_len = 5},
        {.target = MC_CMP_MISSING, .key = "{job}/owner"},
    };
    const mc_op claim[] = {
        {.type = MC_OP_PUT, .key = "{job}/owner", .value = "agent-7",
         .value_len = 7, .tier = MC_TIER_SHORT, .ttl_ms = 60000},
        {.type = MC_OP_PUT, .key = "{job}/state", .value = "claimed",
         .value_len = 7},
        {.type = MC_OP_DELETE, .key = "{job}/nothing"},
        {.type = MC_OP_GET, .key = "{job}/state"},
    };
    const mc_op who[] = {{.type = MC_OP_GET, .key = "{job}/owner"}};
    mc_txn_req t = {ready, 2, claim, 4, who, 1};
    mc_txn_result *r = txn_ok(cl, &t);
    cr_assert(r->succeeded);
    cr_assert_eq(r->n_results, 4);
    cr_assert_eq(r->results[0].type, MC_OP_PUT);
    cr_assert_eq(r->results[0].code, MC_OK);
    cr_assert_eq(r->results[0].version, 1);
    cr_assert_eq(r->results[0].mod_rev, r->revision);
    cr_assert_eq(r->results[1].version, 2);
    cr_assert_eq(r->results[2].code, MC_NOT_FOUND);
    cr_assert_eq(r->results[3].code, MC_OK);
    cr_assert_str_eq((char *)r->results[3].record.value, "claimed");
    cr_assert_str_eq(r->results[3].record.key, "{job}/state");
    uint64_t revision = r->revision;
    mc_txn_result_free(r);
    mc_record *rec;
    cr_assert_eq(mc_get(cl, NS, "{job}/owner", NULL, &rec, &res), MC_OK);
    cr_assert_eq(rec->tier, MC_TIER_SHORT);
    cr_assert_gt(rec->expires_at_ms, 0);
    cr_assert_eq(rec->mod_rev, revision);
    mc_record_free(rec);

    /* The same transaction again: the compares fail, else runs. */
    r = txn_ok(cl, &t);
    cr_assert_not(r->succeeded);
    cr_assert_eq(r->n_results, 1);
    cr_assert_eq(r->results[0].type, MC_OP_GET);
    cr_assert_str_eq((char *)r->results[0].record.value, "agent-7");
    cr_assert_gt(r->revision, revision);
    mc_txn_result_free(r);
}

/* Two keys without a tag in different shards of the node's 8. */
static void keys_in_two_shards(char *a, char *b, size_t len)
{
    harness_key_in_shard(NS, SHARDS, "job/a", 2, a, len);
    harness_key_in_shard(NS, SHARDS, "job/b", 5, b, len);
}

NODE_TEST(keys_of_two_shards_are_refused_with_the_tag_advice)
{
    char a[64], b[64];
    keys_in_two_shards(a, b, sizeof a);
    const mc_op ops[] = {{.type = MC_OP_PUT, .key = a, .value = "1",
                          .value_len = 1},
                         {.type = MC_OP_PUT, .key = b, .value = "2",
                          .value_len = 1}};
    mc_txn_req t = {.then_ops = ops, .n_then = 2};
    mc_txn_result *r;
    mc_result res;
    cr_assert_eq(mc_txn(cl, NS, &t, &r, &res), MC_INVALID_ARGUMENT);
    cr_assert(strstr(res.message, "span shards 2") != NULL, "%s",
              res.message);
    cr_assert(strstr(res.message, "{tag}") != NULL, "%s", res.message);
    cr_assert(strstr(res.message, "{job42}/a") != NULL, "%s", res.message);

    /* The node says the same to a request that skips the library. */
    Mcpb__TxnOp w[2];
    Mcpb__TxnOp *wp[2] = {&w[0], &w[1]};
    const char *keys[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        mcpb__txn_op__init(&w[i]);
        w[i].op = MCPB__OP__OP_PUT;
        w[i].key.data = (uint8_t *)keys[i];
        w[i].key.len = strlen(keys[i]);
    }
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_TXN;
    req.has_ns = true;
    req.ns.data = (uint8_t *)NS;
    req.ns.len = strlen(NS);
    req.then_ops = wp;
    req.n_then_ops = 2;
    Mcpb__Response *resp;
    cr_assert_eq(harness_raw_request(node.url, &req, 5000, &resp), 0);
    cr_assert_eq(resp->code, MC_INVALID_ARGUMENT);
    cr_assert(strstr(resp->message, "{tag}") != NULL, "%s", resp->message);
    mcpb__response__free_unpacked(resp, NULL);
    mc_record *rec;
    cr_assert_eq(mc_get(cl, NS, a, NULL, &rec, &res), MC_NOT_FOUND);

    /* With a common tag they are one shard. */
    const mc_op tagged[] = {{.type = MC_OP_PUT, .key = "{job42}/a",
                             .value = "1", .value_len = 1},
                            {.type = MC_OP_PUT, .key = "{job42}/b",
                             .value = "2", .value_len = 1}};
    t.then_ops = tagged;
    mc_txn_result_free(txn_ok(cl, &t));
}

NODE_TEST(at_most_128_compares_and_operations)
{
    static char keys[MC_TXN_OPS_MAX + 1][24];
    static mc_op ops[MC_TXN_OPS_MAX + 1];
    static mc_cmp cmps[1];
    for (size_t i = 0; i <= MC_TXN_OPS_MAX; i++) {
        snprintf(keys[i], sizeof keys[i], "{many}/%zu", i);
        ops[i] = (mc_op){.type = MC_OP_PUT, .key = keys[i], .value = "v",
                         .value_len = 1};
    }
    cmps[0] = (mc_cmp){.target = MC_CMP_MISSING, .key = "{many}/flag"};
    /* 1 compare + 128 puts = 129 */
    mc_txn_req t = {cmps, 1, ops, MC_TXN_OPS_MAX, NULL, 0};
    mc_txn_result *r;
    mc_result res;
    cr_assert_eq(mc_txn(cl, NS, &t, &r, &res), MC_INVALID_ARGUMENT);
    cr_assert(strstr(res.message, "129") != NULL, "%s", res.message);
    /* The node refuses 129 too. */
    static Mcpb__TxnOp w[MC_TXN_OPS_MAX + 1];
    static Mcpb__TxnOp *wp[MC_TXN_OPS_MAX + 1];
    for (size_t i = 0; i <= MC_TXN_OPS_MAX; i++) {
        mcpb__txn_op__init(&w[i]);
        w[i].op = MCPB__OP__OP_GET;
        w[i].key.data = (uint8_t *)keys[i];
        w[i].key.len = strlen(keys[i]);
        wp[i] = &w[i];
    }
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_TXN;
    req.has_ns = true;
    req.ns.data = (uint8_t *)NS;
    req.ns.len = strlen(NS);
    req.then_ops = wp;
    req.n_then_ops = MC_TXN_OPS_MAX + 1;
    Mcpb__Response *resp;
    cr_assert_eq(harness_raw_request(node.url, &req, 5000, &resp), 0);
    cr_assert_eq(resp->code, MC_INVALID_ARGUMENT, "%s", resp->message);
    cr_assert(strstr(resp->message, "more than 128") != NULL, "%s",
              resp->message);
    mcpb__response__free_unpacked(resp, NULL);
    /* 128 in all is fine, and all of them apply. */
    t.n_then = MC_TXN_OPS_MAX - 1;
    r = txn_ok(cl, &t);
    cr_assert(r->succeeded);
    cr_assert_eq(r->n_results, MC_TXN_OPS_MAX - 1);
    mc_txn_result_free(r);
    mc_list_opts lo = {.keys_only = true};
    mc_page *p;
    cr_assert_eq(mc_list(cl, NS, "{many}/", &lo, &p, &res), MC_OK);
    cr_assert_eq(p->n, MC_TXN_OPS_MAX - 1);
    mc_page_free(p);
}

NODE_TEST(a_retry_with_the_same_id_applies_once)
{
    mc_result res;
    cr_assert_eq(mc_put(cl, NS, "{c}/n", "0", 1, NULL, &res), MC_OK);
    /* "if n is at version 1, set it to 1 and read it": applied twice it
     * would take the else branch the second time. */
    Mcpb__TxnCompare cmp = MCPB__TXN_COMPARE__INIT;
    cmp.target = MCPB__TXN_TARGET__TXN_TARGET_VERSION;
    cmp.key.data = (uint8_t *)"{c}/n";
    cmp.key.len = 5;
    cmp.has_version = true;
    cmp.version = 1;
    Mcpb__TxnCompare *cp = &cmp;
    Mcpb__TxnOp ops[2];
    Mcpb__TxnOp *op_ptrs[2] = {&ops[0], &ops[1]};
    mcpb__txn_op__init(&ops[0]);
    ops[0].op = MCPB__OP__OP_PUT;
    ops[0].key = cmp.key;
    ops[0].has_value = true;
    ops[0].value.data = (uint8_t *)"1";
    ops[0].value.len = 1;
    mcpb__txn_op__init(&ops[1]);
    ops[1].op = MCPB__OP__OP_GET;
    ops[1].key = cmp.key;
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_TXN;
    req.has_ns = true;
    req.ns.data = (uint8_t *)NS;
    req.ns.len = strlen(NS);
    req.compares = &cp;
    req.n_compares = 1;
    req.then_ops = op_ptrs;
    req.n_then_ops = 2;
    req.has_client_id = req.has_seq = true;
    req.client_id = 0x5eed5eed5eedull;
    req.seq = 1;
    Mcpb__Response *a, *b;
    cr_assert_eq(harness_raw_request(node.url, &req, 5000, &a), 0);
    cr_assert_eq(a->code, MC_OK, "%s", a->message);
    cr_assert_not_null(a->txn);
    cr_assert(a->txn->succeeded);
    /* Someone else writes between the two attempts. */
    cr_assert_eq(mc_put(cl, NS, "{c}/n", "9", 1, NULL, &res), MC_OK);
    cr_assert_eq(harness_raw_request(node.url, &req, 5000, &b), 0);
    cr_assert_eq(b->code, MC_OK, "%s", b->message);
    cr_assert_not_null(b->txn);
    cr_assert(b->txn->succeeded, "the retry got a new answer");
    cr_assert_eq(b->txn->revision, a->txn->revision);
    cr_assert_eq(b->txn->n_results, 2);
    cr_assert_eq(b->txn->results[0]->version, 2);
    cr_assert_eq(b->txn->results[1]->record->value.len, 1);
    cr_assert_eq(b->txn->results[1]->record->value.data[0], '1');
    mcpb__response__free_unpacked(a, NULL);
    mcpb__response__free_unpacked(b, NULL);
    mc_record *rec;
    cr_assert_eq(mc_get(cl, NS, "{c}/n", NULL, &rec, &res), MC_OK);
    cr_assert_eq(rec->version, 3, "put, txn, put: the retry applied again");
    cr_assert_str_eq((char *)rec->value, "9");
    mc_record_free(rec);
}
