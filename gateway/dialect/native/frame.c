/* frame.c: the native protocol's frames: parsing the envelope of a client frame, and the
 * JSON the server sends back. */
#include "frame.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "jsonw.h"
#include "util.h"

#define GW_REF_MAX_CHARS 64

static const char *const actions[] = {
#define GW_ACTION_ROW(name, text) text,
    GW_ACTION_MAP(GW_ACTION_ROW)
#undef GW_ACTION_ROW
};

const char *gw_action_name(gw_action a)
{
    return (unsigned)a < GW_A_COUNT ? actions[a] : "?";
}

bool gw_channel_parse(const char *s, gw_channel *out, gw_error *err)
{
    static const struct { const char *prefix; gw_chan_kind kind; } forms[] = {
        { "chat.room.", GW_CH_ROOM }, { "room.", GW_CH_ROOM },
        { "dm.", GW_CH_DM }, { "chat.", GW_CH_ROOM },
    };
    char sb[80];
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        size_t pl = strlen(forms[i].prefix);
        if (strncmp(s, forms[i].prefix, pl) != 0)
            continue;
        const char *id = s + pl;
        size_t idlen = strlen(id);
        if (!nt_valid_id(id, idlen))
            break;
        out->kind = forms[i].kind;
        memcpy(out->id, id, idlen + 1);
        return true;
    }
    return gw_fail(err, GW_E_BAD_REQUEST,
                   "invalid channel '%s': expected room.<id> with id of 1-64 [A-Za-z0-9_-]",
                   nt_shorten(s, sb, sizeof sb));
}

static bool parse_ref(json_t *v, gw_error *err)
{
    if (json_is_integer(v))
        return true;
    if (json_is_string(v) &&
        nt_utf8_len(json_string_value(v), json_string_length(v)) <= GW_REF_MAX_CHARS)
        return true;
    return gw_fail(err, GW_E_BAD_REQUEST,
                   "field 'ref' must be a string of at most %d characters or an integer",
                   GW_REF_MAX_CHARS);
}

static bool parse_action(const json_t *v, gw_action *out, gw_error *err)
{
    char sb[48];
    if (!json_is_string(v))
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'action' must be a string, not %s",
                       gw_json_type_text(v));
    const char *s = json_string_value(v);
    for (int i = 0; i < GW_A_COUNT; i++)
        if (strcmp(s, actions[i]) == 0) {
            *out = (gw_action)i;
            return true;
        }
    return gw_fail(err, GW_E_BAD_REQUEST, "unknown action '%s'", nt_shorten(s, sb, sizeof sb));
}

bool gw_frame_parse(const char *buf, size_t len, gw_frame *f, gw_error *err)
{
    json_error_t je;
    memset(f, 0, sizeof *f);
    f->root = json_loadb(buf, len, 0, &je);
    if (!f->root)
        return gw_fail(err, GW_E_BAD_REQUEST, "malformed JSON at line %d column %d: %s",
                       je.line, je.column, je.text);
    if (!json_is_object(f->root))
        return gw_fail(err, GW_E_BAD_REQUEST, "a frame must be a JSON object, not %s",
                       gw_json_type_text(f->root));

    json_t *ref = json_object_get(f->root, "ref");
    if (ref && !json_is_null(ref)) {
        if (!parse_ref(ref, err))
            return false;
        f->ref = ref;
    }
    json_t *action = json_object_get(f->root, "action");
    if (!action)
        return gw_fail(err, GW_E_BAD_REQUEST, "missing field 'action'");
    if (!parse_action(action, &f->action, err))
        return false;

    json_t *data = json_object_get(f->root, "data");
    if (data && !json_is_null(data)) {
        if (!json_is_object(data))
            return gw_fail(err, GW_E_BAD_REQUEST, "field 'data' must be an object, not %s",
                           gw_json_type_text(data));
        f->data = data;
    }
    json_t *event = json_object_get(f->root, "event");
    if (event && !json_is_null(event)) {
        if (!json_is_string(event))
            return gw_fail(err, GW_E_BAD_REQUEST, "field 'event' must be a string, not %s",
                           gw_json_type_text(event));
        f->event = json_string_value(event);
    }
    json_t *channel = json_object_get(f->root, "channel");
    if (channel && !json_is_null(channel)) {
        if (!json_is_string(channel))
            return gw_fail(err, GW_E_BAD_REQUEST, "field 'channel' must be a string, not %s",
                           gw_json_type_text(channel));
        if (!gw_channel_parse(json_string_value(channel), &f->channel, err))
            return false;
    }
    return true;
}

void gw_frame_free(gw_frame *f)
{
    json_decref(f->root);
    memset(f, 0, sizeof *f);
}

bool gw_frame_need_room(const gw_frame *f, gw_error *err)
{
    switch (f->channel.kind) {
    case GW_CH_ROOM:
        return true;
    case GW_CH_DM:
        return gw_fail(err, GW_E_BAD_REQUEST, "channel dm.%s cannot be used with action '%s'",
                       f->channel.id, gw_action_name(f->action));
    default:
        return gw_fail(err, GW_E_BAD_REQUEST, "missing field 'channel' (room.<id>) for action '%s'",
                       gw_action_name(f->action));
    }
}

bool gw_auth_token(const gw_frame *f, const char **token, size_t *len, gw_error *err)
{
    json_t *v = f->data ? json_object_get(f->data, "token") : NULL;
    if (!v || json_is_null(v))
        return gw_fail(err, GW_E_UNAUTHORIZED, "missing field 'data.token'");
    if (!json_is_string(v))
        return gw_fail(err, GW_E_UNAUTHORIZED, "field 'data.token' must be a string, not %s",
                       gw_json_type_text(v));
    *token = json_string_value(v);
    *len = json_string_length(v);
    return true;
}

/* The compact JSON of a value taken from a parsed frame (so valid UTF-8), or of null;
 * never NULL. Freed with nt_free() (jansson allocates through nt_malloc). */
static char *dump_value(const json_t *v)
{
    char *s = json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        s = nt_strdup("null");
    return s;
}

static char *concat(size_t *len, const char *a, const char *b, const char *c,
                    const char *d, size_t dlen, const char *e)
{
    size_t la = strlen(a), lb = b ? strlen(b) : 0, lc = strlen(c), le = strlen(e);
    size_t n = la + lb + lc + dlen + le;
    char *out = nt_malloc(n + 1), *p = out;
    memcpy(p, a, la); p += la;
    if (b) { memcpy(p, b, lb); p += lb; }
    memcpy(p, c, lc); p += lc;
    memcpy(p, d, dlen); p += dlen;
    memcpy(p, e, le + 1);
    if (len)
        *len = n;
    return out;
}

/* The request_id of a system_request ref, encoded; the ref is its object. */
static char *system_request_id(const json_t *ref)
{
    return dump_value(json_object_get(ref, "request_id"));
}

/* s as a JSON string into w, whatever its bytes: what is not UTF-8 becomes '?'. */
static void put_lossy_str(nt_jsonw *w, const char *s)
{
    size_t n = strlen(s);
    if (nt_valid_utf8(s, n)) {
        nt_jsonw_str(w, s);
        return;
    }
    char *copy = nt_malloc(n + 1);
    memcpy(copy, s, n + 1);
    nt_utf8_scrub(copy, n);
    nt_jsonw_str(w, copy);
    nt_free(copy);
}

static char *encode_error(const json_t *ref, gw_errcode code, const char *message,
                          int64_t retry_after_ms, size_t *len)
{
    nt_jsonw w;
    size_t dlen;
    nt_jsonw_init(&w);
    nt_jsonw_open(&w);
    nt_jsonw_kstr(&w, "code", gw_errcode_name(code));
    nt_jsonw_key(&w, "message");
    put_lossy_str(&w, message ? message : "");
    if (retry_after_ms >= 0)
        nt_jsonw_kint(&w, "retry_after_ms", retry_after_ms);
    nt_jsonw_close(&w);
    const char *d = nt_jsonw_text(&w, &dlen);
    char *out;
    if (json_is_object(ref)) {            /* older envelope: answer as system_response */
        char *id = system_request_id(ref);
        out = concat(len, "{\"event\":\"system_response\",\"data\":{\"request_id\":", id,
                     ",\"error\":", d, dlen, "}}");
        nt_free(id);
    } else {
        char *r = ref ? dump_value(ref) : NULL;
        out = concat(len, r ? "{\"event\":\"error\",\"ref\":" : "{\"event\":\"error\"", r,
                     ",\"data\":", d, dlen, "}");
        nt_free(r);
    }
    nt_jsonw_free(&w);
    return out;
}

char *gw_encode_error(const json_t *ref, gw_errcode code, const char *message, size_t *len)
{
    return encode_error(ref, code, message, -1, len);
}

char *gw_encode_error_retry(const json_t *ref, gw_errcode code, const char *message,
                            uint32_t retry_after_ms, size_t *len)
{
    return encode_error(ref, code, message, retry_after_ms, len);
}

char *gw_encode_http_error(gw_errcode code, const char *message, uint32_t retry_after_ms,
                           size_t *len)
{
    nt_jsonw w;
    size_t n;
    nt_jsonw_init(&w);
    nt_jsonw_open(&w);
    nt_jsonw_key(&w, "error");
    nt_jsonw_open(&w);
    nt_jsonw_kstr(&w, "code", gw_errcode_name(code));
    nt_jsonw_key(&w, "message");
    put_lossy_str(&w, message ? message : "");
    if (retry_after_ms)
        nt_jsonw_kint(&w, "retry_after_ms", retry_after_ms);
    nt_jsonw_close(&w);
    nt_jsonw_close(&w);
    const char *t = nt_jsonw_text(&w, &n);
    char *out = nt_malloc(n + 1);
    memcpy(out, t, n + 1);
    nt_jsonw_free(&w);
    if (len)
        *len = n;
    return out;
}

char *gw_encode_ack(const json_t *ref, const char *data_json, size_t data_len, size_t *len)
{
    if (json_is_object(ref)) {            /* older envelope: the ack data joins request_id */
        char *id = system_request_id(ref);
        bool empty = data_len <= 2;       /* "{}" */
        char *out = concat(len, "{\"event\":\"system_response\",\"data\":{\"request_id\":", id,
                           empty ? "" : ",", empty ? "}" : data_json + 1,
                           empty ? 1 : data_len - 1, "}");
        nt_free(id);
        return out;
    }
    char *r = ref ? dump_value(ref) : NULL;
    char *out = concat(len, r ? "{\"event\":\"ack\",\"ref\":" : "{\"event\":\"ack\"", r,
                       ",\"data\":", data_json, data_len, "}");
    nt_free(r);
    return out;
}

/* {"event":E[,"channel":"room.<room>"],"data":<data_json>} */
static char *encode_event(const char *event, const char *room, const char *data_json,
                          size_t data_len, size_t *len)
{
    nt_jsonw w;
    size_t elen;
    nt_jsonw_init(&w);
    nt_jsonw_raw(&w, "{\"event\":", 9);
    put_lossy_str(&w, event);
    if (room) {
        nt_jsonw_raw(&w, ",\"channel\":\"room.", 17);
        nt_jsonw_raw(&w, room, strlen(room));    /* a room id: [A-Za-z0-9_-] */
        nt_jsonw_raw(&w, "\"", 1);
    }
    nt_jsonw_raw(&w, ",\"data\":", 8);
    nt_jsonw_raw(&w, data_json, data_len);
    nt_jsonw_raw(&w, "}", 1);
    const char *t = nt_jsonw_text(&w, &elen);
    char *out = nt_malloc(elen + 1);
    memcpy(out, t, elen + 1);
    if (len)
        *len = elen;
    nt_jsonw_free(&w);
    return out;
}

char *gw_encode_event(const char *event, const char *data_json, size_t *len)
{
    return encode_event(event, NULL, data_json, strlen(data_json), len);
}

char *gw_encode_room_event(const char *event, const char *room, const char *data_json,
                           size_t data_len, size_t *len)
{
    return encode_event(event, room, data_json, data_len, len);
}

bool gw_frame_legacy(gw_frame *f, gw_error *err)
{
    if (f->action != GW_A_SEND_MESSAGE || !f->event)
        return true;
    const char *what;
    if (strcmp(f->event, "user_action") == 0) {
        if (!f->data || !json_is_string(json_object_get(f->data, "action")))
            return gw_fail(err, GW_E_BAD_REQUEST, "user_action needs a string field 'data.action'");
        what = json_string_value(json_object_get(f->data, "action"));
        if (strcmp(what, "typing") != 0) {
            char sb[48];
            return gw_fail(err, GW_E_BAD_REQUEST, "unknown user_action '%s'",
                           nt_shorten(what, sb, sizeof sb));
        }
        if (!json_object_get(f->data, "is_typing"))
            json_object_set_new(f->data, "is_typing", json_true());
        f->action = GW_A_TYPING;
        return true;
    }
    if (strcmp(f->event, "system_request") != 0)
        return true;                      /* chat_message or any other: a message */
    if (!f->data || !json_is_string(json_object_get(f->data, "request")))
        return gw_fail(err, GW_E_BAD_REQUEST, "system_request needs a string field 'data.request'");
    /* The answer is {"event":"system_response","data":{"request_id":…}}: a ref
     * that is an object (clients can only send strings or integers) says so. */
    json_t *id = json_object_get(f->data, "request_id");
    json_t *ref = json_pack("{s:O}", "request_id", id ? id : json_null());
    json_object_set_new(f->root, "\x01system_ref", ref);
    f->ref = ref;
    what = json_string_value(json_object_get(f->data, "request"));
    if (strcmp(what, "get_online_users") == 0) {
        f->action = GW_A_ONLINE_USERS;
        return true;
    }
    if (strcmp(what, "join_private_room") == 0) {
        json_t *room = json_object_get(f->data, "room_id");
        char ch[80];
        if (!json_is_string(room) || strlen(json_string_value(room)) > 64)
            return gw_fail(err, GW_E_BAD_REQUEST, "join_private_room needs a string field 'data.room_id'");
        snprintf(ch, sizeof ch, "room.%s", json_string_value(room));
        if (!gw_channel_parse(ch, &f->channel, err))
            return false;
        f->action = GW_A_SUBSCRIBE;
        return true;
    }
    char sb[48];
    return gw_fail(err, GW_E_BAD_REQUEST, "unknown system_request '%s'",
                   nt_shorten(what, sb, sizeof sb));
}
