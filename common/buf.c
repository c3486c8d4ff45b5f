/* buf.c: the growable byte buffer: doubling growth through nt_realloc, bounded by max. */
#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

#define BUF_MIN_CAP 256

void nt_buf_init(nt_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void nt_buf_free(nt_buf *b)
{
    nt_free(b->data);
    nt_buf_init(b, b->max);
}

void nt_buf_reset(nt_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

nt_status nt_buf_reserve(nt_buf *b, size_t more)
{
    size_t limit = b->max != 0 ? b->max : SIZE_MAX / 2;
    if (more > limit || b->len > limit - more)
        return NT_ETOOBIG;
    size_t need = b->len + more + 1;          /* the NUL */
    if (need <= b->cap)
        return NT_OK;
    size_t cap = b->cap != 0 ? b->cap : BUF_MIN_CAP;
    while (cap < need)
        cap *= 2;
    if (b->max != 0 && cap > b->max + 1)
        cap = b->max + 1;
    b->data = nt_realloc(b->data, cap);
    b->cap = cap;
    b->data[b->len] = '\0';
    return NT_OK;
}

void nt_buf_commit(nt_buf *b, size_t n)
{
    b->len += n;
    b->data[b->len] = '\0';
}

nt_status nt_buf_append(nt_buf *b, const void *p, size_t n)
{
    nt_status st = nt_buf_reserve(b, n);
    if (st != NT_OK)
        return st;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    nt_buf_commit(b, n);
    return NT_OK;
}

nt_status nt_buf_append_vfmt(nt_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    char *at = b->data != NULL ? b->data + b->len : NULL;
    int n = vsnprintf(at, b->data != NULL ? b->cap - b->len : 0, fmt, ap);
    nt_status st = NT_OK;
    if (n < 0) {
        st = NT_EINVAL;
    } else if (b->data == NULL || (size_t)n >= b->cap - b->len) {
        st = nt_buf_reserve(b, (size_t)n);
        if (st == NT_OK)
            vsnprintf(b->data + b->len, b->cap - b->len, fmt, again);
    }
    va_end(again);
    if (st == NT_OK)
        nt_buf_commit(b, (size_t)n);
    else if (b->data != NULL)
        b->data[b->len] = '\0';               /* vsnprintf may have written a partial text */
    return st;
}

nt_status nt_buf_append_fmt(nt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nt_status st = nt_buf_append_vfmt(b, fmt, ap);
    va_end(ap);
    return st;
}

char *nt_buf_detach(nt_buf *b, size_t *len)
{
    if (b->data == NULL)
        (void)nt_buf_reserve(b, 0);
    char *p = b->data;
    if (len != NULL)
        *len = b->len;
    nt_buf_init(b, b->max);
    return p;
}
