/* http.h: the REST side of the listener. http.c runs one state machine per request:
 * it picks a route of the table it was given (route.h), lets the route's handler
 * answer, ask the bus or ask for the body, then writes headers and body on two
 * WRITEABLE callbacks. Never blocks. The handlers (rest.c, http_presence.c,
 * server_api.c) answer with the helpers below; routes.c holds the table. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <libwebsockets.h>

#include "buf.h"
#include "bus.h"
#include "command.h"
#include "gw.h"
#include "jwt.h"
#include "route.h"

#define GW_HTTP_MAX_BODY (64 * 1024)

/* One request, from its headers to the last byte of its answer. Handlers read wsi and
 * body and keep what they need across the body or a bus request in room, user and
 * key_app; the rest is http.c's. */
struct gw_http {
    struct lws *wsi;
    int state;                    /* http.c's: reading, waiting, headers, body */
    void (*on_body)(gw_http *h);  /* a POST's handler once its body is complete */
    bool close_after;             /* answered before reading the body: close */
    bool in_flight;               /* a bus request (req_id) is waiting */
    uint64_t req_id;
    const char *service;          /* who the bus request went to, for its errors */
    unsigned status;
    char room[65];                /* the {id} of /api/rooms/{id}/..., of a room being
                                     created, or the user of .../disconnect */
    char user[65];                /* the {user} of /api/rooms/{id}/members/{user} */
    char key_app[65];             /* server API: the app of the API key, "" for NATTER_API_KEY */
    nt_buf body;                  /* request body, at most GW_HTTP_MAX_BODY */
    unsigned char *resp;          /* LWS_PRE headroom + response body */
    size_t resp_len;
    bool preflight;               /* an OPTIONS request: CORS preflight headers */
    char origin[256];             /* the request's Origin, "" when none (CORS) */
};

/* The route table every request is matched against (routes.c gives it at start-up);
 * a request no route takes is answered 404. */
void gw_http_set_routes(gw_ctx *ctx, const gw_route *table, size_t n);

/* Handles the HTTP callback reasons for one connection whose request state lives
 * in *state (NULL between requests). Returns what the lws callback must return. */
int gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, gw_http **state,
                     void *in, size_t len);

/* ---- for handlers ---- */

/* Answers status with body[0..len) as application/json. */
void gw_http_respond(gw_http *h, unsigned status, const char *body, size_t len);
/* Answers status with obj encoded (takes the reference); NULL (a json_pack that
 * failed) answers 500 saying so. */
void gw_http_respond_json(gw_http *h, unsigned status, json_t *obj);
/* Answers the error {code, message} with code's HTTP status; the message may quote
 * client bytes (made valid UTF-8). */
void gw_http_fail(gw_http *h, gw_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Answers err (with its retry_after_ms). */
void gw_http_fail_err(gw_http *h, const gw_error *err);
/* 404 "no such resource" at once. */
void gw_http_not_found(gw_http *h, const gw_route_params *p);
/* 404 once the body was read (an unknown POST: answering first would cost the
 * connection). */
void gw_http_not_found_after_body(gw_http *h, const gw_route_params *p);

/* Verifies "Authorization: Bearer <JWT>" of an HTTP request into cl; false with
 * err (unauthorized naming why, or rate_limited) otherwise. */
bool gw_http_bearer(struct lws *wsi, nt_claims *cl, gw_error *err);
/* gw_http_bearer that answers the error itself; false once answered. */
bool gw_http_claims(gw_http *h, nt_claims *cl);
/* Copies the segment p into out when it is an id ([A-Za-z0-9_-]{1,64}); otherwise
 * answers 400 naming `what` and returns false. */
bool gw_http_id(gw_http *h, const char *what, const gw_route_param *p, char out[65]);
/* The query parameter `name` as an integer in [min, max] into *out (left as it is when
 * absent); false once answered 400. */
bool gw_http_query_int(gw_http *h, const char *name, int64_t min, int64_t max, int64_t *out);

/* POST: on_body runs once the body is complete (at once when there is none); a
 * Content-Length over GW_HTTP_MAX_BODY is answered 413 and the connection closed. */
void gw_http_read_body(gw_http *h, void (*on_body)(gw_http *h));
/* The body as JSON: an object, else NULL once answered 400 (decref the result). */
json_t *gw_http_body_object(gw_http *h);

/* After a bus request to `service` ("message store", "router") with reply callback
 * arg h: sent == NT_OK waits for the reply, anything else answers 503. */
void gw_http_await(gw_http *h, nt_status sent, const char *service);
/* The reply callback that answers 200 with the reply's `json`, or its error. */
void gw_http_json_reply(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg);

#endif
