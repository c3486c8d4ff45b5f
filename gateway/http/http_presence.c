/* http_presence.c: the presence REST calls (GET /api/rooms/{id}/online,
 * /api/rooms/{id}/typing, /api/users/{id}/presence), answered by router queries.
 * http.c owns the request state; this file only routes, authenticates and asks. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <libwebsockets.h>

#include "gw.h"
#include "http.h"
#include "jwt.h"
#include "presence.h"
#include "rpc_client.h"
#include "util.h"

static bool match(const char *path, const char *prefix, const char *suffix, const char **id,
                  size_t *idlen)
{
    size_t plen = strlen(path), a = strlen(prefix), b = strlen(suffix);
    if (plen <= a + b || strncmp(path, prefix, a) != 0 || strcmp(path + plen - b, suffix) != 0)
        return false;
    *id = path + a;
    *idlen = plen - a - b;
    return memchr(*id, '/', *idlen) == NULL;
}

bool gw_http_presence_route(struct lws *wsi, const char *path, nt_bus_reply_cb cb, void *arg,
                            uint64_t *req_id, bool *sent, gw_error *err)
{
    const char *id, *subject, *key, *what;
    size_t idlen;
    char idbuf[65];
    nt_claims cl;

    *sent = false;
    if (match(path, "/api/rooms/", "/online", &id, &idlen)) {
        subject = "natter.rpc.router.online", key = "room", what = "room";
    } else if (match(path, "/api/rooms/", "/typing", &id, &idlen)) {
        subject = "natter.rpc.router.typing", key = "room", what = "room";
    } else if (match(path, "/api/users/", "/presence", &id, &idlen)) {
        subject = "natter.rpc.router.presence", key = "user", what = "user";
    } else {
        return false;
    }
    if (!nt_valid_id(id, idlen)) {
        gw_fail(err, GW_E_BAD_REQUEST, "invalid %s id '%.*s': expected [A-Za-z0-9_-]{1,64}",
                what, (int)nt_utf8_cut(id, idlen, 64), id);
        return true;
    }
    memcpy(idbuf, id, idlen);
    idbuf[idlen] = '\0';
    if (!gw_http_bearer(wsi, &cl, err))
        return true;
    /* For a room the router first asks the persister whether the token's user
     * may see it (a private room: members only). */
    if (gw_rpc_router_query(subject, cl.app, key, idbuf, key[0] == 'r' ? cl.sub : NULL, cb, arg,
                          req_id) != NT_OK) {
        gw_fail(err, GW_E_UNAVAILABLE, "router unavailable, retry");
        return true;
    }
    *sent = true;
    return true;
}
