/* revoke.c: the gateway's copy of the cluster's token revocations (see revoke.h). */
#include "revoke.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "envelope.h"
#include "gw.h"
#include "log.h"
#include "map.h"
#include "util.h"
#include "wire.h"

#define SUBJ_REVOKE NT_SUBJ_CTL_REVOKE
#define SUBJ_LIST NT_SUBJ_RPC_ROUTER_REVOCATIONS
#define REVOKE_MAX 1000000            /* entries kept; more are refused loudly */
#define REVOKE_RETRY_MS 2000

typedef struct revocation {
    int64_t before;                   /* tokens with iat <= before are refused */
    char key[];                       /* "<app>|<user>" */
} revocation;

/* This module's state (gw->revoke), from gw_revoke_start to gw_revoke_stop. */
typedef struct gw_revoke {
    nt_map table;                     /* of revocation, by key */
    nt_bus_sub *sub;
    bool loaded, asking;
    int64_t asked_ms;
    nt_metric *refused, *entries;
} gw_revoke;

static void record(const char *app, size_t alen, const char *user, size_t ulen, int64_t before)
{
    gw_revoke *rv = gw->revoke;
    char key[140];
    if (!nt_valid_id(app, alen) || !nt_valid_id(user, ulen) || before <= 0)
        return;
    snprintf(key, sizeof key, "%.*s|%.*s", (int)alen, app, (int)ulen, user);
    revocation *r = nt_map_get(&rv->table, key);
    if (r) {
        if (before > r->before)
            r->before = before;
        return;
    }
    if (rv->table.count >= REVOKE_MAX) {
        nt_error("cannot keep the revocation of %s: %d revocations are kept already", key, REVOKE_MAX);
        return;
    }
    size_t n = strlen(key) + 1;
    r = nt_malloc(sizeof *r + n);
    r->before = before;
    memcpy(r->key, key, n);
    nt_map_put(&rv->table, r->key, r);
    nt_metric_set(rv->entries, (int64_t)rv->table.count);
}

static void on_revoke(nt_bus *bus, const nt_bus_msg *msg, void *arg)
{
    nt_envr r;
    size_t alen, ulen;
    int64_t before;
    if (nt_envr_parse(&r, msg->data, msg->len) != NT_OK)
        return;
    const char *app = nt_envr_str(&r, "app", &alen), *user = nt_envr_str(&r, "user", &ulen);
    if (app && user && nt_envr_int(&r, "before", &before))
        record(app, alen, user, ulen, before);
    nt_envr_free(&r);
}

static void on_list(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_revoke *rv = gw ? gw->revoke : NULL;
    nt_envr r;
    size_t len;
    bool ok = false;
    if (!rv)
        return;                            /* after gw_revoke_stop */
    rv->asking = false;
    if (st != NT_OK || nt_envr_parse(&r, msg->data, msg->len) != NT_OK)
        return;                            /* asked again from the tick */
    const char *json = nt_envr_bool(&r, "ok", &ok) && ok ? nt_envr_str(&r, "json", &len) : NULL;
    json_t *list = json ? json_loadb(json, len, 0, NULL) : NULL;
    if (json_is_array(list)) {
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            json_t *a = json_array_get(e, 0), *u = json_array_get(e, 1), *b = json_array_get(e, 2);
            if (json_is_string(a) && json_is_string(u) && json_is_integer(b))
                record(json_string_value(a), json_string_length(a), json_string_value(u),
                       json_string_length(u), json_integer_value(b));
        }
        rv->loaded = true;
        nt_info("%zu token revocation(s) loaded from the router", rv->table.count);
    }
    json_decref(list);
    nt_envr_free(&r);
}

static void ask(gw_revoke *rv, int64_t now_ms)
{
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "gw", gw->cfg.gw_id);
    const char *data = nt_envw_finish(&w, &len);
    rv->asked_ms = now_ms;
    rv->asking = nt_bus_request(gw->bus, SUBJ_LIST, NULL, data, len, (int)gw->cfg.request_timeout_ms,
                               on_list, NULL, NULL) == NT_OK;
    nt_envw_free(&w);
}

nt_status gw_revoke_start(gw_ctx *ctx)
{
    gw_revoke *rv = nt_calloc(1, sizeof *rv);
    rv->refused = nt_metric_counter("natter_gateway_tokens_revoked_refused_total",
                                    "Tokens refused because their user was revoked after they were issued");
    rv->entries = nt_metric_gauge("natter_gateway_revocations", "Token revocations kept");
    rv->sub = nt_bus_subscribe(ctx->bus, SUBJ_REVOKE, NULL, on_revoke, NULL);
    if (!rv->sub) {
        nt_free(rv);
        return NT_EUNAVAIL;
    }
    ctx->revoke = rv;
    ask(rv, nt_now_ms());
    return NT_OK;
}

void gw_revoke_tick(int64_t now_ms)
{
    gw_revoke *rv = gw->revoke;
    if (!rv->loaded && !rv->asking && now_ms - rv->asked_ms >= REVOKE_RETRY_MS)
        ask(rv, now_ms);
}

bool gw_revoke_refused(const nt_claims *cl)
{
    gw_revoke *rv = gw->revoke;
    char key[140];
    if (!rv->table.count)
        return false;
    snprintf(key, sizeof key, "%s|%s", cl->app, cl->sub);
    revocation *r = nt_map_get(&rv->table, key);
    if (!r)
        return false;
    if (r->before < nt_now_ms() / 1000 - gw->cfg.jwt.max_lifetime_s) {   /* nothing it refuses is valid */
        nt_map_del(&rv->table, r->key);
        nt_free(r);
        nt_metric_set(rv->entries, (int64_t)rv->table.count);
        return false;
    }
    if (cl->iat > r->before)
        return false;
    nt_metric_add(rv->refused, 1);
    return true;
}

nt_status gw_revoke_publish(const char *app, const char *user, int64_t before)
{
    nt_envw w;
    size_t len;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "app", app);
    nt_envw_cstr(&w, "user", user);
    nt_envw_int(&w, "before", before);
    const char *data = nt_envw_finish(&w, &len);
    nt_status st = nt_bus_publish(gw->bus, SUBJ_REVOKE, NULL, data, len);
    nt_envw_free(&w);
    if (st == NT_OK)
        record(app, strlen(app), user, strlen(user), before);   /* this gateway at once */
    return st;
}

void gw_revoke_stop(gw_ctx *ctx)
{
    gw_revoke *rv = ctx->revoke;
    if (!rv)
        return;
    nt_map_entry *e;
    for (size_t i = 0; (e = nt_map_next(&rv->table, &i));)
        nt_free(e->val);
    nt_map_free(&rv->table);
    nt_bus_unsubscribe(rv->sub);
    nt_free(rv);
    ctx->revoke = NULL;
}
