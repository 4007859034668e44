/* A reference SQL LIKE matcher for tests: slow and obviously right, so that
 * the real one (proto/like.c) and the lists built on it can be checked
 * against it. The pattern becomes tokens ('%' any run, '_' one code point,
 * '\' makes the next code point literal) and the key code points; then a
 * dynamic program over (tokens, code points) decides. Header-only: tests
 * are each a binary of their own. Expects valid UTF-8 and a pattern that
 * does not end in a lone '\'. */
#ifndef MC_TESTS_LIKE_REF_H
#define MC_TESTS_LIKE_REF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LIKE_REF_ANY_RUN (-1)
#define LIKE_REF_ANY_ONE (-2)

/* The code point at s[*i], advancing *i past it. */
static inline int32_t like_ref_cp(const uint8_t *s, size_t len, size_t *i)
{
    uint8_t c = s[*i];
    size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    int32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f)
                                                           : (c & 0x07);
    for (size_t k = 1; k < n && *i + k < len; k++) {
        cp = cp << 6 | (s[*i + k] & 0x3f);
    }
    *i += n;
    return cp;
}

static inline bool like_ref_match(const char *pattern, size_t p_len,
                                  const char *key, size_t k_len)
{
    const uint8_t *p = (const uint8_t *)pattern;
    const uint8_t *k = (const uint8_t *)key;
    int32_t *tok = malloc((p_len + 1) * sizeof *tok);
    int32_t *cps = malloc((k_len + 1) * sizeof *cps);
    size_t nt = 0, nk = 0;
    for (size_t i = 0; i < p_len;) {
        if (p[i] == '%') {
            tok[nt++] = LIKE_REF_ANY_RUN;
            i++;
        } else if (p[i] == '_') {
            tok[nt++] = LIKE_REF_ANY_ONE;
            i++;
        } else {
            if (p[i] == '\\') {
                i++;
            }
            tok[nt++] = like_ref_cp(p, p_len, &i);
        }
    }
    for (size_t i = 0; i < k_len;) {
        cps[nk++] = like_ref_cp(k, k_len, &i);
    }
    /* row[j]: the tokens so far match the first j code points. */
    bool *row = calloc(nk + 1, sizeof *row);
    bool *next = calloc(nk + 1, sizeof *next);
    row[0] = true;
    for (size_t t = 0; t < nt; t++) {
        for (size_t j = 0; j <= nk; j++) {
            if (tok[t] == LIKE_REF_ANY_RUN) {
                next[j] = row[j] || (j > 0 && next[j - 1]);
            } else {
                next[j] = j > 0 && row[j - 1] &&
                          (tok[t] == LIKE_REF_ANY_ONE || tok[t] == cps[j - 1]);
            }
        }
        bool *swap = row;
        row = next;
        next = swap;
    }
    bool out = row[nk];
    free(tok);
    free(cps);
    free(row);
    free(next);
    return out;
}

#endif
