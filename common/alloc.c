/* alloc.c: the allocation wrapper: aborts on out-of-memory, counts live bytes.
 * The count uses malloc_usable_size, so blocks carry no header of ours: a
 * gateway holds several small blocks per idle connection, and a 16-byte header
 * on each would often push it into the next malloc size class. */
#include "alloc.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static _Atomic uint64_t alloc_used;

static void __attribute__((noreturn)) alloc_oom(size_t size)
{
    nt_log(NT_LOG_ERROR, "out of memory allocating %zu bytes", size);
    abort();
}

static void *alloc_finish(void *p)
{
    atomic_fetch_add_explicit(&alloc_used, malloc_usable_size(p), memory_order_relaxed);
    return p;
}

void *nt_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        alloc_oom(size);
    return alloc_finish(p);
}

void *nt_calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
        alloc_oom(SIZE_MAX);
    void *p = calloc(1, total ? total : 1);
    if (p == NULL)
        alloc_oom(total);
    return alloc_finish(p);
}

void *nt_realloc(void *ptr, size_t size)
{
    if (ptr == NULL)
        return nt_malloc(size);
    size_t old_size = malloc_usable_size(ptr);
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        alloc_oom(size);
    atomic_fetch_sub_explicit(&alloc_used, old_size, memory_order_relaxed);
    return alloc_finish(p);
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
    atomic_fetch_sub_explicit(&alloc_used, malloc_usable_size(ptr), memory_order_relaxed);
    free(ptr);
}

uint64_t nt_alloc_used(void)
{
    return atomic_load_explicit(&alloc_used, memory_order_relaxed);
}
