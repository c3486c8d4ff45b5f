/* frame.h: the native protocol's frames (docs/protocol.md): parsing a client frame's
 * envelope and the JSON the server sends back. Pure functions (no I/O, no globals);
 * unit-tested in test_frame.c. */
#ifndef GW_FRAME_H
#define GW_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "command.h"

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
/* {"event":E,"channel":"room.<room>","data":<data_json>} (room: a valid room id) */
char *gw_encode_room_event(const char *event, const char *room, const char *data_json,
                           size_t data_len, size_t *len);

#endif
