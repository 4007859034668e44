/* Applying committed raft entries: PUT, DELETE and EXPIRE commands, with
 * optimistic locking, tiers, TTLs and dedupe of retried writes. Apply is a
 * pure function of the store and the entry (invariant 3 of shard.h): it
 * reads the command's stamp, never a clock, and it answers business
 * failures (CONFLICT, NOT_FOUND, TOO_LARGE, INVALID_ARGUMENT) in the result
 * while the index still advances, so that no entry can stall a group.
 * Only a storage failure (the shard turns BROKEN) or running out of memory
 * while decoding leaves an entry unapplied. Record layout is record.c's,
 * the dedupe table dedupe.c's, transactions txn.c's (which write each key
 * through apply_key_write, the path of single puts and deletes), the
 * watch ring watch.c's.
 *
 * Every change of a record goes through write_record (a put) or
 * remove_record (a delete or an expiry), which write its watch event in
 * the same txn (invariant 4 of shard.h), through s->txn: inside a
 * transaction that is the transaction's own txn (txn.c), so the events of
 * a transaction that aborts go with it. A new command that changes
 * records must use them, and gets its events. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "shard/apply.h"
#include "shard/dedupe.h"
#include "shard/record.h"
#include "shard/watch.h"

/* Latest stamp a command may carry, so that stamp + any TTL fits int64. */
#define STAMP_MS_MAX (INT64_MAX - (int64_t)MC_TTL_MS_MAX)
_Static_assert(MC_TTL_SHORT_MS <= MC_TTL_MS_MAX, "default TTLs are TTLs");
_Static_assert(MC_TTL_MID_MS <= MC_TTL_MS_MAX, "default TTLs are TTLs");

/* Bytes of a key quoted in a result message: enough to recognize it, and
 * short enough that the sentence around it fits shard_result.message. */
#define MESSAGE_KEY_BYTES_MAX 96u

/* A key as quoted in messages: cut at a UTF-8 boundary, then "...". */
struct shown_key {
    int len;
    const char *bytes;
    const char *more;
};
#define KEY_FMT "%.*s%s"
#define KEY_ARGS(k) (k).len, (k).bytes, (k).more

/* The state of one PUT or DELETE while it is applied. */
struct write_ctx {
    struct shard *s;
    const Mcpb__Command *cmd;
    uint64_t index;
    struct record_key k;
    struct record_dbkey dk;
    struct record cur; /* the live record, when has_cur; its pointers die
                          at the first write */
    bool has_cur;
    struct shown_key shown;
};

void apply_vfail(struct shard_result *res, mc_err code, uint64_t version,
                 const char *fmt, va_list ap)
{
    ASSERT(code != MC_OK);
    res->code = code;
    res->version = version;
    vsnprintf(res->message, sizeof res->message, fmt, ap);
}

__attribute__((format(printf, 4, 5))) static void
result_fail(struct shard_result *res, mc_err code, uint64_t version,
            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    apply_vfail(res, code, version, fmt, ap);
    va_end(ap);
}

static struct shown_key show_key(const ProtobufCBinaryData *key)
{
    size_t n = key->len;
    const char *more = "";
    if (n > MESSAGE_KEY_BYTES_MAX) {
        n = MESSAGE_KEY_BYTES_MAX;
        while (n > 0 && (key->data[n] & 0xc0) == 0x80) {
            n--; /* do not cut a UTF-8 sequence */
        }
        more = "...";
    }
    return (struct shown_key){(int)n, (const char *)key->data, more};
}

/* Optimistic locking: true when the command's expected version matches
 * the live record; else the result says CONFLICT. */
static bool expect_ok(struct write_ctx *w)
{
    const Mcpb__Command *cmd = w->cmd;
    if (!cmd->has_expect_version) {
        return true;
    }
    int64_t want = cmd->expect_version;
    uint64_t have = w->has_cur ? w->cur.version : 0;
    struct shard_result *res = &w->s->result;
    if (want == 0 && w->has_cur) {
        result_fail(res, MC_CONFLICT, have,
                    KEY_FMT " exists at version %" PRIu64
                            ", expected it not to exist",
                    KEY_ARGS(w->shown), have);
    } else if (want > 0 && !w->has_cur) {
        result_fail(res, MC_CONFLICT, 0,
                    KEY_FMT " does not exist, expected version %" PRId64,
                    KEY_ARGS(w->shown), want);
    } else if (want > 0 && have != (uint64_t)want) {
        result_fail(res, MC_CONFLICT, have,
                    KEY_FMT " is at version %" PRIu64 ", expected %" PRId64,
                    KEY_ARGS(w->shown), have, want);
    } else {
        return true;
    }
    return false;
}

/* The tier and expiry time of a PUT (shard.h, DESIGN.md §1): the tier
 * asked for; else short when a TTL is given; else the record's tier; else
 * long. False when the request is invalid (the result says why). */
static bool put_placement(struct write_ctx *w, uint8_t *tier,
                          int64_t *expires_at)
{
    const Mcpb__Command *cmd = w->cmd;
    struct shard_result *res = &w->s->result;
    uint64_t have = w->has_cur ? w->cur.version : 0;
    uint64_t ttl_ms = cmd->has_ttl_ms ? cmd->ttl_ms : 0;
    uint32_t asked = cmd->has_tier ? cmd->tier : MC_TIER_DEFAULT;
    if (asked > MC_TIER_LONG) {
        result_fail(res, MC_INVALID_ARGUMENT, have,
                    "tier %" PRIu32 " is not 1 (short), 2 (mid) or 3 (long)",
                    asked);
        return false;
    }
    if (ttl_ms > MC_TTL_MS_MAX) {
        result_fail(res, MC_INVALID_ARGUMENT, have,
                    "ttl_ms %" PRIu64 " is more than the limit of %llu",
                    ttl_ms, MC_TTL_MS_MAX);
        return false;
    }
    if (asked != MC_TIER_DEFAULT) {
        *tier = (uint8_t)asked;
    } else if (ttl_ms > 0) {
        *tier = MC_TIER_SHORT;
    } else {
        *tier = w->has_cur ? w->cur.tier : MC_TIER_LONG;
    }
    if (*tier == MC_TIER_LONG && ttl_ms > 0) {
        result_fail(res, MC_INVALID_ARGUMENT, have,
                    "the long tier keeps records without a TTL");
        return false;
    }
    if (ttl_ms == 0 && *tier != MC_TIER_LONG) {
        ttl_ms = *tier == MC_TIER_SHORT ? MC_TTL_SHORT_MS : MC_TTL_MID_MS;
    }
    *expires_at = *tier == MC_TIER_LONG ? 0 : cmd->stamp_ms + (int64_t)ttl_ms;
    return true;
}

/* A new key may not take an LMDB key that holds another record key (the
 * long-key rule of record.h). *is_free = false when it would; the result
 * says so. */
static mc_err put_slot_free(struct write_ctx *w, uint8_t tier, bool *is_free)
{
    *is_free = true;
    if (w->has_cur && w->cur.tier == tier) {
        return MC_OK;
    }
    struct record other;
    enum record_slot slot;
    mc_err rv = record_find(w->s, w->s->txn, tier, &w->k, &w->dk, &other,
                            &slot);
    if (rv == MC_OK && slot == RECORD_OTHER) {
        *is_free = false;
        result_fail(&w->s->result, MC_INVALID_ARGUMENT,
                    w->has_cur ? w->cur.version : 0,
                    KEY_FMT " shares its first %u bytes and their hash with "
                            "a stored key; choose another key",
                    KEY_ARGS(w->shown), SHARD_DBKEY_PREFIX);
    }
    return rv;
}

/* Remove record r of key k (r's pointers may borrow LMDB memory; k's do
 * not) and write the event of its removal: an MC_EVENT_DELETE or
 * MC_EVENT_EXPIRE at revision index, stamped stamp, with the version
 * removed. */
static mc_err remove_record(struct shard *s, uint64_t index, uint8_t type,
                            int64_t stamp, const struct record_key *k,
                            const struct record_dbkey *dk,
                            const struct record *r)
{
    struct record gone = *r;
    gone.rkey = k->bytes;
    gone.rkey_len = k->len;
    gone.value = NULL;
    gone.value_len = 0;
    gone.updated_at = stamp;
    mc_err rv = record_remove(s, dk, r);
    return rv == MC_OK ? watch_emit(s, index, type, &gone) : rv;
}

/* Write r (whose rkey and value must not borrow LMDB memory) in place of
 * the live record w->cur, if any, and the event of the put. A put that
 * keeps the value byte for byte and moves the record to a higher tier is
 * a promote. */
static mc_err write_record(struct write_ctx *w, const struct record *r)
{
    struct shard *s = w->s;
    mc_err rv = MC_OK;
    uint8_t type = MC_EVENT_PUT;
    if (w->has_cur) {
        if (r->tier > w->cur.tier && r->value_len == w->cur.value_len &&
            (r->value_len == 0 ||
             memcmp(r->value, w->cur.value, r->value_len) == 0)) {
            type = MC_EVENT_PROMOTE;
        }
        /* Remove, then write anew: the old tier and expiry entry go. */
        rv = record_remove(s, &w->dk, &w->cur);
    }
    if (rv == MC_OK) {
        rv = record_put(s, &w->dk, r);
    }
    return rv == MC_OK ? watch_emit(s, w->index, type, r) : rv;
}

static mc_err apply_put(struct write_ctx *w)
{
    struct shard *s = w->s;
    const Mcpb__Command *cmd = w->cmd;
    struct shard_result *res = &s->result;
    uint64_t have = w->has_cur ? w->cur.version : 0;
    if (cmd->value.len > s->cfg.value_bytes_max) {
        result_fail(res, MC_TOO_LARGE, have,
                    "value is %zu bytes, more than the limit of %" PRIu64,
                    cmd->value.len, s->cfg.value_bytes_max);
        return MC_OK;
    }
    uint8_t tier;
    int64_t expires_at;
    if (!put_placement(w, &tier, &expires_at) || !expect_ok(w)) {
        return MC_OK;
    }
    bool slot_free;
    mc_err rv = put_slot_free(w, tier, &slot_free);
    if (rv != MC_OK || !slot_free) {
        return rv;
    }
    struct record r = {
        .tier = tier,
        .version = have + 1,
        .create_rev = w->has_cur ? w->cur.create_rev : w->index,
        .mod_rev = w->index,
        .expires_at = expires_at,
        .updated_at = cmd->stamp_ms,
        .rkey = w->k.bytes,
        .rkey_len = w->k.len,
        .value = cmd->value.data,
        .value_len = cmd->value.len,
    };
    rv = write_record(w, &r);
    res->code = MC_OK;
    res->version = r.version;
    res->create_rev = r.create_rev;
    res->mod_rev = r.mod_rev;
    return rv;
}

static mc_err apply_delete(struct write_ctx *w)
{
    struct shard_result *res = &w->s->result;
    if (!w->has_cur) {
        result_fail(res, MC_NOT_FOUND, 0, KEY_FMT " does not exist",
                    KEY_ARGS(w->shown));
        return MC_OK;
    }
    if (!expect_ok(w)) {
        return MC_OK;
    }
    res->code = MC_OK;
    res->version = w->cur.version;
    res->create_rev = w->cur.create_rev;
    res->mod_rev = w->index;
    return remove_record(w->s, w->index, MC_EVENT_DELETE, w->cmd->stamp_ms,
                         &w->k, &w->dk, &w->cur);
}

/* Find the key's record. One that has expired by the command's stamp is
 * absent for the command, and is removed now with its expiry entry. */
static mc_err load_current(struct write_ctx *w)
{
    bool found;
    mc_err rv = record_find_any(w->s, w->s->txn, &w->k, &w->dk, &w->cur,
                                &found);
    if (rv != MC_OK || !found) {
        return rv;
    }
    if (record_is_live(&w->cur, w->cmd->stamp_ms)) {
        w->has_cur = true;
        return MC_OK;
    }
    return remove_record(w->s, w->index, MC_EVENT_EXPIRE, w->cmd->stamp_ms,
                         &w->k, &w->dk, &w->cur);
}

/* What protobuf-c checks not: a valid ns and key, a sane expectation. */
static bool write_valid(struct shard *s, const Mcpb__Command *cmd)
{
    char why[sizeof s->result.message];
    if (proto_ns_check(cmd->ns.data, cmd->ns.len, why, sizeof why) !=
            MC_OK ||
        proto_key_check(cmd->key.data, cmd->key.len, why, sizeof why) !=
            MC_OK) {
        result_fail(&s->result, MC_INVALID_ARGUMENT, 0, "%s", why);
        return false;
    }
    if (cmd->has_expect_version && cmd->expect_version < 0) {
        result_fail(&s->result, MC_INVALID_ARGUMENT, 0,
                    "expected version %" PRId64 " is negative",
                    cmd->expect_version);
        return false;
    }
    return true;
}

mc_err apply_dedupe(struct shard *s, const Mcpb__Command *cmd,
                    bool *answered)
{
    *answered = false;
    uint64_t client_id = cmd->has_client_id ? cmd->client_id : 0;
    if (client_id == 0) {
        return MC_OK;
    }
    enum dedupe_verdict verdict;
    struct dedupe_entry e;
    mc_err rv = dedupe_check(s, client_id, cmd->has_seq ? cmd->seq : 0, &e,
                             &verdict);
    if (rv != MC_OK) {
        return rv;
    }
    if (verdict == DEDUPE_REPEAT) {
        *answered = true;
        s->result = e.answer;
        return txn_answer_load(s, e.txn, e.txn_len);
    }
    if (verdict == DEDUPE_SUPERSEDED) {
        *answered = true;
        result_fail(&s->result, MC_INVALID_ARGUMENT, 0,
                    "request superseded by a later one of the same client");
    }
    return MC_OK;
}

mc_err apply_key_write(struct shard *s, uint64_t index,
                       const Mcpb__Command *cmd)
{
    ASSERT(cmd->op == MCPB__OP__OP_PUT || cmd->op == MCPB__OP__OP_DELETE);
    struct write_ctx w = {.s = s, .cmd = cmd, .index = index};
    w.shown = show_key(&cmd->key);
    record_key_make(cmd->ns.data, cmd->ns.len, cmd->key.data, cmd->key.len,
                    &w.k);
    record_dbkey_make(w.k.bytes, w.k.len, &w.dk);
    mc_err rv = load_current(&w);
    if (rv == MC_OK) {
        rv = cmd->op == MCPB__OP__OP_PUT ? apply_put(&w) : apply_delete(&w);
    }
    return rv;
}

/* PUT and DELETE: validate, dedupe, apply, remember the answer. */
static mc_err apply_write(struct shard *s, uint64_t index,
                          const Mcpb__Command *cmd)
{
    if (!write_valid(s, cmd)) {
        return MC_OK;
    }
    uint64_t client_id = cmd->has_client_id ? cmd->client_id : 0;
    uint64_t seq = cmd->has_seq ? cmd->seq : 0;
    bool answered;
    mc_err rv = apply_dedupe(s, cmd, &answered);
    if (rv != MC_OK || answered) {
        return rv;
    }
    rv = apply_key_write(s, index, cmd);
    if (rv != MC_OK || client_id == 0) {
        return rv;
    }
    return dedupe_store(s, client_id, seq, cmd->stamp_ms, &s->result, NULL,
                        0);
}

/* Remove the item's record if it has expired by stamp. The sweep that
 * proposed it read an older state: the record may have been rewritten. */
static mc_err expire_item(struct shard *s, uint64_t index, int64_t stamp,
                          const Mcpb__ExpireItem *it)
{
    struct record_key k;
    struct record_dbkey dk;
    record_key_make(it->ns.data, it->ns.len, it->key.data, it->key.len, &k);
    record_dbkey_make(k.bytes, k.len, &dk);
    struct record r;
    enum record_slot slot;
    mc_err rv = record_find(s, s->txn, (uint8_t)it->tier, &k, &dk, &r, &slot);
    if (rv != MC_OK || slot != RECORD_FOUND || record_is_live(&r, stamp)) {
        return rv;
    }
    return remove_record(s, index, MC_EVENT_EXPIRE, stamp, &k, &dk, &r);
}

static mc_err apply_expire(struct shard *s, uint64_t index,
                           const Mcpb__Command *cmd)
{
    if (cmd->n_expire > MC_EXPIRE_BATCH_MAX) {
        result_fail(&s->result, MC_INVALID_ARGUMENT, 0,
                    "expire command of %zu items, more than %u",
                    cmd->n_expire, MC_EXPIRE_BATCH_MAX);
        return MC_OK;
    }
    /* Check every item before removing anything: all or nothing. */
    for (size_t i = 0; i < cmd->n_expire; i++) {
        const Mcpb__ExpireItem *it = cmd->expire[i];
        char why[sizeof s->result.message];
        if (it->tier < MC_TIER_SHORT || it->tier > MC_TIER_LONG) {
            base_errf(why, sizeof why, "tier %" PRIu32 " is invalid",
                      it->tier);
        } else if (proto_ns_check(it->ns.data, it->ns.len, why,
                                  sizeof why) == MC_OK &&
                   proto_key_check(it->key.data, it->key.len, why,
                                   sizeof why) == MC_OK) {
            continue;
        }
        result_fail(&s->result, MC_INVALID_ARGUMENT, 0,
                    "expire item %zu: %s", i, why);
        return MC_OK;
    }
    for (size_t i = 0; i < cmd->n_expire; i++) {
        mc_err rv = expire_item(s, index, cmd->stamp_ms, cmd->expire[i]);
        if (rv != MC_OK) {
            return rv;
        }
    }
    return dedupe_sweep(s, cmd->stamp_ms);
}

static mc_err apply_command(struct shard *s, uint64_t index,
                            const Mcpb__Command *cmd)
{
    if (cmd->stamp_ms < 0 || cmd->stamp_ms > STAMP_MS_MAX) {
        result_fail(&s->result, MC_INVALID_ARGUMENT, 0,
                    "command stamp %" PRId64 " ms is out of range",
                    cmd->stamp_ms);
        return MC_OK;
    }
    switch (cmd->op) {
    case MCPB__OP__OP_PUT:
    case MCPB__OP__OP_DELETE:
        return apply_write(s, index, cmd);
    case MCPB__OP__OP_EXPIRE:
        return apply_expire(s, index, cmd);
    case MCPB__OP__OP_TXN:
        return txn_apply(s, index, cmd);
    default:
        result_fail(&s->result, MC_INVALID_ARGUMENT, 0,
                    "command op %" PRIu32 " is not put, delete, expire or "
                    "txn", cmd->op);
        return MC_OK;
    }
}

static void *heap_alloc(void *data, size_t n)
{
    struct apply_heap *h = data;
    void *p = mc_malloc(n);
    h->failed = h->failed || p == NULL;
    return p;
}

static void heap_free(void *data, void *p)
{
    mc_free(p);
}

void apply_heap_init(struct apply_heap *h)
{
    *h = (struct apply_heap){{heap_alloc, heap_free, NULL}, false};
    h->a.allocator_data = h;
}

/* Decode and apply one entry; the result says what happened. Returns
 * UNAVAILABLE when the entry could not be applied (storage or memory). */
static mc_err apply_entry(struct shard *s, uint64_t index, const void *buf,
                          size_t len)
{
    const uint8_t *body;
    size_t body_len;
    char why[sizeof s->result.message];
    if (proto_frame_open(buf, len, PROTO_COMMAND, &body, &body_len, why,
                         sizeof why) != MC_OK) {
        result_fail(&s->result, MC_INVALID_ARGUMENT, 0, "%s", why);
        return MC_OK;
    }
    struct apply_heap heap;
    apply_heap_init(&heap);
    Mcpb__Command *cmd = mcpb__command__unpack(&heap.a, body_len, body);
    if (cmd == NULL && heap.failed) {
        LOG_WARN("out of memory decoding shard=%u index=%" PRIu64, s->cfg.id,
                 index);
        return MC_UNAVAILABLE;
    }
    if (cmd == NULL) {
        result_fail(&s->result, MC_INVALID_ARGUMENT, 0,
                    "command is not a valid protobuf message");
        return MC_OK;
    }
    mc_err rv = apply_command(s, index, cmd);
    mcpb__command__free_unpacked(cmd, &heap.a);
    return rv;
}

mc_err shard_apply(struct shard *s, uint64_t index, const void *buf,
                   size_t len, const struct shard_result **out)
{
    ASSERT(s != NULL);
    ASSERT(out != NULL);
    ASSERT(index > 0);
    memset(&s->result, 0, sizeof s->result);
    txn_answer_free(s);
    *out = &s->result;
    mc_err rv = store_enter(s);
    if (rv == MC_OK && index <= s->applied_index) {
        s->skipped_entries++;
        s->result.skipped = true;
        return MC_OK;
    }
    if (rv == MC_OK) {
        rv = store_write_begin(s);
    }
    if (rv == MC_OK) {
        rv = space_entry(s); /* a full disk stops us here, between entries */
    }
    if (rv == MC_OK) {
        rv = apply_entry(s, index, buf, len);
    }
    if (rv != MC_OK) {
        memset(&s->result, 0, sizeof s->result);
        result_fail(&s->result, MC_UNAVAILABLE, 0, "shard %u cannot apply "
                    "entry %" PRIu64 " now", s->cfg.id, index);
        return MC_UNAVAILABLE;
    }
    s->applied_index = index;
    s->applied_entries++;
    return MC_OK;
}
