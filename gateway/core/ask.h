/* ask.h: a request made on behalf of one connection whose ok reply's "json" is the
 * answer to the command (history, read and delivered marks, online_users). The reply
 * finds its connection again by id: after a close it is dropped. */
#ifndef GW_ASK_H
#define GW_ASK_H

#include <jansson.h>
#include "bus.h"
#include "conn.h"

typedef struct gw_ask gw_ask;

/* Counts a request in flight for c (NATTER_MAX_REQUESTS_PER_CONN): NULL when over it,
 * and then c has been answered on ref. service names the one asked in errors
 * ("message store", "router"; a string constant). */
gw_ask *gw_ask_begin(gw_conn *c, const json_t *ref, const char *service);
/* The reply callback to hand the request with the gw_ask as its arg: answers ref with
 * the reply's json, or with its error, and frees the gw_ask. */
void gw_ask_answered(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg);
/* The request was not sent (st from the bus): answers ref with unavailable and frees. */
void gw_ask_unsent(gw_conn *c, gw_ask *a);

#endif
