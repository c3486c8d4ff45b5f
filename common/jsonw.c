/* jsonw.c: see jsonw.h. Strings are escaped as jansson's dump does without flags:
 * '"' and '\\', the short escapes for \b \f \n \r \t, \u00XX for the other control
 * characters; everything else (UTF-8 included) as is. */
#include "jsonw.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

void nt_jsonw_init(nt_jsonw *w)
{
    memset(w, 0, sizeof(*w));
}

void nt_jsonw_free(nt_jsonw *w)
{
    nt_free(w->buf);
    memset(w, 0, sizeof(*w));
}

void nt_jsonw_reset(nt_jsonw *w)
{
    w->len = 0;
    w->depth = 0;
    w->filled = 0;
    if (w->buf != NULL)
        w->buf[0] = '\0';
}

static void reserve(nt_jsonw *w, size_t more)
{
    if (w->len + more + 1 <= w->cap)
        return;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + more + 1)
        cap *= 2;
    w->buf = nt_realloc(w->buf, cap);
    w->cap = cap;
}

static void put(nt_jsonw *w, const char *s, size_t n)
{
    reserve(w, n);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

void nt_jsonw_raw(nt_jsonw *w, const char *json, size_t len)
{
    put(w, json, len);
}

void nt_jsonw_open(nt_jsonw *w)
{
    put(w, "{", 1);
    w->depth++;
    w->filled &= ~(1u << w->depth);
}

void nt_jsonw_close(nt_jsonw *w)
{
    put(w, "}", 1);
    w->depth--;
}

void nt_jsonw_key(nt_jsonw *w, const char *key)
{
    uint32_t bit = 1u << w->depth;
    if (w->filled & bit)
        put(w, ",", 1);
    w->filled |= bit;
    put(w, "\"", 1);
    put(w, key, strlen(key));
    put(w, "\":", 2);
}

void nt_jsonw_str(nt_jsonw *w, const char *s)
{
    if (s == NULL) {
        put(w, "null", 4);
        return;
    }
    size_t n = strlen(s);
    reserve(w, 6 * n + 2);                /* worst case: every byte \u00XX */
    char *o = w->buf + w->len;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            o += snprintf(o, 6, "u%04X", c);
            break;
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
    w->buf[w->len] = '\0';
}

void nt_jsonw_int(nt_jsonw *w, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRId64, v);
    put(w, num, (size_t)n);
}

void nt_jsonw_kstr(nt_jsonw *w, const char *key, const char *s)
{
    nt_jsonw_key(w, key);
    nt_jsonw_str(w, s);
}

void nt_jsonw_kint(nt_jsonw *w, const char *key, int64_t v)
{
    nt_jsonw_key(w, key);
    nt_jsonw_int(w, v);
}

const char *nt_jsonw_text(nt_jsonw *w, size_t *len)
{
    if (w->buf == NULL)
        put(w, "", 0);
    if (len != NULL)
        *len = w->len;
    return w->buf;
}
