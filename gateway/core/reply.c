/* reply.c: the core's words to one connection, and fan-out buffers, in its dialect. */
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dialect.h"
#include "gw.h"

/* This module's state (gw->replies). */
typedef struct gw_replies {
    nt_metric *errors_by_code[GW_E_COUNT];
} gw_replies;

void gw_reply_create(gw_ctx *ctx)
{
    char name[96];
    gw_replies *s = nt_calloc(1, sizeof *s);
    for (int i = 0; i < GW_E_COUNT; i++) {
        snprintf(name, sizeof name, "natter_gateway_errors_total{code=\"%s\"}", gw_errcode_name((gw_errcode)i));
        s->errors_by_code[i] = nt_metric_counter(name, "Error events and responses sent, by code");
    }
    ctx->replies = s;
}

void gw_reply_destroy(gw_ctx *ctx)
{
    nt_free(ctx->replies);
    ctx->replies = NULL;
}

void gw_reply_count(gw_errcode code)
{
    nt_metric_add(gw->replies->errors_by_code[(unsigned)code < GW_E_COUNT ? code : GW_E_INTERNAL], 1);
}

static void send_owned(gw_conn *c, char *s, size_t len)
{
    if (!s)
        return;
    gw_conn_send(c, s, len);
    nt_free(s);
}

void gw_reply_ack(gw_conn *c, const json_t *ref, const char *data_json, size_t len)
{
    size_t n = 0;
    if (ref) {
        char *s = gw_dialect_of(c)->encode_ack(ref, data_json, len, &n);
        send_owned(c, s, n);
    }
}

void gw_reply_ack_obj(gw_conn *c, const json_t *ref, json_t *data)
{
    char *s = json_dumps(data, JSON_COMPACT);
    gw_reply_ack(c, ref, s, strlen(s));
    nt_free(s);
    json_decref(data);
}

static void send_error(gw_conn *c, const json_t *ref, gw_errcode code, const char *message,
                       int64_t retry_after_ms)
{
    size_t n = 0;
    gw_reply_count(code);
    char *s = gw_dialect_of(c)->encode_error(ref, code, message, retry_after_ms, &n);
    send_owned(c, s, n);
}

void gw_reply_error_retry(gw_conn *c, const json_t *ref, gw_errcode code, const char *message,
                          uint32_t retry_after_ms)
{
    send_error(c, ref, code, message, retry_after_ms);
}

void gw_reply_error(gw_conn *c, const json_t *ref, gw_errcode code, const char *message)
{
    send_error(c, ref, code, message, -1);
}

void gw_reply_fail(gw_conn *c, const json_t *ref, const gw_error *err)
{
    gw_reply_error(c, ref, err->code, err->message);
}

void gw_reply_event(gw_conn *c, const char *event, const char *room, const char *data_json,
                    size_t len)
{
    size_t n = 0;
    char *s = gw_dialect_of(c)->encode_event(event, room, data_json, len, &n);
    send_owned(c, s, n);
}

void gw_reply_native(gw_conn *c, const char *json, size_t len)
{
    gw_buf *b = gw_buf_create(json, len);
    gw_fanout f;
    gw_fanout_init(&f, b);
    gw_conn_enqueue(c, gw_fanout_for(&f, c));
    gw_fanout_free(&f);
    gw_buf_release(b);
}

void gw_fanout_init(gw_fanout *f, gw_buf *b)
{
    memset(f, 0, sizeof *f);
    gw_buf_retain(b);
    f->native = b;
}

gw_buf *gw_fanout_for(gw_fanout *f, const gw_conn *c)
{
    unsigned d = c->dialect;
    if (!(f->done & (1u << d))) {
        const gw_dialect *dl = gw_dialect_of(c);
        f->enc[d] = dl->encode_fanout ? dl->encode_fanout(f->native) : NULL;
        f->done |= (uint8_t)(1u << d);
    }
    return f->enc[d] ? f->enc[d] : f->native;
}

void gw_fanout_free(gw_fanout *f)
{
    for (unsigned i = 0; i < 4; i++)
        gw_buf_release(f->enc[i]);
    gw_buf_release(f->native);
}
