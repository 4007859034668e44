/* JSON pieces of memcoordctl: strings escaped per RFC 8259 and base64.
 * UTF-8 is checked by the library (mc_utf8_valid), as the node checks it. */
#include <string.h>

#include "ctl.h"

void ctl_json_str(FILE *f, const uint8_t *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        size_t n = mc_utf8_seq_len(s + i, len - i);
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
