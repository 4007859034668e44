/* Helpers shared by the unit tests of shard/: a shard in a temporary
 * folder (mkdtemp under /tmp, removed at teardown), framed commands built
 * the way a leader builds them, and short wrappers around get and list.
 * Header-only (static inline), because every tests/unit/<dir>/<file>.c is
 * a test binary of its own. */
#ifndef MC_TEST_SHARD_H
#define MC_TEST_SHARD_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shard/shard.h"

/* A fixed leader stamp: 2023-11-14T22:13:20Z. Tests never read a clock. */
#define T_STAMP 1700000000000ll
#define T_NS "t"
#define T_DIR_TEMPLATE "/tmp/mc-shard-test-XXXXXX"
#define T_PATH_BYTES 128

struct tshard {
    char dir[T_PATH_BYTES];
    struct shard_config cfg;
    struct shard *s;
    uint64_t index; /* raft index of the last entry applied through t_* */
};

static inline void t_reopen(struct tshard *t)
{
    char err[256] = "";
    mc_err rv = shard_open(t->dir, &t->cfg, &t->s, err, sizeof err);
    cr_assert_eq(rv, MC_OK, "shard_open: %s", err);
}

/* Open a fresh shard; value_bytes_max 0 means MC_VALUE_BYTES_MAX. */
static inline void t_open(struct tshard *t, uint32_t id,
                          uint64_t value_bytes_max, uint64_t map_bytes)
{
    memset(t, 0, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "%s", T_DIR_TEMPLATE);
    cr_assert_not_null(mkdtemp(t->dir));
    t->cfg.id = id;
    t->cfg.value_bytes_max = value_bytes_max ? value_bytes_max
                                             : MC_VALUE_BYTES_MAX;
    t->cfg.map_bytes = map_bytes;
    t_reopen(t);
}

/* Close the shard and remove its folder (LMDB makes two files). */
static inline void t_close(struct tshard *t)
{
    shard_close(t->s);
    t->s = NULL;
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[T_PATH_BYTES + 16];
        snprintf(path, sizeof path, "%s/%s", t->dir, files[i]);
        unlink(path);
    }
    rmdir(t->dir);
}

/* A command as a test describes it. Zero values mean: stamp T_STAMP, ns
 * T_NS, key and value lengths strlen. */
struct tcmd {
    uint32_t op;
    int64_t stamp;
    const char *ns;
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    bool has_expect;
    int64_t expect;
    uint32_t tier;
    uint64_t ttl_ms;
    uint64_t client_id;
    uint64_t seq;
};

#define T_PUT MCPB__OP__OP_PUT
#define T_DELETE MCPB__OP__OP_DELETE

static inline ProtobufCBinaryData t_bytes(const char *s, size_t len)
{
    ProtobufCBinaryData b = {0, NULL};
    if (s != NULL) {
        b.len = len ? len : strlen(s);
        b.data = (uint8_t *)s;
    }
    return b;
}

/* Frame c as the leader would. The caller frees *frame with free(). */
static inline void t_frame(const struct tcmd *c, void **frame, size_t *len)
{
    Mcpb__Command cmd = MCPB__COMMAND__INIT;
    cmd.op = c->op;
    cmd.stamp_ms = c->stamp ? c->stamp : T_STAMP;
    cmd.ns = t_bytes(c->ns ? c->ns : T_NS, 0);
    cmd.has_ns = true;
    cmd.key = t_bytes(c->key, c->key_len);
    cmd.has_key = c->key != NULL;
    cmd.value = t_bytes(c->value, c->value_len);
    cmd.has_value = c->value != NULL;
    cmd.has_expect_version = c->has_expect;
    cmd.expect_version = c->expect;
    cmd.has_tier = c->tier != 0;
    cmd.tier = c->tier;
    cmd.has_ttl_ms = c->ttl_ms != 0;
    cmd.ttl_ms = c->ttl_ms;
    cmd.has_client_id = c->client_id != 0;
    cmd.client_id = c->client_id;
    cmd.has_seq = c->client_id != 0;
    cmd.seq = c->seq;
    mc_err rv = proto_frame_encode(&cmd.base, PROTO_COMMAND, malloc, frame,
                                   len);
    cr_assert_eq(rv, MC_OK);
}

/* Apply raw entry bytes at the next index; the apply must succeed. */
static inline const struct shard_result *t_apply_raw(struct tshard *t,
                                                     const void *buf,
                                                     size_t len)
{
    const struct shard_result *res = NULL;
    mc_err rv = shard_apply(t->s, ++t->index, buf, len, &res);
    cr_assert_eq(rv, MC_OK, "shard_apply: %s", mc_errname(rv));
    cr_assert_not_null(res);
    return res;
}

static inline const struct shard_result *t_apply(struct tshard *t,
                                                 const struct tcmd *c)
{
    void *frame;
    size_t len;
    t_frame(c, &frame, &len);
    const struct shard_result *res = t_apply_raw(t, frame, len);
    free(frame);
    return res;
}

static inline const struct shard_result *t_put(struct tshard *t,
                                               const char *key,
                                               const char *value)
{
    return t_apply(t, &(struct tcmd){.op = T_PUT, .key = key,
                                     .value = value});
}

/* An EXPIRE command at stamp for n (tier, key) items of ns T_NS. */
static inline const struct shard_result *
t_expire(struct tshard *t, int64_t stamp, const uint32_t *tiers,
         const char *const *keys, size_t n)
{
    Mcpb__ExpireItem items[16];
    Mcpb__ExpireItem *ptrs[16];
    cr_assert_leq(n, 16);
    for (size_t i = 0; i < n; i++) {
        mcpb__expire_item__init(&items[i]);
        items[i].tier = tiers[i];
        items[i].ns = t_bytes(T_NS, 0);
        items[i].key = t_bytes(keys[i], 0);
        ptrs[i] = &items[i];
    }
    Mcpb__Command cmd = MCPB__COMMAND__INIT;
    cmd.op = MCPB__OP__OP_EXPIRE;
    cmd.stamp_ms = stamp;
    cmd.expire = ptrs;
    cmd.n_expire = n;
    void *frame;
    size_t len;
    cr_assert_eq(proto_frame_encode(&cmd.base, PROTO_COMMAND, malloc, &frame,
                                    &len),
                 MC_OK);
    const struct shard_result *res = t_apply_raw(t, frame, len);
    free(frame);
    return res;
}

static inline mc_err t_get_n(struct tshard *t, int64_t now, const char *key,
                             size_t key_len, struct shard_record *out)
{
    return shard_get(t->s, now, (const uint8_t *)T_NS, strlen(T_NS),
                     (const uint8_t *)key, key_len, out);
}

static inline mc_err t_get(struct tshard *t, int64_t now, const char *key,
                           struct shard_record *out)
{
    return t_get_n(t, now, key, strlen(key), out);
}

/* Records per tier, index by mc_tier. */
static inline uint64_t t_count(struct tshard *t, mc_tier tier)
{
    uint64_t counts[4];
    shard_counts(t->s, counts);
    cr_assert_eq(counts[0], 0);
    return counts[tier];
}

static inline void t_commit(struct tshard *t)
{
    char err[256] = "";
    cr_assert_eq(shard_commit(t->s, err, sizeof err), MC_OK, "%s", err);
}

#endif
