/* envelope.h: msgpack envelopes, the format of every internal NATS message.
 *
 * An envelope is one msgpack map with string keys. The writer counts its own
 * fields (the map header is patched at nt_envw_finish), so callers just add
 * fields. Client-facing payloads travel pre-rendered as a JSON string in the
 * "json" field so a gateway never re-encodes an event per socket. */
#ifndef NT_ENVELOPE_H
#define NT_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include "buf.h"
#include "status.h"
#include "wire.h"

/* Unread-count events of one persister flush chunk, broadcast to every gateway:
 * {apps, users, jsons}, parallel arrays of strings, jsons[i] the client frame for
 * user users[i] of app apps[i]. The old name of wire.h's NT_SUBJ_UNREAD, kept while
 * the gateway and the persister still use it. */
#define NT_UNREAD_SUBJECT NT_SUBJ_UNREAD
/* A batch is published once its JSON frames reach this many bytes, or half the
 * server's max_payload when that is smaller. */
#define NT_UNREAD_BATCH_BYTES (256 * 1024)

typedef struct nt_envw {
    nt_buf buf;               /* the packed map; unbounded (its fields bound it) */
    msgpack_packer pk;
    uint32_t count;           /* fields written at the top level */
    int depth;                /* >0 while inside nt_envw_begin_array */
} nt_envw;

/* Starts an empty top-level map. Free with nt_envw_free (also after finish). */
void nt_envw_init(nt_envw *w);
void nt_envw_free(nt_envw *w);
/* Field writers: key is a C string; str with len (binary-safe) or NUL-terminated. */
void nt_envw_str(nt_envw *w, const char *key, const char *val, size_t len);
void nt_envw_cstr(nt_envw *w, const char *key, const char *val); /* NULL val writes nil */
void nt_envw_int(nt_envw *w, const char *key, int64_t val);
void nt_envw_bool(nt_envw *w, const char *key, bool val);
/* Field whose value is an array of strings. */
void nt_envw_str_array(nt_envw *w, const char *key, const char *const *vals, size_t n);
/* Patches the map header; returns the encoded bytes (owned by w) and their length. */
const char *nt_envw_finish(nt_envw *w, size_t *len);

/* A parsed envelope. It holds no pointer into itself: it may be moved by value to
 * a new owner, which then frees it (the old copy is not used or freed again). */
typedef struct nt_envr {
    msgpack_unpacked up;
    const msgpack_object_map *map;
} nt_envr;

/* Parses `len` bytes. Strings returned by getters point into `data`, which must
 * outlive the reader, and are NOT NUL-terminated. NT_EPROTO when not a map. */
nt_status nt_envr_parse(nt_envr *r, const char *data, size_t len);
void nt_envr_free(nt_envr *r);
/* Returns the string field and its length, or NULL when absent / not a string. */
const char *nt_envr_str(const nt_envr *r, const char *key, size_t *len);
/* Copies a string field into a new NUL-terminated nt_malloc'd string, or NULL. */
char *nt_envr_strdup(const nt_envr *r, const char *key);
/* True when `key` is a string equal to `val`. */
bool nt_envr_str_eq(const nt_envr *r, const char *key, const char *val);
/* Integer field into *out; false when absent or not an integer. */
bool nt_envr_int(const nt_envr *r, const char *key, int64_t *out);
bool nt_envr_bool(const nt_envr *r, const char *key, bool *out);
/* Raw access for arrays and nested values; NULL when absent. */
const msgpack_object *nt_envr_get(const nt_envr *r, const char *key);

#endif
