/* Records as LMDB holds them, private to shard/: the record key
 * (ns '\0' key), the LMDB key made from it by the long-key rule of shard.h,
 * the value encoding, the expiry index key, and lookups and writes that
 * keep a record and its expiry entry together.
 *
 * Record value, format 2 (RECORD_FORMAT), written by this build:
 *   u8     format      2
 *   u8     tier        MC_TIER_SHORT..MC_TIER_LONG
 *   varint long_len    0: the record key is the LMDB key; else the length
 *                      of the record key, which follows the header
 *   varint version, varint create_rev, varint mod_rev - create_rev
 *   varint updated_at  ms since the epoch
 *   varint expires     0 = never; else zigzag(expires_at - updated_at) + 1
 *   [rkey]             only when long_len > 0
 *   value              the rest
 * Varints are LEB128 (base/bytes.h). A mid-tier record's header takes
 * about 19 bytes, a long-tier one's 15: in a store of small values the
 * header was a quarter of each record.
 *
 * Format 1, of earlier builds, is still read (stores and snapshots keep
 * their records until they are written again), little-endian:
 *   u8 format (1), u8 tier, u16 rkey_len (of the full record key),
 *   u64 version, u64 create_rev, u64 mod_rev, i64 expires_at (0 =
 *   never), i64 updated_at, [rkey] (when rkey_len >
 *   SHARD_DBKEY_INLINE_MAX), value.
 *
 * Long keys: a record key longer than SHARD_DBKEY_INLINE_MAX is stored
 * under its first SHARD_DBKEY_PREFIX bytes and the 8-byte FNV-1a of the
 * whole key. That hash is not collision-resistant, so every lookup compares
 * the full key, and a put whose LMDB key is taken by another record key is
 * refused (record_find says RECORD_OTHER): a client can only collide with
 * keys of its own namespace, and nothing is ever overwritten by mistake. */
#ifndef MC_SHARD_RECORD_H
#define MC_SHARD_RECORD_H

#include "shard/store.h"

/* ns '\0' key: the namespace, its terminator and the longest key. */
#define RECORD_KEY_BYTES_MAX (MC_NS_BYTES_MAX + 1u + MC_KEY_BYTES_MAX)

#define RECORD_FORMAT 2u
#define RECORD_FORMAT_FIXED 1u
#define RECORD_FIXED_HEADER_BYTES 44u
/* The longest format 2 header: format, tier and six varints. */
#define RECORD_HEADER_BYTES_MAX (2u + 6u * BYTES_VARINT_MAX)

/* The hash that ends a long LMDB key. */
#define RECORD_KEY_HASH_BYTES 8u

/* [u64 BE expires_at][u8 tier][LMDB key of the record]. */
#define RECORD_EXPKEY_HEAD_BYTES 9u
#define RECORD_EXPKEY_BYTES_MAX \
    (RECORD_EXPKEY_HEAD_BYTES + SHARD_DBKEY_INLINE_MAX)

/* LMDB's compile-time key limit (mdb_env_get_maxkeysize) in Debian's
 * build: every LMDB key of a shard must fit. */
#define RECORD_LMDB_KEY_BYTES_MAX 511u

_Static_assert(SHARD_DBKEY_PREFIX + RECORD_KEY_HASH_BYTES ==
                   SHARD_DBKEY_INLINE_MAX,
               "a long key's LMDB key is as long as the longest inline one");
_Static_assert(RECORD_EXPKEY_BYTES_MAX <= RECORD_LMDB_KEY_BYTES_MAX,
               "expiry keys fit LMDB");
_Static_assert(MC_NS_BYTES_MAX + 1u < SHARD_DBKEY_PREFIX,
               "every LMDB key of a namespace starts with ns '\\0'");
_Static_assert(RECORD_KEY_BYTES_MAX <= UINT16_MAX, "rkey_len is a u16");

struct record_key {
    size_t len;
    uint8_t bytes[RECORD_KEY_BYTES_MAX];
};

struct record_dbkey {
    size_t len;
    uint8_t bytes[SHARD_DBKEY_INLINE_MAX];
};

struct record_expkey {
    size_t len;
    uint8_t bytes[RECORD_EXPKEY_BYTES_MAX];
};

/* A decoded record. rkey and value borrow either LMDB memory (valid until
 * the next write or the end of the txn) or the caller's buffers. */
struct record {
    uint8_t tier;
    uint64_t version;
    uint64_t create_rev;
    uint64_t mod_rev;
    int64_t expires_at;
    int64_t updated_at;
    const uint8_t *rkey;
    size_t rkey_len;
    const uint8_t *value;
    size_t value_len;
};

/* A record is live at t unless it has expired by t. */
static inline bool record_is_live(const struct record *r, int64_t t)
{
    return r->expires_at == 0 || r->expires_at > t;
}

/* ns '\0' key. ns and key must fit (checked by the caller). */
void record_key_make(const uint8_t *ns, size_t ns_len, const uint8_t *key,
                     size_t key_len, struct record_key *out);

/* The LMDB key of a record key (long-key rule). */
void record_dbkey_make(const uint8_t *rkey, size_t rkey_len,
                       struct record_dbkey *out);

void record_expkey_make(int64_t expires_at, uint8_t tier,
                        const uint8_t *dbkey, size_t dbkey_len,
                        struct record_expkey *out);

/* Split an expiry key. False when it is malformed. dbkey borrows k. */
bool record_expkey_parse(const uint8_t *k, size_t len, int64_t *expires_at,
                         uint8_t *tier, const uint8_t **dbkey,
                         size_t *dbkey_len);

/* Bytes of r encoded: header, long key, value. */
size_t record_encoded_bytes(const struct record *r);
void record_encode(const struct record *r, uint8_t *out);

/* Decode the value v stored under the LMDB key k. False when malformed
 * (wrong format, bad tier, lengths that do not add up, a long key that
 * does not belong under k, a record key that is not ns '\0' key). out
 * borrows k and v. */
bool record_decode(const uint8_t *k, size_t k_len, const uint8_t *v,
                   size_t v_len, struct record *out);

/* What a tier DB holds under the LMDB key of a record key. */
enum record_slot {
    RECORD_ABSENT, /* nothing */
    RECORD_FOUND,  /* this record key */
    RECORD_OTHER,  /* another record key with the same LMDB key */
};

/* Look rkey up in one tier through txn. On RECORD_FOUND *out is filled.
 * Errors: UNAVAILABLE (BROKEN; also for a record that does not decode). */
mc_err record_find(struct shard *s, MDB_txn *txn, uint8_t tier,
                   const struct record_key *k, const struct record_dbkey *dk,
                   struct record *out, enum record_slot *slot);

/* Look rkey up in every tier; *found tells whether any holds it (a key
 * lives in one tier at a time). Errors: UNAVAILABLE. */
mc_err record_find_any(struct shard *s, MDB_txn *txn,
                       const struct record_key *k,
                       const struct record_dbkey *dk, struct record *out,
                       bool *found);

/* Write r into its tier's DB under dk, and its expiry entry when
 * expires_at != 0. The caller has removed what r replaces.
 * Errors: UNAVAILABLE. */
mc_err record_put(struct shard *s, const struct record_dbkey *dk,
                  const struct record *r);

/* Remove the record stored under dk in tier r->tier, and its expiry entry.
 * Errors: UNAVAILABLE. */
mc_err record_remove(struct shard *s, const struct record_dbkey *dk,
                     const struct record *r);

#endif
