/* frame.h: client frames of PROTOCOL.md: parsing, validation and the error text
 * a client sees. Pure functions (no I/O, no globals); unit-tested in test_frame.c. */
#ifndef GW_FRAME_H
#define GW_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* Client error codes (PROTOCOL.md) and the HTTP status each maps to. */
#define GW_ERR_MAP(X)                 \
    X(BAD_REQUEST, "bad_request", 400)    \
    X(UNAUTHORIZED, "unauthorized", 401)  \
    X(FORBIDDEN, "forbidden", 403)        \
    X(NOT_FOUND, "not_found", 404)        \
    X(RATE_LIMITED, "rate_limited", 429)  \
    X(TOO_LARGE, "too_large", 413)        \
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

#define GW_ACTION_MAP(X)                \
    X(AUTH, "auth")                     \
    X(PING, "ping")                     \
    X(SUBSCRIBE, "subscribe")           \
    X(UNSUBSCRIBE, "unsubscribe")       \
    X(LEAVE, "leave")                   \
    X(SEND_MESSAGE, "send_message")     \
    X(HISTORY, "history")               \
    X(TYPING, "typing")                 \
    X(PRESENCE, "presence")             \
    X(ONLINE_USERS, "online_users")     \
    X(READ, "read")                     \
    X(DELIVERED, "delivered")           \
    X(CREATE_ROOM, "create_room")       \
    X(REFRESH, "refresh")

typedef enum {
#define GW_ACTION_ENUM(name, text) GW_A_##name,
    GW_ACTION_MAP(GW_ACTION_ENUM)
#undef GW_ACTION_ENUM
    GW_A_COUNT
} gw_action;

const char *gw_action_name(gw_action a);

typedef enum { GW_CH_NONE, GW_CH_ROOM, GW_CH_DM } gw_chan_kind;

typedef struct gw_channel {
    gw_chan_kind kind;
    char id[65];                  /* room id or dm peer user id */
} gw_channel;

typedef struct gw_frame {
    json_t *root;                 /* owns data and ref */
    gw_action action;
    gw_channel channel;           /* kind GW_CH_NONE when absent */
    const char *event;            /* NULL when absent */
    json_t *data;                 /* object, or NULL when absent */
    json_t *ref;                  /* string (<= 64 chars) or integer, or NULL */
} gw_frame;

/* Parses one text frame (need not be NUL-terminated). On failure returns false
 * with err set; f->ref is still set when the frame was an object with a valid
 * ref, so the error can carry it. Always call gw_frame_free afterwards. */
bool gw_frame_parse(const char *buf, size_t len, gw_frame *f, gw_error *err);
void gw_frame_free(gw_frame *f);

/* Rewrites a frame of the older envelope (send_message with event user_action /
 * system_request) into the native action; chat_message stays a message. A
 * system_request gets an object ref, so its ack or error is written as
 * {"event":"system_response","data":{"request_id":…}}. False with err on a bad one. */
bool gw_frame_legacy(gw_frame *f, gw_error *err);

/* Parses "room.<id>", "chat.room.<id>", "chat.<id>" or "dm.<user>". */
bool gw_channel_parse(const char *s, gw_channel *out, gw_error *err);
/* Requires a room channel: "missing field 'channel'", … (the action handlers see
 * dm.<user> channels already turned into their room by gw_dm_room_id). */
bool gw_frame_need_room(const gw_frame *f, gw_error *err);

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
bool gw_create_parse(const gw_frame *f, gw_create_req *out, gw_error *err);

/* Optional string field data.<name> of at most maxchars code points (0: no limit).
 * Absent or null -> *out NULL and true. */
bool gw_data_str(const gw_frame *f, const char *name, size_t maxchars,
                 const char **out, gw_error *err);
/* Optional non-negative integer data.<name>; absent -> *present false. */
bool gw_data_uint(const gw_frame *f, const char *name, int64_t max,
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
bool gw_send_parse(const gw_frame *f, size_t max_chars, gw_send_req *out, gw_error *err);

typedef struct gw_history_req {
    int64_t before_seq, after_seq;   /* -1 when absent (after_seq 0 = from the start) */
    int64_t limit;                   /* 1..100, default 50 */
} gw_history_req;

bool gw_history_parse(const gw_frame *f, gw_history_req *out, gw_error *err);
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
bool gw_since_seq_parse(const gw_frame *f, int64_t *since, bool *present, gw_error *err);
/* data.token of an auth frame. */
bool gw_auth_token(const gw_frame *f, const char **token, size_t *len, gw_error *err);

/* Server -> client encodings; each returns an nt_malloc'd NUL-terminated string.
 * ref may be NULL (then no "ref" member). data_json is inserted verbatim. */
char *gw_encode_error(const json_t *ref, gw_errcode code, const char *message, size_t *len);
/* The REST API's error body {"error":{"code","message","retry_after_ms"?}} (0: none);
 * like every encoder here it cannot fail, whatever message holds. */
char *gw_encode_http_error(gw_errcode code, const char *message, uint32_t retry_after_ms,
                           size_t *len);
/* The same with "retry_after_ms" in data (a rate_limited refusal). */
char *gw_encode_error_retry(const json_t *ref, gw_errcode code, const char *message,
                            uint32_t retry_after_ms, size_t *len);
char *gw_encode_ack(const json_t *ref, const char *data_json, size_t data_len, size_t *len);
/* {"event":E,"data":<data_json>} */
char *gw_encode_event(const char *event, const char *data_json, size_t *len);

#endif
