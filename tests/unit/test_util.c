/* test_util.c: ids, UTF-8 validation, UUIDs, time format, partitions, constant-time compare,
 * the rate limit of repeated warnings. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "util.h"

#define UTF8_OK(lit) assert_true(nt_valid_utf8(lit, sizeof(lit) - 1))
#define UTF8_BAD(lit) assert_false(nt_valid_utf8(lit, sizeof(lit) - 1))

static void test_utf8_valid(void **state)
{
    UTF8_OK("");
    UTF8_OK("plain ascii");
    UTF8_OK("nul \0 inside");
    UTF8_OK("\xc2\x80");                      /* U+0080, smallest 2-byte */
    UTF8_OK("caf\xc3\xa9");                   /* é */
    UTF8_OK("\xdf\xbf");                      /* U+07FF */
    UTF8_OK("\xe0\xa0\x80");                  /* U+0800, smallest 3-byte */
    UTF8_OK("\xe2\x82\xac");                  /* € */
    UTF8_OK("\xed\x9f\xbf");                  /* U+D7FF, just below surrogates */
    UTF8_OK("\xee\x80\x80");                  /* U+E000, just above */
    UTF8_OK("\xef\xbf\xbf");                  /* U+FFFF */
    UTF8_OK("\xf0\x90\x80\x80");              /* U+10000, smallest 4-byte */
    UTF8_OK("\xf0\x9f\x98\x80");              /* 😀 */
    UTF8_OK("\xf4\x8f\xbf\xbf");              /* U+10FFFF, the last code point */
}

static void test_utf8_invalid(void **state)
{
    UTF8_BAD("\x80");                         /* lone continuation */
    UTF8_BAD("a\xbf");
    UTF8_BAD("\xc0\x80");                     /* overlong NUL */
    UTF8_BAD("\xc1\xbf");                     /* overlong 2-byte */
    UTF8_BAD("\xe0\x80\x80");                 /* overlong 3-byte */
    UTF8_BAD("\xe0\x9f\xbf");
    UTF8_BAD("\xf0\x80\x80\x80");             /* overlong 4-byte */
    UTF8_BAD("\xf0\x8f\xbf\xbf");
    UTF8_BAD("\xed\xa0\x80");                 /* U+D800 */
    UTF8_BAD("\xed\xbf\xbf");                 /* U+DFFF */
    UTF8_BAD("\xf4\x90\x80\x80");             /* U+110000 */
    UTF8_BAD("\xf5\x80\x80\x80");
    UTF8_BAD("\xf8\x88\x80\x80\x80");         /* 5-byte form */
    UTF8_BAD("\xfe");
    UTF8_BAD("\xff");
    UTF8_BAD("\xc3");                         /* truncated 2-byte */
    UTF8_BAD("\xe2\x82");                     /* truncated 3-byte */
    UTF8_BAD("\xf0\x9f\x98");                 /* truncated 4-byte */
    UTF8_BAD("caf\xc3");                      /* truncated at end of text */
    UTF8_BAD("\xe2\x28\xa1");                 /* bad continuation */
    UTF8_BAD("\xf0\x9f\x98\x28");
    /* length is honoured: a valid char cut by len is truncated */
    assert_false(nt_valid_utf8("\xc3\xa9", 1));
    assert_true(nt_valid_utf8("ab\xff", 2));
}

static void test_utf8_len(void **state)
{
    assert_int_equal(nt_utf8_len("", 0), 0);
    assert_int_equal(nt_utf8_len("abc", 3), 3);
    assert_int_equal(nt_utf8_len("caf\xc3\xa9", 5), 4);
    assert_int_equal(nt_utf8_len("\xe2\x82\xac\xf0\x9f\x98\x80", 7), 2);
}

static void test_valid_id(void **state)
{
    assert_true(nt_valid_id("a", 1));
    assert_true(nt_valid_id("Room_42-x", 9));
    char id[65];
    memset(id, 'z', sizeof(id));
    assert_true(nt_valid_id(id, 64));
    assert_false(nt_valid_id(id, 65));
    assert_false(nt_valid_id("", 0));
    assert_false(nt_valid_id("a b", 3));
    assert_false(nt_valid_id("a.b", 3));
    assert_false(nt_valid_id("a/b", 3));
    assert_false(nt_valid_id("a*", 2));
    assert_false(nt_valid_id("a>", 2));
    assert_false(nt_valid_id("caf\xc3\xa9", 5));
    assert_false(nt_valid_id("ab\0c", 4));
    assert_true(nt_valid_id("ab\0c", 2));
}

static void test_uuid(void **state)
{
    char a[37], b[37];
    nt_uuid(a);
    nt_uuid(b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    assert_int_equal(a[14], '4');                 /* version */
    assert_non_null(strchr("89ab", a[19]));       /* variant */
}

static void test_rfc3339(void **state)
{
    char out[32];
    nt_rfc3339_ms(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    nt_rfc3339_ms(1795835841123LL, out);
    assert_string_equal(out, "2026-11-28T03:17:21.123Z");
    nt_rfc3339_ms(951782400007LL, out);            /* leap day */
    assert_string_equal(out, "2000-02-29T00:00:00.007Z");
    nt_rfc3339_ms(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");

    int64_t now = nt_now_ms();
    assert_true(now > 1700000000000LL);
    nt_rfc3339_ms(now, out);
    assert_int_equal(strlen(out), 24);
    assert_int_equal(out[10], 'T');
    assert_int_equal(out[23], 'Z');
}

static void test_partition(void **state)
{
    /* FNV-1a 32 of "default/lobby", worked by hand, fixes the hash across releases */
    uint32_t h = 2166136261u;
    for (const char *p = "default/lobby"; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    assert_int_equal(nt_partition("default", "lobby", 1000003), h % 1000003);
    assert_int_equal(nt_partition("default", "lobby", 16), h % 16);
    /* stable across calls, in range, and spread */
    int hits[16] = { 0 };
    for (int i = 0; i < 1600; i++) {
        char room[16];
        snprintf(room, sizeof(room), "room%d", i);
        unsigned p = nt_partition("app", room, 16);
        assert_true(p < 16);
        assert_int_equal(p, nt_partition("app", room, 16));
        hits[p]++;
    }
    for (int p = 0; p < 16; p++)
        assert_true(hits[p] > 40);
    /* the separator matters: "ab"/"c" and "a"/"bc" differ */
    assert_int_not_equal(nt_partition("ab", "c", 1u << 31), nt_partition("a", "bc", 1u << 31));
    assert_int_equal(nt_partition("x", "y", 1), 0);
    assert_int_equal(nt_partition("x", "y", 0), 0);
}

static void test_consttime_eq(void **state)
{
    assert_true(nt_consttime_eq("secret", 6, "secret", 6));
    assert_true(nt_consttime_eq("", 0, "", 0));
    assert_false(nt_consttime_eq("secret", 6, "secreT", 6));
    assert_false(nt_consttime_eq("secret", 6, "secrets", 7));
    assert_false(nt_consttime_eq("secret", 6, "secret\0", 7));
    assert_false(nt_consttime_eq("", 0, "a", 1));
    assert_true(nt_consttime_eq("a\0b", 3, "a\0b", 3));
    assert_false(nt_consttime_eq("a\0b", 3, "a\0c", 3));
}

static void test_log_limit(void **state)
{
    nt_log_limit l = { 0 };
    uint64_t n = 0;
    assert_true(nt_log_limit_due(&l, 0, 1000, &n));       /* the first event, even at time 0 */
    assert_int_equal(n, 1);
    assert_false(nt_log_limit_due(&l, 10, 1000, &n));
    assert_false(nt_log_limit_due(&l, 999, 1000, &n));
    assert_true(nt_log_limit_due(&l, 1000, 1000, &n));    /* covers the two held back and itself */
    assert_int_equal(n, 3);
    assert_false(nt_log_limit_due(&l, 1500, 1000, &n));
    assert_true(nt_log_limit_due(&l, 5000, 1000, &n));
    assert_int_equal(n, 2);
}

static void test_utf8_scrub_and_cut(void **state)
{
    (void)state;
    char bad[] = "a\xc3\xa9\xff\xc3(\xe2\x82";          /* a é, stray 0xff, cut é, (, cut € */
    assert_int_equal(nt_utf8_scrub(bad, strlen(bad)), 4);
    assert_string_equal(bad, "a\xc3\xa9?" "?(?" "?");
    assert_true(nt_valid_utf8(bad, strlen(bad)));
    char good[] = "h\xc3\xa9llo \xf0\x9f\x98\x80";
    assert_int_equal(nt_utf8_scrub(good, strlen(good)), 0);
    assert_string_equal(good, "h\xc3\xa9llo \xf0\x9f\x98\x80");

    const char *e = "\xc3\xa9\xc3\xa9\xc3\xa9";                 /* three é, six bytes */
    assert_int_equal(nt_utf8_cut(e, 6, 10), 6);
    assert_int_equal(nt_utf8_cut(e, 6, 5), 4);
    assert_int_equal(nt_utf8_cut(e, 6, 4), 4);
    assert_int_equal(nt_utf8_cut(e, 6, 1), 0);
    const char *smile = "\xf0\x9f\x98\x80x";
    assert_int_equal(nt_utf8_cut(smile, 5, 3), 0);
    assert_int_equal(nt_utf8_cut(smile, 5, 4), 4);

    /* Every cut of every prefix of a mixed string stays valid UTF-8. */
    const char *mix = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z\xc3\xa9";
    size_t n = strlen(mix);
    for (size_t max = 0; max <= n + 1; max++) {
        size_t k = nt_utf8_cut(mix, n, max);
        assert_true(k <= max && k <= n);
        assert_true(nt_valid_utf8(mix, k));
    }

    char buf[8];
    assert_string_equal(nt_shorten("short", buf, sizeof buf), "short");
    const char *q = nt_shorten("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", buf, sizeof buf);
    assert_string_equal(q, "\xc3\xa9\xc3\xa9...");    /* 4 bytes fit: two é, never half of one */
    assert_true(nt_valid_utf8(q, strlen(q)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_invalid),
        cmocka_unit_test(test_utf8_len),
        cmocka_unit_test(test_utf8_scrub_and_cut),
        cmocka_unit_test(test_valid_id),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_partition),
        cmocka_unit_test(test_consttime_eq),
        cmocka_unit_test(test_log_limit),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return rc != 0 ? rc : nt_alloc_used() != 0;
}
