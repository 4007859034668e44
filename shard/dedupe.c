/* The dedupe table: one entry per writing client with its last seq, the
 * stamp of that write and the answer it got, so that a retried write gets
 * the same answer and is not applied twice (nng's REQ re-sends, client
 * retries after failover). The encoding is in dedupe.h. Which commands are
 * deduped, and when, is apply.c's business. */
#include <string.h>

#include "shard/dedupe.h"

enum {
    OFF_SEQ = 0,
    OFF_STAMP = 8,
    OFF_CODE = 16,
    OFF_VERSION = 17,
    OFF_CREATE_REV = 25,
    OFF_MOD_REV = 33,
    OFF_MESSAGE_LEN = 41,
};
_Static_assert(OFF_MESSAGE_LEN + 1 == DEDUPE_HEADER_BYTES, "header layout");

bool dedupe_decode(const uint8_t *v, size_t len, struct dedupe_entry *out)
{
    if (len < DEDUPE_HEADER_BYTES) {
        return false;
    }
    size_t msg_len = v[OFF_MESSAGE_LEN];
    if (v[OFF_CODE] >= MC_ERR_COUNT || len < DEDUPE_HEADER_BYTES + msg_len ||
        msg_len >= sizeof out->answer.message) {
        return false;
    }
    memset(out, 0, sizeof *out);
    out->seq = bytes_get_u64le(v + OFF_SEQ);
    out->stamp = (int64_t)bytes_get_u64le(v + OFF_STAMP);
    out->answer.code = (mc_err)v[OFF_CODE];
    out->answer.version = bytes_get_u64le(v + OFF_VERSION);
    out->answer.create_rev = bytes_get_u64le(v + OFF_CREATE_REV);
    out->answer.mod_rev = bytes_get_u64le(v + OFF_MOD_REV);
    memcpy(out->answer.message, v + DEDUPE_HEADER_BYTES, msg_len);
    out->answer.message[msg_len] = '\0';
    size_t rest = len - DEDUPE_HEADER_BYTES - msg_len;
    out->txn = rest > 0 ? v + DEDUPE_HEADER_BYTES + msg_len : NULL;
    out->txn_len = rest;
    return true;
}

mc_err dedupe_check(struct shard *s, uint64_t client_id, uint64_t seq,
                    struct dedupe_entry *e, enum dedupe_verdict *verdict)
{
    ASSERT(client_id != 0);
    ASSERT(s->txn != NULL);
    uint8_t k[DEDUPE_KEY_BYTES];
    bytes_put_u64be(k, client_id);
    MDB_val v;
    bool found;
    *verdict = DEDUPE_NEW;
    mc_err rv = store_get(s, s->txn, STORE_DB_DEDUPE, k, sizeof k, &v, &found);
    if (rv != MC_OK || !found) {
        return rv;
    }
    if (!dedupe_decode(v.mv_data, v.mv_size, e)) {
        return store_fail(s, "dedupe decode", MDB_CORRUPTED);
    }
    if (seq == e->seq) {
        *verdict = DEDUPE_REPEAT;
    } else if (seq < e->seq) {
        *verdict = DEDUPE_SUPERSEDED;
    }
    return MC_OK;
}

mc_err dedupe_store(struct shard *s, uint64_t client_id, uint64_t seq,
                    int64_t stamp, const struct shard_result *answer,
                    const uint8_t *txn, size_t txn_len)
{
    ASSERT(client_id != 0);
    ASSERT(!answer->skipped);
    ASSERT((unsigned)answer->code < MC_ERR_COUNT);
    ASSERT(txn != NULL || txn_len == 0);
    size_t msg_len = strnlen(answer->message, sizeof answer->message - 1);
    uint8_t k[DEDUPE_KEY_BYTES];
    bytes_put_u64be(k, client_id);
    uint8_t *v;
    mc_err rv = store_reserve(s, STORE_DB_DEDUPE, k, sizeof k,
                              DEDUPE_HEADER_BYTES + msg_len + txn_len, &v);
    if (rv != MC_OK) {
        return rv;
    }
    bytes_put_u64le(v + OFF_SEQ, seq);
    bytes_put_u64le(v + OFF_STAMP, (uint64_t)stamp);
    v[OFF_CODE] = (uint8_t)answer->code;
    bytes_put_u64le(v + OFF_VERSION, answer->version);
    bytes_put_u64le(v + OFF_CREATE_REV, answer->create_rev);
    bytes_put_u64le(v + OFF_MOD_REV, answer->mod_rev);
    v[OFF_MESSAGE_LEN] = (uint8_t)msg_len;
    memcpy(v + DEDUPE_HEADER_BYTES, answer->message, msg_len);
    if (txn_len > 0) {
        memcpy(v + DEDUPE_HEADER_BYTES + msg_len, txn, txn_len);
    }
    return MC_OK;
}

/* Collect into ids (up to MC_EXPIRE_BATCH_MAX) the clients idle since
 * before cutoff. A cursor must not delete under itself while it walks, so
 * deleting is a second step. */
static mc_err sweep_collect(struct shard *s, int64_t cutoff, uint64_t *ids,
                            unsigned *n)
{
    MDB_cursor *c;
    mc_err rv = store_cursor_open(s, s->txn, STORE_DB_DEDUPE, &c);
    if (rv != MC_OK) {
        return rv;
    }
    *n = 0;
    MDB_val k, v;
    bool found;
    MDB_cursor_op op = MDB_FIRST;
    while (*n < MC_EXPIRE_BATCH_MAX) {
        rv = store_cursor_get(s, c, &k, &v, op, &found);
        if (rv != MC_OK || !found) {
            break;
        }
        op = MDB_NEXT;
        struct dedupe_entry e;
        if (k.mv_size != DEDUPE_KEY_BYTES ||
            !dedupe_decode(v.mv_data, v.mv_size, &e)) {
            rv = store_fail(s, "dedupe decode", MDB_CORRUPTED);
            break;
        }
        if (e.stamp < cutoff) {
            ids[(*n)++] = bytes_get_u64be(k.mv_data);
        }
    }
    mdb_cursor_close(c);
    return rv;
}

mc_err dedupe_sweep(struct shard *s, int64_t stamp)
{
    ASSERT(s->txn != NULL);
    ASSERT(stamp >= 0);
    uint64_t ids[MC_EXPIRE_BATCH_MAX];
    unsigned n;
    mc_err rv = sweep_collect(s, stamp - (int64_t)MC_DEDUPE_IDLE_MS, ids, &n);
    for (unsigned i = 0; rv == MC_OK && i < n; i++) {
        uint8_t k[DEDUPE_KEY_BYTES];
        bytes_put_u64be(k, ids[i]);
        rv = store_del(s, STORE_DB_DEDUPE, k, sizeof k);
    }
    return rv;
}
