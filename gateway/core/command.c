/* command.c: what the core is asked to do, checked the same for every dialect and REST:
 * the client error codes, and validation of the JSON object of each command. Pure
 * functions (no I/O, no globals); unit-tested in test_frame.c. */
#include "command.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "util.h"

/* message_type values only the server writes (a client could otherwise forge them). */
static const char *const gw_reserved_types[] = { "system" };

static const struct { const char *name; int http; } errcodes[] = {
#define GW_ERR_ROW(name, text, http) { text, http },
    GW_ERR_MAP(GW_ERR_ROW)
#undef GW_ERR_ROW
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

bool gw_fail(gw_error *err, gw_errcode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gw_vfail(err, code, fmt, ap);
    va_end(ap);
    return false;
}

bool gw_vfail(gw_error *err, gw_errcode code, const char *fmt, va_list ap)
{
    err->code = code;
    err->retry_after_ms = 0;
    int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
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

const char *gw_json_type_text(const json_t *v)
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

bool gw_create_parse(const json_t *data, gw_create_req *out, gw_error *err)
{
    memset(out, 0, sizeof *out);
    const char *vis;
    if (!gw_data_str(data, "visibility", 16, &vis, err))
        return false;
    if (!vis)
        return gw_fail(err, GW_E_BAD_REQUEST, "missing field 'data.visibility' (public or private)");
    if (strcmp(vis, "public") != 0 && strcmp(vis, "private") != 0)
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'data.visibility' must be public or private");
    out->is_private = vis[0] == 'p' && vis[1] == 'r';
    if (!gw_data_str(data, "room_id", 0, &out->room_id, err) ||
        !gw_data_str(data, "name", 128, &out->name, err) ||
        !gw_data_str(data, "access_code", 128, &out->access_code, err))
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
    if (out->name && memchr(out->name, '\0', json_string_length(json_object_get(data, "name"))))
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'data.name' must not contain NUL");
    if (out->access_code) {
        size_t chars = nt_utf8_len(out->access_code, strlen(out->access_code));
        if (!out->is_private)
            return gw_fail(err, GW_E_BAD_REQUEST, "an access_code needs visibility private");
        if (chars < 4 || strlen(out->access_code) !=
                             json_string_length(json_object_get(data, "access_code")))
            return gw_fail(err, GW_E_BAD_REQUEST,
                           "field 'data.access_code' must be 4 to 128 characters");
    }
    json_t *m = json_object_get(data, "members");
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

bool gw_data_str(const json_t *data, const char *name, size_t maxchars,
                 const char **out, gw_error *err)
{
    json_t *v = json_is_object(data) ? json_object_get(data, name) : NULL;
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v))
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'data.%s' must be a string, not %s", name,
                       gw_json_type_text(v));
    size_t chars = nt_utf8_len(json_string_value(v), json_string_length(v));
    if (maxchars && chars > maxchars)
        return gw_fail(err, GW_E_BAD_REQUEST,
                       "field 'data.%s' is %zu characters; the limit is %zu", name, chars, maxchars);
    *out = json_string_value(v);
    return true;
}

bool gw_data_uint(const json_t *data, const char *name, int64_t max,
                  int64_t *out, bool *present, gw_error *err)
{
    json_t *v = json_is_object(data) ? json_object_get(data, name) : NULL;
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

bool gw_send_parse(const json_t *data, size_t max_chars, gw_send_req *out, gw_error *err)
{
    memset(out, 0, sizeof *out);
    json_t *msg = json_is_object(data) ? json_object_get(data, "message") : NULL;
    if (!msg || json_is_null(msg))
        return gw_fail(err, GW_E_BAD_REQUEST, "missing field 'data.message'");
    if (!json_is_string(msg))
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'data.message' must be a string, not %s",
                       gw_json_type_text(msg));
    out->message = json_string_value(msg);
    out->message_len = json_string_length(msg);
    size_t chars = nt_utf8_len(out->message, out->message_len);
    if (chars == 0)
        return gw_fail(err, GW_E_BAD_REQUEST, "field 'data.message' must not be empty");
    if (chars > max_chars)
        return gw_fail(err, GW_E_TOO_LARGE, "message is %zu characters; the limit is %zu",
                       chars, max_chars);
    if (!gw_data_str(data, "message_type", 32, &out->message_type, err) ||
        !gw_data_str(data, "reply_to", 64, &out->reply_to, err) ||
        !gw_data_str(data, "client_msg_id", 64, &out->client_msg_id, err))
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
        ? json_string_length(json_object_get(data, "client_msg_id")) : 0;
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

bool gw_history_parse(const json_t *data, gw_history_req *out, gw_error *err)
{
    bool present;
    memset(out, 0, sizeof *out);
    out->before_seq = out->after_seq = -1;
    out->limit = 50;
    if (!gw_data_uint(data, "before_seq", INT64_MAX, &out->before_seq, &present, err) ||
        !gw_data_uint(data, "after_seq", INT64_MAX, &out->after_seq, &present, err) ||
        !gw_data_uint(data, "limit", 100, &out->limit, &present, err))
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

bool gw_since_seq_parse(const json_t *data, int64_t *since, bool *present, gw_error *err)
{
    *since = 0;
    return gw_data_uint(data, "since_seq", INT64_MAX, since, present, err);
}

bool gw_typing_parse(const json_t *data, bool *on, gw_error *err)
{
    json_t *v = json_is_object(data) ? json_object_get(data, "is_typing") : NULL;
    if (!json_is_boolean(v))
        return gw_fail(err, GW_E_BAD_REQUEST, "%s",
                       v ? "field 'data.is_typing' must be a boolean"
                         : "missing field 'data.is_typing' (a boolean)");
    *on = json_is_true(v);
    return true;
}

static bool valid_status(const char *s)
{
    return strcmp(s, "online") == 0 || strcmp(s, "away") == 0 || strcmp(s, "busy") == 0 ||
           strcmp(s, "offline") == 0;
}

bool gw_presence_parse(const json_t *data, gw_presence_req *out, gw_error *err)
{
    memset(out, 0, sizeof *out);
    if (!gw_data_str(data, "status", 16, &out->status, err) ||
        !gw_data_str(data, "device", 64, &out->device, err) ||
        !gw_data_str(data, "status_text", 140, &out->status_text, err))
        return false;
    if (!out->status)
        return gw_fail(err, GW_E_BAD_REQUEST,
                       "missing field 'data.status' (online, away, busy or offline)");
    if (!valid_status(out->status)) {
        char sb[24];
        return gw_fail(err, GW_E_BAD_REQUEST,
                       "field 'data.status' is '%s'; expected online, away, busy or offline",
                       nt_shorten(out->status, sb, sizeof sb));
    }
    if ((out->device &&
         strlen(out->device) != json_string_length(json_object_get(data, "device"))) ||
        (out->status_text &&
         strlen(out->status_text) != json_string_length(json_object_get(data, "status_text"))))
        return gw_fail(err, GW_E_BAD_REQUEST,
                       "'data.device' and 'data.status_text' must not contain NUL");
    return true;
}
