/* ask.c: requests for one connection answered with the reply's json. */
#include "ask.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "ratelimit.h"
#include "reply.h"
#include "rpc_client.h"

struct gw_ask {
    char conn[17];                      /* connection id, looked up on reply */
    json_t *ref;
    const char *service;
};

gw_ask *gw_ask_begin(gw_conn *c, const json_t *ref, const char *service)
{
    if (!gw_limit_req_begin(c, ref))
        return NULL;
    gw_ask *a = nt_calloc(1, sizeof *a);
    memcpy(a->conn, c->id, sizeof a->conn);
    a->ref = ref ? json_incref((json_t *)ref) : NULL;
    a->service = service;
    return a;
}

static void ask_free(gw_ask *a)
{
    json_decref(a->ref);
    nt_free(a);
}

void gw_ask_answered(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_ask *a = arg;
    gw_conn *c = gw_conn_find(a->conn);
    nt_envr r;
    gw_error err;
    size_t len = 0;
    bool ok = gw_rpc_ok(st, msg, a->service, &r, &err);
    const char *json = ok ? nt_envr_str(&r, "json", &len) : NULL;
    gw_limit_req_end(c);
    if (ok && !json)
        gw_fail(&err, GW_E_INTERNAL, "malformed reply from %s", a->service);
    if (c && json)
        gw_reply_ack(c, a->ref, json, len);
    else if (c)
        gw_reply_fail(c, a->ref, &err);
    nt_envr_free(&r);
    ask_free(a);
}

void gw_ask_unsent(gw_conn *c, gw_ask *a)
{
    char text[64];
    gw_limit_req_end(c);
    snprintf(text, sizeof text, "%s unavailable, retry", a->service);
    gw_reply_error(c, a->ref, GW_E_UNAVAILABLE, text);
    ask_free(a);
}
