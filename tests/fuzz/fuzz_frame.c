/* fuzz_frame.c: libFuzzer harness for a client's text frame: gw_frame_parse and
 * gw_frame_legacy as the gateway runs them, every validator of frame.h, then the
 * encoders, which must always give valid JSON that carries the client's ref back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "frame.h"
#include "fuzz_check.h"
#include "util.h"

#define FZ_MAX_CHARS 5000        /* NATTER_MAX_MESSAGE_CHARS's default */
#define FZ_SMALL_MAX_CHARS 8     /* reaches too_large with small inputs */

/* A validator's verdict: nothing to check on success here, the error as sent on failure. */
static bool verdict(bool ok, const gw_frame *f, const gw_error *err)
{
    if (!ok) {
        FZ_CHECK(err->message[0] != '\0', "a validator failed with an empty message");
        fz_check_error_reply(f->ref, err);
    }
    return ok;
}

static void check_channel(const gw_frame *f, gw_error *err)
{
    if (f->channel.kind != GW_CH_NONE)
        FZ_CHECK(nt_valid_id(f->channel.id, strlen(f->channel.id)), "channel id %s accepted",
                 f->channel.id);
    bool room = gw_frame_need_room(f, err);
    FZ_CHECK(room == (f->channel.kind == GW_CH_ROOM), "gw_frame_need_room disagrees with kind");
    verdict(room, f, err);
    if (f->channel.kind == GW_CH_DM) {
        char a[65], b[65];
        gw_dm_room_id("default", "fuzzer", f->channel.id, a);
        gw_dm_room_id("default", f->channel.id, "fuzzer", b);
        FZ_CHECK(strcmp(a, b) == 0, "dm room depends on the order of its users");
        FZ_CHECK(nt_valid_id(a, strlen(a)) && strncmp(a, GW_DM_PREFIX, 3) == 0,
                 "dm room id %s", a);
    }
}

static void check_send(const gw_frame *f, size_t max_chars, gw_error *err)
{
    gw_send_req s;
    if (!verdict(gw_send_parse(f->data, max_chars, &s, err), f, err))
        return;
    size_t chars = nt_utf8_len(s.message, s.message_len);
    FZ_CHECK(chars >= 1 && chars <= max_chars, "message of %zu characters accepted", chars);
    FZ_CHECK(s.message_type && s.message_type[0], "empty message_type accepted");
    FZ_CHECK(nt_utf8_len(s.message_type, strlen(s.message_type)) <= 32, "long message_type");
    if (s.reply_to)
        FZ_CHECK(nt_utf8_len(s.reply_to, strlen(s.reply_to)) <= 64, "long reply_to");
    if (s.client_msg_id) {
        FZ_CHECK(s.client_msg_id[0], "empty client_msg_id accepted");
        for (const char *p = s.client_msg_id; *p; p++)
            FZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "control char in client_msg_id");
    }
}

static void check_validators(const gw_frame *f)
{
    gw_error err;
    gw_history_req h;
    gw_mark_req m;
    int64_t since = -1, v = -1;
    bool present;
    const char *s, *token;
    size_t len;

    check_channel(f, &err);
    check_send(f, FZ_MAX_CHARS, &err);
    check_send(f, FZ_SMALL_MAX_CHARS, &err);

    gw_create_req *cr = nt_malloc(sizeof *cr);
    if (verdict(gw_create_parse(f->data, cr, &err), f, &err))
        fz_check_create(cr);
    nt_free(cr);

    if (verdict(gw_history_parse(f->data, &h, &err), f, &err))
        FZ_CHECK(h.limit >= 1 && h.limit <= 100 && h.before_seq >= -1 && h.after_seq >= -1,
                 "history request out of range");
    for (int ids = 0; ids < 2; ids++)
        if (verdict(gw_mark_parse(f->data, ids, "data.", &m, &err), f, &err))
            fz_check_mark(&m, ids);
    if (verdict(gw_since_seq_parse(f->data, &since, &present, &err), f, &err))
        FZ_CHECK(!present || since >= 0, "negative since_seq accepted");
    if (verdict(gw_auth_token(f, &token, &len, &err), f, &err))
        FZ_CHECK(token != NULL, "auth token NULL");

    /* the optional fields the handlers read with their limits (presence.c, actions.c) */
    static const struct { const char *name; size_t max; } strs[] = {
        { "access_code", 128 }, { "status", 16 }, { "device", 64 }, { "status_text", 140 },
        { "message", 0 },
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (verdict(gw_data_str(f->data, strs[i].name, strs[i].max, &s, &err), f, &err) && s &&
            strs[i].max)
            FZ_CHECK(nt_utf8_len(s, strlen(s)) <= strs[i].max, "data.%s too long", strs[i].name);
    if (verdict(gw_data_uint(f->data, "seq", 1000, &v, &present, &err), f, &err) && present)
        FZ_CHECK(v >= 0 && v <= 1000, "data.seq %lld accepted", (long long)v);
}

/* The encoders on a frame that parsed: ack (plain and with the frame's own data) and an
 * event named by the frame. */
static void check_encoders(const gw_frame *f)
{
    size_t len = 0;
    char *data = f->data ? json_dumps(f->data, JSON_COMPACT) : NULL;
    const char *dj = data ? data : "{}";

    char *s = gw_encode_ack(f->ref, "{}", 2, &len);
    json_t *j = fz_json(s, len, "gw_encode_ack({})");
    fz_check_ref(j, f->ref, "gw_encode_ack");
    json_decref(j);
    nt_free(s);

    s = gw_encode_ack(f->ref, dj, strlen(dj), &len);
    json_decref(fz_json(s, len, "gw_encode_ack(data)"));
    nt_free(s);

    const char *event = f->event ? f->event : gw_action_name(f->action);
    s = gw_encode_event(event, dj, &len);
    j = fz_json(s, len, "gw_encode_event");
    FZ_CHECK(json_is_string(json_object_get(j, "event")) &&
                 strcmp(json_string_value(json_object_get(j, "event")), event) == 0,
             "gw_encode_event changed the event name");
    FZ_CHECK(!f->data || json_equal(json_object_get(j, "data"), f->data),
             "gw_encode_event changed the data");
    json_decref(j);
    nt_free(s);
    free(data);
}

/* Raw client bytes quoted in an error, as handlers do with names they do not know. */
static void check_raw_quote(const char *buf, size_t size, const gw_frame *f)
{
    char *raw = nt_strndup(buf, size), sb[48];
    size_t len = 0, n = strlen(raw);
    gw_errcode code = (gw_errcode)(size % (GW_E_COUNT + 1));   /* the encoder: one past the end too */
    gw_error err;

    gw_fail(&err, (gw_errcode)(size % GW_E_COUNT), "unknown thing '%s'", raw);
    fz_check_gw_error(&err);
    gw_fail(&err, GW_E_BAD_REQUEST, "unknown thing '%s'", nt_shorten(raw, sb, sizeof sb));
    fz_check_gw_error(&err);
    FZ_CHECK((unsigned)gw_errcode_parse(buf, size) < GW_E_COUNT, "gw_errcode_parse out of range");

    char *s = gw_encode_error(f->ref, code, raw, &len);
    json_t *j = fz_json(s, len, "gw_encode_error(raw bytes)");
    json_t *d = json_object_get(j, "data");
    if (json_is_object(f->ref))
        d = json_object_get(d, "error");
    nt_utf8_scrub(raw, n);
    FZ_CHECK(json_is_string(json_object_get(d, "message")) &&
                 strcmp(json_string_value(json_object_get(d, "message")), raw) == 0,
             "gw_encode_error: raw message is not its UTF-8 scrub");
    json_decref(j);
    nt_free(s);

    uint32_t retry = (uint32_t)size;
    if (size >= sizeof retry)
        memcpy(&retry, buf, sizeof retry);
    s = gw_encode_error_retry(f->ref, GW_E_RATE_LIMITED, raw, retry, &len);
    j = fz_json(s, len, "gw_encode_error_retry");
    fz_check_ref(j, f->ref, "gw_encode_error_retry");
    d = json_object_get(j, "data");
    if (json_is_object(f->ref))
        d = json_object_get(d, "error");
    FZ_CHECK(json_integer_value(json_object_get(d, "retry_after_ms")) == (json_int_t)retry,
             "retry_after_ms %u not in %s", retry, s);
    json_decref(j);
    nt_free(s);
    nt_free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    gw_frame f;
    gw_error err;
    if (!gw_frame_parse(buf, size, &f, &err) || !gw_frame_legacy(&f, &err)) {
        FZ_CHECK(err.message[0] != '\0', "a refused frame got an empty message");
        fz_check_error_reply(f.ref, &err);
    } else {
        FZ_CHECK((unsigned)f.action < GW_A_COUNT, "action out of range");
        check_validators(&f);
        check_encoders(&f);
    }
    check_raw_quote(buf, size, &f);
    gw_frame_free(&f);
    return 0;
}
