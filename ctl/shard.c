/* shard of memcoordctl: administration of one shard.
 *   shard transfer-leader SHARD [--to NODE] */
#include <string.h>

#include "ctl.h"

int ctl_cmd_shard(struct ctl *x)
{
    uint64_t shard;
    if (strcmp(x->args[0], "transfer-leader") != 0 || x->n_args != 2 ||
        !ctl_parse_u64(x->args[1], UINT32_MAX, &shard)) {
        fprintf(stderr, "memcoordctl: usage: shard transfer-leader SHARD "
                        "[--to NODE]\n");
        return CTL_EXIT_USAGE;
    }
    uint64_t leader = 0;
    mc_result res;
    mc_err rv = mc_shard_transfer_leader(x->client, (uint32_t)shard,
                                         x->to_node, &leader, &res);
    if (rv != MC_OK) {
        return ctl_print_error(x, rv, &res);
    }
    if (x->output == CTL_OUTPUT_JSON) {
        printf("{\"shard\":%llu,\"leader_id\":%llu}\n",
               (unsigned long long)shard, (unsigned long long)leader);
    } else {
        printf("OK shard %llu is led by node %llu\n",
               (unsigned long long)shard, (unsigned long long)leader);
    }
    return CTL_EXIT_OK;
}
