/* test_http_route.c: the REST route matcher (gateway/http/route.c) and the gateway's
 * route table (routes.c): which handler each method and path reaches, with which
 * segments. The handlers here only record that they were picked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "route.h"
#include "routes.h"

/* The handlers routes.c names, each a distinct function of this file. */
#define HANDLERS(X)                                                                 \
    X(gw_rest_healthz) X(gw_rest_readyz) X(gw_rest_history) X(gw_rest_unread)      \
    X(gw_rest_rooms) X(gw_rest_read) X(gw_rest_create) X(gw_rest_member_add)       \
    X(gw_rest_member_delete) X(gw_rest_member_remove) X(gw_rest_dev_token)         \
    X(gw_http_online) X(gw_http_typing) X(gw_http_presence) X(gw_server_api_publish) \
    X(gw_server_api_notify) X(gw_server_api_disconnect) X(gw_server_api_stats)     \
    X(gw_http_not_found) X(gw_http_not_found_after_body)
#define DEFINE(name)                                                                \
    void name(gw_http *h, const gw_route_params *p);                                \
    void name(gw_http *h, const gw_route_params *p) { (void)h; (void)p; }
HANDLERS(DEFINE)

typedef void (*handler_fn)(gw_http *, const gw_route_params *);

static handler_fn pick(gw_http_method m, const char *path, gw_route_params *p)
{
    const gw_route *r = gw_route_find(gw_routes, gw_nroutes, m, path, p);
    return r ? r->handler : NULL;
}

static void assert_param(const gw_route_params *p, unsigned i, const char *want)
{
    assert_true(i < p->n);
    assert_int_equal(p->v[i].len, strlen(want));
    assert_memory_equal(p->v[i].s, want, strlen(want));
}

static void test_match_segments(void **state)
{
    gw_route_params p;
    (void)state;
    assert_true(gw_route_match("/a/{}/b", "/a/x-1/b", &p));
    assert_int_equal(p.n, 1);
    assert_param(&p, 0, "x-1");
    assert_true(gw_route_match("/a/{}/b/{}", "/a/r/b/u", &p));
    assert_int_equal(p.n, 2);
    assert_param(&p, 0, "r");
    assert_param(&p, 1, "u");
    /* a segment may be empty (the handler refuses it by name), never hold a '/' */
    assert_true(gw_route_match("/a/{}/b", "/a//b", &p));
    assert_param(&p, 0, "");
    assert_false(gw_route_match("/a/{}/b", "/a/x/y/b", &p));
    /* the whole path, no more, no less */
    assert_false(gw_route_match("/a/{}/b", "/a/x/b/", &p));
    assert_false(gw_route_match("/a/{}/b", "/a/x", &p));
    assert_false(gw_route_match("/a", "/ab", &p));
    assert_true(gw_route_match("/a/{}", "/a/", &p));
    /* a trailing * takes any rest */
    assert_true(gw_route_match("/a/*", "/a/", &p));
    assert_true(gw_route_match("/a/*", "/a/x/y", &p));
    assert_false(gw_route_match("/a/*", "/a", &p));
    assert_true(gw_route_match("*", "/anything", &p));
    /* more {} than there is room for is no match, never an overflow */
    assert_false(gw_route_match("/{}/{}/{}", "/a/b/c", &p));
}

static void test_table(void **state)
{
    gw_route_params p;
    (void)state;
    assert_ptr_equal(pick(GW_HTTP_GET, "/healthz", &p), gw_rest_healthz);
    assert_ptr_equal(pick(GW_HTTP_GET, "/readyz", &p), gw_rest_readyz);
    assert_ptr_equal(pick(GW_HTTP_GET, "/api/rooms/lobby/messages", &p), gw_rest_history);
    assert_param(&p, 0, "lobby");
    assert_ptr_equal(pick(GW_HTTP_GET, "/api/rooms/lobby/online", &p), gw_http_online);
    assert_ptr_equal(pick(GW_HTTP_GET, "/api/rooms/lobby/typing", &p), gw_http_typing);
    assert_ptr_equal(pick(GW_HTTP_GET, "/api/users/u1/presence", &p), gw_http_presence);
    assert_param(&p, 0, "u1");
    assert_ptr_equal(pick(GW_HTTP_GET, "/api/me/unread", &p), gw_rest_unread);
    assert_ptr_equal(pick(GW_HTTP_GET, "/api/rooms", &p), gw_rest_rooms);
    assert_ptr_equal(pick(GW_HTTP_POST, "/api/rooms", &p), gw_rest_create);
    assert_ptr_equal(pick(GW_HTTP_POST, "/api/rooms/r1/read", &p), gw_rest_read);
    assert_ptr_equal(pick(GW_HTTP_POST, "/api/rooms/r1/members", &p), gw_rest_member_add);
    assert_ptr_equal(pick(GW_HTTP_POST, "/api/rooms/r1/members/u2/delete", &p),
                     gw_rest_member_remove);
    assert_param(&p, 0, "r1");
    assert_param(&p, 1, "u2");
    assert_ptr_equal(pick(GW_HTTP_DELETE, "/api/rooms/r1/members/u2", &p), gw_rest_member_delete);
    assert_param(&p, 1, "u2");
    assert_ptr_equal(pick(GW_HTTP_POST, "/api/dev/token", &p), gw_rest_dev_token);
    assert_ptr_equal(pick(GW_HTTP_GET, "/api/server/stats", &p), gw_server_api_stats);
    assert_ptr_equal(pick(GW_HTTP_POST, "/api/server/publish", &p), gw_server_api_publish);
    assert_ptr_equal(pick(GW_HTTP_POST, "/api/server/notify", &p), gw_server_api_notify);
    assert_ptr_equal(pick(GW_HTTP_POST, "/api/server/users/u3/disconnect", &p),
                     gw_server_api_disconnect);
    assert_param(&p, 0, "u3");
}

/* What no route takes: GET and DELETE get nothing (http.c answers 404 at once); an
 * unknown server API POST is refused before its body, any other POST after it. */
static void test_unknown(void **state)
{
    gw_route_params p;
    (void)state;
    assert_null(pick(GW_HTTP_GET, "/api/nope", &p));
    assert_null(pick(GW_HTTP_GET, "/api/rooms/r1/members", &p));
    assert_null(pick(GW_HTTP_GET, "/api/server/publish", &p));
    assert_null(pick(GW_HTTP_GET, "/api/rooms/a/b/messages", &p));
    assert_null(pick(GW_HTTP_DELETE, "/api/rooms/r1/members", &p));
    assert_null(pick(GW_HTTP_DELETE, "/api/rooms/r1", &p));
    assert_null(pick(GW_HTTP_OTHER, "/healthz", &p));
    assert_ptr_equal(pick(GW_HTTP_POST, "/api/server/stats", &p), gw_http_not_found);
    assert_ptr_equal(pick(GW_HTTP_POST, "/api/server/users/a/b/disconnect", &p),
                     gw_http_not_found);
    assert_ptr_equal(pick(GW_HTTP_POST, "/api/rooms/r1/messages", &p),
                     gw_http_not_found_after_body);
    assert_ptr_equal(pick(GW_HTTP_POST, "/", &p), gw_http_not_found_after_body);
}

/* Every pattern of the table is well formed: at most GW_ROUTE_MAX_PARAMS {}, '*' only
 * at the end, and no two routes with the same method and pattern. */
static void test_table_well_formed(void **state)
{
    (void)state;
    for (size_t i = 0; i < gw_nroutes; i++) {
        const char *pat = gw_routes[i].pattern, *star = strchr(pat, '*');
        unsigned n = 0;
        for (const char *s = pat; (s = strstr(s, "{}")); s += 2)
            n++;
        assert_true(n <= GW_ROUTE_MAX_PARAMS);
        assert_true(!star || star[1] == '\0');
        assert_non_null(gw_routes[i].handler);
        for (size_t j = 0; j < i; j++)
            assert_false(gw_routes[j].method == gw_routes[i].method &&
                         strcmp(gw_routes[j].pattern, pat) == 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_segments),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_table_well_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
