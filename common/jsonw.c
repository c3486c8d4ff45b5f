/* jsonw.c: see jsonw.h. Strings are escaped as jansson's dump does without flags:
 * '"' and '\\', the short escapes for \b \f \n \r \t, \u00XX for the other control
 * characters; everything else (UTF-8 included) as is. */
#include "jsonw.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>


void nt_jsonw_init(nt_jsonw *w)
{
    memset(w, 0, sizeof(*w));
    nt_buf_init(&w->buf, 0);
}

void nt_jsonw_free(nt_jsonw *w)
{
    nt_buf_free(&w->buf);
    nt_jsonw_init(w);
}

void nt_jsonw_reset(nt_jsonw *w)
{
    nt_buf_reset(&w->buf);
    w->depth = 0;
    w->filled = 0;
}

/* The buffer has no bound (max 0), so neither can refuse: only out-of-memory, which aborts. */
static void put(nt_jsonw *w, const char *s, size_t n)
{
    (void)nt_buf_append(&w->buf, s, n);
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
    (void)nt_buf_reserve(&w->buf, 6 * n + 2);   /* worst case: every byte \u00XX */
    char *start = w->buf.data + w->buf.len, *o = start;
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
    nt_buf_commit(&w->buf, (size_t)(o - start));
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
    if (w->buf.data == NULL)
        put(w, "", 0);
    if (len != NULL)
        *len = w->buf.len;
    return w->buf.data;
}
