/* test_buf.c: the growable buffer: appends keep a NUL after the content, formatted text,
 * reset keeps the storage, the max bound refuses and leaves the buffer as it was, and
 * detach hands the storage over. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "alloc.h"
#include "buf.h"

static void test_append_and_fmt(void **state)
{
    nt_buf b;
    nt_buf_init(&b, 0);
    assert_null(b.data);
    assert_int_equal(nt_buf_append(&b, "ab", 2), NT_OK);
    assert_int_equal(nt_buf_append(&b, "\0c", 2), NT_OK);     /* binary-safe */
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "ab\0c", 5);
    assert_int_equal(nt_buf_append_fmt(&b, "-%d-%s", 42, "x"), NT_OK);
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.data, "ab\0c-42-x", 10);
    nt_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_grows_past_many_doublings(void **state)
{
    nt_buf b = NT_BUF_INIT(0);
    char chunk[1000];
    memset(chunk, 'z', sizeof(chunk));
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(nt_buf_append(&b, chunk, sizeof(chunk)), NT_OK);
        assert_int_equal(nt_buf_append_fmt(&b, "%04d", i), NT_OK);
    }
    assert_int_equal(b.len, 1000 * 1004);
    assert_true(b.cap > b.len);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data + b.len - 4, "0999", 4);
    nt_buf_free(&b);
}

static void test_reset_keeps_storage(void **state)
{
    nt_buf b = NT_BUF_INIT(0);
    assert_int_equal(nt_buf_append_fmt(&b, "%s", "hello"), NT_OK);
    char *data = b.data;
    size_t cap = b.cap;
    nt_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    nt_buf_free(&b);
}

static void test_max_refuses(void **state)
{
    nt_buf b;
    nt_buf_init(&b, 10);
    assert_int_equal(nt_buf_append(&b, "0123456789", 10), NT_OK);   /* exactly max */
    assert_int_equal(nt_buf_append(&b, "a", 1), NT_ETOOBIG);
    assert_int_equal(nt_buf_append_fmt(&b, "%d", 7), NT_ETOOBIG);
    assert_int_equal(nt_buf_reserve(&b, SIZE_MAX), NT_ETOOBIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    assert_true(b.cap <= 11);                       /* never grown past max + NUL */
    nt_buf_reset(&b);
    assert_int_equal(nt_buf_append_fmt(&b, "%s", "0123456789abc"), NT_ETOOBIG);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");                /* a partial text is not left behind */
    nt_buf_free(&b);
    assert_int_equal(b.max, 10);                    /* free keeps the bound for reuse */
}

static void test_reserve_then_commit(void **state)
{
    nt_buf b = NT_BUF_INIT(0);
    assert_int_equal(nt_buf_reserve(&b, 3), NT_OK);
    memcpy(b.data + b.len, "xyz", 3);
    nt_buf_commit(&b, 3);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "xyz");
    nt_buf_free(&b);
}

static void test_detach(void **state)
{
    nt_buf b = NT_BUF_INIT(0);
    size_t len = 99;
    char *empty = nt_buf_detach(&b, &len);
    assert_int_equal(len, 0);
    assert_string_equal(empty, "");
    nt_free(empty);
    assert_int_equal(nt_buf_append(&b, "abc", 3), NT_OK);
    char *p = nt_buf_detach(&b, &len);
    assert_int_equal(len, 3);
    assert_string_equal(p, "abc");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    nt_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_fmt),
        cmocka_unit_test(test_grows_past_many_doublings),
        cmocka_unit_test(test_reset_keeps_storage),
        cmocka_unit_test(test_max_refuses),
        cmocka_unit_test(test_reserve_then_commit),
        cmocka_unit_test(test_detach),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return rc != 0 ? rc : nt_alloc_used() != 0;
}
