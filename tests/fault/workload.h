/* workload: client threads that drive a cluster through libmemcoord and
 * record every operation in a history (history.h).
 *
 *   register  get / put / CAS (expecting the version the thread last saw
 *             of the key, so some CAS conflict) on shared keys;
 *   append    read a key's list, then CAS-append a unique element with
 *             the version read: the list grows by one element per
 *             acknowledged append, and no element may appear twice or go
 *             missing.
 *
 * Keys are spread over every shard (harness_key_in_shard): each workload
 * has slots_per_shard slots in each shard, and a slot moves on to a fresh
 * key ("generation") after ops_per_key operations, which bounds the
 * linearizability search per key. Every thread has its own mc_client on
 * all the endpoints, and every write a value unique in the run.
 *
 * watch     (optional) one prefix watch over the register keys, opened
 *           before any write, every event recorded ("w": "watch"); every
 *           watch_reopen_ms, and after any error but UNAVAILABLE, the
 *           watch is closed and reopened from its resume token, so that
 *           checker.py sees whether resuming loses or repeats events
 *           under faults. At workload_stop it drains: it goes on until it
 *           has seen every acknowledged register write (or
 *           WORKLOAD_WATCH_DRAIN_MS passed; the checker then says what is
 *           missing).
 *
 * Besides the history, the workload keeps, per key, the highest version an
 * acknowledged write made (and its value), and every acknowledged append
 * element: workload_verify compares them with final reads, an account of
 * lost writes that does not depend on the checker. */
#ifndef MC_TESTS_FAULT_WORKLOAD_H
#define MC_TESTS_FAULT_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "tests/fault/history.h"

#define WORKLOAD_THREADS_MAX 16u
#define WORKLOAD_SLOTS_MAX 256u
#define WORKLOAD_WATCH_DRAIN_MS 30000
/* The prefix of every register key (the watch's prefix). */
#define WORKLOAD_REGISTER_PREFIX "reg/"

struct workload_config {
    const char *endpoints; /* comma-separated client URLs of every node */
    const char *ns;
    uint32_t n_shards;
    unsigned register_threads;
    unsigned append_threads;
    unsigned register_slots_per_shard;
    unsigned append_slots_per_shard;
    unsigned ops_per_key; /* then the slot moves to a fresh key */
    int timeout_ms;       /* of each call */
    bool watch;           /* run the watch workload */
    int watch_reopen_ms;  /* reopen the watch from its token this often */
};

struct workload_counts {
    uint64_t ops;          /* operations invoked */
    uint64_t acked_writes; /* writes answered OK */
    uint64_t keys;         /* keys used */
    uint64_t watch_events;    /* events the watch received */
    uint64_t watch_reopens;   /* reopened from the token */
    uint64_t watch_compacted; /* COMPACTED answers (must be 0) */
    uint64_t watch_errors;    /* other errors but UNAVAILABLE */
    uint64_t watch_behind;    /* acknowledged writes not seen at the end */
};

struct workload;

/* Start the threads; they run until workload_stop. Returns NULL with the
 * reason on stderr. h is borrowed until workload_free. */
struct workload *workload_start(const struct workload_config *cfg,
                                struct history *h);

/* Hold every thread between two operations; returns once none has one in
 * flight (bounded by the calls' timeout). */
void workload_pause(struct workload *w);
void workload_resume(struct workload *w);

/* Stop and join the threads; the watch drains first (above). */
void workload_stop(struct workload *w);

/* After workload_stop: read every key ever used once more, recorded in
 * the history (the reads after every write that the checker needs to see
 * lost writes), and compare with what was acknowledged. Returns the
 * number of acknowledged writes lost (a key behind its highest
 * acknowledged version, another value at that version, an acknowledged
 * element missing), each printed; reads that fail are retried until
 * deadline_ms (harness_now_ms), then counted in *unread. */
uint64_t workload_verify(struct workload *w, int64_t deadline_ms,
                         uint64_t *unread);

void workload_counts_get(struct workload *w, struct workload_counts *out);

void workload_free(struct workload *w);

#endif
