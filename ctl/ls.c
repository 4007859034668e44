/* ls of memcoordctl: every key of a namespace under a prefix, or matching
 * a SQL LIKE pattern, in order, page after page (each page merged from all
 * shards by the library) until --limit keys are printed or none are left.
 * A pattern page may be empty and still have more: paging goes on until
 * the library says there is no more. Records are printed as they
 * come, so a large namespace needs no more memory than one page. */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int ctl_cmd_ls(struct ctl *x)
{
    const char *arg = x->n_args > 0 ? x->args[0] : "";
    /* A LIKE pattern when forced, or when it holds an unescaped wildcard
     * and is not forced to be a prefix; the empty argument lists all. */
    bool like = arg[0] != '\0' &&
                (x->force_like ||
                 (!x->force_prefix && mc_like_has_wildcard(arg)));
    const char *prefix = like ? "" : arg;
    char *cursor = NULL;
    uint64_t printed = 0;
    int status = CTL_EXIT_OK;
    for (;;) {
        uint64_t want = CTL_LS_PAGE_KEYS;
        if (x->limit > 0 && x->limit - printed < want) {
            want = x->limit - printed;
        }
        mc_list_opts opts = {
            .start_after = cursor,
            .limit = (uint32_t)want,
            .keys_only = x->keys_only,
            .serializable = x->serializable,
            .pattern = like ? arg : NULL,
        };
        mc_page *page;
        mc_result res;
        mc_err rv = mc_list(x->client, x->ns, prefix, &opts, &page, &res);
        if (rv != MC_OK) {
            status = ctl_print_error(x, rv, &res);
            break;
        }
        for (size_t i = 0; i < page->n; i++) {
            ctl_print_list_entry(x, &page->records[i]);
        }
        printed += page->n;
        bool done = !page->more || (x->limit > 0 && printed >= x->limit);
        free(cursor);
        cursor = NULL;
        if (!done) {
            cursor = strdup(page->next_cursor);
        }
        mc_page_free(page);
        if (done) {
            break;
        }
        if (cursor == NULL) {
            mc_result oom = {0};
            snprintf(oom.message, sizeof oom.message, "out of memory");
            status = ctl_print_error(x, MC_INTERNAL, &oom);
            break;
        }
    }
    free(cursor);
    return status;
}
