/* test_jsonw.c: nt_jsonw writes what jansson's json_dumps(JSON_COMPACT) writes for the
 * same object (jansson is the reference), for every ASCII character, UTF-8, nesting,
 * integers, null and raw JSON; and the text parses back to the values written. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "jsonw.h"

static void assert_same_as_jansson(nt_jsonw *w, json_t *ref)
{
    char *want = json_dumps(ref, JSON_COMPACT);
    assert_non_null(want);
    size_t len;
    const char *got = nt_jsonw_text(w, &len);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(want);
}

/* One string value as {"k": s}. */
static void check_string(const char *s)
{
    nt_jsonw w;
    nt_jsonw_init(&w);
    nt_jsonw_open(&w);
    nt_jsonw_key(&w, "k");
    nt_jsonw_str(&w, s);
    nt_jsonw_close(&w);
    json_t *ref = json_pack("{s:s}", "k", s);
    assert_non_null(ref);
    assert_same_as_jansson(&w, ref);
    json_error_t err;
    json_t *back = json_loads(nt_jsonw_text(&w, NULL), 0, &err);
    assert_non_null(back);
    assert_string_equal(json_string_value(json_object_get(back, "k")), s);
    json_decref(back);
    json_decref(ref);
    nt_jsonw_free(&w);
}

static void test_every_ascii_character(void **state)
{
    (void)state;
    for (int c = 1; c < 128; c++) {
        char s[4] = { 'a', (char)c, 'z', '\0' };
        check_string(s);
    }
    check_string("");
    check_string("\"quoted\" back\\slash / slash\r\n\ttab\b\f\x01\x1f\x7f");
}

static void test_utf8_as_is(void **state)
{
    (void)state;
    check_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8 \xef\xbf\xbf");
}

static void test_shape_of_a_room_event(void **state)
{
    (void)state;
    nt_jsonw w;
    nt_jsonw_init(&w);
    nt_jsonw_open(&w);
    nt_jsonw_kstr(&w, "event", "message");
    nt_jsonw_key(&w, "data");
    nt_jsonw_open(&w);
    nt_jsonw_kint(&w, "seq", INT64_MAX);
    nt_jsonw_key(&w, "neg");
    nt_jsonw_int(&w, INT64_MIN);
    nt_jsonw_key(&w, "reply_to");
    nt_jsonw_str(&w, NULL);
    nt_jsonw_key(&w, "empty");
    nt_jsonw_open(&w);
    nt_jsonw_close(&w);
    nt_jsonw_key(&w, "raw");
    nt_jsonw_raw(&w, "[1,\"two\"]", 9);
    nt_jsonw_close(&w);
    nt_jsonw_key(&w, "after");
    nt_jsonw_int(&w, 0);
    nt_jsonw_close(&w);
    json_t *ref = json_pack("{s:s,s:{s:I,s:I,s:n,s:{},s:[i,s]},s:i}", "event", "message", "data",
                            "seq", (json_int_t)INT64_MAX, "neg", (json_int_t)INT64_MIN, "reply_to",
                            "empty", "raw", 1, "two", "after", 0);
    assert_non_null(ref);
    assert_same_as_jansson(&w, ref);
    json_decref(ref);
    nt_jsonw_free(&w);
}

static void test_empty_writer_is_empty_text(void **state)
{
    (void)state;
    nt_jsonw w;
    nt_jsonw_init(&w);
    size_t len = 99;
    assert_string_equal(nt_jsonw_text(&w, &len), "");
    assert_int_equal(len, 0);
    nt_jsonw_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_ascii_character),
        cmocka_unit_test(test_utf8_as_is),
        cmocka_unit_test(test_shape_of_a_room_event),
        cmocka_unit_test(test_empty_writer_is_empty_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
