/* watch and wait of memcoordctl. watch prints each event as the library
 * returns it, flushing after each batch so that a pipe sees it at once,
 * until SIGINT or SIGTERM (exit 0) or an error (exit 1); a shard that is
 * unreachable for a while (a failover) only delays events: the library
 * keeps retrying and the watch resumes where it was. wait exits 0 with
 * the record once its condition holds, or 1 with TIMEOUT. */
#include <signal.h>
#include <string.h>

#include "ctl.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* SIGINT and SIGTERM end the watch at its next poll (no SA_RESTART: a
 * blocking call returns early). */
static void signals_catch(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int ctl_cmd_watch(struct ctl *x)
{
    mc_watch_opts opts = MC_WATCH_OPTS_INIT;
    opts.prefix = x->force_prefix;
    if (x->given & CTL_OPT_REV) {
        opts.after_rev = (int64_t)x->rev;
    }
    signals_catch();
    mc_watch *w;
    mc_result res;
    mc_err rv = mc_watch_open(x->client, x->ns, x->args[0], &opts, &w, &res);
    if (rv != MC_OK) {
        return ctl_print_error(x, rv, &res);
    }
    int status = CTL_EXIT_OK;
    while (!interrupted) {
        mc_event *ev;
        size_t n;
        rv = mc_watch_next(w, CTL_WATCH_POLL_MS, &ev, &n, &res);
        if (rv == MC_UNAVAILABLE) {
            continue; /* a shard is failing over: the library retries */
        }
        if (rv != MC_OK) {
            status = ctl_print_error(x, rv, &res);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            ctl_print_event(x, &ev[i]);
        }
        mc_events_free(ev, n);
        if (n > 0 && fflush(stdout) != 0) {
            break; /* ctl_finish reports it */
        }
    }
    mc_watch_close(w);
    return status;
}

int ctl_cmd_wait(struct ctl *x)
{
    mc_wait_opts opts = MC_WAIT_OPTS_INIT;
    if ((x->given & CTL_OPT_EQUALS) && (x->given & CTL_OPT_VERSION)) {
        fputs("memcoordctl: wait takes --equals or --version, not both\n",
              stderr);
        return CTL_EXIT_USAGE;
    }
    if (x->given & CTL_OPT_EQUALS) {
        opts.cond = MC_WAIT_EQUALS;
        opts.value = x->equals;
        opts.value_len = strlen(x->equals);
    } else if (x->given & CTL_OPT_VERSION) {
        opts.cond = MC_WAIT_VERSION;
        opts.version = x->version;
    }
    opts.timeout_ms = (x->given & CTL_OPT_TIMEOUT) ? x->timeout_ms
                                                   : CTL_WAIT_TIMEOUT_MS;
    mc_record *r;
    mc_result res;
    mc_err rv = mc_wait(x->client, x->ns, x->args[0], &opts, &r, &res);
    if (rv != MC_OK) {
        return ctl_print_error(x, rv, &res);
    }
    ctl_print_record(x, r);
    mc_record_free(r);
    return CTL_EXIT_OK;
}
