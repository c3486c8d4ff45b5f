/* sends.h: send_message from a connection to the store, and its ack: the sends each
 * connection has awaiting their ack, answered by the ack the persister publishes (on
 * the room's event or the user subject), by a lookup of a duplicate, or by the sweep. */
#ifndef GW_SENDS_H
#define GW_SENDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "command.h"
#include "conn.h"
#include "envelope.h"

struct gw_user;

/* Creates this module's state in ctx (the sends awaiting their ack); frees it, once
 * every connection is gone. */
void gw_sends_create(gw_ctx *ctx);
void gw_sends_destroy(gw_ctx *ctx);

/* Sends s to room for c (need_sub: c must be subscribed to the room; a direct-message
 * send needs not). ref is answered with the ack once stored, or with an error. */
void gw_sends_send(gw_conn *c, const json_t *ref, const char *room, const gw_send_req *s,
                   bool need_sub);
/* Answers every send of u's connections pending on cmid with the ack data json. */
void gw_sends_ack(struct gw_user *u, const char *cmid, size_t clen, const char *json, size_t jlen);
/* An ack / send_error envelope on u's subject: answers the pending sends; false when r
 * is neither. */
bool gw_sends_envelope(struct gw_user *u, const nt_envr *r);
/* The connection is closing: its pending sends are forgotten. */
void gw_sends_conn_closed(gw_conn *c);
/* Answers pending sends not confirmed in time with unavailable. */
void gw_sends_sweep(int64_t now_ms);

#endif
