/* dialect.h: a wire dialect of the gateway. A dialect is a codec plus a small state
 * machine: it turns a client's frames into core commands (command.h) and writes what
 * the core answers and delivers in its own wire form. The transport picks a
 * connection's dialect by the WebSocket path it upgraded on; the core never looks
 * inside a dialect's bytes (docs/architecture.md, "Dialects"). */
#ifndef GW_DIALECT_H
#define GW_DIALECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "command.h"
#include "conn.h"

/* At most four: a connection keeps its dialect in 2 bits (gw_conn.dialect). */
typedef enum {
    GW_DIALECT_NATIVE,             /* docs/protocol.md, on /ws */
    GW_DIALECT_COUNT
} gw_dialect_id;

/* The ids a connection can hold; the registry has a slot for each, so any id below
 * this may be registered (the unit tests put a dialect of their own in a free one). */
#define GW_DIALECT_SLOTS 4

typedef struct gw_dialect {
    const char *name;              /* "native": logs and metrics */
    const char *path;              /* the WebSocket path it is served on ("/ws") */
    /* The WebSocket is up; token: the ?token= of the upgrade URL, or NULL. */
    void (*opened)(gw_conn *c, const char *token);
    /* One complete, valid UTF-8 text frame from the client. */
    void (*frame)(gw_conn *c, const char *buf, size_t len);
    /* The encoders of what the core sends one connection; each returns nt_malloc'd
     * bytes with *len, or NULL when this dialect sends nothing for it. ref is the
     * reference the dialect gave the core with the command (NULL: none); data_json is
     * a JSON value, inserted as it is. None may fail on what a client sent. */
    char *(*encode_ack)(const json_t *ref, const char *data_json, size_t data_len, size_t *len);
    char *(*encode_error)(const json_t *ref, gw_errcode code, const char *message,
                          int64_t retry_after_ms /* -1: none */, size_t *len);
    /* An event for this connection only; room: the room it is about, or NULL. */
    char *(*encode_event)(const char *event, const char *room, const char *data_json,
                          size_t data_len, size_t *len);
    /* A room or user event as its producer encoded it (the native frame): the bytes
     * this dialect sends instead, in a new buffer with one reference, or NULL to send
     * the native bytes as they are. Called at most once per event per gateway. */
    gw_buf *(*encode_fanout)(const gw_buf *native);
} gw_dialect;

/* Makes d the dialect id (at start-up, before the transport starts). */
void gw_dialect_register(gw_dialect_id id, const gw_dialect *d);
/* Creates the (empty) registry in ctx; frees it. */
void gw_dialects_create(gw_ctx *ctx);
void gw_dialects_destroy(gw_ctx *ctx);
/* The dialect served on a WebSocket path, or NULL. */
const gw_dialect *gw_dialect_by_path(const char *path, gw_dialect_id *id);
/* The transport's hooks (server.h): whether a WebSocket path is served; a connection
 * opened on path gets its dialect (native when none matches) and is handed to it; a
 * frame goes to the connection's dialect. */
bool gw_dialect_accepts(const char *path);
void gw_dialect_open(gw_conn *c, const char *path, const char *token);
void gw_dialect_frame(gw_conn *c, const char *buf, size_t len);
/* The dialect of a connection. */
const gw_dialect *gw_dialect_of(const gw_conn *c);

#endif
