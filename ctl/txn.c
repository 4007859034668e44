/* txn of memcoordctl: one transaction read from stdin, in the text syntax
 * or JSON (txnparse.c), run with mc_txn. Exit 0 when it ran, whichever
 * branch (the first line, or "branch" in JSON, says which), 1 when the
 * library or the node refused it, the input included. */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* JSON when --json says so or the input starts with '{'. */
static bool input_is_json(const struct ctl *x, const uint8_t *in, size_t len)
{
    if (x->json_input) {
        return true;
    }
    size_t i = 0;
    while (i < len && (in[i] == ' ' || in[i] == '\t' || in[i] == '\r' ||
                       in[i] == '\n')) {
        i++;
    }
    return i < len && in[i] == '{';
}

int ctl_cmd_txn(struct ctl *x)
{
    mc_result res = {0};
    uint8_t *in;
    size_t len;
    mc_err rv = ctl_read_stdin(CTL_TXN_INPUT_BYTES_MAX, &in, &len,
                               res.message, sizeof res.message);
    if (rv != MC_OK) {
        return ctl_print_error(x, rv, &res);
    }
    struct ctl_txn t = {0};
    rv = input_is_json(x, in, len)
             ? ctl_txn_parse_json((const char *)in, len, &t, res.message,
                                  sizeof res.message)
             : ctl_txn_parse_text((const char *)in, len, &t, res.message,
                                  sizeof res.message);
    int status = CTL_EXIT_OK;
    if (rv != MC_OK) {
        status = ctl_print_error(x, rv, &res);
        goto out;
    }
    mc_txn_req req = {
        .compares = t.cmps,
        .n_compares = t.n_cmps,
        .then_ops = t.ops[0],
        .n_then = t.n_ops[0],
        .else_ops = t.ops[1],
        .n_else = t.n_ops[1],
    };
    mc_txn_result *r;
    rv = mc_txn(x->client, x->ns, &req, &r, &res);
    if (rv != MC_OK) {
        status = ctl_print_error(x, rv, &res);
        goto out;
    }
    ctl_print_txn(x, &req, r);
    mc_txn_result_free(r);
out:
    ctl_txn_fini(&t);
    free(in);
    return status;
}
