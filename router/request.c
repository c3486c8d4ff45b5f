/* request.c: reading router request envelopes (validated ids) and writing error replies. */
#include "request.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"

#include "log.h"
#include "rpc.h"
#include "util.h"
#include "wire.h"

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
    rt_reply_error_retry(rt, reply, code, message, 0);
}

/* The router's replies go out through rpc.h; a failed publish is only logged. */
static void reply_sent(const char *reply, nt_status st)
{
    if (st != NT_OK)
        nt_warn("reply to %s failed: %s", reply, nt_status_text(st));
}

void rt_reply_error_retry(rt_router *rt, const char *reply, const char *code, const char *message,
                          int64_t retry_after_ms)
{
    reply_sent(reply, nt_rpc_reply_error(rt->bus, reply, code, message, retry_after_ms));
}

void rt_reply_raw(rt_router *rt, const char *reply, const void *data, size_t len)
{
    if (!reply)
        return;
    reply_sent(reply, nt_bus_publish(rt->bus, reply, NULL, data, len));
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
    nt_envw_cstr(&w, NT_KEY_TYPE, NT_TYPE_EVENT);
    nt_envw_str(&w, NT_KEY_JSON, json, len);
    if (skip_user)
        nt_envw_cstr(&w, NT_KEY_SKIP_USER, skip_user);
    const char *data = nt_envw_finish(&w, &n);
    nt_status st = nt_bus_publish(rt->bus, subject, NULL, data, n);
    if (st != NT_OK)
        nt_warn("event to %s dropped: %s", subject, nt_status_text(st));
    nt_envw_free(&w);
}

void rt_reply_json(rt_router *rt, const char *reply, const char *json, size_t len)
{
    reply_sent(reply, nt_rpc_reply_json(rt->bus, reply, json, len));
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

/* ---- room access gate (natter.rpc.persist.access) ---- */

typedef struct access_wait {
    rt_router *rt;
    nt_bus_msg_cb handler;
    void *arg;
    char *subject;
    char *reply;
    char *data;
    size_t len;
} access_wait;

static void access_wait_free(access_wait *w)
{
    nt_free(w->subject);
    nt_free(w->reply);
    nt_free(w->data);
    nt_free(w);
}

static void on_access(nt_bus *bus, nt_status st, const nt_bus_msg *m, void *arg)
{
    access_wait *w = arg;
    char why[96];
    nt_rpc_result res;

    st = nt_rpc_parse_msg(&res, st, m, why, sizeof why);
    bool ok = st == NT_OK && res.ok;
    nt_rpc_result_free(&res);
    if (st != NT_OK) {
        nt_warn("%s: %s", NT_SUBJ_RPC_PERSIST_ACCESS, why);
        rt_reply_error(w->rt, w->reply, "unavailable", "persister unavailable");
    } else if (!ok) {             /* not_found / forbidden, as the persister said it */
        rt_reply_raw(w->rt, w->reply, m->data, m->len);
    } else {
        nt_bus_msg again = { .subject = w->subject, .reply = w->reply, .data = w->data,
                             .len = w->len, .raw = NULL };
        w->handler(bus, &again, w->arg);
    }
    access_wait_free(w);
}

void rt_with_room_access(rt_router *rt, const nt_bus_msg *msg, nt_bus_msg_cb handler, void *arg)
{
    nt_envr r;
    size_t ulen = 0;
    bool asked = false;

    if (msg->reply && nt_envr_parse(&r, msg->data, msg->len) == NT_OK) {
        asked = nt_envr_str(&r, NT_KEY_USER, &ulen) != NULL;
        nt_envr_free(&r);
    }
    if (!asked)
        return handler(rt->bus, msg, arg);
    access_wait *w = nt_calloc(1, sizeof(*w));
    w->rt = rt;
    w->handler = handler;
    w->arg = arg;
    w->subject = nt_strdup(msg->subject);
    w->reply = nt_strdup(msg->reply);
    w->data = nt_malloc(msg->len ? msg->len : 1);
    memcpy(w->data, msg->data, msg->len);
    w->len = msg->len;
    /* The persister reads app, room and user from the same envelope. */
    if (nt_bus_request(rt->bus, NT_SUBJ_RPC_PERSIST_ACCESS, NULL, msg->data, msg->len,
                       rt->request_timeout_ms, on_access, w, NULL) != NT_OK) {
        rt_reply_error(rt, msg->reply, "unavailable", "persister unavailable");
        access_wait_free(w);
    }
}
