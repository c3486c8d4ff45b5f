/* test_envelope.c: msgpack envelope writer/reader round trips and bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "envelope.h"

static void test_round_trip(void **state)
{
    static const char nul_body[] = { 'a', '\0', 'b', '\0' };
    const char *const members[] = { "alice", "", "bob" };
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", "send");
    nt_envw_str(&w, "body", nul_body, sizeof(nul_body));
    nt_envw_str(&w, "empty", "", 0);
    nt_envw_cstr(&w, "reply_to", NULL);
    nt_envw_int(&w, "ts", 1700000000123);
    nt_envw_int(&w, "neg", -42);
    nt_envw_int(&w, "min", INT64_MIN);
    nt_envw_int(&w, "max", INT64_MAX);
    nt_envw_int(&w, "zero", 0);
    nt_envw_bool(&w, "ok", true);
    nt_envw_bool(&w, "dup", false);
    nt_envw_str_array(&w, "members", members, 3);
    size_t len;
    const char *data = nt_envw_finish(&w, &len);
    assert_int_equal((unsigned char)data[0], 0xdf);
    assert_int_equal(data[4], 12);

    nt_envr r;
    assert_int_equal(nt_envr_parse(&r, data, len), NT_OK);
    size_t n;
    const char *s = nt_envr_str(&r, "type", &n);
    assert_non_null(s);
    assert_int_equal(n, 4);
    assert_memory_equal(s, "send", 4);
    assert_true(nt_envr_str_eq(&r, "type", "send"));
    assert_false(nt_envr_str_eq(&r, "type", "sen"));
    assert_false(nt_envr_str_eq(&r, "type", "sends"));

    s = nt_envr_str(&r, "body", &n);
    assert_int_equal(n, sizeof(nul_body));
    assert_memory_equal(s, nul_body, sizeof(nul_body));
    s = nt_envr_str(&r, "empty", &n);
    assert_non_null(s);
    assert_int_equal(n, 0);

    assert_null(nt_envr_str(&r, "reply_to", &n));
    const msgpack_object *o = nt_envr_get(&r, "reply_to");
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_NIL);

    int64_t v;
    assert_true(nt_envr_int(&r, "ts", &v));
    assert_int_equal(v, 1700000000123);
    assert_true(nt_envr_int(&r, "neg", &v));
    assert_int_equal(v, -42);
    assert_true(nt_envr_int(&r, "min", &v));
    assert_true(v == INT64_MIN);
    assert_true(nt_envr_int(&r, "max", &v));
    assert_true(v == INT64_MAX);
    assert_true(nt_envr_int(&r, "zero", &v));
    assert_int_equal(v, 0);
    assert_false(nt_envr_int(&r, "type", &v));

    bool b = false;
    assert_true(nt_envr_bool(&r, "ok", &b));
    assert_true(b);
    assert_true(nt_envr_bool(&r, "dup", &b));
    assert_false(b);
    assert_false(nt_envr_bool(&r, "ts", &b));

    o = nt_envr_get(&r, "members");
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o->via.array.size, 3);
    for (int i = 0; i < 3; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        assert_int_equal(e->type, MSGPACK_OBJECT_STR);
        assert_int_equal(e->via.str.size, strlen(members[i]));
        assert_memory_equal(e->via.str.ptr, members[i], e->via.str.size);
    }

    char *dup = nt_envr_strdup(&r, "type");
    assert_string_equal(dup, "send");
    nt_free(dup);
    assert_null(nt_envr_strdup(&r, "ts"));

    nt_envr_free(&r);
    nt_envw_free(&w);
}

static void test_missing_key(void **state)
{
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "room", "lobby");
    size_t len;
    const char *data = nt_envw_finish(&w, &len);
    nt_envr r;
    assert_int_equal(nt_envr_parse(&r, data, len), NT_OK);
    size_t n = 99;
    int64_t v = 7;
    bool b = true;
    assert_null(nt_envr_str(&r, "roo", &n));
    assert_null(nt_envr_str(&r, "rooms", &n));
    assert_null(nt_envr_get(&r, "missing"));
    assert_false(nt_envr_int(&r, "missing", &v));
    assert_int_equal(v, 7);
    assert_false(nt_envr_bool(&r, "missing", &b));
    assert_false(nt_envr_str_eq(&r, "missing", "lobby"));
    assert_null(nt_envr_strdup(&r, "missing"));
    nt_envr_free(&r);
    nt_envw_free(&w);
}

/* Parses in a frame that returns: the reader is handed on by value, as gw_rpc_ok does. */
static nt_envr __attribute__((noinline)) parse_elsewhere(const char *data, size_t len)
{
    nt_envr local;
    assert_int_equal(nt_envr_parse(&local, data, len), NT_OK);
    return local;
}

static void clobber_stack(void)
{
    volatile char junk[512];
    memset((char *)junk, 0xA5, sizeof junk);
}

static void test_moved_by_value(void **state)
{
    (void)state;
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_int(&w, "last_seq", 42);
    size_t len;
    const char *data = nt_envw_finish(&w, &len);
    nt_envr r = parse_elsewhere(data, len);
    clobber_stack();
    int64_t v = 0;
    assert_true(nt_envr_int(&r, "last_seq", &v));
    assert_int_equal(v, 42);
    assert_int_equal(r.map->size, 1);
    nt_envr_free(&r);
    nt_envw_free(&w);
}

static void test_empty_map(void **state)
{
    nt_envw w;
    nt_envw_init(&w);
    size_t len;
    const char *data = nt_envw_finish(&w, &len);
    assert_int_equal(len, 5);
    nt_envr r;
    assert_int_equal(nt_envr_parse(&r, data, len), NT_OK);
    assert_int_equal(r.map->size, 0);
    nt_envr_free(&r);
    nt_envw_free(&w);
}

static void test_not_a_map(void **state)
{
    static const char array[] = { (char)0x92, 0x01, 0x02 };     /* [1, 2] */
    static const char str[] = { (char)0xa2, 'h', 'i' };          /* "hi" */
    static const char num[] = { 0x05 };
    nt_envr r;
    assert_int_equal(nt_envr_parse(&r, array, sizeof(array)), NT_EPROTO);
    nt_envr_free(&r);
    assert_int_equal(nt_envr_parse(&r, str, sizeof(str)), NT_EPROTO);
    assert_int_equal(nt_envr_parse(&r, num, sizeof(num)), NT_EPROTO);
    assert_int_equal(nt_envr_parse(&r, "", 0), NT_EPROTO);
    assert_null(nt_envr_get(&r, "x"));
    nt_envr_free(&r);
}

static void test_truncated(void **state)
{
    nt_envw w;
    nt_envw_init(&w);
    nt_envw_cstr(&w, "type", "event");
    nt_envw_int(&w, "seq", 123456789);
    nt_envw_cstr(&w, "json", "{\"event\":\"message\"}");
    size_t len;
    const char *data = nt_envw_finish(&w, &len);
    for (size_t cut = 0; cut < len; cut++) {
        nt_envr r;
        assert_int_equal(nt_envr_parse(&r, data, cut), NT_EPROTO);
        nt_envr_free(&r);
    }
    /* trailing garbage after a complete map is refused too */
    char *longer = nt_malloc(len + 1);
    memcpy(longer, data, len);
    longer[len] = 0x01;
    nt_envr r;
    assert_int_equal(nt_envr_parse(&r, longer, len + 1), NT_EPROTO);
    nt_free(longer);
    nt_envw_free(&w);
}

static void test_large_envelope(void **state)
{
    /* many fields and a big value: the writer's buffer grows and the count patch holds */
    char *big = nt_malloc(100000);
    memset(big, 'x', 100000);
    nt_envw w;
    nt_envw_init(&w);
    char key[16];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        nt_envw_int(&w, key, i);
    }
    nt_envw_str(&w, "big", big, 100000);
    size_t len;
    const char *data = nt_envw_finish(&w, &len);
    nt_envr r;
    assert_int_equal(nt_envr_parse(&r, data, len), NT_OK);
    assert_int_equal(r.map->size, 301);
    int64_t v;
    assert_true(nt_envr_int(&r, "k299", &v));
    assert_int_equal(v, 299);
    size_t n;
    const char *s = nt_envr_str(&r, "big", &n);
    assert_int_equal(n, 100000);
    assert_memory_equal(s, big, 100000);
    nt_envr_free(&r);
    nt_envw_free(&w);
    nt_free(big);
}

static void test_foreign_ints(void **state)
{
    /* a map built by another encoder: uint64 beyond INT64_MAX is not an int64 */
    static const char data[] = {
        (char)0x82,
        (char)0xa1, 'u', (char)0xcf, (char)0xff, (char)0xff, (char)0xff, (char)0xff,
        (char)0xff, (char)0xff, (char)0xff, (char)0xff,
        (char)0xa1, 'n', (char)0xd0, (char)0x80,                   /* int8 -128 */
    };
    nt_envr r;
    assert_int_equal(nt_envr_parse(&r, data, sizeof(data)), NT_OK);
    int64_t v = 0;
    assert_false(nt_envr_int(&r, "u", &v));
    assert_true(nt_envr_int(&r, "n", &v));
    assert_int_equal(v, -128);
    nt_envr_free(&r);
}

/* Container headers claiming more items than there are bytes are refused before
 * msgpack-c reserves room for them (it asked malloc for 2 GB and 256 GB here). */
static void test_oversized_containers(void **state)
{
    (void)state;
    nt_envr r;
    static const unsigned char array32[] = { 0xdd, 0x04, 0x00, 0x00, 0x00 };
    assert_int_equal(nt_envr_parse(&r, (const char *)array32, sizeof array32), NT_EPROTO);
    nt_envr_free(&r);
    static const unsigned char map32[] = { 0xdf, 0xe3, 0x00, 0x00, 0x04, 0xa4, 't', 'y', 'p', 'e',
                                           0xa1, 'x' };
    assert_int_equal(nt_envr_parse(&r, (const char *)map32, sizeof map32), NT_EPROTO);
    nt_envr_free(&r);
    static const unsigned char nested[] = { 0x81, 0xa1, 'k', 0xdc, 0xff, 0xff, 0x01 };
    assert_int_equal(nt_envr_parse(&r, (const char *)nested, sizeof nested), NT_EPROTO);
    nt_envr_free(&r);
    static const unsigned char str32[] = { 0x81, 0xa1, 'k', 0xdb, 0x7f, 0xff, 0xff, 0xff, 'x' };
    assert_int_equal(nt_envr_parse(&r, (const char *)str32, sizeof str32), NT_EPROTO);
    nt_envr_free(&r);
    /* A real map32 of two members still parses. */
    static const unsigned char ok[] = { 0xdf, 0x00, 0x00, 0x00, 0x02, 0xa1, 'a', 0x01, 0xa1, 'b',
                                        0x92, 0xc3, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0 };
    assert_int_equal(nt_envr_parse(&r, (const char *)ok, sizeof ok), NT_OK);
    int64_t v;
    assert_true(nt_envr_int(&r, "a", &v));
    assert_int_equal(v, 1);
    nt_envr_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_oversized_containers),
        cmocka_unit_test(test_missing_key),
        cmocka_unit_test(test_empty_map),
        cmocka_unit_test(test_moved_by_value),
        cmocka_unit_test(test_not_a_map),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_large_envelope),
        cmocka_unit_test(test_foreign_ints),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return rc != 0 ? rc : nt_alloc_used() != 0;
}
