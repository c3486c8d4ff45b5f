/* buf.h: the one growable byte buffer (like redis's sds): caller-owned, grown with the
 * project's allocator, with an optional size bound that refuses instead of growing. */
#ifndef NT_BUF_H
#define NT_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "status.h"

/* Caller-owned storage (nt_buf_init / nt_buf_free). data[0..len) is the content and
 * data[len] is always a NUL once anything was reserved (data is NULL before). The
 * fields may be read; write data[len..cap) only after nt_buf_reserve, then move len
 * with nt_buf_commit. One owner thread. */
typedef struct nt_buf {
    char *data;               /* nt_malloc'd; NULL until the first reserve */
    size_t len;               /* content bytes, the NUL not counted */
    size_t cap;               /* bytes allocated at data */
    size_t max;               /* largest len allowed; 0: no bound but memory */
} nt_buf;

/* Static initialiser: `nt_buf b = NT_BUF_INIT(64 << 10);`. */
#define NT_BUF_INIT(max_len) { NULL, 0, 0, (max_len) }

/* An empty buffer whose content may grow to max bytes (0: until memory runs out, which
 * aborts like every nt_malloc). Allocates nothing. */
void nt_buf_init(nt_buf *b, size_t max);
/* Frees the storage and leaves b empty (initialised again with the same max). */
void nt_buf_free(nt_buf *b);
/* Empties the content, keeping the storage for the next use. */
void nt_buf_reset(nt_buf *b);

/* Makes room for `more` bytes after the content (and the NUL). NT_ETOOBIG when len +
 * more would pass max: b is then unchanged. Aborts on out-of-memory. */
nt_status nt_buf_reserve(nt_buf *b, size_t more);
/* Counts n bytes written into the reserved room as content (n <= what was reserved)
 * and writes the NUL after them. */
void nt_buf_commit(nt_buf *b, size_t n);
/* Appends n bytes (binary-safe). NT_ETOOBIG over max, b unchanged. */
nt_status nt_buf_append(nt_buf *b, const void *p, size_t n);
/* Appends printf-formatted text. NT_ETOOBIG over max (b unchanged), NT_EINVAL for a
 * format vsnprintf refuses. */
nt_status nt_buf_append_fmt(nt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
nt_status nt_buf_append_vfmt(nt_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Hands the storage to the caller (nt_free it) and leaves b empty; *len (may be NULL)
 * gets the content length. Never NULL: an empty buffer yields "". */
char *nt_buf_detach(nt_buf *b, size_t *len);

#endif
