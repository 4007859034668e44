/* The dedupe table of a shard, private to shard/: the last (seq, stamp,
 * answer) of every client that wrote, so that a write retried with the
 * same (client_id, seq) is answered again instead of applied again
 * (DESIGN.md §5). Only apply.c writes it, inside the write txn.
 *
 * dedupe[u64 BE client_id] = little-endian
 *   u64 seq, i64 stamp, u8 code, u64 version, u64 create_rev, u64 mod_rev,
 *   u8 message_len, message (no NUL), [txn answer]
 * where the txn answer, present only after a transaction that ran, is its
 * packed TxnResult (which branch ran and a result per operation, records
 * read included): a retried transaction gets the very answer the first
 * attempt got, whatever has been written since. */
#ifndef MC_SHARD_DEDUPE_H
#define MC_SHARD_DEDUPE_H

#include "shard/store.h"

#define DEDUPE_KEY_BYTES 8u
#define DEDUPE_HEADER_BYTES 42u

_Static_assert(sizeof(((struct shard_result *)0)->message) <= UINT8_MAX + 1u,
               "message_len is a u8");

struct dedupe_entry {
    uint64_t seq;
    int64_t stamp;
    struct shard_result answer; /* skipped is false, txn NULL */
    const uint8_t *txn;         /* the packed TxnResult, borrowed from the
                                   stored value; NULL when none */
    size_t txn_len;
};

enum dedupe_verdict {
    DEDUPE_NEW,        /* first time: apply it, then dedupe_store */
    DEDUPE_REPEAT,     /* same seq again: answer the stored result */
    DEDUPE_SUPERSEDED, /* older than the stored seq: refuse */
};

/* Compare seq with what client_id last wrote; on DEDUPE_REPEAT *e is the
 * stored entry (its txn borrowed until the next write). client_id != 0.
 * Errors: UNAVAILABLE. */
mc_err dedupe_check(struct shard *s, uint64_t client_id, uint64_t seq,
                    struct dedupe_entry *e, enum dedupe_verdict *verdict);

/* Remember answer, and txn[0..txn_len) (a packed TxnResult, or NULL), as
 * the answer to (client_id, seq), written at stamp. Errors: UNAVAILABLE. */
mc_err dedupe_store(struct shard *s, uint64_t client_id, uint64_t seq,
                    int64_t stamp, const struct shard_result *answer,
                    const uint8_t *txn, size_t txn_len);

/* Drop up to MC_EXPIRE_BATCH_MAX entries, in client id order, last written
 * before stamp - MC_DEDUPE_IDLE_MS. Deterministic: it reads only the table
 * and stamp. Errors: UNAVAILABLE. */
mc_err dedupe_sweep(struct shard *s, int64_t stamp);

/* Decode a stored entry; false when malformed. out->txn borrows v. */
bool dedupe_decode(const uint8_t *v, size_t len, struct dedupe_entry *out);

#endif
