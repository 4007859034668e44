/* Unit tests of libmemcoord's shard map (client/route.c, refresh.c) and of
 * the routing of calls (client/call.c), against fake nodes (fake_node.h)
 * that describe a small cluster in their STATUS answers.
 *
 * What is tested: the map is learned lazily from one node and completed
 * from others; a request goes straight to its shard's leader, even one the
 * caller did not list; a NOT_LEADER hint is followed with the same request
 * id; a leader that cannot be reached is gone around through a listed
 * endpoint that forwards; serializable reads prefer the first listed
 * replica; refreshes are rate-limited; newer terms win in the map; many
 * threads share one map. */
#include "tests/unit/client/fake_node.h"

#define NS "default"

/* A key of prefix that lands in shard s of n. */
static void key_in_shard(const char *prefix, uint32_t s, uint32_t n,
                         char *key, size_t len)
{
    for (unsigned i = 0;; i++) {
        snprintf(key, len, "%s/%u", prefix, i);
        uint32_t slot = proto_slot((const uint8_t *)NS, strlen(NS),
                                   (const uint8_t *)key, strlen(key));
        if (proto_shard_of_slot(slot, n) == s) {
            return;
        }
    }
}

static void cluster_add(struct fake_cluster *c, const struct fake *f)
{
    cr_assert_lt(c->n_members, FAKE_MEMBERS_MAX);
    c->ids[c->n_members] = f->id;
    snprintf(c->urls[c->n_members], sizeof c->urls[0], "%s", f->url);
    c->n_members++;
}

/* Shard s led by leader in term 1, with replicas ids[0..n). */
static void cluster_shard(struct fake_cluster *c, unsigned s, uint64_t leader,
                          const uint64_t *ids, unsigned n)
{
    if (s >= c->n_shards) {
        c->n_shards = s + 1;
    }
    c->leader[s] = leader;
    c->term[s] = 1;
    c->n_replicas[s] = n;
    memcpy(c->replicas[s], ids, n * sizeof *ids);
}

static struct fake *fake_member(fake_handler h, void *arg,
                                struct fake_cluster *c)
{
    struct fake *f = fake_start_with(h, fake_status_cluster, arg);
    f->cluster = c;
    cluster_add(c, f);
    return f;
}

/* ---- handlers ---- */

static enum fake_action answer_ok(struct fake *f, const Mcpb__Request *req,
                                  unsigned nth, Mcpb__Response *resp)
{
    resp->has_version = true;
    resp->version = 1;
    return FAKE_ANSWER;
}

/* A node that no longer leads: asked not to forward, it names the fake in
 * f->arg; asked to forward, it "forwards" and answers OK. */
static enum fake_action hint_to_arg(struct fake *f, const Mcpb__Request *req,
                                    unsigned nth, Mcpb__Response *resp)
{
    struct fake *leader = f->arg;
    if (!req->no_forward) {
        resp->has_version = true;
        resp->version = 1;
        return FAKE_ANSWER;
    }
    resp->code = MC_NOT_LEADER;
    resp->message = "not the leader";
    resp->has_leader_id = true;
    resp->leader_id = leader->id;
    resp->leader_url = leader->url;
    return FAKE_ANSWER;
}

static enum fake_action always_unavailable(struct fake *f,
                                           const Mcpb__Request *req,
                                           unsigned nth, Mcpb__Response *resp)
{
    resp->code = MC_UNAVAILABLE;
    resp->message = "no leader yet";
    return FAKE_ANSWER;
}

static enum fake_action get_ok(struct fake *f, const Mcpb__Request *req,
                               unsigned nth, Mcpb__Response *resp)
{
    static Mcpb__Record rec;
    rec = (Mcpb__Record)MCPB__RECORD__INIT;
    rec.has_key = rec.has_value = true;
    rec.key = req->key;
    rec.value = req->key;
    resp->record = &rec;
    return FAKE_ANSWER;
}

static unsigned ops_seen(struct fake *f, uint32_t op)
{
    unsigned n = 0;
    for (unsigned i = 0; i < seen_count(f); i++) {
        n += f->seen[i].op == op;
    }
    return n;
}

/* ---- one node ---- */

Test(client_route_pick, one_node_one_status_then_straight_to_it)
{
    struct fake *f = fake_start(answer_ok, NULL);
    mc_client *c = client_on(f->url, 2000);
    for (int i = 0; i < 3; i++) {
        mc_result res;
        cr_assert_eq(mc_put(c, NS, "k", "v", 1, NULL, &res), MC_OK, "%s",
                     res.message);
    }
    cr_assert_eq(atomic_load(&f->n_status), 1, "the map is learned once");
    cr_assert_eq(seen_count(f), 3);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert(f->seen[i].no_forward);
    }
    cr_assert_eq(c->n_socks, 1, "the one node needs no second socket");
    mc_client_close(c);
    fake_stop(f);
}

/* ---- leaders ---- */

Test(client_route_pick, sends_each_shard_to_its_leader)
{
    struct fake_cluster cl = {0};
    struct fake *a = fake_member(answer_ok, NULL, &cl);
    struct fake *b = fake_member(answer_ok, NULL, &cl);
    uint64_t both[] = {a->id, b->id};
    cluster_shard(&cl, 0, a->id, both, 2);
    cluster_shard(&cl, 1, b->id, both, 2);
    mc_client *c = client_on(a->url, 2000); /* b is not listed */
    char k0[32], k1[32];
    key_in_shard("x", 0, 2, k0, sizeof k0);
    key_in_shard("x", 1, 2, k1, sizeof k1);
    mc_result res;
    cr_assert_eq(mc_put(c, NS, k0, "v", 1, NULL, &res), MC_OK, "%s",
                 res.message);
    cr_assert_eq(mc_put(c, NS, k1, "v", 1, NULL, &res), MC_OK, "%s",
                 res.message);
    cr_assert_eq(seen_count(a), 1);
    cr_assert_str_eq(a->seen[0].key, k0);
    cr_assert_eq(seen_count(b), 1, "shard 1 went to its leader, unlisted");
    cr_assert_str_eq(b->seen[0].key, k1);
    cr_assert(b->seen[0].no_forward);
    cr_assert_eq(atomic_load(&b->n_status), 0, "a alone knew every shard");
    mc_client_close(c);
    fake_stop(a);
    fake_stop(b);
}

Test(client_route_refresh, asks_other_members_for_shards_it_lacks)
{
    struct fake_cluster cl = {0};
    struct fake *a = fake_member(answer_ok, NULL, &cl);
    struct fake *b = fake_member(answer_ok, NULL, &cl);
    uint64_t only_a[] = {a->id}, only_b[] = {b->id};
    cluster_shard(&cl, 0, a->id, only_a, 1);
    cluster_shard(&cl, 1, b->id, only_b, 1); /* a does not host shard 1 */
    mc_client *c = client_on(a->url, 2000);
    char k1[32];
    key_in_shard("y", 1, 2, k1, sizeof k1);
    mc_result res;
    cr_assert_eq(mc_put(c, NS, k1, "v", 1, NULL, &res), MC_OK, "%s",
                 res.message);
    cr_assert_eq(atomic_load(&b->n_status), 1);
    cr_assert_eq(c->route.shards[1].leader_id, b->id);
    cr_assert_eq(seen_count(b), 1);
    cr_assert_eq(seen_count(a), 0);
    mc_client_close(c);
    fake_stop(a);
    fake_stop(b);
}

Test(client_call, follows_a_not_leader_hint_with_the_same_id)
{
    struct fake_cluster cl = {0};
    struct fake *b = fake_start_with(answer_ok, fake_status_cluster, NULL);
    struct fake *a = fake_member(hint_to_arg, b, &cl);
    b->cluster = &cl;
    cluster_add(&cl, b);
    uint64_t both[] = {a->id, b->id};
    cluster_shard(&cl, 0, a->id, both, 2); /* stale: b leads now */
    mc_client *c = client_on(a->url, 2000);
    mc_result res;
    int64_t t0 = base_mono_ms();
    cr_assert_eq(mc_put(c, NS, "k", "v", 1, NULL, &res), MC_OK, "%s",
                 res.message);
    cr_assert_lt(base_mono_ms() - t0, 200, "a hint costs no pause");
    cr_assert_eq(seen_count(a), 1);
    cr_assert_eq(seen_count(b), 1);
    cr_assert(b->seen[0].no_forward);
    cr_assert_eq(b->seen[0].client_id, a->seen[0].client_id);
    cr_assert_eq(b->seen[0].seq, a->seen[0].seq);
    /* The map learned it: the next write goes straight to b. */
    cr_assert_eq(mc_put(c, NS, "k", "v", 1, NULL, &res), MC_OK);
    cr_assert_eq(seen_count(a), 1);
    cr_assert_eq(seen_count(b), 2);
    mc_client_close(c);
    fake_stop(a);
    fake_stop(b);
}

Test(client_call, goes_around_a_leader_it_cannot_reach)
{
    struct fake_cluster cl = {0};
    /* b is a member at an address where nobody listens. */
    struct fake *b = fake_start(answer_ok, NULL);
    struct fake *a = fake_member(hint_to_arg, b, &cl);
    cl.ids[1] = b->id;
    snprintf(cl.urls[1], sizeof cl.urls[1], "inproc://gone-%d", (int)getpid());
    cl.n_members = 2;
    snprintf(b->url, sizeof b->url, "%s", cl.urls[1]); /* its hint, too */
    uint64_t both[] = {a->id, b->id};
    cluster_shard(&cl, 0, b->id, both, 2);
    mc_client *c = client_on(a->url, 3000);
    mc_result res;
    int64_t t0 = base_mono_ms();
    cr_assert_eq(mc_put(c, NS, "k", "v", 1, NULL, &res), MC_OK, "%s",
                 res.message);
    int64_t first_ms = base_mono_ms() - t0;
    cr_assert_lt(first_ms, 1500);
    /* a forwarded it: the last request a saw asked it to. */
    unsigned n = seen_count(a);
    cr_assert_geq(n, 1);
    cr_assert_not(a->seen[n - 1].no_forward);
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(a->seen[i].client_id, a->seen[0].client_id);
        cr_assert_eq(a->seen[i].seq, a->seen[0].seq);
    }
    /* The unreachable leader is suspect now: the next call goes around it
     * at once. */
    t0 = base_mono_ms();
    cr_assert_eq(mc_put(c, NS, "k", "v", 1, NULL, &res), MC_OK, "%s",
                 res.message);
    cr_assert_lt(base_mono_ms() - t0, 100);
    cr_assert_not(a->seen[seen_count(a) - 1].no_forward);
    mc_client_close(c);
    fake_stop(a);
    fake_stop(b);
}

/* ---- serializable reads ---- */

Test(client_route_pick, serializable_reads_prefer_the_first_listed_replica)
{
    struct fake_cluster cl = {0};
    struct fake *lead = fake_member(get_ok, NULL, &cl);
    struct fake *repl = fake_member(get_ok, NULL, &cl);
    struct fake *other = fake_member(get_ok, NULL, &cl);
    uint64_t ids[] = {lead->id, repl->id};
    cluster_shard(&cl, 0, lead->id, ids, 2); /* other holds no replica */
    char eps[256];
    snprintf(eps, sizeof eps, "%s,%s,%s", other->url, repl->url, lead->url);
    mc_client *c = client_on(eps, 2000);
    mc_read_opts ser = {.serializable = true};
    mc_record *r;
    mc_result res;
    cr_assert_eq(mc_get(c, NS, "k", &ser, &r, &res), MC_OK, "%s",
                 res.message);
    mc_record_free(r);
    cr_assert_eq(seen_count(repl), 1, "the first listed replica served it");
    cr_assert(repl->seen[0].serializable);
    cr_assert_eq(mc_get(c, NS, "k", NULL, &r, &res), MC_OK);
    mc_record_free(r);
    cr_assert_eq(seen_count(lead), 1, "a linearizable read goes to the leader");
    cr_assert_eq(seen_count(other), 0);
    mc_client_close(c);

    /* Listed: only a node without a replica. The leader serves. */
    c = client_on(other->url, 2000);
    cr_assert_eq(mc_get(c, NS, "k", &ser, &r, &res), MC_OK, "%s",
                 res.message);
    mc_record_free(r);
    cr_assert_eq(seen_count(lead), 2);
    cr_assert_eq(seen_count(other), 0);
    mc_client_close(c);
    fake_stop(lead);
    fake_stop(repl);
    fake_stop(other);
}

/* ---- refresh ---- */

Test(client_route_refresh, runs_at_most_once_per_interval)
{
    struct fake *f = fake_start(always_unavailable, NULL);
    mc_client *c = client_on(f->url, 600);
    mc_result res;
    int64_t t0 = base_mono_ms();
    cr_assert_eq(mc_put(c, NS, "k", "v", 1, NULL, &res), MC_UNAVAILABLE);
    int64_t took = base_mono_ms() - t0;
    unsigned n = atomic_load(&f->n_status);
    cr_assert_geq(n, 2, "a stale map is refreshed");
    cr_assert_leq(n, 1 + took / MC_CLIENT_REFRESH_MS_MIN, "%u refreshes in "
                  "%lld ms", n, (long long)took);
    cr_assert_gt(seen_count(f), n, "requests are not all refreshes");
    mc_client_close(c);
    fake_stop(f);
}

static Mcpb__NodeStatus *status_of(uint64_t node, uint32_t count,
                                   uint32_t shard, uint64_t leader,
                                   uint64_t term, bool is_leader)
{
    static Mcpb__NodeStatus st;
    static Mcpb__ShardStatus sh;
    static Mcpb__ShardStatus *shp[1] = {&sh};
    st = (Mcpb__NodeStatus)MCPB__NODE_STATUS__INIT;
    sh = (Mcpb__ShardStatus)MCPB__SHARD_STATUS__INIT;
    st.node_id = node;
    st.has_shard_count = true;
    st.shard_count = count;
    st.shards = shp;
    st.n_shards = 1;
    sh.id = shard;
    sh.leader_id = leader;
    sh.term = term;
    sh.is_leader = is_leader;
    return &st;
}

Test(client_route_learn_status, newer_terms_win)
{
    mc_client *c = client_on("inproc://nobody", 1000);
    struct route_shard *s0 = &c->route.shards[0];
    client_route_learn_status(c, CLIENT_EP_NONE, status_of(1, 2, 0, 1, 3, true));
    cr_assert_eq(client_route_shard_count(c), 2);
    cr_assert_eq(s0->leader_id, 1);
    /* An older term says nothing new. */
    client_route_learn_status(c, CLIENT_EP_NONE, status_of(2, 2, 0, 2, 2, true));
    cr_assert_eq(s0->leader_id, 1);
    /* A newer term without a leader: an election. */
    client_route_learn_status(c, CLIENT_EP_NONE, status_of(3, 2, 0, 0, 4, false));
    cr_assert_eq(s0->leader_id, 0);
    cr_assert_eq(s0->term, 4);
    /* Its winner, as a follower sees it. */
    client_route_learn_status(c, CLIENT_EP_NONE, status_of(3, 2, 0, 2, 4, false));
    cr_assert_eq(s0->leader_id, 2);
    /* Same term, another leader: impossible in raft, so not believed. */
    client_route_learn_status(c, CLIENT_EP_NONE, status_of(1, 2, 0, 1, 4, false));
    cr_assert_eq(s0->leader_id, 2);
    /* A hint moves it; the next term still wins over the hint. */
    client_route_learn_hint(c, 0, 3, NULL);
    cr_assert_eq(s0->leader_id, 3);
    client_route_learn_status(c, CLIENT_EP_NONE, status_of(1, 2, 0, 1, 5, true));
    cr_assert_eq(s0->leader_id, 1);
    /* Another shard count voids what was known. */
    client_route_learn_status(c, CLIENT_EP_NONE, status_of(1, 3, 1, 1, 5, true));
    cr_assert_eq(client_route_shard_count(c), 3);
    cr_assert_eq(s0->leader_id, 0);
    cr_assert_eq(c->route.shards[1].leader_id, 1);
    /* Shards past the count and absurd counts are ignored. */
    client_route_learn_status(c, CLIENT_EP_NONE, status_of(1, 3, 7, 1, 9, true));
    cr_assert_eq(c->route.shards[7].leader_id, 0);
    client_route_learn_status(c, CLIENT_EP_NONE,
                              status_of(1, MC_SHARDS_MAX + 1, 0, 1, 9, true));
    cr_assert_eq(client_route_shard_count(c), 3);
    mc_client_close(c);
}

Test(client_route_learn_hint, adds_an_unknown_member)
{
    mc_client *c = client_on("inproc://nobody", 1000);
    client_route_learn_status(c, CLIENT_EP_NONE, status_of(1, 1, 0, 1, 1, true));
    client_route_learn_hint(c, 0, 9, "inproc://nine");
    cr_assert_eq(c->route.n_members, 1);
    cr_assert_eq(c->route.members[0].id, 9);
    cr_assert_str_eq(c->route.members[0].url, "inproc://nine");
    /* Picking it opens a socket of its own, once. */
    Mcpb__Request req = MCPB__REQUEST__INIT;
    req.op = MCPB__OP__OP_GET;
    req.has_ns = req.has_key = true;
    req.ns.data = (uint8_t *)NS;
    req.ns.len = strlen(NS);
    req.key.data = (uint8_t *)"k";
    req.key.len = 1;
    size_t ep;
    uint32_t shard;
    cr_assert(client_route_pick(c, &req, &ep, &shard));
    cr_assert_eq(ep, 1);
    cr_assert_eq(shard, 0);
    cr_assert_str_eq(c->eps[1].url, "inproc://nine");
    cr_assert(client_route_pick(c, &req, &ep, &shard));
    cr_assert_eq(ep, 1);
    cr_assert_eq(c->n_socks, 2);
    mc_client_close(c);
}

/* ---- threads ---- */

struct writer {
    mc_client *c;
    int id;
    int ok;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    for (int i = 0; i < 40; i++) {
        char key[32];
        snprintf(key, sizeof key, "t%d/%d", w->id, i);
        mc_result res;
        w->ok += mc_put(w->c, NS, key, "v", 1, NULL, &res) == MC_OK;
    }
    return NULL;
}

/* Per client id, the seqs a fake saw must grow: one write in flight per
 * id, whatever node each write went to. */
static void assert_seqs_grow(struct fake *f)
{
    for (unsigned i = 0; i < seen_count(f); i++) {
        for (unsigned k = i + 1; k < seen_count(f); k++) {
            if (f->seen[k].client_id == f->seen[i].client_id) {
                cr_assert_gt(f->seen[k].seq, f->seen[i].seq);
                break;
            }
        }
    }
}

Test(client_route_pick, many_threads_share_one_map)
{
    struct fake_cluster cl = {0};
    struct fake *a = fake_member(answer_ok, NULL, &cl);
    struct fake *b = fake_member(answer_ok, NULL, &cl);
    uint64_t both[] = {a->id, b->id};
    for (unsigned s = 0; s < 4; s++) {
        cluster_shard(&cl, s, s % 2 ? b->id : a->id, both, 2);
    }
    mc_client *c = client_on(a->url, 5000);
    /* Learn the map first, so what follows does not depend on how fast
     * one refresh runs beside the first writes (it did not under ASan). */
    mc_result res0;
    cr_assert_eq(mc_put(c, NS, "learn", "v", 1, NULL, &res0), MC_OK);
    unsigned before = seen_count(a);
    enum { THREADS = 8 };
    pthread_t t[THREADS];
    struct writer w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct writer){c, i, 0};
        pthread_create(&t[i], NULL, writer_main, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].ok, 40);
    }
    cr_assert_eq(ops_seen(a, MCPB__OP__OP_PUT) + ops_seen(b, MCPB__OP__OP_PUT),
                 THREADS * 40 + 1);
    cr_assert_gt(seen_count(b), 0);
    cr_assert_eq(c->n_socks, 2, "one socket per member, opened once");
    /* With the map learned, every write of every thread goes straight to
     * its shard's leader: none asks a node to forward. */
    unsigned forwarded = 0;
    for (unsigned i = before; i < seen_count(a); i++) {
        forwarded += !a->seen[i].no_forward;
    }
    for (unsigned i = 0; i < seen_count(b); i++) {
        forwarded += !b->seen[i].no_forward;
    }
    cr_assert_eq(forwarded, 0, "%u writes went around the map", forwarded);
    assert_seqs_grow(a);
    assert_seqs_grow(b);
    mc_client_close(c);
    fake_stop(a);
    fake_stop(b);
}

/* ---- a dead endpoint ---- */

struct async_ends {
    atomic_uint n, ok;
};

static void count_end(void *arg, mc_err code, const mc_result *res)
{
    struct async_ends *e = arg;
    atomic_fetch_add(&e->ok, code == MC_OK);
    atomic_fetch_add(&e->n, 1);
}

/* A fresh client on "dead, live" with a 300 ms timeout, the dead endpoint
 * preferred (the first one the refresh asks and a forward goes through).
 * The refresh must not spend its whole budget (half the call) waiting for
 * the dead node: it asks the live one too, learns the map, and the first
 * put goes straight to the leader. A request without a shard (STATUS)
 * goes through the caller's endpoints: the dead one, suspect now, is
 * skipped. And calls that a fresh client starts at once all succeed. */
Test(client_call, a_dead_first_endpoint_costs_a_fresh_client_little)
{
    struct fake *live = fake_start(answer_ok, NULL);
    char eps[160];
    snprintf(eps, sizeof eps, "inproc://dead-%d,%s", (int)getpid(),
             live->url);
    for (int i = 0; i < 5; i++) {
        mc_client *c = client_on(eps, 300);
        atomic_store(&c->preferred_ep, 0);
        mc_result res;
        int64_t t0 = base_mono_ms();
        cr_assert_eq(mc_put(c, NS, "k", "v", 1, NULL, &res), MC_OK,
                     "client %d: %s", i, res.message);
        cr_assert_lt(base_mono_ms() - t0, 300);
        unsigned n = seen_count(live);
        cr_assert(live->seen[n - 1].no_forward, "client %d: the put went "
                  "around the map: the refresh did not learn it", i);
        atomic_store(&c->preferred_ep, 0);
        mc_status *st;
        cr_assert_eq(mc_status_get(c, &st, &res), MC_OK, "client %d: %s", i,
                     res.message);
        mc_status_free(st);
        mc_client_close(c);
    }
    mc_client *c = client_on(eps, 300);
    atomic_store(&c->preferred_ep, 0);
    struct async_ends e;
    atomic_init(&e.n, 0);
    atomic_init(&e.ok, 0);
    enum { N = 20 };
    for (int i = 0; i < N; i++) {
        cr_assert_eq(mc_put_async(c, NS, "k", "v", 1, NULL, NULL, count_end,
                                  &e),
                     MC_OK);
    }
    for (int i = 0; i < 200 && atomic_load(&e.n) < N; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(atomic_load(&e.ok), N, "%u of %u", atomic_load(&e.ok),
                 atomic_load(&e.n));
    mc_client_close(c);
    fake_stop(live);
}
