/* alloc.h: the one allocation wrapper: aborts on out-of-memory and counts live bytes for /metrics. */
#ifndef NT_ALLOC_H
#define NT_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/* Each returns memory or aborts the process with a log line; never NULL. */
void *nt_malloc(size_t size);
void *nt_calloc(size_t n, size_t size);
void *nt_realloc(void *ptr, size_t size);
char *nt_strdup(const char *s);
char *nt_strndup(const char *s, size_t n);   /* copies n bytes, adds a NUL */
void nt_free(void *ptr);                     /* NULL is fine */

/* Bytes currently allocated through this wrapper (thread-safe). */
uint64_t nt_alloc_used(void);

#endif
