/* presence.h: presence, typing and online users (PROTOCOL.md), through the router. */
#ifndef GW_PRESENCE_H
#define GW_PRESENCE_H

#include <stdbool.h>
#include <stdint.h>
#include "bus.h"
#include "conn.h"
#include "envelope.h"
#include "frame.h"

struct lws;

/* The "typing" action: forwards is_typing for a subscribed room, at most once per
 * user per room per second. */
void gw_presence_typing(gw_conn *c, const gw_frame *f);
/* The "presence" action: status, device, status_text. */
void gw_presence_set(gw_conn *c, const gw_frame *f);
/* The "online_users" action for a room. */
void gw_presence_online_users(gw_conn *c, const gw_frame *f);
/* c sent a message to room, unsubscribed from it or closed: its typing
 * indicator there stops (is_typing:false when one was forwarded). */
void gw_presence_typing_stop(gw_conn *c, const char *room);

/* A room event carrying `rooms` (a presence event the router published to each of
 * those rooms, in that order): true when c is subscribed to a listed room that comes
 * before `room` (or to any listed room when `room` is not listed), so c gets the
 * event there and is skipped here. False when rooms is NULL or not an array. */
bool gw_presence_heard_elsewhere(const gw_conn *c, const char *room, const msgpack_object *rooms);

/* Sends the router query `subject` {app, <key>: id, user?: asker}
 * (natter.rpc.router.online, .typing, .presence); with an asker the router first
 * checks that the asker may see the room. cb gets the reply envelope {ok, json}. */
nt_status gw_presence_query(const char *subject, const char *app, const char *key,
                            const char *id, const char *asker, nt_bus_reply_cb cb, void *arg,
                            uint64_t *id_out);

/* REST: GET /api/rooms/{id}/online, GET /api/rooms/{id}/typing and
 * GET /api/users/{id}/presence (http_presence.c). Returns false when `path` is
 * none of them (nothing done). Otherwise true and either
 *   *sent == false: answer at once with err (bad id, missing/invalid token, bus down), or
 *   *sent == true: a router query is in flight with id *req_id; cb(arg) receives its
 *   reply envelope {ok, json} exactly like natter.rpc.persist.history's (answer 200
 *   with `json`, else the error), unless cancelled with nt_bus_request_cancel.
 * The Authorization: Bearer JWT is verified here; its app scopes the query. */
bool gw_http_presence_route(struct lws *wsi, const char *path, nt_bus_reply_cb cb, void *arg,
                            uint64_t *req_id, bool *sent, gw_error *err);

/* Forwards the presence change u still holds back (its last local connection is
 * closing) and forgets u. */
void gw_presence_user_gone(gw_user *u);
/* Forwards the typing and presence changes whose interval has passed (each tick). */
void gw_presence_sweep(void);
/* Registers this module's metrics (at start-up). */
void gw_presence_metrics_init(void);

#endif
