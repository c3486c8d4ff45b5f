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
