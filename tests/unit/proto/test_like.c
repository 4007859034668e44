/* Unit tests of proto/like.c, the SQL LIKE patterns of list: the matcher
 * as a table of (pattern, key, verdict), escapes, '_' as one code point
 * rather than one byte, the literal prefix, the checks that refuse bad
 * patterns with a reason, and mc_like_has_wildcard. Last, the matcher
 * against a slow but obviously right reference (a dynamic program over
 * code points) on random patterns and keys from a small alphabet. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/lib/like_ref.h"

static bool match(const char *p, const char *k)
{
    return proto_like_match((const uint8_t *)p, strlen(p),
                            (const uint8_t *)k, strlen(k));
}

struct match_case {
    const char *pattern;
    const char *key;
    bool want;
};

Test(proto_like_match, table)
{
    static const struct match_case cases[] = {
        {"abc", "abc", true},
        {"abc", "abcd", false},
        {"abc", "ab", false},
        {"%", "", true},
        {"%", "anything/at/all", true},
        {"%%", "x", true},
        {"a%", "a", true},
        {"a%", "abc", true},
        {"a%", "ba", false},
        {"%a", "cba", true},
        {"%a", "ab", false},
        {"_", "x", true},
        {"_", "", false},
        {"_", "xy", false},
        {"__", "xy", true},
        {"a_c", "abc", true},
        {"a_c", "ac", false},
        {"a_c", "abbc", false},
        {"swarm/%/status", "swarm/researcher/status", true},
        {"swarm/%/status", "swarm//status", true},
        {"swarm/%/status", "swarm/a/b/status", true},
        {"swarm/%/status", "swarm/researcher/status/old", false},
        {"swarm/%/status", "swarm/status", false},
        {"swarm/shared/%-contract", "swarm/shared/api-contract", true},
        {"swarm/shared/%-contract", "swarm/shared/-contract", true},
        {"swarm/shared/%-contract", "swarm/shared/api-contracts", false},
        {"%a%b%c%", "xaybzc", true},
        {"%a%b%c%", "xcybza", false},
        {"%ab%ab", "abab", true},
        {"%ab%ab", "aabab", true},
        {"%ab%ab", "abxab", true},
        {"%ab%ab", "ab", false},
        {"a%b_c", "aXbYc", true},
        {"a%b_c", "abbc", true},
        {"a%b_c", "abc", false},
        /* escapes */
        {"a\\%b", "a%b", true},
        {"a\\%b", "axb", false},
        {"a\\_b", "a_b", true},
        {"a\\_b", "axb", false},
        {"a\\\\b", "a\\b", true},
        {"a\\\\%", "a\\xyz", true},
        {"\\a", "a", true},
        {"100\\%%", "100%done", true},
        {"100\\%%", "1000", false},
        {"%\\_%", "x_y", true},
        {"%\\_%", "xy", false},
        /* '_' is one code point, not one byte */
        {"_", "\xc3\xa9", true},          /* é: 2 bytes */
        {"__", "\xc3\xa9", false},
        {"_", "\xe2\x82\xac", true},      /* €: 3 bytes */
        {"_", "\xf0\x9f\x98\x80", true},  /* 😀: 4 bytes */
        {"a_b", "a\xf0\x9f\x98\x80" "b", true},
        {"caf_", "caf\xc3\xa9", true},
        {"%\xc3\xa9", "caf\xc3\xa9", true},
        {"\\\xc3\xa9", "\xc3\xa9", true}, /* an escaped multi-byte char */
        /* case matters */
        {"ABC", "abc", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct match_case *c = &cases[i];
        cr_expect_eq(match(c->pattern, c->key), c->want,
                     "case %zu: '%s' on '%s' should be %s", i, c->pattern,
                     c->key, c->want ? "a match" : "no match");
    }
}

struct prefix_case {
    const char *pattern;
    const char *want;
};

Test(proto_like_prefix, literal_part_with_escapes_resolved)
{
    static const struct prefix_case cases[] = {
        {"swarm/%/status", "swarm/"},
        {"swarm/shared/%-contract", "swarm/shared/"},
        {"%", ""},
        {"_abc", ""},
        {"abc", "abc"},
        {"a\\%b%", "a%b"},
        {"a\\_b_", "a_b"},
        {"a\\\\b%", "a\\b"},
        {"caf\xc3\xa9_", "caf\xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = cases[i].pattern;
        uint8_t out[64];
        size_t n = proto_like_prefix((const uint8_t *)p, strlen(p), out);
        cr_expect_eq(n, strlen(cases[i].want), "case %zu: length %zu", i, n);
        cr_expect_eq(memcmp(out, cases[i].want, n), 0, "case %zu", i);
    }
}

Test(proto_like_check, refuses_bad_patterns_with_a_reason)
{
    static const struct {
        const char *bytes;
        size_t len;
        mc_err want;
        const char *why; /* part of the reason */
    } cases[] = {
        {"swarm/%/status", 0, MC_OK, NULL},
        {"a\\\\", 0, MC_OK, NULL},
        {"\\%", 0, MC_OK, NULL},
        {"", 0, MC_INVALID_ARGUMENT, "empty"},
        {"abc\\", 0, MC_INVALID_ARGUMENT, "lone '\\'"},
        {"\\", 0, MC_INVALID_ARGUMENT, "lone '\\'"},
        {"a\\\\\\", 0, MC_INVALID_ARGUMENT, "lone '\\'"},
        {"a\xff%", 0, MC_INVALID_ARGUMENT, "UTF-8"},
        {"a\xc3", 0, MC_INVALID_ARGUMENT, "UTF-8"},
        {"\xc0\xaf%", 0, MC_INVALID_ARGUMENT, "UTF-8"}, /* overlong '/' */
        {"a\0b", 3, MC_INVALID_ARGUMENT, "NUL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].bytes);
        char err[160] = "";
        mc_err got = proto_like_check((const uint8_t *)cases[i].bytes, len,
                                      err, sizeof err);
        cr_expect_eq(got, cases[i].want, "case %zu: %s (%s)", i,
                     mc_errname(got), err);
        if (cases[i].why != NULL) {
            cr_expect(strstr(err, cases[i].why) != NULL,
                      "case %zu: '%s' does not say '%s'", i, err,
                      cases[i].why);
        }
    }
    static char long_pattern[MC_KEY_BYTES_MAX + 2];
    memset(long_pattern, '%', MC_KEY_BYTES_MAX + 1);
    char err[160];
    cr_expect_eq(proto_like_check((const uint8_t *)long_pattern,
                                  MC_KEY_BYTES_MAX + 1, err, sizeof err),
                 MC_INVALID_ARGUMENT);
    cr_expect_eq(proto_like_check((const uint8_t *)long_pattern,
                                  MC_KEY_BYTES_MAX, err, sizeof err),
                 MC_OK);
}

Test(mc_like_has_wildcard, only_unescaped_ones_count)
{
    cr_expect(mc_like_has_wildcard("swarm/%/status"));
    cr_expect(mc_like_has_wildcard("a_b"));
    cr_expect(mc_like_has_wildcard("a\\%b%"));
    cr_expect(mc_like_has_wildcard("a\\\\%"));
    cr_expect_not(mc_like_has_wildcard("swarm/"));
    cr_expect_not(mc_like_has_wildcard("a\\%b"));
    cr_expect_not(mc_like_has_wildcard("a\\_b"));
    cr_expect_not(mc_like_has_wildcard(""));
    cr_expect_not(mc_like_has_wildcard(NULL));
    cr_expect_not(mc_like_has_wildcard("trailing\\"));
}

/* ---- against a reference ---- */

/* Pieces of random keys and patterns: the wildcards and the escape, the
 * separators of hierarchical keys, and characters of 2 and 4 bytes. */
static const char *const key_pieces[] = {"a", "b", "/", "-", "_", "%",
                                         "\xc3\xa9", "\xf0\x9f\x98\x80"};
static const char *const pattern_pieces[] = {
    "a", "b", "/", "-", "%", "_", "\\%", "\\_", "\\\\", "\\a",
    "\xc3\xa9", "\xf0\x9f\x98\x80"};
#define PIECES(a) (sizeof(a) / sizeof(a)[0])

Test(proto_like_match, agrees_with_a_reference_on_random_input)
{
    srand(4242);
    for (unsigned round = 0; round < 20000; round++) {
        char key[64] = "";
        size_t nk = (size_t)rand() % 10;
        for (size_t i = 0; i < nk; i++) {
            strcat(key, key_pieces[rand() % (int)PIECES(key_pieces)]);
        }
        char pat[64] = "";
        size_t np = 1 + (size_t)rand() % 7;
        for (size_t i = 0; i < np; i++) {
            strcat(pat, pattern_pieces[rand() % (int)PIECES(pattern_pieces)]);
        }
        char err[160];
        cr_assert_eq(proto_like_check((const uint8_t *)pat, strlen(pat), err,
                                      sizeof err),
                     MC_OK, "%s: %s", pat, err);
        bool want = like_ref_match(pat, strlen(pat), key, strlen(key));
        cr_assert_eq(match(pat, key), want, "'%s' on '%s': reference says %d",
                     pat, key, want);
    }
}
