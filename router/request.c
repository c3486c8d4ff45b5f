/* request.c: reading router request envelopes (validated ids) and writing error replies. */
#include "request.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"

bool rt_req_id(const nt_envr *r, const char *key, rt_id out, char *why, size_t whylen)
{
    size_t len = 0;
    const char *s = nt_envr_str(r, key, &len);

    if (!s) {
        snprintf(why, whylen, "%s is missing", key);
        return false;
    }
    if (!nt_valid_id(s, len)) {
        snprintf(why, whylen, "%s must match [A-Za-z0-9_-]{1,64}", key);
        return false;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

bool rt_req_ids(const nt_envr *r, const char *const *keys, char *const *outs,
                char *why, size_t whylen)
{
    for (size_t i = 0; keys[i]; i++) {
        if (!rt_req_id(r, keys[i], outs[i], why, whylen))
            return false;
    }
    return true;
}

void rt_reply_error(rt_router *rt, const char *reply, const char *code, const char *message)
{
    nt_envw w;
    size_t len;

    if (!reply)
        return;
    nt_envw_init(&w);
    nt_envw_bool(&w, "ok", false);
    nt_envw_cstr(&w, "code", code);
    nt_envw_cstr(&w, "message", message);
    const char *data = nt_envw_finish(&w, &len);
    rt_reply_raw(rt, reply, data, len);
    nt_envw_free(&w);
}

void rt_reply_raw(rt_router *rt, const char *reply, const void *data, size_t len)
{
    if (!reply)
        return;
    nt_status st = nt_bus_publish(rt->bus, reply, NULL, data, len);
    if (st != NT_OK)
        nt_warn("reply to %s failed: %s", reply, nt_status_text(st));
}

nt_status rt_eval(rt_router *rt, const char *script, int nkeys, const char *const *args,
                  rt_redis_cb cb, void *arg)
{
    const char *argv[19];
    size_t argvlen[19];
    char nkeys_s[4];
    int argc = 0;

    argv[argc++] = "EVAL";
    argv[argc++] = script;
    snprintf(nkeys_s, sizeof(nkeys_s), "%d", nkeys);
    argv[argc++] = nkeys_s;
    for (size_t i = 0; args[i] && argc < 19; i++)
        argv[argc++] = args[i];
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    return rt_redis_command(rt->redis, cb, arg, argc, argv, argvlen);
}

void rt_publish_event(rt_router *rt, const char *subject, const char *json, size_t len,
                      const char *skip_user)
{
    nt_envw w;
    size_t n;

    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", "event");
    nt_envw_str(&w, "json", json, len);
    if (skip_user)
        nt_envw_cstr(&w, "skip_user", skip_user);
    const char *data = nt_envw_finish(&w, &n);
    nt_status st = nt_bus_publish(rt->bus, subject, NULL, data, n);
    if (st != NT_OK)
        nt_warn("event to %s dropped: %s", subject, nt_status_text(st));
    nt_envw_free(&w);
}

void rt_reply_json(rt_router *rt, const char *reply, const char *json, size_t len)
{
    nt_envw w;
    size_t n;

    if (!reply)
        return;
    nt_envw_init(&w);
    nt_envw_bool(&w, "ok", true);
    nt_envw_str(&w, "json", json, len);
    const char *data = nt_envw_finish(&w, &n);
    rt_reply_raw(rt, reply, data, n);
    nt_envw_free(&w);
}

bool rt_query_begin(rt_router *rt, const nt_bus_msg *msg, const char *what,
                    const char *const *keys, char *const *outs)
{
    char why[128];
    nt_envr r;

    if (!msg->reply) {
        nt_metric_add(rt->m.bad_requests, 1);
        nt_warn("%s without a reply subject dropped", what);
        return false;
    }
    if (nt_envr_parse(&r, msg->data, msg->len) != NT_OK) {
        nt_metric_add(rt->m.bad_requests, 1);
        rt_reply_error(rt, msg->reply, "bad_request", "request is not an envelope");
        return false;
    }
    bool valid = rt_req_ids(&r, keys, outs, why, sizeof(why));
    nt_envr_free(&r);
    if (!valid) {
        nt_metric_add(rt->m.bad_requests, 1);
        rt_reply_error(rt, msg->reply, "bad_request", why);
        return false;
    }
    return true;
}
