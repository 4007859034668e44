/* put, get and del of memcoordctl. */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int ctl_cmd_put(struct ctl *x)
{
    const char *key = x->args[0];
    const uint8_t *value = (const uint8_t *)x->args[1];
    size_t value_len = strlen(x->args[1]);
    uint8_t *from_stdin = NULL;
    if (strcmp(x->args[1], "-") == 0) {
        mc_result res = {0};
        mc_err rv = ctl_read_stdin(MC_VALUE_BYTES_MAX, &from_stdin,
                                   &value_len, res.message,
                                   sizeof res.message);
        if (rv != MC_OK) {
            return ctl_print_error(x, rv, &res);
        }
        value = from_stdin;
    }
    mc_put_opts opts = MC_PUT_OPTS_INIT;
    opts.expect_version = x->expect_version;
    opts.tier = x->tier;
    opts.ttl_ms = x->ttl_ms;
    mc_result res;
    mc_err rv = mc_put(x->client, x->ns, key, value, value_len, &opts, &res);
    free(from_stdin);
    if (rv != MC_OK) {
        return ctl_print_error(x, rv, &res);
    }
    ctl_print_write(x, key, &res);
    return CTL_EXIT_OK;
}

int ctl_cmd_get(struct ctl *x)
{
    mc_read_opts opts = {.serializable = x->serializable};
    mc_record *r;
    mc_result res;
    mc_err rv = mc_get(x->client, x->ns, x->args[0], &opts, &r, &res);
    if (rv != MC_OK) {
        return ctl_print_error(x, rv, &res);
    }
    ctl_print_record(x, r);
    mc_record_free(r);
    return CTL_EXIT_OK;
}

int ctl_cmd_del(struct ctl *x)
{
    mc_result res;
    mc_err rv = mc_delete(x->client, x->ns, x->args[0], x->expect_version,
                          &res);
    if (rv != MC_OK) {
        return ctl_print_error(x, rv, &res);
    }
    ctl_print_write(x, x->args[0], &res);
    return CTL_EXIT_OK;
}
