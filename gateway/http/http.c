/* http.c: one state machine per HTTP request: route, (maybe) wait for the body or
 * a bus reply, then write headers and body on two WRITEABLE callbacks. Never blocks. */
#include "http.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "access.h"
#include "reply.h"
#include "rpc_client.h"
#include "alloc.h"
#include "frame.h"
#include "gw.h"
#include "jsonw.h"
#include "jwt.h"
#include "log.h"
#include "presence.h"
#include "receipts.h"
#include "revoke.h"
#include "server_api.h"
#include "util.h"

#define GW_HTTP_MAX_BODY (64 * 1024)
#define GW_DEV_TOKEN_TTL_S (24 * 3600)

enum { H_READ, H_WAIT, H_HEADERS, H_BODY };
enum { R_NONE, R_DEV_TOKEN, R_READ, R_NOT_FOUND, R_SERVER, R_CREATE, R_MEMBER_ADD,
       R_MEMBER_REMOVE };
/* Shapes of /api/rooms/{id}/members[/{user}[/delete]] (members_path). */
enum { M_NONE, M_ROOM, M_USER, M_USER_DELETE };

struct gw_http {
    struct lws *wsi;
    int state;
    int post_route;               /* what to do once a POST body is complete */
    bool close_after;             /* answered before reading the body: close */
    bool in_flight;               /* a bus request (req_id) is waiting */
    uint64_t req_id;
    unsigned status;
    char room[65];                /* POST /api/rooms/{id}/read, .../members; user of .../disconnect;
                                     the id of a room being created */
    char user[65];                /* the {user} of /api/rooms/{id}/members/{user} */
    gw_sapi_call sapi;            /* R_SERVER: which server API call */
    char key_app[65];             /* R_SERVER: the app of the API key, "" for NATTER_API_KEY */
    char *body;                   /* request body */
    size_t body_len;
    unsigned char *resp;          /* LWS_PRE headroom + response body */
    size_t resp_len;
    bool preflight;               /* an OPTIONS request: CORS preflight headers */
    char origin[256];             /* the request's Origin, "" when none (CORS) */
};

static void http_free(gw_http **hp)
{
    gw_http *h = *hp;
    if (!h)
        return;
    if (h->in_flight)
        nt_bus_request_cancel(gw.bus, h->req_id);
    nt_free(h->body);
    nt_free(h->resp);
    nt_free(h);
    *hp = NULL;
}

static void respond(gw_http *h, unsigned status, const char *body, size_t len)
{
    h->status = status;
    nt_free(h->resp);
    h->resp = nt_malloc(LWS_PRE + len);
    memcpy(h->resp + LWS_PRE, body, len);
    h->resp_len = len;
    h->state = H_HEADERS;
    lws_callback_on_writable(h->wsi);
}

/* obj may be NULL (a json_pack that failed): then a 500 that says so, never a crash. */
static void respond_json(gw_http *h, unsigned status, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s) {
        static const char fail[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"the answer could not be encoded\"}}";
        nt_warn("http: a %u answer could not be encoded as JSON", status);
        respond(h, 500, fail, sizeof fail - 1);
        return;
    }
    respond(h, status, s, strlen(s));
    nt_free(s);
}

static void respond_error_retry(gw_http *h, gw_errcode code, const char *message,
                                uint32_t retry_after_ms);

static void respond_error(gw_http *h, gw_errcode code, const char *message)
{
    respond_error_retry(h, code, message, 0);
}

static void respond_gw_error(gw_http *h, const gw_error *err)
{
    respond_error_retry(h, err->code, err->message, err->retry_after_ms);
}

/* message may quote request bytes that are not UTF-8: gw_encode_http_error answers
 * whatever it is given. */
static void respond_error_retry(gw_http *h, gw_errcode code, const char *message,
                                uint32_t retry_after_ms)
{
    size_t len;
    gw_reply_count(code);
    char *body = gw_encode_http_error(code, message, retry_after_ms, &len);
    respond(h, (unsigned)gw_errcode_http(code), body, len);
    nt_free(body);
}

static int write_step(struct lws *wsi, gw_http **hp)
{
    gw_http *h = *hp;
    if (!h || (h->state != H_HEADERS && h->state != H_BODY))
        return 0;
    if (h->state == H_HEADERS) {
        unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start;
        unsigned char *end = buf + sizeof buf - 1;
        if (lws_add_http_common_headers(wsi, h->status, "application/json", h->resp_len, &p, end) ||
            gw_access_cors_headers(wsi, h->origin, h->preflight, &p, end))
            return -1;
        if (h->close_after &&
            lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (unsigned char *)"close", 5,
                                         &p, end))
            return -1;
        if (lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        h->state = H_BODY;
        lws_callback_on_writable(wsi);
        return 0;
    }
    int n = lws_write(wsi, h->resp + LWS_PRE, h->resp_len, LWS_WRITE_HTTP_FINAL);
    bool close = h->close_after;
    http_free(hp);
    if (n < 0 || close)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- GET /api/rooms/{id}/messages ---- */

bool gw_http_bearer(struct lws *wsi, nt_claims *cl, gw_error *err)
{
    char auth[4096], why[128] = "invalid token";
    int n = lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 7 || strncasecmp(auth, "Bearer ", 7) != 0)
        return gw_fail(err, GW_E_UNAUTHORIZED, "missing header 'Authorization: Bearer <JWT>'");
    uint32_t retry;
    if (!gw_access_http_admit(auth + 7, (size_t)n - 7, &retry)) {
        gw_fail(err, GW_E_RATE_LIMITED, "rate limited: too many requests with this token "
                "(NATTER_RATE_HTTP); retry in %u ms", retry);
        err->retry_after_ms = retry;
        return false;
    }
    if (nt_jwt_verify_rules(auth + 7, (size_t)n - 7, &gw.cfg.jwt, nt_now_ms() / 1000, cl, why,
                            sizeof why) != NT_OK)
        return gw_fail(err, GW_E_UNAUTHORIZED, "%s", why);
    if (gw_revoke_refused(cl))
        return gw_fail(err, GW_E_UNAUTHORIZED, "token revoked");
    return true;
}

static bool bearer_claims(gw_http *h, nt_claims *cl)
{
    gw_error err;
    if (gw_http_bearer(h->wsi, cl, &err))
        return true;
    respond_gw_error(h, &err);
    return false;
}

static bool query_uint(gw_http *h, const char *name, int64_t min, int64_t max, int64_t *out)
{
    char key[32], buf[64], msg[128];
    snprintf(key, sizeof key, "%s=", name);
    const char *v = lws_get_urlarg_by_name(h->wsi, key, buf, sizeof buf);
    if (!v || !*v)
        return true;
    char *endp;
    errno = 0;
    long long x = strtoll(v, &endp, 10);
    if (errno || *endp || x < min || x > max) {
        snprintf(msg, sizeof msg, "query parameter '%s' must be an integer between %lld and %lld",
                 name, (long long)min, (long long)max);
        respond_error(h, GW_E_BAD_REQUEST, msg);
        return false;
    }
    *out = x;
    return true;
}

/* Answers h with the `json` of an RPC reply envelope, or with its error. */
static void respond_rpc_json(gw_http *h, nt_status st, const nt_bus_msg *msg, const char *service)
{
    nt_envr r;
    gw_error err;
    size_t len;
    h->in_flight = false;
    bool ok = gw_rpc_ok(st, msg, service, &r, &err);
    const char *json = ok ? nt_envr_str(&r, "json", &len) : NULL;
    if (json)
        respond(h, 200, json, len);
    else if (ok) {
        char text[64];
        snprintf(text, sizeof text, "malformed reply from %s", service);
        respond_error(h, GW_E_INTERNAL, text);
    }
    else
        respond_error(h, err.code, err.message);
    nt_envr_free(&r);
}

static void on_history(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    respond_rpc_json(arg, st, msg, "message store");
}

static void route_history(gw_http *h, const char *room, size_t roomlen)
{
    nt_claims cl;
    char id[65], msg[128];
    gw_history_req q = { .before_seq = -1, .after_seq = -1, .limit = 50 };
    if (!nt_valid_id(room, roomlen)) {
        snprintf(msg, sizeof msg, "invalid room id '%.*s'", (int)nt_utf8_cut(room, roomlen, 64), room);
        return respond_error(h, GW_E_BAD_REQUEST, msg);
    }
    memcpy(id, room, roomlen);
    id[roomlen] = '\0';
    if (!bearer_claims(h, &cl) || !query_uint(h, "before_seq", 0, INT64_MAX, &q.before_seq) ||
        !query_uint(h, "after_seq", 0, INT64_MAX, &q.after_seq) ||
        !query_uint(h, "limit", 1, 100, &q.limit))
        return;
    if (gw_rpc_history(cl.app, id, cl.sub, &q, on_history, h, &h->req_id) != NT_OK)
        return respond_error(h, GW_E_UNAVAILABLE, "message store unavailable, retry");
    h->in_flight = true;
    h->state = H_WAIT;
}

/* ---- GET /api/me/unread, GET /api/rooms, POST /api/rooms/{id}/read ---- */

static void route_user(gw_http *h, bool rooms)
{
    nt_claims cl;
    if (!bearer_claims(h, &cl))
        return;
    if (gw_rpc_user_query(cl.app, cl.sub, rooms, on_history, h, &h->req_id) != NT_OK)
        return respond_error(h, GW_E_UNAVAILABLE, "message store unavailable, retry");
    h->in_flight = true;
    h->state = H_WAIT;
}

/* Checks the room id and the token before the body is read. */
static bool read_prepare(gw_http *h, const char *room, size_t roomlen)
{
    nt_claims cl;
    char msg[128];
    if (!nt_valid_id(room, roomlen)) {
        snprintf(msg, sizeof msg, "invalid room id '%.*s'", (int)nt_utf8_cut(room, roomlen, 64), room);
        respond_error(h, GW_E_BAD_REQUEST, msg);
        return false;
    }
    memcpy(h->room, room, roomlen);
    h->room[roomlen] = '\0';
    return bearer_claims(h, &cl);
}

static void read_body(gw_http *h)
{
    nt_claims cl;
    json_error_t je;
    gw_error err;
    gw_mark_req m;
    char msg[256];
    if (!bearer_claims(h, &cl))
        return;
    json_t *req = json_loadb(h->body ? h->body : "", h->body_len, 0, &je);
    if (!json_is_object(req)) {
        snprintf(msg, sizeof msg, "body must be a JSON object: %s", req ? "not an object" : je.text);
        respond_error(h, GW_E_BAD_REQUEST, msg);
    } else if (!gw_mark_parse(req, true, "", &m, &err)) {
        respond_error(h, err.code, err.message);
    } else if (gw_rpc_mark(cl.app, h->room, cl.sub, false, &m, on_history, h,
                                        &h->req_id) != NT_OK) {
        respond_error(h, GW_E_UNAVAILABLE, "message store unavailable, retry");
    } else {
        h->in_flight = true;
        h->state = H_WAIT;
    }
    json_decref(req);
}

/* ---- POST /api/rooms (as create_room) ---- */

static void on_create(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_http *h = arg;
    nt_envr r;
    gw_error err;
    h->in_flight = false;
    if (gw_rpc_ok(st, msg, "message store", &r, &err))
        respond_json(h, 201, json_pack("{s:s}", "room_id", h->room));
    else
        respond_error(h, err.code, err.message);
    nt_envr_free(&r);
}

/* The body is create_room's data, validated by the same parser. */
static void create_body(gw_http *h)
{
    nt_claims cl;
    json_error_t je;
    gw_error err;
    char msg[256];
    if (!bearer_claims(h, &cl))
        return;
    json_t *req = json_loadb(h->body ? h->body : "", h->body_len, 0, &je);
    gw_create_req *cr = nt_malloc(sizeof *cr);
    if (!json_is_object(req)) {
        snprintf(msg, sizeof msg, "body must be a JSON object: %s", req ? "not an object" : je.text);
        respond_error(h, GW_E_BAD_REQUEST, msg);
    } else if (!gw_create_parse(req, cr, &err)) {
        respond_error(h, err.code, err.message);
    } else {
        gw_rpc_room_id(cr, h->room);
        if (gw_rpc_create(cl.app, cl.sub, h->room, cr, on_create, h, &h->req_id) != NT_OK) {
            respond_error(h, GW_E_UNAVAILABLE, "message store unavailable, retry");
        } else {
            h->in_flight = true;
            h->state = H_WAIT;
        }
    }
    nt_free(cr);
    json_decref(req);
}

/* ---- POST /api/rooms/{id}/members, DELETE /api/rooms/{id}/members/{user} ---- */

/* Splits path into the room and user of /api/rooms/{id}/members[/{user}[/delete]]. */
static int members_path(const char *path, const char **room, size_t *roomlen, const char **user,
                        size_t *userlen)
{
    static const char rooms[] = "/api/rooms/", members[] = "/members";
    if (strncmp(path, rooms, sizeof rooms - 1) != 0)
        return M_NONE;
    *room = path + sizeof rooms - 1;
    const char *slash = strchr(*room, '/');
    if (!slash || strncmp(slash, members, sizeof members - 1) != 0)
        return M_NONE;
    *roomlen = (size_t)(slash - *room);
    const char *rest = slash + sizeof members - 1;
    if (*rest == '\0')
        return M_ROOM;
    if (*rest != '/')
        return M_NONE;
    *user = rest + 1;
    const char *end = strchr(*user, '/');
    if (!end) {
        *userlen = strlen(*user);
        return M_USER;
    }
    *userlen = (size_t)(end - *user);
    return strcmp(end, "/delete") == 0 ? M_USER_DELETE : M_NONE;
}

/* Copies a path id into out (65 bytes); false once answered with 400. */
static bool path_id(gw_http *h, const char *what, const char *id, size_t len, char *out)
{
    char msg[160];
    if (!nt_valid_id(id, len)) {
        snprintf(msg, sizeof msg, "invalid %s id '%.*s': expected [A-Za-z0-9_-]{1,64}", what,
                 (int)nt_utf8_cut(id, len, 64), id);
        respond_error(h, GW_E_BAD_REQUEST, msg);
        return false;
    }
    memcpy(out, id, len);
    out[len] = '\0';
    return true;
}

/* Asks the persister to add or remove h->user in h->room on behalf of cl.sub. */
static void member_request(gw_http *h, const nt_claims *cl, bool remove)
{
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", cl->app);
    nt_envw_cstr(&w, "room", h->room);
    nt_envw_cstr(&w, "user", h->user);
    nt_envw_cstr(&w, "actor", cl->sub);
    nt_envw_bool(&w, "admin", strcmp(cl->role, "admin") == 0);
    const char *data = nt_envw_finish(&w, &len);
    if (nt_bus_request(gw.bus, remove ? "natter.rpc.persist.member_remove"
                                      : "natter.rpc.persist.member_add",
                       NULL, data, len, (int)gw.cfg.request_timeout_ms, on_history, h,
                       &h->req_id) != NT_OK) {
        respond_error(h, GW_E_UNAVAILABLE, "message store unavailable, retry");
    } else {
        h->in_flight = true;
        h->state = H_WAIT;
    }
    nt_envw_free(&w);
}

static void member_add_body(gw_http *h)
{
    nt_claims cl;
    json_error_t je;
    char msg[256];
    if (!bearer_claims(h, &cl))
        return;
    json_t *req = json_loadb(h->body ? h->body : "", h->body_len, 0, &je);
    json_t *user = json_object_get(req, "user_id");
    if (!json_is_object(req)) {
        snprintf(msg, sizeof msg, "body must be a JSON object: %s", req ? "not an object" : je.text);
        respond_error(h, GW_E_BAD_REQUEST, msg);
    } else if (!json_is_string(user) ||
               !nt_valid_id(json_string_value(user), json_string_length(user))) {
        respond_error(h, GW_E_BAD_REQUEST, "field 'user_id' must be 1-64 characters of [A-Za-z0-9_-]");
    } else {
        snprintf(h->user, sizeof h->user, "%s", json_string_value(user));
        member_request(h, &cl, false);
    }
    json_decref(req);
}

static void member_remove(gw_http *h)
{
    nt_claims cl;
    if (bearer_claims(h, &cl))
        member_request(h, &cl, true);
}

/* Checks the ids of a members path and the token; false once answered. */
static bool members_prepare(gw_http *h, int shape, const char *room, size_t roomlen,
                            const char *user, size_t userlen)
{
    nt_claims cl;
    if (!path_id(h, "room", room, roomlen, h->room))
        return false;
    if (shape != M_ROOM && !path_id(h, "user", user, userlen, h->user))
        return false;
    return bearer_claims(h, &cl);
}

static bool is_delete(struct lws *wsi)
{
#if defined(LWS_WITH_HTTP_UNCOMMON_HEADERS) || defined(LWS_HTTP_HEADERS_ALL)
    return lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0;
#else
    (void)wsi;
    return false;
#endif
}

/* ---- presence REST (http_presence.c) ---- */

static void on_router_json(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    respond_rpc_json(arg, st, msg, "router");
}

/* ---- POST /api/dev/token ---- */

static void dev_token(gw_http *h)
{
    json_error_t je;
    json_t *req = json_loadb(h->body ? h->body : "", h->body_len, 0, &je);
    json_t *user = json_object_get(req, "user_id"), *name = json_object_get(req, "name");
    json_t *app = json_object_get(req, "app");
    char msg[256];
    if (!json_is_object(req)) {
        snprintf(msg, sizeof msg, "body must be a JSON object: %s", req ? "not an object" : je.text);
        respond_error(h, GW_E_BAD_REQUEST, msg);
    } else if (!json_is_string(user) || !nt_valid_id(json_string_value(user), json_string_length(user))) {
        respond_error(h, GW_E_BAD_REQUEST, "field 'user_id' must be 1-64 characters of [A-Za-z0-9_-]");
    } else if (name && !json_is_null(name) && (!json_is_string(name) || json_string_length(name) > 128)) {
        respond_error(h, GW_E_BAD_REQUEST, "field 'name' must be a string of at most 128 bytes");
    } else if (app && !json_is_null(app) &&
               (!json_is_string(app) || !nt_valid_id(json_string_value(app), json_string_length(app)))) {
        respond_error(h, GW_E_BAD_REQUEST, "field 'app' must be 1-64 characters of [A-Za-z0-9_-]");
    } else {
        int64_t now = nt_now_ms() / 1000;
        char *tok = nt_jwt_sign_at(gw.cfg.jwt_secret, json_string_value(user),
                                   json_is_string(app) ? json_string_value(app) : "default",
                                   json_is_string(name) ? json_string_value(name) : NULL, NULL,
                                   now, now + GW_DEV_TOKEN_TTL_S);
        respond_json(h, 200, json_pack("{s:s}", "token", tok));
        nt_free(tok);
    }
    json_decref(req);
}

/* ---- the server API, /api/server/... (server_api.c) ---- */

/* Authenticates a server API call and, for a POST, picks the call; false once answered. */
static bool server_prepare(gw_http *h, const char *path, bool post)
{
    static const char users[] = "/api/server/users/", disc[] = "/disconnect";
    size_t plen = strlen(path);
    gw_error err;
    gw_sapi_call call;
    const char *id = NULL;
    size_t idlen = 0;
    if (!post && strcmp(path, "/api/server/stats") == 0)
        call = GW_SAPI_STATS;
    else if (post && strcmp(path, "/api/server/publish") == 0)
        call = GW_SAPI_PUBLISH;
    else if (post && strcmp(path, "/api/server/notify") == 0)
        call = GW_SAPI_NOTIFY;
    else if (post && plen > sizeof users - 1 + sizeof disc - 1 &&
             strncmp(path, users, sizeof users - 1) == 0 &&
             strcmp(path + plen - (sizeof disc - 1), disc) == 0) {
        call = GW_SAPI_DISCONNECT;
        id = path + sizeof users - 1;
        idlen = plen - (sizeof users - 1) - (sizeof disc - 1);
    } else {
        respond_error(h, GW_E_NOT_FOUND, "no such resource");
        return false;
    }
    if (!gw_server_api_auth(h->wsi, call, h->key_app, &err)) {
        respond_error(h, err.code, err.message);
        return false;
    }
    if (id) {
        if (!nt_valid_id(id, idlen)) {
            char msg[128];
            snprintf(msg, sizeof msg, "invalid user id '%.*s': expected [A-Za-z0-9_-]{1,64}",
                     (int)nt_utf8_cut(id, idlen, 64), id);
            respond_error(h, GW_E_BAD_REQUEST, msg);
            return false;
        }
        memcpy(h->room, id, idlen);
        h->room[idlen] = '\0';
    }
    h->sapi = call;
    return true;
}

static void server_stats(gw_http *h)
{
    if (gw_server_api_stats(h->key_app, on_router_json, h, &h->req_id) != NT_OK)
        return respond_error(h, GW_E_UNAVAILABLE, "router unavailable, retry");
    h->in_flight = true;
    h->state = H_WAIT;
}

static void server_body(gw_http *h)
{
    gw_error err;
    json_t *out = gw_server_api_post(h->wsi, h->sapi, h->room, h->body, h->body_len, h->key_app, &err);
    if (out)
        respond_json(h, 200, out);
    else
        respond_error(h, err.code, err.message);
}

static void route(gw_http *h, const char *path)
{
    bool get = lws_hdr_total_length(h->wsi, WSI_TOKEN_GET_URI) > 0;
    bool post = lws_hdr_total_length(h->wsi, WSI_TOKEN_POST_URI) > 0;
    static const char rooms[] = "/api/rooms/", msgs[] = "/messages", readp[] = "/read";
    size_t plen = strlen(path);

    if (get && strcmp(path, "/healthz") == 0)
        return respond(h, 200, "{\"status\":\"ok\"}", 15);
    if (get && strcmp(path, "/readyz") == 0) {
        if (nt_bus_connected(gw.bus) && !gw.stopping)
            return respond(h, 200, "{\"status\":\"ready\"}", 18);
        return respond_error(h, GW_E_UNAVAILABLE,
                             gw.stopping ? "shutting down" : "NATS is not connected");
    }
    if (get && strncmp(path, rooms, sizeof rooms - 1) == 0 && plen > sizeof rooms - 1 + sizeof msgs - 1 &&
        strcmp(path + plen - (sizeof msgs - 1), msgs) == 0)
        return route_history(h, path + sizeof rooms - 1, plen - (sizeof rooms - 1) - (sizeof msgs - 1));
    if (get && strcmp(path, "/api/me/unread") == 0)
        return route_user(h, false);
    if (get && strcmp(path, "/api/rooms") == 0)
        return route_user(h, true);
    const char *mroom = NULL, *muser = NULL;
    size_t mroomlen = 0, muserlen = 0;
    int shape = members_path(path, &mroom, &mroomlen, &muser, &muserlen);
    if (is_delete(h->wsi)) {
        if (shape != M_USER)
            return respond_error(h, GW_E_NOT_FOUND, "no such resource");
        if (members_prepare(h, shape, mroom, mroomlen, muser, muserlen))
            member_remove(h);
        return;
    }
    if ((get || post) && strncmp(path, "/api/server/", 12) == 0) {
        if (!server_prepare(h, path, post))
            return;
        if (get)
            return server_stats(h);
        h->post_route = R_SERVER;
    }
    if (get) {
        bool sent;
        gw_error err;
        if (gw_http_presence_route(h->wsi, path, on_router_json, h, &h->req_id, &sent, &err)) {
            if (!sent)
                return respond_gw_error(h, &err);
            h->in_flight = true;
            h->state = H_WAIT;
            return;
        }
    }
    if (!post)
        return respond_error(h, GW_E_NOT_FOUND, "no such resource");

    if (h->post_route != R_SERVER)
        h->post_route = strcmp(path, "/api/dev/token") == 0 && gw.cfg.dev_tokens ? R_DEV_TOKEN : R_NOT_FOUND;
    if (strncmp(path, rooms, sizeof rooms - 1) == 0 && plen > sizeof rooms - 1 + sizeof readp - 1 &&
        strcmp(path + plen - (sizeof readp - 1), readp) == 0) {
        if (!read_prepare(h, path + sizeof rooms - 1, plen - (sizeof rooms - 1) - (sizeof readp - 1)))
            return;
        h->post_route = R_READ;
    }
    if (strcmp(path, "/api/rooms") == 0) {
        nt_claims claims;
        if (!bearer_claims(h, &claims))
            return;
        h->post_route = R_CREATE;
    }
    if (shape == M_ROOM || shape == M_USER_DELETE) {
        if (!members_prepare(h, shape, mroom, mroomlen, muser, muserlen))
            return;
        h->post_route = shape == M_ROOM ? R_MEMBER_ADD : R_MEMBER_REMOVE;
    }
    char cl[24];
    long long clen = 0;
    if (lws_hdr_copy(h->wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
        clen = strtoll(cl, NULL, 10);
    if (clen > GW_HTTP_MAX_BODY) {
        h->close_after = true;
        return respond_error(h, GW_E_TOO_LARGE, "request body is larger than 65536 bytes");
    }
    if (clen <= 0) {                   /* no body will follow */
        if (h->post_route == R_DEV_TOKEN)
            return dev_token(h);
        if (h->post_route == R_READ)
            return read_body(h);
        if (h->post_route == R_SERVER)
            return server_body(h);
        if (h->post_route == R_CREATE)
            return create_body(h);
        if (h->post_route == R_MEMBER_ADD)
            return member_add_body(h);
        if (h->post_route == R_MEMBER_REMOVE)
            return member_remove(h);
        return respond_error(h, GW_E_NOT_FOUND, "no such resource");
    }
}

int gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, gw_http **hp,
                     void *in, size_t len)
{
    gw_http *h = *hp;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        http_free(hp);
        h = *hp = nt_calloc(1, sizeof *h);
        h->wsi = wsi;
        nt_metric_add(gw.m.http_requests, 1);
        if (!gw_access_origin(wsi, h->origin, sizeof h->origin)) {
            char msg[160], sb[64];
            snprintf(msg, sizeof msg, "origin '%s' is not allowed (NATTER_ALLOWED_ORIGINS)",
                     nt_shorten(h->origin, sb, sizeof sb));
            h->origin[0] = '\0';          /* no CORS headers for it */
            h->close_after = true;
            respond_error(h, GW_E_FORBIDDEN, msg);
            return 0;
        }
        if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) > 0) {   /* CORS preflight */
            h->preflight = true;
            respond(h, 204, "", 0);
            return 0;
        }
        route(h, in ? (const char *)in : "/");
        return 0;
    case LWS_CALLBACK_HTTP_BODY:
        if (!h || h->state != H_READ)
            return 0;
        if (h->body_len + len > GW_HTTP_MAX_BODY) {
            h->close_after = true;
            respond_error(h, GW_E_TOO_LARGE, "request body is larger than 65536 bytes");
            return 0;
        }
        h->body = nt_realloc(h->body, h->body_len + len + 1);
        memcpy(h->body + h->body_len, in, len);
        h->body_len += len;
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!h || h->state != H_READ)
            return 0;
        if (h->post_route == R_DEV_TOKEN)
            dev_token(h);
        else if (h->post_route == R_READ)
            read_body(h);
        else if (h->post_route == R_SERVER)
            server_body(h);
        else if (h->post_route == R_CREATE)
            create_body(h);
        else if (h->post_route == R_MEMBER_ADD)
            member_add_body(h);
        else if (h->post_route == R_MEMBER_REMOVE)
            member_remove(h);
        else
            respond_error(h, GW_E_NOT_FOUND, "no such resource");
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return write_step(wsi, hp);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        http_free(hp);
        return 0;
    default:
        return 0;
    }
}
