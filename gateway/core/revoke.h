/* revoke.h: tokens revoked with the server API's disconnect "revoke":true. Every
 * gateway keeps the cluster's revocations in memory — (app, user) → the moment
 * before which (iat) that user's tokens are refused — hearing new ones on
 * natter.ctl.revoke and loading the router's list (Redis, router/revoke.c) at start
 * and until it got it. An entry is dropped NATTER_MAX_TOKEN_LIFETIME_S after it was
 * made: every token it refuses has expired by then. */
#ifndef GW_REVOKE_H
#define GW_REVOKE_H

#include <stdbool.h>
#include <stdint.h>
#include "jwt.h"
#include "status.h"

typedef struct gw_ctx gw_ctx;

/* Creates this module's state in ctx (the table), subscribes natter.ctl.revoke and
 * asks for the list; NT_EUNAVAIL (and no state) when the subscription failed. */
nt_status gw_revoke_start(gw_ctx *ctx);
/* Asks for the list again while it has not come (each tick; at most every 2 s). */
void gw_revoke_tick(int64_t now_ms);
/* True when cl's token was issued (iat; a token without iat counts as issued at 0)
 * at or before its user's revocation. */
bool gw_revoke_refused(const nt_claims *cl);
/* Publishes the revocation of app/user for tokens issued up to `before` (s). */
nt_status gw_revoke_publish(const char *app, const char *user, int64_t before);
/* Frees the table and the state (process exit); a list answered later is dropped. */
void gw_revoke_stop(gw_ctx *ctx);

#endif
