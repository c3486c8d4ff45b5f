/* jwt.h: JWT verification (HS256 only), claims per docs/protocol.md "Identity". */
#ifndef NT_JWT_H
#define NT_JWT_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"

#define NT_ID_MAX 64

typedef struct nt_claims {
    char sub[NT_ID_MAX + 1];      /* user id, [A-Za-z0-9_-]{1,64} */
    char app[NT_ID_MAX + 1];      /* tenant, default "default" */
    char name[129];               /* display name, may be empty; UTF-8, truncated at 128 bytes on a char boundary */
    char role[33];                /* may be empty */
    int64_t exp;                  /* seconds since epoch */
    int64_t iat;                  /* seconds since epoch; 0 when the token has none */
} nt_claims;

/* The secret of an app's tokens (the token's app claim, "default" when absent, and
 * its kid header or NULL); NULL: no secret of its own (rules->secret is used). To
 * refuse the token instead (a disabled app, a kid naming another app), set *deny to
 * the reason. */
typedef const char *(*nt_jwt_secret_fn)(const char *app, const char *kid, void *arg,
                                        const char **deny);

typedef struct nt_jwt_rules {
    const char *secret;           /* the secret when secret_for is NULL or gives none */
    nt_jwt_secret_fn secret_for;
    void *arg;
    int64_t leeway_s;             /* nbf and iat may lie this far ahead of now */
    int64_t max_lifetime_s;       /* exp may lie at most this far ahead of now; 0: any */
    const char *issuer;           /* iss must equal it; NULL: not checked */
    const char *audience;         /* aud (a string or an array of them) must hold it; NULL: not checked */
} nt_jwt_rules;

/* As nt_jwt_verify, with the rules: also refuses "token not valid yet" (nbf ahead
 * of now + leeway), "token issued in the future" (iat likewise), "token lifetime too
 * long" (exp beyond now + max_lifetime_s), "wrong iss", "wrong aud", a non-integer
 * nbf or iat, and "unknown app" when no secret is found. */
nt_status nt_jwt_verify_rules(const char *token, size_t len, const nt_jwt_rules *rules, int64_t now,
                              nt_claims *out, char *why, size_t whylen);

/* Verifies `token` against `secret` at time `now` (seconds). Refuses: malformed
 * token, alg other than HS256 (including "none"), bad signature, missing or
 * non-integer exp, exp <= now, missing or invalid sub, invalid app, nbf or iat more
 * than 60 s ahead.
 * On failure returns NT_EAUTH and writes a short reason ("token expired",
 * "bad signature", …) into `why` (may be NULL). */
nt_status nt_jwt_verify(const char *token, size_t len, const char *secret, int64_t now,
                        nt_claims *out, char *why, size_t whylen);

/* Signs an HS256 token with the given claims, no iat (for tests and the benchmark).
 * Returns an nt_malloc'd string, or NULL when a string is not valid UTF-8.
 * `app` (default "default"), `name` and `role` may be NULL. */
char *nt_jwt_sign(const char *secret, const char *sub, const char *app, const char *name,
                  const char *role, int64_t exp);
/* The same with an iat claim (0: none). */
char *nt_jwt_sign_at(const char *secret, const char *sub, const char *app, const char *name,
                     const char *role, int64_t iat, int64_t exp);

#endif
