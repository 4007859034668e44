/* Output of memcoordctl. Text is for people and line-based tools; JSON is
 * one object per result, one per line, with the field names of the issue:
 * key, value (or value_b64 when the bytes are not UTF-8), version,
 * create_rev, mod_rev, tier, expires_at, updated_at. Errors go to stderr. */
#include <string.h>
#include <time.h>

#include "ctl.h"

/* ms since the epoch as ISO 8601 UTC; 0 is "never". */
static void time_text(FILE *f, int64_t ms)
{
    if (ms == 0) {
        fputs("never", f);
        return;
    }
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&sec, &tm) == NULL) {
        fprintf(f, "%lld", (long long)ms);
        return;
    }
    fprintf(f, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            (int)(ms % 1000));
}

/* A value on one line: backslash, control and non-UTF-8 bytes escaped. */
static void text_escaped(FILE *f, const uint8_t *s, size_t len)
{
    bool utf8 = mc_utf8_valid(s, len);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (c == '\\') {
            fputs("\\\\", f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c == '\r') {
            fputs("\\r", f);
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
            fprintf(f, "\\x%02x", c);
        } else {
            fputc(c, f);
        }
    }
}

static void record_json(FILE *f, const mc_record *r, bool with_value)
{
    fputs("{\"key\":", f);
    ctl_json_str(f, (const uint8_t *)r->key, r->key_len);
    if (with_value) {
        if (mc_utf8_valid(r->value, r->value_len)) {
            fputs(",\"value\":", f);
            ctl_json_str(f, r->value, r->value_len);
        } else {
            fputs(",\"value_b64\":", f);
            ctl_json_b64(f, r->value, r->value_len);
        }
    }
    fprintf(f,
            ",\"version\":%llu,\"create_rev\":%llu,\"mod_rev\":%llu,"
            "\"tier\":",
            (unsigned long long)r->version, (unsigned long long)r->create_rev,
            (unsigned long long)r->mod_rev);
    ctl_json_cstr(f, mc_tier_name(r->tier));
    fprintf(f, ",\"expires_at\":%lld,\"updated_at\":%lld}",
            (long long)r->expires_at_ms, (long long)r->updated_at_ms);
}

void ctl_print_record(const struct ctl *x, const mc_record *r)
{
    if (x->output == CTL_OUTPUT_JSON) {
        record_json(stdout, r, true);
        fputc('\n', stdout);
        return;
    }
    fwrite(r->value, 1, r->value_len, stdout);
    fputc('\n', stdout);
    if (!x->meta) {
        return;
    }
    printf("key=%s\nversion=%llu\ncreate_rev=%llu\nmod_rev=%llu\ntier=%s\n",
           r->key, (unsigned long long)r->version,
           (unsigned long long)r->create_rev, (unsigned long long)r->mod_rev,
           mc_tier_name(r->tier));
    fputs("expires_at=", stdout);
    time_text(stdout, r->expires_at_ms);
    fputs("\nupdated_at=", stdout);
    time_text(stdout, r->updated_at_ms);
    fputc('\n', stdout);
}

void ctl_print_list_entry(const struct ctl *x, const mc_record *r)
{
    if (x->output == CTL_OUTPUT_JSON) {
        record_json(stdout, r, !x->keys_only);
        fputc('\n', stdout);
        return;
    }
    fwrite(r->key, 1, r->key_len, stdout);
    if (!x->keys_only) {
        printf("\t%llu\t%s\t", (unsigned long long)r->version,
               mc_tier_name(r->tier));
        text_escaped(stdout, r->value, r->value_len);
    }
    fputc('\n', stdout);
}

void ctl_print_event(const struct ctl *x, const mc_event *e)
{
    const mc_record *r = &e->record;
    if (x->output == CTL_OUTPUT_JSON) {
        fputs("{\"type\":", stdout);
        ctl_json_cstr(stdout, mc_event_type_name(e->type));
        fputs(",\"key\":", stdout);
        ctl_json_str(stdout, (const uint8_t *)r->key, r->key_len);
        if (mc_utf8_valid(r->value, r->value_len)) {
            fputs(",\"value\":", stdout);
            ctl_json_str(stdout, r->value, r->value_len);
        } else {
            fputs(",\"value_b64\":", stdout);
            ctl_json_b64(stdout, r->value, r->value_len);
        }
        printf(",\"version\":%llu,\"revision\":%llu,\"shard\":%u,"
               "\"seq\":%u,\"create_rev\":%llu,\"tier\":",
               (unsigned long long)r->version,
               (unsigned long long)e->revision, e->shard, e->seq,
               (unsigned long long)r->create_rev);
        ctl_json_cstr(stdout, mc_tier_name(r->tier));
        printf(",\"expires_at\":%lld,\"updated_at\":%lld}\n",
               (long long)r->expires_at_ms, (long long)r->updated_at_ms);
        return;
    }
    printf("%s\t", mc_event_type_name(e->type));
    fwrite(r->key, 1, r->key_len, stdout);
    printf("\t%llu\t%llu\t%s\t", (unsigned long long)r->version,
           (unsigned long long)e->revision, mc_tier_name(r->tier));
    text_escaped(stdout, r->value, r->value_len);
    fputc('\n', stdout);
}

void ctl_print_write(const struct ctl *x, const char *key,
                     const mc_result *res)
{
    if (x->output == CTL_OUTPUT_JSON) {
        fputs("{\"key\":", stdout);
        ctl_json_cstr(stdout, key);
        printf(",\"version\":%llu,\"create_rev\":%llu,\"mod_rev\":%llu}\n",
               (unsigned long long)res->version,
               (unsigned long long)res->create_rev,
               (unsigned long long)res->mod_rev);
        return;
    }
    printf("OK version=%llu create_rev=%llu mod_rev=%llu\n",
           (unsigned long long)res->version,
           (unsigned long long)res->create_rev,
           (unsigned long long)res->mod_rev);
}

static const char *op_name(mc_op_type t)
{
    return t == MC_OP_PUT ? "put" : t == MC_OP_DELETE ? "del" : "get";
}

static void txn_result_json(const mc_op *ops, const mc_txn_result *r)
{
    printf("{\"succeeded\":%s,\"branch\":\"%s\",\"revision\":%llu,"
           "\"results\":[",
           r->succeeded ? "true" : "false", r->succeeded ? "then" : "else",
           (unsigned long long)r->revision);
    for (size_t i = 0; i < r->n_results; i++) {
        const mc_op_result *o = &r->results[i];
        printf("%s{\"op\":\"%s\",\"key\":", i > 0 ? "," : "",
               op_name(o->type));
        ctl_json_cstr(stdout, ops[i].key);
        fputs(",\"code\":", stdout);
        ctl_json_cstr(stdout, mc_errname(o->code));
        if (o->code == MC_OK && o->type == MC_OP_GET) {
            fputs(",\"record\":", stdout);
            record_json(stdout, &o->record, true);
        } else if (o->code == MC_OK) {
            printf(",\"version\":%llu,\"create_rev\":%llu,"
                   "\"mod_rev\":%llu",
                   (unsigned long long)o->version,
                   (unsigned long long)o->create_rev,
                   (unsigned long long)o->mod_rev);
        }
        fputc('}', stdout);
    }
    fputs("]}\n", stdout);
}

void ctl_print_txn(const struct ctl *x, const mc_txn_req *t,
                   const mc_txn_result *r)
{
    const mc_op *ops = r->succeeded ? t->then_ops : t->else_ops;
    if (x->output == CTL_OUTPUT_JSON) {
        txn_result_json(ops, r);
        return;
    }
    printf("%s revision=%llu\n", r->succeeded ? "THEN" : "ELSE",
           (unsigned long long)r->revision);
    for (size_t i = 0; i < r->n_results; i++) {
        const mc_op_result *o = &r->results[i];
        printf("%s ", op_name(o->type));
        text_escaped(stdout, (const uint8_t *)ops[i].key, strlen(ops[i].key));
        printf(" %s", mc_errname(o->code));
        if (o->code == MC_OK && o->type == MC_OP_GET) {
            printf(" version=%llu tier=%s value=",
                   (unsigned long long)o->record.version,
                   mc_tier_name(o->record.tier));
            text_escaped(stdout, o->record.value, o->record.value_len);
        } else if (o->code == MC_OK) {
            printf(" version=%llu create_rev=%llu mod_rev=%llu",
                   (unsigned long long)o->version,
                   (unsigned long long)o->create_rev,
                   (unsigned long long)o->mod_rev);
        }
        fputc('\n', stdout);
    }
}

int ctl_print_error(const struct ctl *x, mc_err code, const mc_result *res)
{
    const char *msg = res != NULL && res->message[0] != '\0'
                          ? res->message
                          : mc_strerror(code);
    if (x->output == CTL_OUTPUT_JSON) {
        fputs("{\"error\":", stderr);
        ctl_json_cstr(stderr, mc_errname(code));
        fputs(",\"message\":", stderr);
        ctl_json_cstr(stderr, msg);
        fprintf(stderr, ",\"version\":%llu}\n",
                (unsigned long long)(res != NULL ? res->version : 0));
    } else {
        fprintf(stderr, "error: %s: %s\n", mc_errname(code), msg);
    }
    return CTL_EXIT_ERROR;
}

int ctl_finish(const struct ctl *x, int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mc_result res = {0};
        snprintf(res.message, sizeof res.message, "cannot write the output");
        return ctl_print_error(x, MC_INTERNAL, &res);
    }
    return status;
}
