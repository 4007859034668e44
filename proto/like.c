/* SQL LIKE patterns of list: '%' stands for any run of characters (the
 * empty one too), '_' for exactly one character (one UTF-8 code point, not
 * one byte), and '\' makes the character after it literal ('\%', '\_',
 * '\\'). Everything else matches itself, byte for byte (case matters).
 *
 * A pattern is read as a sequence of tokens, each a whole code point:
 * ANY_RUN ('%'), ANY_ONE ('_') or LITERAL (a code point, after a '\' or
 * not). Matching walks the key one code point at a time and remembers
 * only the last '%' seen: on a mismatch it lets that '%' swallow one more
 * code point and tries again. This is the classic wildcard algorithm: no
 * recursion, O(pattern * key) steps at worst, and correct because a later
 * '%' can absorb anything an earlier one could.
 *
 * Patterns are checked before use (proto_like_check): valid UTF-8 without
 * NUL, at most MC_KEY_BYTES_MAX bytes, no '\' at the very end. The literal
 * prefix (what every match starts with) lets a shard seek straight to the
 * keys that can match. */
#include <string.h>

#include "proto/proto.h"

enum like_token { LIKE_ANY_RUN, LIKE_ANY_ONE, LIKE_LITERAL };

/* Length of the code point at s[0..len): its UTF-8 length, or 1 for a
 * byte that starts no valid sequence (keys are valid UTF-8; this only
 * keeps a bad key from stalling the walk). len > 0. */
static size_t cp_len(const uint8_t *s, size_t len)
{
    size_t n = mc_utf8_seq_len(s, len);
    return n > 0 ? n : 1;
}

/* The token at p[i..len) of a checked pattern: its kind, and for a
 * literal its bytes lit[0..*lit_len). Returns the index after it. */
static size_t token_at(const uint8_t *p, size_t len, size_t i,
                       enum like_token *kind, const uint8_t **lit,
                       size_t *lit_len)
{
    ASSERT(i < len);
    if (p[i] == '%') {
        *kind = LIKE_ANY_RUN;
        return i + 1;
    }
    if (p[i] == '_') {
        *kind = LIKE_ANY_ONE;
        return i + 1;
    }
    if (p[i] == '\\') {
        i++;
        ASSERT(i < len); /* proto_like_check refuses a trailing '\' */
    }
    *kind = LIKE_LITERAL;
    *lit = p + i;
    *lit_len = cp_len(p + i, len - i);
    return i + *lit_len;
}

mc_err proto_like_check(const uint8_t *p, size_t len, char *err,
                        size_t err_len)
{
    if (len == 0) {
        base_errf(err, err_len, "pattern is empty");
        return MC_INVALID_ARGUMENT;
    }
    if (len > MC_KEY_BYTES_MAX) {
        base_errf(err, err_len, "pattern is %zu bytes, more than %u", len,
                  MC_KEY_BYTES_MAX);
        return MC_INVALID_ARGUMENT;
    }
    if (memchr(p, 0, len) != NULL) {
        base_errf(err, err_len, "pattern contains a NUL byte");
        return MC_INVALID_ARGUMENT;
    }
    if (!proto_utf8_valid(p, len)) {
        base_errf(err, err_len, "pattern is not valid UTF-8");
        return MC_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '\\') {
            continue;
        }
        if (i + 1 == len) {
            base_errf(err, err_len,
                      "pattern ends in a lone '\\' (escape it as '\\\\')");
            return MC_INVALID_ARGUMENT;
        }
        i++; /* the escaped byte; UTF-8 continuation bytes are no '\' */
    }
    return MC_OK;
}

size_t proto_like_prefix(const uint8_t *p, size_t len, uint8_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        enum like_token kind;
        const uint8_t *lit = NULL;
        size_t lit_len = 0;
        i = token_at(p, len, i, &kind, &lit, &lit_len);
        if (kind != LIKE_LITERAL) {
            break;
        }
        memcpy(out + n, lit, lit_len);
        n += lit_len;
    }
    ASSERT(n <= len);
    return n;
}

bool proto_like_match(const uint8_t *p, size_t p_len, const uint8_t *key,
                      size_t key_len)
{
    size_t pi = 0, ki = 0;
    bool have_run = false; /* a '%' was seen: where to go back to */
    size_t run_p = 0, run_k = 0;
    while (ki < key_len) {
        if (pi < p_len) {
            enum like_token kind;
            const uint8_t *lit = NULL;
            size_t lit_len = 0;
            size_t next = token_at(p, p_len, pi, &kind, &lit, &lit_len);
            if (kind == LIKE_ANY_RUN) {
                /* Let it match nothing first; widen it on a mismatch. */
                have_run = true;
                run_p = next;
                run_k = ki;
                pi = next;
                continue;
            }
            if (kind == LIKE_ANY_ONE) {
                ki += cp_len(key + ki, key_len - ki);
                pi = next;
                continue;
            }
            if (lit_len <= key_len - ki && memcmp(key + ki, lit, lit_len) == 0) {
                ki += lit_len;
                pi = next;
                continue;
            }
        }
        if (!have_run) {
            return false;
        }
        run_k += cp_len(key + run_k, key_len - run_k);
        ki = run_k;
        pi = run_p;
    }
    /* The key is used up: what is left of the pattern must match "". */
    while (pi < p_len && p[pi] == '%') {
        pi++;
    }
    return pi == p_len;
}

bool mc_like_has_wildcard(const char *s)
{
    if (s == NULL) {
        return false;
    }
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] == '%' || s[i] == '_') {
            return true;
        }
        if (s[i] == '\\' && s[i + 1] != '\0') {
            i++;
        }
    }
    return false;
}
