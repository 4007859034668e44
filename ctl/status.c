/* status of memcoordctl: what the node says of itself and its shards. */
#include "ctl.h"

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

static void status_text(const mc_status *s)
{
    printf("node %llu  version %s  listen %s  uptime ",
           (unsigned long long)s->node_id, s->version, s->listen);
    uptime_text(stdout, s->uptime_ms);
    printf("\n%5s %-11s %6s %5s %9s %9s %7s %7s %7s %9s %9s\n", "SHARD",
           "SLOTS", "LEADER", "TERM", "APPLIED", "LAST", "SHORT", "MID",
           "LONG", "APPLIED_E", "SKIPPED_E");
    for (size_t i = 0; i < s->n_shards; i++) {
        const mc_shard_status *h = &s->shards[i];
        char slots[32];
        snprintf(slots, sizeof slots, "%u-%u", h->slot_lo, h->slot_hi);
        char leader[24];
        snprintf(leader, sizeof leader, "%llu%s",
                 (unsigned long long)h->leader_id, h->is_leader ? "*" : "");
        printf("%5u %-11s %6s %5llu %9llu %9llu %7llu %7llu %7llu %9llu "
               "%9llu\n",
               h->id, slots, leader, (unsigned long long)h->term,
               (unsigned long long)h->applied_index,
               (unsigned long long)h->last_index,
               (unsigned long long)h->records[MC_TIER_SHORT],
               (unsigned long long)h->records[MC_TIER_MID],
               (unsigned long long)h->records[MC_TIER_LONG],
               (unsigned long long)h->applied_entries,
               (unsigned long long)h->skipped_entries);
    }
    printf("(* = this node leads the shard; APPLIED_E/SKIPPED_E = log "
           "entries applied since start / skipped at start)\n");
}

static void shard_json(const mc_shard_status *h)
{
    printf("{\"id\":%u,\"slot_lo\":%u,\"slot_hi\":%u,\"leader_id\":%llu,"
           "\"term\":%llu,\"applied_index\":%llu,\"last_index\":%llu,"
           "\"records\":{\"short\":%llu,\"mid\":%llu,\"long\":%llu},"
           "\"applied_entries\":%llu,\"skipped_entries\":%llu,"
           "\"is_leader\":%s}",
           h->id, h->slot_lo, h->slot_hi, (unsigned long long)h->leader_id,
           (unsigned long long)h->term, (unsigned long long)h->applied_index,
           (unsigned long long)h->last_index,
           (unsigned long long)h->records[MC_TIER_SHORT],
           (unsigned long long)h->records[MC_TIER_MID],
           (unsigned long long)h->records[MC_TIER_LONG],
           (unsigned long long)h->applied_entries,
           (unsigned long long)h->skipped_entries,
           h->is_leader ? "true" : "false");
}

static void status_json(const mc_status *s)
{
    printf("{\"node_id\":%llu,\"version\":", (unsigned long long)s->node_id);
    ctl_json_cstr(stdout, s->version);
    fputs(",\"listen\":", stdout);
    ctl_json_cstr(stdout, s->listen);
    printf(",\"uptime_ms\":%llu,\"shards\":[",
           (unsigned long long)s->uptime_ms);
    for (size_t i = 0; i < s->n_shards; i++) {
        if (i > 0) {
            fputc(',', stdout);
        }
        shard_json(&s->shards[i]);
    }
    fputs("]}\n", stdout);
}

int ctl_cmd_status(struct ctl *x)
{
    mc_status *s;
    mc_result res;
    mc_err rv = mc_status_get(x->client, &s, &res);
    if (rv != MC_OK) {
        return ctl_print_error(x, rv, &res);
    }
    if (x->output == CTL_OUTPUT_JSON) {
        status_json(s);
    } else {
        status_text(s);
    }
    mc_status_free(s);
    return CTL_EXIT_OK;
}
