/* rpc.c: writing and reading the reply envelope of natter's request subjects. */
#include "rpc.h"

#include <stdio.h>
#include <string.h>

#include "wire.h"

void nt_rpc_ok_init(nt_envw *w)
{
    nt_envw_init(w);
    nt_envw_bool(w, NT_KEY_OK, true);
}

void nt_rpc_ok_json_init(nt_envw *w, const char *json, size_t len)
{
    nt_rpc_ok_init(w);
    if (json)
        nt_envw_str(w, NT_KEY_JSON, json, len);
    else
        nt_envw_cstr(w, NT_KEY_JSON, NULL);
}

void nt_rpc_error_init(nt_envw *w, const char *code, const char *message,
                       int64_t retry_after_ms)
{
    nt_envw_init(w);
    nt_envw_bool(w, NT_KEY_OK, false);
    nt_envw_cstr(w, NT_KEY_CODE, code);
    nt_envw_cstr(w, NT_KEY_MESSAGE, message);
    if (retry_after_ms > 0)
        nt_envw_int(w, NT_KEY_RETRY_AFTER_MS, retry_after_ms);
}

nt_status nt_rpc_send(nt_bus *bus, const char *reply, nt_envw *w)
{
    nt_status st = NT_OK;
    size_t len;

    if (reply) {
        const char *data = nt_envw_finish(w, &len);
        st = nt_bus_publish(bus, reply, NULL, data, len);
    }
    nt_envw_free(w);
    return st;
}

nt_status nt_rpc_reply_ok(nt_bus *bus, const char *reply)
{
    nt_envw w;
    nt_rpc_ok_init(&w);
    return nt_rpc_send(bus, reply, &w);
}

nt_status nt_rpc_reply_json(nt_bus *bus, const char *reply, const char *json, size_t len)
{
    nt_envw w;
    nt_rpc_ok_json_init(&w, json, len);
    return nt_rpc_send(bus, reply, &w);
}

nt_status nt_rpc_reply_error(nt_bus *bus, const char *reply, const char *code,
                             const char *message, int64_t retry_after_ms)
{
    nt_envw w;
    nt_rpc_error_init(&w, code, message, retry_after_ms);
    return nt_rpc_send(bus, reply, &w);
}

/* An optional string field: absent or nil -> *s NULL; true unless of another type. */
static bool opt_str(const nt_envr *r, const char *key, const char **s, size_t *len)
{
    const msgpack_object *o = nt_envr_get(r, key);
    *s = NULL;
    *len = 0;
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
        return true;
    if (o->type != MSGPACK_OBJECT_STR)
        return false;
    *s = o->via.str.ptr;
    *len = o->via.str.size;
    return true;
}

static nt_status malformed(char *why, size_t whylen, const char *what)
{
    snprintf(why, whylen, "malformed reply: %s", what);
    return NT_EPROTO;
}

nt_status nt_rpc_parse(nt_rpc_result *out, const char *data, size_t len, char *why,
                       size_t whylen)
{
    memset(out, 0, sizeof *out);
    if (nt_envr_parse(&out->env, data, len) != NT_OK)
        return malformed(why, whylen, "not an envelope");
    const nt_envr *r = &out->env;
    if (!nt_envr_bool(r, NT_KEY_OK, &out->ok))
        return malformed(why, whylen, "no boolean ok");
    if (!opt_str(r, NT_KEY_JSON, &out->json, &out->json_len))
        return malformed(why, whylen, "json is not a string");
    if (out->ok)
        return NT_OK;
    if (!opt_str(r, NT_KEY_CODE, &out->code, &out->code_len) || out->code == NULL ||
        out->code_len == 0)
        return malformed(why, whylen, "a refusal without a code");
    if (!opt_str(r, NT_KEY_MESSAGE, &out->message, &out->message_len))
        return malformed(why, whylen, "message is not a string");
    const msgpack_object *retry = nt_envr_get(r, NT_KEY_RETRY_AFTER_MS);
    if (retry && !nt_envr_int(r, NT_KEY_RETRY_AFTER_MS, &out->retry_after_ms))
        return malformed(why, whylen, "retry_after_ms is not an integer");
    if (out->retry_after_ms < 0)
        out->retry_after_ms = 0;
    return NT_OK;
}

nt_status nt_rpc_parse_msg(nt_rpc_result *out, nt_status st, const nt_bus_msg *msg,
                           char *why, size_t whylen)
{
    if (st == NT_OK && msg == NULL)
        st = NT_EPROTO;
    if (st != NT_OK) {
        memset(out, 0, sizeof *out);
        snprintf(why, whylen, "%s", st == NT_ETIMEDOUT ? "timed out"
                                    : st == NT_EUNAVAIL ? "no responders"
                                    : nt_status_text(st));
        return st;
    }
    return nt_rpc_parse(out, msg->data, msg->len, why, whylen);
}

static bool same(const char *a, size_t alen, const char *s)
{
    return a != NULL && alen == strlen(s) && memcmp(a, s, alen) == 0;
}

bool nt_rpc_code_is(const nt_rpc_result *r, const char *s)
{
    return !r->ok && same(r->code, r->code_len, s);
}

bool nt_rpc_message_is(const nt_rpc_result *r, const char *s)
{
    return !r->ok && same(r->message, r->message_len, s);
}

void nt_rpc_result_free(nt_rpc_result *r)
{
    nt_envr_free(&r->env);
    memset(r, 0, sizeof *r);
}
