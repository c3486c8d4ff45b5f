/* fuzz_check.h: the properties the harnesses assert; a broken one abort()s, which
 * libFuzzer records as a crash. Header-only: each harness is one program. */
#ifndef NT_FUZZ_CHECK_H
#define NT_FUZZ_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "alloc.h"
#include "frame.h"
#include "util.h"

/* Aborts with the failed property (printf-style) when cond is false. */
#define FZ_CHECK(cond, ...)                                                        \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "fuzz check failed at %s:%d: ", __FILE__, __LINE__);   \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
            abort();                                                               \
        }                                                                          \
    } while (0)

/* s as an encoder returned it: not NULL, len bytes up to its NUL, one JSON object
 * (RFC 8259, so \u0000 is allowed). Returns that object; json_decref it. */
static inline json_t *fz_json(const char *s, size_t len, const char *what)
{
    json_error_t je;
    FZ_CHECK(s != NULL, "%s returned NULL", what);
    FZ_CHECK(strlen(s) == len, "%s: length %zu but %zu bytes before the NUL", what, len,
             strlen(s));
    json_t *j = json_loadb(s, len, JSON_ALLOW_NUL, &je);
    FZ_CHECK(j != NULL, "%s: not JSON (%s, column %d): %.300s", what, je.text, je.column, s);
    FZ_CHECK(json_is_object(j), "%s: not a JSON object: %.300s", what, s);
    return j;
}

/* An error as a client reads it: a known code and a message of valid UTF-8 that fits
 * its buffer. */
static inline void fz_check_gw_error(const gw_error *err)
{
    size_t n = strnlen(err->message, sizeof err->message);
    FZ_CHECK((unsigned)err->code < GW_E_COUNT, "error code %d out of range", (int)err->code);
    FZ_CHECK(n < sizeof err->message, "error message not NUL-terminated");
    FZ_CHECK(nt_valid_utf8(err->message, n), "error message is not UTF-8: %s", err->message);
}

/* The ref a client sent comes back in its answer j: as "ref", or for the older
 * envelope (an object ref) as data.request_id. */
static inline void fz_check_ref(const json_t *j, const json_t *ref, const char *what)
{
    if (json_is_object(ref)) {
        json_t *got = json_object_get(json_object_get(j, "data"), "request_id");
        FZ_CHECK(json_equal(got, json_object_get(ref, "request_id")),
                 "%s: data.request_id is not the system_request's request_id", what);
    } else if (ref) {
        FZ_CHECK(json_equal(json_object_get(j, "ref"), ref), "%s: ref not echoed", what);
    } else {
        FZ_CHECK(json_object_get(j, "ref") == NULL, "%s: a ref nobody sent", what);
    }
}

/* gw_encode_error(ref, err) as the client gets it: valid JSON, the ref back, the
 * code's name and exactly err's message. */
static inline void fz_check_error_reply(const json_t *ref, const gw_error *err)
{
    size_t len = 0;
    fz_check_gw_error(err);
    char *s = gw_encode_error(ref, err->code, err->message, &len);
    json_t *j = fz_json(s, len, "gw_encode_error");
    fz_check_ref(j, ref, "gw_encode_error");
    json_t *d = json_object_get(j, "data");
    if (json_is_object(ref))
        d = json_object_get(d, "error");
    FZ_CHECK(json_is_string(json_object_get(d, "message")) &&
                 strcmp(json_string_value(json_object_get(d, "message")), err->message) == 0,
             "gw_encode_error: message changed: %s", s);
    FZ_CHECK(json_is_string(json_object_get(d, "code")) &&
                 strcmp(json_string_value(json_object_get(d, "code")),
                        gw_errcode_name(err->code)) == 0,
             "gw_encode_error: wrong code: %s", s);
    json_decref(j);
    nt_free(s);
}

/* A mark request gw_mark_parse accepted: either seq >= 0, or 1..100 ids of 1..64 bytes. */
static inline void fz_check_mark(const gw_mark_req *m, bool allow_ids)
{
    if (m->nids == 0) {
        FZ_CHECK(m->seq >= 0, "mark accepted without seq or ids");
        return;
    }
    FZ_CHECK(allow_ids && m->seq == -1 && m->nids <= GW_READ_MAX_IDS, "mark: bad ids/seq mix");
    for (size_t i = 0; i < m->nids; i++)
        FZ_CHECK(m->ids[i] && strlen(m->ids[i]) >= 1 && strlen(m->ids[i]) <= 64,
                 "mark: id %zu of a wrong length", i);
}

/* A create_room request gw_create_parse accepted, as the persister will be asked. */
static inline void fz_check_create(const gw_create_req *cr)
{
    if (cr->room_id) {
        FZ_CHECK(nt_valid_id(cr->room_id, strlen(cr->room_id)), "create: bad room_id accepted");
        FZ_CHECK(strncmp(cr->room_id, GW_DM_PREFIX, strlen(GW_DM_PREFIX)) != 0,
                 "create: a dm_ room_id accepted");
    }
    if (cr->name)
        FZ_CHECK(nt_utf8_len(cr->name, strlen(cr->name)) <= 128, "create: name too long");
    if (cr->access_code) {
        size_t chars = nt_utf8_len(cr->access_code, strlen(cr->access_code));
        FZ_CHECK(cr->is_private && chars >= 4 && chars <= 128, "create: bad access_code accepted");
    }
    FZ_CHECK(cr->nmembers <= GW_CREATE_MAX_MEMBERS, "create: too many members");
    for (size_t i = 0; i < cr->nmembers; i++)
        FZ_CHECK(nt_valid_id(cr->members[i], strlen(cr->members[i])), "create: bad member id");
}

#endif
