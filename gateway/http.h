/* http.h: the REST side of the listener: health, history, dev tokens. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <libwebsockets.h>

typedef struct gw_http gw_http;

/* Handles the HTTP callback reasons for one connection whose request state lives
 * in *state (NULL between requests). Returns what the lws callback must return. */
int gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, gw_http **state,
                     void *in, size_t len);

#endif
