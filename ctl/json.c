/* JSON pieces of memcoordctl: strings escaped per RFC 8259, the UTF-8
 * check that decides between "value" and "value_b64", and base64. */
#include <string.h>

#include "ctl.h"

/* Length of the valid UTF-8 sequence at s, or 0: overlong forms,
 * surrogates and code points above U+10FFFF are invalid, as in the node's
 * key check. */
static size_t utf8_len(const uint8_t *s, size_t len)
{
    uint8_t c = s[0];
    if (c < 0x80) {
        return 1;
    }
    size_t n;
    uint32_t cp;
    uint32_t min;
    if ((c & 0xe0) == 0xc0) {
        n = 2, cp = c & 0x1fu, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, cp = c & 0x0fu, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, cp = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n > len) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

bool ctl_utf8_valid(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_len(s + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

void ctl_json_str(FILE *f, const uint8_t *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        size_t n = utf8_len(s + i, len - i);
        if (n == 0) {
            fputs("\\ufffd", f); /* not UTF-8: JSON cannot carry it */
            i++;
        } else if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else {
            fwrite(s + i, 1, n, f);
            i += n;
        }
    }
    fputc('"', f);
}

void ctl_json_cstr(FILE *f, const char *s)
{
    ctl_json_str(f, (const uint8_t *)s, s != NULL ? strlen(s) : 0);
}

void ctl_json_b64(FILE *f, const uint8_t *s, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputc('"', f);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        fputc(alphabet[v >> 18], f);
        fputc(alphabet[(v >> 12) & 63], f);
        fputc(alphabet[(v >> 6) & 63], f);
        fputc(alphabet[v & 63], f);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        fputc(alphabet[v >> 18], f);
        fputc(alphabet[(v >> 12) & 63], f);
        fputs("==", f);
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        fputc(alphabet[v >> 18], f);
        fputc(alphabet[(v >> 12) & 63], f);
        fputc(alphabet[(v >> 6) & 63], f);
        fputc('=', f);
    }
    fputc('"', f);
}
