/* actions.h: what a client frame does: authentication and the PROTOCOL.md actions,
 * the bus requests they make, and the send_message acks they wait for. */
#ifndef GW_ACTIONS_H
#define GW_ACTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "bus.h"
#include "conn.h"
#include "envelope.h"
#include "frame.h"

struct gw_user;

/* Handles one complete, valid-UTF-8 text frame of c. */
void gw_actions_frame(gw_conn *c, const char *buf, size_t len);
/* Verifies a token for c: on success publishes natter.ctl.conn open and sends
 * "connected" (and an ack when ref) once the user subject's subscription is in effect
 * at NATS; on failure sends unauthorized and closes 4001. */
void gw_actions_authenticate(gw_conn *c, const char *token, size_t len, const json_t *ref);
/* Frees the "connected" replies still waiting (process exit, after the bus is gone). */
void gw_actions_stop(void);
/* Answers every send of u's connections pending on cmid with the ack data json. */
void gw_actions_ack(gw_user *u, const char *cmid, size_t clen, const char *json, size_t jlen);
/* An ack / send_error envelope on a user subject: answers the pending send. */
void gw_actions_user_envelope(struct gw_user *u, const nt_envr *r);
/* LWS_CALLBACK_CLOSED: forgets pending sends, leaves rooms and user, publishes close. */
void gw_actions_conn_closed(gw_conn *c);
/* Answers pending sends not confirmed in time with unavailable. */
void gw_actions_sweep(int64_t now_ms);

/* Interprets an RPC reply envelope (internals.md): true when ok (r parsed, free it
 * with nt_envr_free in every case); else err holds the code and message to show. */
bool gw_rpc_ok(nt_status st, const nt_bus_msg *msg, const char *service, nt_envr *r,
               gw_error *err);
/* Sends natter.rpc.persist.history for user in room. */
nt_status gw_history_request(const char *app, const char *room, const char *user,
                             const gw_history_req *h, nt_bus_reply_cb cb, void *arg,
                             uint64_t *id_out);
/* The id of the room create_room makes: data.room_id or a new uuid. */
void gw_create_room_id(const gw_create_req *cr, char room[65]);
/* Sends natter.rpc.persist.create of room for cr, owned by owner. */
nt_status gw_create_request(const char *app, const char *owner, const char *room,
                            const gw_create_req *cr, nt_bus_reply_cb cb, void *arg,
                            uint64_t *id_out);

#endif
