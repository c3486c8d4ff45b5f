/* partitions.c: claiming partitions with pg_try_advisory_lock (in natter_claim) on
 * the partition's write connection (ps_wpg); each one won or lost is reported to the
 * hooks main gives (which start or stop its pull).
 * A partition's batches commit on the session that holds its lock, so losing that
 * connection loses the lock and the batch in flight together. */
#include "partitions.h"

#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "log.h"
#include "pg.h"

struct ps_parts {
    ps_ctx *ctx;
    unsigned n;
    ps_part *v;
    uv_timer_t timer;
    uint64_t next_gen;
    ps_parts_hooks hooks;
};

static void parts_claim_done(PGresult *res, void *arg);

static void parts_set_owned_metric(ps_parts *parts)
{
    nt_metric_set(parts->ctx->m.owned, (int64_t)ps_parts_owned(parts));
}

static void parts_tick(uv_timer_t *t)
{
    ps_parts *parts = t->data;
    ps_ctx *ctx = parts->ctx;
    if (ctx->draining)
        return;
    for (unsigned k = 0; k < ctx->nwpg; k++) {
        ps_pg *pg = ctx->wpg[k];
        bool sent = false;
        for (unsigned p = k; ps_pg_up(pg) && p < parts->n; p += ctx->nwpg) {
            ps_part *part = &parts->v[p];
            if (part->owned || part->claiming)
                continue;
            char pv[16];
            snprintf(pv, sizeof(pv), "%u", p);
            const char *params[1] = { pv };
            if (ps_pg_prepared(pg, "claim", 1, params, parts_claim_done, part) != NT_OK)
                break;
            part->claiming = true;
            sent = true;
        }
        if (sent)
            ps_pg_sync(pg, NULL, NULL);
    }
}

static void parts_claim_done(PGresult *res, void *arg)
{
    ps_part *part = arg;
    ps_parts *parts = part->parts;
    part->claiming = false;
    if (res == NULL)
        return;
    if (!ps_pg_ok(res)) {
        nt_warn("partition %u: claim failed: %s", part->p, PQresultErrorMessage(res));
        return;
    }
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
        return;
    if (parts->ctx->draining)
        return;
    part->owned = true;
    part->gen = ++parts->next_gen;
    part->committed = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    part->published = part->committed;
    nt_info("partition %u: owned (stream_seq %llu)", part->p,
            (unsigned long long)part->committed);
    parts_set_owned_metric(parts);
    parts->hooks.owned(parts->hooks.arg, part->p, part->gen);
}

ps_parts *ps_parts_create(ps_ctx *ctx, const ps_parts_hooks *hooks)
{
    ps_parts *parts = nt_calloc(1, sizeof(*parts));
    parts->ctx = ctx;
    parts->hooks = *hooks;
    parts->n = ctx->cfg.partitions;
    parts->v = nt_calloc(parts->n, sizeof(*parts->v));
    for (unsigned p = 0; p < parts->n; p++) {
        parts->v[p].parts = parts;
        parts->v[p].p = p;
    }
    uv_timer_init(ctx->loop, &parts->timer);
    parts->timer.data = parts;
    return parts;
}

void ps_parts_start(ps_parts *parts)
{
    uv_timer_start(&parts->timer, parts_tick, 0, (uint64_t)parts->ctx->cfg.claim_interval_ms);
}

void ps_parts_stop_claiming(ps_parts *parts)
{
    uv_timer_stop(&parts->timer);
}

static void parts_on_closed(uv_handle_t *h)
{
    ps_parts *parts = h->data;
    nt_free(parts->v);
    nt_free(parts);
}

void ps_parts_destroy(ps_parts *parts)
{
    if (parts == NULL)
        return;
    uv_close((uv_handle_t *)&parts->timer, parts_on_closed);
}

void ps_parts_on_pg(ps_parts *parts, unsigned k, bool up)
{
    if (up) {
        if (uv_is_active((uv_handle_t *)&parts->timer))
            parts_tick(&parts->timer);
        return;
    }
    unsigned lost = 0, nwpg = parts->ctx->nwpg;
    for (unsigned p = k; p < parts->n; p += nwpg) {
        ps_part *part = &parts->v[p];
        bool was_owned = part->owned;
        lost += was_owned;
        part->owned = false;
        part->claiming = false;
        parts->hooks.lost(parts->hooks.arg, part, was_owned);
    }
    parts_set_owned_metric(parts);
    if (lost > 0)
        nt_warn("write connection %u lost: %u partitions released", k, lost);
}

ps_part *ps_parts_get(ps_parts *parts, unsigned p)
{
    return p < parts->n ? &parts->v[p] : NULL;
}

unsigned ps_parts_owned(const ps_parts *parts)
{
    unsigned n = 0;
    for (unsigned p = 0; p < parts->n; p++)
        n += parts->v[p].owned;
    return n;
}

unsigned ps_parts_inflight(const ps_parts *parts)
{
    unsigned n = 0;
    for (unsigned p = 0; p < parts->n; p++)
        n += parts->v[p].inflight != NULL;
    return n;
}
