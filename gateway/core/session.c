/* session.c: authentication, the `connected` barrier, refresh, token expiry, the user
 * subject's envelopes and the close of a connection. */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dialect.h"
#include "gw.h"
#include "jwt.h"
#include "list.h"
#include "membership.h"
#include "presence.h"
#include "reply.h"
#include "revoke.h"
#include "rooms.h"
#include "sends.h"
#include "log.h"
#include "util.h"
#include "wire.h"

/* "connected" promises that a notify or disconnect sent from now on reaches the
 * connection, on whichever gateway the server API call lands: so it waits until the
 * server has the user subject's SUB. One bus barrier at a time covers every user
 * subscribed before it went out; users subscribed meanwhile wait for the next. */
typedef struct gw_hello {
    nt_list link;                      /* in `hellos` */
    json_t *ref;
    uint32_t barrier;
    char conn[17];
} gw_hello;

/* This module's state (gw->sessions). */
typedef struct gw_sessions {
    nt_list hellos;                    /* FIFO, barrier ascending */
    uint32_t barrier_sent, barrier_done; /* sequence numbers (wrap-safe compare);
                                          * unequal while one is in flight */
} gw_sessions;

static bool barrier_passed(uint32_t b) { return (int32_t)(b - gw->sessions->barrier_done) <= 0; }

/* `connected`, then the authenticate ack; ahead of anything held for c meanwhile. */
static void send_connected(gw_conn *c, const json_t *ref)
{
    const gw_dialect *d = gw_dialect_of(c);
    json_t *data = json_pack("{s:s,s:s,s:s,s:i}", "connection_id", c->id, "user_id",
                             c->user->id, "app", c->user->app, "ping_interval",
                             (int)gw->cfg.ping_interval_s);
    char *js = json_dumps(data, JSON_COMPACT);
    size_t jlen = strlen(js);
    const char *out[2];
    char *owned[2] = { NULL, NULL };
    size_t lens[2], n = 0;
    if ((owned[0] = d->encode_event("connected", NULL, js, jlen, &lens[n])))
        out[n++] = owned[0];
    if (ref && (owned[1] = d->encode_ack(ref, js, jlen, &lens[n])))
        out[n++] = owned[1];
    gw_conn_release(c, out, lens, n, false);
    nt_free(owned[0]);
    nt_free(owned[1]);
    nt_free(js);
    json_decref(data);
}

static void barrier_send(void);

static void on_barrier(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg)
{
    gw_sessions *s = gw ? gw->sessions : NULL;
    if (!s)
        return;                         /* after gw_session_destroy: nobody waits */
    s->barrier_done = (uint32_t)(uintptr_t)arg;
    nt_list *n;
    while ((n = nt_list_first(&s->hellos)) != NULL) {
        gw_hello *h = nt_list_entry(n, gw_hello, link);
        if (!barrier_passed(h->barrier))
            break;
        nt_list_remove(&h->link);
        gw_conn *c = gw_conn_find(h->conn);
        if (c && c->user && !c->close_code) {
            if (st == NT_OK) {
                send_connected(c, h->ref);
            } else {
                gw_conn_release(c, NULL, NULL, 0, true);   /* nothing before the error */
                gw_reply_error(c, h->ref, GW_E_UNAVAILABLE,
                               "NATS did not confirm the subscription to your events, reconnect");
                gw_conn_close(c, 1011);
            }
        }
        json_decref(h->ref);
        nt_free(h);
    }
    if (!nt_list_empty(&s->hellos))
        barrier_send();
}

static void barrier_send(void)
{
    uint32_t b = ++gw->sessions->barrier_sent;
    if (nt_bus_barrier(gw->bus, (int)gw->cfg.request_timeout_ms, on_barrier, (void *)(uintptr_t)b,
                       NULL) != NT_OK)   /* the request table is full: answer them now */
        on_barrier(gw->bus, NT_EFULL, NULL, (void *)(uintptr_t)b);
}

/* Sends "connected" now, or once the barrier covering c's user subject is back. */
static void hello(gw_conn *c, const json_t *ref)
{
    gw_sessions *s = gw->sessions;
    gw_user *u = c->user;
    if (u->nconns == 1)                 /* just subscribed: the next barrier covers it */
        u->barrier = s->barrier_sent + 1;
    if (barrier_passed(u->barrier)) {
        send_connected(c, ref);
        return;
    }
    gw_hello *h = nt_malloc(sizeof *h);
    h->ref = ref ? json_incref((json_t *)ref) : NULL;
    h->barrier = u->barrier;
    memcpy(h->conn, c->id, sizeof h->conn);
    gw_conn_hold(c);                    /* events for c wait for `connected` */
    nt_list_insert_tail(&s->hellos, &h->link);
    if (s->barrier_sent == s->barrier_done)    /* none in flight */
        barrier_send();
}

void gw_session_create(gw_ctx *ctx)
{
    gw_sessions *s = nt_calloc(1, sizeof *s);
    nt_list_init(&s->hellos);
    ctx->sessions = s;
}

void gw_session_destroy(gw_ctx *ctx)
{
    gw_sessions *s = ctx->sessions;
    if (!s)
        return;
    nt_list *n, *tmp;
    nt_list_foreach_safe(n, tmp, &s->hellos) {
        gw_hello *h = nt_list_entry(n, gw_hello, link);
        nt_list_remove(&h->link);
        json_decref(h->ref);
        nt_free(h);
    }
    nt_free(s);
    ctx->sessions = NULL;
}

void gw_session_authenticate(gw_conn *c, const char *token, size_t len, const json_t *ref)
{
    nt_claims cl;
    char why[128] = "invalid token";
    int64_t now = nt_now_ms() / 1000;
    if (nt_jwt_verify_rules(token, len, &gw->cfg.jwt, now, &cl, why, sizeof why) != NT_OK ||
        (gw_revoke_refused(&cl) && snprintf(why, sizeof why, "token revoked") > 0)) {
        gw_reply_error(c, ref, GW_E_UNAUTHORIZED, why);
        gw_conn_close(c, 4001);
        return;
    }
    gw_conn_auth_untrack(c);
    gw_conn_token_set(c, cl.exp, now);
    if (gw_user_attach(c, &cl) != NT_OK) {
        gw_reply_error(c, ref, GW_E_UNAVAILABLE, "cannot subscribe to your events now, reconnect");
        gw_conn_close(c, 1011);
        return;
    }
    gw_membership_publish_ctl(NT_SUBJ_CTL_CONN, "open", c, NULL);
    hello(c, ref);
}

void gw_session_refresh(gw_conn *c, const json_t *ref, const char *token, size_t len)
{
    nt_claims cl;
    char why[128] = "invalid token", ack[64];
    int64_t now = nt_now_ms() / 1000;
    if (nt_jwt_verify_rules(token, len, &gw->cfg.jwt, now, &cl, why, sizeof why) != NT_OK)
        return gw_reply_error(c, ref, GW_E_UNAUTHORIZED, why);
    if (gw_revoke_refused(&cl))
        return gw_reply_error(c, ref, GW_E_UNAUTHORIZED, "token revoked");
    if (strcmp(cl.sub, c->user->id) != 0 || strcmp(cl.app, c->user->app) != 0)
        return gw_reply_error(c, ref, GW_E_UNAUTHORIZED,
                              "a refreshed token must be for the same user and app");
    gw_conn_token_set(c, cl.exp, now);
    int n = snprintf(ack, sizeof ack, "{\"expires_at\":%lld}", (long long)cl.exp);
    gw_reply_ack(c, ref, ack, (size_t)n);
}

/* A {type:"disconnect"} envelope on u's subject: closes u's local connections. */
static void disconnect(gw_user *u, const nt_envr *r)
{
    int64_t code = GW_CLOSE_SERVER_DISCONNECT;
    if (!nt_envr_int(r, "code", &code) || code < 4000 || code > 4999)
        code = GW_CLOSE_SERVER_DISCONNECT;
    nt_info("server API: closing %u connection(s) of %s/%s", u->nconns, u->app, u->id);
    /* gw_conn_close only marks: the list is not changed while walking it */
    for (gw_conn *c = gw_user_conns(u, NULL); c; c = gw_user_conns(u, c))
        gw_conn_close(c, (uint16_t)code);
}

void gw_session_user_envelope(gw_user *u, const nt_envr *r)
{
    if (nt_envr_str_eq(r, "type", "disconnect"))
        disconnect(u, r);
    else if (nt_envr_str_eq(r, "type", "revoke"))
        gw_membership_revoked(u, r);
    else
        gw_sends_envelope(u, r);
}

void gw_session_closed(gw_conn *c)
{
    gw_sends_conn_closed(c);
    if (!c->user)
        return;
    gw_membership_publish_ctl(NT_SUBJ_CTL_CONN, "close", c, NULL);
    gw_membership_conn_closed(c);
    gw_rooms_conn_closed(c);
    if (c->user->nconns == 1)
        gw_presence_user_gone(c->user);
    gw_user_detach(c);
}

static void auth_timeout(gw_conn *c)
{
    char msg[96];
    snprintf(msg, sizeof msg, "authentication timed out: no valid auth frame within %u ms",
             gw->cfg.auth_timeout_ms);
    gw_reply_error(c, NULL, GW_E_UNAUTHORIZED, msg);
    gw_conn_close(c, 4001);
}

static void token_expired(gw_conn *c)
{
    gw_reply_error(c, NULL, GW_E_UNAUTHORIZED, "token expired");
    gw_conn_close(c, 4001);
}

static void token_expiring(gw_conn *c)
{
    char data[48];
    int n = snprintf(data, sizeof data, "{\"expires_at\":%u}", c->exp_s);
    gw_reply_event(c, "token_expiring", NULL, data, (size_t)n);
}

const gw_conn_hooks gw_session_conn_hooks = {
    .auth_timeout = auth_timeout,
    .token_expired = token_expired,
    .token_expiring = token_expiring,
};
