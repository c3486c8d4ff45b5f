/* test_apps.c: NATTER_APPS parsing (common/apps.c): the keys, the defaults, and each
 * refusal naming the app and key, with nothing leaked on any path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "alloc.h"
#include "apps.h"

static void test_parse(void **state)
{
    (void)state;
    nt_apps a;
    char why[256];
    const char *json = "[{\"id\":\"acme\",\"key\":\"k\",\"secret\":\"s\",\"jwt_secret\":\"j\","
                       "\"api_key\":\"api\",\"client_events\":true,\"max_connections\":10,"
                       "\"webhook_url\":\"https://hooks.example/x\"},{\"id\":\"b\",\"enabled\":false}]";
    assert_true(nt_apps_parse(json, strlen(json), &a, why, sizeof why));
    assert_int_equal(a.n, 2);
    const nt_app *acme = nt_apps_find(&a, "acme");
    assert_non_null(acme);
    assert_string_equal(acme->jwt_secret, "j");
    assert_true(acme->enabled);
    assert_true(acme->client_events);
    assert_int_equal(acme->max_connections, 10);
    const nt_app *b = nt_apps_find(&a, "b");
    assert_false(b->enabled);
    assert_null(b->jwt_secret);
    assert_false(b->client_events);
    assert_ptr_equal(nt_apps_by_api_key(&a, "api", 3), acme);
    assert_null(nt_apps_by_api_key(&a, "ap", 2));
    assert_null(nt_apps_find(&a, "c"));
    nt_apps_free(&a);
    assert_true(nt_apps_parse("[]", 2, &a, why, sizeof why));
    assert_int_equal(a.n, 0);
    nt_apps_free(&a);
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct { const char *json, *why; } cases[] = {
        { "{}", "must be a JSON array of at most 10000 apps" },
        { "[1]", "app #0: must be an object" },
        { "[{\"id\":\"\"}]", "app #0: 'id' must be 1-64 characters of [A-Za-z0-9_-]" },
        { "[{\"id\":\"a\"},{\"id\":\"a\"}]", "app 'a' is listed twice" },
        { "[{\"id\":\"a\",\"jwt_secret\":\"\"}]", "app 'a': 'jwt_secret' must be a non-empty string" },
        { "[{\"id\":\"a\",\"secret\":\"s\",\"api_key\":3}]", "app 'a': 'api_key' must be a non-empty string" },
        { "[{\"id\":\"a\",\"enabled\":1}]", "app 'a': 'enabled' must be true or false" },
        { "[{\"id\":\"a\",\"max_connections\":0}]", "app 'a': 'max_connections' must be a positive integer" },
        { "[{\"id\":\"a\",\"webhook_url\":\"ftp://x\"}]", "app 'a': 'webhook_url' must be an http:// or https:// URL" },
        { "[{\"id\":\"a\",\"api_key\":\"k\"},{\"id\":\"b\",\"api_key\":\"k\"}]", "apps 'a' and 'b' have the same api_key" },
        { "[{\"id\":\"a\",\"key\":\"k\",\"x\":1}]", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nt_apps a;
        char why[256] = "";
        assert_false(nt_apps_parse(cases[i].json, strlen(cases[i].json), &a, why, sizeof why));
        assert_int_equal(a.n, 0);
        if (cases[i].why)
            assert_string_equal(why, cases[i].why);
        else
            assert_non_null(strstr(why, "unknown key 'x'"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_refusals),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return rc != 0 ? rc : nt_alloc_used() != 0;
}
