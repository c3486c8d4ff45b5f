/* session.h: who a connection is: authentication (and the `connected` promise), token
 * refresh and expiry, what reaches a user's subject for the user, and the end. */
#ifndef GW_SESSION_H
#define GW_SESSION_H

#include <stddef.h>
#include <jansson.h>
#include "conn.h"
#include "envelope.h"

struct gw_user;

/* Close code of connections closed by POST /api/server/users/{id}/disconnect. */
#define GW_CLOSE_SERVER_DISCONNECT 4003

/* Verifies a token for c: on success publishes natter.ctl.conn open and sends
 * "connected" (and an ack when ref) once the user subject's subscription is in effect
 * at NATS; on failure sends unauthorized and closes 4001. */
void gw_session_authenticate(gw_conn *c, const char *token, size_t len, const json_t *ref);
/* refresh: a new token for the same user and app moves the connection's expiry. */
void gw_session_refresh(gw_conn *c, const json_t *ref, const char *token, size_t len);
/* An envelope on u's subject that is not an event: disconnect, revoke, ack, send_error. */
void gw_session_user_envelope(struct gw_user *u, const nt_envr *r);
/* The connection closed (transport): forgets pending sends, leaves rooms and user,
 * publishes natter.ctl.conn close. */
void gw_session_closed(gw_conn *c);
/* What the deadlines of conn.c do to the client (gw_conn_init). */
extern const gw_conn_hooks gw_session_conn_hooks;
/* Creates this module's state in ctx (the "connected" replies waiting for a barrier). */
void gw_session_create(gw_ctx *ctx);
/* Frees it with the replies still waiting (process exit); a barrier answered later
 * finds nothing to do. */
void gw_session_destroy(gw_ctx *ctx);

#endif
