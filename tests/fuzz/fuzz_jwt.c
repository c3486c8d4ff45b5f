/* fuzz_jwt.c: libFuzzer harness for JWTs: nt_jwt_verify on the input as a token (at a
 * fixed time and at a time taken from the input), on the input as the claims of a token
 * signed here (so mutations reach past the signature), and nt_jwt_sign round trips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "alloc.h"
#include "fuzz_check.h"
#include "jwt.h"
#include "util.h"

#define FZ_SECRET "fuzz-secret"       /* the seed tokens of corpus/jwt are signed with it */
#define FZ_NOW 1700000000             /* 2023-11-14: the seeds expire later */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Unpadded base64url of in into out (room for 4 * ceil(len / 3)); returns its length. */
static size_t b64url_put(const unsigned char *in, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        size_t chars = len - i >= 3 ? 4 : len - i + 1;
        for (size_t k = 0; k < chars; k++)
            out[n++] = b64url[(v >> (18 - 6 * k)) & 0x3f];
    }
    return n;
}

/* What verify promises about the claims it accepted at `now`. */
static void check_verify(const char *tok, size_t len, int64_t now)
{
    nt_claims cl;
    char why[64] = "";
    if (nt_jwt_verify(tok, len, FZ_SECRET, now, &cl, why, sizeof why) != NT_OK) {
        FZ_CHECK(why[0] != '\0', "a refused token without a reason");
        return;
    }
    FZ_CHECK(cl.exp > now, "expired token accepted");
    FZ_CHECK(nt_valid_id(cl.sub, strlen(cl.sub)), "invalid sub accepted: %s", cl.sub);
    FZ_CHECK(nt_valid_id(cl.app, strlen(cl.app)), "invalid app accepted: %s", cl.app);
    FZ_CHECK(strlen(cl.name) <= 128 && nt_valid_utf8(cl.name, strlen(cl.name)),
             "name not UTF-8 of <= 128 bytes");
    FZ_CHECK(strlen(cl.role) <= 32 && nt_valid_utf8(cl.role, strlen(cl.role)),
             "role not UTF-8 of <= 32 bytes");
}

/* The input as the claims segment of an HS256 token signed with FZ_SECRET. */
static void check_signed_claims(const char *claims, size_t len)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *tok = nt_malloc((sizeof hdr + len + 32) / 3 * 4 + 16);
    size_t n = b64url_put((const unsigned char *)hdr, sizeof hdr - 1, tok);
    tok[n++] = '.';
    n += b64url_put((const unsigned char *)claims, len, tok + n);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), FZ_SECRET, (int)strlen(FZ_SECRET), (const unsigned char *)tok, n, mac,
         &maclen);
    tok[n++] = '.';
    n += b64url_put(mac, maclen, tok + n);
    check_verify(tok, n, FZ_NOW);
    nt_free(tok);
}

/* The input as up to four NUL-separated strings sub, app, name, role for nt_jwt_sign;
 * what it signs must verify to the same claims (name and role cut on a character). */
static void check_sign(const char *buf, size_t size)
{
    char *copy = nt_strndup(buf, size);
    const char *part[4] = { NULL, NULL, NULL, NULL };
    bool utf8 = true;
    size_t at = 0;
    for (int i = 0; i < 4 && at <= size; i++) {
        part[i] = copy + at;
        utf8 = utf8 && nt_valid_utf8(part[i], strlen(part[i]));
        at += strlen(part[i]) + 1;
    }
    const char *sub = part[0], *app = part[1], *name = part[2], *role = part[3];
    int64_t exp = FZ_NOW + 60;
    char *tok = nt_jwt_sign(FZ_SECRET, sub, app, name, role, exp);
    FZ_CHECK((tok != NULL) == utf8, "nt_jwt_sign %s for %s strings", tok ? "signed" : "refused",
             utf8 ? "UTF-8" : "non-UTF-8");
    if (!tok) {
        nt_free(copy);
        return;
    }
    size_t len = strlen(tok), dots = 0;
    for (size_t i = 0; i < len; i++) {
        dots += tok[i] == '.';
        FZ_CHECK(tok[i] == '.' || strchr(b64url, tok[i]), "token byte 0x%02x", tok[i]);
    }
    FZ_CHECK(dots == 2, "token of %zu segments", dots + 1);

    nt_claims cl;
    char why[64] = "";
    bool valid = nt_valid_id(sub, strlen(sub)) && (!app || nt_valid_id(app, strlen(app)));
    nt_status st = nt_jwt_verify(tok, len, FZ_SECRET, FZ_NOW, &cl, why, sizeof why);
    FZ_CHECK((st == NT_OK) == valid, "signed claims %s: %s", valid ? "refused" : "accepted", why);
    if (st == NT_OK) {
        size_t nl = name ? nt_utf8_cut(name, strlen(name), 128) : 0;
        size_t rl = role ? nt_utf8_cut(role, strlen(role), 32) : 0;
        FZ_CHECK(strcmp(cl.sub, sub) == 0, "sub changed");
        FZ_CHECK(strcmp(cl.app, app ? app : "default") == 0, "app changed");
        FZ_CHECK(strlen(cl.name) == nl && memcmp(cl.name, name ? name : "", nl) == 0,
                 "name not cut at a character within 128 bytes");
        FZ_CHECK(strlen(cl.role) == rl && memcmp(cl.role, role ? role : "", rl) == 0,
                 "role not cut at a character within 32 bytes");
        FZ_CHECK(cl.exp == exp, "exp changed");
    }
    FZ_CHECK(nt_jwt_verify(tok, len, FZ_SECRET, exp, &cl, NULL, 0) != NT_OK,
             "accepted at its exp");
    FZ_CHECK(nt_jwt_verify(tok, len, FZ_SECRET "x", FZ_NOW, &cl, why, sizeof why) != NT_OK,
             "accepted with another secret");
    nt_free(tok);
    nt_free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    check_verify(buf, size, FZ_NOW);
    if (size >= sizeof(int64_t)) {
        int64_t now;
        memcpy(&now, data, sizeof now);
        check_verify(buf + sizeof now, size - sizeof now, now);
    }
    check_signed_claims(buf, size);
    check_sign(buf, size);
    return 0;
}
