/* history: the operation log of a fault run, in the JSON-lines format that
 * tests/fault/checker.py reads (its docstring is the reference).
 *
 * Every client operation is two lines: an invoke, written when the call
 * starts, and a completion (ok, fail or info), written when it returns,
 * each with a CLOCK_MONOTONIC time stamp in ns. How a libmemcoord answer
 * becomes a completion is history_outcome's table:
 *
 *   ok    the call happened and its answer is known: OK; NOT_FOUND of a
 *         read (the key is absent, version 0); CONFLICT of a write (it
 *         observed the current version: checker.py takes a CAS that
 *         answered CONFLICT as ok, which checks more than dropping it);
 *   fail  it certainly did not happen: INVALID_ARGUMENT, TOO_LARGE,
 *         UNAVAILABLE (libmemcoord says UNAVAILABLE for a write only when
 *         nothing was applied), NOT_LEADER, and any error of a read;
 *   info  outcome unknown, never a failure: TIMEOUT of a write, and any
 *         code a write should never answer (INTERNAL, ...), which the
 *         recorder also counts as unexpected so that the run can fail on
 *         it without guessing an outcome for the checker.
 *
 * After an info completion the client is a new "process" (history_proc
 * gives it a fresh number): a crashed process is never reused (Knossos).
 *
 * Thread-safe: any number of client threads record into one history.
 * Lines are buffered in memory and written when the buffer fills and at
 * history_close, so recording costs no system call per operation. */
#ifndef MC_TESTS_FAULT_HISTORY_H
#define MC_TESTS_FAULT_HISTORY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "memcoord.h"

/* Bytes buffered before the recorder writes them out. */
#define HISTORY_BUFFER_BYTES (1u << 20)

enum history_outcome { HISTORY_OK, HISTORY_FAIL, HISTORY_INFO };

/* What an operation asked for. Strings are borrowed for the call. */
struct history_op {
    const char *w;     /* workload: "register" or "append" */
    const char *f;     /* get | put | cas | read | append */
    const char *key;
    const char *value; /* put/cas/append: the value written; else NULL */
    int64_t expect;    /* cas/append: expected version; else -1 */
    const char *elem;  /* append: the element appended; else NULL */
};

struct history;

/* Open a history that writes to path (truncated). Returns NULL with the
 * reason on stderr. */
struct history *history_open(const char *path);

/* Flush and close; returns 0, or -1 when a write failed (the reason on
 * stderr). NULL is a no-op returning 0. */
int history_close(struct history *h);

/* Monotonic nanoseconds: the clock of every time stamp. */
int64_t history_now_ns(void);

/* A fresh process number, for a new client and after every info. */
uint64_t history_proc(struct history *h);

/* Record the invoke of op by proc; returns the operation's id. */
uint64_t history_invoke(struct history *h, uint64_t proc,
                        const struct history_op *op);

/* Record the completion of operation id (invoked as op by proc) that
 * libmemcoord answered with rv. value_read: the value a successful read
 * returned (NULL when absent); version: the version libmemcoord reported
 * (mc_result.version, or the record's version for a read). Returns the
 * outcome it recorded. */
enum history_outcome history_complete(struct history *h, uint64_t id,
                                      uint64_t proc,
                                      const struct history_op *op, mc_err rv,
                                      const char *value_read,
                                      uint64_t version);

/* The table above: how an answer rv to a read or a write is recorded.
 * *unexpected (may be NULL) is set when rv is not an answer the API
 * documents for that call. */
enum history_outcome history_outcome_of(bool is_write, mc_err rv,
                                        bool *unexpected);

/* The watch workload's lines ("w": "watch"; checker.py's docstring):
 *   open      a watch of prefix was opened (resumed: from a token); the
 *             first open of a proc is the watch's start;
 *   event     one event mc_watch_next returned: key, type, version, value
 *             (null for delete and expire), revision, shard, seq;
 *   close     the watch was closed to be reopened from its token (why);
 *   compacted mc_watch_next answered COMPACTED (mod_rev: res.mod_rev);
 *   error     mc_watch_next or mc_watch_open answered err (not
 *             UNAVAILABLE). */
void history_watch_open(struct history *h, uint64_t proc, const char *prefix,
                        bool resumed);
void history_watch_event(struct history *h, uint64_t proc,
                         const mc_event *e);
void history_watch_note(struct history *h, uint64_t proc, const char *ev,
                        const char *why, mc_err rv, uint64_t mod_rev);

/* Counters since history_open. */
struct history_counts {
    uint64_t ops;
    uint64_t ok, fail, info;
    uint64_t unexpected; /* answers no documented call gives */
};
void history_counts_get(struct history *h, struct history_counts *out);

/* Run checker.py (path; NULL: $MEMCOORD_CHECKER, else
 * tests/fault/checker.py) with python3 on the n history files, each key
 * given budget_s seconds of search, for at most timeout_s. Its output goes
 * to our stderr; its last line (the "checker: ops=..." summary) is copied
 * into summary. Returns the checker's exit status (0: every key
 * linearizable; 1: some key illegal or unknown; 2: malformed history), or
 * -1 when it could not run or ran out of time (then killed). */
int history_check(const char *checker, const char *const *paths, size_t n,
                  int budget_s, int timeout_s, char *summary,
                  size_t summary_len);

#endif
