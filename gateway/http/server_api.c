/* server_api.c: the application backend's API (docs/protocol.md "Server API (for an
 * application's backend)"). publish and notify become {type:"event"} envelopes on
 * room and user subjects, which every gateway already forwards to its local
 * connections; disconnect is a {type:"disconnect"} envelope on the user subject;
 * stats is a router query (natter.rpc.router.stats). */
#include "server_api.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <libwebsockets.h>

#include "alloc.h"
#include "gw.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "revoke.h"
#include "rpc_client.h"
#include "session.h"
#include "util.h"
#include "wire.h"

#define GW_NOTIFY_MAX_USERS 1000
#define GW_EVENT_NAME_MAX 64

typedef enum {
    GW_SAPI_PUBLISH,
    GW_SAPI_NOTIFY,
    GW_SAPI_DISCONNECT,
    GW_SAPI_STATS,
    GW_SAPI_COUNT
} gw_sapi_call;

_Static_assert(GW_SAPI_COUNT == sizeof ((gw_metrics *)0)->server_api_calls /
                                   sizeof ((gw_metrics *)0)->server_api_calls[0],
               "a counter per server API call");
static const char *const call_names[GW_SAPI_COUNT] = { "publish", "notify", "disconnect", "stats" };

/* Event names the protocol itself sends: a backend cannot forge them. */
static const char *const reserved_events[] = {
    "message", "ack", "error", "connected", "receipt", "unread", "presence", "typing",
    "member_joined", "member_left", "resync", NULL
};

void gw_server_api_metrics_init(gw_ctx *ctx)
{
    char name[96];
    for (int i = 0; i < GW_SAPI_COUNT; i++) {
        snprintf(name, sizeof name, "natter_gateway_server_api_calls_total{call=\"%s\"}", call_names[i]);
        ctx->m.server_api_calls[i] = nt_metric_counter(name, "Server API calls received, by call");
    }
}

static bool any_app_key(void)
{
    for (size_t i = 0; i < gw->cfg.apps.n; i++)
        if (gw->cfg.apps.v[i].api_key)
            return true;
    return false;
}

/* Counts one call and checks its `Authorization: Bearer <key>` (constant time): an
 * app's api_key (NATTER_APPS), and key_app is that app, or NATTER_API_KEY, and key_app
 * is "" (every app without a key of its own). False with err: unavailable when no key
 * is configured at all, unauthorized for a wrong key, forbidden for a disabled app. */
static bool api_auth(struct lws *wsi, gw_sapi_call call, char key_app[65], gw_error *err)
{
    char auth[1024];
    nt_metric_add(gw->m.server_api_calls[call], 1);
    key_app[0] = '\0';
    const char *key = gw->cfg.api_key;
    bool global = key && *key;
    if (!global && !any_app_key())
        return gw_fail(err, GW_E_UNAVAILABLE,
                       "the server API is disabled: NATTER_API_KEY is not set (nor any app's api_key)");
    int n = lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 7 || strncasecmp(auth, "Bearer ", 7) != 0)
        return gw_fail(err, GW_E_UNAUTHORIZED, "missing header 'Authorization: Bearer <API key>'");
    const nt_app *app = nt_apps_by_api_key(&gw->cfg.apps, auth + 7, (size_t)n - 7);
    bool is_global = global && nt_consttime_eq(auth + 7, (size_t)n - 7, key, strlen(key));
    if (!app && !is_global)
        return gw_fail(err, GW_E_UNAUTHORIZED, "invalid API key");
    if (app && !app->enabled)
        return gw_fail(err, GW_E_FORBIDDEN, "app %s is disabled", app->id);
    if (app)
        snprintf(key_app, 65, "%s", app->id);
    return true;
}

/* Publishes {type:"event", json} (or a disconnect) on natter.<kind>.<app>.<id>. */
static nt_status publish_event(const char *kind, const char *app, const char *id, const char *json,
                               size_t len)
{
    char subject[NT_SUBJ_CAP];
    nt_envw w;
    size_t n;
    if (nt_subj_target(subject, sizeof subject, kind, app, id) < 0)
        return NT_EINVAL;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", "event");
    nt_envw_str(&w, "json", json, len);
    const char *data = nt_envw_finish(&w, &n);
    nt_status st = nt_bus_publish(gw->bus, subject, NULL, data, n);
    nt_envw_free(&w);
    return st;
}

/* The app a call is for (body "app", else ?app=, else the key's app or "default"),
 * which the API key must reach. */
static bool get_app(json_t *req, const char *query_app, const char *key_app, const char **app,
                    gw_error *err)
{
    json_t *a = req ? json_object_get(req, "app") : NULL;
    *app = key_app && key_app[0] ? key_app : "default";
    if (a && !json_is_null(a)) {
        if (!json_is_string(a) || !nt_valid_id(json_string_value(a), json_string_length(a)))
            return gw_fail(err, GW_E_BAD_REQUEST, "field 'app' must be 1-64 characters of [A-Za-z0-9_-]");
        *app = json_string_value(a);
    } else if (query_app && *query_app) {
        if (!nt_valid_id(query_app, strlen(query_app)))
            return gw_fail(err, GW_E_BAD_REQUEST, "query parameter 'app' must be 1-64 characters of [A-Za-z0-9_-]");
        *app = query_app;
    }
    if (key_app && key_app[0] && strcmp(*app, key_app) != 0)
        return gw_fail(err, GW_E_FORBIDDEN, "this API key is for app %s, not %s", key_app, *app);
    const nt_app *own = nt_apps_find(&gw->cfg.apps, *app);
    if ((!key_app || !key_app[0]) && own && own->api_key)
        return gw_fail(err, GW_E_FORBIDDEN, "app %s has an API key of its own (NATTER_APPS)", *app);
    if (own && !own->enabled)
        return gw_fail(err, GW_E_FORBIDDEN, "app %s is disabled", *app);
    return true;
}

/* "room.<id>", "chat.room.<id>", "chat.<id>" -> room; "user.<id>" -> user. */
static bool parse_channel(const char *ch, const char **kind, const char **id)
{
    static const struct { const char *prefix, *kind; } forms[] = {
        { "room.", "room" }, { "chat.room.", "room" }, { "chat.", "room" }, { "user.", "user" },
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        size_t pl = strlen(forms[i].prefix);
        if (strncmp(ch, forms[i].prefix, pl) == 0 && nt_valid_id(ch + pl, strlen(ch + pl))) {
            *kind = forms[i].kind;
            *id = ch + pl;
            return true;
        }
    }
    return false;
}

static json_t *do_publish(json_t *req, const char *key_app, gw_error *err)
{
    const char *app, *kind, *id;
    json_t *ch = json_object_get(req, "channel"), *ev = json_object_get(req, "event");
    json_t *data = json_object_get(req, "data");
    if (!get_app(req, NULL, key_app, &app, err))
        return NULL;
    if (!json_is_string(ch) || !parse_channel(json_string_value(ch), &kind, &id)) {
        gw_fail(err, GW_E_BAD_REQUEST,
                "field 'channel' must be 'room.<id>' or 'user.<id>' with an id of [A-Za-z0-9_-]{1,64}");
        return NULL;
    }
    if (!json_is_string(ev) || json_string_length(ev) < 1 ||
        json_string_length(ev) > GW_EVENT_NAME_MAX) {
        gw_fail(err, GW_E_BAD_REQUEST, "field 'event' must be a string of 1-%d characters",
                GW_EVENT_NAME_MAX);
        return NULL;
    }
    for (const char *const *r = reserved_events; *r; r++)
        if (strcmp(*r, json_string_value(ev)) == 0) {
            gw_fail(err, GW_E_BAD_REQUEST, "event name '%s' is reserved by the protocol", *r);
            return NULL;
        }
    char channel[80];
    snprintf(channel, sizeof channel, "%s.%s", kind, id);
    json_t *frame = json_pack("{s:O,s:s,s:O}", "event", ev, "channel", channel, "data",
                              data ? data : json_null());
    char *s = json_dumps(frame, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(frame);
    nt_status st = publish_event(kind, app, id, s, strlen(s));
    nt_free(s);
    if (st != NT_OK) {
        gw_fail(err, GW_E_UNAVAILABLE, "message bus unavailable, retry");
        return NULL;
    }
    return json_pack("{s:b}", "ok", 1);
}

static json_t *do_notify(json_t *req, const char *key_app, gw_error *err)
{
    const char *app;
    json_t *ids = json_object_get(req, "user_ids"), *data = json_object_get(req, "data"), *v;
    size_t i;
    if (!get_app(req, NULL, key_app, &app, err))
        return NULL;
    if (!json_is_array(ids) || json_array_size(ids) < 1 || json_array_size(ids) > GW_NOTIFY_MAX_USERS) {
        gw_fail(err, GW_E_BAD_REQUEST, "field 'user_ids' must be an array of 1-%d user ids",
                GW_NOTIFY_MAX_USERS);
        return NULL;
    }
    json_array_foreach(ids, i, v) {
        if (!json_is_string(v) || !nt_valid_id(json_string_value(v), json_string_length(v))) {
            gw_fail(err, GW_E_BAD_REQUEST, "user_ids[%zu] must be 1-64 characters of [A-Za-z0-9_-]", i);
            return NULL;
        }
    }
    if (!json_is_object(data)) {
        gw_fail(err, GW_E_BAD_REQUEST, "field 'data' must be a JSON object");
        return NULL;
    }
    json_t *frame = json_pack("{s:s,s:O}", "event", "notification", "data", data);
    char *s = json_dumps(frame, JSON_COMPACT);
    json_decref(frame);
    size_t len = strlen(s), sent = 0;
    /* duplicates in user_ids are notified once */
    json_array_foreach(ids, i, v) {
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = json_equal(json_array_get(ids, k), v);
        if (dup)
            continue;
        if (publish_event("user", app, json_string_value(v), s, len) != NT_OK) {
            nt_free(s);
            gw_fail(err, GW_E_UNAVAILABLE, "message bus unavailable, retry");
            return NULL;
        }
        sent++;
    }
    nt_free(s);
    return json_pack("{s:b,s:I}", "ok", 1, "users", (json_int_t)sent);
}

static json_t *do_disconnect(struct lws *wsi, json_t *req, const char *user, const char *key_app,
                             gw_error *err)
{
    const char *app;
    char qapp[80] = "", subject[NT_SUBJ_CAP];
    const char *q = lws_get_urlarg_by_name(wsi, "app=", qapp, sizeof qapp);
    if (!get_app(req, q, key_app, &app, err))
        return NULL;
    json_t *revoke = req ? json_object_get(req, "revoke") : NULL;
    if (revoke && !json_is_boolean(revoke)) {
        gw_fail(err, GW_E_BAD_REQUEST, "field 'revoke' must be a boolean");
        return NULL;
    }
    /* Revoked first: a reconnect the close provokes must already meet the revocation. */
    if (json_is_true(revoke) && gw_revoke_publish(app, user, nt_now_ms() / 1000) != NT_OK) {
        gw_fail(err, GW_E_UNAVAILABLE, "message bus unavailable, retry");
        return NULL;
    }
    nt_envw w;
    size_t n;
    if (nt_subj_user(subject, sizeof subject, app, user) < 0) {
        gw_fail(err, GW_E_BAD_REQUEST, "no subject for user '%s' of app '%s'", user, app);
        return NULL;
    }
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", "disconnect");
    nt_envw_cstr(&w, "app", app);
    nt_envw_cstr(&w, "user", user);
    nt_envw_int(&w, "code", GW_CLOSE_SERVER_DISCONNECT);
    const char *data = nt_envw_finish(&w, &n);
    nt_status st = nt_bus_publish(gw->bus, subject, NULL, data, n);
    nt_envw_free(&w);
    if (st != NT_OK) {
        gw_fail(err, GW_E_UNAVAILABLE, "message bus unavailable, retry");
        return NULL;
    }
    return json_pack("{s:b}", "ok", 1);
}

/* Runs a POST call with its body (may be empty); user is the {id} of disconnect,
 * already validated; key_app as api_auth gave it (an app's key reaches only that app,
 * the global key only apps without a key of their own). On success returns the 200
 * response object, else NULL with err. */
static json_t *api_post(struct lws *wsi, gw_sapi_call call, const char *user,
                        const char *body, size_t len, const char *key_app, gw_error *err)
{
    json_error_t je;
    json_t *req = NULL, *out = NULL;
    if (len > 0 || call != GW_SAPI_DISCONNECT) {
        req = json_loadb(body ? body : "", len, 0, &je);
        if (!json_is_object(req)) {
            gw_fail(err, GW_E_BAD_REQUEST, "body must be a JSON object: %s",
                    req ? "not an object" : je.text);
            json_decref(req);
            return NULL;
        }
    }
    if (call == GW_SAPI_PUBLISH)
        out = do_publish(req, key_app, err);
    else if (call == GW_SAPI_NOTIFY)
        out = do_notify(req, key_app, err);
    else
        out = do_disconnect(wsi, req, user, key_app, err);
    json_decref(req);
    return out;
}

/* ---- route handlers ---- */

/* Authenticates call for h; false once answered. */
static bool prepare(gw_http *h, gw_sapi_call call)
{
    gw_error err;
    if (api_auth(h->wsi, call, h->key_app, &err))
        return true;
    gw_http_fail(h, err.code, "%s", err.message);
    return false;
}

static void post_body(gw_http *h, gw_sapi_call call)
{
    gw_error err;
    json_t *out = api_post(h->wsi, call, h->room, h->body.data, h->body.len, h->key_app, &err);
    if (out)
        gw_http_respond_json(h, 200, out);
    else
        gw_http_fail(h, err.code, "%s", err.message);
}

static void publish_body(gw_http *h)
{
    post_body(h, GW_SAPI_PUBLISH);
}

static void notify_body(gw_http *h)
{
    post_body(h, GW_SAPI_NOTIFY);
}

static void disconnect_body(gw_http *h)
{
    post_body(h, GW_SAPI_DISCONNECT);
}

void gw_server_api_publish(gw_http *h, const gw_route_params *p)
{
    (void)p;
    if (prepare(h, GW_SAPI_PUBLISH))
        gw_http_read_body(h, publish_body);
}

void gw_server_api_notify(gw_http *h, const gw_route_params *p)
{
    (void)p;
    if (prepare(h, GW_SAPI_NOTIFY))
        gw_http_read_body(h, notify_body);
}

void gw_server_api_disconnect(gw_http *h, const gw_route_params *p)
{
    if (prepare(h, GW_SAPI_DISCONNECT) && gw_http_id(h, "user", &p->v[0], h->room))
        gw_http_read_body(h, disconnect_body);
}

void gw_server_api_stats(gw_http *h, const gw_route_params *p)
{
    (void)p;
    if (prepare(h, GW_SAPI_STATS))
        gw_http_await(h, gw_rpc_stats(h->key_app, gw_http_json_reply, h, &h->req_id), "router");
}
