/* http.h: the REST side of the listener: health, history, dev tokens. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stdbool.h>
#include <libwebsockets.h>

#include "frame.h"
#include "jwt.h"

typedef struct gw_http gw_http;

/* Handles the HTTP callback reasons for one connection whose request state lives
 * in *state (NULL between requests). Returns what the lws callback must return. */
int gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, gw_http **state,
                     void *in, size_t len);

/* Verifies "Authorization: Bearer <JWT>" of an HTTP request into cl; false with
 * err (unauthorized, naming why) otherwise. */
bool gw_http_bearer(struct lws *wsi, nt_claims *cl, gw_error *err);

#endif
