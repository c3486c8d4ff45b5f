/* dialect.c: the registered wire dialects, by id and by WebSocket path. */
#include "dialect.h"

#include <string.h>

#include "alloc.h"
#include "gw.h"

/* This module's state (gw->dialects): the registry. */
typedef struct gw_dialects {
    const gw_dialect *v[GW_DIALECT_SLOTS];
} gw_dialects;

_Static_assert(GW_DIALECT_COUNT <= GW_DIALECT_SLOTS, "gw_conn.dialect holds 2 bits");

void gw_dialects_create(gw_ctx *ctx)
{
    ctx->dialects = nt_calloc(1, sizeof *ctx->dialects);
}

void gw_dialects_destroy(gw_ctx *ctx)
{
    nt_free(ctx->dialects);
    ctx->dialects = NULL;
}

void gw_dialect_register(gw_dialect_id id, const gw_dialect *d)
{
    gw->dialects->v[id] = d;
}

const gw_dialect *gw_dialect_by_path(const char *path, gw_dialect_id *id)
{
    const gw_dialect *const *dialects = gw->dialects->v;
    for (int i = 0; i < GW_DIALECT_SLOTS; i++)
        if (dialects[i] && strcmp(dialects[i]->path, path) == 0) {
            *id = (gw_dialect_id)i;
            return dialects[i];
        }
    return NULL;
}

bool gw_dialect_accepts(const char *path)
{
    gw_dialect_id id;
    return gw_dialect_by_path(path, &id) != NULL;
}

void gw_dialect_open(gw_conn *c, const char *path, const char *token)
{
    gw_dialect_id id = GW_DIALECT_NATIVE;
    gw_dialect_by_path(path, &id);
    c->dialect = id;
    gw->dialects->v[id]->opened(c, token);
}

void gw_dialect_frame(gw_conn *c, const char *buf, size_t len)
{
    gw->dialects->v[c->dialect]->frame(c, buf, len);
}

const gw_dialect *gw_dialect_of(const gw_conn *c)
{
    return gw->dialects->v[c->dialect];
}
