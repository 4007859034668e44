/* status of memcoordctl: the cluster as its nodes see it. One node names
 * the members; each member is asked for the shards it hosts; the tables
 * show every node (up or down) and every shard with its leader, term, the
 * applied index of each replica and the lag between them. A node that does
 * not answer within a short time is shown DOWN rather than holding up the
 * whole command. */
#include <string.h>

#include "ctl.h"

/* How long a member may take to answer before it is shown DOWN. */
#define MEMBER_TIMEOUT_MS 1500

struct node_view {
    uint64_t id;
    const char *url;
    mc_status *st; /* NULL: down */
};

struct cluster_view {
    struct node_view nodes[CTL_NODES_MAX];
    size_t n;
    uint32_t shard_count;
};

/* 3723004 ms as "1h2m3s". */
static void uptime_text(FILE *f, uint64_t ms)
{
    uint64_t s = ms / 1000;
    if (s >= 86400) {
        fprintf(f, "%llud", (unsigned long long)(s / 86400));
    }
    if (s >= 3600) {
        fprintf(f, "%lluh", (unsigned long long)(s / 3600 % 24));
    }
    if (s >= 60) {
        fprintf(f, "%llum", (unsigned long long)(s / 60 % 60));
    }
    fprintf(f, "%llus", (unsigned long long)(s % 60));
}

static mc_status *member_status(const struct ctl *x, const char *url)
{
    int timeout = x->timeout_ms > 0 && x->timeout_ms < MEMBER_TIMEOUT_MS
                      ? x->timeout_ms
                      : MEMBER_TIMEOUT_MS;
    mc_options o = {.timeout_ms = timeout};
    mc_client *c;
    mc_result res;
    mc_status *st = NULL;
    if (mc_client_open(url, &o, &c, &res) == MC_OK) {
        if (mc_status_get(c, &st, &res) != MC_OK) {
            st = NULL;
        }
        mc_client_close(c);
    }
    return st;
}

/* Ask every member named by first (which the caller owns, like the rest). */
static void view_build(const struct ctl *x, mc_status *first,
                       struct cluster_view *v)
{
    memset(v, 0, sizeof *v);
    v->shard_count = first->shard_count;
    if (first->n_members == 0) { /* a node that names no members */
        v->nodes[0] = (struct node_view){first->node_id, first->listen, first};
        v->n = 1;
        return;
    }
    for (size_t i = 0; i < first->n_members && i < CTL_NODES_MAX; i++) {
        const mc_member *m = &first->members[i];
        struct node_view *nv = &v->nodes[v->n++];
        nv->id = m->id;
        nv->url = m->url;
        nv->st = m->id == first->node_id ? first : member_status(x, m->url);
    }
}

static void view_free(struct cluster_view *v, mc_status *first)
{
    for (size_t i = 0; i < v->n; i++) {
        if (v->nodes[i].st != first) {
            mc_status_free(v->nodes[i].st);
        }
    }
}

/* Node i's view of shard s, or NULL when it is down or hosts none. */
static const mc_shard_status *replica(const struct cluster_view *v, size_t i,
                                      uint32_t s)
{
    const mc_status *st = v->nodes[i].st;
    for (size_t k = 0; st != NULL && k < st->n_shards; k++) {
        if (st->shards[k].id == s) {
            return &st->shards[k];
        }
    }
    return NULL;
}

/* What the replicas of shard s agree on: the leader's own view when it
 * answered, else any replica's. */
struct shard_summary {
    const mc_shard_status *any;
    uint64_t leader_id;
    uint64_t term;
    uint64_t applied_max, applied_min;
    const mc_shard_status *leader; /* the leader's own view, if it answered */
    uint64_t leader_node;
};

static struct shard_summary summarize(const struct cluster_view *v, uint32_t s)
{
    struct shard_summary sum = {.applied_min = UINT64_MAX};
    for (size_t i = 0; i < v->n; i++) {
        const mc_shard_status *h = replica(v, i, s);
        if (h == NULL) {
            continue;
        }
        sum.any = sum.any ? sum.any : h;
        if (h->term >= sum.term) {
            sum.term = h->term;
            sum.leader_id = h->leader_id;
        }
        if (h->is_leader) {
            sum.leader = h;
            sum.leader_node = v->nodes[i].id;
        }
        sum.applied_max = h->applied_index > sum.applied_max ? h->applied_index
                                                              : sum.applied_max;
        sum.applied_min = h->applied_index < sum.applied_min ? h->applied_index
                                                              : sum.applied_min;
    }
    if (sum.leader != NULL) { /* it knows best */
        sum.leader_id = sum.leader_node;
        sum.term = sum.leader->term;
    }
    return sum;
}

static void status_text(const struct cluster_view *v)
{
    for (size_t i = 0; i < v->n; i++) {
        const struct node_view *n = &v->nodes[i];
        printf("node %llu  %-24s ", (unsigned long long)n->id, n->url);
        if (n->st == NULL) {
            printf("DOWN\n");
            continue;
        }
        printf("up  uptime ");
        uptime_text(stdout, n->st->uptime_ms);
        printf("  version %s  meta %s, leader ", n->st->version,
               n->st->meta_voter ? "voter" : "standby");
        if (n->st->meta_leader_id != 0) {
            printf("%llu term %llu\n", (unsigned long long)n->st->meta_leader_id,
                   (unsigned long long)n->st->meta_term);
        } else {
            printf("unknown\n");
        }
    }
    printf("%5s %-11s %6s %5s %-28s %5s %7s %7s %7s\n", "SHARD", "SLOTS",
           "LEADER", "TERM", "APPLIED (node:index)", "LAG", "SHORT", "MID",
           "LONG");
    for (uint32_t s = 0; s < v->shard_count; s++) {
        struct shard_summary sum = summarize(v, s);
        char slots[32] = "?", applied[128] = "", leader[24] = "-";
        if (sum.any != NULL) {
            snprintf(slots, sizeof slots, "%u-%u", sum.any->slot_lo,
                     sum.any->slot_hi);
        }
        for (size_t i = 0; i < v->n; i++) {
            const mc_shard_status *h = replica(v, i, s);
            size_t used = strlen(applied);
            if (h != NULL && used < sizeof applied) {
                snprintf(applied + used, sizeof applied - used, "%s%llu:%llu",
                         used ? " " : "", (unsigned long long)v->nodes[i].id,
                         (unsigned long long)h->applied_index);
            }
        }
        if (sum.leader_id != 0) {
            snprintf(leader, sizeof leader, "%llu",
                     (unsigned long long)sum.leader_id);
        }
        const mc_shard_status *rec = sum.leader ? sum.leader : sum.any;
        printf("%5u %-11s %6s %5llu %-28s %5llu %7llu %7llu %7llu\n", s, slots,
               leader, (unsigned long long)sum.term, applied,
               (unsigned long long)(sum.any ? sum.applied_max - sum.applied_min
                                            : 0),
               (unsigned long long)(rec ? rec->records[MC_TIER_SHORT] : 0),
               (unsigned long long)(rec ? rec->records[MC_TIER_MID] : 0),
               (unsigned long long)(rec ? rec->records[MC_TIER_LONG] : 0));
    }
}

static void replica_json(const struct node_view *n, const mc_shard_status *h)
{
    printf("{\"node_id\":%llu,\"applied_index\":%llu,\"last_index\":%llu,"
           "\"is_leader\":%s,\"applied_entries\":%llu,"
           "\"skipped_entries\":%llu}",
           (unsigned long long)n->id, (unsigned long long)h->applied_index,
           (unsigned long long)h->last_index, h->is_leader ? "true" : "false",
           (unsigned long long)h->applied_entries,
           (unsigned long long)h->skipped_entries);
}

static void shard_json(const struct cluster_view *v, uint32_t s)
{
    struct shard_summary sum = summarize(v, s);
    const mc_shard_status *rec = sum.leader ? sum.leader : sum.any;
    printf("{\"id\":%u,\"slot_lo\":%u,\"slot_hi\":%u,\"leader_id\":%llu,"
           "\"term\":%llu,\"lag\":%llu,\"replicas\":[",
           s, sum.any ? sum.any->slot_lo : 0, sum.any ? sum.any->slot_hi : 0,
           (unsigned long long)sum.leader_id, (unsigned long long)sum.term,
           (unsigned long long)(sum.any ? sum.applied_max - sum.applied_min
                                        : 0));
    bool first = true;
    for (size_t i = 0; i < v->n; i++) {
        const mc_shard_status *h = replica(v, i, s);
        if (h != NULL) {
            fputs(first ? "" : ",", stdout);
            replica_json(&v->nodes[i], h);
            first = false;
        }
    }
    printf("],\"records\":{\"short\":%llu,\"mid\":%llu,\"long\":%llu}}",
           (unsigned long long)(rec ? rec->records[MC_TIER_SHORT] : 0),
           (unsigned long long)(rec ? rec->records[MC_TIER_MID] : 0),
           (unsigned long long)(rec ? rec->records[MC_TIER_LONG] : 0));
}

static void status_json(const struct cluster_view *v)
{
    fputs("{\"nodes\":[", stdout);
    for (size_t i = 0; i < v->n; i++) {
        const struct node_view *n = &v->nodes[i];
        printf("%s{\"node_id\":%llu,\"url\":", i ? "," : "",
               (unsigned long long)n->id);
        ctl_json_cstr(stdout, n->url);
        if (n->st == NULL) {
            fputs(",\"up\":false}", stdout);
            continue;
        }
        printf(",\"up\":true,\"uptime_ms\":%llu,\"version\":",
               (unsigned long long)n->st->uptime_ms);
        ctl_json_cstr(stdout, n->st->version);
        printf(",\"meta_role\":\"%s\",\"meta_leader\":%llu,"
               "\"meta_term\":%llu}",
               n->st->meta_voter ? "voter" : "standby",
               (unsigned long long)n->st->meta_leader_id,
               (unsigned long long)n->st->meta_term);
    }
    fputs("],\"shards\":[", stdout);
    for (uint32_t s = 0; s < v->shard_count; s++) {
        fputs(s ? "," : "", stdout);
        shard_json(v, s);
    }
    fputs("]}\n", stdout);
}

int ctl_cmd_status(struct ctl *x)
{
    mc_status *first;
    mc_result res;
    mc_err rv = mc_status_get(x->client, &first, &res);
    if (rv != MC_OK) {
        return ctl_print_error(x, rv, &res);
    }
    static struct cluster_view v;
    view_build(x, first, &v);
    if (x->output == CTL_OUTPUT_JSON) {
        status_json(&v);
    } else {
        status_text(&v);
    }
    view_free(&v, first);
    mc_status_free(first);
    return CTL_EXIT_OK;
}
