/* history: the JSON-lines operation log of a fault run. See history.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/fault/history.h"

/* The first unexpected answers are printed; the rest only counted. */
#define HISTORY_UNEXPECTED_PRINT_MAX 10u

struct history {
    pthread_mutex_t mu;
    FILE *f;
    char *path;
    char *buf;
    size_t len;
    bool failed; /* a write failed: history_close says so */
    uint64_t next_id;
    uint64_t next_proc;
    struct history_counts counts;
};

/* A line being built, on the caller's stack: keys and values of the fault
 * workloads are short (an append list is the longest). */
#define LINE_BYTES_MAX (64u << 10)

struct line {
    char *p;
    size_t len, cap;
    bool cut; /* did not fit: the line is dropped and the history fails */
};

static void line_add(struct line *l, const char *fmt, ...)
{
    if (l->cut) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->p + l->len, l->cap - l->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= l->cap - l->len) {
        l->cut = true;
        return;
    }
    l->len += (size_t)n;
}

/* "name": "escaped string" (or null). */
static void line_str(struct line *l, const char *name, const char *s)
{
    if (s == NULL) {
        line_add(l, ", \"%s\": null", name);
        return;
    }
    line_add(l, ", \"%s\": \"", name);
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\') {
            line_add(l, "\\%c", *c);
        } else if (*c < 0x20) {
            line_add(l, "\\u%04x", *c);
        } else {
            line_add(l, "%c", *c);
        }
    }
    line_add(l, "\"");
}

static void line_head(struct line *l, const char *ev, uint64_t id,
                      uint64_t proc, const struct history_op *op)
{
    line_add(l, "{\"ev\": \"%s\", \"id\": %" PRIu64 ", \"proc\": %" PRIu64
                ", \"t\": %" PRId64,
             ev, id, proc, history_now_ns());
    line_str(l, "w", op->w);
    line_str(l, "key", op->key);
    line_str(l, "f", op->f);
}

static int buffer_flush(struct history *h)
{
    if (h->len > 0 && fwrite(h->buf, 1, h->len, h->f) != h->len) {
        fprintf(stderr, "history: write %s: %s\n", h->path, strerror(errno));
        h->failed = true;
    }
    h->len = 0;
    return h->failed ? -1 : 0;
}

/* Append a finished line under the lock. */
static void history_put(struct history *h, struct line *l)
{
    if (l->cut) {
        fprintf(stderr, "history: a line longer than %u bytes\n",
                LINE_BYTES_MAX);
        h->failed = true;
        return;
    }
    if (h->len + l->len + 1 > HISTORY_BUFFER_BYTES) {
        buffer_flush(h);
    }
    memcpy(h->buf + h->len, l->p, l->len);
    h->len += l->len;
    h->buf[h->len++] = '\n';
}

struct history *history_open(const char *path)
{
    struct history *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return NULL;
    }
    h->buf = malloc(HISTORY_BUFFER_BYTES);
    h->path = strdup(path);
    h->f = fopen(path, "w");
    if (h->buf == NULL || h->path == NULL || h->f == NULL) {
        fprintf(stderr, "history: open %s: %s\n", path, strerror(errno));
        if (h->f != NULL) {
            fclose(h->f);
        }
        free(h->buf);
        free(h->path);
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->next_id = 1;
    h->next_proc = 1;
    return h;
}

int history_close(struct history *h)
{
    if (h == NULL) {
        return 0;
    }
    pthread_mutex_lock(&h->mu);
    int rv = buffer_flush(h);
    pthread_mutex_unlock(&h->mu);
    if (fclose(h->f) != 0) {
        fprintf(stderr, "history: close %s: %s\n", h->path, strerror(errno));
        rv = -1;
    }
    pthread_mutex_destroy(&h->mu);
    free(h->buf);
    free(h->path);
    free(h);
    return rv;
}

int64_t history_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t history_proc(struct history *h)
{
    pthread_mutex_lock(&h->mu);
    uint64_t p = h->next_proc++;
    pthread_mutex_unlock(&h->mu);
    return p;
}

static bool op_is_write(const struct history_op *op)
{
    return strcmp(op->f, "get") != 0 && strcmp(op->f, "read") != 0;
}

uint64_t history_invoke(struct history *h, uint64_t proc,
                        const struct history_op *op)
{
    char buf[LINE_BYTES_MAX];
    struct line l = {.p = buf, .cap = sizeof buf};
    pthread_mutex_lock(&h->mu);
    /* Time stamp and id under the lock: lines are in time order. */
    uint64_t id = h->next_id++;
    line_head(&l, "invoke", id, proc, op);
    if (op_is_write(op)) {
        line_str(&l, "value", op->value);
        if (op->expect >= 0) {
            line_add(&l, ", \"expect\": %" PRId64, op->expect);
        }
        if (op->elem != NULL) {
            line_str(&l, "elem", op->elem);
        }
    }
    line_add(&l, "}");
    history_put(h, &l);
    h->counts.ops++;
    pthread_mutex_unlock(&h->mu);
    return id;
}

enum history_outcome history_outcome_of(bool is_write, mc_err rv,
                                        bool *unexpected)
{
    bool odd = false;
    enum history_outcome o;
    switch (rv) {
    case MC_OK:
        o = HISTORY_OK;
        break;
    case MC_NOT_FOUND:
        /* A read saw the key absent; a delete of a missing key. */
        o = HISTORY_OK;
        break;
    case MC_CONFLICT:
        odd = !is_write;
        o = is_write ? HISTORY_OK : HISTORY_FAIL;
        break;
    case MC_TIMEOUT:
        o = is_write ? HISTORY_INFO : HISTORY_FAIL;
        break;
    case MC_INVALID_ARGUMENT:
    case MC_TOO_LARGE:
    case MC_UNAVAILABLE:
    case MC_NOT_LEADER:
        o = HISTORY_FAIL;
        break;
    default:
        /* Not an answer of a get or a put: a write's outcome is then
         * unknown, and the run is told. */
        odd = true;
        o = is_write ? HISTORY_INFO : HISTORY_FAIL;
        break;
    }
    if (unexpected != NULL) {
        *unexpected = odd;
    }
    return o;
}

enum history_outcome history_complete(struct history *h, uint64_t id,
                                      uint64_t proc,
                                      const struct history_op *op, mc_err rv,
                                      const char *value_read,
                                      uint64_t version)
{
    bool write = op_is_write(op);
    bool unexpected;
    enum history_outcome o = history_outcome_of(write, rv, &unexpected);
    static const char *const ev[] = {"ok", "fail", "info"};
    char buf[LINE_BYTES_MAX];
    struct line l = {.p = buf, .cap = sizeof buf};
    pthread_mutex_lock(&h->mu);
    line_head(&l, ev[o], id, proc, op);
    line_add(&l, ", \"err\": \"%s\"", mc_errname(rv));
    if (o == HISTORY_OK) {
        if (!write) {
            line_str(&l, "value", rv == MC_OK ? value_read : NULL);
            version = rv == MC_OK ? version : 0;
        }
        line_add(&l, ", \"version\": %" PRIu64, version);
    }
    line_add(&l, "}");
    history_put(h, &l);
    uint64_t *count[] = {&h->counts.ok, &h->counts.fail, &h->counts.info};
    (*count[o])++;
    if (unexpected) {
        if (h->counts.unexpected < HISTORY_UNEXPECTED_PRINT_MAX) {
            fprintf(stderr, "history: op %" PRIu64 " %s %s answered %s\n", id,
                    op->f, op->key, mc_errname(rv));
        }
        h->counts.unexpected++;
    }
    pthread_mutex_unlock(&h->mu);
    return o;
}

/* ---- the watch workload's lines ---- */

static void watch_head(struct line *l, const char *ev, uint64_t proc)
{
    line_add(l, "{\"ev\": \"%s\", \"w\": \"watch\", \"proc\": %" PRIu64
                ", \"t\": %" PRId64,
             ev, proc, history_now_ns());
}

static void watch_put(struct history *h, struct line *l)
{
    line_add(l, "}");
    history_put(h, l);
}

void history_watch_open(struct history *h, uint64_t proc, const char *prefix,
                        bool resumed)
{
    char buf[1024];
    struct line l = {.p = buf, .cap = sizeof buf};
    pthread_mutex_lock(&h->mu);
    watch_head(&l, "open", proc);
    line_str(&l, "key", prefix);
    line_add(&l, ", \"resumed\": %s", resumed ? "true" : "false");
    watch_put(h, &l);
    pthread_mutex_unlock(&h->mu);
}

void history_watch_event(struct history *h, uint64_t proc, const mc_event *e)
{
    char buf[LINE_BYTES_MAX];
    struct line l = {.p = buf, .cap = sizeof buf};
    bool valued = e->type == MC_EVENT_PUT || e->type == MC_EVENT_PROMOTE;
    pthread_mutex_lock(&h->mu);
    watch_head(&l, "event", proc);
    line_str(&l, "key", e->record.key);
    line_str(&l, "type", mc_event_type_name(e->type));
    line_add(&l, ", \"version\": %" PRIu64, e->record.version);
    line_str(&l, "value",
             valued && e->record.value != NULL ? (const char *)e->record.value
                                               : NULL);
    line_add(&l, ", \"revision\": %" PRIu64 ", \"shard\": %" PRIu32
                 ", \"seq\": %" PRIu32,
             e->revision, e->shard, e->seq);
    watch_put(h, &l);
    pthread_mutex_unlock(&h->mu);
}

void history_watch_note(struct history *h, uint64_t proc, const char *ev,
                        const char *why, mc_err rv, uint64_t mod_rev)
{
    char buf[1024];
    struct line l = {.p = buf, .cap = sizeof buf};
    pthread_mutex_lock(&h->mu);
    watch_head(&l, ev, proc);
    if (why != NULL) {
        line_str(&l, "why", why);
    }
    line_add(&l, ", \"err\": \"%s\", \"mod_rev\": %" PRIu64,
             mc_errname(rv), mod_rev);
    watch_put(h, &l);
    pthread_mutex_unlock(&h->mu);
}

void history_counts_get(struct history *h, struct history_counts *out)
{
    pthread_mutex_lock(&h->mu);
    *out = h->counts;
    pthread_mutex_unlock(&h->mu);
}

/* ---- running checker.py ---- */

#define CHECKER_ARGS_MAX 64u
#define CHECKER_OUTPUT_BYTES_MAX (1u << 20)

int history_check(const char *checker, const char *const *paths, size_t n,
                  int budget_s, int timeout_s, char *summary,
                  size_t summary_len)
{
    if (checker == NULL) {
        checker = getenv("MEMCOORD_CHECKER");
    }
    if (checker == NULL || checker[0] == '\0') {
        checker = "tests/fault/checker.py";
    }
    if (n + 5 > CHECKER_ARGS_MAX) {
        return -1;
    }
    char budget[16];
    snprintf(budget, sizeof budget, "%d", budget_s);
    const char *argv[CHECKER_ARGS_MAX];
    size_t k = 0;
    argv[k++] = "python3";
    argv[k++] = checker;
    argv[k++] = "--budget-s";
    argv[k++] = budget;
    for (size_t i = 0; i < n; i++) {
        argv[k++] = paths[i];
    }
    argv[k] = NULL;
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (dup2(out[1], STDOUT_FILENO) < 0) {
            _exit(127);
        }
        execvp(argv[0], (char *const *)argv);
        dprintf(STDERR_FILENO, "history: exec python3: %s\n", strerror(errno));
        _exit(127);
    }
    close(out[1]);
    /* Read its output until it closes or the time is up. */
    char *text = malloc(CHECKER_OUTPUT_BYTES_MAX);
    size_t len = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool late = false;
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left_ms = (long)timeout_s * 1000 -
                       ((now.tv_sec - t0.tv_sec) * 1000 +
                        (now.tv_nsec - t0.tv_nsec) / 1000000);
        if (left_ms <= 0) {
            late = true;
            break;
        }
        struct pollfd p = {out[0], POLLIN, 0};
        int r = poll(&p, 1, (int)(left_ms > 1000 ? 1000 : left_ms));
        if (r < 0 && errno != EINTR) {
            break;
        }
        if (r <= 0) {
            continue;
        }
        char chunk[4096];
        ssize_t got = read(out[0], chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        fwrite(chunk, 1, (size_t)got, stderr);
        if (text != NULL && len + (size_t)got < CHECKER_OUTPUT_BYTES_MAX) {
            memcpy(text + len, chunk, (size_t)got);
            len += (size_t)got;
        }
    }
    close(out[0]);
    if (late) {
        fprintf(stderr, "history: checker still running after %d s; "
                        "killing it\n", timeout_s);
        kill(pid, SIGKILL);
    }
    int wstatus;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    /* The last non-empty line is the summary. */
    if (summary_len > 0) {
        summary[0] = '\0';
    }
    if (text != NULL) {
        while (len > 0 && text[len - 1] == '\n') {
            len--;
        }
        size_t start = len;
        while (start > 0 && text[start - 1] != '\n') {
            start--;
        }
        snprintf(summary, summary_len, "%.*s", (int)(len - start),
                 text + start);
        free(text);
    }
    if (late || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) == 127) {
        return -1;
    }
    return WEXITSTATUS(wstatus);
}
