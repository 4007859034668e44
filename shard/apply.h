/* The parts of apply.c that txn.c shares, private to shard/: the one code
 * path that writes a key, the dedupe step of every client write, the
 * failure of a result, and the protobuf-c allocator of apply. */
#ifndef MC_SHARD_APPLY_H
#define MC_SHARD_APPLY_H

#include <stdarg.h>

#include "shard/store.h"

/* A protobuf-c allocator over mc_malloc that remembers a failure: an
 * unpack that fails for lack of memory must not be taken for bad bytes, or
 * this replica would answer INVALID_ARGUMENT where the others applied. */
struct apply_heap {
    ProtobufCAllocator a;
    bool failed;
};
void apply_heap_init(struct apply_heap *h);

/* Fail res with code, the version seen and a printf-style message. */
void apply_vfail(struct shard_result *res, mc_err code, uint64_t version,
                 const char *fmt, va_list ap);

/* The dedupe step of a client write (client_id != 0): a repeat is
 * answered from the table into s->result (and s->txn_answer), a request
 * older than the client's last is refused; *answered tells whether cmd is
 * done. Errors: UNAVAILABLE (storage, or memory for a txn answer). */
mc_err apply_dedupe(struct shard *s, const Mcpb__Command *cmd,
                    bool *answered);

/* Apply the PUT or DELETE of one key that cmd describes (op, stamp_ms,
 * ns, key; value, tier, ttl_ms and expect_version for a put) at index, in
 * s->txn, with the rules of single writes: versions, tiers, TTLs, expiry
 * by the stamp. This is the only code that writes a key: transactions use
 * it for each of their puts and deletes. The outcome goes to s->result;
 * ns and key must be valid. Errors: UNAVAILABLE (storage).
 *
 * Inside a transaction, s->txn is the transaction's own LMDB txn, which
 * may still be aborted after this returns (a later operation fails):
 * whatever a key write records must live in LMDB through s->txn, or be
 * kept aside until the transaction commits, or it would outlive a write
 * that never was. */
mc_err apply_key_write(struct shard *s, uint64_t index,
                       const Mcpb__Command *cmd);

/* ---- txn.c ---- */

/* Apply an OP_TXN command at index: check it, dedupe it, evaluate its
 * compares and run the chosen operation list in an LMDB txn of its own,
 * all of it or none; s->result and s->txn_answer say what happened. Errors:
 * UNAVAILABLE (storage, or memory: then nothing was applied). */
mc_err txn_apply(struct shard *s, uint64_t index, const Mcpb__Command *cmd);

/* Unpack a stored txn answer (txn_len 0: none) into s->txn_answer, and
 * point s->result.txn at it. Errors: UNAVAILABLE (out of memory; a stored
 * answer that does not decode breaks the shard). */
mc_err txn_answer_load(struct shard *s, const uint8_t *txn, size_t txn_len);

/* Free s->txn_answer (the answer of the last apply). Safe when none. */
void txn_answer_free(struct shard *s);

#endif
