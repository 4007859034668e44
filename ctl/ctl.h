/* ctl: memcoordctl, the admin and scripting tool, in the manner of etcdctl.
 * It uses only the public API of include/memcoord.h (DESIGN.md §8).
 *
 *   main.c    the option and command tables, parsing, usage, dispatch
 *   args.c    durations, numbers, tiers, stdin
 *   json.c    JSON strings, UTF-8 check, base64
 *   output.c  records, write results and errors, as text or JSON
 *   kv.c      put, get, del
 *   ls.c      ls, paging through every shard's keys, by prefix or pattern
 *   txn.c     txn: a transaction from stdin
 *   txnparse.c  the text and JSON syntaxes of txn
 *   status.c  status of a node and its shards
 *   watch.c   watch (streams events until interrupted) and wait
 *
 * Exit status: 0 success, 1 an error from the library or the node, 2 a
 * usage error. */
#ifndef MC_CTL_H
#define MC_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "memcoord.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_ERROR 1
#define CTL_EXIT_USAGE 2

/* Where memcoordctl looks when neither --endpoints nor MEMCOORD_ENDPOINTS
 * says: the embedded default of `memcoord --data DIR`. */
#define CTL_ENDPOINTS_DEFAULT "tcp://127.0.0.1:7400"
#define CTL_ENDPOINTS_ENV "MEMCOORD_ENDPOINTS"
#define CTL_NS_DEFAULT "default"

/* Positional arguments a command takes at most (put KEY VALUE). */
#define CTL_ARGS_MAX 2u
/* ls asks for pages of this many keys until --limit is reached. */
#define CTL_LS_PAGE_KEYS 1000u
/* watch waits for events this long per call, so that Ctrl-C is noticed
 * within it (the library keeps its long polls in flight between calls). */
#define CTL_WATCH_POLL_MS 200
/* wait waits this long when --timeout is not given. */
#define CTL_WAIT_TIMEOUT_MS MC_WAIT_TIMEOUT_MS_DEFAULT

_Static_assert(CTL_LS_PAGE_KEYS <= MC_LIST_PAGE_MAX, "a valid page size");

enum ctl_output { CTL_OUTPUT_TEXT, CTL_OUTPUT_JSON };

/* Options, as bits, so each command can say which ones it takes. */
enum ctl_opt_bit {
    CTL_OPT_ENDPOINTS = 1u << 0,
    CTL_OPT_NAMESPACE = 1u << 1,
    CTL_OPT_OUTPUT = 1u << 2,
    CTL_OPT_TIMEOUT = 1u << 3,
    CTL_OPT_HELP = 1u << 4,
    CTL_OPT_EXPECT_VERSION = 1u << 5,
    CTL_OPT_TIER = 1u << 6,
    CTL_OPT_TTL = 1u << 7,
    CTL_OPT_LIMIT = 1u << 8,
    CTL_OPT_KEYS_ONLY = 1u << 9,
    CTL_OPT_SERIALIZABLE = 1u << 10,
    CTL_OPT_META = 1u << 11,
    CTL_OPT_TO = 1u << 12,
    CTL_OPT_PREFIX = 1u << 13,
    CTL_OPT_LIKE = 1u << 14,
    CTL_OPT_JSON = 1u << 15,
    CTL_OPT_REV = 1u << 16,
    CTL_OPT_EQUALS = 1u << 17,
    CTL_OPT_VERSION = 1u << 18,
};
#define CTL_OPTS_GLOBAL                                                    \
    (CTL_OPT_ENDPOINTS | CTL_OPT_NAMESPACE | CTL_OPT_OUTPUT |              \
     CTL_OPT_TIMEOUT | CTL_OPT_HELP)

/* Members memcoordctl status asks (the cluster limit of DESIGN: 64). */
#define CTL_NODES_MAX 64

/* The parsed command line. Strings borrow from argv or the environment. */
struct ctl {
    const char *endpoints;
    const char *ns;
    enum ctl_output output;
    int timeout_ms; /* 0 = the library's default */
    int64_t expect_version;
    mc_tier tier;
    uint64_t ttl_ms;
    uint64_t limit; /* ls: 0 = every key */
    bool keys_only;
    bool serializable;
    bool meta;
    uint64_t to_node; /* shard transfer-leader --to: 0 = raft's choice */
    bool force_prefix; /* ls --prefix: the argument is a prefix */
    bool force_like;   /* ls --like: the argument is a LIKE pattern */
    bool json_input;   /* txn --json: stdin is JSON */
    uint64_t rev;     /* watch --rev: events after this revision */
    const char *equals; /* wait --equals */
    uint64_t version;   /* wait --version */
    unsigned given; /* enum ctl_opt_bit of the options on the line */
    const char *command;
    const char *args[CTL_ARGS_MAX];
    unsigned n_args;
    mc_client *client;
};

/* ---- args.c ---- */

/* "500ms", "30s", "5m", "2h", "7d" and sums such as "1h30m" into ms.
 * Returns false for anything else, a bare number included. */
bool ctl_parse_duration_ms(const char *s, uint64_t *out);
/* A decimal number without sign, at most max. */
bool ctl_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* Read all of stdin, at most max bytes. On success *out is a buffer of
 * *len bytes the caller frees (NUL-terminated for convenience). Returns
 * MC_TOO_LARGE when stdin holds more, MC_INTERNAL on a read error, with
 * the reason in msg. */
mc_err ctl_read_stdin(size_t max, uint8_t **out, size_t *len, char *msg,
                      size_t msg_len);

/* Bytes of a transaction memcoordctl txn reads from stdin at most: the
 * values a transaction carries and room for its keys and syntax. */
#define CTL_TXN_INPUT_BYTES_MAX (4u * MC_VALUE_BYTES_MAX)

/* ---- txnparse.c ---- */

/* A transaction read from stdin: the arrays mc_txn takes (ops[0] then,
 * ops[1] else), and every key and value they point at. */
struct ctl_txn {
    mc_cmp *cmps;
    size_t n_cmps, cap_cmps;
    mc_op *ops[2];
    size_t n_ops[2], cap_ops[2];
    char **strs;
    size_t n_strs, cap_strs;
};

/* Parse in[0..len) (the text syntax of txnparse.c, or JSON) into t,
 * which starts zeroed and is released with ctl_txn_fini either way.
 * Errors: INVALID_ARGUMENT with the line or part in msg. */
mc_err ctl_txn_parse_text(const char *in, size_t len, struct ctl_txn *t,
                          char *msg, size_t msg_len);
mc_err ctl_txn_parse_json(const char *in, size_t len, struct ctl_txn *t,
                          char *msg, size_t msg_len);
void ctl_txn_fini(struct ctl_txn *t);

/* ---- json.c ---- */

/* Write s as a JSON string: quotes, \" and \\, control characters as
 * \u00XX, invalid UTF-8 as U+FFFD. */
void ctl_json_str(FILE *f, const uint8_t *s, size_t len);
void ctl_json_cstr(FILE *f, const char *s);
/* Write s as standard base64 with padding, in quotes. */
void ctl_json_b64(FILE *f, const uint8_t *s, size_t len);

/* ---- output.c ---- */

/* The record of get or ls. text: the value and a newline; with meta the
 * metadata lines follow. JSON: one object on one line. */
void ctl_print_record(const struct ctl *x, const mc_record *r);
/* One line of ls. */
void ctl_print_list_entry(const struct ctl *x, const mc_record *r);
/* The result of put or del. */
void ctl_print_write(const struct ctl *x, const char *key,
                     const mc_result *res);
/* The result of txn: the branch that ran and a line (text) or a member
 * (JSON) per operation of it. */
void ctl_print_txn(const struct ctl *x, const mc_txn_req *t,
                   const mc_txn_result *r);
/* One event of watch. text: TYPE, KEY, VERSION, REVISION, TIER, VALUE,
 * tab-separated, the value escaped onto the line as ls does. JSON: one
 * object on one line. */
void ctl_print_event(const struct ctl *x, const mc_event *e);
/* "error: CODE: message" (or the JSON object) on stderr; returns
 * CTL_EXIT_ERROR. */
int ctl_print_error(const struct ctl *x, mc_err code, const mc_result *res);
/* Flush stdout; an error (a closed pipe, a full disk) becomes exit 1. */
int ctl_finish(const struct ctl *x, int status);

/* ---- commands: each returns an exit status ---- */
int ctl_cmd_put(struct ctl *x);
int ctl_cmd_get(struct ctl *x);
int ctl_cmd_del(struct ctl *x);
int ctl_cmd_ls(struct ctl *x);
int ctl_cmd_txn(struct ctl *x);
int ctl_cmd_status(struct ctl *x);
int ctl_cmd_shard(struct ctl *x);
int ctl_cmd_watch(struct ctl *x);
int ctl_cmd_wait(struct ctl *x);

#endif
