/* reply.h: what the core sends one connection — the answer to a command, an error, an
 * event — written in the connection's dialect (dialect.h). */
#ifndef GW_REPLY_H
#define GW_REPLY_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "command.h"
#include "conn.h"
#include "dialect.h"

/* Creates this module's state in ctx: registers natter_gateway_errors_total{code}
 * (at start-up); frees it. */
void gw_reply_create(gw_ctx *ctx);
void gw_reply_destroy(gw_ctx *ctx);
/* Counts one error sent to a client, by code (also the REST side's). */
void gw_reply_count(gw_errcode code);
/* The answer to a command that carried ref, with data_json (a JSON value); without
 * ref nothing is sent. */
void gw_reply_ack(gw_conn *c, const json_t *ref, const char *data_json, size_t len);
/* The same with a jansson value; takes ownership of data. */
void gw_reply_ack_obj(gw_conn *c, const json_t *ref, json_t *data);
/* An error (ref may be NULL), counted by code in natter_gateway_errors_total. */
void gw_reply_error(gw_conn *c, const json_t *ref, gw_errcode code, const char *message);
/* The same for an error filled by a validator. */
void gw_reply_fail(gw_conn *c, const json_t *ref, const gw_error *err);
/* The same with retry_after_ms (a rate_limited refusal). */
void gw_reply_error_retry(gw_conn *c, const json_t *ref, gw_errcode code, const char *message,
                          uint32_t retry_after_ms);
/* An event for c alone (room: the room it is about, or NULL). */
void gw_reply_event(gw_conn *c, const char *event, const char *room, const char *data_json,
                    size_t len);
/* A room or user event in its producer's (native) encoding, for c alone. */
void gw_reply_native(gw_conn *c, const char *json, size_t len);

/* The fan-out of one event to many connections, encoded at most once per dialect. */
typedef struct gw_fanout {
    gw_buf *native;                          /* the producer's bytes (one reference held) */
    gw_buf *enc[GW_DIALECT_SLOTS];                          /* per dialect: its bytes, once asked */
    uint8_t done;                            /* bit per dialect: enc[] computed */
} gw_fanout;

/* Starts a fan-out of b (retains it). */
void gw_fanout_init(gw_fanout *f, gw_buf *b);
/* The buffer to queue for c (borrowed: valid until gw_fanout_free). */
gw_buf *gw_fanout_for(gw_fanout *f, const gw_conn *c);
/* Releases every buffer of f. */
void gw_fanout_free(gw_fanout *f);

#endif
