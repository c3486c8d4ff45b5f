/* alloc.c: the allocation wrapper: aborts on out-of-memory, counts live bytes. */
#include "alloc.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Stored before every block so nt_free knows what to subtract; the union keeps
 * the user's block as aligned as malloc's own (16 bytes on x86-64). */
typedef union alloc_hdr {
    size_t size;
    max_align_t align;
} alloc_hdr;

static _Atomic uint64_t alloc_used;

static void __attribute__((noreturn)) alloc_oom(size_t size)
{
    nt_log(NT_LOG_ERROR, "out of memory allocating %zu bytes", size);
    abort();
}

static void *alloc_finish(alloc_hdr *h, size_t size)
{
    h->size = size;
    atomic_fetch_add_explicit(&alloc_used, size, memory_order_relaxed);
    return h + 1;
}

void *nt_malloc(size_t size)
{
    if (size > SIZE_MAX - sizeof(alloc_hdr))
        alloc_oom(size);
    alloc_hdr *h = malloc(sizeof(alloc_hdr) + size);
    if (h == NULL)
        alloc_oom(size);
    return alloc_finish(h, size);
}

void *nt_calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total) || total > SIZE_MAX - sizeof(alloc_hdr))
        alloc_oom(SIZE_MAX);
    alloc_hdr *h = calloc(1, sizeof(alloc_hdr) + total);
    if (h == NULL)
        alloc_oom(total);
    return alloc_finish(h, total);
}

void *nt_realloc(void *ptr, size_t size)
{
    if (ptr == NULL)
        return nt_malloc(size);
    if (size > SIZE_MAX - sizeof(alloc_hdr))
        alloc_oom(size);
    alloc_hdr *old = (alloc_hdr *)ptr - 1;
    size_t old_size = old->size;
    alloc_hdr *h = realloc(old, sizeof(alloc_hdr) + size);
    if (h == NULL)
        alloc_oom(size);
    atomic_fetch_sub_explicit(&alloc_used, old_size, memory_order_relaxed);
    return alloc_finish(h, size);
}

char *nt_strdup(const char *s)
{
    return nt_strndup(s, strlen(s));
}

char *nt_strndup(const char *s, size_t n)
{
    if (n == SIZE_MAX)
        alloc_oom(n);
    char *d = nt_malloc(n + 1);
    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void nt_free(void *ptr)
{
    if (ptr == NULL)
        return;
    alloc_hdr *h = (alloc_hdr *)ptr - 1;
    atomic_fetch_sub_explicit(&alloc_used, h->size, memory_order_relaxed);
    free(h);
}

uint64_t nt_alloc_used(void)
{
    return atomic_load_explicit(&alloc_used, memory_order_relaxed);
}
