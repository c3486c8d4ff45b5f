/* test_rpc.c: each reply kind round-trips with the bytes written before rpc.h; malformed ones are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "envelope.h"
#include "rpc.h"

/* Asserts that w's bytes equal ref's (the envelope written by hand, as before rpc.h). */
static void assert_same_bytes(nt_envw *w, nt_envw *ref)
{
    size_t a, b;
    const char *x = nt_envw_finish(w, &a), *y = nt_envw_finish(ref, &b);
    assert_int_equal(a, b);
    assert_memory_equal(x, y, a);
}

static void parse_ok(nt_envw *w, nt_rpc_result *out)
{
    char why[96] = "";
    size_t len;
    const char *data = nt_envw_finish(w, &len);
    assert_int_equal(nt_rpc_parse(out, data, len, why, sizeof why), NT_OK);
    assert_string_equal(why, "");
}

static void test_ok(void **state)
{
    nt_envw w, ref;
    nt_rpc_result r;

    nt_rpc_ok_init(&w);
    nt_envw_cstr(&w, "room", "lobby");
    nt_envw_init(&ref);
    nt_envw_bool(&ref, "ok", true);
    nt_envw_cstr(&ref, "room", "lobby");
    assert_same_bytes(&w, &ref);
    parse_ok(&w, &r);
    assert_true(r.ok);
    assert_null(r.code);
    assert_null(r.message);
    assert_null(r.json);
    size_t len;
    const char *room = nt_envr_str(&r.env, "room", &len);   /* the subject's own field */
    assert_int_equal(len, 5);
    assert_memory_equal(room, "lobby", 5);
    nt_rpc_result_free(&r);
    nt_envw_free(&w);
    nt_envw_free(&ref);
}

static void test_ok_json(void **state)
{
    static const char js[] = "{\"users\":[]}";
    nt_envw w, ref;
    nt_rpc_result r;

    nt_rpc_ok_json_init(&w, js, sizeof js - 1);
    nt_envw_init(&ref);
    nt_envw_bool(&ref, "ok", true);
    nt_envw_str(&ref, "json", js, sizeof js - 1);
    assert_same_bytes(&w, &ref);
    parse_ok(&w, &r);
    assert_true(r.ok);
    assert_int_equal(r.json_len, sizeof js - 1);
    assert_memory_equal(r.json, js, r.json_len);
    nt_rpc_result_free(&r);
    nt_envw_free(&w);
    nt_envw_free(&ref);

    /* a renderer that failed: json nil, as the persister's nt_envw_cstr(NULL) wrote */
    nt_rpc_ok_json_init(&w, NULL, 0);
    nt_envw_init(&ref);
    nt_envw_bool(&ref, "ok", true);
    nt_envw_cstr(&ref, "json", NULL);
    assert_same_bytes(&w, &ref);
    parse_ok(&w, &r);
    assert_true(r.ok);
    assert_null(r.json);
    nt_rpc_result_free(&r);
    nt_envw_free(&w);
    nt_envw_free(&ref);
}

static void test_error(void **state)
{
    nt_envw w, ref;
    nt_rpc_result r;

    nt_rpc_error_init(&w, "forbidden", "room x is private", 0);
    nt_envw_init(&ref);
    nt_envw_bool(&ref, "ok", false);
    nt_envw_cstr(&ref, "code", "forbidden");
    nt_envw_cstr(&ref, "message", "room x is private");
    assert_same_bytes(&w, &ref);
    parse_ok(&w, &r);
    assert_false(r.ok);
    assert_true(nt_rpc_code_is(&r, "forbidden"));
    assert_false(nt_rpc_code_is(&r, "forbid"));
    assert_true(nt_rpc_message_is(&r, "room x is private"));
    assert_int_equal(r.retry_after_ms, 0);
    nt_rpc_result_free(&r);
    nt_envw_free(&w);
    nt_envw_free(&ref);

    nt_rpc_error_init(&w, "rate_limited", "too many wrong access codes", 1500);
    nt_envw_init(&ref);
    nt_envw_bool(&ref, "ok", false);
    nt_envw_cstr(&ref, "code", "rate_limited");
    nt_envw_cstr(&ref, "message", "too many wrong access codes");
    nt_envw_int(&ref, "retry_after_ms", 1500);
    assert_same_bytes(&w, &ref);
    parse_ok(&w, &r);
    assert_true(nt_rpc_code_is(&r, "rate_limited"));
    assert_int_equal(r.retry_after_ms, 1500);
    nt_rpc_result_free(&r);
    nt_envw_free(&w);
    nt_envw_free(&ref);

    /* a refusal without a message is still well-formed */
    nt_envw_init(&w);
    nt_envw_bool(&w, "ok", false);
    nt_envw_cstr(&w, "code", "internal");
    parse_ok(&w, &r);
    assert_null(r.message);
    assert_false(nt_rpc_message_is(&r, ""));
    nt_rpc_result_free(&r);
    nt_envw_free(&w);
}

/* One field of a hand-made reply: kind 'b' bool (i), 's' string, 'i' integer. */
typedef struct field {
    const char *key;
    char kind;
    const char *s;
    int64_t i;
} field;

static void test_malformed(void **state)
{
    static const struct {
        const char *why;
        field f[3];
    } cases[] = {
        { "no boolean ok", { { "json", 's', "{}", 0 } } },
        { "no boolean ok", { { "ok", 's', "true", 0 } } },
        { "without a code", { { "ok", 'b', NULL, 0 }, { "message", 's', "no code", 0 } } },
        { "without a code", { { "ok", 'b', NULL, 0 }, { "code", 's', "", 0 } } },
        { "without a code", { { "ok", 'b', NULL, 0 }, { "code", 'i', NULL, 403 } } },
        { "message is not a string",
          { { "ok", 'b', NULL, 0 }, { "code", 's', "internal", 0 }, { "message", 'i', NULL, 1 } } },
        { "json is not a string", { { "ok", 'b', NULL, 1 }, { "json", 'i', NULL, 7 } } },
        { "retry_after_ms is not an integer",
          { { "ok", 'b', NULL, 0 }, { "code", 's', "rate_limited", 0 },
            { "retry_after_ms", 's', "soon", 0 } } },
    };
    char why[96] = "";
    nt_rpc_result r;

    assert_int_equal(nt_rpc_parse(&r, "\x93\x01\x02\x03", 4, why, sizeof why), NT_EPROTO);
    assert_string_equal(why, "malformed reply: not an envelope");
    nt_rpc_result_free(&r);
    assert_int_equal(nt_rpc_parse(&r, "", 0, why, sizeof why), NT_EPROTO);
    nt_rpc_result_free(&r);

    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nt_envw w;
        size_t len;
        nt_envw_init(&w);
        for (const field *f = cases[c].f; f < cases[c].f + 3 && f->key; f++) {
            if (f->kind == 'b')
                nt_envw_bool(&w, f->key, f->i != 0);
            else if (f->kind == 's')
                nt_envw_cstr(&w, f->key, f->s);
            else
                nt_envw_int(&w, f->key, f->i);
        }
        const char *data = nt_envw_finish(&w, &len);
        why[0] = '\0';
        assert_int_equal(nt_rpc_parse(&r, data, len, why, sizeof why), NT_EPROTO);
        assert_non_null(strstr(why, "malformed reply: "));
        assert_non_null(strstr(why, cases[c].why));
        nt_rpc_result_free(&r);
        nt_envw_free(&w);
    }
}

static void test_parse_msg(void **state)
{
    char why[96];
    nt_rpc_result r;

    assert_int_equal(nt_rpc_parse_msg(&r, NT_ETIMEDOUT, NULL, why, sizeof why), NT_ETIMEDOUT);
    assert_string_equal(why, "timed out");
    nt_rpc_result_free(&r);
    assert_int_equal(nt_rpc_parse_msg(&r, NT_EUNAVAIL, NULL, why, sizeof why), NT_EUNAVAIL);
    assert_string_equal(why, "no responders");
    nt_rpc_result_free(&r);

    nt_envw w;
    size_t len;
    nt_rpc_error_init(&w, "not_found", "room x does not exist", 0);
    const char *data = nt_envw_finish(&w, &len);
    nt_bus_msg m = { .subject = "_INBOX.x", .data = data, .len = len };
    assert_int_equal(nt_rpc_parse_msg(&r, NT_OK, &m, why, sizeof why), NT_OK);
    assert_true(nt_rpc_code_is(&r, "not_found"));
    nt_rpc_result_free(&r);
    nt_envw_free(&w);
}

/* No reply subject: nothing is published (no bus touched), w is freed. */
static void test_send_without_reply(void **state)
{
    nt_envw w;
    nt_rpc_ok_init(&w);
    assert_int_equal(nt_rpc_send(NULL, NULL, &w), NT_OK);
    assert_null(w.buf.data);
    assert_int_equal(nt_rpc_reply_error(NULL, NULL, "internal", "x", 0), NT_OK);
    assert_int_equal(nt_rpc_reply_json(NULL, NULL, "{}", 2), NT_OK);
    assert_int_equal(nt_rpc_reply_ok(NULL, NULL), NT_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok),
        cmocka_unit_test(test_ok_json),
        cmocka_unit_test(test_error),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_parse_msg),
        cmocka_unit_test(test_send_without_reply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
