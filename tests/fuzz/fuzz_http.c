/* fuzz_http.c: libFuzzer harness for the pure parts of the gateway's HTTP API. The input
 * is a path line, then optionally '\n' and a request body. The line goes through the
 * UTF-8 and id helpers of util.h (jansson's UTF-8 check as the oracle), the route
 * matcher (route.c), gw_channel_parse and the 400 text path ids are quoted in; the
 * body through json_loadb and the checks of POST /api/rooms/{id}/read, /api/rooms,
 * /api/rooms/{id}/members and /api/dev/token. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "frame.h"
#include "fuzz_check.h"
#include "jsonw.h"
#include "jwt.h"
#include "route.h"
#include "util.h"

#define FZ_SECRET "fuzz-secret"
#define FZ_NOW 1700000000

/* The body http.c's respond_error writes for message (gw_encode_http_error): valid
 * JSON whatever message holds, the message kept but for bytes that are not UTF-8. */
static void check_error_body(gw_errcode code, const char *message)
{
    size_t mlen = strlen(message), len = 0;
    char *m = nt_strndup(message, mlen);
    nt_utf8_scrub(m, mlen);
    char *text = gw_encode_http_error(code, message, 7, &len);
    json_t *j = fz_json(text, len, "an HTTP error body");
    json_t *got = json_object_get(json_object_get(j, "error"), "message");
    FZ_CHECK(json_is_string(got) && strcmp(json_string_value(got), m) == 0,
             "HTTP error message changed");
    FZ_CHECK(json_integer_value(json_object_get(json_object_get(j, "error"), "retry_after_ms")) == 7,
             "HTTP error retry_after_ms");
    FZ_CHECK(gw_errcode_http(code) >= 400 && gw_errcode_http(code) <= 599, "HTTP status");
    json_decref(j);
    nt_free(text);
    nt_free(m);
}

static bool id_oracle(const char *s, size_t len)
{
    if (len < 1 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", s[i]) ||
            s[i] == '\0')
            return false;
    return true;
}

/* util.h's UTF-8 helpers on s[0..len), against jansson's own UTF-8 check. */
static void check_utf8(const char *s, size_t len)
{
    bool valid = nt_valid_utf8(s, len);
    json_t *oracle = json_stringn(s, len);
    FZ_CHECK(valid == (oracle != NULL), "nt_valid_utf8 says %d, jansson disagrees", valid);
    json_decref(oracle);

    size_t seqs = 0, at = 0, n;
    while (at < len && (n = nt_utf8_seq(s, len, at)) != 0) {
        FZ_CHECK(n <= 4 && at + n <= len, "nt_utf8_seq %zu at %zu", n, at);
        at += n;
        seqs++;
    }
    FZ_CHECK((at == len) == valid, "nt_utf8_seq stops at %zu of %zu", at, len);
    if (valid)
        FZ_CHECK(nt_utf8_len(s, len) == seqs, "nt_utf8_len %zu, %zu characters",
                 nt_utf8_len(s, len), seqs);

    char *copy = nt_strndup(s, len);
    size_t bad = nt_utf8_scrub(copy, len);
    FZ_CHECK((bad == 0) == valid && nt_valid_utf8(copy, len), "nt_utf8_scrub left bad bytes");
    FZ_CHECK(nt_utf8_scrub(copy, len) == 0, "nt_utf8_scrub is not idempotent");
    for (size_t i = 0; i < len; i++)
        FZ_CHECK(copy[i] == s[i] || copy[i] == '?', "nt_utf8_scrub wrote 0x%02x",
                 (unsigned char)copy[i]);
    nt_free(copy);

    size_t maxes[] = { 0, 1, 3, len / 2, 64, len };
    for (size_t i = 0; i < sizeof maxes / sizeof maxes[0]; i++) {
        size_t max = maxes[i], cut = nt_utf8_cut(s, len, max);
        FZ_CHECK(len <= max ? cut == len : cut <= max, "nt_utf8_cut %zu of %zu to %zu", cut, len, max);
        FZ_CHECK(cut == 0 || cut == len || ((unsigned char)s[cut] & 0xc0) != 0x80,
                 "nt_utf8_cut ends inside a character");
        FZ_CHECK(!valid || nt_valid_utf8(s, cut), "nt_utf8_cut of UTF-8 is not UTF-8");
    }

    char *cs = nt_strndup(s, len), buf[80];
    size_t cl = strlen(cs);
    size_t buflens[] = { 4, 5, 48, 80 };
    for (size_t i = 0; i < sizeof buflens / sizeof buflens[0]; i++) {
        size_t bl = buflens[i];
        const char *out = nt_shorten(cs, buf, bl);
        FZ_CHECK(cl < bl ? out == cs
                         : (out == buf && strlen(out) < bl &&
                            memcmp(out + strlen(out) - 3, "...", 3) == 0),
                 "nt_shorten to %zu bytes", bl);
        FZ_CHECK(!nt_valid_utf8(cs, cl) || nt_valid_utf8(out, strlen(out)),
                 "nt_shorten of UTF-8 is not UTF-8");
    }
    nt_free(cs);
    FZ_CHECK(nt_valid_id(s, len) == id_oracle(s, len), "nt_valid_id disagrees");
}

/* Patterns of each form the route table uses (routes.c). */
static const char *const patterns[] = {
    "/healthz", "/api/rooms/{}/messages", "/api/rooms/{}/members/{}/delete",
    "/api/server/users/{}/disconnect", "/{}", "/{}/{}", "/api/server/*", "*",
};

/* gw_route_match against an oracle: a match rebuilds the path from the pattern and the
 * segments it gave (each without '/'), and the path with its first one or two segments
 * written {} as the pattern matches them back. */
static void check_route(const char *path)
{
    gw_route_params p;
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        const char *pat = patterns[i];
        if (!gw_route_match(pat, path, &p))
            continue;
        char rebuilt[256];
        size_t at = 0, k = 0;
        const char *q = pat;
        for (; *q && *q != '*' && at < sizeof rebuilt - 1; q++) {
            if (q[0] == '{' && q[1] == '}') {
                FZ_CHECK(k < p.n && !memchr(p.v[k].s, '/', p.v[k].len), "segment %zu of %s", k, pat);
                size_t n = p.v[k].len < sizeof rebuilt - 1 - at ? p.v[k].len : sizeof rebuilt - 1 - at;
                memcpy(rebuilt + at, p.v[k].s, n);
                at += n;
                k++;
                q++;
            } else {
                rebuilt[at++] = *q;
            }
        }
        rebuilt[at] = '\0';
        FZ_CHECK(k == p.n, "%s gave %u segments, has %zu", pat, p.n, k);
        if (*q == '*')
            FZ_CHECK(strncmp(path, rebuilt, at) == 0, "%s matched %s", pat, path);
        else if (strlen(path) < sizeof rebuilt - 1)
            FZ_CHECK(strcmp(path, rebuilt) == 0, "%s matched %s", pat, path);
    }
    /* "/<a>/<b>/rest": the pattern "/{}/{}/rest" must match with a and b */
    if (path[0] != '/' || strchr(path, '{') || strchr(path, '*'))
        return;
    const char *a = path + 1, *b = strchr(a, '/');
    if (!b)
        return;
    const char *rest = strchr(b + 1, '/');
    char pat[256];
    if (!rest || strlen(rest) > 200)
        return;
    snprintf(pat, sizeof pat, "/{}/{}%s", rest);
    FZ_CHECK(gw_route_match(pat, path, &p) && p.n == 2 && p.v[0].s == a &&
                 p.v[0].len == (size_t)(b - a) && p.v[1].s == b + 1 &&
                 p.v[1].len == (size_t)(rest - b - 1),
             "%s did not match %s", pat, path);
}

/* The path line as the ids and channels the routes take from it. */
static void check_path(const char *p, size_t len)
{
    gw_channel ch;
    gw_error err;
    char *cs = nt_strndup(p, len);
    size_t cl = strlen(cs);

    /* the 400 text of gw_http_id (every id of a route's path) */
    gw_fail(&err, GW_E_BAD_REQUEST, "invalid %s id '%.*s': expected [A-Za-z0-9_-]{1,64}", "room",
            (int)nt_utf8_cut(p, len, 64), p);
    fz_check_error_reply(NULL, &err);
    check_error_body(err.code, err.message);
    check_route(cs);

    if (gw_channel_parse(cs, &ch, &err)) {
        FZ_CHECK(ch.kind != GW_CH_NONE && nt_valid_id(ch.id, strlen(ch.id)), "channel %s", cs);
        FZ_CHECK(cl > strlen(ch.id) && strcmp(cs + cl - strlen(ch.id), ch.id) == 0,
                 "channel id is not the tail of %s", cs);
    } else {
        fz_check_error_reply(NULL, &err);
        check_error_body(err.code, err.message);
    }
    if (nt_valid_id(p, len)) {
        static const char *const forms[] = { "room.", "chat.room.", "chat.", "dm." };
        for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
            char full[96];
            snprintf(full, sizeof full, "%s%s", forms[i], cs);
            FZ_CHECK(gw_channel_parse(full, &ch, &err) && strcmp(ch.id, cs) == 0 &&
                         ch.kind == (i == 3 ? GW_CH_DM : GW_CH_ROOM),
                     "channel %s refused", full);
        }
    }
    nt_free(cs);
}

/* POST /api/dev/token's checks; a body that passes them must get a token. */
static void check_dev_token(json_t *req)
{
    json_t *user = json_object_get(req, "user_id"), *name = json_object_get(req, "name");
    json_t *app = json_object_get(req, "app");
    if (!json_is_string(user) || !nt_valid_id(json_string_value(user), json_string_length(user)))
        return;
    if (name && !json_is_null(name) && (!json_is_string(name) || json_string_length(name) > 128))
        return;
    if (app && !json_is_null(app) &&
        (!json_is_string(app) || !nt_valid_id(json_string_value(app), json_string_length(app))))
        return;
    const char *a = json_is_string(app) ? json_string_value(app) : "default";
    char *tok = nt_jwt_sign(FZ_SECRET, json_string_value(user), a,
                            json_is_string(name) ? json_string_value(name) : NULL, NULL,
                            FZ_NOW + 3600);
    FZ_CHECK(tok != NULL, "nt_jwt_sign refused a body /api/dev/token accepts");
    json_t *answer = json_pack("{s:s}", "token", tok);
    FZ_CHECK(answer != NULL, "the dev token answer cannot be encoded");
    json_decref(answer);
    nt_claims cl;
    FZ_CHECK(nt_jwt_verify(tok, strlen(tok), FZ_SECRET, FZ_NOW, &cl, NULL, 0) == NT_OK &&
                 strcmp(cl.sub, json_string_value(user)) == 0 && strcmp(cl.app, a) == 0,
             "a dev token does not verify to its user");
    nt_free(tok);
}

/* A request body as the POST routes read it. */
static void check_body(const char *b, size_t len)
{
    json_error_t je;
    gw_error err;
    gw_mark_req m;
    char msg[256];
    json_t *req = json_loadb(b, len, 0, &je);
    if (!json_is_object(req)) {
        snprintf(msg, sizeof msg, "body must be a JSON object: %s", req ? "not an object" : je.text);
        check_error_body(GW_E_BAD_REQUEST, msg);
        json_decref(req);
        return;
    }
    if (gw_mark_parse(req, true, "", &m, &err))
        fz_check_mark(&m, true);
    else
        check_error_body(err.code, err.message);

    gw_create_req *cr = nt_malloc(sizeof *cr);
    if (gw_create_parse(req, cr, &err))
        fz_check_create(cr);
    else
        check_error_body(err.code, err.message);
    nt_free(cr);

    json_t *user = json_object_get(req, "user_id");
    if (json_is_string(user) && nt_valid_id(json_string_value(user), json_string_length(user))) {
        char id[65];
        snprintf(id, sizeof id, "%s", json_string_value(user));
        FZ_CHECK(strcmp(id, json_string_value(user)) == 0, "member user_id cut");
    }
    check_dev_token(req);
    json_decref(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *nl = memchr(s, '\n', size);
    size_t line = nl ? (size_t)(nl - s) : size;
    check_utf8(s, size);
    check_path(s, line);
    if (nl)
        check_body(nl + 1, size - line - 1);
    return 0;
}
