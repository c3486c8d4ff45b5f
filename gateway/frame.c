/* frame.c: parsing and validation of client frames, and the JSON the server sends back. */
#include "frame.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "alloc.h"
#include "jsonw.h"
#include "util.h"

#define GW_REF_MAX_CHARS 64

/* message_type values only the server writes (a client could otherwise forge them). */
static const char *const gw_reserved_types[] = { "system" };

static const struct { const char *name; int http; } errcodes[] = {
#define GW_ERR_ROW(name, text, http) { text, http },
    GW_ERR_MAP(GW_ERR_ROW)
#undef GW_ERR_ROW
};

static const char *const actions[] = {
#define GW_ACTION_ROW(name, text) text,
    GW_ACTION_MAP(GW_ACTION_ROW)
#undef GW_ACTION_ROW
};

const char *gw_errcode_name(gw_errcode c)
{
    return (unsigned)c < GW_E_COUNT ? errcodes[c].name : "internal";
}

int gw_errcode_http(gw_errcode c)
{
    return (unsigned)c < GW_E_COUNT ? errcodes[c].http : 500;
}

gw_errcode gw_errcode_parse(const char *name, size_t len)
{
    for (int i = 0; name && i < GW_E_COUNT; i++)
        if (strlen(errcodes[i].name) == len && memcmp(errcodes[i].name, name, len) == 0)
            return (gw_errcode)i;
    return GW_E_INTERNAL;
}

const char *gw_action_name(gw_action a)
{
    return (unsigned)a < GW_A_COUNT ? actions[a] : "?";
}

bool gw_fail(gw_error *err, gw_errcode code, const char *fmt, ...)
{
    va_list ap;
    err->code = code;
    err->retry_after_ms = 0;
    va_start(ap, fmt);
    int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    size_t len = strlen(err->message);
    if (n >= 0 && (size_t)n > len) {              /* cut by the buffer: end on a whole character */
        size_t lead = len;
        while (lead > 0 && ((unsigned char)err->message[lead - 1] & 0xC0) == 0x80)
            lead--;
        if (lead > 0 && nt_utf8_seq(err->message, len, lead - 1) == 0)
            err->message[len = lead - 1] = '\0';
    }
    nt_utf8_scrub(err->message, len);            /* quoted client bytes may not be UTF-8 */
    return false;
}

static const char *json_type_text(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
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
                       json_type_text(v));
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
                       json_type_text(f->root));

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
                           json_type_text(data));
        f->data = data;
    }
    json_t *event = json_object_get(f->root, "event");
    if (event && !json_is_null(event)) {
        if (!json_is_string(event))
            return gw_fail(err, GW_E_BAD_REQUEST, "field 'event' must be a string, not %s",
                           json_type_text(event));
        f->event = json_string_value(event);
    }
    json_t *channel = json_object_get(f->root, "channel");
    if (channel && !json_is_null(channel)) {
        if (!json_is_string(channel))
            return gw_fail(err, GW_E_BAD_REQUEST, "field 'channel' must be a string, not %s",
                           json_type_text(channel));
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

void gw_dm_room_id(const char *app, const char *a, const char *b, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    const char *lo = strcmp(a, b) <= 0 ? a : b, *hi = lo == a ? b : a;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        abort();                                       /* out of memory */
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, app, strlen(app) + 1);      /* with the NUL separators */
    EVP_DigestUpdate(ctx, lo, strlen(lo) + 1);
    EVP_DigestUpdate(ctx, hi, strlen(hi));
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    size_t n = strlen(GW_DM_PREFIX);
    memcpy(out, GW_DM_PREFIX, n);
    for (size_t i = 0; i < 15; i++) {
        out[n++] = hex[md[i] >> 4];
        out[n++] = hex[md[i] & 15];
    }
    out[n] = '\0';
}

bool gw_create_parse(const gw_frame *f, gw_create_req *out, gw_error *err)
{
    memset(out, 0, sizeof *out);
    const char *vis;
    if (!gw_data_str(f, "visibility", 16, &vis, err))
        return false;
    if (!vis)
        return gw_fail(err, GW_E_BAD_REQUEST, "missing field 'data.visibility' (public or private)");
    if (strcmp(vis, "public") != 0 && strcmp(vis, "private") != 0)
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'data.visibility' must be public or private");
    out->is_private = vis[0] == 'p' && vis[1] == 'r';
    if (!gw_data_str(f, "room_id", 0, &out->room_id, err) ||
        !gw_data_str(f, "name", 128, &out->name, err) ||
        !gw_data_str(f, "access_code", 128, &out->access_code, err))
        return false;
    if (out->room_id && !nt_valid_id(out->room_id, strlen(out->room_id))) {
        char sb[48];
        return gw_fail(err, GW_E_BAD_REQUEST,
                       "invalid room_id '%s': expected 1-64 [A-Za-z0-9_-]",
                       nt_shorten(out->room_id, sb, sizeof sb));
    }
    if (out->room_id && strncmp(out->room_id, GW_DM_PREFIX, strlen(GW_DM_PREFIX)) == 0)
        return gw_fail(err, GW_E_BAD_REQUEST,
                       "room ids starting with %s are reserved for direct messages", GW_DM_PREFIX);
    if (out->name && memchr(out->name, '\0', json_string_length(json_object_get(f->data, "name"))))
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'data.name' must not contain NUL");
    if (out->access_code) {
        size_t chars = nt_utf8_len(out->access_code, strlen(out->access_code));
        if (!out->is_private)
            return gw_fail(err, GW_E_BAD_REQUEST, "an access_code needs visibility private");
        if (chars < 4 || strlen(out->access_code) !=
                             json_string_length(json_object_get(f->data, "access_code")))
            return gw_fail(err, GW_E_BAD_REQUEST,
                           "field 'data.access_code' must be 4 to 128 characters");
    }
    json_t *m = json_object_get(f->data, "members");
    if (m && !json_is_null(m)) {
        if (!json_is_array(m) || json_array_size(m) > GW_CREATE_MAX_MEMBERS)
            return gw_fail(err, GW_E_BAD_REQUEST,
                           "field 'data.members' must be an array of at most %d user ids",
                           GW_CREATE_MAX_MEMBERS);
        for (size_t i = 0; i < json_array_size(m); i++) {
            json_t *v = json_array_get(m, i);
            if (!json_is_string(v) || !nt_valid_id(json_string_value(v), json_string_length(v)))
                return gw_fail(err, GW_E_BAD_REQUEST,
                               "field 'data.members' must hold user ids of 1-64 [A-Za-z0-9_-]");
            out->members[out->nmembers++] = json_string_value(v);
        }
    }
    return true;
}

bool gw_data_str(const gw_frame *f, const char *name, size_t maxchars,
                 const char **out, gw_error *err)
{
    json_t *v = f->data ? json_object_get(f->data, name) : NULL;
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v))
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'data.%s' must be a string, not %s", name,
                       json_type_text(v));
    size_t chars = nt_utf8_len(json_string_value(v), json_string_length(v));
    if (maxchars && chars > maxchars)
        return gw_fail(err, GW_E_BAD_REQUEST,
                       "field 'data.%s' is %zu characters; the limit is %zu", name, chars, maxchars);
    *out = json_string_value(v);
    return true;
}

bool gw_data_uint(const gw_frame *f, const char *name, int64_t max,
                  int64_t *out, bool *present, gw_error *err)
{
    json_t *v = f->data ? json_object_get(f->data, name) : NULL;
    *present = false;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return gw_fail(err, GW_E_BAD_REQUEST,
                       "field 'data.%s' must be an integer between 0 and %lld", name,
                       (long long)max);
    *out = json_integer_value(v);
    *present = true;
    return true;
}

static bool has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

bool gw_send_parse(const gw_frame *f, size_t max_chars, gw_send_req *out, gw_error *err)
{
    memset(out, 0, sizeof *out);
    json_t *msg = f->data ? json_object_get(f->data, "message") : NULL;
    if (!msg || json_is_null(msg))
        return gw_fail(err, GW_E_BAD_REQUEST, "missing field 'data.message'");
    if (!json_is_string(msg))
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'data.message' must be a string, not %s",
                       json_type_text(msg));
    out->message = json_string_value(msg);
    out->message_len = json_string_length(msg);
    size_t chars = nt_utf8_len(out->message, out->message_len);
    if (chars == 0)
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'data.message' must not be empty");
    if (chars > max_chars)
        return gw_fail(err, GW_E_TOO_LARGE, "message is %zu characters; the limit is %zu",
                       chars, max_chars);
    if (!gw_data_str(f, "message_type", 32, &out->message_type, err) ||
        !gw_data_str(f, "reply_to", 64, &out->reply_to, err) ||
        !gw_data_str(f, "client_msg_id", 64, &out->client_msg_id, err))
        return false;
    if (!out->message_type)
        out->message_type = "text";
    if (out->message_type[0] == '\0')
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'data.message_type' must not be empty");
    for (size_t i = 0; i < sizeof gw_reserved_types / sizeof gw_reserved_types[0]; i++)
        if (strcmp(out->message_type, gw_reserved_types[i]) == 0)
            return gw_fail(err, GW_E_BAD_REQUEST,
                           "field 'data.message_type' '%s' is reserved for messages of the server",
                           gw_reserved_types[i]);
    size_t cmid_bytes = out->client_msg_id
        ? json_string_length(json_object_get(f->data, "client_msg_id")) : 0;
    if (cmid_bytes > GW_CMID_MAX_BYTES)             /* the idempotency key is kept in 64 bytes */
        return gw_fail(err, GW_E_BAD_REQUEST,
                       "field 'data.client_msg_id' is %zu bytes; the limit is %d bytes", cmid_bytes,
                       GW_CMID_MAX_BYTES);
    if (out->client_msg_id &&
        (out->client_msg_id[0] == '\0' || has_control_chars(out->client_msg_id)))
        return gw_fail(err, GW_E_BAD_REQUEST,
                       "field 'data.client_msg_id' must be 1-64 characters without control characters");
    return true;
}

bool gw_history_parse(const gw_frame *f, gw_history_req *out, gw_error *err)
{
    bool present;
    memset(out, 0, sizeof *out);
    out->before_seq = out->after_seq = -1;
    out->limit = 50;
    if (!gw_data_uint(f, "before_seq", INT64_MAX, &out->before_seq, &present, err) ||
        !gw_data_uint(f, "after_seq", INT64_MAX, &out->after_seq, &present, err) ||
        !gw_data_uint(f, "limit", 100, &out->limit, &present, err))
        return false;
    if (present && out->limit < 1)
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'data.limit' must be an integer between 1 and 100");
    return true;
}

bool gw_mark_parse(const json_t *data, bool allow_ids, const char *what, gw_mark_req *out,
                   gw_error *err)
{
    json_t *seq = json_is_object(data) ? json_object_get(data, "seq") : NULL;
    json_t *ids = json_is_object(data) && allow_ids ? json_object_get(data, "message_ids") : NULL;
    memset(out, 0, sizeof *out);
    out->seq = -1;
    if (seq && json_is_null(seq))
        seq = NULL;
    if (ids && json_is_null(ids))
        ids = NULL;
    if (seq && ids)
        return gw_fail(err, GW_E_BAD_REQUEST, "give either '%sseq' or '%smessage_ids', not both",
                       what, what);
    if (ids) {
        if (!json_is_array(ids) || json_array_size(ids) == 0 ||
            json_array_size(ids) > GW_READ_MAX_IDS)
            return gw_fail(err, GW_E_BAD_REQUEST,
                           "field '%smessage_ids' must be an array of 1 to %d message ids", what,
                           GW_READ_MAX_IDS);
        for (size_t i = 0; i < json_array_size(ids); i++) {
            json_t *v = json_array_get(ids, i);
            if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 64)
                return gw_fail(err, GW_E_BAD_REQUEST,
                               "field '%smessage_ids' must hold message ids (strings of 1 to 64 bytes)",
                               what);
            out->ids[out->nids++] = json_string_value(v);
        }
        return true;
    }
    if (!seq)
        return gw_fail(err, GW_E_BAD_REQUEST, allow_ids ? "missing field '%sseq' (or '%smessage_ids')"
                                                        : "missing field '%sseq'%s", what,
                       allow_ids ? what : "");
    if (!json_is_integer(seq) || json_integer_value(seq) < 0)
        return gw_fail(err, GW_E_BAD_REQUEST, "field '%sseq' must be an integer >= 0", what);
    out->seq = json_integer_value(seq);
    return true;
}

bool gw_since_seq_parse(const gw_frame *f, int64_t *since, bool *present, gw_error *err)
{
    *since = 0;
    return gw_data_uint(f, "since_seq", INT64_MAX, since, present, err);
}

bool gw_auth_token(const gw_frame *f, const char **token, size_t *len, gw_error *err)
{
    json_t *v = f->data ? json_object_get(f->data, "token") : NULL;
    if (!v || json_is_null(v))
        return gw_fail(err, GW_E_UNAUTHORIZED, "missing field 'data.token'");
    if (!json_is_string(v))
        return gw_fail(err, GW_E_UNAUTHORIZED, "field 'data.token' must be a string, not %s",
                       json_type_text(v));
    *token = json_string_value(v);
    *len = json_string_length(v);
    return true;
}

/* The compact JSON of a value taken from a parsed frame (so valid UTF-8), or of null;
 * never NULL. Freed with free(). */
static char *dump_value(const json_t *v)
{
    char *s = json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s && !(s = strdup("null")))
        abort();                                       /* out of memory */
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
        free(id);
    } else {
        char *r = ref ? dump_value(ref) : NULL;
        out = concat(len, r ? "{\"event\":\"error\",\"ref\":" : "{\"event\":\"error\"", r,
                     ",\"data\":", d, dlen, "}");
        free(r);
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
        free(id);
        return out;
    }
    char *r = ref ? dump_value(ref) : NULL;
    char *out = concat(len, r ? "{\"event\":\"ack\",\"ref\":" : "{\"event\":\"ack\"", r,
                       ",\"data\":", data_json, data_len, "}");
    free(r);
    return out;
}

char *gw_encode_event(const char *event, const char *data_json, size_t *len)
{
    nt_jsonw w;
    size_t elen;
    nt_jsonw_init(&w);
    nt_jsonw_raw(&w, "{\"event\":", 9);
    put_lossy_str(&w, event);
    nt_jsonw_raw(&w, ",\"data\":", 8);
    nt_jsonw_raw(&w, data_json, strlen(data_json));
    nt_jsonw_raw(&w, "}", 1);
    const char *t = nt_jsonw_text(&w, &elen);
    char *out = nt_malloc(elen + 1);
    memcpy(out, t, elen + 1);
    if (len)
        *len = elen;
    nt_jsonw_free(&w);
    return out;
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
