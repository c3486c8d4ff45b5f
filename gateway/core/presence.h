/* presence.h: presence, typing and online users (docs/protocol.md), through the router. */
#ifndef GW_PRESENCE_H
#define GW_PRESENCE_H

#include <stdbool.h>
#include <stdint.h>
#include "bus.h"
#include "conn.h"
#include "envelope.h"
#include "command.h"


/* typing: forwards on for a subscribed room, at most one change per user per room per
 * NATTER_TYPING_INTERVAL_MS (the latest held for the interval's end); acks ref. */
void gw_presence_typing(gw_conn *c, const json_t *ref, const char *room, bool on);
/* presence: status, device, status_text (validated), at most one change per user per
 * NATTER_PRESENCE_INTERVAL_MS (the latest held); acks ref. */
void gw_presence_set(gw_conn *c, const json_t *ref, const gw_presence_req *p);
/* online_users of a subscribed room: ref gets the router's answer. */
void gw_presence_online_users(gw_conn *c, const json_t *ref, const char *room);
/* c sent a message to room, unsubscribed from it or closed: its typing
 * indicator there stops (is_typing:false when one was forwarded). */
void gw_presence_typing_stop(gw_conn *c, const char *room);

/* Forwards the presence change u still holds back (its last local connection is
 * closing) and forgets u. */
void gw_presence_user_gone(gw_user *u);
/* Forwards the typing and presence changes whose interval has passed (each tick). */
void gw_presence_sweep(void);
/* Creates this module's state in ctx (the throttles) and registers its metrics (at
 * start-up); frees it, once every user is gone. */
void gw_presence_create(gw_ctx *ctx);
void gw_presence_destroy(gw_ctx *ctx);

#endif
