/* command.h: what a client asks the core to do, the same whichever dialect (or REST)
 * carried it: the client error codes, and each command's checked arguments, validated
 * from the command's JSON object (a frame's data, a REST body). Pure functions (no
 * I/O, no globals); unit-tested in test_frame.c. */
#ifndef GW_COMMAND_H
#define GW_COMMAND_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* Client error codes (docs/protocol.md, "Frames and errors") and the HTTP status
 * each maps to. */
#define GW_ERR_MAP(X)                 \
    X(BAD_REQUEST, "bad_request", 400)    \
    X(UNAUTHORIZED, "unauthorized", 401)  \
    X(FORBIDDEN, "forbidden", 403)        \
    X(NOT_FOUND, "not_found", 404)        \
    X(RATE_LIMITED, "rate_limited", 429)  \
    X(TOO_LARGE, "too_large", 413)        \
    X(CONFLICT, "conflict", 409)          \
    X(UNAVAILABLE, "unavailable", 503)    \
    X(INTERNAL, "internal", 500)

typedef enum {
#define GW_ERR_ENUM(name, text, http) GW_E_##name,
    GW_ERR_MAP(GW_ERR_ENUM)
#undef GW_ERR_ENUM
    GW_E_COUNT
} gw_errcode;

const char *gw_errcode_name(gw_errcode c);   /* "bad_request", …; never NULL */
int gw_errcode_http(gw_errcode c);           /* 400, …; 500 for unknown */
/* Code from its name (as carried in reply envelopes); GW_E_INTERNAL when unknown. */
gw_errcode gw_errcode_parse(const char *name, size_t len);

typedef struct gw_error {
    gw_errcode code;
    uint32_t retry_after_ms;      /* rate_limited: when to retry; 0 otherwise */
    char message[200];
} gw_error;

/* Fills err and returns false, so validators can `return gw_fail(err, …)`. The message
 * is always valid UTF-8: a byte that is not (client bytes quoted in it) becomes '?',
 * and a message longer than the buffer is cut on a character boundary. */
bool gw_fail(gw_error *err, gw_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool gw_vfail(gw_error *err, gw_errcode code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* "object", "array", "string", ... for error messages. */
const char *gw_json_type_text(const json_t *v);

/* Room ids starting with this belong to direct messages: never created otherwise. */
#define GW_DM_PREFIX "dm_"
/* The room of the direct messages between users a and b of app (order does not
 * matter): "dm_" + the first 30 hex digits of sha256(app "\0" min(a,b) "\0" max(a,b)). */
void gw_dm_room_id(const char *app, const char *a, const char *b, char out[65]);

#define GW_CREATE_MAX_MEMBERS 1000

typedef struct gw_create_req {
    const char *room_id;          /* NULL when absent: the caller generates one */
    const char *name;             /* NULL when absent; <= 128 code points */
    bool is_private;              /* data.visibility "private" (else "public") */
    const char *access_code;      /* NULL when absent; 4..128 code points, private only */
    const char *members[GW_CREATE_MAX_MEMBERS]; /* valid user ids, borrowed */
    size_t nmembers;
} gw_create_req;

/* Validates create_room data: visibility required (public|private), room_id
 * ([A-Za-z0-9_-]{1,64}, not starting with dm_), name, members, access_code. */
bool gw_create_parse(const json_t *data, gw_create_req *out, gw_error *err);

/* Optional string field data.<name> of at most maxchars code points (0: no limit).
 * Absent or null -> *out NULL and true. */
bool gw_data_str(const json_t *data, const char *name, size_t maxchars,
                 const char **out, gw_error *err);
/* Optional non-negative integer data.<name>; absent -> *present false. */
bool gw_data_uint(const json_t *data, const char *name, int64_t max,
                  int64_t *out, bool *present, gw_error *err);

typedef struct gw_send_req {
    const char *message;          /* borrowed from the frame */
    size_t message_len;           /* bytes */
    const char *message_type;     /* "text" when absent */
    const char *reply_to;         /* NULL when absent */
    const char *client_msg_id;    /* NULL when absent: the caller generates one */
} gw_send_req;

#define GW_CMID_MAX_BYTES 64

/* Validates send_message data: message 1..max_chars code points (too_large above),
 * message_type <= 32 and not reserved ("system"), reply_to <= 64, client_msg_id
 * <= 64 characters and GW_CMID_MAX_BYTES bytes without control chars. */
bool gw_send_parse(const json_t *data, size_t max_chars, gw_send_req *out, gw_error *err);

typedef struct gw_history_req {
    int64_t before_seq, after_seq;   /* -1 when absent (after_seq 0 = from the start) */
    int64_t limit;                   /* 1..100, default 50 */
} gw_history_req;

bool gw_history_parse(const json_t *data, gw_history_req *out, gw_error *err);
#define GW_READ_MAX_IDS 100

typedef struct gw_mark_req {
    int64_t seq;                     /* -1 when message_ids is used */
    const char *ids[GW_READ_MAX_IDS]; /* borrowed from the data object */
    size_t nids;
} gw_mark_req;

/* read data (a JSON object: frame data or REST body): "seq" (integer >= 0) or
 * "message_ids" (1..100 strings of at most 64 bytes); exactly one of them. With
 * allow_ids false (delivered) only "seq". `what` prefixes field names in errors
 * ("data." for frames, "" for REST bodies). */
bool gw_mark_parse(const json_t *data, bool allow_ids, const char *what, gw_mark_req *out,
                   gw_error *err);
/* subscribe data.since_seq: integer >= 0; absent -> *present false. */
bool gw_since_seq_parse(const json_t *data, int64_t *since, bool *present, gw_error *err);

/* typing data: "is_typing" (a boolean, required). */
bool gw_typing_parse(const json_t *data, bool *on, gw_error *err);

typedef struct gw_presence_req {
    const char *status;           /* online, away, busy or offline */
    const char *device;           /* NULL when absent; <= 64 code points */
    const char *status_text;      /* NULL when absent; <= 140 code points */
} gw_presence_req;

/* presence data: status (required), device, status_text (borrowed; no NUL inside). */
bool gw_presence_parse(const json_t *data, gw_presence_req *out, gw_error *err);

#endif
