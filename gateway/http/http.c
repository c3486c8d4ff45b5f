/* http.c: one state machine per HTTP request: route, (maybe) wait for the body or
 * a bus reply, then write headers and body on two WRITEABLE callbacks. Never blocks. */
#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access.h"
#include "alloc.h"
#include "frame.h"
#include "gw.h"
#include "log.h"
#include "reply.h"
#include "revoke.h"
#include "rpc_client.h"
#include "util.h"

enum { H_READ, H_WAIT, H_HEADERS, H_BODY };

void gw_http_set_routes(gw_ctx *ctx, const gw_route *table, size_t n)
{
    ctx->routes = table;
    ctx->nroutes = n;
}

static void http_free(gw_http **hp)
{
    gw_http *h = *hp;
    if (!h)
        return;
    if (h->in_flight)
        nt_bus_request_cancel(gw->bus, h->req_id);
    nt_buf_free(&h->body);
    nt_free(h->resp);
    nt_free(h);
    *hp = NULL;
}

/* ---- answers ---- */

void gw_http_respond(gw_http *h, unsigned status, const char *body, size_t len)
{
    h->status = status;
    nt_free(h->resp);
    h->resp = nt_malloc(LWS_PRE + len);
    memcpy(h->resp + LWS_PRE, body, len);
    h->resp_len = len;
    h->state = H_HEADERS;
    lws_callback_on_writable(h->wsi);
}

void gw_http_respond_json(gw_http *h, unsigned status, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s) {
        static const char fail[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"the answer could not be encoded\"}}";
        nt_warn("http: a %u answer could not be encoded as JSON", status);
        gw_http_respond(h, 500, fail, sizeof fail - 1);
        return;
    }
    gw_http_respond(h, status, s, strlen(s));
    nt_free(s);
}

/* message may quote request bytes that are not UTF-8: gw_encode_http_error answers
 * whatever it is given. */
void gw_http_fail_err(gw_http *h, const gw_error *err)
{
    size_t len;
    gw_reply_count(err->code);
    char *body = gw_encode_http_error(err->code, err->message, err->retry_after_ms, &len);
    gw_http_respond(h, (unsigned)gw_errcode_http(err->code), body, len);
    nt_free(body);
}

void gw_http_fail(gw_http *h, gw_errcode code, const char *fmt, ...)
{
    gw_error err;
    va_list ap;
    va_start(ap, fmt);
    gw_vfail(&err, code, fmt, ap);
    va_end(ap);
    gw_http_fail_err(h, &err);
}

void gw_http_not_found(gw_http *h, const gw_route_params *p)
{
    (void)p;
    gw_http_fail(h, GW_E_NOT_FOUND, "no such resource");
}

static void not_found_body(gw_http *h)
{
    gw_http_not_found(h, NULL);
}

void gw_http_not_found_after_body(gw_http *h, const gw_route_params *p)
{
    (void)p;
    gw_http_read_body(h, not_found_body);
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

/* ---- what handlers check ---- */

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
    if (nt_jwt_verify_rules(auth + 7, (size_t)n - 7, &gw->cfg.jwt, nt_now_ms() / 1000, cl, why,
                            sizeof why) != NT_OK)
        return gw_fail(err, GW_E_UNAUTHORIZED, "%s", why);
    if (gw_revoke_refused(cl))
        return gw_fail(err, GW_E_UNAUTHORIZED, "token revoked");
    return true;
}

bool gw_http_claims(gw_http *h, nt_claims *cl)
{
    gw_error err;
    if (gw_http_bearer(h->wsi, cl, &err))
        return true;
    gw_http_fail_err(h, &err);
    return false;
}

bool gw_http_id(gw_http *h, const char *what, const gw_route_param *p, char out[65])
{
    if (!nt_valid_id(p->s, p->len)) {
        gw_http_fail(h, GW_E_BAD_REQUEST, "invalid %s id '%.*s': expected [A-Za-z0-9_-]{1,64}",
                     what, (int)nt_utf8_cut(p->s, p->len, 64), p->s);
        return false;
    }
    memcpy(out, p->s, p->len);
    out[p->len] = '\0';
    return true;
}

bool gw_http_query_int(gw_http *h, const char *name, int64_t min, int64_t max, int64_t *out)
{
    char key[32], buf[64];
    snprintf(key, sizeof key, "%s=", name);
    const char *v = lws_get_urlarg_by_name(h->wsi, key, buf, sizeof buf);
    if (!v || !*v)
        return true;
    char *endp;
    errno = 0;
    long long x = strtoll(v, &endp, 10);
    if (errno || *endp || x < min || x > max) {
        gw_http_fail(h, GW_E_BAD_REQUEST,
                     "query parameter '%s' must be an integer between %lld and %lld", name,
                     (long long)min, (long long)max);
        return false;
    }
    *out = x;
    return true;
}

/* ---- the body ---- */

static void body_too_large(gw_http *h)
{
    h->close_after = true;
    gw_http_fail(h, GW_E_TOO_LARGE, "request body is larger than %d bytes", GW_HTTP_MAX_BODY);
}

void gw_http_read_body(gw_http *h, void (*on_body)(gw_http *h))
{
    char cl[24];
    long long clen = 0;
    if (lws_hdr_copy(h->wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
        clen = strtoll(cl, NULL, 10);
    if (clen > GW_HTTP_MAX_BODY)
        return body_too_large(h);
    if (clen <= 0)                     /* no body will follow */
        return on_body(h);
    h->on_body = on_body;
}

json_t *gw_http_body_object(gw_http *h)
{
    json_error_t je;
    json_t *req = json_loadb(h->body.len ? h->body.data : "", h->body.len, 0, &je);
    if (json_is_object(req))
        return req;
    gw_http_fail(h, GW_E_BAD_REQUEST, "body must be a JSON object: %s",
                 req ? "not an object" : je.text);
    json_decref(req);
    return NULL;
}

/* ---- bus requests ---- */

void gw_http_await(gw_http *h, nt_status sent, const char *service)
{
    if (sent != NT_OK)
        return gw_http_fail(h, GW_E_UNAVAILABLE, "%s unavailable, retry", service);
    h->service = service;
    h->in_flight = true;
    h->state = H_WAIT;
}

void gw_http_json_reply(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_http *h = arg;
    nt_envr r;
    gw_error err;
    size_t len;
    (void)bus;
    h->in_flight = false;
    bool ok = gw_rpc_ok(st, msg, h->service, &r, &err);
    const char *json = ok ? nt_envr_str(&r, "json", &len) : NULL;
    if (json)
        gw_http_respond(h, 200, json, len);
    else if (ok)
        gw_http_fail(h, GW_E_INTERNAL, "malformed reply from %s", h->service);
    else
        gw_http_fail(h, err.code, "%s", err.message);
    nt_envr_free(&r);
}

/* ---- the request ---- */

static gw_http_method method_of(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
        return GW_HTTP_GET;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
        return GW_HTTP_POST;
#if defined(LWS_WITH_HTTP_UNCOMMON_HEADERS) || defined(LWS_HTTP_HEADERS_ALL)
    if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0)
        return GW_HTTP_DELETE;
#endif
    return GW_HTTP_OTHER;
}

static void route(gw_http *h, const char *path)
{
    gw_route_params p;
    const gw_route *r = gw_route_find(gw->routes, gw->nroutes, method_of(h->wsi), path, &p);
    if (r)
        r->handler(h, &p);
    else
        gw_http_not_found(h, NULL);
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
        nt_buf_init(&h->body, GW_HTTP_MAX_BODY);
        nt_metric_add(gw->m.http_requests, 1);
        if (!gw_access_origin(wsi, h->origin, sizeof h->origin)) {
            char sb[64];
            gw_error err;
            gw_fail(&err, GW_E_FORBIDDEN, "origin '%s' is not allowed (NATTER_ALLOWED_ORIGINS)",
                    nt_shorten(h->origin, sb, sizeof sb));
            h->origin[0] = '\0';          /* no CORS headers for it */
            h->close_after = true;
            gw_http_fail_err(h, &err);
            return 0;
        }
        if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) > 0) {   /* CORS preflight */
            h->preflight = true;
            gw_http_respond(h, 204, "", 0);
            return 0;
        }
        route(h, in ? (const char *)in : "/");
        return 0;
    case LWS_CALLBACK_HTTP_BODY:
        if (!h || h->state != H_READ)
            return 0;
        if (nt_buf_append(&h->body, in, len) != NT_OK)
            body_too_large(h);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!h || h->state != H_READ)
            return 0;
        if (h->on_body)
            h->on_body(h);
        else
            gw_http_not_found(h, NULL);
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
