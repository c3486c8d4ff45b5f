/* test_jwt.c: HS256 verification refuses every malformed, forged or expired token. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "jwt.h"

#define SECRET "s3cret-for-tests"
#define NOW 1700000000

static void b64url(const void *in, size_t len, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    size_t n = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        out[n++] = a[p[i] >> 2];
        out[n++] = a[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        out[n++] = a[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
        out[n++] = a[p[i + 2] & 63];
    }
    if (len - i == 1) {
        out[n++] = a[p[i] >> 2];
        out[n++] = a[(p[i] & 3) << 4];
    } else if (len - i == 2) {
        out[n++] = a[p[i] >> 2];
        out[n++] = a[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        out[n++] = a[(p[i + 1] & 15) << 2];
    }
    out[n] = '\0';
}

/* Builds header.payload.signature by hand, signed with `md` (NULL: empty signature). */
static void craft(char *out, const char *header, const char *payload, const EVP_MD *md,
                  const char *secret)
{
    b64url(header, strlen(header), out);
    strcat(out, ".");
    b64url(payload, strlen(payload), out + strlen(out));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (md != NULL)
        HMAC(md, secret, (int)strlen(secret), (unsigned char *)out, strlen(out), mac, &maclen);
    strcat(out, ".");
    b64url(mac, maclen, out + strlen(out));
}

static const char *HS256 = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* Verifies and returns the status; `why` gets the reason. */
static nt_status verify(const char *tok, nt_claims *c, char *why)
{
    why[0] = '\0';
    return nt_jwt_verify(tok, strlen(tok), SECRET, NOW, c, why, 64);
}

static void assert_refused(const char *tok, const char *reason)
{
    nt_claims c;
    char why[64];
    assert_int_equal(verify(tok, &c, why), NT_EAUTH);
    assert_string_equal(why, reason);
}

static void test_valid(void **state)
{
    char tok[1024], why[64];
    nt_claims c;
    craft(tok, HS256, "{\"sub\":\"alice_1\",\"app\":\"acme\",\"name\":\"Alice A.\","
                      "\"role\":\"admin\",\"exp\":1700000100}", EVP_sha256(), SECRET);
    assert_int_equal(verify(tok, &c, why), NT_OK);
    assert_string_equal(c.sub, "alice_1");
    assert_string_equal(c.app, "acme");
    assert_string_equal(c.name, "Alice A.");
    assert_string_equal(c.role, "admin");
    assert_int_equal(c.exp, 1700000100);
}

static void test_sign_round_trip(void **state)
{
    char why[64];
    nt_claims c;
    char *tok = nt_jwt_sign(SECRET, "bob", NULL, "Bob \xc3\xa9", NULL, NOW + 60);
    assert_non_null(tok);
    assert_int_equal(strncmp(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37), 0);
    assert_int_equal(verify(tok, &c, why), NT_OK);
    assert_string_equal(c.sub, "bob");
    assert_string_equal(c.app, "default");
    assert_string_equal(c.name, "Bob \xc3\xa9");
    assert_string_equal(c.role, "");
    assert_int_equal(c.exp, NOW + 60);
    /* another secret does not verify it */
    assert_int_equal(nt_jwt_verify(tok, strlen(tok), "other", NOW, &c, why, sizeof(why)), NT_EAUTH);
    assert_string_equal(why, "bad signature");
    /* a token inside a longer buffer: only len bytes count */
    size_t len = strlen(tok);
    char *padded = nt_malloc(len + 8);
    memcpy(padded, tok, len);
    memcpy(padded + len, "garbage", 8);
    assert_int_equal(nt_jwt_verify(padded, len, SECRET, NOW, &c, why, sizeof(why)), NT_OK);
    nt_free(padded);
    nt_free(tok);
}

static void test_default_app(void **state)
{
    char tok[1024], why[64];
    nt_claims c;
    craft(tok, HS256, "{\"sub\":\"u\",\"exp\":1700000001}", EVP_sha256(), SECRET);
    assert_int_equal(verify(tok, &c, why), NT_OK);
    assert_string_equal(c.app, "default");
    assert_string_equal(c.name, "");
}

static void test_expired(void **state)
{
    char tok[1024];
    craft(tok, HS256, "{\"sub\":\"u\",\"exp\":1700000000}", EVP_sha256(), SECRET);
    assert_refused(tok, "token expired");
    craft(tok, HS256, "{\"sub\":\"u\",\"exp\":5}", EVP_sha256(), SECRET);
    assert_refused(tok, "token expired");
}

static void test_exp_missing_or_not_integer(void **state)
{
    char tok[1024];
    craft(tok, HS256, "{\"sub\":\"u\"}", EVP_sha256(), SECRET);
    assert_refused(tok, "missing exp");
    craft(tok, HS256, "{\"sub\":\"u\",\"exp\":\"1800000000\"}", EVP_sha256(), SECRET);
    assert_refused(tok, "missing exp");
    craft(tok, HS256, "{\"sub\":\"u\",\"exp\":1800000000.5}", EVP_sha256(), SECRET);
    assert_refused(tok, "missing exp");
}

static void test_alg_none(void **state)
{
    char payload[256], tok[1024];
    const char *claims = "{\"sub\":\"admin\",\"exp\":1800000000}";
    b64url(claims, strlen(claims), payload);
    snprintf(tok, sizeof(tok), "eyJhbGciOiJub25lIn0.%s.", payload);
    assert_refused(tok, "unsupported alg");
    /* same with a valid HS256 signature appended: still none */
    craft(tok, "{\"alg\":\"none\"}", "{\"sub\":\"admin\",\"exp\":1800000000}", EVP_sha256(), SECRET);
    assert_refused(tok, "unsupported alg");
}

static void test_alg_other(void **state)
{
    char tok[1024];
    const char *claims = "{\"sub\":\"u\",\"exp\":1800000000}";
    craft(tok, "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", claims, EVP_sha512(), SECRET);
    assert_refused(tok, "unsupported alg");
    craft(tok, "{\"typ\":\"JWT\"}", claims, EVP_sha256(), SECRET);
    assert_refused(tok, "unsupported alg");
    craft(tok, "{\"alg\":\"hs256\"}", claims, EVP_sha256(), SECRET);
    assert_refused(tok, "unsupported alg");
    craft(tok, "{\"alg\":256}", claims, EVP_sha256(), SECRET);
    assert_refused(tok, "unsupported alg");
}

static void test_bad_signature(void **state)
{
    char tok[1024];
    const char *claims = "{\"sub\":\"u\",\"exp\":1800000000}";
    craft(tok, HS256, claims, EVP_sha256(), "wrong secret");
    assert_refused(tok, "bad signature");
    /* truncated signature: 40 of its 43 characters decode to 30 bytes */
    craft(tok, HS256, claims, EVP_sha256(), SECRET);
    tok[strlen(tok) - 3] = '\0';
    assert_refused(tok, "bad signature");
    /* empty signature */
    craft(tok, HS256, claims, NULL, SECRET);
    assert_refused(tok, "bad signature");
}

static void test_tampered_payload(void **state)
{
    char good[1024], evil[1024];
    craft(good, HS256, "{\"sub\":\"mallory\",\"exp\":1800000000}", EVP_sha256(), SECRET);
    craft(evil, HS256, "{\"sub\":\"admin\",\"exp\":1800000000}", EVP_sha256(), SECRET);
    /* splice the admin payload with the mallory signature */
    char tok[1024];
    const char *evil_sig = strrchr(evil, '.');
    const char *good_sig = strrchr(good, '.');
    snprintf(tok, sizeof(tok), "%.*s%s", (int)(evil_sig - evil), evil, good_sig);
    assert_refused(tok, "bad signature");
    /* flip one payload character */
    strcpy(tok, good);
    char *p = strchr(tok, '.') + 5;
    *p = *p == 'A' ? 'B' : 'A';
    assert_refused(tok, "bad signature");
}

static void test_bad_sub(void **state)
{
    char tok[1024];
    craft(tok, HS256, "{\"sub\":\"al ice\",\"exp\":1800000000}", EVP_sha256(), SECRET);
    assert_refused(tok, "invalid sub");
    craft(tok, HS256, "{\"sub\":\"a.b\",\"exp\":1800000000}", EVP_sha256(), SECRET);
    assert_refused(tok, "invalid sub");
    craft(tok, HS256, "{\"sub\":\"\",\"exp\":1800000000}", EVP_sha256(), SECRET);
    assert_refused(tok, "invalid sub");
    craft(tok, HS256, "{\"sub\":42,\"exp\":1800000000}", EVP_sha256(), SECRET);
    assert_refused(tok, "invalid sub");
    craft(tok, HS256, "{\"exp\":1800000000}", EVP_sha256(), SECRET);
    assert_refused(tok, "invalid sub");

    char claims[256], id[66];
    memset(id, 'x', 65);
    id[65] = '\0';
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":1800000000}", id);
    craft(tok, HS256, claims, EVP_sha256(), SECRET);
    assert_refused(tok, "invalid sub");
    id[64] = '\0';
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":1800000000}", id);
    craft(tok, HS256, claims, EVP_sha256(), SECRET);
    nt_claims c;
    char why[64];
    assert_int_equal(verify(tok, &c, why), NT_OK);
    assert_string_equal(c.sub, id);
}

static void test_bad_app(void **state)
{
    char tok[1024];
    craft(tok, HS256, "{\"sub\":\"u\",\"app\":\"a/b\",\"exp\":1800000000}", EVP_sha256(), SECRET);
    assert_refused(tok, "invalid app");
    craft(tok, HS256, "{\"sub\":\"u\",\"app\":\"\",\"exp\":1800000000}", EVP_sha256(), SECRET);
    assert_refused(tok, "invalid app");
    craft(tok, HS256, "{\"sub\":\"u\",\"app\":null,\"exp\":1800000000}", EVP_sha256(), SECRET);
    assert_refused(tok, "invalid app");
}

static void test_name_truncated_on_char_boundary(void **state)
{
    /* 127 ASCII bytes then "é" (2 bytes): byte 128 would split it */
    char name[160], claims[512], tok[2048], why[64];
    memset(name, 'n', 127);
    strcpy(name + 127, "\xc3\xa9tail");
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"name\":\"%s\",\"exp\":1800000000}", name);
    craft(tok, HS256, claims, EVP_sha256(), SECRET);
    nt_claims c;
    assert_int_equal(verify(tok, &c, why), NT_OK);
    assert_int_equal(strlen(c.name), 127);
    assert_memory_equal(c.name, name, 127);
}

static void test_malformed(void **state)
{
    char tok[1024];
    craft(tok, HS256, "{\"sub\":\"u\",\"exp\":1800000000}", EVP_sha256(), SECRET);
    char two[1024];
    snprintf(two, sizeof(two), "%.*s", (int)(strrchr(tok, '.') - tok), tok);
    assert_refused(two, "malformed token");
    char four[1100];
    snprintf(four, sizeof(four), "%s.xyz", tok);
    assert_refused(four, "malformed token");
    assert_refused("", "malformed token");
    assert_refused("..", "malformed token");
    assert_refused("not a token", "malformed token");
    /* bad base64 in the header, padding, and a header that is not JSON */
    char bad[1100];
    snprintf(bad, sizeof(bad), "e*%s", tok + 2);
    assert_refused(bad, "malformed token");
    snprintf(bad, sizeof(bad), "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9=%s", strchr(tok, '.'));
    assert_refused(bad, "malformed token");
    craft(bad, "not json", "{\"sub\":\"u\",\"exp\":1800000000}", EVP_sha256(), SECRET);
    assert_refused(bad, "malformed token");
    craft(bad, "[1]", "{\"sub\":\"u\",\"exp\":1800000000}", EVP_sha256(), SECRET);
    assert_refused(bad, "malformed token");
    /* a correctly signed payload that is not a JSON object */
    craft(bad, HS256, "\"just a string\"", EVP_sha256(), SECRET);
    assert_refused(bad, "malformed token");
    craft(bad, HS256, "{\"sub\":\"u\",\"sub\":\"admin\",\"exp\":1800000000}", EVP_sha256(), SECRET);
    assert_refused(bad, "malformed token");
    /* why may be NULL */
    nt_claims c;
    assert_int_equal(nt_jwt_verify("a.b", 3, SECRET, NOW, &c, NULL, 0), NT_EAUTH);
}

static const char *app_secret(const char *app, const char *kid, void *arg, const char **deny)
{
    (void)arg;
    if (strcmp(app, "off") == 0) {
        *deny = "app disabled";
        return NULL;
    }
    if (kid && strcmp(kid, "k2") == 0)
        return "kid-two-secret";
    return strcmp(app, "acme") == 0 ? "acme-secret" : NULL;
}

static nt_status verify_rules(const char *tok, const nt_jwt_rules *r, nt_claims *c, char *why)
{
    why[0] = '\0';
    return nt_jwt_verify_rules(tok, strlen(tok), r, NOW, c, why, 64);
}

static void test_rules(void **state)
{
    (void)state;
    char tok[1024], why[64];
    nt_claims c;
    nt_jwt_rules r = { .secret = SECRET, .leeway_s = 30, .max_lifetime_s = 3600 };
    craft(tok, HS256, "{\"sub\":\"a\",\"exp\":1700000100,\"iat\":1700000020,\"nbf\":1700000010}",
          EVP_sha256(), SECRET);
    assert_int_equal(verify_rules(tok, &r, &c, why), NT_OK);       /* within the leeway */
    assert_int_equal(c.iat, 1700000020);
    craft(tok, HS256, "{\"sub\":\"a\",\"exp\":1700000100,\"nbf\":1700000031}", EVP_sha256(), SECRET);
    assert_int_equal(verify_rules(tok, &r, &c, why), NT_EAUTH);
    assert_string_equal(why, "token not valid yet");
    craft(tok, HS256, "{\"sub\":\"a\",\"exp\":1700000100,\"iat\":1700000031}", EVP_sha256(), SECRET);
    assert_int_equal(verify_rules(tok, &r, &c, why), NT_EAUTH);
    assert_string_equal(why, "token issued in the future");
    craft(tok, HS256, "{\"sub\":\"a\",\"exp\":1700000100,\"iat\":\"now\"}", EVP_sha256(), SECRET);
    assert_int_equal(verify_rules(tok, &r, &c, why), NT_EAUTH);
    assert_string_equal(why, "nbf and iat must be integers");
    craft(tok, HS256, "{\"sub\":\"a\",\"exp\":1700003601}", EVP_sha256(), SECRET);
    assert_int_equal(verify_rules(tok, &r, &c, why), NT_EAUTH);
    assert_string_equal(why, "token lifetime too long");

    r.issuer = "https://auth.example";
    r.audience = "natter";
    craft(tok, HS256, "{\"sub\":\"a\",\"exp\":1700000100,\"iss\":\"https://auth.example\","
                      "\"aud\":[\"x\",\"natter\"]}", EVP_sha256(), SECRET);
    assert_int_equal(verify_rules(tok, &r, &c, why), NT_OK);
    craft(tok, HS256, "{\"sub\":\"a\",\"exp\":1700000100,\"iss\":\"evil\",\"aud\":\"natter\"}",
          EVP_sha256(), SECRET);
    assert_int_equal(verify_rules(tok, &r, &c, why), NT_EAUTH);
    assert_string_equal(why, "wrong iss");
    craft(tok, HS256, "{\"sub\":\"a\",\"exp\":1700000100,\"iss\":\"https://auth.example\","
                      "\"aud\":\"other\"}", EVP_sha256(), SECRET);
    assert_int_equal(verify_rules(tok, &r, &c, why), NT_EAUTH);
    assert_string_equal(why, "wrong aud");

    /* Per-app secrets: an app's tokens verify only with its secret; others fall back. */
    nt_jwt_rules apps = { .secret = SECRET, .secret_for = app_secret, .leeway_s = 30 };
    craft(tok, HS256, "{\"sub\":\"a\",\"app\":\"acme\",\"exp\":1700000100}", EVP_sha256(), "acme-secret");
    assert_int_equal(verify_rules(tok, &apps, &c, why), NT_OK);
    craft(tok, HS256, "{\"sub\":\"a\",\"app\":\"acme\",\"exp\":1700000100}", EVP_sha256(), SECRET);
    assert_int_equal(verify_rules(tok, &apps, &c, why), NT_EAUTH);
    assert_string_equal(why, "bad signature");
    craft(tok, HS256, "{\"sub\":\"a\",\"app\":\"other\",\"exp\":1700000100}", EVP_sha256(), SECRET);
    assert_int_equal(verify_rules(tok, &apps, &c, why), NT_OK);
    craft(tok, "{\"alg\":\"HS256\",\"kid\":\"k2\"}", "{\"sub\":\"a\",\"exp\":1700000100}",
          EVP_sha256(), "kid-two-secret");
    assert_int_equal(verify_rules(tok, &apps, &c, why), NT_OK);
    craft(tok, HS256, "{\"sub\":\"a\",\"app\":\"off\",\"exp\":1700000100}", EVP_sha256(), SECRET);
    assert_int_equal(verify_rules(tok, &apps, &c, why), NT_EAUTH);
    assert_string_equal(why, "app disabled");
    nt_jwt_rules none = { .secret = NULL, .secret_for = app_secret, .leeway_s = 30 };
    craft(tok, HS256, "{\"sub\":\"a\",\"app\":\"other\",\"exp\":1700000100}", EVP_sha256(), SECRET);
    assert_int_equal(verify_rules(tok, &none, &c, why), NT_EAUTH);
    assert_string_equal(why, "unknown app");

    char *signed_tok = nt_jwt_sign_at(SECRET, "bob", NULL, NULL, NULL, NOW - 5, NOW + 60);
    nt_jwt_rules plain = { .secret = SECRET, .leeway_s = 30 };
    assert_int_equal(verify_rules(signed_tok, &plain, &c, why), NT_OK);
    assert_int_equal(c.iat, NOW - 5);
    nt_free(signed_tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_sign_round_trip),
        cmocka_unit_test(test_default_app),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_exp_missing_or_not_integer),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_other),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_bad_sub),
        cmocka_unit_test(test_bad_app),
        cmocka_unit_test(test_name_truncated_on_char_boundary),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_rules),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return rc != 0 ? rc : nt_alloc_used() != 0;
}
