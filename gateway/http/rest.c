/* rest.c: the clients' REST calls (rest.h). Each checks its path ids and its token on
 * the headers, then asks the persister (rpc_client.h) and answers with its reply. */
#include "rest.h"

#include <string.h>

#include "alloc.h"
#include "gw.h"
#include "http.h"
#include "rpc_client.h"
#include "util.h"

#define GW_DEV_TOKEN_TTL_S (24 * 3600)
#define STORE "message store"

void gw_rest_healthz(gw_http *h, const gw_route_params *p)
{
    (void)p;
    gw_http_respond(h, 200, "{\"status\":\"ok\"}", 15);
}

void gw_rest_readyz(gw_http *h, const gw_route_params *p)
{
    (void)p;
    if (nt_bus_connected(gw->bus) && !gw->stopping)
        return gw_http_respond(h, 200, "{\"status\":\"ready\"}", 18);
    gw_http_fail(h, GW_E_UNAVAILABLE, "%s", gw->stopping ? "shutting down" : "NATS is not connected");
}

void gw_rest_history(gw_http *h, const gw_route_params *p)
{
    nt_claims cl;
    gw_history_req q = { .before_seq = -1, .after_seq = -1, .limit = 50 };
    if (!gw_http_id(h, "room", &p->v[0], h->room) || !gw_http_claims(h, &cl) ||
        !gw_http_query_int(h, "before_seq", 0, INT64_MAX, &q.before_seq) ||
        !gw_http_query_int(h, "after_seq", 0, INT64_MAX, &q.after_seq) ||
        !gw_http_query_int(h, "limit", 1, 100, &q.limit))
        return;
    gw_http_await(h, gw_rpc_history(cl.app, h->room, cl.sub, &q, gw_http_json_reply, h, &h->req_id),
                  STORE);
}

static void user_query(gw_http *h, bool rooms)
{
    nt_claims cl;
    if (gw_http_claims(h, &cl))
        gw_http_await(h, gw_rpc_user_query(cl.app, cl.sub, rooms, gw_http_json_reply, h, &h->req_id),
                      STORE);
}

void gw_rest_unread(gw_http *h, const gw_route_params *p)
{
    (void)p;
    user_query(h, false);
}

void gw_rest_rooms(gw_http *h, const gw_route_params *p)
{
    (void)p;
    user_query(h, true);
}

/* ---- POST /api/rooms/{id}/read ---- */

static void read_body(gw_http *h)
{
    nt_claims cl;
    gw_error err;
    gw_mark_req m;
    if (!gw_http_claims(h, &cl))
        return;
    json_t *req = gw_http_body_object(h);
    if (!req)
        return;
    if (!gw_mark_parse(req, true, "", &m, &err))
        gw_http_fail(h, err.code, "%s", err.message);
    else
        gw_http_await(h, gw_rpc_mark(cl.app, h->room, cl.sub, false, &m, gw_http_json_reply, h,
                                     &h->req_id), STORE);
    json_decref(req);
}

void gw_rest_read(gw_http *h, const gw_route_params *p)
{
    nt_claims cl;
    if (gw_http_id(h, "room", &p->v[0], h->room) && gw_http_claims(h, &cl))
        gw_http_read_body(h, read_body);
}

/* ---- POST /api/rooms (as create_room) ---- */

static void on_create(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_http *h = arg;
    nt_envr r;
    gw_error err;
    (void)bus;
    h->in_flight = false;
    if (gw_rpc_ok(st, msg, STORE, &r, &err))
        gw_http_respond_json(h, 201, json_pack("{s:s}", "room_id", h->room));
    else
        gw_http_fail(h, err.code, "%s", err.message);
    nt_envr_free(&r);
}

/* The body is create_room's data, validated by the same parser. */
static void create_body(gw_http *h)
{
    nt_claims cl;
    gw_error err;
    if (!gw_http_claims(h, &cl))
        return;
    json_t *req = gw_http_body_object(h);
    if (!req)
        return;
    gw_create_req *cr = nt_malloc(sizeof *cr);
    if (!gw_create_parse(req, cr, &err)) {
        gw_http_fail(h, err.code, "%s", err.message);
    } else {
        gw_rpc_room_id(cr, h->room);
        gw_http_await(h, gw_rpc_create(cl.app, cl.sub, h->room, cr, on_create, h, &h->req_id),
                      STORE);
    }
    nt_free(cr);
    json_decref(req);
}

void gw_rest_create(gw_http *h, const gw_route_params *p)
{
    nt_claims cl;
    (void)p;
    if (gw_http_claims(h, &cl))
        gw_http_read_body(h, create_body);
}

/* ---- POST /api/rooms/{id}/members, DELETE /api/rooms/{id}/members/{user} ---- */

/* Asks the persister to add or remove h->user in h->room on behalf of the token's user
 * (whose token each step checks, as the first did). */
static void member_request(gw_http *h, bool remove)
{
    nt_claims cl;
    if (gw_http_claims(h, &cl))
        gw_http_await(h, gw_rpc_member(cl.app, h->room, h->user, cl.sub,
                                       strcmp(cl.role, "admin") == 0, remove,
                                       gw_http_json_reply, h, &h->req_id), STORE);
}

static void member_add_body(gw_http *h)
{
    nt_claims cl;
    if (!gw_http_claims(h, &cl))
        return;
    json_t *req = gw_http_body_object(h);
    if (!req)
        return;
    json_t *user = json_object_get(req, "user_id");
    if (!json_is_string(user) || !nt_valid_id(json_string_value(user), json_string_length(user))) {
        gw_http_fail(h, GW_E_BAD_REQUEST, "field 'user_id' must be 1-64 characters of [A-Za-z0-9_-]");
    } else {
        memcpy(h->user, json_string_value(user), json_string_length(user) + 1);
        member_request(h, false);
    }
    json_decref(req);
}

static void member_remove_body(gw_http *h)
{
    member_request(h, true);
}

/* The ids of a members path and the token; false once answered. */
static bool members_prepare(gw_http *h, const gw_route_params *p)
{
    nt_claims cl;
    return gw_http_id(h, "room", &p->v[0], h->room) &&
           (p->n < 2 || gw_http_id(h, "user", &p->v[1], h->user)) && gw_http_claims(h, &cl);
}

void gw_rest_member_add(gw_http *h, const gw_route_params *p)
{
    if (members_prepare(h, p))
        gw_http_read_body(h, member_add_body);
}

void gw_rest_member_delete(gw_http *h, const gw_route_params *p)
{
    if (members_prepare(h, p))
        member_remove_body(h);
}

void gw_rest_member_remove(gw_http *h, const gw_route_params *p)
{
    if (members_prepare(h, p))
        gw_http_read_body(h, member_remove_body);
}

/* ---- POST /api/dev/token ---- */

static void dev_token_body(gw_http *h)
{
    json_t *req = gw_http_body_object(h);
    if (!req)
        return;
    json_t *user = json_object_get(req, "user_id"), *name = json_object_get(req, "name");
    json_t *app = json_object_get(req, "app");
    if (!json_is_string(user) || !nt_valid_id(json_string_value(user), json_string_length(user))) {
        gw_http_fail(h, GW_E_BAD_REQUEST, "field 'user_id' must be 1-64 characters of [A-Za-z0-9_-]");
    } else if (name && !json_is_null(name) && (!json_is_string(name) || json_string_length(name) > 128)) {
        gw_http_fail(h, GW_E_BAD_REQUEST, "field 'name' must be a string of at most 128 bytes");
    } else if (app && !json_is_null(app) &&
               (!json_is_string(app) || !nt_valid_id(json_string_value(app), json_string_length(app)))) {
        gw_http_fail(h, GW_E_BAD_REQUEST, "field 'app' must be 1-64 characters of [A-Za-z0-9_-]");
    } else {
        int64_t now = nt_now_ms() / 1000;
        char *tok = nt_jwt_sign_at(gw->cfg.jwt_secret, json_string_value(user),
                                   json_is_string(app) ? json_string_value(app) : "default",
                                   json_is_string(name) ? json_string_value(name) : NULL, NULL,
                                   now, now + GW_DEV_TOKEN_TTL_S);
        gw_http_respond_json(h, 200, json_pack("{s:s}", "token", tok));
        nt_free(tok);
    }
    json_decref(req);
}

/* Without NATTER_DEV_TOKENS the route does not exist (404 once the body is read). */
void gw_rest_dev_token(gw_http *h, const gw_route_params *p)
{
    if (!gw->cfg.dev_tokens)
        return gw_http_not_found_after_body(h, p);
    gw_http_read_body(h, dev_token_body);
}
