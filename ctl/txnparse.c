/* The input of memcoordctl txn: a small text syntax in the manner of
 * etcdctl txn, or JSON. Both end in the arrays mc_txn takes.
 *
 * Text: three blocks separated by blank lines, compares, then the
 * operations when they hold, then the ones when they do not:
 *
 *     version("swarm/x") = 3         version: = == != < >
 *     value("{job}/state") = "ready" value: = == !=
 *     exists("{job}/lock")           missing("{job}/lock")
 *
 *     put swarm/x "new value" --tier short --ttl 5m
 *     del {job}/lock
 *     get swarm/x
 *
 *     get swarm/x
 *
 * A key or value is a bare word or a "double-quoted string" with the
 * escapes \" \\ \n \t \r and \xNN. Lines that start with '#' are comments;
 * an empty block is an empty line (no compares: start with one).
 *
 * JSON: {"compare": [...], "then": [...], "else": [...]} ("success" and
 * "failure" also name the lists), where a compare is {"key", "target":
 * "exists" | "missing" | "version" | "value", "op": "=" | "!=" | "<" |
 * ">", "version": N, "value": "..." | "value_b64": "..."} and an operation
 * {"op": "put" | "del" | "get", "key", "value" | "value_b64", "tier",
 * "ttl": "5m"}. The reader is made for this shape: two levels of nesting,
 * no recursion. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* Input lines and JSON items read at most: far above what a transaction
 * may hold, so that mc_txn names the limit, yet bounded. */
#define TXN_ITEMS_MAX 4096u

void ctl_txn_fini(struct ctl_txn *t)
{
    for (size_t i = 0; i < t->n_strs; i++) {
        free(t->strs[i]);
    }
    free(t->strs);
    free(t->cmps);
    free(t->ops[0]);
    free(t->ops[1]);
    memset(t, 0, sizeof *t);
}

__attribute__((format(printf, 3, 4))) static mc_err
fail(char *msg, size_t msg_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msg_len, fmt, ap);
    va_end(ap);
    return MC_INVALID_ARGUMENT;
}

/* Keep s (malloc'd) until ctl_txn_fini; frees it on failure. */
static bool keep(struct ctl_txn *t, char *s)
{
    if (s == NULL) {
        return false;
    }
    if (t->n_strs == t->cap_strs) {
        size_t cap = t->cap_strs ? 2 * t->cap_strs : 16;
        char **grown = realloc(t->strs, cap * sizeof *grown);
        if (grown == NULL) {
            free(s);
            return false;
        }
        t->strs = grown;
        t->cap_strs = cap;
    }
    t->strs[t->n_strs++] = s;
    return true;
}

static mc_cmp *cmp_add(struct ctl_txn *t)
{
    if (t->n_cmps + t->n_ops[0] + t->n_ops[1] >= TXN_ITEMS_MAX) {
        return NULL;
    }
    if (t->n_cmps == t->cap_cmps) {
        size_t cap = t->cap_cmps ? 2 * t->cap_cmps : 8;
        mc_cmp *grown = realloc(t->cmps, cap * sizeof *grown);
        if (grown == NULL) {
            return NULL;
        }
        t->cmps = grown;
        t->cap_cmps = cap;
    }
    mc_cmp *c = &t->cmps[t->n_cmps++];
    memset(c, 0, sizeof *c);
    return c;
}

static mc_op *op_add(struct ctl_txn *t, unsigned branch)
{
    if (t->n_cmps + t->n_ops[0] + t->n_ops[1] >= TXN_ITEMS_MAX) {
        return NULL;
    }
    if (t->n_ops[branch] == t->cap_ops[branch]) {
        size_t cap = t->cap_ops[branch] ? 2 * t->cap_ops[branch] : 8;
        mc_op *grown = realloc(t->ops[branch], cap * sizeof *grown);
        if (grown == NULL) {
            return NULL;
        }
        t->ops[branch] = grown;
        t->cap_ops[branch] = cap;
    }
    mc_op *o = &t->ops[branch][t->n_ops[branch]++];
    memset(o, 0, sizeof *o);
    return o;
}

/* ---- words and operators shared by both syntaxes ---- */

static bool target_parse(const char *s, mc_cmp_target *out)
{
    static const struct {
        const char *name;
        mc_cmp_target target;
    } names[] = {{"exists", MC_CMP_EXISTS},
                 {"missing", MC_CMP_MISSING},
                 {"version", MC_CMP_VERSION},
                 {"value", MC_CMP_VALUE}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].target;
            return true;
        }
    }
    return false;
}

static bool cmp_op_parse(const char *s, mc_cmp_op *out)
{
    if (strcmp(s, "=") == 0 || strcmp(s, "==") == 0) {
        *out = MC_EQ;
    } else if (strcmp(s, "!=") == 0) {
        *out = MC_NE;
    } else if (strcmp(s, "<") == 0) {
        *out = MC_LT;
    } else if (strcmp(s, ">") == 0) {
        *out = MC_GT;
    } else {
        return false;
    }
    return true;
}

static bool op_type_parse(const char *s, mc_op_type *out)
{
    if (strcmp(s, "put") == 0) {
        *out = MC_OP_PUT;
    } else if (strcmp(s, "del") == 0 || strcmp(s, "delete") == 0) {
        *out = MC_OP_DELETE;
    } else if (strcmp(s, "get") == 0) {
        *out = MC_OP_GET;
    } else {
        return false;
    }
    return true;
}

/* ---- text ---- */

/* A cursor over one line. */
struct line {
    const char *p;
    const char *end;
    unsigned no;
};

static void skip_ws(struct line *l)
{
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\r')) {
        l->p++;
    }
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* A bare word (up to a space, or one of stop) or a quoted string, as a new
 * NUL-terminated buffer of *len bytes kept in t. */
static mc_err word(struct ctl_txn *t, struct line *l, const char *stop,
                   const char *what, char **out, size_t *len, char *msg,
                   size_t msg_len)
{
    skip_ws(l);
    char *s = malloc((size_t)(l->end - l->p) + 1);
    if (s == NULL || !keep(t, s)) {
        return fail(msg, msg_len, "out of memory");
    }
    size_t n = 0;
    bool quoted = l->p < l->end && *l->p == '"';
    if (quoted) {
        for (l->p++;; l->p++) {
            if (l->p == l->end) {
                return fail(msg, msg_len, "line %u: %s: no closing quote",
                            l->no, what);
            }
            char c = *l->p;
            if (c == '"') {
                l->p++;
                break;
            }
            if (c != '\\') {
                s[n++] = c;
                continue;
            }
            if (++l->p == l->end) {
                return fail(msg, msg_len, "line %u: %s ends in '\\'", l->no,
                            what);
            }
            c = *l->p;
            if (c == 'n' || c == 't' || c == 'r') {
                s[n++] = c == 'n' ? '\n' : c == 't' ? '\t' : '\r';
            } else if (c == '"' || c == '\\') {
                s[n++] = c;
            } else if (c == 'x' && l->end - l->p >= 3 &&
                       hex_digit(l->p[1]) >= 0 && hex_digit(l->p[2]) >= 0) {
                s[n++] = (char)(hex_digit(l->p[1]) << 4 | hex_digit(l->p[2]));
                l->p += 2;
            } else {
                return fail(msg, msg_len,
                            "line %u: %s: unknown escape '\\%c' (use \\\" "
                            "\\\\ \\n \\t \\r \\xNN)", l->no, what, c);
            }
        }
    } else {
        while (l->p < l->end && *l->p != ' ' && *l->p != '\t' &&
               *l->p != '\r' && strchr(stop, *l->p) == NULL) {
            s[n++] = *l->p++;
        }
    }
    if (n == 0 && !quoted) {
        return fail(msg, msg_len, "line %u: %s is missing", l->no, what);
    }
    s[n] = '\0';
    *out = s;
    *len = n;
    return MC_OK;
}

/* A key becomes a C string: it must hold no NUL. */
static mc_err key_check(const char *key, size_t len, const char *where,
                        char *msg, size_t msg_len)
{
    if (strlen(key) != len) {
        return fail(msg, msg_len, "%s: a key cannot hold a NUL byte", where);
    }
    return MC_OK;
}

static bool eat(struct line *l, char c)
{
    skip_ws(l);
    if (l->p < l->end && *l->p == c) {
        l->p++;
        return true;
    }
    return false;
}

/* version("k") = 3, value("k") != "v", exists("k"), missing("k"). */
static mc_err compare_line(struct ctl_txn *t, struct line *l, char *msg,
                           size_t msg_len)
{
    const char *name = l->p;
    while (l->p < l->end && *l->p >= 'a' && *l->p <= 'z') {
        l->p++;
    }
    char fn[16];
    snprintf(fn, sizeof fn, "%.*s", (int)(l->p - name), name);
    mc_op_type verb;
    if (op_type_parse(fn, &verb)) {
        return fail(msg, msg_len, "line %u: '%s' is an operation, but the "
                    "first block holds compares (start with a blank line "
                    "when there are none)", l->no, fn);
    }
    mc_cmp *c = cmp_add(t);
    if (c == NULL) {
        return fail(msg, msg_len, "line %u: too many compares", l->no);
    }
    if (!target_parse(fn, &c->target) || !eat(l, '(')) {
        return fail(msg, msg_len,
                    "line %u: a compare is version(\"KEY\") OP N, "
                    "value(\"KEY\") OP \"VALUE\", exists(\"KEY\") or "
                    "missing(\"KEY\")", l->no);
    }
    char *key;
    size_t key_len;
    char where[32];
    snprintf(where, sizeof where, "line %u", l->no);
    mc_err rv = word(t, l, ")", "key", &key, &key_len, msg, msg_len);
    if (rv == MC_OK) {
        rv = key_check(key, key_len, where, msg, msg_len);
    }
    if (rv != MC_OK) {
        return rv;
    }
    c->key = key;
    if (!eat(l, ')')) {
        return fail(msg, msg_len, "line %u: ')' expected after the key",
                    l->no);
    }
    if (c->target == MC_CMP_VERSION || c->target == MC_CMP_VALUE) {
        skip_ws(l);
        const char *op = l->p;
        while (l->p < l->end && strchr("=!<>", *l->p) != NULL) {
            l->p++;
        }
        char ops[4];
        snprintf(ops, sizeof ops, "%.*s", (int)(l->p - op), op);
        if (!cmp_op_parse(ops, &c->op)) {
            return fail(msg, msg_len, "line %u: '%s' is not =, !=, < or >",
                        l->no, ops);
        }
        char *v;
        size_t v_len;
        rv = word(t, l, "", "value", &v, &v_len, msg, msg_len);
        if (rv != MC_OK) {
            return rv;
        }
        if (c->target == MC_CMP_VALUE) {
            c->value = v;
            c->value_len = v_len;
        } else if (!ctl_parse_u64(v, UINT64_MAX, &c->version)) {
            return fail(msg, msg_len, "line %u: version '%s' is not a "
                        "number", l->no, v);
        }
    }
    skip_ws(l);
    if (l->p != l->end) {
        return fail(msg, msg_len, "line %u: unexpected '%.*s'", l->no,
                    (int)(l->end - l->p), l->p);
    }
    return MC_OK;
}

/* The --tier T and --ttl D of a put line. */
static mc_err put_options(struct ctl_txn *t, struct line *l, mc_op *o,
                          char *msg, size_t msg_len)
{
    for (;;) {
        skip_ws(l);
        if (l->p == l->end) {
            return MC_OK;
        }
        char *opt, *arg;
        size_t opt_len, arg_len;
        mc_err rv = word(t, l, "", "option", &opt, &opt_len, msg, msg_len);
        if (rv == MC_OK) {
            rv = word(t, l, "", "option value", &arg, &arg_len, msg, msg_len);
        }
        if (rv != MC_OK) {
            return rv;
        }
        if (strcmp(opt, "--tier") == 0) {
            if (!mc_tier_parse(arg, &o->tier)) {
                return fail(msg, msg_len, "line %u: tier '%s' is not short, "
                            "mid or long", l->no, arg);
            }
        } else if (strcmp(opt, "--ttl") == 0) {
            if (!ctl_parse_duration_ms(arg, &o->ttl_ms) || o->ttl_ms == 0) {
                return fail(msg, msg_len, "line %u: ttl '%s' is not a "
                            "duration such as 30s, 5m, 2h", l->no, arg);
            }
        } else {
            return fail(msg, msg_len, "line %u: a put takes --tier and "
                        "--ttl, not '%s'", l->no, opt);
        }
    }
}

/* put KEY VALUE [--tier T] [--ttl D], del KEY, get KEY. */
static mc_err op_line(struct ctl_txn *t, unsigned branch, struct line *l,
                      char *msg, size_t msg_len)
{
    char *verb, *key;
    size_t verb_len, key_len;
    mc_err rv = word(t, l, "", "operation", &verb, &verb_len, msg, msg_len);
    if (rv != MC_OK) {
        return rv;
    }
    mc_op *o = op_add(t, branch);
    if (o == NULL) {
        return fail(msg, msg_len, "line %u: too many operations", l->no);
    }
    if (!op_type_parse(verb, &o->type)) {
        return fail(msg, msg_len, "line %u: '%s' is not put, del or get "
                    "(a compare belongs in the first block)", l->no, verb);
    }
    char where[32];
    snprintf(where, sizeof where, "line %u", l->no);
    rv = word(t, l, "", "key", &key, &key_len, msg, msg_len);
    if (rv == MC_OK) {
        rv = key_check(key, key_len, where, msg, msg_len);
    }
    if (rv != MC_OK) {
        return rv;
    }
    o->key = key;
    if (o->type == MC_OP_PUT) {
        char *v;
        size_t v_len;
        rv = word(t, l, "", "value", &v, &v_len, msg, msg_len);
        if (rv != MC_OK) {
            return rv;
        }
        o->value = v;
        o->value_len = v_len;
        return put_options(t, l, o, msg, msg_len);
    }
    skip_ws(l);
    if (l->p != l->end) {
        return fail(msg, msg_len, "line %u: unexpected '%.*s'", l->no,
                    (int)(l->end - l->p), l->p);
    }
    return MC_OK;
}

mc_err ctl_txn_parse_text(const char *in, size_t len, struct ctl_txn *t,
                          char *msg, size_t msg_len)
{
    unsigned block = 0; /* 0 compares, 1 then, 2 else, 3 past the end */
    unsigned no = 0;
    for (const char *p = in; p < in + len;) {
        const char *nl = memchr(p, '\n', (size_t)(in + len - p));
        struct line l = {p, nl != NULL ? nl : in + len, ++no};
        p = nl != NULL ? nl + 1 : in + len;
        if (no > TXN_ITEMS_MAX) {
            return fail(msg, msg_len, "more than %u lines", TXN_ITEMS_MAX);
        }
        skip_ws(&l);
        if (l.p == l.end) {
            block++;
            continue;
        }
        if (*l.p == '#') {
            continue;
        }
        if (block > 2) {
            return fail(msg, msg_len, "line %u: a transaction has three "
                        "blocks (compares, then, else) between blank lines",
                        no);
        }
        mc_err rv = block == 0 ? compare_line(t, &l, msg, msg_len)
                               : op_line(t, block - 1, &l, msg, msg_len);
        if (rv != MC_OK) {
            return rv;
        }
    }
    if (t->n_cmps + t->n_ops[0] + t->n_ops[1] == 0) {
        return fail(msg, msg_len, "the transaction on stdin is empty");
    }
    return MC_OK;
}

/* ---- JSON ---- */

struct jin {
    const char *p;
    const char *end;
};

static void jws(struct jin *j)
{
    while (j->p < j->end && strchr(" \t\r\n", *j->p) != NULL) {
        j->p++;
    }
}

static bool jeat(struct jin *j, char c)
{
    jws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* Append code point cp as UTF-8. */
static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static bool hex4(const char *p, const char *end, uint32_t *out)
{
    if (end - p < 4) {
        return false;
    }
    *out = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p[i]);
        if (d < 0) {
            return false;
        }
        *out = *out << 4 | (uint32_t)d;
    }
    return true;
}

/* One \uXXXX escape (a surrogate pair as one code point) at j->p, which
 * points after the 'u'. */
static bool junicode(struct jin *j, uint32_t *cp)
{
    if (!hex4(j->p, j->end, cp)) {
        return false;
    }
    j->p += 4;
    if (*cp >= 0xdc00 && *cp <= 0xdfff) {
        return false;
    }
    if (*cp >= 0xd800 && *cp <= 0xdbff) {
        uint32_t lo;
        if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
            !hex4(j->p + 2, j->end, &lo) || lo < 0xdc00 || lo > 0xdfff) {
            return false;
        }
        j->p += 6;
        *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    return true;
}

/* A JSON string as a new NUL-terminated buffer kept in t. */
static mc_err jstring(struct ctl_txn *t, struct jin *j, char **out,
                      size_t *len, char *msg, size_t msg_len)
{
    if (!jeat(j, '"')) {
        return fail(msg, msg_len, "JSON: a string was expected");
    }
    /* Escapes never grow: \uXXXX (6 bytes) is at most 4 of UTF-8. */
    char *s = malloc((size_t)(j->end - j->p) + 1);
    if (s == NULL || !keep(t, s)) {
        return fail(msg, msg_len, "out of memory");
    }
    size_t n = 0;
    for (;;) {
        if (j->p == j->end) {
            return fail(msg, msg_len, "JSON: a string does not end");
        }
        char c = *j->p++;
        if (c == '"') {
            break;
        }
        if (c != '\\') {
            s[n++] = c;
            continue;
        }
        if (j->p == j->end) {
            return fail(msg, msg_len, "JSON: a string does not end");
        }
        c = *j->p++;
        const char *simple = strchr("\"\\/bfnrt", c);
        if (simple != NULL && c != '\0') {
            static const char to[] = "\"\\/\b\f\n\r\t";
            s[n++] = to[simple - "\"\\/bfnrt"];
        } else if (c == 'u') {
            uint32_t cp;
            if (!junicode(j, &cp)) {
                return fail(msg, msg_len, "JSON: bad \\u escape");
            }
            n += utf8_put(cp, s + n);
        } else {
            return fail(msg, msg_len, "JSON: unknown escape '\\%c'", c);
        }
    }
    s[n] = '\0';
    *out = s;
    *len = n;
    return MC_OK;
}

static mc_err jnumber(struct jin *j, uint64_t *out, char *msg,
                      size_t msg_len)
{
    jws(j);
    char digits[24];
    size_t n = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9' &&
           n < sizeof digits - 1) {
        digits[n++] = *j->p++;
    }
    digits[n] = '\0';
    if (n == 0 || !ctl_parse_u64(digits, UINT64_MAX, out)) {
        return fail(msg, msg_len, "JSON: a number from 0 up was expected");
    }
    return MC_OK;
}

/* Standard base64 with padding into a new buffer kept in t. */
static mc_err b64_decode(struct ctl_txn *t, const char *in, size_t len,
                         const void **out, size_t *out_len, char *msg,
                         size_t msg_len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len % 4 != 0) {
        return fail(msg, msg_len, "JSON: value_b64 is not base64");
    }
    char *s = malloc(len / 4 * 3 + 1);
    if (s == NULL || !keep(t, s)) {
        return fail(msg, msg_len, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        unsigned pad = 0;
        for (size_t k = 0; k < 4; k++) {
            const char *at = in[i + k] != '\0' ? strchr(alphabet, in[i + k])
                                               : NULL;
            if (in[i + k] == '=' && i + 4 == len && k >= 2) {
                pad++;
                v <<= 6;
                continue;
            }
            if (at == NULL || pad > 0) {
                return fail(msg, msg_len, "JSON: value_b64 is not base64");
            }
            v = v << 6 | (uint32_t)(at - alphabet);
        }
        s[n++] = (char)(v >> 16);
        if (pad < 2) {
            s[n++] = (char)(v >> 8 & 0xff);
        }
        if (pad < 1) {
            s[n++] = (char)(v & 0xff);
        }
    }
    *out = s;
    *out_len = n;
    return MC_OK;
}

/* The members of one compare or operation object, as strings, before
 * they are interpreted. */
struct jitem {
    char *key, *target, *op, *value, *value_b64, *tier, *ttl;
    size_t key_len, value_len, value_b64_len;
    bool has_version;
    uint64_t version;
};

static mc_err jitem_read(struct ctl_txn *t, struct jin *j, struct jitem *it,
                         char *msg, size_t msg_len)
{
    memset(it, 0, sizeof *it);
    if (!jeat(j, '{')) {
        return fail(msg, msg_len, "JSON: an object was expected in a list");
    }
    if (jeat(j, '}')) {
        return MC_OK;
    }
    do {
        char *name;
        size_t name_len, len;
        mc_err rv = jstring(t, j, &name, &name_len, msg, msg_len);
        if (rv != MC_OK) {
            return rv;
        }
        if (!jeat(j, ':')) {
            return fail(msg, msg_len, "JSON: ':' expected after \"%s\"", name);
        }
        if (strcmp(name, "version") == 0) {
            it->has_version = true;
            rv = jnumber(j, &it->version, msg, msg_len);
        } else {
            char **field = strcmp(name, "key") == 0         ? &it->key
                           : strcmp(name, "target") == 0    ? &it->target
                           : strcmp(name, "op") == 0        ? &it->op
                           : strcmp(name, "value") == 0     ? &it->value
                           : strcmp(name, "value_b64") == 0 ? &it->value_b64
                           : strcmp(name, "tier") == 0      ? &it->tier
                           : strcmp(name, "ttl") == 0       ? &it->ttl
                                                            : NULL;
            if (field == NULL) {
                return fail(msg, msg_len, "JSON: unknown member \"%s\"", name);
            }
            rv = jstring(t, j, field, &len, msg, msg_len);
            if (field == &it->key) {
                it->key_len = len;
            } else if (field == &it->value) {
                it->value_len = len;
            } else if (field == &it->value_b64) {
                it->value_b64_len = len;
            }
        }
        if (rv != MC_OK) {
            return rv;
        }
    } while (jeat(j, ','));
    if (!jeat(j, '}')) {
        return fail(msg, msg_len, "JSON: ',' or '}' expected in an object");
    }
    return MC_OK;
}

/* The value of an item: "value" as is, or "value_b64" decoded. */
static mc_err jitem_value(struct ctl_txn *t, const struct jitem *it,
                          const void **v, size_t *len, char *msg,
                          size_t msg_len)
{
    if (it->value_b64 != NULL) {
        return b64_decode(t, it->value_b64, it->value_b64_len, v, len, msg,
                          msg_len);
    }
    *v = it->value;
    *len = it->value_len;
    return MC_OK;
}

static mc_err jcompare(struct ctl_txn *t, const struct jitem *it,
                       size_t i, char *msg, size_t msg_len)
{
    mc_cmp *c = cmp_add(t);
    if (c == NULL) {
        return fail(msg, msg_len, "JSON: too many compares");
    }
    c->key = it->key;
    if (it->key == NULL) {
        return fail(msg, msg_len, "JSON: compare %zu has no \"key\"", i);
    }
    if (it->key_len != strlen(it->key)) {
        return fail(msg, msg_len, "JSON: compare %zu: a key cannot hold a "
                    "NUL byte", i);
    }
    if (it->target == NULL || !target_parse(it->target, &c->target)) {
        return fail(msg, msg_len, "JSON: compare %zu: \"target\" is "
                    "exists, missing, version or value", i);
    }
    if (it->op != NULL && !cmp_op_parse(it->op, &c->op)) {
        return fail(msg, msg_len, "JSON: compare %zu: \"op\" '%s' is not "
                    "=, !=, < or >", i, it->op);
    }
    c->version = it->version;
    if (c->target == MC_CMP_VERSION && !it->has_version) {
        return fail(msg, msg_len, "JSON: compare %zu has no \"version\"", i);
    }
    if (c->target == MC_CMP_VALUE && it->value == NULL &&
        it->value_b64 == NULL) {
        return fail(msg, msg_len, "JSON: compare %zu has no \"value\"", i);
    }
    return jitem_value(t, it, &c->value, &c->value_len, msg, msg_len);
}

static mc_err joperation(struct ctl_txn *t, unsigned branch,
                         const struct jitem *it, size_t i, char *msg,
                         size_t msg_len)
{
    mc_op *o = op_add(t, branch);
    if (o == NULL) {
        return fail(msg, msg_len, "JSON: too many operations");
    }
    const char *list = branch == 0 ? "then" : "else";
    if (it->op == NULL || !op_type_parse(it->op, &o->type)) {
        return fail(msg, msg_len, "JSON: %s[%zu]: \"op\" is put, del or get",
                    list, i);
    }
    o->key = it->key;
    if (it->key == NULL) {
        return fail(msg, msg_len, "JSON: %s[%zu] has no \"key\"", list, i);
    }
    if (it->key_len != strlen(it->key)) {
        return fail(msg, msg_len, "JSON: %s[%zu]: a key cannot hold a NUL "
                    "byte", list, i);
    }
    if (it->tier != NULL && !mc_tier_parse(it->tier, &o->tier)) {
        return fail(msg, msg_len, "JSON: %s[%zu]: tier '%s' is not short, "
                    "mid or long", list, i, it->tier);
    }
    if (it->ttl != NULL &&
        (!ctl_parse_duration_ms(it->ttl, &o->ttl_ms) || o->ttl_ms == 0)) {
        return fail(msg, msg_len, "JSON: %s[%zu]: ttl '%s' is not a duration "
                    "such as 30s, 5m, 2h", list, i, it->ttl);
    }
    if (o->type == MC_OP_PUT && it->value == NULL && it->value_b64 == NULL) {
        return fail(msg, msg_len, "JSON: %s[%zu]: a put needs a \"value\"",
                    list, i);
    }
    return jitem_value(t, it, &o->value, &o->value_len, msg, msg_len);
}

/* The top member name: 0 compare, 1 then, 2 else; -1 unknown. */
static int jlist_of(const char *name)
{
    if (strcmp(name, "compare") == 0 || strcmp(name, "compares") == 0) {
        return 0;
    }
    if (strcmp(name, "then") == 0 || strcmp(name, "success") == 0) {
        return 1;
    }
    if (strcmp(name, "else") == 0 || strcmp(name, "failure") == 0) {
        return 2;
    }
    return -1;
}

static mc_err jlist(struct ctl_txn *t, struct jin *j, int which, char *msg,
                    size_t msg_len)
{
    if (!jeat(j, '[')) {
        return fail(msg, msg_len, "JSON: a list was expected");
    }
    if (jeat(j, ']')) {
        return MC_OK;
    }
    size_t i = 0;
    do {
        struct jitem it;
        mc_err rv = jitem_read(t, j, &it, msg, msg_len);
        if (rv == MC_OK) {
            rv = which == 0 ? jcompare(t, &it, i, msg, msg_len)
                            : joperation(t, (unsigned)which - 1, &it, i, msg,
                                         msg_len);
        }
        if (rv != MC_OK) {
            return rv;
        }
        i++;
    } while (jeat(j, ','));
    if (!jeat(j, ']')) {
        return fail(msg, msg_len, "JSON: ',' or ']' expected in a list");
    }
    return MC_OK;
}

mc_err ctl_txn_parse_json(const char *in, size_t len, struct ctl_txn *t,
                          char *msg, size_t msg_len)
{
    struct jin j = {in, in + len};
    if (!jeat(&j, '{')) {
        return fail(msg, msg_len, "JSON: the transaction is one object");
    }
    bool seen[3] = {false, false, false};
    if (!jeat(&j, '}')) {
        do {
            char *name;
            size_t name_len;
            mc_err rv = jstring(t, &j, &name, &name_len, msg, msg_len);
            if (rv != MC_OK) {
                return rv;
            }
            int which = jlist_of(name);
            if (which < 0) {
                return fail(msg, msg_len, "JSON: unknown member \"%s\" (use "
                            "compare, then, else)", name);
            }
            if (seen[which]) {
                return fail(msg, msg_len, "JSON: \"%s\" given twice", name);
            }
            seen[which] = true;
            if (!jeat(&j, ':')) {
                return fail(msg, msg_len, "JSON: ':' expected after \"%s\"",
                            name);
            }
            rv = jlist(t, &j, which, msg, msg_len);
            if (rv != MC_OK) {
                return rv;
            }
        } while (jeat(&j, ','));
        if (!jeat(&j, '}')) {
            return fail(msg, msg_len, "JSON: ',' or '}' expected");
        }
    }
    jws(&j);
    if (j.p != j.end) {
        return fail(msg, msg_len, "JSON: trailing bytes after the object");
    }
    if (t->n_cmps + t->n_ops[0] + t->n_ops[1] == 0) {
        return fail(msg, msg_len, "the transaction on stdin is empty");
    }
    return MC_OK;
}
