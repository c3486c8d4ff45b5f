/* jsonw.h: JSON text of a known shape written straight into a buffer, without a
 * jansson tree: for the persister's per-message room event and ack, where building
 * and dumping jansson objects took 42 % of its CPU (BENCHMARKS.md). Parsing, and
 * everything not per message, stays with jansson. The text is what json_dumps with
 * JSON_COMPACT gives for the same object (tests/unit/test_jsonw.c checks it
 * against jansson). */
#ifndef NT_JSONW_H
#define NT_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct nt_jsonw {
    nt_buf buf;               /* the text; unbounded (its input bounds it) */
    unsigned depth;           /* open objects */
    uint32_t filled;          /* bit d: the object at depth d has a member */
} nt_jsonw;

void nt_jsonw_init(nt_jsonw *w);
/* Frees the text. */
void nt_jsonw_free(nt_jsonw *w);
/* Empties it for the next text, keeping the buffer. */
void nt_jsonw_reset(nt_jsonw *w);

/* Opens an object: as a value after nt_jsonw_key, or the top level. At most 31 deep. */
void nt_jsonw_open(nt_jsonw *w);
void nt_jsonw_close(nt_jsonw *w);
/* The next member's key (plain ASCII without quotes or backslashes). */
void nt_jsonw_key(nt_jsonw *w, const char *key);
/* Values. s must be valid UTF-8 (the caller has checked it); NULL writes null. */
void nt_jsonw_str(nt_jsonw *w, const char *s);
void nt_jsonw_int(nt_jsonw *w, int64_t v);
/* A member: key, then the string (NULL: null) or integer. */
void nt_jsonw_kstr(nt_jsonw *w, const char *key, const char *s);
void nt_jsonw_kint(nt_jsonw *w, const char *key, int64_t v);
/* Text that is already JSON, copied as is. */
void nt_jsonw_raw(nt_jsonw *w, const char *json, size_t len);

/* The text so far, NUL-terminated; owned by w. */
const char *nt_jsonw_text(nt_jsonw *w, size_t *len);

#endif
