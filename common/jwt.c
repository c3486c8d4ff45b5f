/* jwt.c: HS256 JWT verification and signing (OpenSSL HMAC, jansson for claims). */
#include "jwt.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "util.h"

#define JWT_SIG_LEN 32 /* SHA-256 */

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Decodes unpadded base64url into out (room for len * 3 / 4 bytes). Refuses
 * padding, foreign characters and non-canonical trailing bits. Returns the
 * decoded length, or -1. */
static long b64url_decode(const char *in, size_t len, unsigned char *out)
{
    if (len % 4 == 1)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)n;
}

/* Encodes into out (room for 4 * ceil(len / 3) + 1), NUL-terminated, no padding. */
static size_t b64url_encode(const unsigned char *in, size_t len, char *out)
{
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[n++] = b64url[(acc >> bits) & 0x3f];
        }
    }
    if (bits > 0)
        out[n++] = b64url[(acc << (6 - bits)) & 0x3f];
    out[n] = '\0';
    return n;
}

/* Decodes one base64url segment holding a JSON object; NULL when it is not one. */
static json_t *jwt_segment_json(const char *seg, size_t len)
{
    unsigned char *raw = nt_malloc(len * 3 / 4 + 1);
    json_t *j = NULL;
    long n = b64url_decode(seg, len, raw);
    if (n >= 0)
        j = json_loadb((const char *)raw, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    nt_free(raw);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* Copies at most cap - 1 bytes of UTF-8 src, never splitting a character. */
static void copy_utf8(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n > cap - 1) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool jwt_hmac(const char *secret, const char *data, size_t len,
                     unsigned char mac[JWT_SIG_LEN])
{
    unsigned int maclen = 0;
    return HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)data, len,
                mac, &maclen) != NULL && maclen == JWT_SIG_LEN;
}

static nt_status jwt_refuse(char *why, size_t whylen, const char *reason)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s", reason);
    return NT_EAUTH;
}

/* True when aud (a string or an array of strings) holds want. */
static bool aud_holds(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    return false;
}

/* An optional integer time claim: false when present and not an integer. */
static bool time_claim(const json_t *claims, const char *name, int64_t *out)
{
    json_t *v = json_object_get(claims, name);
    *out = 0;
    if (v == NULL)
        return true;
    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return true;
}

nt_status nt_jwt_verify_rules(const char *token, size_t len, const nt_jwt_rules *rules, int64_t now,
                              nt_claims *out, char *why, size_t whylen)
{
    const char *reason = "malformed token";
    json_t *hdr = NULL, *claims = NULL;

    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    const char *end = token + len;
    if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)) != NULL)
        goto err;

    hdr = jwt_segment_json(token, (size_t)(dot1 - token));
    if (hdr == NULL)
        goto err;
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    if (alg == NULL || strcmp(alg, "HS256") != 0) {
        reason = "unsupported alg";
        goto err;
    }
    /* The claims are read before the signature is checked only to choose the secret;
     * unreadable ones are checked against the default secret first, so a tampered
     * token is refused as such. */
    claims = jwt_segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    json_t *appj = claims ? json_object_get(claims, "app") : NULL;
    const char *app = appj ? json_string_value(appj) : "default";
    bool app_ok = app != NULL && nt_valid_id(app, strlen(app));
    const char *deny = NULL;
    const char *secret = claims && app_ok && rules->secret_for
        ? rules->secret_for(app, json_string_value(json_object_get(hdr, "kid")), rules->arg, &deny)
        : NULL;
    if (deny != NULL) {
        reason = deny;
        goto err;
    }
    if (secret == NULL)
        secret = rules->secret;
    if (secret == NULL || secret[0] == '\0') {
        reason = "unknown app";
        goto err;
    }

    unsigned char sig[JWT_SIG_LEN + 3], mac[JWT_SIG_LEN];
    size_t siglen = (size_t)(end - dot2 - 1);
    if (siglen > ((JWT_SIG_LEN + 2) / 3) * 4) {
        reason = "bad signature";
        goto err;
    }
    long n = b64url_decode(dot2 + 1, siglen, sig);
    if (n < 0)
        goto err;
    if (!jwt_hmac(secret, token, (size_t)(dot2 - token), mac) || n != JWT_SIG_LEN ||
        CRYPTO_memcmp(sig, mac, JWT_SIG_LEN) != 0) {
        reason = "bad signature";
        goto err;
    }
    if (claims == NULL)
        goto err;
    if (!app_ok) {
        reason = "invalid app";
        goto err;
    }

    json_t *exp = json_object_get(claims, "exp");
    if (!json_is_integer(exp)) {
        reason = "missing exp";
        goto err;
    }
    if (json_integer_value(exp) <= now) {
        reason = "token expired";
        goto err;
    }
    if (rules->max_lifetime_s > 0 && json_integer_value(exp) - now > rules->max_lifetime_s) {
        reason = "token lifetime too long";
        goto err;
    }
    int64_t nbf, iat;
    if (!time_claim(claims, "nbf", &nbf) || !time_claim(claims, "iat", &iat)) {
        reason = "nbf and iat must be integers";
        goto err;
    }
    if (nbf > now + rules->leeway_s) {
        reason = "token not valid yet";
        goto err;
    }
    if (iat > now + rules->leeway_s) {
        reason = "token issued in the future";
        goto err;
    }
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    if (rules->issuer && (iss == NULL || strcmp(iss, rules->issuer) != 0)) {
        reason = "wrong iss";
        goto err;
    }
    if (rules->audience && !aud_holds(json_object_get(claims, "aud"), rules->audience)) {
        reason = "wrong aud";
        goto err;
    }
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    if (sub == NULL || !nt_valid_id(sub, strlen(sub))) {
        reason = "invalid sub";
        goto err;
    }
    const char *name = json_string_value(json_object_get(claims, "name"));
    const char *role = json_string_value(json_object_get(claims, "role"));

    memset(out, 0, sizeof(*out));
    copy_utf8(out->sub, sizeof(out->sub), sub);
    copy_utf8(out->app, sizeof(out->app), app);
    copy_utf8(out->name, sizeof(out->name), name ? name : "");
    copy_utf8(out->role, sizeof(out->role), role ? role : "");
    out->exp = json_integer_value(exp);
    out->iat = iat;
    json_decref(hdr);
    json_decref(claims);
    return NT_OK;
err:
    json_decref(hdr);
    json_decref(claims);
    return jwt_refuse(why, whylen, reason);
}

nt_status nt_jwt_verify(const char *token, size_t len, const char *secret, int64_t now,
                        nt_claims *out, char *why, size_t whylen)
{
    nt_jwt_rules rules = { .secret = secret, .leeway_s = 60 };
    return nt_jwt_verify_rules(token, len, &rules, now, out, why, whylen);
}

char *nt_jwt_sign_at(const char *secret, const char *sub, const char *app, const char *name,
                     const char *role, int64_t iat, int64_t exp)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    json_t *claims = json_pack("{s:s, s:s, s:I, s:s*, s:s*}", "sub", sub ? sub : "",
                               "app", app ? app : "default", "exp", (json_int_t)exp,
                               "name", name, "role", role);
    if (claims == NULL)
        return NULL; /* a string that is not UTF-8 */
    if (iat > 0)
        json_object_set_new(claims, "iat", json_integer(iat));
    size_t plen = json_dumpb(claims, NULL, 0, JSON_COMPACT);
    char *payload = nt_malloc(plen + 1);
    json_dumpb(claims, payload, plen, JSON_COMPACT);
    json_decref(claims);

    size_t hlen = sizeof(hdr) - 1;
    size_t cap = (hlen + 2) / 3 * 4 + (plen + 2) / 3 * 4 + (JWT_SIG_LEN + 2) / 3 * 4 + 4;
    char *tok = nt_malloc(cap);
    size_t n = b64url_encode((const unsigned char *)hdr, hlen, tok);
    tok[n++] = '.';
    n += b64url_encode((const unsigned char *)payload, plen, tok + n);
    nt_free(payload);

    unsigned char mac[JWT_SIG_LEN];
    if (!jwt_hmac(secret, tok, n, mac))
        memset(mac, 0, sizeof(mac));
    tok[n++] = '.';
    b64url_encode(mac, sizeof(mac), tok + n);
    return tok;
}

char *nt_jwt_sign(const char *secret, const char *sub, const char *app, const char *name,
                  const char *role, int64_t exp)
{
    return nt_jwt_sign_at(secret, sub, app, name, role, 0, exp);
}
