/* ratelimit.c: the per-connection and per-user rate limits (on rate.c's GCRA), requests
 * in flight per connection, the 4029 close. */
#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "alloc.h"
#include "config.h"
#include "conn.h"
#include "gw.h"
#include "log.h"
#include "reply.h"
#include "rooms.h"

static const struct {
    const char *setting, *def, *what;
    bool per_user;
} table[] = {
#define GW_LIMIT_ROW(name, setting, def, what, per_user) { setting, def, what, per_user },
    GW_LIMIT_MAP(GW_LIMIT_ROW)
#undef GW_LIMIT_ROW
};

/* This module's state (gw->limits): its metrics. */
typedef struct gw_limits {
    nt_metric *refused[GW_L_COUNT];      /* refusals by limit */
    nt_metric *requests_refused;         /* over NATTER_MAX_REQUESTS_PER_CONN */
    nt_metric *abuse_closed;             /* connections closed with 4029 */
} gw_limits;

void gw_limits_configure(void)
{
    char why[96];
    for (int i = 0; i < GW_L_COUNT; i++) {
        const char *v = nt_config_str(table[i].setting, table[i].def, table[i].what);
        if (!gw_rate_parse(v, &gw->cfg.rates[i], why, sizeof why))
            nt_config_fatal("%s=%s is invalid: %s", table[i].setting, v, why);
    }
}

void gw_limits_create(gw_ctx *ctx)
{
    gw_limits *lm = ctx->limits = nt_calloc(1, sizeof *ctx->limits);
    char name[128];
    static const char *const names[] = {
#define GW_LIMIT_NAME(name, setting, def, what, per_user) #name,
        GW_LIMIT_MAP(GW_LIMIT_NAME)
#undef GW_LIMIT_NAME
    };
    for (int i = 0; i < GW_L_COUNT; i++) {
        char lower[40];
        size_t k = 0;
        for (const char *p = names[i]; *p && k + 1 < sizeof lower; p++)
            lower[k++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        lower[k] = '\0';
        snprintf(name, sizeof name, "natter_gateway_rate_limited_total{limit=\"%s\"}", lower);
        lm->refused[i] = nt_metric_counter(name, "Actions refused by a rate limit, by limit");
    }
    lm->requests_refused = nt_metric_counter("natter_gateway_requests_refused_total",
                                             "Requests refused over NATTER_MAX_REQUESTS_PER_CONN in flight");
    lm->abuse_closed = nt_metric_counter("natter_gateway_abuse_closed_total",
                                         "Connections closed with 4029 for repeated refusals");
}

void gw_limits_destroy(gw_ctx *ctx)
{
    nt_free(ctx->limits);
    ctx->limits = NULL;
}

void gw_limit_refuse(gw_conn *c, const json_t *ref, const char *what, uint32_t retry_ms)
{
    gw_reply_error_retry(c, ref, GW_E_RATE_LIMITED, what, retry_ms);
    if (!c->user || c->close_code)
        return;
    uint32_t ignored;
    if (!gw_rate_take(&c->user->lim.tat[GW_L_USER_REFUSALS - GW_L_FIRST_USER], &gw->cfg.rates[GW_L_USER_REFUSALS],
                      gw_rate_now(), &ignored)) {
        nt_metric_add(gw->limits->abuse_closed, 1);
        nt_info("closing connection %s of %s/%s with 4029: refused too often (NATTER_ABUSE_REFUSALS)",
                c->id, c->user->app, c->user->id);
        gw_conn_close(c, 4029);
    }
}

static bool refuse_rate(gw_conn *c, const json_t *ref, gw_limit l, uint32_t retry_ms)
{
    char msg[200];
    const gw_rate *r = &gw->cfg.rates[l];
    snprintf(msg, sizeof msg, "rate limited: at most %u %s %s (burst %u, %s); retry in %u ms",
             r->count, table[l].what, r->period_ms == 1000 ? "a second" : "a minute", r->burst,
             table[l].setting, retry_ms);
    nt_metric_add(gw->limits->refused[l], 1);
    gw_limit_refuse(c, ref, msg, retry_ms);
    return false;
}

bool gw_limit_admit_user(gw_conn *c, const json_t *ref, gw_limit user_limit)
{
    uint32_t retry;
    if (!gw_rate_take(&c->user->lim.tat[user_limit - GW_L_FIRST_USER], &gw->cfg.rates[user_limit], gw_rate_now(),
                      &retry))
        return refuse_rate(c, ref, user_limit, retry);
    return true;
}

bool gw_limit_admit(gw_conn *c, const json_t *ref, gw_limit conn_limit, gw_limit user_limit)
{
    uint32_t now = gw_rate_now(), retry;
    uint32_t *ctat = conn_limit == GW_L_CONN_SENDS ? &c->lim.sends_tat : &c->lim.subscribes_tat;
    uint32_t csaved = *ctat;
    if (!gw_rate_take(ctat, &gw->cfg.rates[conn_limit], now, &retry))
        return refuse_rate(c, ref, conn_limit, retry);
    if (!gw_rate_take(&c->user->lim.tat[user_limit - GW_L_FIRST_USER], &gw->cfg.rates[user_limit], now, &retry)) {
        *ctat = csaved;                                /* nothing taken when refused */
        return refuse_rate(c, ref, user_limit, retry);
    }
    return true;
}

bool gw_limit_req_begin(gw_conn *c, const json_t *ref)
{
    if (c->nreq >= gw->cfg.max_requests_per_conn) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "rate limited: %u requests of this connection are awaiting their answer; the "
                 "limit is %u (NATTER_MAX_REQUESTS_PER_CONN)", c->nreq,
                 gw->cfg.max_requests_per_conn);
        nt_metric_add(gw->limits->requests_refused, 1);
        gw_limit_refuse(c, ref, msg, 100);
        return false;
    }
    c->nreq++;
    return true;
}

void gw_limit_req_end(gw_conn *c)
{
    if (c && c->nreq)
        c->nreq--;
}
