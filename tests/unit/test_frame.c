/* test_frame.c: client frame parsing, validation and the error text a client sees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "alloc.h"
#include "frame.h"
#include "util.h"

/* Parses s; returns whether it succeeded and leaves f/err for inspection. */
static bool parse(const char *s, gw_frame *f, gw_error *err)
{
    memset(err, 0, sizeof *err);
    return gw_frame_parse(s, strlen(s), f, err);
}

static void expect_error(const char *s, gw_errcode code, const char *message_prefix)
{
    gw_frame f;
    gw_error err;
    assert_false(parse(s, &f, &err));
    assert_int_equal(err.code, code);
    if (strncmp(err.message, message_prefix, strlen(message_prefix)) != 0)
        fail_msg("frame %s: got message \"%s\", want prefix \"%s\"", s, err.message, message_prefix);
    gw_frame_free(&f);
}

static void test_valid_frame(void **state)
{
    gw_frame f;
    gw_error err;
    assert_true(parse("{\"action\":\"subscribe\",\"channel\":\"room.general\",\"ref\":7,"
                      "\"data\":{\"since_seq\":3}}", &f, &err));
    assert_int_equal(f.action, GW_A_SUBSCRIBE);
    assert_int_equal(f.channel.kind, GW_CH_ROOM);
    assert_string_equal(f.channel.id, "general");
    assert_true(json_is_integer(f.ref));
    assert_int_equal(json_integer_value(f.ref), 7);
    assert_non_null(f.data);
    gw_frame_free(&f);
}

static void test_malformed_json(void **state)
{
    expect_error("{\"action\":", GW_E_BAD_REQUEST, "malformed JSON at line 1 column");
    expect_error("{\"action\" x}", GW_E_BAD_REQUEST, "malformed JSON at line 1 column 11");
    expect_error("[1,2]", GW_E_BAD_REQUEST, "a frame must be a JSON object, not an array");
}

static void test_missing_and_unknown_action(void **state)
{
    expect_error("{\"channel\":\"room.a\"}", GW_E_BAD_REQUEST, "missing field 'action'");
    expect_error("{\"action\":\"foo\"}", GW_E_BAD_REQUEST, "unknown action 'foo'");
    expect_error("{\"action\":5}", GW_E_BAD_REQUEST, "field 'action' must be a string, not an integer");
}

static void test_error_keeps_ref(void **state)
{
    gw_frame f;
    gw_error err;
    assert_false(parse("{\"action\":\"foo\",\"ref\":\"abc\"}", &f, &err));
    assert_true(json_is_string(f.ref));
    assert_string_equal(json_string_value(f.ref), "abc");
    gw_frame_free(&f);
}

static void test_bad_ref(void **state)
{
    char big[128];
    memset(big, 0, sizeof big);
    strcpy(big, "{\"action\":\"ping\",\"ref\":\"");
    memset(big + strlen(big), 'r', 65);
    strcat(big, "\"}");
    expect_error(big, GW_E_BAD_REQUEST, "field 'ref' must be a string of at most 64 characters or an integer");
    expect_error("{\"action\":\"ping\",\"ref\":1.5}", GW_E_BAD_REQUEST, "field 'ref' must be");
    expect_error("{\"action\":\"ping\",\"ref\":{}}", GW_E_BAD_REQUEST, "field 'ref' must be");

    gw_frame f;
    gw_error err;
    assert_false(parse("{\"action\":\"foo\",\"ref\":[1]}", &f, &err));
    assert_null(f.ref);                 /* an invalid ref is never echoed */
    gw_frame_free(&f);
}

static void test_channels(void **state)
{
    gw_channel ch;
    gw_error err;
    assert_true(gw_channel_parse("room.abc-1_Z", &ch, &err));
    assert_int_equal(ch.kind, GW_CH_ROOM);
    assert_string_equal(ch.id, "abc-1_Z");
    assert_true(gw_channel_parse("chat.room.x", &ch, &err));
    assert_string_equal(ch.id, "x");
    assert_true(gw_channel_parse("chat.y", &ch, &err));
    assert_int_equal(ch.kind, GW_CH_ROOM);
    assert_string_equal(ch.id, "y");
    assert_true(gw_channel_parse("dm.bob", &ch, &err));
    assert_int_equal(ch.kind, GW_CH_DM);
    assert_string_equal(ch.id, "bob");

    assert_false(gw_channel_parse("room.a b", &ch, &err));
    assert_int_equal(err.code, GW_E_BAD_REQUEST);
    assert_non_null(strstr(err.message, "invalid channel 'room.a b'"));
    assert_false(gw_channel_parse("room.", &ch, &err));
    assert_false(gw_channel_parse("lobby", &ch, &err));
    char longid[80] = "room.";
    memset(longid + 5, 'a', 65);
    assert_false(gw_channel_parse(longid, &ch, &err));
    longid[5 + 64] = '\0';
    assert_true(gw_channel_parse(longid, &ch, &err));

    expect_error("{\"action\":\"subscribe\",\"channel\":\"room.a b\"}", GW_E_BAD_REQUEST,
                 "invalid channel 'room.a b'");
    expect_error("{\"action\":\"subscribe\",\"channel\":3}", GW_E_BAD_REQUEST,
                 "field 'channel' must be a string");
}

static void test_need_room(void **state)
{
    gw_frame f;
    gw_error err;
    assert_true(parse("{\"action\":\"subscribe\",\"channel\":\"dm.bob\"}", &f, &err));
    assert_false(gw_frame_need_room(&f, &err));
    assert_string_equal(err.message, "channel dm.bob cannot be used with action 'subscribe'");
    gw_frame_free(&f);
    assert_true(parse("{\"action\":\"history\"}", &f, &err));
    assert_false(gw_frame_need_room(&f, &err));
    assert_non_null(strstr(err.message, "missing field 'channel'"));
    gw_frame_free(&f);
}

static void test_dm_room_id(void **state)
{
    char a[65], b[65], other_app[65], other_pair[65];
    gw_dm_room_id("app1", "alice", "bob", a);
    gw_dm_room_id("app1", "bob", "alice", b);
    gw_dm_room_id("app2", "alice", "bob", other_app);
    gw_dm_room_id("app1", "alice", "bo", other_pair);
    assert_string_equal(a, b);                          /* order does not matter */
    assert_int_equal(strlen(a), 33);
    assert_memory_equal(a, "dm_", 3);
    assert_true(strspn(a + 3, "0123456789abcdef") == 30);
    assert_string_not_equal(a, other_app);              /* apps never share a dm room */
    assert_string_not_equal(a, other_pair);
    /* the NUL separators keep ("ab","c") and ("a","bc") apart */
    gw_dm_room_id("x", "ab", "c", a);
    gw_dm_room_id("x", "a", "bc", b);
    assert_string_not_equal(a, b);
}

static void expect_create_error(const char *s, const char *message_prefix)
{
    gw_frame f;
    gw_error err;
    gw_create_req *cr = test_malloc(sizeof *cr);
    assert_true(parse(s, &f, &err));
    assert_false(gw_create_parse(f.data, cr, &err));
    assert_int_equal(err.code, GW_E_BAD_REQUEST);
    if (strncmp(err.message, message_prefix, strlen(message_prefix)) != 0)
        fail_msg("frame %s: got message \"%s\", want prefix \"%s\"", s, err.message, message_prefix);
    gw_frame_free(&f);
    test_free(cr);
}

static void test_create_room(void **state)
{
    gw_frame f;
    gw_error err;
    gw_create_req *cr = test_malloc(sizeof *cr);
    assert_true(parse("{\"action\":\"create_room\",\"data\":{\"room_id\":\"team-1\","
                      "\"name\":\"Team\",\"visibility\":\"private\",\"members\":[\"bob\",\"carol\"],"
                      "\"access_code\":\"s3cret\"}}", &f, &err));
    assert_int_equal(f.action, GW_A_CREATE_ROOM);
    assert_true(gw_create_parse(f.data, cr, &err));
    assert_string_equal(cr->room_id, "team-1");
    assert_string_equal(cr->name, "Team");
    assert_true(cr->is_private);
    assert_string_equal(cr->access_code, "s3cret");
    assert_int_equal(cr->nmembers, 2);
    assert_string_equal(cr->members[1], "carol");
    gw_frame_free(&f);
    assert_true(parse("{\"action\":\"create_room\",\"data\":{\"visibility\":\"public\"}}", &f, &err));
    assert_true(gw_create_parse(f.data, cr, &err));
    assert_null(cr->room_id);
    assert_false(cr->is_private);
    assert_int_equal(cr->nmembers, 0);
    gw_frame_free(&f);
    test_free(cr);

    expect_create_error("{\"action\":\"create_room\"}", "missing field 'data.visibility'");
    expect_create_error("{\"action\":\"create_room\",\"data\":{\"visibility\":\"secret\"}}",
                        "field 'data.visibility' must be public or private");
    expect_create_error("{\"action\":\"create_room\",\"data\":{\"visibility\":\"public\",\"room_id\":\"a b\"}}",
                        "invalid room_id 'a b'");
    expect_create_error("{\"action\":\"create_room\",\"data\":{\"visibility\":\"public\",\"room_id\":\"dm_x\"}}",
                        "room ids starting with dm_ are reserved");
    expect_create_error("{\"action\":\"create_room\",\"data\":{\"visibility\":\"public\",\"access_code\":\"abcd\"}}",
                        "an access_code needs visibility private");
    expect_create_error("{\"action\":\"create_room\",\"data\":{\"visibility\":\"private\",\"access_code\":\"abc\"}}",
                        "field 'data.access_code' must be 4 to 128 characters");
    expect_create_error("{\"action\":\"create_room\",\"data\":{\"visibility\":\"private\",\"members\":[\"ok\",\"no way\"]}}",
                        "field 'data.members' must hold user ids");
    expect_create_error("{\"action\":\"create_room\",\"data\":{\"visibility\":\"private\",\"members\":\"bob\"}}",
                        "field 'data.members' must be an array");
    char big[200];
    memset(big, 'n', 129);
    big[129] = '\0';
    char frame[400];
    snprintf(frame, sizeof frame, "{\"action\":\"create_room\",\"data\":{\"visibility\":\"public\",\"name\":\"%s\"}}", big);
    expect_create_error(frame, "field 'data.name' is 129 characters");
}

static bool send_parse(const char *s, gw_send_req *req, gw_error *err, gw_frame *f)
{
    assert_true(parse(s, f, err));
    return gw_send_parse(f->data, 5000, req, err);
}

static void test_send_message(void **state)
{
    gw_frame f;
    gw_error err;
    gw_send_req req;
    assert_true(send_parse("{\"action\":\"send_message\",\"channel\":\"room.a\",\"data\":"
                           "{\"message\":\"h\\u00e9llo\",\"client_msg_id\":\"c1\"}}", &req, &err, &f));
    assert_string_equal(req.message, "h\xc3\xa9llo");
    assert_string_equal(req.message_type, "text");
    assert_string_equal(req.client_msg_id, "c1");
    assert_null(req.reply_to);
    gw_frame_free(&f);

    assert_false(send_parse("{\"action\":\"send_message\",\"data\":{\"message\":5}}", &req, &err, &f));
    assert_string_equal(err.message, "field 'data.message' must be a string, not an integer");
    gw_frame_free(&f);
    assert_false(send_parse("{\"action\":\"send_message\",\"data\":{}}", &req, &err, &f));
    assert_string_equal(err.message, "missing field 'data.message'");
    gw_frame_free(&f);
    assert_false(send_parse("{\"action\":\"send_message\",\"data\":{\"message\":\"\"}}", &req, &err, &f));
    assert_int_equal(err.code, GW_E_BAD_REQUEST);
    gw_frame_free(&f);
    assert_false(send_parse("{\"action\":\"send_message\",\"data\":{\"message\":\"x\",\"reply_to\":1}}",
                            &req, &err, &f));
    assert_string_equal(err.message, "field 'data.reply_to' must be a string, not an integer");
    gw_frame_free(&f);
    assert_false(send_parse("{\"action\":\"send_message\",\"data\":{\"message\":\"x\","
                            "\"client_msg_id\":\"a\\nb\"}}", &req, &err, &f));
    assert_int_equal(err.code, GW_E_BAD_REQUEST);
    gw_frame_free(&f);

    /* client_msg_id: 64 characters but 128 bytes would have been cut to 64 bytes and
     * the message dropped by the persister; refused at parse time instead. */
    char frame[400], *p = frame;
    p += sprintf(p, "{\"action\":\"send_message\",\"data\":{\"message\":\"x\",\"client_msg_id\":\"");
    for (int i = 0; i < 64; i++)
        p += sprintf(p, "\xc3\xa9");
    sprintf(p, "\"}}");
    assert_false(send_parse(frame, &req, &err, &f));
    assert_string_equal(err.message, "field 'data.client_msg_id' is 128 bytes; the limit is 64 bytes");
    gw_frame_free(&f);
    p = frame;
    p += sprintf(p, "{\"action\":\"send_message\",\"data\":{\"message\":\"x\",\"client_msg_id\":\"");
    for (int i = 0; i < 32; i++)
        p += sprintf(p, "\xc3\xa9");
    sprintf(p, "\"}}");
    assert_true(send_parse(frame, &req, &err, &f));
    gw_frame_free(&f);

    assert_false(send_parse("{\"action\":\"send_message\",\"data\":{\"message\":\"x\","
                            "\"message_type\":\"system\"}}", &req, &err, &f));
    assert_string_equal(err.message,
                        "field 'data.message_type' 'system' is reserved for messages of the server");
    gw_frame_free(&f);
    assert_true(send_parse("{\"action\":\"send_message\",\"data\":{\"message\":\"x\","
                           "\"message_type\":\"image\"}}", &req, &err, &f));
    gw_frame_free(&f);
}

/* Length counts code points: 5000 three-byte characters pass, 5001 do not. */
static void test_message_length(void **state)
{
    const char *pre = "{\"action\":\"send_message\",\"data\":{\"message\":\"";
    size_t n = strlen(pre);
    char *s = nt_malloc(n + 5001 * 3 + 8);
    memcpy(s, pre, n);
    for (int i = 0; i < 5001; i++)
        memcpy(s + n + 3 * i, "\xe2\x82\xac", 3);    /* U+20AC */
    gw_frame f;
    gw_error err;
    gw_send_req req;

    strcpy(s + n + 5000 * 3, "\"}}");
    assert_true(send_parse(s, &req, &err, &f));
    gw_frame_free(&f);

    memcpy(s + n + 5000 * 3, "\xe2\x82\xac", 3);
    strcpy(s + n + 5001 * 3, "\"}}");
    assert_false(send_parse(s, &req, &err, &f));
    assert_int_equal(err.code, GW_E_TOO_LARGE);
    assert_string_equal(err.message, "message is 5001 characters; the limit is 5000");
    gw_frame_free(&f);
    nt_free(s);
}

static void test_history(void **state)
{
    gw_frame f;
    gw_error err;
    gw_history_req h;
    assert_true(parse("{\"action\":\"history\",\"channel\":\"room.a\"}", &f, &err));
    assert_true(gw_history_parse(f.data, &h, &err));
    assert_int_equal(h.limit, 50);
    assert_int_equal(h.before_seq, -1);
    assert_int_equal(h.after_seq, -1);
    gw_frame_free(&f);
    assert_true(parse("{\"action\":\"history\",\"data\":{\"before_seq\":10,\"limit\":100}}", &f, &err));
    assert_true(gw_history_parse(f.data, &h, &err));
    assert_int_equal(h.before_seq, 10);
    assert_int_equal(h.limit, 100);
    gw_frame_free(&f);
    assert_true(parse("{\"action\":\"history\",\"data\":{\"limit\":101}}", &f, &err));
    assert_false(gw_history_parse(f.data, &h, &err));
    gw_frame_free(&f);
    assert_true(parse("{\"action\":\"history\",\"data\":{\"limit\":0}}", &f, &err));
    assert_false(gw_history_parse(f.data, &h, &err));
    gw_frame_free(&f);
    assert_true(parse("{\"action\":\"history\",\"data\":{\"after_seq\":\"3\"}}", &f, &err));
    assert_false(gw_history_parse(f.data, &h, &err));
    assert_non_null(strstr(err.message, "data.after_seq"));
    gw_frame_free(&f);
}

static void test_data_must_be_object(void **state)
{
    expect_error("{\"action\":\"auth\",\"data\":\"tok\"}", GW_E_BAD_REQUEST,
                 "field 'data' must be an object, not a string");
    gw_frame f;
    gw_error err;
    const char *tok;
    size_t len;
    assert_true(parse("{\"action\":\"auth\",\"data\":{}}", &f, &err));
    assert_false(gw_auth_token(&f, &tok, &len, &err));
    assert_int_equal(err.code, GW_E_UNAUTHORIZED);
    gw_frame_free(&f);
}

static void test_encode(void **state)
{
    size_t len;
    json_t *sref = json_string("r\"1"), *iref = json_integer(42);
    char *s = gw_encode_error(sref, GW_E_FORBIDDEN, "subscribe to room a first", &len);
    assert_string_equal(s, "{\"event\":\"error\",\"ref\":\"r\\\"1\",\"data\":"
                           "{\"code\":\"forbidden\",\"message\":\"subscribe to room a first\"}}");
    assert_int_equal(len, strlen(s));
    nt_free(s);
    s = gw_encode_error(NULL, GW_E_BAD_REQUEST, "x", &len);
    assert_string_equal(s, "{\"event\":\"error\",\"data\":{\"code\":\"bad_request\",\"message\":\"x\"}}");
    nt_free(s);
    s = gw_encode_ack(iref, "{\"seq\":1}", 9, &len);
    assert_string_equal(s, "{\"event\":\"ack\",\"ref\":42,\"data\":{\"seq\":1}}");
    nt_free(s);
    s = gw_encode_event("connected", "{}", &len);
    assert_string_equal(s, "{\"event\":\"connected\",\"data\":{}}");
    nt_free(s);
    json_decref(sref);
    json_decref(iref);
}

/* Errors quoting client text: the text is cut on character boundaries, and an error or
 * event whose text is not UTF-8 is still encoded (issue #18: a NULL here killed the gateway). */
static void test_encode_never_fails(void **state)
{
    (void)state;
    gw_frame f;
    gw_error err;
    size_t len;
    char frame[512], *p = frame;
    p += sprintf(p, "{\"action\":\"send_message\",\"event\":\"user_action\",\"data\":{\"action\":\"a");
    for (int i = 0; i < 40; i++)
        p += sprintf(p, "\xc3\xa9");
    sprintf(p, "\"}}");
    assert_true(parse(frame, &f, &err));
    assert_false(gw_frame_legacy(&f, &err));
    assert_true(nt_valid_utf8(err.message, strlen(err.message)));
    assert_non_null(strstr(err.message, "..."));
    char *s = gw_encode_error(f.ref, err.code, err.message, &len);
    assert_non_null(s);
    json_t *back = json_loads(s, 0, NULL);
    assert_non_null(back);
    assert_string_equal(json_string_value(json_object_get(json_object_get(back, "data"), "message")),
                        err.message);
    json_decref(back);
    nt_free(s);
    gw_frame_free(&f);

    p = frame;
    p += sprintf(p, "{\"action\":\"x");
    for (int i = 0; i < 40; i++)
        p += sprintf(p, "\xf0\x9f\x98\x80");
    sprintf(p, "\"}");
    assert_false(parse(frame, &f, &err));
    assert_true(nt_valid_utf8(err.message, strlen(err.message)));
    gw_frame_free(&f);

    s = gw_encode_error(NULL, GW_E_BAD_REQUEST, "bad id '\xff\xc3'", &len);
    assert_string_equal(s, "{\"event\":\"error\",\"data\":{\"code\":\"bad_request\","
                           "\"message\":\"bad id '?" "?'\"}}");
    assert_int_equal(len, strlen(s));
    nt_free(s);
    /* gw_fail: raw bytes quoted in a message, and a message longer than its buffer. */
    gw_fail(&err, GW_E_BAD_REQUEST, "invalid room id '%s'", "a\xff\xc3");
    assert_string_equal(err.message, "invalid room id 'a?" "?'");
    char longer[600] = "";
    for (int i = 0; i < 250; i++)
        strcat(longer, "\xc3\xa9");
    for (int pad = 0; pad < 4; pad++) {
        gw_fail(&err, GW_E_BAD_REQUEST, "%.*s%s", pad, "xxx", longer);
        assert_true(strlen(err.message) < sizeof err.message);
        assert_true(nt_valid_utf8(err.message, strlen(err.message)));
        assert_null(strchr(err.message, '?'));
    }

    s = gw_encode_event("odd\xfe", "{}", &len);
    assert_string_equal(s, "{\"event\":\"odd?\",\"data\":{}}");
    nt_free(s);
}

static void test_errcodes(void **state)
{
    assert_string_equal(gw_errcode_name(GW_E_TOO_LARGE), "too_large");
    assert_int_equal(gw_errcode_http(GW_E_TOO_LARGE), 413);
    assert_int_equal(gw_errcode_http(GW_E_UNAVAILABLE), 503);
    assert_int_equal(gw_errcode_parse("forbidden", 9), GW_E_FORBIDDEN);
    assert_int_equal(gw_errcode_parse("nope", 4), GW_E_INTERNAL);
    assert_int_equal(gw_errcode_parse(NULL, 0), GW_E_INTERNAL);
}

static void test_legacy_envelope(void **state)
{
    gw_frame f;
    gw_error err;
    size_t n;

    /* chat_message stays a message */
    assert_true(parse("{\"action\":\"send_message\",\"channel\":\"chat.room.a\",\"event\":\"chat_message\","
                      "\"data\":{\"message\":\"hi\"}}", &f, &err));
    assert_true(gw_frame_legacy(&f, &err));
    assert_int_equal(f.action, GW_A_SEND_MESSAGE);
    gw_frame_free(&f);

    /* user_action typing: is_typing defaults to true */
    assert_true(parse("{\"action\":\"send_message\",\"channel\":\"chat.a\",\"event\":\"user_action\","
                      "\"data\":{\"action\":\"typing\"}}", &f, &err));
    assert_true(gw_frame_legacy(&f, &err));
    assert_int_equal(f.action, GW_A_TYPING);
    assert_true(json_is_true(json_object_get(f.data, "is_typing")));
    gw_frame_free(&f);

    assert_true(parse("{\"action\":\"send_message\",\"event\":\"user_action\",\"data\":{\"action\":\"wave\"}}",
                      &f, &err));
    assert_false(gw_frame_legacy(&f, &err));
    assert_int_equal(err.code, GW_E_BAD_REQUEST);
    assert_non_null(strstr(err.message, "wave"));
    gw_frame_free(&f);

    /* system_request get_online_users: answered as system_response with request_id */
    assert_true(parse("{\"action\":\"send_message\",\"channel\":\"chat.room.a\",\"event\":\"system_request\","
                      "\"data\":{\"request\":\"get_online_users\",\"request_id\":\"q7\"}}", &f, &err));
    assert_true(gw_frame_legacy(&f, &err));
    assert_int_equal(f.action, GW_A_ONLINE_USERS);
    char *ack = gw_encode_ack(f.ref, "{\"users\":[]}", 12, &n);
    assert_string_equal(ack, "{\"event\":\"system_response\",\"data\":{\"request_id\":\"q7\",\"users\":[]}}");
    nt_free(ack);
    ack = gw_encode_ack(f.ref, "{}", 2, &n);
    assert_string_equal(ack, "{\"event\":\"system_response\",\"data\":{\"request_id\":\"q7\"}}");
    nt_free(ack);
    char *e = gw_encode_error(f.ref, GW_E_FORBIDDEN, "no", &n);
    assert_string_equal(e, "{\"event\":\"system_response\",\"data\":{\"request_id\":\"q7\","
                           "\"error\":{\"code\":\"forbidden\",\"message\":\"no\"}}}");
    nt_free(e);
    gw_frame_free(&f);

    /* join_private_room: a subscribe of room.<room_id> keeping access_code */
    assert_true(parse("{\"action\":\"send_message\",\"event\":\"system_request\",\"data\":{\"request\":"
                      "\"join_private_room\",\"room_id\":\"vip\",\"access_code\":\"s3cret\",\"request_id\":5}}",
                      &f, &err));
    assert_true(gw_frame_legacy(&f, &err));
    assert_int_equal(f.action, GW_A_SUBSCRIBE);
    assert_string_equal(f.channel.id, "vip");
    assert_int_equal(json_integer_value(json_object_get(f.ref, "request_id")), 5);
    gw_frame_free(&f);

    assert_true(parse("{\"action\":\"send_message\",\"event\":\"system_request\",\"data\":{\"request\":"
                      "\"join_private_room\",\"room_id\":\"a b\"}}", &f, &err));
    assert_false(gw_frame_legacy(&f, &err));
    gw_frame_free(&f);
    assert_true(parse("{\"action\":\"send_message\",\"event\":\"system_request\",\"data\":{\"request\":\"reboot\"}}",
                      &f, &err));
    assert_false(gw_frame_legacy(&f, &err));
    assert_non_null(strstr(err.message, "reboot"));
    gw_frame_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_frame),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_missing_and_unknown_action),
        cmocka_unit_test(test_error_keeps_ref),
        cmocka_unit_test(test_bad_ref),
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_need_room),
        cmocka_unit_test(test_dm_room_id),
        cmocka_unit_test(test_create_room),
        cmocka_unit_test(test_send_message),
        cmocka_unit_test(test_message_length),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_data_must_be_object),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_encode_never_fails),
        cmocka_unit_test(test_errcodes),
        cmocka_unit_test(test_legacy_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
